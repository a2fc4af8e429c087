//! A model's architecture as data: its modalities (each with its networks' hidden sizes and
//! likelihood weight), the hidden activation and how experts are combined. This is what a
//! checkpoint stores beside the weights.

use serde::{Deserialize, Serialize};

use crate::aggregation::AggregationKind;
use crate::modality::ModalitySpec;
use crate::nn::Activation;
use crate::subset::Subset;
use crate::{Error, Result};

/// Architecture of a model: its modalities and their networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The modalities, in a fixed order (2 up to 64).
    pub modalities: Vec<ModalitySpec>,
    /// The hidden-layer activation (the paper: Swish).
    pub activation: Activation,
    /// How the experts of the present modalities are combined (default: the product of
    /// experts; configs and checkpoints without the field read as that).
    #[serde(default)]
    pub aggregation: AggregationKind,
}

impl ModelConfig {
    /// A config with the given modalities, Swish activations and the product of experts.
    pub fn new(modalities: Vec<ModalitySpec>) -> Self {
        Self {
            modalities,
            activation: Activation::Swish,
            aggregation: AggregationKind::default(),
        }
    }

    /// Sets how experts are combined.
    pub fn aggregation(mut self, kind: AggregationKind) -> Self {
        self.aggregation = kind;
        self
    }

    /// The MVAE paper's MNIST model: `image` (28 x 28, weight 1) and `label` (10 classes,
    /// weight 50); encoders 512-512, decoders 512-512-512.
    pub fn mnist() -> Self {
        use crate::modality::{Image, Label};
        Self::new(vec![
            ModalitySpec::new(Image::mnist()),
            ModalitySpec::new(Label::digits()).weight(50.0),
        ])
    }

    /// Sets the hidden sizes of every modality's encoder and decoder (e.g. a smaller model
    /// for a quick run).
    pub fn hidden(mut self, encoder: &[usize], decoder: &[usize]) -> Self {
        for m in &mut self.modalities {
            m.encoder_hidden = encoder.to_vec();
            m.decoder_hidden = decoder.to_vec();
        }
        self
    }

    /// Checks every modality and that names are unique.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.modalities.is_empty() || self.modalities.len() > Subset::MAX_MODALITIES {
            return Err(Error::config(
                "modalities",
                self.modalities.len(),
                "1 to 64 modalities",
            ));
        }
        let most = self.aggregation.max_modalities();
        if self.modalities.len() > most {
            return Err(Error::config(
                "modalities",
                self.modalities.len(),
                &format!("at most {most} with aggregation {}", self.aggregation),
            ));
        }
        for (i, m) in self.modalities.iter().enumerate() {
            m.validate()?;
            if self.modalities[..i].iter().any(|o| o.name() == m.name()) {
                return Err(Error::config(
                    "modality name",
                    m.name(),
                    "names that are unique",
                ));
            }
        }
        Ok(())
    }
}
