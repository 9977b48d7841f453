//! Hands one message to a mail server by SMTP (RFC 5321), as a program
//! submits mail to the MTA of its own host: EHLO, MAIL FROM, RCPT TO for
//! each recipient, DATA, QUIT. Plain text without authentication: it is
//! for the MTA on localhost, which takes local mail without either, so
//! that the failure mail needs no privilege (no setuid `sendmail`). Each
//! step is bounded: connecting and every read and write get what is left
//! of one deadline.

use crate::format::escape;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The longest a connection attempt to one address may take.
const CONNECT: Duration = Duration::from_secs(10);

/// The longest reply line read, and the most lines a reply may have: a
/// server's replies are short (RFC 5321 says 512 octets a line), and
/// whatever else listens there must not make the mail grow without bound.
const REPLY_LINE: u64 = 4096;
const REPLY_LINES: usize = 100;

/// The server's address: `host:port`, or `[v6]:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Server {
    /// `host:port` or `[v6]:port`; None when it is neither.
    pub fn parse(text: &str) -> Option<Server> {
        let (host, port) = match text.strip_prefix('[') {
            Some(rest) => {
                let (host, port) = rest.split_once("]:")?;
                host.parse::<std::net::Ipv6Addr>().ok()?;
                (host, port)
            }
            None => text.rsplit_once(':')?,
        };
        let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
        let name = |c: char| c.is_ascii_alphanumeric() || ".-_:".contains(c);
        if host.is_empty()
            || !host.chars().all(name)
            || (host.contains(':') && !text.starts_with('['))
        {
            return None;
        }
        Some(Server {
            host: host.to_owned(),
            port,
        })
    }
}

/// Who sends the message to whom: the name the client greets with (its
/// host's), the envelope's sender and its recipients, all qualified.
pub struct Envelope<'a> {
    pub helo: &'a str,
    pub from: &'a str,
    pub to: &'a [String],
}

/// Why the message was not handed over.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Nothing listens at the server's address: every address it has
    /// refused the connection.
    Refused,
    /// Anything else, in words, with the server's reply where it gave one.
    Failed(String),
}

/// Hands `message` (RFC 5322 text, its lines ending in LF or CRLF, none
/// longer than 998 octets) to `server` for `envelope`'s recipients, by
/// `deadline`. It succeeds when the server took the message for every
/// recipient; when it refused some of them, the others still get it and
/// the failure names those refused.
pub fn send(
    server: &Server,
    envelope: &Envelope,
    message: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let stream = connect(server, deadline)?;
    let mut session = Session {
        server,
        conn: BufReader::new(Timed { stream, deadline }),
        ended: false,
    };
    let result = session.deliver(envelope, message);
    if !session.ended {
        // A server that refused a step is told goodbye; one that stopped
        // answering is not waited for again.
        let _ = session.write(b"QUIT\r\n");
    }
    result
}

/// A connection to the first of the server's addresses that takes one.
fn connect(server: &Server, deadline: Instant) -> Result<TcpStream, Failure> {
    let addresses: Vec<SocketAddr> = (server.host.as_str(), server.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Failed(format!("cannot resolve {server}: {e}")))?
        .collect();
    let mut errors = Vec::new();
    for address in &addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(address, left.min(CONNECT)) {
            Ok(stream) => return Ok(stream),
            Err(e) => errors.push(e),
        }
    }
    let refused = |e: &io::Error| e.kind() == io::ErrorKind::ConnectionRefused;
    if !errors.is_empty() && errors.len() == addresses.len() && errors.iter().all(refused) {
        return Err(Failure::Refused);
    }
    Err(Failure::Failed(match errors.iter().find(|e| !refused(e)) {
        Some(e) => format!("cannot connect to {server}: {e}"),
        None => format!("cannot connect to {server}: no address, or no time left"),
    }))
}

/// A stream whose every read and write waits at most until the deadline.
struct Timed {
    stream: TcpStream,
    deadline: Instant,
}

impl Timed {
    fn left(&self) -> io::Result<Duration> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(left)
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.set_read_timeout(Some(self.left()?))?;
        self.stream.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.stream.set_write_timeout(Some(self.left()?))?;
        self.stream.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}

/// A server's reply: its code and its lines' text.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    /// The reply as the server wrote it, on one line, escaped.
    fn shown(&self) -> String {
        let text: Vec<String> = self
            .lines
            .iter()
            .map(|l| format!("{} {}", self.code, escape(l)).trim_end().to_owned())
            .collect();
        text.join(" / ")
    }
}

