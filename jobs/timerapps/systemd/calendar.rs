//! Calendar expressions as systemd itself reads them: `systemd-analyze
//! calendar` parses and evaluates them, so that what the command checks,
//! prints and judges staleness by is exactly what the timer will do.

use jobkit::{Error, Exit, Result};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// How many elapses a schedule's spacing is judged over: enough for a
/// weekday list or the uneven months to show their longest gap.
const SPAN: usize = 8;

/// One expression as systemd reads it, and its next elapses.
pub struct Evaluated {
    pub normalized: String,
    /// As systemd prints them, in local time.
    pub next: Vec<String>,
    /// The same, in µs since the epoch, in step with `next`.
    pub next_usec: Vec<u64>,
}

/// Why `systemd-analyze calendar` refused expressions.
pub enum Refused {
    Invalid(String),
    Failed(Error),
}

/// Evaluates `exprs`, each for `iterations` elapses from now.
pub fn evaluate(
    exprs: &[String],
    iterations: usize,
) -> std::result::Result<Vec<Evaluated>, Refused> {
    let out = Command::new("systemd-analyze")
        .arg("calendar")
        .arg(format!("--iterations={iterations}"))
        .arg("--")
        .args(exprs)
        .env("LC_ALL", "C")
        // The timers run in the system's time zone, not the caller's.
        .env_remove("TZ")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            Refused::Failed(Error::io(
                Exit::Failure,
                "cannot run",
                Path::new("systemd-analyze"),
                &e,
                "it comes with systemd",
            ))
        })?;
    if !out.status.success() {
        return Err(Refused::Invalid(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let evaluated = parse_output(&stdout);
    if evaluated.len() != exprs.len() {
        return Err(Refused::Failed(Error::new(
            Exit::Failure,
            format!(
                "systemd-analyze calendar printed {} expressions for {}: {stdout}",
                evaluated.len(),
                exprs.len()
            ),
        )));
    }
    Ok(evaluated)
}

/// [`evaluate`] for expressions a timer has in effect, which systemd has
/// read already: a refusal is a failure, not a usage error.
pub fn in_effect(exprs: &[String], iterations: usize) -> Result<Vec<Evaluated>> {
    evaluate(exprs, iterations).map_err(|refused| match refused {
        Refused::Failed(e) => e,
        Refused::Invalid(why) => Error::new(
            Exit::Failure,
            format!("systemd-analyze cannot read the timer's calendar: {why}"),
        ),
    })
}

/// The output of `systemd-analyze calendar`: per expression its normalized
/// form, then each elapse in local time, followed by the same in UTC when
/// local time is not UTC.
fn parse_output(stdout: &str) -> Vec<Evaluated> {
    let mut all: Vec<Evaluated> = Vec::new();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(": ") else {
            continue;
        };
        let value = value.trim();
        let Some(current) = all.last_mut() else {
            if key.trim() == "Normalized form" {
                all.push(Evaluated {
                    normalized: value.to_owned(),
                    next: Vec::new(),
                    next_usec: Vec::new(),
                });
            }
            continue;
        };
        match key.trim() {
            "Normalized form" => all.push(Evaluated {
                normalized: value.to_owned(),
                next: Vec::new(),
                next_usec: Vec::new(),
            }),
            k if k == "Next elapse" || k.starts_with("Iter. #") || k.starts_with("Iteration #") => {
                if value == "never" {
                    continue;
                }
                current.next.push(value.to_owned());
                // 0 until its UTC line, when printed in another zone.
                current.next_usec.push(utc_usec(value).unwrap_or(0));
            }
            "(in UTC)" => {
                if let Some(last) = current.next_usec.last_mut() {
                    *last = utc_usec(value).unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    // An elapse whose time cannot be read is left out of both lists, which
    // stay in step.
    for e in &mut all {
        let (usec, text): (Vec<u64>, Vec<String>) = std::mem::take(&mut e.next_usec)
            .into_iter()
            .zip(std::mem::take(&mut e.next))
            .filter(|(usec, _)| *usec > 0)
            .unzip();
        (e.next_usec, e.next) = (usec, text);
    }
    all
}

/// `Wed 2026-12-02 23:00:00 UTC` as µs since the epoch; `None` for a time
/// in another zone, which is followed by its UTC line.
fn utc_usec(value: &str) -> Option<u64> {
    let (_weekday, rest) = value.split_once(' ')?;
    let rest = rest.strip_suffix(" UTC")?;
    let time = chrono::NaiveDateTime::parse_from_str(rest, "%Y-%m-%d %H:%M:%S").ok()?;
    u64::try_from(time.and_utc().timestamp_micros()).ok()
}

/// The next elapses of `exprs`, all expressions together, in order, µs
/// since the epoch: enough to judge their spacing, the first being the next
/// run. None for no expressions.
pub fn elapses(exprs: &[String]) -> Result<Vec<u64>> {
    if exprs.is_empty() {
        return Ok(Vec::new());
    }
    let mut all: Vec<u64> = in_effect(exprs, SPAN)?
        .into_iter()
        .flat_map(|e| e.next_usec)
        .collect();
    all.sort_unstable();
    all.dedup();
    all.truncate(SPAN);
    Ok(all)
}

/// A calendar schedule's spacing: the longest gap between its next
/// `elapses`, so that an uneven schedule ("Mon,Fri", the months) is never
/// judged stale between two of its own runs. `None` when it elapses at most
/// once more.
pub fn spacing(elapses: &[u64]) -> Option<Duration> {
    elapses
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .map(Duration::from_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: &str = "  Original form: daily
Normalized form: *-*-* 00:00:00
    Next elapse: Thu 2026-12-03 00:00:00 CET
       (in UTC): Wed 2026-12-02 23:00:00 UTC
       From now: 18h left
       Iter. #2: Fri 2026-12-04 00:00:00 CET
       (in UTC): Thu 2026-12-03 23:00:00 UTC
       From now: 1 day 18h left

  Original form: Mon *-*-* 02:30
Normalized form: Mon *-*-* 02:30:00
    Next elapse: Mon 2026-12-07 02:30:00 UTC
       From now: 4 days left
";

    #[test]
    fn elapses_are_read_in_utc() {
        let e = parse_output(BERLIN);
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].normalized, "*-*-* 00:00:00");
        assert_eq!(
            e[0].next,
            ["Thu 2026-12-03 00:00:00 CET", "Fri 2026-12-04 00:00:00 CET"]
        );
        // 2026-12-02T23:00:00Z
        assert_eq!(
            e[0].next_usec,
            [1_796_252_400_000_000, 1_796_338_800_000_000]
        );
        assert_eq!(e[1].next_usec, [1_796_610_600_000_000]);
    }

    #[test]
    fn spacing_is_read_from_systemd() {
        let spacing = |c: &str| spacing(&elapses(&[c.to_owned()]).unwrap()).map(|d| d.as_secs());
        let day = 86_400;
        // Monday to Friday is the widest gap, not Friday to Monday.
        assert_eq!(spacing("Mon,Fri *-*-* 02:00"), Some(4 * day));
        assert_eq!(spacing("hourly"), Some(3600));
        // Elapses of two expressions together.
        let both = elapses(&["*-*-* 00:00".into(), "*-*-* 12:00".into()]).unwrap();
        assert_eq!(both.len(), SPAN);
        assert_eq!(super::spacing(&both).map(|d| d.as_secs()), Some(day / 2));
        assert_eq!(spacing("2001-01-01"), None);
    }

    #[test]
    fn spacing_is_the_widest_gap() {
        let h = 3_600_000_000;
        // Mon 02:00 and 03:00, then a week: stale only after two weeks.
        let gaps = [0, h, 168 * h, 169 * h, 336 * h];
        assert_eq!(spacing(&gaps), Some(Duration::from_secs(167 * 3600)));
        assert_eq!(spacing(&[5]), None);
    }
}
