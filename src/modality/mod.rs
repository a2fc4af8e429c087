//! Modalities: what a kind of data looks like to the model.
//!
//! A [`Modality`] declares its data width, how its encoder reads it ([`EncoderInput`]) and its
//! likelihood ([`Likelihood`]), which fixes the decoder's output. The networks themselves are
//! built by the model from a [`ModalitySpec`]'s hidden sizes, so every modality shares one
//! encoder/decoder mechanism.

mod continuous;
mod image;
mod label;

pub use continuous::Continuous;
pub use image::Image;
pub use label::Label;

use serde::{Deserialize, Serialize};

use crate::likelihood::Likelihood;
use crate::{Error, Result};

/// How an encoder reads a modality's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EncoderInput {
    /// A dense vector of `dim` values per sample, fed to a linear layer.
    Dense {
        /// Values per sample.
        dim: usize,
    },
    /// One class index per sample, fed to an embedding table.
    Embedding {
        /// Number of classes.
        classes: usize,
    },
}

/// A kind of data the model can encode and decode.
pub trait Modality: std::fmt::Debug + Send + Sync {
    /// Short lowercase name: a CLI value, a JSON key and a checkpoint prefix.
    fn name(&self) -> &str;

    /// Values per sample in host data (`1` for a class index).
    fn dim(&self) -> usize;

    /// How the encoder reads the data.
    fn encoder_input(&self) -> EncoderInput;

    /// The decoder's likelihood.
    fn likelihood(&self) -> Likelihood;

    /// Checks one sample's values: their count, then the likelihood's domain
    /// ([`Likelihood::check`]).
    ///
    /// # Errors
    /// [`Error::InvalidData`] naming the modality and the first bad value.
    fn check(&self, values: &[f32]) -> Result<()> {
        if values.len() != self.dim() {
            return Err(Error::shape(
                format!("modality {}", self.name()),
                format!("{} values per sample", self.dim()),
                values.len(),
            ));
        }
        self.likelihood()
            .check(format_args!("modality {}", self.name()), values)
    }
}

/// A serialisable description of one modality and its networks: what a checkpoint stores.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModalitySpec {
    /// The modality.
    pub kind: ModalityKind,
    /// Hidden layer sizes of the encoder, input side first (the paper: `[512, 512]`).
    pub encoder_hidden: Vec<usize>,
    /// Hidden layer sizes of the decoder, latent side first (the paper: `[512, 512, 512]`).
    pub decoder_hidden: Vec<usize>,
    /// Likelihood weight `lambda` in the training objective.
    pub weight: f32,
}

impl ModalitySpec {
    /// The most values one sample of a modality may hold (its data width, classes or decoder
    /// outputs): 2^24, e.g. an RGB image of 2,364 x 2,364 pixels.
    pub const MAX_VALUES: usize = 1 << 24;

    /// The widest hidden layer: 2^16 units.
    pub const MAX_HIDDEN: usize = 1 << 16;

    /// A spec with the MVAE paper's MNIST networks and weight 1.
    pub fn new(kind: impl Into<ModalityKind>) -> Self {
        Self {
            kind: kind.into(),
            encoder_hidden: vec![512, 512],
            decoder_hidden: vec![512, 512, 512],
            weight: 1.0,
        }
    }

    /// Sets the encoder's hidden sizes.
    pub fn encoder_hidden(mut self, sizes: &[usize]) -> Self {
        self.encoder_hidden = sizes.to_vec();
        self
    }

    /// Sets the decoder's hidden sizes.
    pub fn decoder_hidden(mut self, sizes: &[usize]) -> Self {
        self.decoder_hidden = sizes.to_vec();
        self
    }

    /// Sets the likelihood weight `lambda`.
    pub fn weight(mut self, w: f32) -> Self {
        self.weight = w;
        self
    }

    /// The modality's name.
    pub fn name(&self) -> &str {
        self.kind.name()
    }

