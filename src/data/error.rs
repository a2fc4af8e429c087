//! Errors of the data layer: each names the file and what is wrong with it.

use std::path::PathBuf;

/// A data file or data set that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file's contents are malformed.
    #[error("{}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A data set is inconsistent (counts, sizes, values).
    #[error("{what}: {reason}")]
    Invalid {
        /// The data set or column.
        what: String,
        /// What is wrong.
        reason: String,
    },
}
