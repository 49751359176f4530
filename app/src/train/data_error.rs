//! Why a data set could not be read. Every message names the file or
//! directory, and the line in text files, so a user can go and look.

use std::path::PathBuf;

use super::idx::IdxError;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot list {}: {source}", path.display())]
    List {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot decode {}: {source}", path.display())]
    Decode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// A file the format needs is not there; `expected` says what should be.
    #[error("{} not found: {expected}", path.display())]
    NotFound { path: PathBuf, expected: String },
    #[error(
        "{} has no class directories (expected {}/<class name>/<image>.png|jpg|jpeg)",
        dir.display(),
        dir.display()
    )]
    NoClasses { dir: PathBuf },
    /// The file or directory is there, but its content is not what the format
    /// says.
    #[error("{}: {what}", path.display())]
    Content { path: PathBuf, what: String },
    #[error("{}:{line}: {what}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error(transparent)]
    Idx(#[from] IdxError),
    /// The tokenizer library failed while `doing` something with the vocabulary.
    #[error("{doing}: {source}")]
    Vocabulary {
        doing: &'static str,
        source: tokenizers::Error,
    },
    /// A setting the data cannot be read with.
    #[error("{0}")]
    Setting(&'static str),
}

impl DataError {
    pub fn content(path: impl Into<PathBuf>, what: impl Into<String>) -> DataError {
        DataError::Content {
            path: path.into(),
            what: what.into(),
        }
    }
}
