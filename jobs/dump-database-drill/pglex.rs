//! Where psql is in a stream of SQL: inside a quote, a comment, a
//! statement or between statements. It follows psql's own lexer (quotes,
//! dollar quotes, nested comments, parentheses and the `BEGIN ATOMIC` rule
//! of SQL-standard function bodies), so that the drill's guard sees the
//! statements psql will send, and the backslash commands psql would run.
//! Strings are taken as `standard_conforming_strings` has them on, as every
//! pg_dump since 9.1 writes them; the guard refuses a dump that sets it off.

/// What psql's lexer is inside of.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Inside {
    Nothing,
    /// `'…'`; `escapes` for `E'…'`.
    String {
        escapes: bool,
    },
    /// `"…"`.
    Identifier,
    /// `$tag$…$tag$`, the tag with its dollars.
    Dollar(Vec<u8>),
    /// `/* … */`, nested this deep.
    Comment(u32),
    /// `-- …` to the end of the line.
    LineComment,
}

/// Where a scan stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// Just after the `;` that ends a statement.
    End(usize),
    /// At a backslash outside any quote: psql would run a command there.
    Backslash(usize),
    /// At the end of the text given.
    More,
}

#[derive(Debug)]
pub struct Lexer {
    inside: Inside,
    parens: u32,
    begins: u32,
    /// The first letters of the statement's first identifiers, where they
    /// are `create`, `or`, `replace`, `function` or `procedure`, as psql
    /// keeps them to tell a function with a `BEGIN ATOMIC` body.
    idents: [u8; 4],
    ident_count: usize,
    /// The identifier or number being read.
    word: Vec<u8>,
    number: bool,
    /// Whether the statement has begun: anything but blanks and comments.
    started: bool,
}

