//! What can go wrong reading a run directory, locking it, or talking to its
//! trainer. Messages name the file or socket; callers add what they were doing.

use std::path::PathBuf;

use crate::experiment::Diagnostic;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    /// The run's stored experiment no longer parses.
    #[error("{0}")]
    Experiment(Box<Diagnostic>),
    #[error(
        "{} is in use by {holder}: one run directory has one trainer (stop that one first)",
        dir.display()
    )]
    InUse { dir: PathBuf, holder: String },
    /// The lock file could not be opened, locked or written.
    #[error("{}: {doing} {}: {source}", dir.display(), super::lock::LOCK)]
    Lock {
        dir: PathBuf,
        doing: &'static str,
        source: std::io::Error,
    },
    #[error("cannot reach the trainer at {}: {source}", path.display())]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Socket(#[from] std::io::Error),
    #[error("bad reply {reply:?}: {source}")]
    BadReply {
        reply: String,
        source: serde_json::Error,
    },
}
