//! The guard between a PostgreSQL dump and the `psql` that restores it in a
//! drill: every statement runs with the rights of the role that owned its
//! object in the dump, never more.
//!
//! `SET SESSION AUTHORIZATION`, as `pg_restore --use-set-session-authorization`
//! uses it, is no boundary: a session that a superuser opened can take its
//! rights back (`RESET SESSION AUTHORIZATION`) from inside any function the
//! dump runs, a `CHECK` constraint's for one. So each owner's statements
//! go through a session that logged in as that owner: the guard switches
//! psql's connection (`\connect`) at the header pg_dump writes before each
//! object (`-- Name: …; Type: …; Schema: …; Owner: app`). The roles of a
//! plain dump are made as plain roles (never superusers, whatever their
//! name), and the drill's own superuser has a random name that no dump
//! names.
//!
//! The superuser runs only statements the guard wrote itself, from names
//! and literals it parsed: making roles, extensions and databases, handing
//! a schema or database to its owner, and the roles section of a cluster
//! dump (where `SUPERUSER` makes a role what it was in the source). Owners
//! may create objects in the throwaway database and its schemas, and
//! reference each other's tables, as restoring needs before the dump's
//! grants come at its end.
//!
//! psql runs none of the dump's own backslash commands: the guard starts it
//! restricted (`\restrict`, with a key the dump cannot know, fresh at every
//! switch) and refuses a dump that holds one; the `\connect` lines of a
//! cluster dump are written anew. Each switch first empties psql's query
//! buffer (`\r`), so that nothing of one session's statement reaches the
//! next. The data of a `COPY` is passed through untouched.

use crate::engine;
use crate::pglex::{Lexer, Stop};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

/// The longest statement the guard reads whole before it decides where it
/// runs; a longer one (a huge `INSERT` of `pg_dump --inserts`) streams to
/// its entry's owner as it is.
const WHOLE: usize = 4 << 20;

/// A role, database or other name, as the dump's encoding has it.
type Name = Vec<u8>;

/// The role a session logs in as.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Who {
    /// The drill's own superuser: only statements the guard wrote.
    Boot,
    Role(Name),
}

/// The owner of the dump's current entry, by its header.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owner {
    /// Before the first header since the dump connected: its settings.
    Outside,
    /// An entry without an owner (`Owner: -`): extensions, casts.
    Nobody,
    Role(Name),
}

/// The drill's own roles, made before the restore.
pub struct Names {
    /// The bootstrap superuser, named at random.
    pub boot: String,
    /// A plain role that owns the throwaway databases and stands in for
    /// entries without an owner.
    pub standin: String,
}

/// Client encodings in which a byte of a multibyte character can look like
/// a quote or a backslash; no server can store them, so pg_dump writes
/// none of them unless told to.
const UNSAFE_ENCODINGS: [&str; 7] = [
    "SJIS",
    "SHIFT_JIS_2004",
    "BIG5",
    "GBK",
    "UHC",
    "GB18030",
    "JOHAB",
];

/// Roles whose members run programs or read and write the server's files:
/// never granted in a drill.
const SERVER_FILE_ROLES: [&[u8]; 3] = [
    b"pg_execute_server_program",
    b"pg_read_server_files",
    b"pg_write_server_files",
];

pub struct Guard<W: Write> {
    out: W,
    boot: Name,
    standin: Name,
    /// The `\restrict` key in force.
    key: String,
    /// In a cluster dump's roles section, before its first `\connect`.
    globals: bool,
    /// The database the dump is in.
    db: Name,
    /// Where psql is connected, and as whom.
    at: (Name, Who),
    owner: Owner,
    /// The session settings the dump made in this database, replayed in
    /// every new session: `SET name = …;` by name.
    settings: Vec<(Vec<u8>, Vec<u8>)>,
    encoding: Option<Name>,
    roles: HashSet<Name>,
    /// Databases whose owners may create in them and in `public`.
    prepared: HashSet<Name>,
    /// (database, role) whose tables others may reference.
    defaults: HashSet<(Name, Name)>,
    db_owners: HashMap<Name, Name>,
    lexer: Lexer,
    statement: Vec<u8>,
    /// A statement longer than [`WHOLE`] going out as it comes.
    streaming: bool,
    /// In the data of a `COPY … FROM stdin`.
    copy: bool,
    line: Vec<u8>,
    refused: Option<String>,
}

fn refusal(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// A key for `\restrict`: letters and digits only, unguessable.
pub fn random_word(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        // SAFETY: getrandom writes at most the length given into the buffer.
        let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), len - filled, 0) };
        if n > 0 {
            filled += n as usize;
        }
    }
    // 252 is a multiple of 36: no letter is likelier than another.
    bytes
        .iter_mut()
        .map(|b| {
            while *b >= 252 {
                let mut again = [0u8; 1];
                // SAFETY: as above, one byte.
                unsafe { libc::getrandom(again.as_mut_ptr().cast(), 1, 0) };
                *b = again[0];
            }
            ALPHABET[usize::from(*b) % 36] as char
        })
        .collect()
}

/// `name` quoted as an SQL identifier.
fn ident(name: &[u8]) -> Vec<u8> {
    let mut q = vec![b'"'];
    for &b in name {
        if b == b'"' {
            q.push(b'"');
        }
        q.push(b);
    }
    q.push(b'"');
    q
}

/// `text` quoted as an SQL string (standard_conforming_strings on, which
/// every session of the drill has).
fn literal(text: &[u8]) -> Vec<u8> {
    let mut q = vec![b'\''];
    for &b in text {
        if b == b'\'' {
            q.push(b'\'');
        }
        q.push(b);
    }
    q.push(b'\'');
    q
}

