//! Likelihoods `p(x | params)` of a decoder's output, each in one place: its per-sample
//! log-density (not reduced over the batch), its mean, its domain and its point estimate.
//!
//! | likelihood | `log p(x \| l)` per sample | mean | point |
//! |---|---|---|---|
//! | Bernoulli, logits `l` | `sum_j x_j log s(l_j) + (1 - x_j) log(1 - s(l_j))` | `s(l)` | the mean |
//! | Categorical, logits `l` | `log softmax(l)[y]` | `softmax(l)` | `argmax` |
//! | Gaussian, means `mu` | `-0.5 sum_j ((x_j - mu_j)^2 / var_j + log(2 pi var_j))` | `mu` | the mean |
//!
//! `s` is the logistic sigmoid; a Gaussian's variance is fixed or a learned per-dimension
//! log-variance. Domains: values in `[0, 1]` (Bernoulli), class indices `0..classes`
//! (categorical), finite reals (Gaussian).

use std::borrow::Cow;
use std::fmt::Display;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Ids, Matrix, Vector};
use crate::{Error, Result};

/// A modality's values on the device: what an encoder reads and a likelihood scores.
#[derive(Clone, Debug)]
pub enum Input<D: Backend> {
    /// Dense values, `(batch, dim)`.
    Dense(Matrix<D>),
    /// Class indices, `(batch,)`.
    Classes(Ids<D>),
}

/// A decoder's output for a batch of latents: the parameters of its likelihood.
#[derive(Debug)]
pub struct DecoderOutput<D: Backend, T = NoneTape> {
    /// Logits (Bernoulli, categorical) or means (Gaussian), `(batch, params)`.
    pub params: Matrix<D, T>,
    /// Learned per-dimension log-variance (Gaussian with learned variance only).
    pub logvar: Option<Vector<D, T>>,
}

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

    /// `log p(target | out)` per sample, `(batch,)`.
    ///
    /// # Panics
    /// If `target` is not this likelihood's kind of value (class indices for a categorical
    /// likelihood, dense values otherwise), or a learned variance comes without its
    /// log-variance.
    pub fn log_prob<D: Backend, T: Tape<f32, D>>(
        &self,
        out: DecoderOutput<D, T>,
        target: &Input<D>,
    ) -> Vector<D, T> {
        match (*self, target) {
            (Likelihood::Bernoulli { .. }, Input::Dense(x)) => bernoulli(out.params, x),
            (Likelihood::Categorical { .. }, Input::Classes(y)) => categorical(out.params, y),
            (Likelihood::Gaussian { variance, .. }, Input::Dense(x)) => {
                match (variance, out.logvar) {
                    (Variance::Learned, Some(lv)) => gaussian(out.params, lv, x),
                    (Variance::Fixed(v), _) => gaussian_fixed(out.params, v, x),
                    (Variance::Learned, None) => panic!("learned variance without a logvar"),
                }
            }
            _ => panic!("target does not match the likelihood {self:?}"),
        }
    }

    /// The expected value of `x` under `out`: probabilities (Bernoulli), class probabilities
    /// (categorical) or means (Gaussian), `(batch, params)`.
    pub fn mean<D: Backend, T: Tape<f32, D>>(&self, out: DecoderOutput<D, T>) -> Matrix<D, T> {
        match self {
            Likelihood::Bernoulli { .. } => out.params.sigmoid(),
            Likelihood::Categorical { .. } => out.params.softmax::<Axis<1>>(),
            Likelihood::Gaussian { .. } => out.params,
        }
    }

    /// Checks one sample's host values against the domain: values in `[0, 1]` (Bernoulli), a
    /// class index in `0..classes` (categorical), finite numbers (Gaussian). The width is the
    /// modality's business, not checked here.
    ///
    /// # Errors
    /// [`Error::InvalidData`] for `what`, naming the first value outside the domain.
    pub fn check(&self, what: impl Display, values: &[f32]) -> Result<()> {
        let bad = |i: usize, v: f32, want: &str| Error::InvalidData {
            what: what.to_string(),
            reason: format!("value {i} is {v}, expected {want}"),
        };
        for (i, &v) in values.iter().enumerate() {
            match *self {
                Likelihood::Bernoulli { .. } if !(0.0..=1.0).contains(&v) => {
                    return Err(bad(i, v, "a value in [0, 1]"))
                }
                Likelihood::Categorical { classes }
                    if !(v >= 0.0 && v < classes as f32 && v.fract() == 0.0) =>
                {
                    return Err(bad(i, v, &format!("a class index in 0..{classes}")))
                }
                _ if !v.is_finite() => return Err(bad(i, v, "a finite number")),
                _ => {}
            }
        }
        Ok(())
    }

    /// The point estimate of one sample from its [`mean`](Self::mean) row, in data form: the
    /// most probable class (one value, the index) for a categorical likelihood, the mean itself
    /// otherwise.
    pub fn point<'a>(&self, mean: &'a [f32]) -> Cow<'a, [f32]> {
        match self {
            Likelihood::Categorical { .. } => Cow::Owned(vec![argmax(mean) as f32]),
            Likelihood::Bernoulli { .. } | Likelihood::Gaussian { .. } => Cow::Borrowed(mean),
        }
    }
}

