//! Configuration as the jobs read it: malformed values, a missing
//! DUMP_COMMAND or DUMP_DIR, and the variables each --help documents.

use crate::harness::{job, run, Sandbox};
use regex_lite::Regex;

/// A job, its variables and arguments, and how the error must show them.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str], &'a str);

/// Each malformed setting or argument, and how its error must show it.
const MALFORMED: &[Case] = &[
    ("myapp", &[("LOGFILE", "")], &[], r#"LOGFILE="""#),
    (
        "myapp",
        &[("LOGFILE", "relative.log")],
        &[],
        r#"LOGFILE="relative.log""#,
    ),
    (
        "otherapp",
        &[("LOGFILE", "./x.log")],
        &[],
        r#"LOGFILE="./x.log""#,
    ),
    ("myapp", &[], &["--bogus"], r#""--bogus""#),
    ("otherapp", &[], &["now"], r#""now""#),
    ("myapp", &[], &["--help", "extra"], r#""extra""#),
    (
        "dump-database",
        &[("DUMP_KEEP", "0")],
        &[],
        r#"DUMP_KEEP="0""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "-1")],
        &[],
        r#"DUMP_KEEP="-1""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "five")],
        &[],
        r#"DUMP_KEEP="five""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "2.5")],
        &[],
        r#"DUMP_KEEP="2.5""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "")],
        &[],
        r#"DUMP_KEEP="""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", " 5")],
        &[],
        r#"DUMP_KEEP=" 5""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "99999999999")],
        &[],
        r#"DUMP_KEEP="99999999999""#,
    ),
    (
        "dump-database",
        &[("DUMP_GZIP_LEVEL", "0")],
        &[],
        r#"DUMP_GZIP_LEVEL="0""#,
    ),
    (
        "dump-database",
        &[("DUMP_GZIP_LEVEL", "10")],
        &[],
        r#"DUMP_GZIP_LEVEL="10""#,
    ),
    (
        "dump-database",
        &[("DUMP_GZIP_LEVEL", "fast")],
        &[],
        r#"DUMP_GZIP_LEVEL="fast""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMPRESS", "xz")],
        &[],
        r#"DUMP_COMPRESS="xz""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMPRESS", "Zstd")],
        &[],
        r#"DUMP_COMPRESS="Zstd""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "0")],
        &[],
        r#"DUMP_ZSTD_LEVEL="0""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMPRESS", "zstd"), ("DUMP_ZSTD_LEVEL", "22")],
        &[],
        r#"DUMP_ZSTD_LEVEL="22""#,
    ),
    (
        "dump-database",
        &[("DUMP_ZSTD_LEVEL", "-5")],
        &[],
        r#"DUMP_ZSTD_LEVEL="-5""#,
    ),
    (
        "dump-database",
        &[("DUMP_EXTENSION", "sql.gz")],
        &[],
        r#"DUMP_EXTENSION="sql.gz""#,
    ),
    (
        "dump-database",
        &[("DUMP_EXTENSION", "zst")],
        &[],
        r#"DUMP_EXTENSION="zst""#,
    ),
    (
        "dump-database",
        &[("DUMP_EXTENSION", "")],
        &[],
        r#"DUMP_EXTENSION="""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP_HOURLY", "-1")],
        &[],
        r#"DUMP_KEEP_HOURLY="-1""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP_DAILY", "seven")],
        &[],
        r#"DUMP_KEEP_DAILY="seven""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP_WEEKLY", "100001")],
        &[],
        r#"DUMP_KEEP_WEEKLY="100001""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP_MONTHLY", "1.5")],
        &[],
        r#"DUMP_KEEP_MONTHLY="1.5""#,
    ),
    (
        "dump-database",
        &[("DUMP_CHECK", "on")],
        &[],
        r#"DUMP_CHECK="on""#,
    ),
    (
        "dump-database",
        &[("DUMP_SHRINK_LIMIT", "101")],
        &[],
        r#"DUMP_SHRINK_LIMIT="101""#,
    ),
    (
        "dump-database",
        &[("DUMP_SHRINK_LIMIT", "50%")],
        &[],
        r#"DUMP_SHRINK_LIMIT="50%""#,
    ),
    (
        "dump-database",
        &[("DUMP_FINISH_TIMEOUT", "0")],
        &[],
        r#"DUMP_FINISH_TIMEOUT="0""#,
    ),
    (
        "dump-database",
        &[("DUMP_FINISH_TIMEOUT", "10min")],
        &[],
        r#"DUMP_FINISH_TIMEOUT="10min""#,
    ),
    (
        "dump-database",
        &[("DUMP_THREADS", "0")],
        &[],
        r#"DUMP_THREADS="0""#,
    ),
    (
        "dump-database",
        &[("DUMP_THREADS", "65")],
        &[],
        r#"DUMP_THREADS="65""#,
    ),
    (
        "dump-database",
        &[("DUMP_MEMORY_MAX", "2GB")],
        &[],
        r#"DUMP_MEMORY_MAX="2GB""#,
    ),
    (
        "dump-database",
        &[("DUMP_NAME", "")],
        &[],
        r#"DUMP_NAME="""#,
    ),
    (
        "dump-database",
        &[("DUMP_NAME", "../escape")],
        &[],
        r#"DUMP_NAME="../escape""#,
    ),
    (
        "dump-database",
        &[("DUMP_NAME", ".hidden")],
        &[],
        r#"DUMP_NAME=".hidden""#,
    ),
    (
        "dump-database",
        &[("DUMP_NAME", "two words")],
        &[],
        r#"DUMP_NAME="two words""#,
    ),
    (
        "dump-database",
        &[("DUMP_DIR", "relative/dir")],
        &[],
        r#"DUMP_DIR="relative/dir""#,
    ),
    ("dump-database", &[("DUMP_DIR", "")], &[], r#"DUMP_DIR="""#),
    (
        "dump-database",
        &[("DUMP_DIR", "/var/lib/timerapps/dumps/")],
        &[],
        "DUMP_DIR=\"/var/lib/timerapps/dumps/\" is invalid: it holds the dump directories \
         of every job and instance",
    ),
    (
        "dump-database",
        &[("DUMP_COMMAND", "pg_dump 'mydb")],
        &[],
        r#"DUMP_COMMAND="pg_dump 'mydb""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMMAND", "   ")],
        &[],
        r#"DUMP_COMMAND="   ""#,
    ),
    (
        "dump-database",
        &[("DUMP_KEEP", "3\n4")],
        &[],
        r#"DUMP_KEEP="3\n4""#,
    ),
    (
        "dump-database",
        &[("DUMP_SETTINGS", "sales.conf")],
        &[],
        r#"DUMP_SETTINGS="sales.conf""#,
    ),
    (
        "dump-database",
        &[("DUMP_COMMAND", "cat ${CREDENTIALS_DIRECTORY}/x")],
        &[],
        "LoadCredential=",
    ),
    ("dump-database", &[], &["--keep=3"], r#""--keep=3""#),
];

/// A malformed setting: a one-line error naming it, exit 2, nothing written.
#[test]
fn malformed_configuration_is_refused_before_anything_is_written() {
    // Every variable a job documents, and its arguments, are tried.
    for name in jobkit::catalogue::JOBS.iter().map(|j| j.name) {
        let help = run(job(name).arg("--help")).ok().stdout.clone();
        let documented = documented_variables(&help);
        assert!(!documented.is_empty(), "{name} --help lists no variable");
        for var in documented {
            assert!(
                MALFORMED
                    .iter()
                    .any(|(n, vars, ..)| *n == name && vars.iter().any(|(k, _)| *k == var)),
                "no malformed {var} of {name} is tried"
            );
        }
        assert!(
            MALFORMED
                .iter()
                .any(|(n, _, args, _)| *n == name && !args.is_empty()),
            "no bad argument of {name} is tried"
        );
    }
    for (name, vars, args, shown) in MALFORMED {
        let sb = Sandbox::new("config");
        let dumps = sb.mkdir("dumps");
        let mut c = job(name);
        c.current_dir(sb.path("")).args(*args);
        if *name == "dump-database" {
            c.env("DUMP_DIR", &dumps).env("DUMP_COMMAND", "echo data");
        } else {
            c.env("LOGFILE", sb.path("app.log"));
        }
        for (k, v) in *vars {
            c.env(k, v);
        }
        let before = sb.tree();
        let r = run(&mut c);
        r.expect(2)
            .stderr_has(&format!("{name}: "))
            .stderr_has(shown);
        assert_eq!(r.stderr.lines().count(), 1, "{r}");
        assert_eq!(r.stdout, "", "{r}");
        assert_eq!(sb.tree(), before, "something was written\n{r}");
    }
}

/// The variables in the Environment section of a job's --help.
fn documented_variables(help: &str) -> Vec<String> {
    let re = Regex::new(r"^  ([A-Z][A-Z_]+) ").unwrap();
    help.lines()
        .skip_while(|l| *l != "Environment:")
        .filter_map(|l| re.captures(l).map(|c| c[1].to_owned()))
        .collect()
}

#[test]
fn dump_database_without_dump_command_is_not_configured() {
    for unset in [None, Some("")] {
        let sb = Sandbox::new("not-configured");
        let dumps = sb.mkdir("dumps");
        let mut c = job("dump-database");
        c.env("DUMP_DIR", &dumps);
        if let Some(v) = unset {
            c.env("DUMP_COMMAND", v);
        }
        let before = sb.tree();
        let r = run(&mut c);
        r.expect(78)
            .stderr_has("DUMP_COMMAND is not set")
            .stderr_has("/etc/default/dump-database");
        assert_eq!(sb.tree(), before, "{r}");
    }
}

#[test]
fn dump_database_needs_an_existing_dump_dir() {
    let sb = Sandbox::new("no-dump-dir");
    let mut c = job("dump-database");
    let missing = sb.path("missing");
    let r = run(c.env("DUMP_DIR", &missing).env("DUMP_COMMAND", "echo data"));
    r.expect(73)
        .stderr_has("DUMP_DIR")
        .stderr_has(&missing.display().to_string());
    assert!(!missing.exists());
}
