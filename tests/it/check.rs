//! Only good dumps count: real pg_dump, pg_dumpall, mariadb-dump and sqlite3
//! output cut short fails and changes nothing; whole dumps get a manifest
//! whose row counts and SHA-256 match the source and the file; suspect dumps
//! never push out good ones.

use crate::dump::{contents, dump_job, dumps, postgres_with_shop, published, temps, with_pg};
use crate::harness::{cmd, names, run, sh, Run, Sandbox};
use crate::mariadb::Mariadb;
use crate::postgres::Postgres;
use jobkit::dumpfile::manifest::{Check, Verdict};
use jobkit::dumpfile::{Form, Manifest};
use jobkit::family::{mariadb, postgresql, sqlite};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The manifest of the dump at `path`.
#[track_caller]
fn manifest_of(path: &Path) -> Manifest {
    let (stamp, form) = names("dump")
        .parse(&path.file_name().unwrap().to_string_lossy())
        .expect("a dump's name");
    let file = path.with_file_name(names("dump").manifest(&stamp, form));
    Manifest::from_json(&fs::read_to_string(&file).unwrap()).unwrap()
}

/// The table counts of a manifest, as `(database, table, rows)`.
fn rows(m: &Manifest) -> Vec<(String, String, u64)> {
    m.tables
        .as_ref()
        .expect("the manifest counts tables")
        .iter()
        .map(|t| {
            (
                t.database.clone().unwrap_or_default(),
                t.table.clone(),
                t.rows.expect("every table counted"),
            )
        })
        .collect()
}

/// A cut-short dump fails with exit 1 and says so, and the directory is
/// as it was, with no temp file.
#[track_caller]
fn refused(dir: &Path, c: &mut Command, format: &str) -> Run {
    let before = contents(dir);
    let r = run(c);
    r.expect(1).stderr_has(&format!("it is a {format} dump"));
    assert_eq!(contents(dir), before, "{r}");
    assert!(temps(dir).is_empty(), "{r}");
    r
}

#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn postgres_plain_and_cluster_dumps_cut_short_fail_and_whole_ones_are_counted() {
    let sb = Sandbox::new("check-pg");
    let pg = postgres_with_shop(&sb);
    pg.sql(
        "shop",
        "CREATE SCHEMA s2; CREATE TABLE s2.\"odd name\" (a text)",
    );
    let dir = sb.mkdir("dumps");
    let pg_dump = pg.program("pg_dump").display().to_string();
    let pg_dumpall = pg.program("pg_dumpall").display().to_string();

    let pg_job = |command: &str| {
        let mut c = dump_job(&dir, command);
        with_pg(&mut c, &pg, "postgres");
        c
    };
    let (path, _) = published(&run(&mut pg_job(&format!("{pg_dump} --no-password shop"))));
    let m = manifest_of(&path);
    assert_eq!(
        (m.format, m.check),
        (Some(postgresql::PLAIN), Check::Complete)
    );
    let mut counted = rows(&m);
    counted.sort();
    let mut source: Vec<(String, String, u64)> = pg
        .sql(
            "shop",
            "SELECT schemaname, tablename FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
        )
        .lines()
        .map(|l| {
            let (schema, table) = l.split_once('|').unwrap();
            let quoted = |s: &str| {
                if s.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit())
                {
                    s.to_owned()
                } else {
                    format!("\"{s}\"")
                }
            };
            let name = format!("{}.{}", quoted(schema), quoted(table));
            let n = pg.sql("shop", &format!("SELECT count(*) FROM {name}"));
            (String::new(), name, n.trim().parse().unwrap())
        })
        .collect();
    source.sort();
    assert_eq!(counted, source);
    assert!(counted.iter().any(|(_, _, n)| *n == 6000));

    refused(
        &dir,
        &mut pg_job(&format!(
            "sh -c '{pg_dump} --no-password shop | head -c 100000'"
        )),
        "pg_dump",
    );

    let (path, _) = published(&run(&mut pg_job(&format!("{pg_dumpall} --no-password"))));
    let m = manifest_of(&path);
    assert_eq!(m.format, Some(postgresql::CLUSTER));
    let shop: Vec<_> = rows(&m)
        .into_iter()
        .filter(|(db, ..)| db == "shop")
        .collect();
    assert!(
        shop.contains(&("shop".into(), "public.orders".into(), 6000)),
        "{shop:?}"
    );
    refused(
        &dir,
        &mut pg_job(&format!(
            "sh -c '{pg_dumpall} --no-password | head -c 200000'"
        )),
        "pg_dumpall",
    );

    // The custom format has no closing line: what is checked is that the
    // output of `pg_dump -Fc` is one. A wrapper named pg_dump that prints
    // something else and exits 0 is refused.
    run(pg_job(&format!("{pg_dump} -Fc --no-password shop"))
        .env("DUMP_COMPRESS", "none")
        .env("DUMP_EXTENSION", "dump"))
    .ok();
    let wrapper = sb.mkdir("bin").join("pg_dump");
    fs::write(
        &wrapper,
        "#!/bin/sh\necho 'pg_dump: error: connection refused'\n",
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let before = contents(&dir);
    let r = run(dump_job(&dir, &format!("{} -Fc shop", wrapper.display()))
        .env("DUMP_COMPRESS", "none")
        .env("DUMP_EXTENSION", "dump"));
    r.expect(1)
        .stderr_has("DUMP_COMMAND runs pg_dump -Fc, but its output is not such a dump")
        .stderr_has("pg_dump: error: connection refused");
    assert_eq!(contents(&dir), before, "{r}");
}

