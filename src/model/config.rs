//! A model's architecture as data: its modalities (each with its networks' hidden sizes and
//! likelihood weight), the hidden activation and how experts are combined. This is what a
//! checkpoint stores beside the weights.

use serde::{Deserialize, Serialize};

use crate::aggregation::{AggregationKind, PrivateLayout, SubsetDraw};
use crate::likelihood::{Likelihood, Variance};
use crate::modality::{EncoderInput, Modality, ModalitySpec};
use crate::nn::Activation;
use crate::similarity::Similarity;
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
    /// Size `P` of each modality's private latent (MMVAE+ only; 0 otherwise, and configs
    /// without the field read as 0). The latent of size `L` is laid out as the shared part
    /// (`L - M P` dimensions) followed by one private slice of `P` per modality, in model
    /// order; see [`PrivateLayout`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub private: usize,
    /// The most mixture components a posterior forms per sample (MoPoE only): where a
    /// sample's modalities have more non-empty subsets, its mixture is over a seeded uniform
    /// sample of this many, a new one every training step (see
    /// [`MixtureOfProductsOfExperts`](crate::aggregation::MixtureOfProductsOfExperts)).
    /// Default 1,023, every subset of up to 10 modalities; configs without the field read as
    /// that.
    #[serde(
        default = "default_components",
        skip_serializing_if = "is_default_components"
    )]
    pub components: usize,
    /// Weight `W` of the contrastive term: CLIP's symmetric InfoNCE between the unimodal
    /// posterior means of every pair of modalities, added to the training loss (0 = off, the
    /// default; configs without the field read as 0). A model with a weight holds the term's
    /// learnable logit scale; see [`crate::objective::contrastive`].
    #[serde(default, skip_serializing_if = "is_zero_f32")]
    pub contrastive: f32,
    /// How the contrastive term compares two means: the cosine (CLIP's; the default, and
    /// configs without the field) or minus half the squared Euclidean distance, which also
    /// pulls a pair's means to the same place, not only the same direction.
    #[serde(default, skip_serializing_if = "is_cosine")]
    pub contrastive_similarity: Similarity,
    /// The contrastive term's temperature at the start of training, learned from there (`None`:
    /// the similarity's default, CLIP's 0.07 for the cosine and 1 for the Euclidean form; see
    /// [`crate::model::initial_log_scale`]). A softer start pulls a pair's means closer
    /// (`docs/results.md`). 0.01 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrastive_temperature: Option<f32>,
    /// Whether the contrastive term's temperature stays at its start instead of being learned
    /// (configs without the field: learned, as CLIP). Learned, it sharpens as training goes on
    /// and the pull between a pair's means weakens (`docs/results.md`).
    #[serde(default, skip_serializing_if = "is_false")]
    pub contrastive_hold_temperature: bool,
    /// What the contrastive term compares of each unimodal posterior: a reparameterised draw
    /// (the default, and configs without the field) or its mean. A draw also asks each
    /// posterior to be sure of where it puts a sample, which generating one modality from
    /// another's posterior draws needs (`docs/results.md`).
    #[serde(default, skip_serializing_if = "is_draw")]
    pub contrastive_input: ContrastiveInput,
}

/// What the contrastive term compares of each modality's unimodal posterior
/// ([`ModelConfig::contrastive_input`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContrastiveInput {
    /// A reparameterised draw `mu + sigma eps`: the pair must agree where the posteriors put
    /// their samples, so an unsure posterior (a wide one) pays for its spread.
    #[default]
    Draw,
    /// The mean `mu`, the embedding that [`crate::embed`] exports; the spread is free.
    Mean,
}

impl ContrastiveInput {
    /// Both, in the order `--help` lists them.
    pub const ALL: [ContrastiveInput; 2] = [ContrastiveInput::Draw, ContrastiveInput::Mean];

    /// The name used by the CLI, configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            ContrastiveInput::Draw => "draw",
            ContrastiveInput::Mean => "mean",
        }
    }
}

impl std::fmt::Display for ContrastiveInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for ContrastiveInput {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ContrastiveInput::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| Error::config("contrastive_input", s, "draw or mean"))
    }
}

fn is_draw(x: &ContrastiveInput) -> bool {
    *x == ContrastiveInput::Draw
}

fn is_false(x: &bool) -> bool {
    !*x
}

