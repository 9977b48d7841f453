//! The settings every job's monitoring shares (`usage::MONITORING`): where
//! a failed run is mailed, by which server, and where metrics are written. The system's are in
//! `/etc/default/timerapps`, a user's in their own configuration home; both
//! are read as systemd reads an `EnvironmentFile=`.

use crate::jobs::parse_env_file;
use crate::smtp::Server;
use crate::systemd::{config_home, Scope};
use jobkit::catalogue::monitoring_settings;
use jobkit::config::{self, Source};
use jobkit::{Error, Exit, Result};
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;

pub struct Monitoring {
    /// The settings file, whether or not it exists.
    pub file: PathBuf,
    /// MAIL_TO, split at spaces; empty: no mail.
    pub mail_to: Vec<String>,
    /// MAIL_SMTP: the MTA that takes the mail by SMTP.
    pub mail_smtp: Server,
    /// METRICS_DIR; `None`: no metrics.
    pub metrics_dir: Option<PathBuf>,
}

struct Vars(Vec<(String, String)>);

impl Source for Vars {
    fn get(&self, name: &str) -> Option<OsString> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into())
    }
}

impl Monitoring {
    /// The settings of `scope`'s manager; a missing file means the defaults.
    pub fn load(scope: Scope) -> Result<Monitoring> {
        let file = match scope {
            Scope::System => PathBuf::from(monitoring_settings(scope.manager())),
            Scope::User => {
                config_home()?.join(monitoring_settings(scope.manager()).trim_start_matches("%E/"))
            }
        };
        let vars = match std::fs::read_to_string(&file) {
            Ok(text) => Vars(parse_env_file(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vars(Vec::new()),
            Err(e) => {
                return Err(Error::io(
                    Exit::Failure,
                    "cannot read",
                    &file,
                    &e,
                    "no mail is sent and no metrics are written until it can be read",
                ))
            }
        };
        let in_file = |e: Error| Error::new(e.exit(), format!("{}: {e}", file.display()));
        let mail_to = match vars.get("MAIL_TO") {
            Some(v) => addresses(&v).map_err(in_file)?,
            None => Vec::new(),
        };
        let mail_smtp = match vars.get("MAIL_SMTP").filter(|v| !v.is_empty()) {
            Some(v) => server(&v).map_err(in_file)?,
            None => Server {
                host: "localhost".into(),
                port: 25,
            },
        };
        let metrics_dir = match vars.get("METRICS_DIR") {
            Some(v) if v.is_empty() => None,
            _ => Some(
                config::absolute_path(&vars, "METRICS_DIR", "/var/lib/prometheus/node-exporter")
                    .map_err(in_file)?,
            ),
        };
        Ok(Monitoring {
            file,
            mail_to,
            mail_smtp,
            metrics_dir,
        })
    }
}

/// MAIL_TO's addresses, separated by spaces or commas. Each is given to
/// sendmail as an argument, so none may look like an option.
fn addresses(value: &OsString) -> Result<Vec<String>> {
    let bad = || {
        config::invalid(
            "MAIL_TO",
            value,
            "expected addresses such as root or admin@example.org, separated by spaces",
        )
    };
    let text = value.to_str().ok_or_else(bad)?;
    let list: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
        .collect();
    if list
        .iter()
        .any(|a| a.starts_with('-') || a.chars().any(|c| c.is_control() || "<>\"()".contains(c)))
    {
        return Err(bad());
    }
    Ok(list)
}

/// MAIL_SMTP: `host:port`.
fn server(value: &OsString) -> Result<Server> {
    value.to_str().and_then(Server::parse).ok_or_else(|| {
        config::invalid(
            "MAIL_SMTP",
            value,
            "expected host:port, such as localhost:25 or [::1]:25",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_to_is_a_list_of_plain_addresses() {
        let list = |v: &str| addresses(&OsString::from(v)).map_err(|e| e.to_string());
        assert_eq!(list("root").unwrap(), ["root"]);
        assert_eq!(list(" a@x.org, b@y.org ").unwrap(), ["a@x.org", "b@y.org"]);
        assert_eq!(list("").unwrap(), Vec::<String>::new());
        let err = list("-oQ/tmp root").unwrap_err();
        assert!(
            err.starts_with("MAIL_TO=\"-oQ/tmp root\" is invalid"),
            "{err}"
        );
        assert!(list("Admin <a@x.org>").is_err());
    }

    #[test]
    fn mail_smtp_is_host_and_port() {
        let parsed = server(&OsString::from("[::1]:2525")).unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("::1", 2525));
        let err = server(&OsString::from("localhost"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("MAIL_SMTP=\"localhost\" is invalid"),
            "{err}"
        );
    }
}
