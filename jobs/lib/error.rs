use std::fmt;
use std::io;
use std::path::Path;

pub type Result<T> = std::result::Result<T, Error>;

/// Why a job stopped, which decides its exit status. The numbers follow
/// sysexits(3) where one fits, so units can react to them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The work itself failed (dump command, read or write error).
    Failure,
    /// Bad argument or malformed configuration value; nothing was written.
    Usage,
    /// Could not tell: systemd cannot be reached, or what a report needs
    /// cannot be read or written (monitoring plugins' UNKNOWN).
    Unknown,
    /// The dump was published but looks wrong, so it counts for nothing
    /// (EX_DATAERR).
    Suspect,
    /// The output file or directory cannot be created or opened (EX_CANTCREAT).
    CantCreate,
    /// Not allowed to act as asked, such as root on a directory it does
    /// not own; nothing was changed (EX_NOPERM).
    NoPermission,
    /// Another run holds the lock, or this run lost it; try again later
    /// (EX_TEMPFAIL).
    Locked,
    /// A required variable is not set (EX_CONFIG).
    NotConfigured,
    /// Stopped by this signal number; exits 128 + N like a shell.
    Signal(i32),
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Failure => 1,
            Exit::Usage => 2,
            Exit::Unknown => 3,
            Exit::Suspect => 65,
            Exit::CantCreate => 73,
            Exit::NoPermission => 77,
            Exit::Locked => 75,
            Exit::NotConfigured => 78,
            Exit::Signal(n) => u8::try_from(128 + n).unwrap_or(u8::MAX),
        }
    }
}

/// A one-line message for the journal and the exit status that goes with it.
#[derive(Debug)]
pub struct Error {
    exit: Exit,
    message: String,
}

impl Error {
    pub fn new(exit: Exit, message: impl Into<String>) -> Error {
        let message: String = message.into();
        // The journal shows one record per line: keep each error on one.
        let message = message.replace(['\n', '\r'], " ");
        Error { exit, message }
    }

    /// `what` failed on `path` because of `err`; `hint` says what to do.
    pub fn io(exit: Exit, what: &str, path: &Path, err: &io::Error, hint: &str) -> Error {
        let mut message = format!("{what} {}: {err}", path.display());
        if !hint.is_empty() {
            message.push_str("; ");
            message.push_str(hint);
        }
        Error::new(exit, message)
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}
