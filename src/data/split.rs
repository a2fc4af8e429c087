//! The train/test split selector shared by the MNIST and FSDD loaders.

use serde::{Deserialize, Serialize};

/// Which standard split of a data set to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Split {
    /// The training split.
    Train,
    /// The held-out test split.
    Test,
}
