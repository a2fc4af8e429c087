//! Saving and loading an [`Mvae`]; a loaded model's architecture is checked against the file.

use std::path::Path;

use ::safetensors::tensor::SafeTensors;

use super::diff::{first_difference, Difference};
use super::io::{
    check_no_extra, ckpt_err, expected_names, info_of, load_params, param_shapes, param_values,
    parse, read_file, write,
};
use super::{CheckpointInfo, FORMAT_VERSION};
use crate::backend::Backend;
use crate::codec::Codecs;
use crate::model::{ModelConfig, Mvae};
use crate::nn::{ParamMut, ParamVisitor, Parameters};
#[cfg(doc)]
use crate::Error;
use crate::Result;

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

/// Where the checkpoint's architecture and the model's first differ, if they do: the two configs
/// compared as JSON (see [`first_difference`]), e.g. `model config differs at
/// modalities[label].weight: checkpoint 50.0, model 1.0`.
fn config_difference(ckpt: &ModelConfig, model: &ModelConfig) -> Option<String> {
    // Through text, so that numbers read as the file writes them (an f32 weight 0.1 as 0.1).
    let json = |c: &ModelConfig| {
        serde_json::to_string(c)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    };
    let d = json(ckpt)
        .zip(json(model))
        .and_then(|(c, m)| first_difference(&c, &m));
    match d {
        Some(d) => Some(format!(
            "model config differs at {}: checkpoint {}, model {}",
            d.path,
            Difference::show(d.left.as_ref()),
            Difference::show(d.right.as_ref())
        )),
        None => (ckpt != model).then(|| "model configs differ".to_string()),
    }
}

/// The model of a checkpoint already read: built from its config, weights from its tensors.
pub(super) fn model_from<const L: usize, D: Backend>(
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

pub(super) fn model_info<const L: usize, D: Backend>(model: &Mvae<L, D>) -> CheckpointInfo {
    CheckpointInfo {
        format_version: FORMAT_VERSION,
        crate_version: env!("CARGO_PKG_VERSION").to_string(),
        latent_size: L,
        model: model.config().clone(),
        training: None,
        codecs: Codecs::new(),
    }
}

/// Saves `model` as a model checkpoint at `path` (see the [module docs](crate::checkpoint) for the format).
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
    /// [`Error::Checkpoint`] naming what differs (the latent size, the first differing field of
    /// the model config with both values, a tensor); the weights are then left unchanged. Other
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