#[test]
#[ignore = "starts MariaDB as root: tests/run"]
fn mariadb_dumps_cut_short_fail_and_whole_ones_are_counted() {
    let sb = Sandbox::new("check-mariadb");
    let db = Mariadb::start(&sb);
    db.sql(
        "",
        "CREATE DATABASE shop; USE shop;
         CREATE TABLE t (n int, s text);
         INSERT INTO t VALUES (1, 'a'), (2, 'line\nbreak'), (3, 'it''s');
         CREATE TABLE e (n int);",
    );
    db.sql(
        "shop",
        "CREATE TABLE big (n int); INSERT INTO big SELECT seq FROM seq_1_to_5000;",
    );
    let dir = sb.mkdir("dumps");
    let dump = format!(
        "mariadb-dump --no-defaults --socket={} --user=root shop",
        db.socket.display()
    );
    let (path, _) = published(&run(&mut dump_job(&dir, &dump)));
    let m = manifest_of(&path);
    assert_eq!(
        (m.format, m.check),
        (Some(mariadb::MARIADB), Check::Complete)
    );
    let mut counted = rows(&m);
    counted.sort();
    let mut source: Vec<(String, String, u64)> = ["big", "e", "t"]
        .iter()
        .map(|t| {
            let n = db.sql("shop", &format!("SELECT count(*) FROM {t}"));
            (String::new(), format!("`{t}`"), n.trim().parse().unwrap())
        })
        .collect();
    source.sort();
    assert_eq!(counted, source);
    refused(
        &dir,
        &mut dump_job(&dir, &format!("sh -c '{dump} | head -c 3000'")),
        "mariadb-dump",
    );
}

