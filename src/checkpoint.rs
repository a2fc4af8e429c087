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
//! shape), and anything that is not such a file, with [`Error::Checkpoint`].
//!
//! # Atomic writes
//!
//! A checkpoint is written to a temporary file in the same folder, synced to disk and then
//! renamed over the target, so a save that is interrupted leaves the previous checkpoint intact
//! (at worst with a stale `.<name>.tmp-*` file beside it).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::codec::Codecs;
use crate::model::{ModelConfig, Mvae};
use crate::nn::{ParamMut, ParamVisitor, Parameters};
use crate::optim::Moments;
use crate::train::{TrainConfig, Trainer};
use crate::{Error, Result};

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

fn ckpt_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
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

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn info_of(path: &Path, bytes: &[u8]) -> Result<CheckpointInfo> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| {
        ckpt_err(
            path,
            format!("not a readable checkpoint (safetensors file truncated or corrupt?): {e:?}"),
        )
    })?;
    let json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(METADATA_KEY))
        .ok_or_else(|| {
            ckpt_err(
                path,
                format!("not an mvae checkpoint: no {METADATA_KEY:?} entry in __metadata__"),
            )
        })?;
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| ckpt_err(path, format!("metadata is not valid JSON: {e}")))?;
    let version = value
        .get("format_version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| ckpt_err(path, "metadata has no format_version"))?;
    if version > u64::from(FORMAT_VERSION) || version == 0 {
        return Err(ckpt_err(
            path,
            format!(
                "format version {version} is not supported: mvae {} reads versions 1 to \
                 {FORMAT_VERSION} (a newer mvae wrote this file?)",
                env!("CARGO_PKG_VERSION")
            ),
        ));
    }
    let info: CheckpointInfo = serde_json::from_value(value)
        .map_err(|e| ckpt_err(path, format!("metadata does not parse: {e}")))?;
    info.model
        .validate()
        .map_err(|e| ckpt_err(path, format!("model config in the checkpoint: {e}")))?;
    Ok(info)
}

/// Every parameter's path and shape, in visiting order.
fn param_shapes<P: Parameters<D>, D: Backend>(model: &mut P) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        let shape = match p {
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
            ParamMut::Vector(t) => vec![t.shape().0],
        };
        out.push((name.to_string(), shape));
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    out
}

/// Host values of one tensor, checked against the expected dtype and shape.
fn tensor_values(
    st: &SafeTensors<'_>,
    name: &str,
    shape: &[usize],
) -> std::result::Result<Vec<f32>, String> {
    let t = st
        .tensor(name)
        .map_err(|_| format!("tensor {name} is missing"))?;
    if t.dtype() != StDtype::F32 {
        return Err(format!(
            "tensor {name} has dtype {:?}, expected F32",
            t.dtype()
        ));
    }
    if t.shape() != shape {
        return Err(format!(
            "tensor {name} has shape {:?}, the model expects {shape:?}",
            t.shape()
        ));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Copies every parameter of `model` from `st`.
fn load_params<const L: usize, D: Backend>(
    path: &Path,
    st: &SafeTensors<'_>,
    model: &mut Mvae<L, D>,
) -> Result<()> {
    let mut err = None;
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        if err.is_some() {
            return;
        }
        let shape = match &p {
            ParamMut::Matrix(t) => vec![t.shape().0, t.shape().1],
            ParamMut::Vector(t) => vec![t.shape().0],
        };
        match tensor_values(st, name, &shape) {
            Ok(v) => match p {
                ParamMut::Matrix(t) => t.copy_from(&v),
                ParamMut::Vector(t) => t.copy_from(&v),
            },
            Err(e) => err = Some(e),
        }
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    err.map_or(Ok(()), |e| Err(ckpt_err(path, e)))
}

/// Refuses tensors in the file that are not in `expected`.
fn check_no_extra(path: &Path, st: &SafeTensors<'_>, expected: &BTreeSet<String>) -> Result<()> {
    let mut extra: Vec<&String> = st
        .names()
        .into_iter()
        .filter(|n| !expected.contains(*n))
        .collect();
    extra.sort();
    match extra.first() {
        None => Ok(()),
        Some(n) => Err(ckpt_err(
            path,
            format!(
                "unexpected tensor {n} ({} tensor(s) that the model config does not have)",
                extra.len()
            ),
        )),
    }
}

fn parse<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes).map_err(|e| {
        ckpt_err(
            path,
            format!("not a readable checkpoint (safetensors file truncated or corrupt?): {e:?}"),
        )
    })
}

