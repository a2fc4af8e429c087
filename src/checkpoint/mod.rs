//! Checkpoints: a model, or a whole training run, in one safetensors file.
//!
//! [`Mvae::save`] writes a model checkpoint, [`Trainer::save`] a training checkpoint (the model
//! plus everything needed to continue: settings, counters, Adam's state and the trainer's random
//! state). [`Mvae::load`] reads either kind, [`Trainer::resume`] reads a training checkpoint and
//! continues bit for bit where the saved run stopped. [`Mvae::load_weights`] loads into an
//! existing model and refuses a checkpoint of any other architecture. [`read_info`] reads only the
//! metadata, e.g. to learn the latent size `L` before choosing the model type.
//!
//! # File format (version 1)
//!
//! A [safetensors](https://github.com/huggingface/safetensors) file, written with the
//! `safetensors` crate:
//!
//! - Every model parameter is a little-endian `F32` tensor named by its [`ParamVisitor`] path,
//!   e.g. `encoders.image.input.weight` `[512, 784]` (linear weights are `(outputs, inputs)`),
//!   `encoders.label.input.weight` (an embedding table, `(classes, outputs)`),
//!   `decoders.image.out.bias` `[784]`.
//! - A training checkpoint also holds Adam's moments of every parameter, once it has taken a
//!   step: `optimizer.moment1.<path>` and `optimizer.moment2.<path>`, shaped like the parameter.
//! - `__metadata__` has one entry, `mvae`, a JSON document ([`CheckpointInfo`]):
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "crate_version": "0.1.0",
//!   "latent_size": 20,
//!   "model": { "modalities": [ ... ], "activation": "swish" },
//!   "training": {
//!     "config": { "epochs": 10, "batch_size": 100, "adam": { ... }, ... },
//!     "epoch": 3, "step": 1800, "adam_steps": 1800,
//!     "rng": { "seed": "<64 hex digits>", "stream": 0, "word_pos": "123456" }
//!   }
//! }
//! ```
//!
//! `training` is absent from a model checkpoint. `rng` is the trainer's `ChaCha8Rng`: its seed,
//! stream and position in words (a decimal string, since it is a 128-bit number).
//!
//! A reader refuses a file whose `format_version` is newer than [`FORMAT_VERSION`], any file
//! whose tensors do not match its model config (a tensor missing, extra, of another dtype or
//! shape), and anything that is not such a file, with [`Error::Checkpoint`]. A file is read
//! no further than it declares: the header's length and the tensors' extents are checked
//! against the file's size before their bytes are read, and a model config that declares more
//! parameters than the file holds, or sizes beyond [`ModalitySpec::MAX_VALUES`],
//! [`ModalitySpec::MAX_HIDDEN`] or [`ModelConfig::MAX_PARAMETERS`], is refused before a model
//! is allocated.
//!
//! # Atomic writes
//!
//! A checkpoint is written to a temporary file in the same folder, synced to disk and then
//! renamed over the target, so a save that is interrupted leaves the previous checkpoint intact
//! (at worst with a stale `.<name>.tmp-*` file beside it).
//!
//! # Code
//!
//! `checkpoint/mod.rs` holds the format's types and [`read_info`]; `io.rs` the safetensors
//! reading and writing (metadata, parameters as tensors, atomic writes); `model.rs` saving and
//! loading an [`Mvae`], with `diff.rs` naming where two model configs differ; `training.rs`
//! saving and resuming a [`Trainer`]; `tests.rs` the tests.

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::codec::Codecs;
#[cfg(doc)]
use crate::modality::ModalitySpec;
use crate::model::ModelConfig;
#[cfg(doc)]
use crate::model::Mvae;
#[cfg(doc)]
use crate::nn::ParamVisitor;
use crate::train::TrainConfig;
#[cfg(doc)]
use crate::train::Trainer;
#[cfg(doc)]
use crate::Error;
use crate::Result;

mod diff;
mod io;
mod model;
#[cfg(test)]
mod tests;
mod training;

use io::{info_of, read_file};
pub use model::{load_model, save_model};

/// The newest checkpoint format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The `__metadata__` key holding the [`CheckpointInfo`] JSON.
pub const METADATA_KEY: &str = "mvae";

const MOMENT1: &str = "optimizer.moment1.";
const MOMENT2: &str = "optimizer.moment2.";

/// The metadata of a checkpoint (the JSON in `__metadata__["mvae"]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// Version of the file format ([`FORMAT_VERSION`] when written by this build).
    pub format_version: u32,
    /// Version of the `mvae` crate that wrote the file.
    pub crate_version: String,
    /// The latent size `L` of the model.
    pub latent_size: usize,
    /// The model's architecture.
    pub model: ModelConfig,
    /// The training state; absent in a model checkpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<TrainingInfo>,
    /// How each modality's values are read from and written to files, where known (the
    /// `mvae` tool stores them so that `generate` and `impute` take files).
    #[serde(default, skip_serializing_if = "Codecs::is_empty")]
    pub codecs: Codecs,
}

/// The training state in a training checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// The run's settings.
    pub config: TrainConfig,
    /// Epochs completed.
    pub epoch: usize,
    /// Optimisation steps taken.
    pub step: usize,
    /// Adam's step count (its bias correction); the moments are stored as tensors when it is
    /// above 0.
    pub adam_steps: usize,
    /// The trainer's random state.
    pub rng: RngState,
}

/// The state of a `ChaCha8Rng`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed as 64 lowercase hex digits.
    pub seed: String,
    /// The stream number.
    pub stream: u64,
    /// The position in the stream, in 32-bit words, as a decimal string.
    pub word_pos: String,
}

impl RngState {
    /// The state of `rng`.
    pub(crate) fn of(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: rng.get_seed().iter().map(|b| format!("{b:02x}")).collect(),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// A generator in this state.
    ///
    /// # Errors
    /// A message if the seed is not 64 hex digits or the position not a 128-bit number.
    pub(crate) fn to_rng(&self) -> std::result::Result<ChaCha8Rng, String> {
        let bad_seed = || format!("rng seed {:?} is not 64 hex digits", self.seed);
        let s = self.seed.as_bytes();
        if s.len() != 64 {
            return Err(bad_seed());
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            let pair = std::str::from_utf8(&s[2 * i..2 * i + 2]).map_err(|_| bad_seed())?;
            *b = u8::from_str_radix(pair, 16).map_err(|_| bad_seed())?;
        }
        let pos: u128 = self
            .word_pos
            .parse()
            .map_err(|_| format!("rng word_pos {:?} is not a number", self.word_pos))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(pos);
        Ok(rng)
    }
}

/// Reads the metadata of the checkpoint at `path` (the tensors are checked only by the loaders).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read, [`Error::Checkpoint`] if it is not a readable
/// checkpoint or its format version is newer than [`FORMAT_VERSION`].
pub fn read_info(path: impl AsRef<Path>) -> Result<CheckpointInfo> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    info_of(path, &bytes)
}
