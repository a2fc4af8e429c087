//! Shared helpers: where the data lives, and MNIST as a two-modality data set.

use std::path::PathBuf;

use mvae::data::idx::{Mnist, Split};
use mvae::data::{Column, MultimodalDataset};

/// The full data sets (`MVAE_DATA`), if configured.
#[allow(dead_code)]
pub fn full_data() -> Option<PathBuf> {
    std::env::var_os("MVAE_DATA").map(PathBuf::from)
}

/// The sample bundled with the repository.
pub fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data")
}

/// MNIST images and labels from `dir/mnist`, as columns `image` and `label`.
pub fn mnist(dir: &std::path::Path, split: Split, limit: Option<usize>) -> MultimodalDataset {
    let m = Mnist::load(&dir.join("mnist"), split, limit).expect("MNIST loads");
    let n = m.len();
    MultimodalDataset::new(vec![
        Column {
            name: "image".into(),
            dim: 784,
            values: m.images,
            present: vec![true; n],
        },
        Column {
            name: "label".into(),
            dim: 1,
            values: m.labels.iter().map(|&l| f32::from(l)).collect(),
            present: vec![true; n],
        },
    ])
    .expect("a valid data set")
}
