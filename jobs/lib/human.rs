//! Sizes and durations as a person reads them, in the jobs' lines and in
//! the `timerapps` command.

use std::time::Duration;

/// Bytes with an SI prefix and three significant digits: `950 B`,
/// `30.5 MB`, `1.21 GB`.
pub fn si(bytes: u64) -> String {
    scaled(bytes, 1000.0, ["B", "kB", "MB", "GB", "TB", "PB"])
}

/// Bytes in powers of 1024 with three significant digits, as memory limits
/// are set (`MemoryMax=2G`): `512 KiB`, `768 MiB`, `1.50 GiB`.
pub fn binary(bytes: u64) -> String {
    scaled(bytes, 1024.0, ["B", "KiB", "MiB", "GiB", "TiB", "PiB"])
}

fn scaled(bytes: u64, base: f64, units: [&str; 6]) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit < units.len() - 1 {
        value /= base;
        unit += 1;
    }
    let digits = match value {
        _ if unit == 0 || value >= 99.95 => 0,
        _ if value >= 9.995 => 1,
        _ => 2,
    };
    format!("{value:.digits$} {}", units[unit])
}

/// A duration as a person reads it: `45 s`, `3 min 20 s`, `5 h 12 min`,
/// `2 d 4 h`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    // The larger unit, and the next one unless it is zero.
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs} s"),
        (0, 0, _) if secs == 0 => format!("{mins} min"),
        (0, 0, _) => format!("{mins} min {secs} s"),
        (0, _, _) if mins == 0 => format!("{hours} h"),
        (0, _, _) => format!("{hours} h {mins} min"),
        _ if hours == 0 => format!("{days} d"),
        _ => format!("{days} d {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_with_three_digits() {
        let cases = [
            (0, "0 B"),
            (950, "950 B"),
            (999, "999 B"),
            (1000, "1.00 kB"),
            (30_500_000, "30.5 MB"),
            (305_000_000, "305 MB"),
            (999_700_000, "1.00 GB"),
            (1_210_000_000, "1.21 GB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(si(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn memory_reads_in_powers_of_1024() {
        let cases = [
            (950, "950 B"),
            (1000, "0.98 KiB"),
            (512 << 10, "512 KiB"),
            (768 << 20, "768 MiB"),
            (1536 << 20, "1.50 GiB"),
            (2 << 30, "2.00 GiB"),
            (6_780_000_000, "6.31 GiB"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(binary(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn spans_read_as_a_person_would() {
        let cases = [
            (45, "45 s"),
            (200, "3 min 20 s"),
            (5 * 3600 + 12 * 60 + 7, "5 h 12 min"),
            (2 * 86400 + 4 * 3600 + 59, "2 d 4 h"),
            (600, "10 min"),
            (3600 + 59, "1 h"),
            (86400 + 60, "1 d"),
        ];
        for (secs, shown) in cases {
            assert_eq!(span(Duration::from_secs(secs)), shown);
        }
    }
}
