//! The multimodal VAE: per modality `m` an encoder `x_m -> q(z | x_m)` and a decoder
//! `z -> p(x_m | z)` around a shared latent space of compile-time size `L`.
//!
//! Encoding a subset of modalities combines the Gaussian experts of the modalities each sample
//! has into one posterior, by the config's
//! [`AggregationKind`](crate::aggregation::AggregationKind) (the product of experts with the
//! N(0, I) prior unless the config says otherwise); a missing modality is simply left out, per
//! sample.
//!
//! [`Mvae`] is a composition: the blocks own their construction, forward pass and parameter walk
//! ([`Encoder`] in `encoder.rs`, [`Decoder`] in `decoder.rs`), the architecture is data
//! ([`ModelConfig`] in `config.rs`), and each modality's likelihood scores and summarises what
//! its decoder gives ([`Likelihood`](crate::likelihood::Likelihood)).

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::aggregation::{Aggregation, Expert, Experts, PrivateLayout, PrivatePriors, SubsetDraw};
use crate::backend::{realize, Backend, Latent, Matrix, Vector};
use crate::batch::Batch;
use crate::likelihood::Input;
use crate::modality::{Modality, ModalitySpec};
use crate::nn::{ParamVisitor, Parameters};
use crate::posterior::{self, Gaussian, Posterior};
use crate::similarity::Similarity;
use crate::subset::Subset;
use crate::{Error, Result};

mod config;
mod decoder;
mod encoder;

pub use config::{ContrastiveInput, ModelConfig};
pub use decoder::Decoder;
pub use encoder::{Encoder, InputLayer};
// The decoder's output type, defined with the likelihoods that read it.
pub use crate::likelihood::DecoderOutput;

/// The contrastive term's log logit scale `t` at the start of training with the cosine:
/// `ln(1 / 0.07)`, CLIP's initial temperature of 0.07 (see [`crate::objective::contrastive`]).
pub const INITIAL_LOG_SCALE: f32 = 2.659_26;

/// The contrastive term's log logit scale at the start of training for `similarity`: CLIP's
/// [`INITIAL_LOG_SCALE`] for the cosine, whose values lie in [-1, 1]; 0 (temperature 1) for
/// the Euclidean form, whose squared distances are in the latent's own units, those of the
/// prior's unit variance. Measured (`docs/results.md`): the Euclidean form started at CLIP's
/// 0.07 spoils the image likelihood, started at 1 it costs nothing at the same weight.
pub fn initial_log_scale(similarity: Similarity) -> f32 {
    match similarity {
        Similarity::Cosine => INITIAL_LOG_SCALE,
        Similarity::Euclidean => 0.0,
    }
}

/// The largest log logit scale the contrastive term uses: `ln 100` (temperature 0.01), CLIP's
/// clamp.
pub const MAX_LOG_SCALE: f32 = 4.605_17;

/// A multimodal VAE with latent size `L` on device `D`.
#[derive(Clone, Debug)]
pub struct Mvae<const L: usize, D: Backend> {
    config: ModelConfig,
    /// One encoder per modality, in config order.
    pub encoders: Vec<Encoder<L, D>>,
    /// One decoder per modality, in config order.
    pub decoders: Vec<Decoder<D>>,
    /// Per modality, the log-variance of its private latent's learned prior `(P,)` (MMVAE+;
    /// empty without private latents).
    pub private_prior: Vec<Vector<D>>,
    /// The contrastive term's learnable log logit scale `t` `(1,)` (a model with a
    /// contrastive weight; `None` otherwise).
    pub contrastive_scale: Option<Vector<D>>,
    layout: Option<PrivateLayout>,
    /// Per modality, the 0/1 matrix that picks the columns its decoder reads (with private
    /// latents; empty where every decoder reads the whole latent), built once.
    decoder_selections: Vec<Matrix<D>>,
    dev: D,
}