struct Session<'a> {
    server: &'a Server,
    conn: BufReader<Timed>,
    /// QUIT is sent.
    ended: bool,
}

impl Session<'_> {
    fn deliver(&mut self, envelope: &Envelope, message: &str) -> Result<(), Failure> {
        self.expect("the greeting", 220)?;
        let ehlo = format!("EHLO {}", envelope.helo);
        let reply = self.command(&ehlo)?;
        let extensions: Vec<String> = match reply.code {
            250 => reply.lines[1..]
                .iter()
                .map(|l| l.to_ascii_uppercase())
                .collect(),
            // A server that knows no EHLO is greeted the old way.
            500..=504 => {
                self.check(&format!("HELO {}", envelope.helo), 250)?;
                Vec::new()
            }
            _ => return Err(self.refused(&ehlo, &reply)),
        };
        // The body is UTF-8: say so where the server knows the word.
        let body = if extensions
            .iter()
            .any(|e| e.split(' ').next() == Some("8BITMIME"))
        {
            " BODY=8BITMIME"
        } else {
            ""
        };
        self.check(&format!("MAIL FROM:<{}>{body}", envelope.from), 250)?;
        let mut refused = Vec::new();
        for to in envelope.to {
            let rcpt = format!("RCPT TO:<{to}>");
            let reply = self.command(&rcpt)?;
            if !matches!(reply.code, 250 | 251) {
                refused.push(format!("{}: {}", escape(to), reply.shown()));
            }
        }
        if refused.len() == envelope.to.len() {
            return Err(self.failed(format!(
                "the server refused every recipient ({}): no mail sent",
                refused.join("; ")
            )));
        }
        self.check("DATA", 354)?;
        self.write(&data(message))
            .map_err(|e| self.io("sending the message", &e))?;
        let reply = self.reply("the end of the message")?;
        if reply.code != 250 {
            return Err(self.refused("the message", &reply));
        }
        // The message is the server's now: the end of the session is a
        // courtesy that nothing depends on.
        self.ended = true;
        let _ = self.write(b"QUIT\r\n").map(|()| self.reply("QUIT"));
        if !refused.is_empty() {
            return Err(self.failed(format!(
                "the server refused {} (the other recipients got the mail)",
                refused.join("; ")
            )));
        }
        Ok(())
    }

    /// Sends `command` and expects `code`.
    fn check(&mut self, command: &str, code: u16) -> Result<Reply, Failure> {
        let reply = self.command(command)?;
        if reply.code != code {
            return Err(self.refused(command, &reply));
        }
        Ok(reply)
    }

    fn command(&mut self, command: &str) -> Result<Reply, Failure> {
        self.write(format!("{command}\r\n").as_bytes())
            .map_err(|e| self.io(&format!("sending {command}"), &e))?;
        self.reply(command)
    }

    fn expect(&mut self, what: &str, code: u16) -> Result<Reply, Failure> {
        let reply = self.reply(what)?;
        if reply.code != code {
            return Err(self.refused(what, &reply));
        }
        Ok(reply)
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let conn = self.conn.get_mut();
        conn.write_all(bytes)?;
        conn.flush()
    }

    /// The server's reply to `what`: lines `CODE-text` up to the last,
    /// `CODE text` (or `CODE` alone).
    fn reply(&mut self, what: &str) -> Result<Reply, Failure> {
        let mut lines = Vec::new();
        loop {
            let mut line = Vec::new();
            let read = (&mut self.conn)
                .take(REPLY_LINE)
                .read_until(b'\n', &mut line);
            let read =
                read.map_err(|e| self.io(&format!("waiting for the reply to {what}"), &e))?;
            if read == 0 {
                return Err(self.failed(format!(
                    "the server closed the connection before it replied to {what}"
                )));
            }
            let not_smtp = || {
                self.failed(format!(
                    "the reply to {what} is not SMTP: {}",
                    crate::format::escape_bytes(&line)
                ))
            };
            if !line.ends_with(b"\n") || lines.len() == REPLY_LINES {
                return Err(self.failed(format!("the reply to {what} is too long for SMTP")));
            }
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches(['\r', '\n']);
            let code = text
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok())
                .filter(|c| (200..600).contains(c))
                .ok_or_else(not_smtp)?;
            let (last, rest) = match text.as_bytes().get(3) {
                None => (true, ""),
                Some(b' ') => (true, &text[4..]),
                Some(b'-') => (false, &text[4..]),
                Some(_) => return Err(not_smtp()),
            };
            lines.push(rest.to_owned());
            if last {
                return Ok(Reply { code, lines });
            }
        }
    }

    fn failed(&self, what: String) -> Failure {
        Failure::Failed(format!("SMTP to {}: {what}", self.server))
    }

    fn refused(&self, what: &str, reply: &Reply) -> Failure {
        self.failed(format!("the server refused {what}: {}", reply.shown()))
    }

    fn io(&self, what: &str, e: &io::Error) -> Failure {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                self.failed(format!("timed out {what}"))
            }
            _ => self.failed(format!("{what}: {e}")),
        }
    }
}

