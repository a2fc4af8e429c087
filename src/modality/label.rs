//! Class labels: an embedding encoder and a categorical likelihood.

use serde::{Deserialize, Serialize};

use super::{EncoderInput, Modality};
use crate::likelihood::Likelihood;

/// A label modality with `classes` classes; host data holds the class index as an `f32`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// Modality name.
    pub name: String,
    /// Number of classes.
    pub classes: usize,
}

impl Label {
    /// A label modality named `name`.
    pub fn new(name: &str, classes: usize) -> Self {
        Self {
            name: name.into(),
            classes,
        }
    }

    /// Digits 0-9: `label`, 10 classes.
    pub fn digits() -> Self {
        Self::new("label", 10)
    }
}

impl Modality for Label {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        1
    }
    fn encoder_input(&self) -> EncoderInput {
        EncoderInput::Embedding {
            classes: self.classes,
        }
    }
    fn likelihood(&self) -> Likelihood {
        Likelihood::Categorical {
            classes: self.classes,
        }
    }
}
