//! The crate's one error type.
//!
//! Every fallible public function returns [`Result`]. Messages are lowercase, name what was
//! wrong and, for files, the file.

use std::path::PathBuf;

/// Everything that can go wrong in `mvae`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid {field}: {value} (expected {expected})")]
    InvalidConfig {
        /// The field, e.g. `batch_size`.
        field: String,
        /// The value that was given.
        value: String,
        /// What would have been accepted.
        expected: String,
    },
    /// Data has the wrong shape for the model.
    #[error("{what}: expected {expected}, got {got}")]
    Shape {
        /// What was being checked, e.g. `modality image`.
        what: String,
        /// The expected shape or count.
        expected: String,
        /// The shape or count that was found.
        got: String,
    },
    /// Data values are outside what the modality's likelihood accepts.
    #[error("{what}: {reason}")]
    InvalidData {
        /// What was being checked.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A data file could not be read or is malformed.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A checkpoint could not be written, read, or does not match the model.
    #[error("{}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Training diverged (a loss became NaN or infinite).
    #[error("training diverged at step {step}: {what} is {value}")]
    Diverged {
        /// The optimisation step.
        step: usize,
        /// Which quantity.
        what: String,
        /// Its value.
        value: f32,
    },
    /// The requested device cannot be used (no GPU, no driver, a library missing).
    #[error("{what}: {reason}")]
    Device {
        /// The device that was asked for, e.g. `CUDA device 0`.
        what: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// An I/O error with the file it concerns.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand for [`Error::InvalidConfig`].
    pub fn config(field: &str, value: impl std::fmt::Display, expected: &str) -> Self {
        Error::InvalidConfig {
            field: field.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// Shorthand for [`Error::Shape`].
    pub fn shape(
        what: impl Into<String>,
        expected: impl std::fmt::Display,
        got: impl std::fmt::Display,
    ) -> Self {
        Error::Shape {
            what: what.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