    /// Checks sizes and weight.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty name, a zero size, a size above
    /// [`ModalitySpec::MAX_VALUES`] or a hidden layer above [`ModalitySpec::MAX_HIDDEN`], or a
    /// bad weight.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::config(
                "modality name",
                format!("{name:?}"),
                "non-empty ASCII letters, digits or _",
            ));
        }
        if let ModalityKind::Image(img) = &self.kind {
            // Before anything reads `dim`, which would overflow.
            let values = img
                .width
                .checked_mul(img.height)
                .and_then(|p| p.checked_mul(img.channels));
            if values.is_none_or(|v| v > Self::MAX_VALUES) {
                return Err(Error::config(
                    &format!("{name} size"),
                    format!("{} x {} x {}", img.height, img.width, img.channels),
                    &format!("at most {} values per sample", Self::MAX_VALUES),
                ));
            }
        }
        if self.kind.dim() > Self::MAX_VALUES || self.kind.likelihood().params() > Self::MAX_VALUES
        {
            return Err(Error::config(
                &format!("{name} size"),
                self.kind.dim().max(self.kind.likelihood().params()),
                &format!(
                    "at most {} values (or classes) per sample",
                    Self::MAX_VALUES
                ),
            ));
        }
        if self.kind.dim() == 0 || self.kind.likelihood().params() == 0 {
            return Err(Error::config(
                &format!("{name} size"),
                0,
                "at least one value per sample",
            ));
        }
        if let ModalityKind::Image(img) = &self.kind {
            if !matches!(img.channels, 1 | 3) {
                return Err(Error::config(
                    &format!("{name} channels"),
                    img.channels,
                    "1 (grey) or 3 (RGB)",
                ));
            }
        }
        if self.encoder_hidden.is_empty() || self.decoder_hidden.is_empty() {
            return Err(Error::config(
                &format!("{name} hidden sizes"),
                "[]",
                "at least one hidden layer in encoder and decoder",
            ));
        }
        if self
            .encoder_hidden
            .iter()
            .chain(&self.decoder_hidden)
            .any(|&h| h == 0)
        {
            return Err(Error::config(
                &format!("{name} hidden sizes"),
                format!("{:?} / {:?}", self.encoder_hidden, self.decoder_hidden),
                "sizes >= 1",
            ));
        }
        if let Some(&h) = self
            .encoder_hidden
            .iter()
            .chain(&self.decoder_hidden)
            .find(|&&h| h > Self::MAX_HIDDEN)
        {
            return Err(Error::config(
                &format!("{name} hidden size"),
                h,
                &format!("at most {} units per layer", Self::MAX_HIDDEN),
            ));
        }
        if !(self.weight.is_finite() && self.weight > 0.0) {
            return Err(Error::config(
                &format!("{name} weight"),
                self.weight,
                "a finite number > 0",
            ));
        }
        if let Likelihood::Gaussian {
            variance: crate::likelihood::Variance::Fixed(v),
            ..
        } = self.kind.likelihood()
        {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::config(
                    &format!("{name} variance"),
                    v,
                    "a finite number > 0",
                ));
            }
        }
        Ok(())
    }
}

/// The built-in modalities, as one serialisable type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ModalityKind {
    /// Grey or RGB images, Bernoulli likelihood.
    Image(Image),
    /// Class labels, embedding encoder, categorical likelihood.
    Label(Label),
    /// Real vectors, Gaussian likelihood.
    Continuous(Continuous),
}

impl ModalityKind {
    fn inner(&self) -> &dyn Modality {
        match self {
            ModalityKind::Image(m) => m,
            ModalityKind::Label(m) => m,
            ModalityKind::Continuous(m) => m,
        }
    }
}

impl Modality for ModalityKind {
    fn name(&self) -> &str {
        self.inner().name()
    }
    fn dim(&self) -> usize {
        self.inner().dim()
    }
    fn encoder_input(&self) -> EncoderInput {
        self.inner().encoder_input()
    }
    fn likelihood(&self) -> Likelihood {
        self.inner().likelihood()
    }
}

impl From<Image> for ModalityKind {
    fn from(m: Image) -> Self {
        ModalityKind::Image(m)
    }
}
impl From<Label> for ModalityKind {
    fn from(m: Label) -> Self {
        ModalityKind::Label(m)
    }
}
impl From<Continuous> for ModalityKind {
    fn from(m: Continuous) -> Self {
        ModalityKind::Continuous(m)
    }
}