#[test]
fn sqlite_dumps_cut_short_fail_and_whole_ones_are_counted_and_hashed_in_every_form() {
    let sb = Sandbox::new("check-sqlite");
    let db = sb.path("app.db");
    sh(&format!(
        "sqlite3 '{}' \"CREATE TABLE t (n int, s text); \
         INSERT INTO t VALUES (1, 'a'), (2, 'multi' || char(10) || 'line'), (3, 'it''s'); \
         CREATE TABLE e (n int); CREATE TABLE \\\"odd name\\\" (a); \
         INSERT INTO \\\"odd name\\\" VALUES (x'00ff'); \
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 4000) \
         INSERT INTO t SELECT i + 3, 'row ' || i FROM c;\"",
        db.display()
    ));
    let dir = sb.mkdir("dumps");
    let dump = format!("sqlite3 -readonly {} .dump", db.display());
    for form in Form::ALL {
        let (path, _) = published(&run(
            dump_job(&dir, &dump).env("DUMP_COMPRESS", form.setting())
        ));
        let m = manifest_of(&path);
        assert_eq!((m.format, m.check), (Some(sqlite::SQLITE), Check::Complete));
        assert_eq!(m.form, form);
        assert_eq!(m.verdict, Verdict::Good);
        assert_eq!(
            rows(&m),
            [
                (String::new(), "t".into(), 4003),
                (String::new(), "e".into(), 0),
                (String::new(), "\"odd name\"".into(), 1),
            ]
        );
        let sum = run(cmd("sha256sum").arg(&path)).ok().stdout.clone();
        assert_eq!(sum.split(' ').next().unwrap(), m.sha256, "{form}");
        assert_eq!(m.stored, fs::metadata(&path).unwrap().len());
        assert_eq!(m.dump, path.file_name().unwrap().to_string_lossy());
    }
    for count in [
        "SELECT count(*) FROM t",
        "SELECT count(*) FROM \"odd name\"",
    ] {
        let n = sh(&format!("sqlite3 '{}' '{count}'", db.display()));
        assert!(["4003\n", "1\n"].contains(&n.as_str()), "{n}");
    }
    refused(
        &dir,
        &mut dump_job(&dir, &format!("sh -c '{dump} | head -c 30000'")),
        "sqlite3 .dump",
    );
    // Output of no known format is published, unchecked; DUMP_CHECK=off
    // neither checks nor counts.
    let (path, _) = published(&run(
        dump_job(&dir, "echo some rows").env("DUMP_SHRINK_LIMIT", "0")
    ));
    let m = manifest_of(&path);
    assert_eq!(
        (m.format, m.check, m.tables),
        (None, Check::Unchecked, None)
    );
    let (path, _) = published(&run(dump_job(
        &dir,
        &format!("sh -c '{dump} | head -c 30000'"),
    )
    .env("DUMP_CHECK", "off")
    .env("DUMP_SHRINK_LIMIT", "0")));
    assert_eq!(manifest_of(&path).check, Check::Off);
}

/// The dumps of `dir` whose manifests say `verdict`, oldest first; those
/// without a manifest that reads say nothing.
fn with_verdict(dir: &Path, verdict: Verdict) -> Vec<String> {
    dumps(dir)
        .into_iter()
        .filter(|d| {
            let path = dir.join(d);
            let (stamp, form) = names("dump").parse(d).unwrap();
            let file = path.with_file_name(names("dump").manifest(&stamp, form));
            fs::read_to_string(file)
                .ok()
                .and_then(|text| Manifest::from_json(&text).ok())
                .is_some_and(|m| m.verdict == verdict)
        })
        .collect()
}

/// A job dumping the database `shop` of `pg` with `pg_dump` into `dir`,
/// keeping 3.
fn shop_job<'a>(dir: &'a Path, pg: &'a Postgres) -> impl Fn() -> Command + 'a {
    move || {
        let command = format!("{} --no-password shop", pg.program("pg_dump").display());
        let mut c = dump_job(dir, &command);
        c.env("DUMP_KEEP", "3");
        with_pg(&mut c, pg, "postgres");
        c
    }
}

