//! The audio-visual digits set (AV-MNIST style): each MNIST image is paired
//! with a spoken FSDD clip of the same digit from the same split.
//!
//! Pairing is deterministic in the seed: a training image gets a clip drawn
//! uniformly from the FSDD training clips (takes 5-49) of its digit, a test
//! image one from the FSDD test clips (takes 0-4), so train and test are
//! disjoint on both sides. The training split uses `seed`, the test split
//! `seed + 1` (wrapping). Audio features are log-magnitude spectrograms
//! standardised per frequency bin with a [`Normalizer`] fitted on the FSDD
//! training clips (each clip counted once).

use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::dataset::{DatasetBuilder, MultimodalDataset};
use crate::data::error::{DataError, Result};
use crate::data::fsdd::{Fsdd, FsddOptions};
use crate::data::idx::Mnist;
use crate::data::normalizer::Normalizer;
use crate::data::spectrogram::SpectrogramConfig;
use crate::data::split::Split;
use crate::data::wav::Resample;

/// Name of the image column (784 values in `[0, 1]`).
pub const IMAGE: &str = "image";
/// Name of the audio column (`frames * bins` standardised values).
pub const AUDIO: &str = "audio";
/// Name of the label column (digit as f32).
pub const LABEL: &str = "label";

/// How to build the audio-visual digits set.
#[derive(Debug, Clone, PartialEq)]
pub struct AvDigitsConfig {
    /// Spectrogram settings for the audio column.
    pub spectrogram: SpectrogramConfig,
    /// Seed of the pairing.
    pub seed: u64,
    /// Keep only the first this many MNIST training images.
    pub train_limit: Option<usize>,
    /// Keep only the first this many MNIST test images.
    pub test_limit: Option<usize>,
    /// Whether FSDD clips at another rate are resampled.
    pub resample: Resample,
    /// Threads for loading FSDD.
    pub threads: usize,
}

impl Default for AvDigitsConfig {
    /// Default spectrogram, seed 0, all images, no resampling, 2 threads.
    fn default() -> Self {
        AvDigitsConfig {
            spectrogram: SpectrogramConfig::default(),
            seed: 0,
            train_limit: None,
            test_limit: None,
            resample: Resample::Deny,
            threads: 2,
        }
    }
}

/// The paired training and test sets with the audio normaliser.
#[derive(Debug, Clone, PartialEq)]
pub struct AvDigits {
    /// Training pairs: columns [`IMAGE`], [`AUDIO`], [`LABEL`].
    pub train: MultimodalDataset,
    /// Test pairs, same columns.
    pub test: MultimodalDataset,
    /// Per-bin audio standardisation fitted on FSDD training clips; invert it
    /// before Griffin-Lim.
    pub normalizer: Normalizer,
}

