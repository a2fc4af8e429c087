//! Shared helpers: where the data lives, and MNIST as a two-modality data set.

use std::path::PathBuf;

use mvae::data::{Mnist, MultimodalDataset, Split};

/// The full data sets (`MVAE_DATA`), if configured.
pub fn full_data() -> Option<PathBuf> {
    std::env::var_os("MVAE_DATA").map(PathBuf::from)
}

/// The sample bundled with the repository.
pub fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// MNIST images and labels from `dir/mnist`, as columns `image` and `label`.
pub fn mnist(dir: &std::path::Path, split: Split, limit: Option<usize>) -> MultimodalDataset {
    Mnist::load(&dir.join("mnist"), split, limit)
        .expect("MNIST loads")
        .into_dataset()
        .expect("a valid data set")
}