/// Index of the largest value (the first one on ties; 0 for an empty slice).
pub fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
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

#[cfg(test)]
mod tests {
    use super::*;

    const GAUSSIAN: Likelihood = Likelihood::Gaussian {
        dim: 2,
        variance: Variance::Fixed(1.0),
    };

    #[test]
    fn check_names_the_first_value_outside_the_domain() {
        let bernoulli = Likelihood::Bernoulli { dim: 3 };
        assert!(bernoulli.check("x", &[0.0, 0.5, 1.0]).is_ok());
        let e = bernoulli
            .check("modality x", &[0.0, 1.5, -1.0])
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "modality x: value 1 is 1.5, expected a value in [0, 1]"
        );
        let categorical = Likelihood::Categorical { classes: 3 };
        assert!(categorical.check("y", &[2.0]).is_ok());
        for bad in [3.0, -1.0, 0.5, f32::NAN] {
            let e = categorical.check("y", &[bad]).unwrap_err().to_string();
            assert!(e.ends_with("expected a class index in 0..3"), "{e}");
        }
        assert!(GAUSSIAN.check("z", &[-1e30, 1e30]).is_ok());
        let e = GAUSSIAN.check("z", &[0.0, f32::INFINITY]).unwrap_err();
        assert_eq!(e.to_string(), "z: value 1 is inf, expected a finite number");
    }

    #[test]
    fn point_is_the_first_most_probable_class_or_the_mean() {
        let categorical = Likelihood::Categorical { classes: 4 };
        assert_eq!(&*categorical.point(&[0.1, 0.4, 0.1, 0.4]), &[1.0]);
        assert_eq!(&*GAUSSIAN.point(&[0.3, -2.0]), &[0.3, -2.0]);
        assert_eq!(&*Likelihood::Bernoulli { dim: 1 }.point(&[0.7]), &[0.7]);
    }

    #[test]
    fn mean_and_log_prob_follow_the_family() {
        let dev = Cpu::default();
        let out = |v: Vec<f32>, cols| DecoderOutput::<Cpu> {
            params: dev.tensor_from_vec(v, (1, cols)),
            logvar: None,
        };
        let probs = Likelihood::Bernoulli { dim: 2 }
            .mean(out(vec![0.0, 100.0], 2))
            .as_vec();
        assert_eq!(probs, vec![0.5, 1.0]);
        let probs = Likelihood::Categorical { classes: 2 }
            .mean(out(vec![1.0, 1.0], 2))
            .as_vec();
        assert_eq!(probs, vec![0.5, 0.5]);
        assert_eq!(
            GAUSSIAN.mean(out(vec![3.0, 4.0], 2)).as_vec(),
            vec![3.0, 4.0]
        );
        // log N(x | x, 1) in two dimensions is -log(2 pi).
        let x = Input::Dense(dev.tensor_from_vec(vec![3.0, 4.0], (1, 2)));
        let lp = GAUSSIAN.log_prob(out(vec![3.0, 4.0], 2), &x).as_vec()[0];
        assert!((lp + (2.0 * std::f32::consts::PI).ln()).abs() < 1e-6);
        let y = Input::Classes(dev.tensor_from_vec(vec![1], (1,)));
        let lp = Likelihood::Categorical { classes: 2 }
            .log_prob(out(vec![1.0, 1.0], 2), &y)
            .as_vec()[0];
        assert!((lp - 0.5f32.ln()).abs() < 1e-6);
    }

    #[test]
    #[should_panic(expected = "target does not match the likelihood")]
    fn log_prob_panics_on_a_target_of_the_wrong_kind() {
        let dev = Cpu::default();
        let out = DecoderOutput::<Cpu> {
            params: dev.zeros_like(&(1, 2)),
            logvar: None,
        };
        let y = Input::Classes(dev.tensor_from_vec(vec![0], (1,)));
        GAUSSIAN.log_prob(out, &y);
    }
}