fn check_latent(path: &Path, info: &CheckpointInfo, l: usize) -> Result<()> {
    if info.latent_size != l {
        return Err(ckpt_err(
            path,
            format!(
                "latent size differs: checkpoint {}, model {l}",
                info.latent_size
            ),
        ));
    }
    Ok(())
}

/// What differs between the checkpoint's architecture and the model's, if anything.
fn config_difference(ckpt: &ModelConfig, model: &ModelConfig) -> Option<String> {
    fn names(c: &ModelConfig) -> Vec<&str> {
        c.modalities.iter().map(|m| m.name()).collect()
    }
    if names(ckpt) != names(model) {
        return Some(format!(
            "modalities differ: checkpoint {:?}, model {:?}",
            names(ckpt),
            names(model)
        ));
    }
    for (c, m) in ckpt.modalities.iter().zip(&model.modalities) {
        let name = c.name();
        if c.kind != m.kind {
            let json = |k| serde_json::to_string(k).unwrap_or_default();
            return Some(format!(
                "modality {name} differs: checkpoint {}, model {}",
                json(&c.kind),
                json(&m.kind)
            ));
        }
        if c.encoder_hidden != m.encoder_hidden {
            return Some(format!(
                "encoder hidden sizes of {name} differ: checkpoint {:?}, model {:?}",
                c.encoder_hidden, m.encoder_hidden
            ));
        }
        if c.decoder_hidden != m.decoder_hidden {
            return Some(format!(
                "decoder hidden sizes of {name} differ: checkpoint {:?}, model {:?}",
                c.decoder_hidden, m.decoder_hidden
            ));
        }
        if c.weight.to_bits() != m.weight.to_bits() {
            return Some(format!(
                "likelihood weight of {name} differs: checkpoint {}, model {}",
                c.weight, m.weight
            ));
        }
    }
    if ckpt.activation != model.activation {
        return Some(format!(
            "activation differs: checkpoint {:?}, model {:?}",
            ckpt.activation, model.activation
        ));
    }
    (ckpt != model).then(|| "model configs differ".to_string())
}

/// The model of a checkpoint already read: built from its config, weights from its tensors.
fn model_from<const L: usize, D: Backend>(
    path: &Path,
    info: &CheckpointInfo,
    st: &SafeTensors<'_>,
    dev: &D,
) -> Result<Mvae<L, D>> {
    check_latent(path, info, L)?;
    let mut model = Mvae::<L, D>::new(&info.model, dev, 0)
        .map_err(|e| ckpt_err(path, format!("model config in the checkpoint: {e}")))?;
    load_params(path, st, &mut model)?;
    Ok(model)
}

/// Names of the tensors a checkpoint of `shapes` holds (moments only with `moments`).
fn expected_names(shapes: &[(String, Vec<usize>)], moments: bool) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = shapes.iter().map(|(n, _)| n.clone()).collect();
    if moments {
        for (n, _) in shapes {
            names.insert(format!("{MOMENT1}{n}"));
            names.insert(format!("{MOMENT2}{n}"));
        }
    }
    names
}