#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn an_emptied_database_never_pushes_out_a_good_dump() {
    let sb = Sandbox::new("check-suspect");
    let pg = postgres_with_shop(&sb);
    let dir = sb.mkdir("dumps");
    let job = shop_job(&dir, &pg);
    let good: Vec<PathBuf> = (0..3).map(|_| published(&run(&mut job())).0).collect();
    // A wrong DUMP_COMMAND edit or a failed migration: every row gone.
    pg.sql("shop", "TRUNCATE orders, customers");
    for i in 0..5 {
        let r = run(&mut job());
        r.expect(65)
            .stderr_has("was published as suspect")
            .stderr_has("its raw size");
        assert!(
            good.iter().all(|g| g.exists()),
            "run {i}: a good dump is gone\n{r}"
        );
        assert_eq!(
            with_verdict(&dir, Verdict::Suspect).len(),
            (i + 1).min(3),
            "{r}"
        );
    }
    // Rows gone but the size kept up (a large schema): the row rule.
    let r = run(job().env("DUMP_SHRINK_LIMIT", "0"));
    r.expect(65).stderr_has("its tables hold no rows");
    assert_eq!(with_verdict(&dir, Verdict::Good).len(), 3, "{r}");
    assert!(good.iter().all(|g| g.exists()), "{r}");
}

/// The ways a manifest is lost: overwritten with the start of one, as an
/// interrupted editor or a full disk leaves it, or removed.
const LOSSES: [&str; 2] = ["damaged", "deleted"];

/// Loses the manifest of the dump at `path` the way `loss` names.
fn lose_manifest(path: &Path, loss: &str) {
    let (stamp, form) = names("dump")
        .parse(&path.file_name().unwrap().to_string_lossy())
        .unwrap();
    let manifest = path.with_file_name(names("dump").manifest(&stamp, form));
    match loss {
        "damaged" => fs::write(&manifest, "{ \"version\": 1,").unwrap(),
        _ => fs::remove_file(&manifest).unwrap(),
    }
}

/// Three good dumps, the newest one's manifest lost, then every row gone:
/// every later run exits 65, and no good dump is lost. Before, the lost
/// manifest left the guard nothing to compare with, the empty dumps
/// counted as good and pushed the real ones out.
#[track_caller]
fn a_lost_manifest_keeps_the_guard_on(
    dir: &Path,
    loss: &str,
    job: &dyn Fn() -> Command,
    empty: &dyn Fn(),
) {
    let good: Vec<PathBuf> = (0..3).map(|_| published(&run(&mut job())).0).collect();
    lose_manifest(&good[2], loss);
    empty();
    for i in 0..4 {
        let r = run(&mut job());
        r.expect(65).stderr_has("was published as suspect");
        assert!(
            good.iter().all(|g| g.exists()),
            "{loss}, run {i}: a good dump is gone\n{r}"
        );
    }
    assert_eq!(with_verdict(dir, Verdict::Good).len(), 2, "{loss}");
    assert_eq!(with_verdict(dir, Verdict::Suspect).len(), 3, "{loss}");
}

#[test]
fn a_damaged_or_deleted_manifest_never_switches_the_guard_off() {
    for loss in LOSSES {
        let sb = Sandbox::new(&format!("lost-manifest-{loss}"));
        let db = sb.path("app.db");
        sh(&format!(
            "sqlite3 '{}' 'CREATE TABLE t (n int, s text); \
             WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) \
             INSERT INTO t SELECT i, printf(\"row %d\", i) FROM c;'",
            db.display()
        ));
        let dir = sb.mkdir("dumps");
        let command = format!("sqlite3 -readonly {} .dump", db.display());
        let job = || {
            let mut c = dump_job(&dir, &command);
            c.env("DUMP_KEEP", "3");
            c
        };
        let empty = || {
            sh(&format!("sqlite3 '{}' 'DELETE FROM t'", db.display()));
        };
        a_lost_manifest_keeps_the_guard_on(&dir, loss, &job, &empty);
    }
}

