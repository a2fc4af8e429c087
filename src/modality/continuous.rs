//! Real-valued vectors (tabular values, spectrogram frames) with a Gaussian likelihood.

use serde::{Deserialize, Serialize};

use super::{EncoderInput, Modality};
use crate::likelihood::{Likelihood, Variance};

/// A continuous-vector modality of `dim` values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Continuous {
    /// Modality name.
    pub name: String,
    /// Values per sample.
    pub dim: usize,
    /// Fixed or learned variance of the Gaussian likelihood.
    pub variance: Variance,
}

impl Continuous {
    /// A continuous modality named `name`.
    pub fn new(name: &str, dim: usize, variance: Variance) -> Self {
        Self {
            name: name.into(),
            dim,
            variance,
        }
    }
}

impl Modality for Continuous {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn encoder_input(&self) -> EncoderInput {
        EncoderInput::Dense { dim: self.dim }
    }
    fn likelihood(&self) -> Likelihood {
        Likelihood::Gaussian {
            dim: self.dim,
            variance: self.variance,
        }
    }
}
