//! `schedule`: a job's timer on a calendar expression, through a drop-in
//! that replaces the packaged interval, or back to the packaged schedule.

use crate::format::schedule_words;
use crate::jobs::TimerJob;
use crate::systemd::calendar::{self, Evaluated, Refused};
use crate::systemd::{self, or_default, read, Bus, Scope, TimerState, Verb};
use jobkit::catalogue::{SCHEDULE_DROP_IN as DROP_IN, SCHEDULE_MARK as MARK};
use jobkit::host::atomic;
use jobkit::{errln, outln, Error, Exit, Result};
use std::fs;
use std::path::Path;

/// Sets `calendar` (checked by [`parse`]), or the packaged schedule for
/// `None`.
pub fn run(job: &TimerJob, calendar: Option<Calendar>, scope: Scope) -> Result<bool> {
    let sd = systemd::connect(scope)?;
    // Where the admin's (or the user's) drop-ins go; `systemctl edit` too.
    let dir = scope.config_dir()?;
    set(&sd, job, calendar, &dir)
}

/// [`run`] on `sd`, whose drop-ins are read from `config_dir`.
fn set(
    sd: &dyn Bus,
    job: &TimerJob,
    calendar: Option<Calendar>,
    config_dir: &Path,
) -> Result<bool> {
    let scope = sd.scope();
    let timer = job.timer();
    let dir = config_dir.join(format!("{timer}.d"));
    match &calendar {
        Some(cal) => write(&dir, &cal.normalized)?,
        None => remove(&dir)?,
    }
    sd.reload()?;
    if or_default(sd.unit(&timer))?.active == "active" {
        sd.job(Verb::Restart, &timer)?;
    }
    // What systemd uses now, read back: another drop-in may win.
    let read = read(&format!("cannot read the schedule of {timer}"));
    let TimerState {
        calendar: calendar_now,
        monotonic: monotonic_now,
        ..
    } = sd.timer(&timer).map_err(&read)?;
    let drop_ins = sd.drop_ins(&timer).map_err(&read)?;
    let ours = drop_ins
        .iter()
        .position(|p| p.ends_with(&format!("/{DROP_IN}")));
    let others: Vec<&String> = drop_ins
        .iter()
        .skip(ours.map_or(0, |i| i + 1))
        .filter(|p| sets_schedule(Path::new(p)))
        .collect();
    let words = schedule_words(&calendar_now, &monotonic_now);
    let in_effect = match &calendar {
        Some(cal) => calendar_now == [cal.normalized.clone()] && monotonic_now.is_empty(),
        None => others.is_empty(),
    };
    if !in_effect {
        let asked = match &calendar {
            Some(cal) => format!("OnCalendar={}", cal.normalized),
            None => "the packaged schedule".to_owned(),
        };
        let by = if others.is_empty() {
            "another setting".to_owned()
        } else {
            others
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        errln!(
            "timerapps: warning: {by} overrides {asked}: systemd runs {timer} {words}; \
             edit or remove it (systemctl{} edit {timer})",
            if scope == Scope::User { " --user" } else { "" }
        );
    }
    match &calendar {
        Some(cal) if in_effect => outln!("{timer}: OnCalendar={}", cal.normalized),
        Some(_) => outln!("{timer}: {words}"),
        None => outln!("{timer}: packaged schedule, {words}"),
    }
    if !calendar_now.is_empty() {
        outln!("next runs:");
        for next in next_runs(&calendar_now)? {
            outln!("  {next}");
        }
    }
    Ok(in_effect)
}

/// The next three elapses of the calendars in effect, as systemd computes
/// them.
fn next_runs(calendars: &[String]) -> Result<Vec<String>> {
    let evaluated = calendar::in_effect(calendars, 3)?;
    let mut all: Vec<(u64, String)> = evaluated
        .into_iter()
        .flat_map(|e| e.next_usec.into_iter().zip(e.next))
        .collect();
    all.sort();
    all.dedup();
    Ok(all.into_iter().take(3).map(|(_, text)| text).collect())
}

/// Whether the drop-in at `path` sets when its timer elapses.
fn sets_schedule(path: &Path) -> bool {
    const SETTINGS: [&str; 6] = [
        "OnCalendar=",
        "OnActiveSec=",
        "OnBootSec=",
        "OnStartupSec=",
        "OnUnitActiveSec=",
        "OnUnitInactiveSec=",
    ];
    fs::read_to_string(path).is_ok_and(|text| {
        text.lines()
            .any(|l| SETTINGS.iter().any(|s| l.trim_start().starts_with(s)))
    })
}

/// A calendar expression as systemd reads it.
pub struct Calendar {
    normalized: String,
}

/// Checks `expr` with systemd's own parser (systemd-analyze calendar),
/// before anything is asked or changed.
pub fn parse(expr: &str) -> Result<Calendar> {
    let invalid = |why: &str| {
        Error::new(
            Exit::Usage,
            format!("invalid calendar expression {expr:?}: {why}; nothing was changed"),
        )
    };
    // One line of a unit file: anything else would add settings of its own.
    if expr.trim().is_empty() || expr.chars().any(|c| c.is_control()) || expr.ends_with('\\') {
        return Err(invalid(
            "expected one line, such as \"daily\" or \"*-*-* 02:30\"",
        ));
    }
    let evaluated = match calendar::evaluate(&[expr.to_owned()], 3) {
        Ok(mut e) if e.len() == 1 => e.remove(0),
        Ok(_) => return Err(invalid("expected one expression")),
        Err(Refused::Invalid(why)) => return Err(invalid(&why)),
        Err(Refused::Failed(e)) => return Err(e),
    };
    if evaluated.next.is_empty() {
        return Err(invalid("it never elapses from now on"));
    }
    let Evaluated { normalized, .. } = evaluated;
    Ok(Calendar { normalized })
}

fn write(dir: &Path, calendar: &str) -> Result<()> {
    let failed = |e: std::io::Error| {
        Error::io(
            Exit::Failure,
            "cannot write the schedule in",
            dir,
            &e,
            "nothing was changed",
        )
    };
    fs::create_dir_all(dir).map_err(failed)?;
    let text = format!(
        "{MARK}; \"timerapps schedule JOB --default\" removes it.\n\
         [Timer]\n\
         # An empty value drops the packaged interval; then the calendar alone.\n\
         OnCalendar=\n\
         OnCalendar={calendar}\n\
         # On the marks given, and a run missed while the machine was off soon after boot.\n\
         RandomizedDelaySec=0\n\
         AccuracySec=1s\n\
         Persistent=true\n"
    );
    atomic::replace(dir, DROP_IN, text.as_bytes(), 0o644).map_err(failed)
}

fn remove(dir: &Path) -> Result<()> {
    let removed = atomic::remove(dir, DROP_IN)
        .map_err(|e| Error::io(Exit::Failure, "cannot remove the schedule in", dir, &e, ""))?;
    if removed {
        // Left behind only if the admin has drop-ins of their own there.
        let _ = fs::remove_dir(dir);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::systemd::fake::{scratch, Fake};

    const DAILY: &str = "*-*-* 02:30:00";

    /// A fake whose myapp timer is `active`, and reads back `calendar` from
    /// the drop-ins in `dir`.
    fn myapp(active: &str, dir: &Path, calendar: &[&str], drop_ins: &[&str]) -> Fake {
        let mut fake = Fake::new(Scope::System).unit("myapp.timer", active, "enabled");
        fake.timers.insert(
            "myapp.timer".into(),
            TimerState {
                calendar: calendar.iter().map(|c| c.to_string()).collect(),
                ..TimerState::default()
            },
        );
        fake.drop_ins.insert(
            "myapp.timer".into(),
            drop_ins
                .iter()
                .map(|d| dir.join("myapp.timer.d").join(d).display().to_string())
                .collect(),
        );
        fake
    }

    fn daily() -> Option<Calendar> {
        Some(Calendar {
            normalized: DAILY.to_owned(),
        })
    }

    fn job() -> TimerJob {
        TimerJob::parse("myapp", Scope::System).unwrap()
    }

    #[test]
    fn a_calendar_is_written_as_a_drop_in_and_the_active_timer_restarted() {
        let dir = scratch("schedule-set");
        let fake = myapp("active", &dir, &[DAILY], &[DROP_IN]);
        assert!(set(&fake, &job(), daily(), &dir).unwrap());
        let written = fs::read_to_string(dir.join("myapp.timer.d").join(DROP_IN)).unwrap();
        assert_eq!(
            written,
            format!(
                "{MARK}; \"timerapps schedule JOB --default\" removes it.\n\
                 [Timer]\n\
                 # An empty value drops the packaged interval; then the calendar alone.\n\
                 OnCalendar=\n\
                 OnCalendar={DAILY}\n\
                 # On the marks given, and a run missed while the machine was off soon after boot.\n\
                 RandomizedDelaySec=0\n\
                 AccuracySec=1s\n\
                 Persistent=true\n"
            )
        );
        assert_eq!(fake.asked(), ["reload", "restart myapp.timer"]);

        // A stopped timer stays stopped.
        let stopped = myapp("inactive", &dir, &[DAILY], &[DROP_IN]);
        assert!(set(&stopped, &job(), daily(), &dir).unwrap());
        assert_eq!(stopped.asked(), ["reload"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_later_drop_in_that_sets_the_schedule_overrides_it() {
        let dir = scratch("schedule-overridden");
        let theirs = dir.join("myapp.timer.d/zz-admin.conf");
        fs::create_dir_all(theirs.parent().unwrap()).unwrap();
        fs::write(&theirs, "[Timer]\nOnCalendar=\nOnCalendar=hourly\n").unwrap();
        let fake = myapp(
            "active",
            &dir,
            &["*-*-* *:00:00"],
            &[DROP_IN, "zz-admin.conf"],
        );
        assert!(!set(&fake, &job(), daily(), &dir).unwrap());
        // The packaged schedule is not in effect either while it is there.
        let fake = myapp(
            "active",
            &dir,
            &["*-*-* *:00:00"],
            &[DROP_IN, "zz-admin.conf"],
        );
        assert!(!set(&fake, &job(), None, &dir).unwrap());
        // One that sets something else does not.
        fs::write(&theirs, "[Timer]\nAccuracySec=1min\n").unwrap();
        let fake = myapp("active", &dir, &[], &["zz-admin.conf"]);
        assert!(set(&fake, &job(), None, &dir).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_packaged_schedule_removes_the_drop_in_and_its_directory() {
        let dir = scratch("schedule-default");
        let fake = myapp("active", &dir, &[DAILY], &[DROP_IN]);
        assert!(set(&fake, &job(), daily(), &dir).unwrap());
        let fake = myapp("active", &dir, &[], &[]);
        assert!(set(&fake, &job(), None, &dir).unwrap());
        assert!(!dir.join("myapp.timer.d").exists());
        assert_eq!(fake.asked(), ["reload", "restart myapp.timer"]);
        fs::remove_dir_all(&dir).unwrap();
    }
}
