//! Pieces the examples share (included with `mod common;`; not an example itself): the flags
//! every example takes, loading MNIST from them, running on the device they name, and the
//! checks of numeric flags.

// Each example uses the part it needs.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use dfdx::prelude::Cpu;
use mvae::data::{Mnist, MultimodalDataset, Split};
use mvae::Backend;

/// The flags every example takes: where the data is, how much of it, the seed, the output and
/// the device.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Folder holding mnist/ (and fsdd/recordings/ for the examples with sound) [default:
    /// $MVAE_DATA, else the sample bundled in examples/data]
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Use only the first N training images
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Seed of everything random: weights, shuffling, noise, hiding, pairing
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Print JSON lines for scripts instead of the readable summary
    #[arg(long)]
    pub json: bool,
    /// Train on the GPU (needs a build with --features cuda)
    #[arg(long)]
    pub cuda: bool,
}

impl RunArgs {
    /// The data folder: `--data`, else `$MVAE_DATA`, else the bundled sample.
    pub fn data_root(&self) -> PathBuf {
        data_root(self.data.as_deref())
    }

    /// MNIST's training set (the first `--limit` images) and test set, as image + label data.
    pub fn mnist(&self) -> Result<(MultimodalDataset, MultimodalDataset)> {
        let dir = self.data_root().join("mnist");
        let load = |split, limit| -> Result<MultimodalDataset> {
            Ok(Mnist::load(&dir, split, limit)
                .with_context(|| format!("loading MNIST from {}", dir.display()))?
                .into_dataset()?)
        };
        Ok((load(Split::Train, self.limit)?, load(Split::Test, None)?))
    }

    /// Runs `job` on the GPU with `--cuda`, else on the CPU.
    pub fn on_device(&self, job: impl OnDevice) -> Result<()> {
        if self.cuda {
            #[cfg(feature = "cuda")]
            return job.run(mvae::backend::cuda_device(0)?);
            #[cfg(not(feature = "cuda"))]
            anyhow::bail!("--cuda needs a build with `--features cuda`");
        }
        job.run(Cpu::default())
    }
}

/// The data folder: `data` (a `--data` flag), else `$MVAE_DATA`, else the bundled sample.
pub fn data_root(data: Option<&Path>) -> PathBuf {
    data.map(Path::to_path_buf)
        .or_else(|| std::env::var_os("MVAE_DATA").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data"))
}

/// An example's work, written once for any device: [`RunArgs::on_device`] picks the device
/// (a closure cannot be generic over it).
pub trait OnDevice {
    /// Runs on `dev`.
    fn run<D: Backend>(self, dev: D) -> Result<()>;
}

/// Parses a whole number of at least 1 (epochs, steps, sizes).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("takes a whole number >= 1, not {s:?}")),
    }
}

/// Parses a finite number >= 0 (epochs of annealing).
pub fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("takes a number >= 0, not {s:?}")),
    }
}

/// Parses a finite number > 0 (weights).
pub fn positive(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("takes a number > 0, not {s:?}")),
    }
}

/// Parses a fraction in [0, 1] (rates of hidden modalities).
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!("takes a fraction between 0 and 1, not {s:?}")),
    }
}