/// Writes the tensors and metadata to `path`, atomically.
fn write(
    path: &Path,
    info: &CheckpointInfo,
    tensors: Vec<(String, Vec<usize>, &[f32])>,
) -> Result<()> {
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(StDtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| ckpt_err(path, format!("tensor {n}: {e:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let json = serde_json::to_string(info)
        .map_err(|e| ckpt_err(path, format!("metadata does not serialise: {e}")))?;
    let meta = Some(HashMap::from([(METADATA_KEY.to_string(), json)]));
    let buf = ::safetensors::tensor::serialize(views, &meta)
        .map_err(|e| ckpt_err(path, format!("cannot serialise: {e:?}")))?;
    crate::data::atomic::write_atomically(path, |tmp| {
        std::fs::write(tmp, &buf).map_err(|e| crate::data::DataError::io(tmp, e))
    })
    .map_err(|e| ckpt_err(path, format!("cannot write: {e}")))
}

/// Every parameter of `model` as `(path, shape, values)`.
fn param_values<const L: usize, D: Backend>(
    model: &mut Mvae<L, D>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut f = |name: &str, p: ParamMut<'_, D>| {
        let (shape, v) = match p {
            ParamMut::Matrix(t) => (vec![t.shape().0, t.shape().1], t.as_vec()),
            ParamMut::Vector(t) => (vec![t.shape().0], t.as_vec()),
        };
        out.push((name.to_string(), shape, v));
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    out
}

fn model_info<const L: usize, D: Backend>(model: &Mvae<L, D>) -> CheckpointInfo {
    CheckpointInfo {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        latent_size: L,
        model: model.config().clone(),
        training: None,
        codecs: Codecs::new(),
    }
}

/// Saves `model` as a model checkpoint at `path` (see the [module docs](self) for the format).
///
/// # Errors
/// [`Error::Checkpoint`] if the file cannot be written; an existing file at `path` is then left
/// as it was.
pub fn save_model<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    path: impl AsRef<Path>,
) -> Result<()> {
    let path = path.as_ref();
    // Cloning shares the tensors; visiting needs `&mut`.
    let values = param_values(&mut model.clone());
    let tensors = values
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), v.as_slice()))
        .collect();
    write(path, &model_info(model), tensors)
}

/// Loads the model of the checkpoint at `path` (a model or a training checkpoint) onto `dev`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if it is not a checkpoint,
/// is truncated or corrupt, has a newer format version, another latent size than `L`, or
/// tensors that do not match its model config.
pub fn load_model<const L: usize, D: Backend>(
    path: impl AsRef<Path>,
    dev: &D,
) -> Result<Mvae<L, D>> {
    let path = path.as_ref();
    let bytes = read_file(path)?;
    let info = info_of(path, &bytes)?;
    let st = parse(path, &bytes)?;
    let mut model = model_from::<L, D>(path, &info, &st, dev)?;
    let moments = info.training.as_ref().is_some_and(|t| t.adam_steps > 0);
    check_no_extra(
        path,
        &st,
        &expected_names(&param_shapes(&mut model), moments),
    )?;
    Ok(model)
}

impl<const L: usize, D: Backend> Mvae<L, D> {
    /// Saves the model as a model checkpoint at `path`; see [`save_model`].
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the file cannot be written.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(self, path)
    }

    /// Loads the model of the checkpoint at `path` onto `dev`; see [`load_model`].
    ///
    /// # Errors
    /// As [`load_model`].
    pub fn load(path: impl AsRef<Path>, dev: &D) -> Result<Self> {
        load_model(path, dev)
    }

    /// Replaces this model's weights with those of the checkpoint at `path`, which must have
    /// exactly this model's architecture (latent size and [`ModelConfig`]).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] naming what differs (latent size, modalities, a modality's kind,
    /// hidden sizes, weight, activation, a tensor); the weights are then left unchanged. Other
    /// errors as [`load_model`].
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let info = info_of(path, &bytes)?;
        check_latent(path, &info, L)?;
        if let Some(d) = config_difference(&info.model, self.config()) {
            return Err(ckpt_err(path, d));
        }
        let st = parse(path, &bytes)?;
        let mut loaded = model_from::<L, D>(path, &info, &st, self.device())?;
        let moments = info.training.as_ref().is_some_and(|t| t.adam_steps > 0);
        check_no_extra(
            path,
            &st,
            &expected_names(&param_shapes(&mut loaded), moments),
        )?;
        // Copy into this model's tensors so that their ids (and any optimizer state keyed by
        // them) stay valid.
        let values = param_values(&mut loaded);
        let mut it = values.into_iter();
        let mut f = |_: &str, p: ParamMut<'_, D>| {
            let (_, _, v) = it.next().expect("same architecture, same parameters");
            match p {
                ParamMut::Matrix(t) => t.copy_from(&v),
                ParamMut::Vector(t) => t.copy_from(&v),
            }
        };
        self.visit_params(&mut ParamVisitor::new(&mut f));
        Ok(())
    }
}