fn ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn ident_cont(b: u8) -> bool {
    ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The `$tag$` that begins at `s[0]`, if one does.
fn dollar_tag(s: &[u8]) -> Option<&[u8]> {
    let rest = &s[1..];
    let len = rest
        .iter()
        .enumerate()
        .take_while(|&(i, &b)| {
            if i == 0 {
                ident_start(b)
            } else {
                ident_start(b) || b.is_ascii_digit()
            }
        })
        .count();
    (rest.get(len) == Some(&b'$')).then(|| &s[..len + 2])
}

impl Lexer {
    pub fn new() -> Lexer {
        Lexer {
            inside: Inside::Nothing,
            parens: 0,
            begins: 0,
            idents: [0; 4],
            ident_count: 0,
            word: Vec::new(),
            number: false,
            started: false,
        }
    }

    /// Whether psql is between statements: nothing of one read yet but
    /// blanks and comments, and no comment open.
    pub fn between(&self) -> bool {
        !self.started && self.inside == Inside::Nothing
    }

    /// Forgets the statement read so far, as psql's `\r` does.
    pub fn reset(&mut self) {
        *self = Lexer::new();
    }

    /// An identifier has ended: psql's rule for `BEGIN … END` in the body
    /// of `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
    fn identifier(&mut self) {
        let word = std::mem::take(&mut self.word);
        let lower = word.to_ascii_lowercase();
        if self.ident_count == 0 {
            self.idents = [0; 4];
        }
        if matches!(
            lower.as_slice(),
            b"create" | b"function" | b"procedure" | b"or" | b"replace"
        ) && self.ident_count < 4
        {
            self.idents[self.ident_count] = lower[0];
        }
        self.ident_count += 1;
        let i = self.idents;
        let routine = i[0] == b'c'
            && (i[1] == b'f'
                || i[1] == b'p'
                || (i[1] == b'o' && i[2] == b'r' && matches!(i[3], b'f' | b'p')));
        if routine && self.parens == 0 {
            match lower.as_slice() {
                b"begin" => self.begins += 1,
                b"case" if self.begins >= 1 => self.begins += 1,
                b"end" if self.begins > 0 => self.begins -= 1,
                _ => {}
            }
        }
    }

    /// Ends the word being read, if any.
    fn end_word(&mut self) {
        if self.number {
            self.word.clear();
            self.number = false;
        } else if !self.word.is_empty() {
            self.identifier();
        }
    }

    /// Reads `s` on from where the lexer is; stops after a statement's
    /// end or at a backslash command.
    pub fn scan(&mut self, s: &[u8]) -> Stop {
        let mut i = 0;
        while i < s.len() {
            let b = s[i];
            match &self.inside {
                Inside::String { escapes } => {
                    if *escapes && b == b'\\' {
                        i += 2;
                        continue;
                    }
                    if b == b'\'' {
                        if s.get(i + 1) == Some(&b'\'') {
                            i += 2;
                            continue;
                        }
                        self.inside = Inside::Nothing;
                    }
                    i += 1;
                }
                Inside::Identifier => {
                    if b == b'"' {
                        if s.get(i + 1) == Some(&b'"') {
                            i += 2;
                            continue;
                        }
                        self.inside = Inside::Nothing;
                    }
                    i += 1;
                }
                Inside::Dollar(tag) => {
                    if s[i..].starts_with(tag) {
                        i += tag.len();
                        self.inside = Inside::Nothing;
                    } else {
                        i += 1;
                    }
                }
                Inside::Comment(depth) => {
                    let depth = *depth;
                    if s[i..].starts_with(b"/*") {
                        self.inside = Inside::Comment(depth + 1);
                        i += 2;
                    } else if s[i..].starts_with(b"*/") {
                        self.inside = if depth == 1 {
                            Inside::Nothing
                        } else {
                            Inside::Comment(depth - 1)
                        };
                        i += 2;
                    } else {
                        i += 1;
                    }
                }
                Inside::LineComment => {
                    if b == b'\n' {
                        self.inside = Inside::Nothing;
                    }
                    i += 1;
                }
                Inside::Nothing => {
                    // A word goes on, or ends here.
                    if !self.word.is_empty() || self.number {
                        let goes_on = if self.number {
                            b.is_ascii_alphanumeric() || b == b'.' || b == b'_'
                        } else {
                            ident_cont(b)
                        };
                        if goes_on {
                            self.word.push(b);
                            i += 1;
                            continue;
                        }
                        // E'…', B'…', X'…', N'…': a string, not a word.
                        let prefix = !self.number && self.word.len() == 1 && b == b'\'';
                        if prefix {
                            let escapes = self.word[0].eq_ignore_ascii_case(&b'e');
                            self.word.clear();
                            self.inside = Inside::String { escapes };
                            i += 1;
                            continue;
                        }
                        self.end_word();
                    }
                    if s[i..].starts_with(b"--") {
                        self.inside = Inside::LineComment;
                        i += 2;
                        continue;
                    }
                    if s[i..].starts_with(b"/*") {
                        self.inside = Inside::Comment(1);
                        i += 2;
                        continue;
                    }
                    if b.is_ascii_whitespace() {
                        i += 1;
                        continue;
                    }
                    if b == b'\\' {
                        return Stop::Backslash(i);
                    }
                    self.started = true;
                    match b {
                        b'\'' => self.inside = Inside::String { escapes: false },
                        b'"' => self.inside = Inside::Identifier,
                        b'$' => {
                            if let Some(tag) = dollar_tag(&s[i..]) {
                                self.inside = Inside::Dollar(tag.to_vec());
                                i += tag.len();
                                continue;
                            }
                        }
                        b'(' => self.parens += 1,
                        b')' => self.parens = self.parens.saturating_sub(1),
                        b';' if self.parens == 0 && self.begins == 0 => {
                            self.reset();
                            return Stop::End(i + 1);
                        }
                        _ if b.is_ascii_digit() => {
                            self.number = true;
                            self.word.push(b);
                        }
                        _ if ident_start(b) => self.word.push(b),
                        _ => {}
                    }
                    i += 1;
                }
            }
        }
        Stop::More
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The statements of `sql`, as psql would send them, or where a
    /// backslash command would run.
    fn statements(sql: &str) -> Vec<String> {
        let mut lexer = Lexer::new();
        let mut found = Vec::new();
        let mut rest = sql.as_bytes();
        let mut start = 0;
        let mut at = 0;
        loop {
            match lexer.scan(rest) {
                Stop::End(n) => {
                    found.push(sql[start..at + n].trim().to_owned());
                    at += n;
                    start = at;
                    rest = &rest[n..];
                }
                Stop::Backslash(n) => {
                    found.push(format!("\\ at {}", at + n));
                    return found;
                }
                Stop::More => return found,
            }
        }
    }

    #[test]
    fn statements_end_where_psql_ends_them() {
        let sql = "SELECT 'a;b''c;', \"x;\"\"y\", E'\\';', $f$ ; $g$ ; $f$;\n\
                   -- a comment; with a semicolon\n\
                   SELECT /* a /* nested; */ comment; */ (1;2);\n\
                   CREATE FUNCTION f() RETURNS int LANGUAGE sql\n\
                   BEGIN ATOMIC\n SELECT CASE WHEN true THEN 1 END;\n SELECT 2;\nEND;\n\
                   SELECT a$b$c; SELECT $1, 1$$x;$$;\n";
        assert_eq!(
            statements(sql),
            [
                "SELECT 'a;b''c;', \"x;\"\"y\", E'\\';', $f$ ; $g$ ; $f$;",
                "-- a comment; with a semicolon\nSELECT /* a /* nested; */ comment; */ (1;2);",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n SELECT CASE WHEN \
                 true THEN 1 END;\n SELECT 2;\nEND;",
                "SELECT a$b$c;",
                "SELECT $1, 1$$x;$$;",
            ]
        );
    }

    #[test]
    fn backslashes_outside_quotes_are_commands() {
        assert_eq!(
            statements("SELECT '\\! a', $$\\!$$, \"\\\"; SELECT 1 \\! touch x\n"),
            ["SELECT '\\! a', $$\\!$$, \"\\\";", "\\ at 37"]
        );
        let mut lexer = Lexer::new();
        assert_eq!(lexer.scan(b"  -- only a comment\n"), Stop::More);
        assert!(lexer.between());
        assert_eq!(lexer.scan(b"/* open\n"), Stop::More);
        assert!(!lexer.between());
        assert_eq!(lexer.scan(b"*/ SELECT\n"), Stop::More);
        assert!(!lexer.between());
    }
}
