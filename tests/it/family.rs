//! A database family is one file: the one below, added to the shipped
//! families here alone, is reached by everything that asks a family. The
//! dump job learns from its command that the stream must be of it; the
//! check recognises it, counts its rows and holds it to its closing line;
//! its manifest and the drill's record name it and read back; the drill
//! picks it from a dump's first bytes and asks for its engine. The drill's
//! table of engines is proved to follow the family's name for its engine
//! in `jobs/dump-database-drill/engine.rs`.

use jobkit::dumpfile::manifest::{self, Check, Manifest, Table, Verdict};
use jobkit::dumpfile::Form;
use jobkit::family::check::{self, Failed, Incomplete, Scanner};
use jobkit::family::{identifier, text, Families, Family, Format, Rows, Tables};
use jobkit::record::drill::{self, Drill, DrillResult, Record};

/// `kvdump`, a key-value store's dump tool: a header line, `BUCKET name`
/// before each bucket's `PUT` lines, and `# kvdump end` last.
struct Kv;

const KV: Format = Format::new(&Kv);

impl Family for Kv {
    fn word(&self) -> &'static str {
        "kv"
    }

    fn tool(&self) -> &'static str {
        "kvdump"
    }

    fn recognise(&self, head: &[u8]) -> bool {
        head.starts_with(b"# kvdump 1\n")
    }

    fn written_by(&self, program: &str, _args: &[String]) -> bool {
        program == "kvdump"
    }

    fn closing(&self) -> Option<&'static str> {
        Some("# kvdump end")
    }

    fn closes(&self, last: &mut dyn Iterator<Item = &str>) -> bool {
        last.next() == Some("# kvdump end")
    }

    fn rows(&self) -> Option<Box<dyn Rows>> {
        Some(Box::new(Puts))
    }

    fn engine(&self) -> &'static str {
        "kv"
    }
}

struct Puts;

impl Rows for Puts {
    fn line(&mut self, line: &[u8], _long: bool, tables: &mut Tables) {
        let line = text(line);
        if let Some(name) = line.strip_prefix("BUCKET ") {
            tables.table(identifier(name, b'"'));
        } else if line.starts_with("PUT ") {
            tables.add(1);
        }
    }
}

const STREAM: &str = "# kvdump 1\nBUCKET users\nPUT a 1\nPUT b 2\nBUCKET \"empty one\"\n\
                      BUCKET users\nPUT c 3\n# kvdump end\n";

fn with_kv() -> Families {
    Families::default().with(&[KV])
}

fn scan(families: Families, command: &[&str], stream: &str) -> Result<check::Checked, Failed> {
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let expected = families.written_by(&command);
    let mut scanner = Scanner::new(families, expected);
    for part in stream.as_bytes().chunks(5) {
        scanner.feed(part);
    }
    scanner.finish()
}

#[test]
fn a_family_added_in_one_place_is_reached_by_the_dump_the_check_the_manifest_and_the_drill() {
    // The dump job: its command says what the stream must be.
    let families = with_kv();
    let command = ["/usr/bin/kvdump".to_owned(), "--all".to_owned()];
    assert_eq!(families.written_by(&command), Some(KV));
    assert_eq!(Families::default().written_by(&command), None);
    assert_eq!(
        families.tools(),
        "pg_dump, pg_dumpall, mariadb-dump, sqlite3 .dump, kvdump"
    );

    // The check: recognised, rows counted, complete.
    let outcome = scan(with_kv(), &["kvdump"], STREAM).unwrap();
    assert_eq!(outcome.format, Some(KV));
    assert_eq!(outcome.check, Check::Complete);
    let tables = outcome.tables.clone().unwrap();
    let counted: Vec<(&str, Option<u64>)> =
        tables.iter().map(|t| (t.table.as_str(), t.rows)).collect();
    assert_eq!(counted, [("users", Some(3)), ("\"empty one\"", Some(0))]);
    // Cut short, it is refused with its own closing line.
    let cut = &STREAM[..STREAM.len() - 5];
    match scan(with_kv(), &["kvdump"], cut) {
        Err(Failed::Incomplete(Incomplete { format, seen })) => {
            assert_eq!(format, KV);
            assert_eq!(format.tool(), "kvdump");
            assert_eq!(check::closing(format), "\"# kvdump end\"");
            assert_eq!(seen, "\"# kvdump\"");
        }
        other => panic!("{other:?}"),
    }
    // Without the family the same stream is unchecked, and the command
    // asks for nothing.
    let unknown = scan(Families::default(), &["kvdump"], STREAM).unwrap();
    assert_eq!((unknown.format, unknown.check), (None, Check::Unchecked));

    // The manifest names it, and reads back with it; without it, the
    // manifest is damaged, as one naming a family the package lacks always was.
    let m = Manifest {
        version: manifest::VERSION,
        dump: "kv-20261121T101500Z.kv.gz".into(),
        form: Form::Gzip,
        read: STREAM.len() as u64,
        stored: 40,
        sha256: "ab".into(),
        content_sha256: None,
        format: outcome.format,
        check: outcome.check,
        tables: outcome.tables,
        verdict: Verdict::Good,
        reason: None,
        accepted: None,
    };
    let json = m.to_json();
    assert!(json.contains("\"format\": \"kv\""), "{json}");
    assert_eq!(families.reading(|| Manifest::from_json(&json)).unwrap(), m);
    let damaged = Manifest::from_json(&json).unwrap_err().to_string();
    assert!(
        damaged.starts_with("unknown variant `kv`, expected one of `postgresql`"),
        "{damaged}"
    );
    assert_eq!(
        m.total_rows(),
        Some(tables.iter().map(|t: &Table| t.rows.unwrap()).sum())
    );

    // The drill: the dump's first bytes say its family, which names the
    // engine; its record names the family and reads back with it.
    let drilled = families.recognise(STREAM.as_bytes()).unwrap();
    assert_eq!(drilled, KV);
    assert_eq!(drilled.engine(), "kv");
    let record = Record {
        version: drill::VERSION,
        started: 1_790_000_000,
        seconds: 1.0,
        result: DrillResult::Passed,
        reason: None,
        last_success: Some(1_790_000_000),
        kind: Drill {
            dump: Some(m.dump.clone()),
            format: Some(drilled),
            server: Some("KV 1.0".into()),
            compared: true,
            tables: Some(2),
            rows: Some(3),
            empty_roles: None,
        },
    };
    let json = jobkit::record::to_json(&record);
    assert!(json.contains("\"format\": \"kv\""), "{json}");
    let read: Record = families.reading(|| serde_json::from_str(&json)).unwrap();
    assert_eq!(read, record);
}