/// The same on PostgreSQL, where the audit found it.
#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn a_damaged_or_deleted_manifest_never_switches_the_guard_off_on_postgresql() {
    for loss in LOSSES {
        let sb = Sandbox::new(&format!("pg-lost-manifest-{loss}"));
        let pg = postgres_with_shop(&sb);
        let dir = sb.mkdir("dumps");
        let job = shop_job(&dir, &pg);
        let empty = || {
            pg.sql("shop", "TRUNCATE orders, customers");
        };
        a_lost_manifest_keeps_the_guard_on(&dir, loss, &job, &empty);
    }
}

/// Sets the rows of table `t` in the SQLite database `db` to `rows`, each
/// with a text of `width` characters.
fn rows_of(db: &Path, rows: u32, width: u32) {
    sh(&format!(
        "sqlite3 '{}' 'DROP TABLE IF EXISTS t; CREATE TABLE t (n int, s text); \
         WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows}) \
         INSERT INTO t SELECT i, printf(\"%0{width}d\", i) FROM c;'",
        db.display()
    ));
}

/// Rows go 2000, 1100, 600, 330, 180, 100, each above half the one before:
/// compared with the largest good dump kept, the 600-row dump is suspect,
/// and the 2000-row dump stays, beyond DUMP_KEEP=3.
#[test]
fn a_slow_shrink_is_still_a_loss() {
    let sb = Sandbox::new("slow-shrink");
    let db = sb.path("app.db");
    let dir = sb.mkdir("dumps");
    let command = format!("sqlite3 -readonly {} .dump", db.display());
    let mut published_in_order: Vec<(u32, PathBuf)> = Vec::new();
    for rows in [2000, 1100, 600, 330, 180, 100] {
        rows_of(&db, rows, 8);
        let r = run(dump_job(&dir, &command).env("DUMP_KEEP", "3"));
        let newest = dumps(&dir).pop().unwrap();
        let m = manifest_of(&dir.join(&newest));
        assert_eq!(m.total_rows(), Some(u64::from(rows)), "{r}");
        published_in_order.push((rows, dir.join(&newest)));
        let first = published_in_order[0]
            .1
            .file_name()
            .unwrap()
            .to_string_lossy();
        if rows >= 1100 {
            published(&r);
            assert_eq!(m.verdict, Verdict::Good, "{rows} rows\n{r}");
        } else {
            r.expect(65)
                .stderr_has("was published as suspect")
                .stderr_has(&format!("of the largest good dump kept, {first}"));
            assert_eq!(m.verdict, Verdict::Suspect, "{rows} rows\n{r}");
        }
        for (kept_rows, path) in published_in_order.iter().take(2) {
            assert!(
                path.exists(),
                "the {kept_rows}-row dump is gone after {rows}\n{r}"
            );
        }
    }
    assert_eq!(
        with_verdict(&dir, Verdict::Good),
        published_in_order[..2]
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
    );
}

/// Rows gone while the raw size keeps up (wider rows): the row count is
/// compared with the good dump with the most rows.
#[test]
fn fewer_rows_are_a_loss_whatever_the_size() {
    let sb = Sandbox::new("fewer-rows");
    let db = sb.path("app.db");
    let dir = sb.mkdir("dumps");
    let command = format!("sqlite3 -readonly {} .dump", db.display());
    rows_of(&db, 2000, 8);
    let (first, _) = published(&run(&mut dump_job(&dir, &command)));
    rows_of(&db, 900, 100);
    let r = run(&mut dump_job(&dir, &command));
    r.expect(65).stderr_has(&format!(
        "its tables hold 900 rows, below DUMP_SHRINK_LIMIT=50% of the 2000 rows of the good \
         dump kept with the most, {}",
        first.file_name().unwrap().to_string_lossy()
    ));
    let sizes: Vec<u64> = dumps(&dir)
        .iter()
        .map(|d| manifest_of(&dir.join(d)).read)
        .collect();
    assert!(sizes[1] >= sizes[0], "the raw size kept up: {sizes:?}");
}
