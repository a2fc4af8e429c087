//! Per-sample log-likelihoods of the decoders' outputs, not reduced over the batch.
//!
//! - Bernoulli: `sum_j x_j log s(l_j) + (1 - x_j) log(1 - s(l_j))` from logits `l`;
//! - Categorical: `log softmax(l)[y]`;
//! - Gaussian: `-0.5 sum_j ((x_j - mu_j)^2 / var_j + log(2 pi var_j))`, with a fixed variance
//!   or a learned per-dimension log-variance.

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Ids, Matrix, Vector};

/// The variance of a Gaussian likelihood.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variance {
    /// A fixed variance for every dimension.
    Fixed(f32),
    /// One log-variance per dimension, learned with the decoder (initialised at 0).
    Learned,
}

/// The likelihood family of a modality, with its width.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Likelihood {
    /// Independent Bernoulli per value in `[0, 1]` (binary or intensities), from logits.
    Bernoulli {
        /// Values per sample.
        dim: usize,
    },
    /// One class out of `classes`, from logits.
    Categorical {
        /// Number of classes.
        classes: usize,
    },
    /// Independent Gaussian per value.
    Gaussian {
        /// Values per sample.
        dim: usize,
        /// Fixed or learned variance.
        variance: Variance,
    },
}

impl Likelihood {
    /// Width of the decoder's output (logits or means).
    pub fn params(&self) -> usize {
        match *self {
            Likelihood::Bernoulli { dim } | Likelihood::Gaussian { dim, .. } => dim,
            Likelihood::Categorical { classes } => classes,
        }
    }
}

/// `log p(x | params)` per sample for Bernoulli logits `(batch, dim)`.
pub fn bernoulli<D: Backend, T: Tape<f32, D>>(logits: Matrix<D, T>, x: &Matrix<D>) -> Vector<D, T> {
    D::bernoulli_log_likelihood(logits, x)
}

/// `log p(y | logits)` per sample for categorical logits `(batch, classes)`.
pub fn categorical<D: Backend, T: Tape<f32, D>>(logits: Matrix<D, T>, y: &Ids<D>) -> Vector<D, T> {
    logits.log_softmax::<Axis<1>>().select(y.clone())
}

/// `log N(x | mean, exp(logvar))` per sample; `logvar` is one value per dimension.
pub fn gaussian<D: Backend, T: Tape<f32, D>>(
    mean: Matrix<D, T>,
    logvar: Vector<D, T>,
    x: &Matrix<D>,
) -> Vector<D, T> {
    let shape = *mean.shape();
    let lv = logvar.broadcast_like::<_, Axis<0>>(&shape);
    let sq = (mean - x.clone()).square();
    let terms = sq * (lv.with_empty_tape() * -1.0).exp() + lv + (2.0 * std::f32::consts::PI).ln();
    terms.sum::<(usize,), Axis<1>>() * -0.5
}

/// `log N(x | mean, variance)` per sample with a fixed variance.
pub fn gaussian_fixed<D: Backend, T: Tape<f32, D>>(
    mean: Matrix<D, T>,
    variance: f32,
    x: &Matrix<D>,
) -> Vector<D, T> {
    let dim = mean.shape().1 as f32;
    let sq = (mean - x.clone()).square().sum::<(usize,), Axis<1>>();
    sq * (-0.5 / variance) - 0.5 * dim * (2.0 * std::f32::consts::PI * variance).ln()
}