fn is_cosine(s: &Similarity) -> bool {
    *s == Similarity::Cosine
}

fn is_zero(x: &usize) -> bool {
    *x == 0
}

fn is_zero_f32(x: &f32) -> bool {
    *x == 0.0
}

fn default_components() -> usize {
    SubsetDraw::DEFAULT_LIMIT
}

fn is_default_components(x: &usize) -> bool {
    *x == SubsetDraw::DEFAULT_LIMIT
}

impl ModelConfig {
    /// A config with the given modalities, Swish activations and the product of experts.
    pub fn new(modalities: Vec<ModalitySpec>) -> Self {
        Self {
            modalities,
            activation: Activation::Swish,
            aggregation: AggregationKind::default(),
            private: 0,
            components: SubsetDraw::DEFAULT_LIMIT,
            contrastive: 0.0,
            contrastive_similarity: Similarity::Cosine,
            contrastive_temperature: None,
            contrastive_hold_temperature: false,
            contrastive_input: ContrastiveInput::Draw,
        }
    }

    /// Sets the weight of the contrastive term (0 = off); see [`ModelConfig::contrastive`].
    pub fn contrastive(mut self, weight: f32) -> Self {
        self.contrastive = weight;
        self
    }

    /// Sets how the contrastive term compares two means.
    pub fn contrastive_similarity(mut self, similarity: Similarity) -> Self {
        self.contrastive_similarity = similarity;
        self
    }

    /// Sets the contrastive term's temperature at the start of training.
    pub fn contrastive_temperature(mut self, temperature: f32) -> Self {
        self.contrastive_temperature = Some(temperature);
        self
    }

    /// Holds the contrastive term's temperature at its start (`true`) or learns it.
    pub fn contrastive_hold_temperature(mut self, hold: bool) -> Self {
        self.contrastive_hold_temperature = hold;
        self
    }

    /// Sets what the contrastive term compares of each unimodal posterior.
    pub fn contrastive_input(mut self, input: ContrastiveInput) -> Self {
        self.contrastive_input = input;
        self
    }

    /// The most a contrastive weight may be (the term is about `ln(batch)` nats per sample at
    /// the start; far larger weights only drown the likelihood).
    pub const MAX_CONTRASTIVE: f32 = 1e4;

    /// Sets the most mixture components per sample (MoPoE: subsets drawn per step beyond it).
    pub fn components(mut self, limit: usize) -> Self {
        self.components = limit;
        self
    }

    /// Sets how experts are combined. Switching to MMVAE+ on a config without private
    /// latents gives each modality a private latent of 1 dimension (set the size with
    /// [`ModelConfig::private`]); switching to another kind drops them, so the config stays
    /// valid either way.
    pub fn aggregation(mut self, kind: AggregationKind) -> Self {
        self.aggregation = kind;
        if kind != AggregationKind::MmvaePlus {
            self.private = 0;
        } else if self.private == 0 {
            self.private = 1;
        }
        self
    }

    /// Sets the size of each modality's private latent (MMVAE+).
    pub fn private(mut self, size: usize) -> Self {
        self.private = size;
        self
    }

    /// The private size MMVAE+ gets when none is asked for, for a latent of size `latent`:
    /// `latent / (2 M)` (at least 1), so that the shared part keeps about half the latent.
    pub fn default_private(&self, latent: usize) -> usize {
        (latent / (2 * self.modalities.len().max(1))).max(1)
    }

    /// With MMVAE+, sets the private size to [`ModelConfig::default_private`] for a latent of
    /// size `latent`; any other config is returned as it is.
    pub fn with_default_private(self, latent: usize) -> Self {
        if self.aggregation == AggregationKind::MmvaePlus {
            let size = self.default_private(latent);
            self.private(size)
        } else {
            self
        }
    }

