//! Saving and resuming a [`Trainer`]: the model plus the settings, counters, Adam's state and
//! the random state.

use std::collections::HashMap;
use std::path::Path;

use super::io::{
    check_no_extra, ckpt_err, expected_names, info_of, param_shapes, param_values, parse,
    read_file, tensor_values, write,
};
use super::model::{model_from, model_info};
use super::{RngState, TrainingInfo, MOMENT1, MOMENT2};
use crate::backend::Backend;
use crate::optim::{Adam, Moments};
use crate::train::Trainer;
#[cfg(doc)]
use crate::Error;
use crate::Result;

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
    /// [`load_model`](super::load_model).
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
        let cfg_err = |e| ckpt_err(path, format!("training config in the checkpoint: {e}"));
        training.config.validate().map_err(cfg_err)?;
        let mut adam = Adam::new(&training.config.adam).map_err(cfg_err)?;
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
        adam.restore(training.adam_steps, &mut model, moments)
            .map_err(|e| ckpt_err(path, e))?;
        Ok(Trainer::from_parts(
            model,
            training.config,
            adam,
            rng,
            training.step,
            training.epoch,
            info.codecs,
        ))
    }
}