impl<const L: usize, D: Backend> Trainer<L, D> {
    /// Saves a training checkpoint at `path`: the model, the settings, the epoch and step
    /// counters, Adam's step count and moments, and the random state, so that
    /// [`Trainer::resume`] continues exactly as this trainer would.
    ///
    /// Needs `&mut self` only to read Adam's moments (it changes nothing).
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the file cannot be written; an existing file at `path` is then
    /// left as it was.
    pub fn save(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let values = param_values(&mut self.model);
        let moments = self.adam.moments(&mut self.model);
        let mut info = model_info(&self.model);
        info.codecs = self.codecs.clone();
        info.training = Some(TrainingInfo {
            config: self.cfg.clone(),
            epoch: self.epoch,
            step: self.step,
            adam_steps: self.adam.steps(),
            rng: RngState::of(&self.rng),
        });
        let mut tensors: Vec<(String, Vec<usize>, &[f32])> = values
            .iter()
            .map(|(n, s, v)| (n.clone(), s.clone(), v.as_slice()))
            .collect();
        for ((name, m), (_, shape, _)) in moments.iter().zip(&values) {
            tensors.push((format!("{MOMENT1}{name}"), shape.clone(), &m.first));
            tensors.push((format!("{MOMENT2}{name}"), shape.clone(), &m.second));
        }
        write(path, &info, tensors)
    }

    /// Continues the training run saved at `path` by [`Trainer::save`], on `dev`: the next
    /// [`Trainer::fit_epoch`] or [`Trainer::step`] does exactly what it would have done in the
    /// saved trainer.
    ///
    /// # Errors
    /// [`Error::Checkpoint`] if the file is a model checkpoint (no training state), its
    /// training state is incomplete or invalid (e.g. moments missing), and as
    /// [`load_model`].
    pub fn resume(path: impl AsRef<Path>, dev: &D) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        let info = info_of(path, &bytes)?;
        let training = info.training.clone().ok_or_else(|| {
            ckpt_err(
                path,
                "a model checkpoint, without training state: load it with Mvae::load",
            )
        })?;
        let st = parse(path, &bytes)?;
        let mut model = model_from::<L, D>(path, &info, &st, dev)?;
        let shapes = param_shapes(&mut model);
        check_no_extra(path, &st, &expected_names(&shapes, training.adam_steps > 0))?;
        let rng = training.rng.to_rng().map_err(|e| ckpt_err(path, e))?;
        let mut t = Trainer::new(model, training.config)
            .map_err(|e| ckpt_err(path, format!("training config in the checkpoint: {e}")))?;
        let shape_of: HashMap<&str, &[usize]> = shapes
            .iter()
            .map(|(n, s)| (n.as_str(), s.as_slice()))
            .collect();
        let moments = |name: &str| -> std::result::Result<Moments, String> {
            let shape = shape_of.get(name).copied().unwrap_or_default();
            Ok(Moments {
                first: tensor_values(&st, &format!("{MOMENT1}{name}"), shape)?,
                second: tensor_values(&st, &format!("{MOMENT2}{name}"), shape)?,
            })
        };
        t.adam
            .restore(training.adam_steps, &mut t.model, moments)
            .map_err(|e| ckpt_err(path, e))?;
        t.rng = rng;
        t.codecs = info.codecs;
        t.step = training.step;
        t.epoch = training.epoch;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::data::{BatchOptions, HostBatch, Mnist, MultimodalDataset, Split};
    use crate::modality::{Image, Label, ModalitySpec};
    use rand::{Rng, RngCore};

    type Model = Mvae<4, Cpu>;

    fn small_config() -> ModelConfig {
        ModelConfig::mnist().hidden(&[16], &[16])
    }