/// The message as DATA carries it: each line ended by CRLF, a line that
/// starts with a dot given another (RFC 5321 4.5.2), then the lone dot.
fn data(message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    for line in message.lines() {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread::JoinHandle;

    /// A fake server on a port of its own: it answers each line it reads
    /// (a command, or the end of the message) with the next of `replies`,
    /// after its greeting, and returns all it read.
    fn fake(greeting: &str, replies: &[&str]) -> (Server, JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let greeting = greeting.to_owned();
        let replies: Vec<String> = replies.iter().map(|r| r.to_string()).collect();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            // A client that has gone is the end of the conversation.
            let _ = stream.write_all(greeting.as_bytes());
            let mut seen = String::new();
            let mut in_data = false;
            for reply in replies {
                // Read up to a command, or to the message's end.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return seen;
                    }
                    seen.push_str(&line);
                    if in_data && line != ".\r\n" {
                        continue;
                    }
                    in_data = line == "DATA\r\n";
                    break;
                }
                let _ = stream.write_all(reply.as_bytes());
            }
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            seen + &rest
        });
        (
            Server {
                host: "127.0.0.1".into(),
                port,
            },
            handle,
        )
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn to(addresses: &[&str]) -> Vec<String> {
        addresses.iter().map(|a| a.to_string()).collect()
    }

    #[test]
    fn a_message_goes_over_with_crlf_dot_stuffing_and_8bitmime() {
        let (server, seen) = fake(
            "220-mx.example ESMTP\r\n220 ready\r\n",
            &[
                "250-mx.example\r\n250-SIZE 1000\r\n250-8bitmime\r\n250 HELP\r\n",
                "250 OK\r\n",
                "250 OK\r\n",
                "251 forwarded\r\n",
                "354 go ahead\r\n",
                "250 queued as 1\r\n",
                "221 bye\r\n",
            ],
        );
        let recipients = to(&["root@db1.example", "ops@example.org"]);
        let envelope = Envelope {
            helo: "db1.example",
            from: "timerapps-mail@db1.example",
            to: &recipients,
        };
        let message = "Subject: x\n\n.starts with a dot\n..two\r\nmiddle . dot\n.\nlast";
        assert_eq!(send(&server, &envelope, message, soon()), Ok(()));
        assert_eq!(
            seen.join().unwrap(),
            "EHLO db1.example\r\n\
             MAIL FROM:<timerapps-mail@db1.example> BODY=8BITMIME\r\n\
             RCPT TO:<root@db1.example>\r\n\
             RCPT TO:<ops@example.org>\r\n\
             DATA\r\n\
             Subject: x\r\n\r\n..starts with a dot\r\n...two\r\nmiddle . dot\r\n..\r\nlast\r\n.\r\n\
             QUIT\r\n"
        );
    }

    #[test]
    fn a_server_without_ehlo_or_8bitmime_is_greeted_with_helo() {
        let (server, seen) = fake(
            "220 old\r\n",
            &[
                "502 what\r\n",
                "250 hi\r\n",
                "250 OK\r\n",
                "250 OK\r\n",
                "354 go\r\n",
                "250 OK\r\n",
                "221 bye\r\n",
            ],
        );
        let recipients = to(&["root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        assert_eq!(send(&server, &envelope, "x\n", soon()), Ok(()));
        let seen = seen.join().unwrap();
        assert!(
            seen.starts_with("EHLO h\r\nHELO h\r\nMAIL FROM:<a@h>\r\n"),
            "{seen}"
        );
    }

    #[test]
    fn a_refused_recipient_is_named_and_the_others_get_the_mail() {
        let (server, seen) = fake(
            "220 mx\r\n",
            &[
                "250 mx\r\n",
                "250 OK\r\n",
                "550-5.1.1 no such\r\n550 user \x1b[2J\r\n",
                "250 OK\r\n",
                "354 go\r\n",
                "250 OK\r\n",
                "221 bye\r\n",
            ],
        );
        let recipients = to(&["nobody@h", "root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", soon()) else {
            panic!("a refused recipient is a failure");
        };
        assert_eq!(
            e,
            format!(
                "SMTP to {server}: the server refused nobody@h: 550 5.1.1 no such / \
                 550 user \\x1b[2J (the other recipients got the mail)"
            )
        );
        assert!(seen.join().unwrap().contains("\r\nx\r\n.\r\n"));
    }

    #[test]
    fn every_recipient_refused_sends_no_message() {
        let (server, seen) = fake(
            "220 mx\r\n",
            &["250 mx\r\n", "250 OK\r\n", "550 no\r\n", "221 bye\r\n"],
        );
        let recipients = to(&["nobody@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", soon()) else {
            panic!("no recipient is a failure");
        };
        assert!(
            e.contains("refused every recipient (nobody@h: 550 no)"),
            "{e}"
        );
        let seen = seen.join().unwrap();
        assert!(!seen.contains("DATA"), "{seen}");
        assert!(seen.ends_with("QUIT\r\n"), "{seen}");
    }

    #[test]
    fn an_error_reply_fails_with_the_servers_words() {
        let (server, _seen) = fake(
            "220 mx\r\n",
            &["250 mx\r\n", "451 4.3.0 try again later\r\n", "221 bye\r\n"],
        );
        let recipients = to(&["root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        assert_eq!(
            send(&server, &envelope, "x\n", soon()),
            Err(Failure::Failed(format!(
                "SMTP to {server}: the server refused MAIL FROM:<a@h>: 451 4.3.0 try again later"
            )))
        );
        // A greeting that is not 220 is refused too.
        let (server, _seen) = fake("554 go away\r\n", &[]);
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", soon()) else {
            panic!("a refused session is a failure");
        };
        assert!(
            e.ends_with("the server refused the greeting: 554 go away"),
            "{e}"
        );
    }

    #[test]
    fn what_is_not_smtp_fails_and_never_grows_without_bound() {
        let (server, _seen) = fake("HTTP/1.1 400 Bad Request\r\n", &[]);
        let recipients = to(&["root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", soon()) else {
            panic!("not SMTP");
        };
        assert!(
            e.contains("the reply to the greeting is not SMTP: HTTP/1.1 400"),
            "{e}"
        );
        let long = format!("220 {}\r\n", "x".repeat(10_000));
        let (server, _seen) = fake(&long, &[]);
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", soon()) else {
            panic!("too long");
        };
        assert!(
            e.ends_with("the reply to the greeting is too long for SMTP"),
            "{e}"
        );
        let endless = "220-more\r\n".repeat(REPLY_LINES + 1);
        let (server, _seen) = fake(&endless, &[]);
        assert!(send(&server, &envelope, "x\n", soon()).is_err());
    }

    #[test]
    fn a_server_that_never_answers_is_left_at_the_deadline() {
        // It takes the connection and says nothing until the client goes.
        let (server, seen) = fake("", &["never sent"]);
        let recipients = to(&["root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        let deadline = Instant::now() + Duration::from_millis(200);
        let Err(Failure::Failed(e)) = send(&server, &envelope, "x\n", deadline) else {
            panic!("a silent server is a failure");
        };
        assert!(Instant::now() >= deadline);
        assert!(
            e.ends_with("timed out waiting for the reply to the greeting"),
            "{e}"
        );
        seen.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let server = Server {
            host: "127.0.0.1".into(),
            port,
        };
        let recipients = to(&["root@h"]);
        let envelope = Envelope {
            helo: "h",
            from: "a@h",
            to: &recipients,
        };
        assert_eq!(
            send(&server, &envelope, "x\n", soon()),
            Err(Failure::Refused)
        );
    }

    #[test]
    fn servers_are_host_and_port() {
        let parse = |t: &str| Server::parse(t).map(|s| s.to_string());
        assert_eq!(parse("localhost:25").as_deref(), Some("localhost:25"));
        assert_eq!(
            parse("mx.example.org:587").as_deref(),
            Some("mx.example.org:587")
        );
        assert_eq!(parse("[::1]:25").as_deref(), Some("[::1]:25"));
        assert_eq!(Server::parse("[::1]:25").unwrap().host, "::1");
        for bad in [
            "localhost",
            "localhost:0",
            ":25",
            "a b:25",
            "::1:25",
            "[x]:25",
            "h:99999",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
