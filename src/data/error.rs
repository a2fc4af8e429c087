//! The one error type of the data layer, [`DataError`].

use std::path::Path;

/// Everything that can go wrong while reading, writing or assembling data.
///
/// Messages are lowercase, carry no trailing period and name the file (or the
/// data set column) and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The operating system refused a read, write, rename or listing.
    #[error("{path}: {source}")]
    Io {
        /// File or folder concerned.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// An IDX (MNIST) file is malformed, truncated or implausible.
    #[error("{file}: {reason}")]
    Idx {
        /// File concerned.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file is malformed, truncated or of an unsupported format.
    #[error("{file}: {reason}")]
    Wav {
        /// File concerned.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A WAV file has another sample rate than expected and resampling was not allowed.
    #[error("{file}: sample rate is {found} Hz but {expected} Hz is expected and resampling is not allowed")]
    SampleRate {
        /// File concerned.
        file: String,
        /// Rate found in the file.
        found: u32,
        /// Rate that was asked for.
        expected: u32,
    },
    /// An image cannot be decoded.
    #[error("{file}: {reason}")]
    Image {
        /// File concerned.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A CSV file is malformed (ragged row, non-number, infinity).
    #[error("{file}: line {line}: {reason}")]
    Csv {
        /// File concerned.
        file: String,
        /// 1-based line number.
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file name does not follow the expected pattern.
    #[error("{file}: {reason}")]
    FileName {
        /// File concerned.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// A folder holds nothing usable.
    #[error("{path}: {reason}")]
    Empty {
        /// Folder concerned.
        path: String,
        /// What is missing.
        reason: String,
    },
    /// Columns of a data set disagree, or a data set operation got bad arguments.
    #[error("data set: {0}")]
    Dataset(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Result with [`DataError`].
pub type Result<T> = std::result::Result<T, DataError>;

/// Shows a path the way error messages print it.
pub(crate) fn show(path: &Path) -> String {
    path.display().to_string()
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: show(path),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_without_trailing_period() {
        let errors = [
            DataError::io(
                Path::new("a.gz"),
                std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
            ),
            DataError::SampleRate {
                file: "x.wav".into(),
                found: 44100,
                expected: 8000,
            },
            DataError::Csv {
                file: "t.csv".into(),
                line: 3,
                reason: "ragged row".into(),
            },
            DataError::Dataset("column 'a' has 3 samples but column 'b' has 4".into()),
            DataError::Config("n_fft must be at least 2".into()),
        ];
        for e in errors {
            let m = e.to_string();
            assert!(!m.ends_with('.'), "{m}");
            assert_eq!(
                m.chars().next(),
                m.chars().next().map(|c| c.to_ascii_lowercase())
            );
        }
    }
}
