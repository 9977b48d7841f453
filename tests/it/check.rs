//! Only good dumps count: real pg_dump, pg_dumpall, mariadb-dump and sqlite3
//! output cut short fails and changes nothing; whole dumps get a manifest
//! whose row counts and SHA-256 match the source and the file; suspect dumps
//! never push out good ones.

use crate::dump::{contents, dump_job, dumps, postgres_with_shop, published, temps, with_pg};
use crate::harness::{cmd, names, run, sh, Run, Sandbox};
use crate::mariadb::Mariadb;
use jobkit::dumpfile::manifest::{Check, Format, Verdict};
use jobkit::dumpfile::{Form, Manifest};
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
        (Some(Format::Postgresql), Check::Complete)
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
    assert_eq!(m.format, Some(Format::PostgresqlCluster));
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
        (Some(Format::Mariadb), Check::Complete)
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
        assert_eq!((m.format, m.check), (Some(Format::Sqlite), Check::Complete));
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

/// The dumps of `dir` whose manifests say `verdict`, oldest first.
fn with_verdict(dir: &Path, verdict: Verdict) -> Vec<String> {
    dumps(dir)
        .into_iter()
        .filter(|d| manifest_of(&dir.join(d)).verdict == verdict)
        .collect()
}

#[test]
#[ignore = "starts PostgreSQL: tests/run"]
fn an_emptied_database_never_pushes_out_a_good_dump() {
    let sb = Sandbox::new("check-suspect");
    let pg = postgres_with_shop(&sb);
    let dir = sb.mkdir("dumps");
    let command = format!("{} --no-password shop", pg.program("pg_dump").display());
    let job = || {
        let mut c = dump_job(&dir, &command);
        c.env("DUMP_KEEP", "3");
        with_pg(&mut c, &pg, "postgres");
        c
    };
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
