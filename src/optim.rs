//! Adam (and AdamW) over any [`Parameters`], using dfdx's fused Adam kernel on the device.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::nn::{ParamMut, ParamVisitor, Parameters};
use crate::{Error, Result};

/// Settings of the Adam optimizer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamSettings {
    /// Learning rate (the paper: 1e-3).
    pub lr: f64,
    /// Exponential decay of the first and second moments.
    pub betas: [f64; 2],
    /// Added to the denominator.
    pub eps: f64,
    /// Decoupled weight decay (AdamW); 0 = plain Adam.
    pub weight_decay: f64,
}

impl Default for AdamSettings {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            betas: [0.9, 0.999],
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamSettings {
    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", self.lr, "a finite number > 0"));
        }
        if self.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(Error::config(
                "betas",
                format!("{:?}", self.betas),
                "in [0, 1)",
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(Error::config("eps", self.eps, "a finite number > 0"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config(
                "weight_decay",
                self.weight_decay,
                "a finite number >= 0",
            ));
        }
        Ok(())
    }
}

/// Adam state: step count and both moments of every parameter.
#[derive(Debug)]
pub struct Adam<D: Backend> {
    cfg: AdamConfig,
    step: i32,
    moment1: Gradients<f32, D>,
    moment2: Gradients<f32, D>,
}

impl<D: Backend> Adam<D> {
    /// A fresh optimizer.
    ///
    /// # Errors
    /// If the settings do not validate.
    pub fn new(settings: &AdamSettings) -> Result<Self> {
        settings.validate()?;
        Ok(Self {
            cfg: AdamConfig {
                lr: settings.lr,
                betas: settings.betas,
                eps: settings.eps,
                weight_decay: (settings.weight_decay > 0.0)
                    .then_some(WeightDecay::Decoupled(settings.weight_decay)),
            },
            step: 0,
            moment1: Gradients::leaky(),
            moment2: Gradients::leaky(),
        })
    }

    /// Updates completed steps so far.
    pub fn steps(&self) -> usize {
        self.step as usize
    }

    /// One update of every parameter of `model` from `grads` (a parameter without gradient
    /// gets a zero gradient, which still decays its moments, as in PyTorch's Adam).
    pub fn update<P: Parameters<D>>(&mut self, model: &mut P, grads: &mut Gradients<f32, D>) {
        self.step += 1;
        let (cfg, t, m1, m2) = (&self.cfg, self.step, &mut self.moment1, &mut self.moment2);
        let mut f = |_: &str, p: ParamMut<'_, D>| match p {
            ParamMut::Matrix(p) => step_one(cfg, t, p, m1, m2, grads),
            ParamMut::Vector(p) => step_one(cfg, t, p, m1, m2, grads),
        };
        model.visit_params(&mut ParamVisitor::new(&mut f));
    }
}

fn step_one<S: Shape, D: Backend>(
    cfg: &AdamConfig,
    t: i32,
    p: &mut Tensor<S, f32, D>,
    m1: &mut Gradients<f32, D>,
    m2: &mut Gradients<f32, D>,
    grads: &mut Gradients<f32, D>,
) {
    let g = grads
        .get_or_alloc_mut(p)
        .expect("device allocation for a gradient");
    let a = m1.get_or_alloc_mut(p).expect("device allocation for Adam");
    let b = m2.get_or_alloc_mut(p).expect("device allocation for Adam");
    cfg.try_update(t, p, a, b, g).expect("Adam kernel");
}