impl<const L: usize, D: Backend> Mvae<L, D> {
    /// Builds a model with weights initialised from `seed` (same seed, same weights, on any
    /// device).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the config does not validate, `L` is 0, the private
    /// latents leave no shared dimension or the model would have more than
    /// [`ModelConfig::MAX_PARAMETERS`] parameters.
    pub fn new(config: &ModelConfig, dev: &D, seed: u64) -> Result<Self> {
        config.validate()?;
        if L == 0 {
            return Err(Error::config("latent size", 0, "at least 1"));
        }
        let layout = config.private_layout(L)?;
        config.check_size(L)?;
        let decoder_input = layout.map_or(L, |l| l.decoder_input());
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let act = config.activation;
        let mut encoders = Vec::new();
        let mut decoders = Vec::new();
        // Per modality, the encoder's draws and then the decoder's: the order fixes the weights
        // a seed gives.
        for spec in &config.modalities {
            encoders.push(Encoder::new(spec, act, &mut rng, dev));
            decoders.push(Decoder::new(spec, decoder_input, act, &mut rng, dev));
        }
        // The private priors start at N(0, I).
        let private_prior = layout
            .map(|l| {
                config
                    .modalities
                    .iter()
                    .map(|_| dev.zeros_like(&(l.private,)))
                    .collect()
            })
            .unwrap_or_default();
        let decoder_selections = layout
            .map(|l| {
                (0..config.modalities.len())
                    .filter_map(|m| l.decoder_selection(L, m, dev))
                    .collect()
            })
            .unwrap_or_default();
        let contrastive_scale = (config.contrastive > 0.0).then(|| {
            let t = config.contrastive_temperature.map_or_else(
                || initial_log_scale(config.contrastive_similarity),
                |t| -t.ln(),
            );
            dev.tensor_from_vec(vec![t], (1,))
        });
        Ok(Self {
            config: config.clone(),
            encoders,
            decoders,
            private_prior,
            contrastive_scale,
            layout,
            decoder_selections,
            dev: dev.clone(),
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The modalities in model order.
    pub fn modalities(&self) -> &[ModalitySpec] {
        &self.config.modalities
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Index of the modality called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] listing the model's modalities.
    pub fn modality_index(&self, name: &str) -> Result<usize> {
        self.modalities()
            .iter()
            .position(|m| m.name() == name)
            .ok_or_else(|| Error::InvalidData {
                what: format!("modality {name}"),
                reason: format!(
                    "is not in the model (it has {})",
                    self.modalities()
                        .iter()
                        .map(|m| m.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The modalities called `names`, as a [`Subset`] (the name-based form of
    /// `Subset::of(&[indices])`), e.g. `model.subset(&["image", "label"])?`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] for a name that is not a modality of the model, listing them.
    pub fn subset(&self, names: &[&str]) -> Result<Subset> {
        let indices = names
            .iter()
            .map(|n| self.modality_index(n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Subset::of(&indices))
    }

    /// The names of the modalities in `subset`, in model order.
    pub fn names(&self, subset: Subset) -> Vec<&str> {
        subset
            .iter()
            .filter_map(|m| self.modalities().get(m).map(|s| s.name()))
            .collect()
    }

    /// The expert `q(z | x_m)` of modality `m`, recording on `tape`.
    pub fn expert<T: Tape<f32, D>>(
        &self,
        m: usize,
        input: &Input<D>,
        tape: T,
    ) -> Gaussian<L, D, T> {
        self.encoders[m].forward(input, tape)
    }

    /// The experts of the modalities in `which` that the batch has, each recording on a tape
    /// of its own (`T::default()`), in precision form as well (see [`Expert`]).
    pub fn experts<T: Tape<f32, D>>(&self, batch: &Batch<D>, which: Subset) -> Experts<L, D, T> {
        let experts = (0..self.modalities().len())
            .map(|m| {
                let c = batch.column(m).filter(|_| which.contains(m))?;
                let q = self.expert(m, &c.input, T::default());
                Some(Expert {
                    gaussian: q.retaped(),
                    precision_form: q.weighted(c.mask()),
                    present_host: c.present_host.clone(),
                })
            })
            .collect();
        let experts = Experts::new(experts, batch.size(), &self.dev).with_subsets(SubsetDraw {
            limit: self.config.components,
            seed: 0,
        });
        match self.layout {
            Some(layout) => experts.with_private(PrivatePriors {
                layout,
                logvar: self
                    .private_prior
                    .iter()
                    .map(|v| v.clone().put_tape(T::default()))
                    .collect(),
            }),
            None => experts,
        }
    }

    /// The contrastive term's log logit scale `t` (`(1,)`), if the model has a contrastive
    /// weight.
    pub fn contrastive_log_scale(&self) -> Option<&Vector<D>> {
        self.contrastive_scale.as_ref()
    }

    /// The contrastive term's temperature `1 / exp(min(t, ln 100))` now (CLIP starts at 0.07
    /// and stops at 0.01), if the model has a contrastive weight.
    pub fn contrastive_temperature(&self) -> Option<f32> {
        let t = self.contrastive_scale.as_ref()?.as_vec()[0];
        Some((-t.min(MAX_LOG_SCALE)).exp())
    }

    /// Where the shared and private parts of the latent lie, if the model has private
    /// latents (MMVAE+).
    pub fn private_layout(&self) -> Option<PrivateLayout> {
        self.layout
    }

    /// The posterior `q(z | x_S)` of the modalities in `subset` that the batch has, combined
    /// per sample by the config's aggregation (a sample with none of them gets the prior).
    pub fn encode(&self, batch: &Batch<D>, subset: Subset) -> Posterior<L, D> {
        let experts = self.experts::<NoneTape>(batch, subset);
        self.config.aggregation.aggregate(&experts, subset)
    }

    /// The posterior of every modality the batch has.
    pub fn encode_all(&self, batch: &Batch<D>) -> Posterior<L, D> {
        self.encode(batch, Subset::all(self.modalities().len()))
    }

    /// Decoder `m`'s likelihood parameters for latents `z` (with private latents, from the
    /// shared part and `m`'s own slice).
    pub fn decode<T: Tape<f32, D>>(&self, m: usize, z: Latent<L, D, T>) -> DecoderOutput<D, T> {
        match self.decoder_selections.get(m) {
            Some(select) => {
                let z: Matrix<D, T> = realize(z);
                self.decoders[m].forward_features(z.matmul(select.clone()))
            }
            None => self.decoders[m].forward(z),
        }
    }

    /// `log p(x_m | z)` per sample from decoder `m`'s output.
    ///
    /// # Panics
    /// If `target` does not fit modality `m`'s likelihood (the batch was built for another
    /// model); see [`Likelihood::log_prob`](crate::likelihood::Likelihood::log_prob).
    pub fn log_likelihood<T: Tape<f32, D>>(
        &self,
        m: usize,
        out: DecoderOutput<D, T>,
        target: &Input<D>,
    ) -> Vector<D, T> {
        self.modalities()[m].kind.likelihood().log_prob(out, target)
    }

    /// The expected value of `x_m` given `z`: pixel probabilities, class probabilities or
    /// Gaussian means, `(batch, params)`.
    pub fn decode_mean(&self, m: usize, z: Latent<L, D>) -> Matrix<D> {
        self.modalities()[m]
            .kind
            .likelihood()
            .mean(self.decode(m, z))
    }

    /// [`Mvae::decode_mean`] of the modality called `name`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] for a name that is not a modality of the model.
    pub fn decode_mean_of(&self, name: &str, z: Latent<L, D>) -> Result<Matrix<D>> {
        Ok(self.decode_mean(self.modality_index(name)?, z))
    }

    /// `n` latents from the prior N(0, I), drawn from `rng`.
    pub fn sample_prior(&self, n: usize, rng: &mut impl Rng) -> Latent<L, D> {
        let v = posterior::normal_draws(n * L, rng);
        self.dev.tensor_from_vec(v, (n, Const::<L>))
    }

    /// Number of scalar parameters.
    pub fn param_count(&mut self) -> usize {
        self.num_params()
    }
}

impl<const L: usize, D: Backend> Parameters<D> for Mvae<L, D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        let names: Vec<String> = self
            .modalities()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        v.scope("encoders", |v| {
            for (enc, name) in self.encoders.iter_mut().zip(&names) {
                v.scope(name, |v| enc.visit_params(v));
            }
        });
        v.scope("decoders", |v| {
            for (dec, name) in self.decoders.iter_mut().zip(&names) {
                v.scope(name, |v| dec.visit_params(v));
            }
        });
        if !self.private_prior.is_empty() {
            v.scope("private_prior", |v| {
                for (lv, name) in self.private_prior.iter_mut().zip(&names) {
                    v.visit(name, crate::nn::ParamMut::Vector(lv));
                }
            });
        }
        if let Some(t) = &mut self.contrastive_scale {
            v.scope("contrastive", |v| {
                v.visit("log_scale", crate::nn::ParamMut::Vector(t));
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modality::{Image, Label};
    use rand::SeedableRng;

    /// Names address the same modalities as indices; an unknown name is an error that lists
    /// the model's modalities.
    /// A contrastive weight gives the model one more parameter, the logit scale, starting at
    /// the chosen temperature, by default CLIP's 0.07 for the cosine and 1 for the Euclidean
    /// form; a temperature out of range is refused; without a weight there is no parameter,
    /// and the parameter count says so before the model is built.
    #[test]
    fn a_contrastive_weight_adds_the_temperature() {
        let cfg = ModelConfig::new(vec![
            ModalitySpec::new(Image::new("image", 2, 2)),
            ModalitySpec::new(Label::new("label", 3)),
        ])
        .hidden(&[3], &[3]);
        let dev = Cpu::default();
        let mut plain = Mvae::<2, Cpu>::new(&cfg, &dev, 1).unwrap();
        assert_eq!(plain.contrastive_temperature(), None);
        let chosen = cfg.clone().contrastive(5.0).contrastive_temperature(0.5);
        let model = Mvae::<2, Cpu>::new(&chosen, &dev, 1).unwrap();
        assert!((model.contrastive_temperature().unwrap() - 0.5).abs() < 1e-4);
        for bad in [0.001, f32::NAN, 1000.0] {
            let err = cfg.clone().contrastive(5.0).contrastive_temperature(bad);
            let message = format!("{}", err.validate().unwrap_err());
            assert!(message.contains("contrastive_temperature"), "{message}");
        }
        for (similarity, want) in [(Similarity::Cosine, 0.07), (Similarity::Euclidean, 1.0)] {
            let with = cfg
                .clone()
                .contrastive(5.0)
                .contrastive_similarity(similarity);
            let mut model = Mvae::<2, Cpu>::new(&with, &dev, 1).unwrap();
            let t = model.contrastive_temperature().unwrap();
            assert!((t - want).abs() < 1e-4, "{similarity}: {t}");
            assert_eq!(model.param_count(), plain.param_count() + 1);
            assert_eq!(with.parameter_count(2), Some(model.param_count()));
        }
    }

    #[test]
    fn modalities_by_name_equal_modalities_by_index() {
        let cfg = ModelConfig::new(vec![
            ModalitySpec::new(Image::new("image", 2, 2)).encoder_hidden(&[3]),
            ModalitySpec::new(Label::new("label", 3)).encoder_hidden(&[3]),
        ])
        .hidden(&[3], &[3]);
        let model = Mvae::<2, Cpu>::new(&cfg, &Cpu::default(), 1).unwrap();
        assert_eq!(model.subset(&["label"]).unwrap(), Subset::single(1));
        assert_eq!(model.subset(&["label", "image"]).unwrap(), Subset::all(2));
        assert_eq!(model.names(Subset::all(2)), vec!["image", "label"]);
        let err = model.subset(&["image", "sound"]).unwrap_err().to_string();
        assert!(
            err.contains("sound") && err.contains("image, label"),
            "{err}"
        );
        let z = model.sample_prior(4, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(
            model.decode_mean_of("image", z.clone()).unwrap().as_vec(),
            model.decode_mean(0, z.clone()).as_vec()
        );
        assert!(model.decode_mean_of("sound", z).is_err());
    }
}
