//! Grey-level images with intensities in `[0, 1]` and a Bernoulli likelihood per pixel.

use serde::{Deserialize, Serialize};

use super::{EncoderInput, Modality};
use crate::likelihood::Likelihood;

/// An image modality of `height x width` pixels, row-major.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Modality name.
    pub name: String,
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
}

impl Image {
    /// An image modality named `name`.
    pub fn new(name: &str, width: usize, height: usize) -> Self {
        Self {
            name: name.into(),
            width,
            height,
        }
    }

    /// MNIST digits: `image`, 28 x 28.
    pub fn mnist() -> Self {
        Self::new("image", 28, 28)
    }
}

impl Modality for Image {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        self.width * self.height
    }
    fn encoder_input(&self) -> EncoderInput {
        EncoderInput::Dense { dim: self.dim() }
    }
    fn likelihood(&self) -> Likelihood {
        Likelihood::Bernoulli { dim: self.dim() }
    }
}