/// For each image label, the index of a clip with the same label drawn
/// uniformly (with `seed`) from `pool`, a list of indices into `clip_labels`.
pub fn pair_by_digit(
    image_labels: &[u8],
    clip_labels: &[u8],
    pool: &[usize],
    seed: u64,
) -> Result<Vec<usize>> {
    let mut by_digit: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for &i in pool {
        let l = clip_labels.get(i).ok_or_else(|| {
            DataError::Dataset(format!(
                "clip index {i} is out of range for {} clips",
                clip_labels.len()
            ))
        })?;
        by_digit[*l as usize].push(i);
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    image_labels
        .iter()
        .map(|&l| {
            by_digit[l as usize]
                .choose(&mut rng)
                .copied()
                .ok_or_else(|| {
                    DataError::Dataset(format!("no audio clip of digit {l} to pair with"))
                })
        })
        .collect()
}

impl AvDigits {
    /// Loads MNIST from `root/mnist` and FSDD from `root/fsdd/recordings`, then pairs them.
    pub fn load(root: &Path, config: &AvDigitsConfig) -> Result<Self> {
        let mnist = root.join("mnist");
        let train = Mnist::load(&mnist, Split::Train, config.train_limit)?;
        let test = Mnist::load(&mnist, Split::Test, config.test_limit)?;
        let options = FsddOptions {
            split: None,
            resample: config.resample,
            threads: config.threads,
        };
        let fsdd = Fsdd::load(
            &root.join("fsdd").join("recordings"),
            &config.spectrogram,
            &options,
        )?;
        Self::from_parts(&train, &test, &fsdd, config.seed)
    }

    /// Pairs already loaded MNIST splits with FSDD clips (all splits loaded).
    pub fn from_parts(train: &Mnist, test: &Mnist, fsdd: &Fsdd, seed: u64) -> Result<Self> {
        let dim = fsdd.config.dim();
        if fsdd.labels.len() != fsdd.takes.len() || fsdd.features.len() != fsdd.labels.len() * dim {
            return Err(DataError::Dataset(format!(
                "FSDD parts disagree: {} labels, {} takes, {} feature values for dimension {dim}",
                fsdd.labels.len(),
                fsdd.takes.len(),
                fsdd.features.len()
            )));
        }
        let train_clips = fsdd.indices(Split::Train);
        let test_clips = fsdd.indices(Split::Test);
        let mut train_audio = Vec::with_capacity(train_clips.len() * dim);
        for &i in &train_clips {
            train_audio.extend_from_slice(&fsdd.features[i * dim..(i + 1) * dim]);
        }
        if train_audio.is_empty() {
            return Err(DataError::Dataset(
                "no FSDD training clips to fit the audio normaliser on".into(),
            ));
        }
        let normalizer = Normalizer::fit(&train_audio, fsdd.config.bins)?;
        let mut features = fsdd.features.clone();
        normalizer.apply(&mut features)?;
        let build = |mnist: &Mnist, pool: &[usize], seed: u64| -> Result<MultimodalDataset> {
            let picks = pair_by_digit(&mnist.labels, &fsdd.labels, pool, seed)?;
            let mut audio = Vec::with_capacity(picks.len() * dim);
            for &c in &picks {
                audio.extend_from_slice(&features[c * dim..(c + 1) * dim]);
            }
            DatasetBuilder::new()
                .column(IMAGE, mnist.rows * mnist.cols, mnist.images.clone())
                .column(AUDIO, dim, audio)
                .labels(LABEL, &mnist.labels)
                .build()
        };
        Ok(AvDigits {
            train: build(train, &train_clips, seed)?,
            test: build(test, &test_clips, seed.wrapping_add(1))?,
            normalizer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::fsdd::tests::write_fake_fsdd;
    use crate::data::idx::write_idx_gz;

    #[test]
    fn pairs_match_digit_and_stay_in_pool() {
        let clips = [0u8, 1, 2, 0, 1, 2, 0, 1, 2];
        let pool = [3, 4, 5, 6, 7, 8];
        let images = [2u8, 0, 1, 1, 0, 2, 2, 2];
        let p = pair_by_digit(&images, &clips, &pool, 5).unwrap();
        for (img, c) in images.iter().zip(&p) {
            assert_eq!(clips[*c], *img);
            assert!(pool.contains(c));
        }
        assert_eq!(p, pair_by_digit(&images, &clips, &pool, 5).unwrap());
        let e = pair_by_digit(&[3], &clips, &pool, 0).unwrap_err();
        assert!(e.to_string().contains("digit 3"), "{e}");
        assert!(pair_by_digit(&[0], &clips, &[99], 0).is_err());
    }

    fn fake_root() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let mnist = root.path().join("mnist");
        let rec = root.path().join("fsdd").join("recordings");
        std::fs::create_dir_all(&mnist).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        for (prefix, n) in [("train", 30usize), ("t10k", 20)] {
            let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
            let pixels: Vec<u8> = (0..n * 784).map(|i| (i % 251) as u8).collect();
            write_idx_gz(
                &mnist.join(format!("{prefix}-images-idx3-ubyte.gz")),
                &[n, 28, 28],
                &pixels,
            )
            .unwrap();
            write_idx_gz(
                &mnist.join(format!("{prefix}-labels-idx1-ubyte.gz")),
                &[n],
                &labels,
            )
            .unwrap();
        }
        write_fake_fsdd(&rec, &["ann"], 7);
        root
    }

    #[test]
    fn builds_disjoint_paired_splits() {
        let root = fake_root();
        let cfg = AvDigitsConfig::default();
        let av = AvDigits::load(root.path(), &cfg).unwrap();
        assert_eq!((av.train.len(), av.test.len()), (30, 20));
        assert_eq!(av.train.names(), vec![IMAGE, AUDIO, LABEL]);
        assert_eq!(av.train.column(AUDIO).unwrap().dim(), cfg.spectrogram.dim());
        assert_eq!(av.train.column(IMAGE).unwrap().dim(), 784);
        // With one speaker, clip (digit d, take t) is unique: recover it.
        let fsdd = Fsdd::load(
            &root.path().join("fsdd/recordings"),
            &cfg.spectrogram,
            &FsddOptions::default(),
        )
        .unwrap();
        let mut feats = fsdd.features.clone();
        av.normalizer.apply(&mut feats).unwrap();
        let dim = cfg.spectrogram.dim();
        for (set, split) in [(&av.train, Split::Train), (&av.test, Split::Test)] {
            for s in 0..set.len() {
                let audio = set.column(AUDIO).unwrap().sample(s).unwrap();
                let c = (0..fsdd.len())
                    .find(|&c| &feats[c * dim..(c + 1) * dim] == audio)
                    .unwrap();
                assert_eq!(
                    f32::from(fsdd.labels[c]),
                    set.column(LABEL).unwrap().values()[s]
                );
                assert_eq!((fsdd.takes[c] < 5), split == Split::Test);
            }
        }
        assert_eq!(AvDigits::load(root.path(), &cfg).unwrap(), av);
        let other = AvDigitsConfig { seed: 9, ..cfg };
        assert_ne!(AvDigits::load(root.path(), &other).unwrap().train, av.train);
    }

    #[test]
    #[ignore = "needs MVAE_DATA"]
    fn real_av_digits() {
        let root = std::path::PathBuf::from(std::env::var("MVAE_DATA").expect("MVAE_DATA"));
        let cfg = AvDigitsConfig {
            train_limit: Some(5000),
            ..Default::default()
        };
        let av = AvDigits::load(&root, &cfg).unwrap();
        assert_eq!((av.train.len(), av.test.len()), (5000, 10000));
        let audio = av.train.column(AUDIO).unwrap().values();
        let mean = audio.iter().map(|&v| f64::from(v)).sum::<f64>() / audio.len() as f64;
        assert!(mean.abs() < 0.2, "{mean}");
    }
}