    /// The layout of a latent of size `latent` with private slices, if the config has them.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the private slices leave no shared dimension.
    pub fn private_layout(&self, latent: usize) -> Result<Option<PrivateLayout>> {
        if self.private == 0 {
            return Ok(None);
        }
        let private = self.private * self.modalities.len();
        if private >= latent {
            return Err(Error::config(
                "private",
                self.private,
                &format!(
                    "a size whose {} slices ({private} dimensions) leave a shared part in a \
                     latent of {latent}",
                    self.modalities.len()
                ),
            ));
        }
        Ok(Some(PrivateLayout {
            shared: latent - private,
            private: self.private,
        }))
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

    /// The most parameters a model may have: 2^30 (4 GiB of weights, and twice that again for
    /// Adam's moments while training).
    pub const MAX_PARAMETERS: usize = 1 << 30;

    /// The number of parameters (weights) of this model with a latent of size `latent`, counted
    /// without building it; `None` if the count overflows. The config should validate first.
    pub fn parameter_count(&self, latent: usize) -> Option<usize> {
        let linear = |i: usize, o: usize| i.checked_mul(o)?.checked_add(o);
        let stack = |first: usize, sizes: &[usize]| {
            let mut prev = first;
            let mut n = 0usize;
            for &s in sizes {
                n = n.checked_add(linear(prev, s)?)?;
                prev = s;
            }
            Some(n)
        };
        let decoder_input = match self.private_layout(latent).ok()? {
            Some(l) => l.decoder_input(),
            None => latent,
        };
        let mut n = self
            .private
            .checked_mul(self.modalities.len())?
            .checked_add(usize::from(self.contrastive > 0.0))?;
        for m in &self.modalities {
            let (eh, dh) = (&m.encoder_hidden, &m.decoder_hidden);
            let (first, last) = (*eh.first()?, *eh.last()?);
            let input = match m.kind.encoder_input() {
                EncoderInput::Dense { dim } => linear(dim, first)?,
                EncoderInput::Embedding { classes } => classes.checked_mul(first)?,
            };
            let heads = linear(last, latent)?.checked_mul(2)?;
            let like = m.kind.likelihood();
            let out = linear(*dh.last()?, like.params())?;
            let logvar = match like {
                Likelihood::Gaussian {
                    variance: Variance::Learned,
                    ..
                } => like.params(),
                _ => 0,
            };
            for part in [
                input,
                stack(first, &eh[1..])?,
                heads,
                stack(decoder_input, dh)?,
                out,
                logvar,
            ] {
                n = n.checked_add(part)?;
            }
        }
        Some(n)
    }

    /// Checks that the model with a latent of size `latent` has at most
    /// [`ModelConfig::MAX_PARAMETERS`] parameters, before anything is allocated.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] giving the count (or saying it overflows) and the bound.
    pub fn check_size(&self, latent: usize) -> Result<()> {
        match self.parameter_count(latent) {
            Some(n) if n <= Self::MAX_PARAMETERS => Ok(()),
            n => Err(Error::config(
                "model size",
                n.map_or("more than 2^64 parameters".to_string(), |n| {
                    format!("{n} parameters")
                }),
                &format!(
                    "at most {} parameters (smaller hidden sizes, latent or data)",
                    Self::MAX_PARAMETERS
                ),
            )),
        }
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
        if self.components == 0 {
            return Err(Error::config("components", 0, "at least 1"));
        }
        if let Some(t) = self
            .contrastive_temperature
            .filter(|t| !(t.is_finite() && (0.01..=100.0).contains(t)))
        {
            return Err(Error::config(
                "contrastive_temperature",
                t,
                "a temperature from 0.01 to 100",
            ));
        }
        if !(self.contrastive.is_finite()
            && (0.0..=Self::MAX_CONTRASTIVE).contains(&self.contrastive))
        {
            return Err(Error::config(
                "contrastive",
                self.contrastive,
                &format!("a weight from 0 (off) to {}", Self::MAX_CONTRASTIVE),
            ));
        }
        if self.components != SubsetDraw::DEFAULT_LIMIT
            && self.aggregation != AggregationKind::MixtureOfProductsOfExperts
        {
            return Err(Error::config(
                "components",
                self.components,
                &format!(
                    "the default ({}) with aggregation {} (only mopoe mixes subsets)",
                    SubsetDraw::DEFAULT_LIMIT,
                    self.aggregation
                ),
            ));
        }
        let wants_private = self.aggregation == AggregationKind::MmvaePlus;
        if wants_private && self.private == 0 {
            return Err(Error::config(
                "private",
                0,
                "a private latent of at least 1 dimension per modality with mmvae-plus",
            ));
        }
        if !wants_private && self.private != 0 {
            return Err(Error::config(
                "private",
                self.private,
                &format!(
                    "0 with aggregation {} (only mmvae-plus has private latents)",
                    self.aggregation
                ),
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