fn lossy(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

/// `\connect`'s argument for `db` as `role`: a connection string in
/// psql's double quotes.
fn connect_arg(db: &[u8], role: &[u8]) -> Vec<u8> {
    let value = |v: &[u8]| {
        let mut q = vec![b'\''];
        for &b in v {
            if b == b'\'' || b == b'\\' {
                q.push(b'\\');
            }
            q.push(b);
        }
        q.push(b'\'');
        q
    };
    let mut conninfo = b"dbname=".to_vec();
    conninfo.extend(value(db));
    conninfo.extend(b" user=");
    conninfo.extend(value(role));
    ident(&conninfo)
}

impl<W: Write> Guard<W> {
    /// A guard writing to `out`, a psql connected to `db` as the drill's
    /// superuser; `cluster` for a pg_dumpall dump, whose roles section
    /// comes first. The databases in `prepared` already let every role
    /// create in them.
    pub fn new(
        mut out: W,
        names: &Names,
        db: &str,
        cluster: bool,
        prepared: &[&str],
    ) -> io::Result<Guard<W>> {
        let key = random_word(32);
        writeln!(out, "\\restrict {key}")?;
        let (boot, standin) = (names.boot.as_bytes(), names.standin.as_bytes());
        Ok(Guard {
            out,
            boot: boot.to_vec(),
            standin: standin.to_vec(),
            key,
            globals: cluster,
            db: db.as_bytes().to_vec(),
            at: (db.as_bytes().to_vec(), Who::Boot),
            owner: Owner::Outside,
            settings: Vec::new(),
            encoding: None,
            roles: [boot.to_vec(), standin.to_vec()].into(),
            prepared: prepared.iter().map(|d| d.as_bytes().to_vec()).collect(),
            defaults: HashSet::new(),
            db_owners: HashMap::new(),
            lexer: Lexer::new(),
            statement: Vec::new(),
            streaming: false,
            copy: false,
            line: Vec::new(),
            refused: None,
        })
    }

    fn refuse(&mut self, message: String) -> io::Error {
        self.refused = Some(message.clone());
        refusal(message)
    }

    /// One whole line of the dump.
    fn take(&mut self, line: &[u8]) -> io::Result<()> {
        if self.copy {
            if line == b"\\.\n" || line == b"\\.\r\n" {
                self.copy = false;
            }
            return self.out.write_all(line);
        }
        if self.lexer.between() {
            self.statement.clear();
            let text = line.trim_ascii_start();
            if text.starts_with(b"\\") {
                return self.command(text.trim_ascii_end());
            }
            if let Some(owner) = header(line) {
                self.owner = owner;
                return Ok(());
            }
        }
        let mut rest = line;
        loop {
            match self.lexer.scan(rest) {
                Stop::End(n) => {
                    self.push(&rest[..n])?;
                    self.end()?;
                    rest = &rest[n..];
                    if self.copy {
                        if !rest.trim_ascii().is_empty() {
                            return Err(self.refuse(format!(
                                "the dump has text after a COPY statement on its line: {}",
                                lossy(rest.trim_ascii())
                            )));
                        }
                        return Ok(());
                    }
                }
                Stop::Backslash(n) => {
                    let command = rest[n..].trim_ascii_end().to_vec();
                    return Err(self.meta(&command));
                }
                Stop::More => return self.push(rest),
            }
        }
    }

    fn meta(&mut self, command: &[u8]) -> io::Error {
        let shown: String = lossy(command).chars().take(60).collect();
        self.refuse(format!(
            "the dump holds the psql command {shown:?}, and a drill runs none of a dump's \
             commands"
        ))
    }

    /// A backslash command between statements: the dump's own `\restrict`
    /// lines are dropped, `\connect` is followed, any other refused.
    fn command(&mut self, text: &[u8]) -> io::Result<()> {
        let word_end = text
            .iter()
            .position(|b| b.is_ascii_whitespace())
            .unwrap_or(text.len());
        let (word, args) = (&text[..word_end], text[word_end..].trim_ascii());
        match word {
            b"\\restrict" | b"\\unrestrict" => Ok(()),
            b"\\connect" | b"\\c" => match connect_target(args) {
                Some(db) => {
                    self.globals = false;
                    self.db = db;
                    self.settings.clear();
                    self.owner = Owner::Outside;
                    Ok(())
                }
                None => Err(self.meta(text)),
            },
            _ => Err(self.meta(text)),
        }
    }

    /// Part of a statement: kept until it ends, or sent on once it is too
    /// long to keep.
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.streaming {
            return self.out.write_all(bytes);
        }
        self.statement.extend_from_slice(bytes);
        if self.statement.len() > WHOLE {
            if self.globals {
                return Err(self.refuse(
                    "a statement of the cluster dump's roles section is longer than 4 MiB".into(),
                ));
            }
            let who = self.owner_role()?;
            self.enter(&who, &[])?;
            let text = std::mem::take(&mut self.statement);
            self.out.write_all(&text)?;
            self.streaming = true;
        }
        Ok(())
    }

    /// A statement has ended.
    fn end(&mut self) -> io::Result<()> {
        if self.streaming {
            self.streaming = false;
            return self.out.write_all(b"\n");
        }
        let text = std::mem::take(&mut self.statement);
        let tokens = tokens(&text);
        if self.globals {
            return self.global(&tokens, &text);
        }
        match shape(&tokens, self.owner == Owner::Nobody) {
            Shape::Dropped => Ok(()),
            Shape::Boot { sql, roles, owns } => {
                if let Some((db, role)) = owns {
                    self.db_owners.insert(db, role);
                }
                self.as_boot(&roles, &sql)
            }
            Shape::Owned(owned) => self.owned(&text, owned),
        }
    }

    /// A statement run by its entry's owner, as written.
    fn owned(&mut self, text: &[u8], owned: Owned) -> io::Result<()> {
        if let Some((name, value)) = &owned.setting {
            self.setting(name, value)?;
        }
        let who = self.owner_role()?;
        self.enter(&who, &owned.roles)?;
        self.out.write_all(text.trim_ascii())?;
        self.out.write_all(b"\n")?;
        if let Some(schema) = &owned.schema {
            // Whoever owns objects in it must be able to make them.
            self.out.write_all(b"GRANT CREATE, USAGE ON SCHEMA ")?;
            self.out.write_all(&ident(schema))?;
            self.out.write_all(b" TO PUBLIC;\n")?;
        }
        if let Some((name, _)) = owned.setting {
            self.settings.retain(|(n, _)| *n != name);
            self.settings.push((name, text.trim_ascii().to_vec()));
        }
        self.copy = owned.copy;
        Ok(())
    }

    /// Checks a session setting the dump makes: its encoding must be one
    /// the guard can read, and strings standard.
    fn setting(&mut self, name: &[u8], value: &[u8]) -> io::Result<()> {
        match name {
            b"client_encoding" => {
                let upper = lossy(value).to_ascii_uppercase();
                if UNSAFE_ENCODINGS.contains(&upper.as_str()) {
                    return Err(self.refuse(format!(
                        "the dump is in the client encoding {upper}, in which the drill cannot \
                         tell its statements apart; dump it in the database's own encoding"
                    )));
                }
                self.encoding = Some(value.to_vec());
            }
            b"standard_conforming_strings" if !value.eq_ignore_ascii_case(b"on") => {
                return Err(self.refuse(
                    "the dump sets standard_conforming_strings off, as only pg_dump before 9.1 \
                     did; the drill restores dumps of a newer pg_dump"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// The role the current entry runs as.
    fn owner_role(&mut self) -> io::Result<Who> {
        match &self.owner {
            Owner::Outside | Owner::Nobody => Ok(Who::Role(self.standin.clone())),
            Owner::Role(r) if r == b"pg_database_owner" => Ok(Who::Role(
                self.db_owners
                    .get(&self.db)
                    .unwrap_or(&self.standin)
                    .clone(),
            )),
            Owner::Role(r) if r.starts_with(b"pg_") => {
                let r = lossy(r);
                Err(self.refuse(format!(
                    "the dump has objects owned by the predefined role {r}, as whom the drill \
                     restores nothing"
                )))
            }
            Owner::Role(r) => Ok(Who::Role(r.clone())),
        }
    }

    /// A statement of a cluster dump's roles section: each is rewritten
    /// for the drill's superuser, or refused.
    fn global(&mut self, tokens: &[Token], text: &[u8]) -> io::Result<()> {
        if let Some((name, value)) = set_statement(tokens) {
            return self.setting(&name, &value);
        }
        match global_shape(tokens) {
            Some((roles, sql)) => self.as_boot(&roles, &sql),
            None => {
                let shown: String = lossy(text.trim_ascii()).chars().take(80).collect();
                let what = if tokens.starts_with(&[word("create"), word("tablespace")]) {
                    "a tablespace, whose directory is the production server's"
                } else {
                    "a statement the drill does not restore"
                };
                Err(self.refuse(format!(
                    "the cluster dump's roles section makes {what}: {shown}"
                )))
            }
        }
    }

    /// Runs the guard's own `sql` as the drill's superuser, once `roles`
    /// exist.
    fn as_boot(&mut self, roles: &[Name], sql: &[Vec<u8>]) -> io::Result<()> {
        let mut setup = Vec::new();
        for role in roles {
            self.role_setup(role, &mut setup);
        }
        let db = self.db.clone();
        self.connect(&db, &Who::Boot)?;
        for s in setup.iter().chain(sql) {
            self.out.write_all(s)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// What the superuser runs before `role` may be used: making it.
    fn role_setup(&mut self, role: &[u8], setup: &mut Vec<Vec<u8>>) {
        if role.starts_with(b"pg_") || !self.roles.insert(role.to_vec()) {
            return;
        }
        let mut s = b"CREATE ROLE ".to_vec();
        s.extend(ident(role));
        s.extend(b" NOSUPERUSER LOGIN;");
        setup.push(s);
    }

    /// Switches psql to a session of `who` in the dump's database; first
    /// makes `roles` and `who`, and lets `who` create and reference there.
    fn enter(&mut self, who: &Who, roles: &[Name]) -> io::Result<()> {
        let db = self.db.clone();
        let mut setup = Vec::new();
        for role in roles {
            self.role_setup(role, &mut setup);
        }
        if let Who::Role(role) = who {
            self.role_setup(role, &mut setup);
            if self.prepared.insert(db.clone()) {
                let mut s = b"GRANT CREATE ON DATABASE ".to_vec();
                s.extend(ident(&db));
                s.extend(b" TO PUBLIC;");
                setup.push(s);
                setup.push(b"GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;".to_vec());
            }
            if self.defaults.insert((db.clone(), role.clone())) {
                let mut s = b"ALTER DEFAULT PRIVILEGES FOR ROLE ".to_vec();
                s.extend(ident(role));
                s.extend(b" GRANT REFERENCES ON TABLES TO PUBLIC;");
                setup.push(s);
            }
        }
        if !setup.is_empty() {
            self.connect(&db, &Who::Boot)?;
            for s in &setup {
                self.out.write_all(s)?;
                self.out.write_all(b"\n")?;
            }
        }
        self.connect(&db, who)
    }

    /// Reconnects psql to `db` as `who`, unless it is there: lifts the
    /// restriction with its key, empties the query buffer, connects and
    /// restricts again with a new key; then replays the dump's settings
    /// (for the superuser, only its encoding).
    fn connect(&mut self, db: &[u8], who: &Who) -> io::Result<()> {
        if self.at.0 == db && self.at.1 == *who {
            return Ok(());
        }
        let role = match who {
            Who::Boot => self.boot.clone(),
            Who::Role(r) => r.clone(),
        };
        if let Some(bad) = [db, &role]
            .into_iter()
            .find(|n| n.iter().any(|&b| b < 0x20 || b == 0x7f))
        {
            let bad = lossy(bad);
            return Err(self.refuse(format!(
                "the dump names {bad:?}, with a control character the drill cannot connect as"
            )));
        }
        let key = random_word(32);
        write!(
            self.out,
            "\\unrestrict {}\n\\r\n\\connect -reuse-previous=on ",
            self.key
        )?;
        self.out.write_all(&connect_arg(db, &role))?;
        write!(self.out, "\n\\restrict {key}\n")?;
        self.key = key;
        self.at = (db.to_vec(), who.clone());
        match who {
            Who::Boot => {
                if let Some(encoding) = &self.encoding {
                    self.out.write_all(b"SET client_encoding = ")?;
                    self.out.write_all(&literal(encoding))?;
                    self.out.write_all(b";\n")?;
                }
            }
            Who::Role(_) => {
                for (_, s) in &self.settings {
                    self.out.write_all(s)?;
                    self.out.write_all(b"\n")?;
                }
            }
        }
        Ok(())
    }
}

impl<W: Write> Write for Guard<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(r) = &self.refused {
            return Err(refusal(r.clone()));
        }
        let mut partial = std::mem::take(&mut self.line);
        let taken = engine::each_line(&mut partial, buf, |line| self.take(line));
        self.line = partial;
        taken.map(|()| buf.len())
    }

    /// The end of the dump: a last line without its newline is read, and
    /// a statement left open refused.
    fn flush(&mut self) -> io::Result<()> {
        if let Some(r) = &self.refused {
            return Err(refusal(r.clone()));
        }
        if !self.line.is_empty() {
            let mut line = std::mem::take(&mut self.line);
            line.push(b'\n');
            self.take(&line)?;
        }
        if self.copy || !self.lexer.between() {
            return Err(self.refuse("the dump ends inside a statement".into()));
        }
        self.out.flush()
    }
}

/// The owner a pg_dump entry's header names:
/// `-- Name: N; Type: T; Schema: S; Owner: O[; Tablespace: X]`, or
/// `-- Data for Name: …`. Names before the owner are the dump's own text
/// and may hold `; Owner: `: the owner is what follows the last one.
fn header(line: &[u8]) -> Option<Owner> {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if !(text.starts_with(b"-- Name: ") || text.starts_with(b"-- Data for Name: ")) {
        return None;
    }
    const OWNER: &[u8] = b"; Owner: ";
    let at = memchr::memmem::rfind(text, OWNER)?;
    let mut owner = &text[at + OWNER.len()..];
    if let Some(end) = memchr::memmem::find(owner, b"; Tablespace: ") {
        owner = &owner[..end];
    }
    Some(match owner {
        b"" | b"-" => Owner::Nobody,
        o => Owner::Role(o.to_vec()),
    })
}

/// The database of a pg_dump `\connect` line's argument: `name`,
/// `"Name"`, or `-reuse-previous=on "dbname='…'"`.
fn connect_target(args: &[u8]) -> Option<Name> {
    let unquote = |a: &[u8]| -> Option<Name> {
        let inner = a.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
        let mut out = Vec::new();
        let mut i = 0;
        while i < inner.len() {
            if inner[i] == b'"' {
                if inner.get(i + 1) != Some(&b'"') {
                    return None;
                }
                i += 1;
            }
            out.push(inner[i]);
            i += 1;
        }
        Some(out)
    };
    if let Some(rest) = args.strip_prefix(b"-reuse-previous=on ") {
        let conninfo = unquote(rest.trim_ascii())?;
        let value = conninfo.strip_prefix(b"dbname=")?;
        let Some(quoted) = value.strip_prefix(b"'") else {
            return (!value.is_empty() && !value.iter().any(u8::is_ascii_whitespace))
                .then(|| value.to_vec());
        };
        let mut out = Vec::new();
        let mut i = 0;
        while i < quoted.len() {
            match quoted[i] {
                b'\\' => {
                    out.push(*quoted.get(i + 1)?);
                    i += 2;
                }
                b'\'' => return (i + 1 == quoted.len()).then_some(out),
                b => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        return None;
    }
    if args.starts_with(b"\"") {
        return unquote(args);
    }
    (!args.is_empty()
        && args
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$'))
    .then(|| args.to_vec())
}

/// A token of a statement, as the guard needs them to tell its shape.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    /// An unquoted word, lower case.
    Word(Vec<u8>),
    /// A quoted identifier, unquoted.
    Quoted(Name),
    /// A standard string, unquoted.
    Str(Vec<u8>),
    Number(Vec<u8>),
    Punct(u8),
    /// Anything the guard never rewrites: `E'…'`, `$$…$$`, bit strings.
    Other,
}

fn word(w: &str) -> Token {
    Token::Word(w.as_bytes().to_vec())
}

/// The tokens of one whole statement; comments left out.
fn tokens(s: &[u8]) -> Vec<Token> {
    let mut found = Vec::new();
    let mut i = 0;
    // The text of a quoted run from `s[start]` (the quote), doubled
    // quotes undone; and where it ends.
    let quoted = |start: usize, quote: u8| -> (Vec<u8>, usize) {
        let mut text = Vec::new();
        let mut j = start + 1;
        while j < s.len() {
            if s[j] == quote {
                if s.get(j + 1) == Some(&quote) {
                    text.push(quote);
                    j += 2;
                    continue;
                }
                return (text, j + 1);
            }
            text.push(s[j]);
            j += 1;
        }
        (text, j)
    };
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_whitespace() {
            i += 1;
        } else if s[i..].starts_with(b"--") {
            i += memchr::memchr(b'\n', &s[i..]).unwrap_or(s.len() - i);
        } else if s[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < s.len() {
                if s[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if s[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b == b'\'' {
            let (text, end) = quoted(i, b'\'');
            found.push(Token::Str(text));
            i = end;
        } else if b == b'"' {
            let (text, end) = quoted(i, b'"');
            found.push(Token::Quoted(text));
            i = end;
        } else if b == b'$' {
            match dollar_end(&s[i..]) {
                Some(len) => {
                    found.push(Token::Other);
                    i += len;
                }
                None => {
                    found.push(Token::Punct(b));
                    i += 1;
                }
            }
        } else if b.is_ascii_digit() {
            let len = s[i..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'.')
                .count();
            found.push(Token::Number(s[i..i + len].to_vec()));
            i += len;
        } else if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            let len = s[i..]
                .iter()
                .take_while(|c| {
                    c.is_ascii_alphanumeric() || **c == b'_' || **c == b'$' || **c >= 0x80
                })
                .count();
            let w = s[i..i + len].to_ascii_lowercase();
            i += len;
            if len == 1 && s.get(i) == Some(&b'\'') {
                let (text, end) = quoted(i, b'\'');
                found.push(if w == b"n" {
                    Token::Str(text)
                } else {
                    Token::Other
                });
                i = end;
            } else {
                found.push(Token::Word(w));
            }
        } else {
            found.push(Token::Punct(b));
            i += 1;
        }
    }
    found
}

/// The length of the dollar-quoted string at the start of `s`.
fn dollar_end(s: &[u8]) -> Option<usize> {
    let tag_len = 1 + s[1..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_' || **b >= 0x80)
        .count();
    if s.get(tag_len) != Some(&b'$') || s.get(1).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let tag = &s[..=tag_len];
    memchr::memmem::find(&s[tag.len()..], tag).map(|at| tag.len() * 2 + at)
}

/// Reads tokens one at a time.
struct Reader<'a> {
    t: &'a [Token],
    i: usize,
}

impl<'a> Reader<'a> {
    fn new(t: &'a [Token]) -> Reader<'a> {
        Reader { t, i: 0 }
    }

    fn peek(&self) -> Option<&'a Token> {
        self.t.get(self.i)
    }

    /// Takes the words `w` (space-separated) if they come next.
    fn words(&mut self, w: &str) -> bool {
        let start = self.i;
        for part in w.split(' ') {
            if self.peek() != Some(&word(part)) {
                self.i = start;
                return false;
            }
            self.i += 1;
        }
        true
    }

    fn punct(&mut self, p: u8) -> bool {
        let yes = self.peek() == Some(&Token::Punct(p));
        if yes {
            self.i += 1;
        }
        yes
    }

    /// A name: an unquoted word or a quoted identifier.
    fn name(&mut self) -> Option<Name> {
        let n = match self.peek()? {
            Token::Word(w) => w.clone(),
            Token::Quoted(q) => q.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(n)
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        match self.peek()? {
            Token::Str(s) => {
                let s = s.clone();
                self.i += 1;
                Some(s)
            }
            _ => None,
        }
    }

    /// A setting's value: a string, a word or a number, as text.
    fn value(&mut self) -> Option<Vec<u8>> {
        let v = match self.peek()? {
            Token::Str(s) | Token::Word(s) | Token::Number(s) => s.clone(),
            _ => return None,
        };
        self.i += 1;
        Some(v)
    }

    /// Names separated by commas.
    fn names(&mut self) -> Option<Vec<Name>> {
        let mut names = vec![self.name()?];
        while self.punct(b',') {
            names.push(self.name()?);
        }
        Some(names)
    }

    /// Whether the statement ends here: `;` and nothing after.
    fn end(&self) -> bool {
        self.t.get(self.i..) == Some(&[Token::Punct(b';')][..])
    }
}

/// How one statement (outside a cluster dump's roles section) runs.
enum Shape {
    /// Not run: the session is the owner's already.
    Dropped,
    /// The superuser's: `sql` rewritten by the guard, once `roles` exist;
    /// `owns` a database's new owner.
    Boot {
        sql: Vec<Vec<u8>>,
        roles: Vec<Name>,
        owns: Option<(Name, Name)>,
    },
    Owned(Owned),
}

/// A statement its entry's owner runs as written, and what comes with it.
#[derive(Default)]
struct Owned {
    /// Roles it names, which must exist.
    roles: Vec<Name>,
    /// A `COPY … FROM stdin`: data follows.
    copy: bool,
    /// A schema it creates.
    schema: Option<Name>,
    /// A session setting it makes, replayed in later sessions.
    setting: Option<(Vec<u8>, Vec<u8>)>,
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `SET name = value;` or `SELECT pg_catalog.set_config('name', 'value',
/// false);`: the setting's name (lower case) and value.
fn set_statement(t: &[Token]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut r = Reader::new(t);
    if r.words("set") {
        let name = r.name()?;
        if name == b"session" || name == b"role" || name == b"local" {
            return None;
        }
        if !(r.punct(b'=') || r.words("to")) {
            return None;
        }
        let value = r.value()?;
        while r.punct(b',') {
            r.value()?;
        }
        return r.end().then(|| (name.to_ascii_lowercase(), value));
    }
    if r.words("select pg_catalog") && r.punct(b'.') && r.words("set_config") && r.punct(b'(') {
        let name = r.string()?;
        r.punct(b',').then_some(())?;
        let value = r.string()?;
        return (r.punct(b',') && r.words("false") && r.punct(b')') && r.end())
            .then(|| (name.to_ascii_lowercase(), value));
    }
    None
}

/// The shape of a statement outside a cluster dump's roles section.
/// `ownerless`: its entry has no owner (an extension's).
fn shape(t: &[Token], ownerless: bool) -> Shape {
    let mut r = Reader::new(t);
    if r.words("set session authorization") || r.words("reset session authorization") {
        return Shape::Dropped;
    }
    let boot = |sql: Vec<u8>, roles: Vec<Name>| Shape::Boot {
        sql: vec![sql],
        roles,
        owns: None,
    };
    if ownerless && r.words("create extension if not exists") {
        if let Some(name) = r.name() {
            if r.words("with schema") {
                if let Some(schema) = r.name().filter(|_| r.end()) {
                    return boot(
                        cat(&[
                            b"CREATE EXTENSION IF NOT EXISTS ",
                            &ident(&name),
                            b" WITH SCHEMA ",
                            &ident(&schema),
                            b";",
                        ]),
                        vec![],
                    );
                }
            }
        }
    }
    let mut r = Reader::new(t);
    if ownerless && r.words("comment on extension") {
        if let Some(name) = r.name() {
            if r.words("is") {
                if let Some(text) = r.string().filter(|_| r.end()) {
                    return boot(
                        cat(&[
                            b"COMMENT ON EXTENSION ",
                            &ident(&name),
                            b" IS ",
                            &literal(&text),
                            b";",
                        ]),
                        vec![],
                    );
                }
            }
        }
    }
    if ownerless {
        if let Some(sql) = large_object_data(t).or_else(|| create_cast(t)) {
            return boot(sql, vec![]);
        }
    }
    if let Some(sql) = create_database(t) {
        return boot(sql, vec![]);
    }
    for kind in ["database", "schema"] {
        let mut r = Reader::new(t);
        if r.words("alter") && r.words(kind) {
            if let Some(name) = r.name() {
                if r.words("owner to") {
                    if let Some(role) = r.name().filter(|_| r.end()) {
                        let sql = cat(&[
                            b"ALTER ",
                            kind.to_ascii_uppercase().as_bytes(),
                            b" ",
                            &ident(&name),
                            b" OWNER TO ",
                            &ident(&role),
                            b";",
                        ]);
                        return Shape::Boot {
                            sql: vec![sql],
                            owns: (kind == "database").then(|| (name, role.clone())),
                            roles: vec![role],
                        };
                    }
                }
            }
        }
    }
    if let Some((sql, roles)) = role_setting(t) {
        return boot(sql, roles);
    }
    let mut owned = Owned::default();
    let mut r = Reader::new(t);
    if r.words("create schema") {
        owned.schema = r.name().filter(|_| r.end());
    }
    owned.copy = t.first() == Some(&word("copy"))
        && t.ends_with(&[word("from"), word("stdin"), Token::Punct(b';')]);
    owned.setting = set_statement(t);
    owned.roles = roles_named(t);
    Shape::Owned(owned)
}

/// The statements pg_dump before 17 writes, in an entry without an owner,
/// to load the large objects' data, rewritten: they run no code of the
/// dump's, and no role but a superuser may write every owner's objects.
fn large_object_data(t: &[Token]) -> Option<Vec<u8>> {
    let number = |r: &mut Reader| -> Option<Vec<u8>> {
        match r.peek()? {
            Token::Number(n) => {
                let n = n.clone();
                r.i += 1;
                n.iter().all(u8::is_ascii_digit).then_some(n)
            }
            _ => None,
        }
    };
    let mut r = Reader::new(t);
    if r.words("begin") && r.end() {
        return Some(b"BEGIN;".to_vec());
    }
    let mut r = Reader::new(t);
    if r.words("commit") && r.end() {
        return Some(b"COMMIT;".to_vec());
    }
    let mut r = Reader::new(t);
    if !(r.words("select pg_catalog") && r.punct(b'.')) {
        return None;
    }
    let sql = if r.words("lo_open") && r.punct(b'(') {
        let oid = r
            .string()
            .filter(|o| !o.is_empty() && o.iter().all(u8::is_ascii_digit))?;
        (r.punct(b',') && number(&mut r)? == b"131072")
            .then(|| cat(&[b"SELECT pg_catalog.lo_open('", &oid, b"', 131072);"]))?
    } else if r.words("lowrite") && r.punct(b'(') {
        let fd = number(&mut r)?;
        r.punct(b',').then_some(())?;
        let data = r.string()?;
        let hex = data.strip_prefix(b"\\x")?;
        hex.iter()
            .all(u8::is_ascii_hexdigit)
            .then(|| cat(&[b"SELECT pg_catalog.lowrite(", &fd, b", '\\x", hex, b"');"]))?
    } else if r.words("lo_close") && r.punct(b'(') {
        let fd = number(&mut r)?;
        cat(&[b"SELECT pg_catalog.lo_close(", &fd, b");"])
    } else {
        return None;
    };
    (r.punct(b')') && r.end()).then_some(sql)
}

/// `CREATE CAST (…)`, in an entry without an owner, rewritten token by
/// token: names, keywords, numbers and punctuation only, so that it can be
/// nothing but a cast, which runs no code when made.
fn create_cast(t: &[Token]) -> Option<Vec<u8>> {
    if !t.starts_with(&[word("create"), word("cast"), Token::Punct(b'(')]) {
        return None;
    }
    let mut sql = Vec::new();
    for token in t {
        match token {
            Token::Word(w) if w.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_') => {
                sql.extend_from_slice(w)
            }
            Token::Quoted(q) => sql.extend(ident(q)),
            Token::Number(n) if n.iter().all(u8::is_ascii_digit) => sql.extend_from_slice(n),
            Token::Punct(p) if b"().,[];".contains(p) => sql.push(*p),
            _ => return None,
        }
        sql.push(b' ');
    }
    sql.pop();
    Some(sql)
}

/// `CREATE DATABASE name WITH KEY = value …;` rewritten with the options
/// that tell what the database is; its tablespace, connection settings and
/// template flag are left out.
fn create_database(t: &[Token]) -> Option<Vec<u8>> {
    let mut r = Reader::new(t);
    if !r.words("create database") {
        return None;
    }
    let name = r.name()?;
    r.words("with");
    let mut sql = cat(&[b"CREATE DATABASE ", &ident(&name), b" WITH"]);
    while !r.end() {
        let mut key = Vec::new();
        while let Some(Token::Word(w)) = r.peek() {
            if !key.is_empty() {
                key.push(b' ');
            }
            key.extend_from_slice(w);
            r.i += 1;
        }
        r.punct(b'=');
        let value = r.value()?;
        match key.as_slice() {
            b"template" | b"encoding" | b"locale_provider" | b"locale" | b"lc_collate"
            | b"lc_ctype" | b"icu_locale" | b"icu_rules" | b"builtin_locale"
            | b"collation_version" => {
                sql.extend(cat(&[
                    b" ",
                    &key.to_ascii_uppercase(),
                    b" = ",
                    &literal(&value),
                ]));
            }
            b"tablespace" | b"connection limit" | b"allow_connections" | b"is_template"
            | b"owner" | b"oid" => {}
            _ => return None,
        }
    }
    sql.push(b';');
    Some(sql)
}

/// `ALTER ROLE r [IN DATABASE d] SET name TO value, …;` rewritten, and
/// the role.
fn role_setting(t: &[Token]) -> Option<(Vec<u8>, Vec<Name>)> {
    let mut r = Reader::new(t);
    if !r.words("alter role") {
        return None;
    }
    let role = r.name()?;
    let mut sql = cat(&[b"ALTER ROLE ", &ident(&role)]);
    if r.words("in database") {
        sql.extend(cat(&[b" IN DATABASE ", &ident(&r.name()?)]));
    }
    if !r.words("set") {
        return None;
    }
    sql.extend(b" SET ");
    sql.extend(ident(&r.name()?));
    while r.punct(b'.') {
        sql.push(b'.');
        sql.extend(ident(&r.name()?));
    }
    if !(r.words("to") || r.punct(b'=')) {
        return None;
    }
    sql.extend(b" TO ");
    sql.extend(literal(&r.value()?));
    while r.punct(b',') {
        sql.extend(b", ");
        sql.extend(literal(&r.value()?));
    }
    r.end().then(|| {
        sql.push(b';');
        (sql, vec![role])
    })
}

/// A statement of a cluster dump's roles section, rewritten for the
/// superuser, and the roles it needs; `None` for one the drill does not
/// run.
fn global_shape(t: &[Token]) -> Option<(Vec<Name>, Vec<Vec<u8>>)> {
    if let Some((sql, roles)) = role_setting(t) {
        return Some((roles, vec![sql]));
    }
    let mut r = Reader::new(t);
    if r.words("create role") {
        let role = r.name().filter(|_| r.end())?;
        return Some((vec![role], vec![]));
    }
    let mut r = Reader::new(t);
    if r.words("alter role") {
        let role = r.name()?;
        r.words("with");
        let mut sql = cat(&[b"ALTER ROLE ", &ident(&role), b" WITH"]);
        while !r.end() {
            let Some(Token::Word(w)) = r.peek() else {
                return None;
            };
            r.i += 1;
            match w.as_slice() {
                b"superuser" | b"nosuperuser" | b"inherit" | b"noinherit" | b"createrole"
                | b"nocreaterole" | b"createdb" | b"nocreatedb" | b"replication"
                | b"noreplication" | b"bypassrls" | b"nobypassrls" => {
                    sql.push(b' ');
                    sql.extend(w.to_ascii_uppercase());
                }
                // The drill logs in as every role, on its own socket only.
                b"login" | b"nologin" => {}
                b"password" | b"encrypted" => {
                    r.words("password");
                    r.i += 1;
                }
                b"connection" => {
                    r.words("limit").then_some(())?;
                    r.punct(b'-');
                    r.i += 1;
                }
                b"valid" => {
                    r.words("until").then_some(())?;
                    r.i += 1;
                }
                _ => return None,
            }
        }
        sql.extend(b" LOGIN;");
        return Some((vec![role], vec![sql]));
    }
    let mut r = Reader::new(t);
    if r.words("comment on role") {
        let role = r.name()?;
        r.words("is").then_some(())?;
        let text = r.string().filter(|_| r.end())?;
        let sql = cat(&[
            b"COMMENT ON ROLE ",
            &ident(&role),
            b" IS ",
            &literal(&text),
            b";",
        ]);
        return Some((vec![role], vec![sql]));
    }
    let mut r = Reader::new(t);
    if r.words("grant") {
        let granted = r.names()?;
        r.words("to").then_some(())?;
        let members = r.names()?;
        let mut options = Vec::new();
        if r.words("with") {
            loop {
                match r.peek() {
                    Some(Token::Word(w))
                        if matches!(w.as_slice(), b"admin" | b"inherit" | b"set") =>
                    {
                        let w = w.clone();
                        r.i += 1;
                        let Some(Token::Word(v)) = r.peek() else {
                            return None;
                        };
                        if !matches!(v.as_slice(), b"option" | b"true" | b"false") {
                            return None;
                        }
                        options.push(cat(&[
                            &w.to_ascii_uppercase(),
                            b" ",
                            &v.to_ascii_uppercase(),
                        ]));
                        r.i += 1;
                    }
                    _ => return None,
                }
                if !r.punct(b',') {
                    break;
                }
            }
        }
        // Who granted it is the source's history, not a right.
        if r.words("granted by") {
            r.name()?;
        }
        if !r.end() {
            return None;
        }
        let kept: Vec<Name> = granted
            .into_iter()
            .filter(|g| !SERVER_FILE_ROLES.contains(&g.as_slice()))
            .collect();
        if kept.is_empty() {
            return Some((vec![], vec![]));
        }
        let list = |names: &[Name]| -> Vec<u8> {
            names
                .iter()
                .map(|n| ident(n))
                .collect::<Vec<_>>()
                .join(&b", "[..])
        };
        let mut sql = cat(&[b"GRANT ", &list(&kept), b" TO ", &list(&members)]);
        if !options.is_empty() {
            sql.extend(b" WITH ");
            sql.extend(options.join(&b", "[..]));
        }
        sql.push(b';');
        let roles = kept.into_iter().chain(members).collect();
        return Some((roles, vec![sql]));
    }
    None
}

/// The roles a statement names where they must exist: grantees, new
/// owners, the roles of default privileges, policies and user mappings.
fn roles_named(t: &[Token]) -> Vec<Name> {
    let mut found = Vec::new();
    // Role names from `t[at..]`, comma-separated, up to a word that ends them.
    let list = |at: usize, found: &mut Vec<Name>| {
        let mut i = at;
        loop {
            match t.get(i) {
                Some(Token::Word(w)) if w == b"group" => {}
                Some(Token::Word(w))
                    if matches!(
                        w.as_slice(),
                        b"public" | b"current_user" | b"session_user" | b"current_role"
                    ) => {}
                Some(Token::Word(w)) if !w.is_empty() => {
                    if matches!(
                        w.as_slice(),
                        b"with"
                            | b"granted"
                            | b"cascade"
                            | b"restrict"
                            | b"using"
                            | b"in"
                            | b"server"
                            | b"grant"
                            | b"revoke"
                    ) {
                        return;
                    }
                    found.push(w.clone());
                }
                Some(Token::Quoted(q)) => found.push(q.clone()),
                Some(Token::Punct(b',')) => {}
                _ => return,
            }
            i += 1;
        }
    };
    // Where the word `w` is, outside parentheses: the last, or the first.
    let at_depth0 = |w: &str, last: bool| -> Option<usize> {
        let mut depth = 0i32;
        let mut hit = None;
        for (i, tok) in t.iter().enumerate() {
            match tok {
                Token::Punct(b'(') => depth += 1,
                Token::Punct(b')') => depth -= 1,
                tok if depth == 0 && *tok == word(w) => {
                    hit = Some(i);
                    if !last {
                        break;
                    }
                }
                _ => {}
            }
        }
        hit
    };
    let first = |w: &str| t.first() == Some(&word(w));
    let mut r = Reader::new(t);
    if r.words("alter default privileges") && (r.words("for role") || r.words("for user")) {
        list(r.i, &mut found);
    }
    if first("grant") || (first("alter") && at_depth0("grant", false).is_some()) {
        if let Some(at) = at_depth0("to", true) {
            list(at + 1, &mut found);
        }
    } else if first("revoke") || (first("alter") && at_depth0("revoke", false).is_some()) {
        if let Some(at) = at_depth0("from", true) {
            list(at + 1, &mut found);
        }
    } else if first("alter") {
        if let Some(at) = at_depth0("owner", true) {
            if t.get(at + 1) == Some(&word("to")) {
                list(at + 2, &mut found);
            }
        }
    }
    let mut r = Reader::new(t);
    if r.words("create policy") {
        if let Some(at) = at_depth0("to", false) {
            list(at + 1, &mut found);
        }
    }
    let mut r = Reader::new(t);
    if r.words("create user mapping for") {
        list(r.i, &mut found);
    }
    if let Some(at) = at_depth0("granted", true) {
        if t.get(at + 1) == Some(&word("by")) {
            list(at + 2, &mut found);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the guard writes for `dump`: each session psql runs, as
    /// `role@db`, with its lines; or the guard's refusal.
    fn sessions(dump: &str, cluster: bool) -> Result<Vec<(String, Vec<String>)>, String> {
        let names = Names {
            boot: "boot".into(),
            standin: "standin".into(),
        };
        let start = if cluster { "postgres" } else { "drill" };
        let mut out = Vec::new();
        let mut guard = Guard::new(&mut out, &names, start, cluster, &[start]).unwrap();
        // Written in pieces that split lines.
        let fed = dump
            .as_bytes()
            .chunks(7)
            .try_for_each(|c| guard.write_all(c))
            .and_then(|()| guard.flush());
        drop(guard);
        fed.map_err(|e| {
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            e.to_string()
        })?;
        let out = String::from_utf8(out).unwrap();
        let mut found = vec![(format!("boot@{start}"), Vec::new())];
        let mut key = String::new();
        for line in out.lines() {
            if let Some(k) = line.strip_prefix("\\restrict ") {
                assert!(k.len() == 32 && k != key, "a fresh key: {line}");
                key = k.to_owned();
            } else if let Some(k) = line.strip_prefix("\\unrestrict ") {
                assert_eq!(k, key, "the key in force");
            } else if line == "\\r" {
            } else if let Some(arg) = line.strip_prefix("\\connect -reuse-previous=on ") {
                let arg = arg.replace("\"\"", "\"");
                let db = arg
                    .split("dbname='")
                    .nth(1)
                    .unwrap()
                    .split("' user=")
                    .next()
                    .unwrap();
                let user = arg.split("user='").nth(1).unwrap().trim_end_matches("'\"");
                found.push((format!("{user}@{db}"), Vec::new()));
            } else {
                found.last_mut().unwrap().1.push(line.to_owned());
            }
        }
        Ok(found)
    }

    /// The sessions' statements, leaving out the settings replayed.
    fn statements(dump: &str, cluster: bool) -> Vec<(String, Vec<String>)> {
        sessions(dump, cluster)
            .unwrap()
            .into_iter()
            .map(|(who, lines)| {
                let kept = lines
                    .into_iter()
                    .filter(|l| {
                        !l.starts_with("SET ") && !l.starts_with("SELECT pg_catalog.set_config")
                    })
                    .collect();
                (who, kept)
            })
            .filter(|(_, lines): &(String, Vec<String>)| !lines.is_empty())
            .collect()
    }

    fn pairs(expected: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        expected
            .iter()
            .map(|(who, lines)| {
                (
                    who.to_string(),
                    lines.iter().map(|l| l.to_string()).collect(),
                )
            })
            .collect()
    }

    const PREAMBLE: &str = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\n\
        SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\
        SELECT pg_catalog.set_config('search_path', '', false);\n\n";

    #[test]
    fn each_entry_runs_as_its_owner_and_the_superuser_only_what_the_guard_wrote() {
        let dump = format!(
            "{PREAMBLE}--\n-- Name: pgcrypto; Type: EXTENSION; Schema: -; Owner: -\n--\n\n\
             CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;\n\n\
             --\n-- Name: EXTENSION pgcrypto; Type: COMMENT; Schema: -; Owner: \n--\n\n\
             COMMENT ON EXTENSION pgcrypto IS 'it''s crypto';\n\n\
             --\n-- Name: s; Type: SCHEMA; Schema: -; Owner: app\n--\n\n\
             CREATE SCHEMA s;\n\n\nALTER SCHEMA s OWNER TO app;\n\n\
             --\n-- Name: x; Owner: postgres; Type: TABLE; Schema: s; Owner: app\n--\n\n\
             CREATE TABLE s.\"x; Owner: postgres\" (a int CHECK (s.f(a)));\n\n\
             COMMENT ON TABLE s.t IS 'a\n-- Name: y; Type: EXTENSION; Schema: -; Owner: -\n\
             \\! touch /tmp/x\nCREATE EXTENSION IF NOT EXISTS y WITH SCHEMA public;';\n\
             --\n-- Data for Name: t; Type: TABLE DATA; Schema: s; Owner: app\n--\n\n\
             COPY s.t (a) FROM stdin;\n\\! touch /tmp/x\n-- Name: a; Type: T; Schema: -; Owner: -\n\\.\n\n\
             --\n-- Name: TABLE t; Type: ACL; Schema: s; Owner: app\n--\n\n\
             GRANT SELECT ON TABLE s.t TO \"Read Only\";\n\n\
             --\n-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner\n--\n\n\
             REVOKE USAGE ON SCHEMA public FROM PUBLIC;\n\n\\unrestrict abc\n"
        );
        let grant = "GRANT CREATE, USAGE ON SCHEMA \"s\" TO PUBLIC;";
        let defaults = |r: &str| {
            format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE \"{r}\" GRANT REFERENCES ON TABLES TO PUBLIC;"
            )
        };
        assert_eq!(
            statements(&dump, false),
            pairs(&[
                ("boot@drill", &[&defaults("standin")]),
                (
                    "boot@drill",
                    &[
                        "CREATE EXTENSION IF NOT EXISTS \"pgcrypto\" WITH SCHEMA \"public\";",
                        "COMMENT ON EXTENSION \"pgcrypto\" IS 'it''s crypto';",
                        "CREATE ROLE \"app\" NOSUPERUSER LOGIN;",
                        &defaults("app"),
                    ]
                ),
                ("app@drill", &["CREATE SCHEMA s;", grant]),
                ("boot@drill", &["ALTER SCHEMA \"s\" OWNER TO \"app\";"]),
                (
                    "app@drill",
                    &[
                        "CREATE TABLE s.\"x; Owner: postgres\" (a int CHECK (s.f(a)));",
                        "COMMENT ON TABLE s.t IS 'a",
                        "-- Name: y; Type: EXTENSION; Schema: -; Owner: -",
                        "\\! touch /tmp/x",
                        "CREATE EXTENSION IF NOT EXISTS y WITH SCHEMA public;';",
                        "COPY s.t (a) FROM stdin;",
                        "\\! touch /tmp/x",
                        "-- Name: a; Type: T; Schema: -; Owner: -",
                        "\\.",
                    ]
                ),
                (
                    "boot@drill",
                    &["CREATE ROLE \"Read Only\" NOSUPERUSER LOGIN;"]
                ),
                (
                    "app@drill",
                    &["GRANT SELECT ON TABLE s.t TO \"Read Only\";"]
                ),
                (
                    "standin@drill",
                    &["REVOKE USAGE ON SCHEMA public FROM PUBLIC;"]
                ),
            ])
        );
        // Every session of a role replays the dump's settings; the
        // superuser's only the encoding.
        for (who, lines) in sessions(&dump, false).unwrap().iter().skip(1) {
            let settings: Vec<&String> = lines.iter().filter(|l| l.starts_with("SET ")).collect();
            if who.starts_with("boot@") {
                assert_eq!(settings, ["SET client_encoding = 'UTF8';"], "{who}");
            } else {
                assert!(
                    settings.len() >= 2
                        && lines.contains(
                            &"SELECT pg_catalog.set_config('search_path', '', false);".to_owned()
                        ),
                    "{who}: {lines:?}"
                );
            }
        }
    }

    #[test]
    fn a_cluster_dumps_roles_are_rewritten_and_its_databases_get_their_owners() {
        let dump = "\\restrict abc\nSET default_transaction_read_only = off;\n\
            SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\
            CREATE ROLE app;\n\
            ALTER ROLE app WITH NOSUPERUSER INHERIT NOLOGIN PASSWORD 'SCRAM-SHA-256$4096:x' \
            VALID UNTIL '2030-01-01' CONNECTION LIMIT 3;\n\
            CREATE ROLE postgres;\nALTER ROLE postgres WITH SUPERUSER LOGIN;\n\
            COMMENT ON ROLE app IS 'the app''s\nrole';\n\
            ALTER ROLE app SET search_path TO 'a', 'b';\n\
            ALTER ROLE app IN DATABASE shop SET work_mem TO '8MB';\n\
            GRANT \"Read Only\" TO app WITH INHERIT TRUE GRANTED BY postgres;\n\
            GRANT pg_execute_server_program TO app GRANTED BY postgres;\n\
            \\unrestrict abc\n\\connect template1\n\\restrict def\n\
            SET client_encoding = 'UTF8';\n\
            --\n-- Name: shop; Type: DATABASE; Schema: -; Owner: app\n--\n\n\
            CREATE DATABASE shop WITH TEMPLATE = template0 ENCODING = 'UTF8' \
            LOCALE_PROVIDER = libc LOCALE = 'C.UTF-8' TABLESPACE = ts;\n\n\
            ALTER DATABASE shop OWNER TO app;\n\n\
            \\unrestrict def\n\\connect -reuse-previous=on \"dbname='sh\\'op'\"\n\
            \\connect shop\n\\restrict def\n\
            --\n-- Name: SCHEMA public; Type: ACL; Schema: -; Owner: pg_database_owner\n--\n\n\
            GRANT ALL ON SCHEMA public TO app;\n";
        let got = statements(dump, true);
        assert_eq!(
            got[0],
            (
                "boot@postgres".to_owned(),
                [
                    "CREATE ROLE \"app\" NOSUPERUSER LOGIN;",
                    "ALTER ROLE \"app\" WITH NOSUPERUSER INHERIT LOGIN;",
                    "CREATE ROLE \"postgres\" NOSUPERUSER LOGIN;",
                    "ALTER ROLE \"postgres\" WITH SUPERUSER LOGIN;",
                    "COMMENT ON ROLE \"app\" IS 'the app''s",
                    "role';",
                    "ALTER ROLE \"app\" SET \"search_path\" TO 'a', 'b';",
                    "ALTER ROLE \"app\" IN DATABASE \"shop\" SET \"work_mem\" TO '8MB';",
                    "CREATE ROLE \"Read Only\" NOSUPERUSER LOGIN;",
                    "GRANT \"Read Only\" TO \"app\" WITH INHERIT TRUE;",
                ]
                .map(str::to_owned)
                .to_vec()
            )
        );
        assert_eq!(
            got[2..],
            pairs(&[
                (
                    "boot@template1",
                    &[
                        "CREATE DATABASE \"shop\" WITH TEMPLATE = 'template0' ENCODING = 'UTF8' \
                         LOCALE_PROVIDER = 'libc' LOCALE = 'C.UTF-8';",
                        "ALTER DATABASE \"shop\" OWNER TO \"app\";",
                    ]
                ),
                (
                    "boot@shop",
                    &[
                        "GRANT CREATE ON DATABASE \"shop\" TO PUBLIC;",
                        "GRANT CREATE, USAGE ON SCHEMA public TO PUBLIC;",
                        "ALTER DEFAULT PRIVILEGES FOR ROLE \"app\" GRANT REFERENCES ON TABLES TO PUBLIC;",
                    ]
                ),
                // pg_database_owner: the database's owner.
                ("app@shop", &["GRANT ALL ON SCHEMA public TO app;"]),
            ])[..]
        );
        for (dump, refused) in [
            (
                "CREATE TABLESPACE ts OWNER postgres LOCATION '/srv/ts';\n",
                "makes a tablespace",
            ),
            (
                "DROP ROLE app;\n",
                "a statement the drill does not restore: DROP ROLE app;",
            ),
            (
                "ALTER ROLE app WITH SUPERUSER SYSID 5;\n",
                "does not restore",
            ),
            ("SET client_encoding = 'SJIS';\n", "client encoding SJIS"),
        ] {
            let e = sessions(dump, true).unwrap_err();
            assert!(e.contains(refused), "{e}");
        }
    }

    #[test]
    fn the_dumps_own_commands_are_refused() {
        for (dump, shown) in [
            ("SELECT 1;\n\\! touch /tmp/x\n", "\\! touch /tmp/x"),
            ("SELECT 1; \\! touch /tmp/x\n", "\\! touch /tmp/x"),
            ("SELECT 1 \\g\n", "\\g"),
            (
                "\\copy t from '/etc/shadow'\n",
                "\\copy t from '/etc/shadow'",
            ),
            (
                "\\connect shop user=postgres\n",
                "\\connect shop user=postgres",
            ),
            ("\\i /etc/passwd\n", "\\i /etc/passwd"),
        ] {
            let e = sessions(&format!("{PREAMBLE}{dump}"), false).unwrap_err();
            assert!(
                e.contains(&format!("psql command {shown:?}")) && e.contains("runs none"),
                "{dump}: {e}"
            );
        }
    }

    #[test]
    fn what_no_role_may_be_is_refused() {
        for (dump, refused) in [
            (
                "--\n-- Name: t; Type: TABLE; Schema: public; Owner: pg_execute_server_program\n\
                 --\n\nCREATE TABLE t (a int);\n",
                "owned by the predefined role pg_execute_server_program",
            ),
            (
                "\\connect \"a\tb\"\nSELECT 1;\n",
                "names \"a\\tb\", with a control character",
            ),
            (
                "SET standard_conforming_strings = off;\n",
                "standard_conforming_strings off",
            ),
            (
                "CREATE TABLE t (a text DEFAULT '\n",
                "ends inside a statement",
            ),
            ("COPY t (a) FROM stdin;\n1\n", "ends inside a statement"),
            (
                "COPY t (a) FROM stdin; SELECT 1;\n",
                "text after a COPY statement",
            ),
        ] {
            let e = sessions(&format!("{PREAMBLE}{dump}"), false).unwrap_err();
            assert!(e.contains(refused), "{dump}: {e}");
        }
        // SET SESSION AUTHORIZATION of a dump made with it: the session is
        // the owner's already.
        let dump = format!(
            "{PREAMBLE}--\n-- Name: t; Type: TABLE; Schema: public; Owner: app\n--\n\n\
             SET SESSION AUTHORIZATION 'app';\nCREATE TABLE t (a int);\nRESET SESSION AUTHORIZATION;\n"
        );
        let got = statements(&dump, false);
        assert_eq!(
            got.last().unwrap(),
            &(
                "app@drill".to_owned(),
                vec!["CREATE TABLE t (a int);".to_owned()]
            )
        );
    }

    #[test]
    fn casts_and_large_objects_without_an_owner_are_rewritten_for_the_superuser() {
        let dump = format!(
            "{PREAMBLE}--\n-- Name: CAST (public.pair AS integer); Type: CAST; Schema: -; Owner: -\n\
             --\n\nCREATE CAST (public.pair AS integer) WITH FUNCTION public.f(public.pair) \
             AS IMPLICIT;\n\n\
             --\n-- Data for Name: BLOBS; Type: BLOBS; Schema: -; Owner: -\n--\n\n\
             BEGIN;\n\nSELECT pg_catalog.lo_open('16600', 131072);\n\
             SELECT pg_catalog.lowrite(0, '\\x68656c6c6f');\nSELECT pg_catalog.lo_close(0);\n\n\
             COMMIT;\n\n\
             --\n-- Name: SCHEMA s; Type: COMMENT; Schema: -; Owner: -\n--\n\n\
             SELECT pg_catalog.lowrite(0, 'not hex');\n\
             CREATE CAST (text AS int) WITH FUNCTION f('x');\nSET search_path = a, b;\n"
        );
        assert_eq!(
            statements(&dump, false)[1..],
            pairs(&[
                (
                    "boot@drill",
                    &[
                        "create cast ( public . pair as integer ) with function public . f ( \
                         public . pair ) as implicit ;",
                        "BEGIN;",
                        "SELECT pg_catalog.lo_open('16600', 131072);",
                        "SELECT pg_catalog.lowrite(0, '\\x68656c6c6f');",
                        "SELECT pg_catalog.lo_close(0);",
                        "COMMIT;",
                    ]
                ),
                // Anything else of no owner is the stand-in's, as written.
                (
                    "standin@drill",
                    &[
                        "SELECT pg_catalog.lowrite(0, 'not hex');",
                        "CREATE CAST (text AS int) WITH FUNCTION f('x');",
                    ]
                ),
            ])[..]
        );
        let replayed = sessions(&format!("{dump}SELECT 1;\nSELECT 2;\n"), false).unwrap();
        assert!(
            replayed
                .last()
                .unwrap()
                .1
                .contains(&"SET search_path = a, b;".to_owned()),
            "{replayed:?}"
        );
    }

    #[test]
    fn a_statement_too_long_to_keep_streams_to_its_owner() {
        let long = "x".repeat(WHOLE + 10);
        let dump = format!(
            "{PREAMBLE}--\n-- Name: t; Type: TABLE DATA; Schema: public; Owner: app\n--\n\n\
             INSERT INTO t VALUES ('{long}');\nSELECT 1;\n"
        );
        let got = statements(&dump, false);
        let (who, lines) = got.last().unwrap();
        assert_eq!(who, "app@drill");
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0].len(),
            "INSERT INTO t VALUES ('');".len() + long.len()
        );
        assert_eq!(lines[1], "SELECT 1;");
    }

    #[test]
    fn connect_lines_and_headers_are_read_as_pg_dump_writes_them() {
        assert_eq!(connect_target(b"shop"), Some(b"shop".to_vec()));
        assert_eq!(connect_target(b"\"Shop\"\"s\""), Some(b"Shop\"s".to_vec()));
        assert_eq!(
            connect_target(b"-reuse-previous=on \"dbname='it\\'s \\\\ x'\""),
            Some(b"it's \\ x".to_vec())
        );
        for bad in [
            &b"shop user=x"[..],
            b"-reuse-previous=on \"dbname='a' user='b'\"",
            b"",
        ] {
            assert_eq!(connect_target(bad), None, "{}", lossy(bad));
        }
        assert_eq!(
            header(b"-- Name: x; Owner: postgres; Type: TABLE; Schema: s; Owner: app\n"),
            Some(Owner::Role(b"app".to_vec()))
        );
        assert_eq!(
            header(b"-- Data for Name: t; Type: TABLE DATA; Schema: public; Owner: app; Tablespace: ts\n"),
            Some(Owner::Role(b"app".to_vec()))
        );
        assert_eq!(
            header(b"-- Name: e; Type: COMMENT; Schema: -; Owner: \n"),
            Some(Owner::Nobody)
        );
        assert_eq!(header(b"-- Dumped by pg_dump version 15.14\n"), None);
        let key = random_word(32);
        assert!(key.len() == 32 && key.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(key, random_word(32));
    }
}