    fn mnist(n: usize) -> MultimodalDataset {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
        Mnist::load(&dir, Split::Train, Some(n))
            .expect("bundled MNIST loads")
            .into_dataset()
            .expect("a valid data set")
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// Every weight of `model`, as bits, by path.
    fn weights<const L: usize>(model: &mut Mvae<L, Cpu>) -> Vec<(String, Vec<u32>)> {
        param_values(model)
            .into_iter()
            .map(|(n, _, v)| (n, bits(&v)))
            .collect()
    }

    fn moments(t: &mut Trainer<4, Cpu>) -> Vec<(String, Vec<u32>, Vec<u32>)> {
        t.adam
            .moments(&mut t.model)
            .into_iter()
            .map(|(n, m)| (n, bits(&m.first), bits(&m.second)))
            .collect()
    }

    /// The reason of an [`Error::Checkpoint`]; panics on success or another error.
    fn reason<T>(r: Result<T>) -> String {
        match r {
            Err(Error::Checkpoint { reason, .. }) => reason,
            Err(e) => panic!("expected a checkpoint error, got {e}"),
            Ok(_) => panic!("expected a checkpoint error, got success"),
        }
    }

    fn train_cfg() -> TrainConfig {
        TrainConfig {
            epochs: 2,
            batch_size: 50,
            seed: 7,
            ..Default::default()
        }
    }

    /// One raw tensor of a checkpoint file.
    struct Raw {
        name: String,
        dtype: StDtype,
        shape: Vec<usize>,
        data: Vec<u8>,
    }

    /// Rewrites the checkpoint `src` to `dst` after `edit` changed its tensors and metadata.
    fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<Raw>, &mut serde_json::Value)) {
        let bytes = std::fs::read(src).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let mut json: serde_json::Value =
            serde_json::from_str(&meta.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
        let mut raws: Vec<Raw> = st
            .tensors()
            .into_iter()
            .map(|(name, t)| Raw {
                name,
                dtype: t.dtype(),
                shape: t.shape().to_vec(),
                data: t.data().to_vec(),
            })
            .collect();
        edit(&mut raws, &mut json);
        let views: Vec<(String, TensorView<'_>)> = raws
            .iter()
            .map(|r| {
                let v = TensorView::new(r.dtype, r.shape.clone(), &r.data).unwrap();
                (r.name.clone(), v)
            })
            .collect();
        let meta = Some(HashMap::from([(
            METADATA_KEY.to_string(),
            json.to_string(),
        )]));
        std::fs::write(dst, ::safetensors::tensor::serialize(views, &meta).unwrap()).unwrap();
    }

    #[test]
    fn model_round_trip_is_bit_identical() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut model = Model::new(&small_config(), &dev, 3).unwrap();
        model.save(&path).unwrap();
        let mut loaded = Model::load(&path, &dev).unwrap();
        assert_eq!(loaded.config(), model.config());
        assert_eq!(weights(&mut loaded), weights(&mut model));

        let data = mnist(50);
        let mut host = HostBatch::default();
        assert!(data
            .batches(&BatchOptions::new(50, 0))
            .unwrap()
            .next_into(&mut host));
        let batch = Batch::from_host_batch(model.modalities(), &dev, &host).unwrap();
        let (a, b) = (model.encode_all(&batch), loaded.encode_all(&batch));
        let (a, b) = (a.as_gaussian().unwrap(), b.as_gaussian().unwrap());
        assert_eq!(bits(&a.mean.as_vec()), bits(&b.mean.as_vec()));
        assert_eq!(bits(&a.logvar.as_vec()), bits(&b.logvar.as_vec()));
        let z = model.sample_prior(8, &mut ChaCha8Rng::seed_from_u64(1));
        for m in 0..2 {
            let (x, y) = (
                model.decode_mean(m, z.clone()),
                loaded.decode_mean(m, z.clone()),
            );
            assert_eq!(bits(&x.as_vec()), bits(&y.as_vec()));
        }

        let info = read_info(&path).unwrap();
        assert_eq!(info.format_version, FORMAT_VERSION);
        assert_eq!(info.crate_version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.latent_size, 4);
        assert_eq!(&info.model, model.config());
        assert!(info.training.is_none());

        // Tensors are named by the parameter paths.
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let t = st.tensor("encoders.image.input.weight").unwrap();
        assert_eq!(t.shape(), &[16, 784]);
        assert!(st.tensor("encoders.label.input.weight").is_ok());
        assert!(st.tensor("decoders.image.out.bias").is_ok());

        // Loading into an existing model of the same architecture keeps its tensor ids.
        let mut other = Model::new(&small_config(), &dev, 4).unwrap();
        other.load_weights(&path).unwrap();
        assert_eq!(weights(&mut other), weights(&mut model));
    }

    #[test]
    fn resume_is_bit_identical_to_uninterrupted_run() {
        let dev = Cpu::default();
        let data = mnist(200);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.safetensors");

        let model = Model::new(&small_config(), &dev, 11).unwrap();
        let mut straight = Trainer::new(model.clone(), train_cfg()).unwrap();
        let s1 = straight.fit_epoch(&data, |_| {}).unwrap();
        let s2 = straight.fit_epoch(&data, |_| {}).unwrap();

        let mut first = Trainer::new(model, train_cfg()).unwrap();
        let r1 = first.fit_epoch(&data, |_| {}).unwrap();
        assert_eq!(r1.loss.to_bits(), s1.loss.to_bits());
        first.save(&path).unwrap();
        drop(first);

        let mut resumed = Trainer::<4, Cpu>::resume(&path, &dev).unwrap();
        assert_eq!(resumed.epochs_done(), 1);
        assert_eq!(resumed.steps(), 4);
        assert_eq!(resumed.config(), &train_cfg());
        let r2 = resumed.fit_epoch(&data, |_| {}).unwrap();
        assert_eq!((r2.epoch, r2.step), (s2.epoch, s2.step));
        assert_eq!(r2.loss.to_bits(), s2.loss.to_bits());
        assert!(
            weights(&mut resumed.model) == weights(&mut straight.model),
            "weights differ after resuming"
        );
        assert!(
            moments(&mut resumed) == moments(&mut straight),
            "Adam moments differ after resuming"
        );
        assert_eq!(resumed.adam.steps(), straight.adam.steps());
        assert_eq!(resumed.rng.gen::<u64>(), straight.rng.gen::<u64>());

        // A training checkpoint also loads as a model.
        let mut m = Model::load(&path, &dev).unwrap();
        let info = read_info(&path).unwrap();
        let t = info.training.unwrap();
        assert_eq!((t.epoch, t.step, t.adam_steps), (1, 4, 4));
        assert_eq!(m.config(), &small_config());
        assert_eq!(m.num_params(), straight.model.num_params());
    }

    #[test]
    fn resume_before_any_step() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.safetensors");
        let model = Model::new(&small_config(), &dev, 1).unwrap();
        let mut t = Trainer::new(model, train_cfg()).unwrap();
        t.save(&path).unwrap();
        let mut r = Trainer::<4, Cpu>::resume(&path, &dev).unwrap();
        assert_eq!((r.steps(), r.adam.steps()), (0, 0));
        assert_eq!(weights(&mut r.model), weights(&mut t.model));
        assert_eq!(r.rng.gen::<u64>(), t.rng.gen::<u64>());
    }

    #[test]
    fn other_architecture_is_refused_naming_the_difference() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let model = Model::new(&small_config(), &dev, 3).unwrap();
        model.save(&path).unwrap();

        let r = reason(Mvae::<5, Cpu>::load(&path, &dev));
        assert!(
            r.contains("latent size differs: checkpoint 4, model 5"),
            "{r}"
        );
        let mut five = Mvae::<5, Cpu>::new(&small_config(), &dev, 0).unwrap();
        let r = reason(five.load_weights(&path));
        assert!(r.contains("latent size differs"), "{r}");
        let r = reason(Trainer::<5, Cpu>::resume(&path, &dev));
        assert!(r.contains("without training state"), "{r}");

        let refused = |cfg: ModelConfig| {
            let mut m = Model::new(&cfg, &dev, 0).unwrap();
            let before = weights(&mut m);
            let r = reason(m.load_weights(&path));
            assert!(
                weights(&mut m) == before,
                "weights changed by a refused load"
            );
            r
        };
        let mut cfg = small_config();
        cfg.modalities[1] = ModalitySpec::new(Label::new("digit", 10))
            .encoder_hidden(&[16])
            .decoder_hidden(&[16])
            .weight(50.0);
        let r = refused(cfg);
        assert!(r.contains("modalities differ"), "{r}");
        assert!(r.contains("\"label\"") && r.contains("\"digit\""), "{r}");

        let mut cfg = small_config();
        cfg.modalities.pop();
        assert!(refused(cfg).contains("modalities differ"));

        let mut cfg = small_config();
        cfg.modalities[0].kind = Image::new("image", 14, 14).into();
        let r = refused(cfg);
        assert!(r.contains("modality image differs"), "{r}");

        let mut cfg = small_config();
        cfg.modalities[0].encoder_hidden = vec![32];
        let r = refused(cfg);
        assert!(
            r.contains("encoder hidden sizes of image differ: checkpoint [16], model [32]"),
            "{r}"
        );

        let mut cfg = small_config();
        cfg.modalities[1].decoder_hidden = vec![16, 16];
        let r = refused(cfg);
        assert!(r.contains("decoder hidden sizes of label differ"), "{r}");

        let mut cfg = small_config();
        cfg.activation = crate::Activation::Relu;
        assert!(refused(cfg).contains("activation differs"));

        let mut cfg = small_config();
        cfg.modalities[1].weight = 1.0;
        assert!(refused(cfg).contains("likelihood weight of label differs"));
    }

    #[test]
    fn bad_tensors_and_versions_are_refused() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.safetensors");
        let bad = dir.path().join("bad.safetensors");
        let model = Model::new(&small_config(), &dev, 3).unwrap();
        model.save(&good).unwrap();
        let check = |edit: &dyn Fn(&mut Vec<Raw>, &mut serde_json::Value), want: &str| {
            rewrite(&good, &bad, edit);
            let r = reason(Model::load(&bad, &dev));
            assert!(r.contains(want), "{r:?} lacks {want:?}");
            let mut m = Model::new(&small_config(), &dev, 0).unwrap();
            let r = reason(m.load_weights(&bad));
            assert!(r.contains(want), "{r:?} lacks {want:?}");
        };
        // The unchanged rewrite loads.
        rewrite(&good, &bad, |_, _| {});
        Model::load(&bad, &dev).unwrap();

        check(
            &|t, _| t.retain(|r| r.name != "decoders.label.out.bias"),
            "tensor decoders.label.out.bias is missing",
        );
        check(
            &|t, _| {
                let r = t
                    .iter_mut()
                    .find(|r| r.name == "encoders.image.mean.weight");
                let r = r.unwrap();
                r.shape = vec![16, 4];
            },
            "tensor encoders.image.mean.weight has shape [16, 4], the model expects [4, 16]",
        );
        check(
            &|t, _| {
                let r = t.iter_mut().find(|r| r.name == "decoders.image.out.bias");
                let r = r.unwrap();
                r.dtype = StDtype::I32;
            },
            "tensor decoders.image.out.bias has dtype I32, expected F32",
        );
        check(
            &|t, _| {
                t.push(Raw {
                    name: "encoders.audio.mean.bias".into(),
                    dtype: StDtype::F32,
                    shape: vec![1],
                    data: vec![0; 4],
                })
            },
            "unexpected tensor encoders.audio.mean.bias",
        );
        check(
            &|_, j| j["format_version"] = 2.into(),
            "format version 2 is not supported",
        );
        check(
            &|_, j| j["latent_size"] = 8.into(),
            "latent size differs: checkpoint 8, model 4",
        );
        check(
            &|_, j| j["model"]["modalities"][0]["encoder_hidden"] = serde_json::json!([]),
            "model config in the checkpoint: invalid image hidden sizes",
        );
        check(
            &|_, j| *j = serde_json::json!({"format_version": 1}),
            "metadata does not parse",
        );
        check(
            &|_, j| *j = serde_json::json!("x"),
            "metadata has no format_version",
        );

        // A safetensors file that is not an mvae checkpoint.
        let t = TensorView::new(StDtype::F32, vec![1], &[0u8; 4]).unwrap();
        let bytes = ::safetensors::tensor::serialize([("x".to_string(), t)], &None).unwrap();
        std::fs::write(&bad, bytes).unwrap();
        let r = reason(Model::load(&bad, &dev));
        assert!(r.contains("not an mvae checkpoint"), "{r}");
    }

    #[test]
    fn bad_training_state_is_refused() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.safetensors");
        let bad = dir.path().join("bad.safetensors");
        let data = mnist(100);
        let model = Model::new(&small_config(), &dev, 3).unwrap();
        let mut t = Trainer::new(model, train_cfg()).unwrap();
        t.fit_epoch(&data, |_| {}).unwrap();
        t.save(&good).unwrap();
        let check = |edit: &dyn Fn(&mut Vec<Raw>, &mut serde_json::Value), want: &str| {
            rewrite(&good, &bad, edit);
            let r = reason(Trainer::<4, Cpu>::resume(&bad, &dev));
            assert!(r.contains(want), "{r:?} lacks {want:?}");
        };
        check(
            &|t, _| t.retain(|r| r.name != "optimizer.moment2.encoders.label.mean.bias"),
            "tensor optimizer.moment2.encoders.label.mean.bias is missing",
        );
        check(
            &|_, j| j["training"]["rng"]["seed"] = "zz".into(),
            "rng seed \"zz\" is not 64 hex digits",
        );
        check(
            &|_, j| j["training"]["config"]["batch_size"] = 0.into(),
            "training config in the checkpoint: invalid batch_size",
        );
        check(
            &|_, j| j["training"]["adam_steps"] = 0.into(),
            "unexpected tensor optimizer.moment",
        );
    }

    #[test]
    fn truncated_or_random_files_are_errors() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.safetensors");
        let bad = dir.path().join("bad.safetensors");
        let data = mnist(50);
        let mut t =
            Trainer::new(Model::new(&small_config(), &dev, 3).unwrap(), train_cfg()).unwrap();
        t.fit_epoch(&data, |_| {}).unwrap();
        t.save(&good).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let cuts = [
            0,
            1,
            7,
            8,
            9,
            header / 2,
            header,
            header + 1,
            bytes.len() / 2,
            bytes.len() - 1,
        ];
        for cut in cuts {
            std::fs::write(&bad, &bytes[..cut]).unwrap();
            let r = reason(Model::load(&bad, &dev));
            assert!(r.contains("not a readable checkpoint"), "cut {cut}: {r}");
            reason(Trainer::<4, Cpu>::resume(&bad, &dev));
            reason(read_info(&bad));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in [1, 8, 100, 5000] {
            for _ in 0..20 {
                let mut b = vec![0u8; len];
                rng.fill_bytes(&mut b);
                std::fs::write(&bad, &b).unwrap();
                reason(Model::load(&bad, &dev));
                reason(Trainer::<4, Cpu>::resume(&bad, &dev));
            }
        }
        // A plausible header length followed by garbage, and flipped bytes in the header.
        for _ in 0..200 {
            let mut b = bytes.clone();
            let i = rng.gen_range(8..header);
            b[i] ^= 1 << rng.gen_range(0..8);
            std::fs::write(&bad, &b).unwrap();
            // Either an error or, when the flip hit something harmless, a model.
            let _ = Model::load(&bad, &dev);
            let _ = Trainer::<4, Cpu>::resume(&bad, &dev);
        }
        let missing = dir.path().join("missing.safetensors");
        assert!(matches!(Model::load(&missing, &dev), Err(Error::Io { .. })));
    }

    #[test]
    fn interrupted_save_leaves_old_checkpoint_readable() {
        let dev = Cpu::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.safetensors");
        let mut old = Model::new(&small_config(), &dev, 3).unwrap();
        old.save(&path).unwrap();
        let mut new = Model::new(&small_config(), &dev, 4).unwrap();
        // A save killed half-way leaves only a partial temporary file beside the checkpoint.
        new.save(dir.path().join("other.safetensors")).unwrap();
        let full = std::fs::read(dir.path().join("other.safetensors")).unwrap();
        let stale = dir.path().join(".model.safetensors.tmp-4242-0");
        std::fs::write(&stale, &full[..full.len() / 2]).unwrap();
        assert_eq!(
            weights(&mut Model::load(&path, &dev).unwrap()),
            weights(&mut old)
        );
        // The next save still replaces the checkpoint, and leaves no temporary file of its own.
        new.save(&path).unwrap();
        assert_eq!(
            weights(&mut Model::load(&path, &dev).unwrap()),
            weights(&mut new)
        );
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                ".model.safetensors.tmp-4242-0",
                "model.safetensors",
                "other.safetensors"
            ]
        );
        // A save that fails (here: the target is a folder) leaves the old file alone.
        let folder = dir.path().join("folder.safetensors");
        std::fs::create_dir(&folder).unwrap();
        reason(old.save(&folder));
        assert!(folder.is_dir());
    }
}
