//! The multimodal VAE: one encoder and one decoder per modality around a shared latent space
//! of compile-time size `L`.
//!
//! Encoding a subset of modalities combines the Gaussian experts of the modalities each sample
//! has into one posterior, by the config's [`AggregationKind`](crate::aggregation::AggregationKind) (the product of experts with the
//! N(0, I) prior unless the config says otherwise); a missing modality is simply left out, per
//! sample.

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::aggregation::{Aggregation, Expert, Experts};
use crate::backend::{Backend, Latent, Matrix, Vector};
use crate::batch::{Batch, Input};
use crate::likelihood::{self, Likelihood, Variance};
use crate::modality::{EncoderInput, Modality, ModalitySpec};
use crate::nn::{Embedding, Linear, Mlp, ParamMut, ParamVisitor, Parameters};
use crate::posterior::{self, Gaussian, Posterior};
use crate::subset::Subset;
use crate::{Error, Result};

mod config;

pub use config::ModelConfig;

/// Maps one modality's data to its Gaussian expert `q(z | x_m)`.
#[derive(Clone, Debug)]
pub struct Encoder<const L: usize, D: Backend> {
    /// First layer: a linear map of dense input or an embedding of class indices.
    pub input: InputLayer<D>,
    /// The remaining hidden layers.
    pub hidden: Mlp<D>,
    /// Head for the mean.
    pub mean: Linear<D>,
    /// Head for the log-variance.
    pub logvar: Linear<D>,
}

/// The first layer of an encoder, by [`EncoderInput`].
#[derive(Clone, Debug)]
pub enum InputLayer<D: Backend> {
    /// Dense values through a linear layer.
    Dense(Linear<D>),
    /// Class indices through an embedding table.
    Embedding(Embedding<D>),
}

impl<D: Backend> Parameters<D> for InputLayer<D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        match self {
            InputLayer::Dense(l) => l.visit_params(v),
            InputLayer::Embedding(e) => e.visit_params(v),
        }
    }
}

/// Maps a latent to one modality's likelihood parameters.
#[derive(Clone, Debug)]
pub struct Decoder<D: Backend> {
    /// Hidden layers from the latent.
    pub hidden: Mlp<D>,
    /// Output layer: logits or means.
    pub out: Linear<D>,
    /// Per-dimension log-variance of a Gaussian likelihood with learned variance.
    pub logvar: Option<Vector<D>>,
}

/// A decoder's output for a batch of latents.
#[derive(Debug)]
pub struct DecoderOutput<D: Backend, T = NoneTape> {
    /// Logits (Bernoulli, categorical) or means (Gaussian), `(batch, params)`.
    pub params: Matrix<D, T>,
    /// Learned per-dimension log-variance (Gaussian with learned variance only).
    pub logvar: Option<Vector<D, T>>,
}

/// A multimodal VAE with latent size `L` on device `D`.
#[derive(Clone, Debug)]
pub struct Mvae<const L: usize, D: Backend> {
    config: ModelConfig,
    /// One encoder per modality, in config order.
    pub encoders: Vec<Encoder<L, D>>,
    /// One decoder per modality, in config order.
    pub decoders: Vec<Decoder<D>>,
    dev: D,
}

impl<const L: usize, D: Backend> Mvae<L, D> {
    /// Builds a model with weights initialised from `seed` (same seed, same weights, on any
    /// device).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the config does not validate or `L` is 0.
    pub fn new(config: &ModelConfig, dev: &D, seed: u64) -> Result<Self> {
        config.validate()?;
        if L == 0 {
            return Err(Error::config("latent size", 0, "at least 1"));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let act = config.activation;
        let mut encoders = Vec::new();
        let mut decoders = Vec::new();
        for spec in &config.modalities {
            let h = &spec.encoder_hidden;
            let input = match spec.kind.encoder_input() {
                EncoderInput::Dense { dim } => {
                    InputLayer::Dense(Linear::new(dim, h[0], true, &mut rng, dev))
                }
                EncoderInput::Embedding { classes } => {
                    InputLayer::Embedding(Embedding::new(classes, h[0], &mut rng, dev))
                }
            };
            let hidden = Mlp::new(h[0], &h[1..], act, &mut rng, dev);
            let last = *h.last().expect("validated: encoder has a hidden layer");
            encoders.push(Encoder {
                input,
                hidden,
                mean: Linear::new(last, L, true, &mut rng, dev),
                logvar: Linear::new(last, L, true, &mut rng, dev),
            });
            let hd = &spec.decoder_hidden;
            let like = spec.kind.likelihood();
            let last = *hd.last().expect("validated: decoder has a hidden layer");
            let logvar = matches!(
                like,
                Likelihood::Gaussian {
                    variance: Variance::Learned,
                    ..
                }
            )
            .then(|| dev.zeros_like(&(like.params(),)));
            decoders.push(Decoder {
                hidden: Mlp::new(L, hd, act, &mut rng, dev),
                out: Linear::new(last, like.params(), true, &mut rng, dev),
                logvar,
            });
        }
        Ok(Self {
            config: config.clone(),
            encoders,
            decoders,
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

    /// The expert `q(z | x_m)` of modality `m`, recording on `tape`.
    pub fn expert<T: Tape<f32, D>>(
        &self,
        m: usize,
        input: &Input<D>,
        tape: T,
    ) -> Gaussian<L, D, T> {
        let enc = &self.encoders[m];
        let act = self.config.activation;
        let h = match (&enc.input, input) {
            (InputLayer::Dense(l), Input::Dense(x)) => {
                l.forward_on_data(x.clone().put_tape(tape), act)
            }
            (InputLayer::Embedding(e), Input::Classes(ids)) => {
                act.apply(e.lookup(ids.clone().put_tape(tape)))
            }
            _ => panic!("input of modality {m} does not match its encoder"),
        };
        let h = enc.hidden.forward(h);
        let mean = enc.mean.forward(h.with_empty_tape());
        let logvar = enc.logvar.forward(h);
        Gaussian {
            mean: crate::backend::realize(mean),
            logvar: crate::backend::realize(logvar),
        }
    }

    /// The experts of the modalities in `which` that the batch has, each recording on a tape
    /// of its own (`T::default()`), in precision form as well (see [`Expert`]).
    pub fn experts<T: Tape<f32, D>>(&self, batch: &Batch<D>, which: Subset) -> Experts<L, D, T> {
        let experts = (0..self.modalities().len())
            .map(|m| {
                let c = batch.column(m).filter(|_| which.contains(m))?;
                let q = self.expert(m, &c.input, T::default());
                let gaussian = Gaussian {
                    mean: q.mean.with_empty_tape(),
                    logvar: q.logvar.with_empty_tape(),
                };
                Some(Expert {
                    gaussian,
                    precision_form: q.weighted(c.mask()),
                    present: c.mask().cloned(),
                    present_host: c.present_host.clone(),
                })
            })
            .collect();
        Experts::new(experts, batch.size(), &self.dev)
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

    /// Decoder `m`'s likelihood parameters for latents `z`.
    pub fn decode<T: Tape<f32, D>>(&self, m: usize, z: Latent<L, D, T>) -> DecoderOutput<D, T> {
        let dec = &self.decoders[m];
        let z: Matrix<D, T> = crate::backend::realize(z);
        let params = dec.out.forward(dec.hidden.forward(z));
        let logvar = dec
            .logvar
            .as_ref()
            .map(|lv| lv.clone().put_tape(T::default()));
        DecoderOutput { params, logvar }
    }

    /// `log p(x_m | z)` per sample from decoder `m`'s output.
    ///
    /// # Panics
    /// If `target` does not fit modality `m` (the batch was built for another model).
    pub fn log_likelihood<T: Tape<f32, D>>(
        &self,
        m: usize,
        out: DecoderOutput<D, T>,
        target: &Input<D>,
    ) -> Vector<D, T> {
        match (self.modalities()[m].kind.likelihood(), target) {
            (Likelihood::Bernoulli { .. }, Input::Dense(x)) => likelihood::bernoulli(out.params, x),
            (Likelihood::Categorical { .. }, Input::Classes(y)) => {
                likelihood::categorical(out.params, y)
            }
            (Likelihood::Gaussian { variance, .. }, Input::Dense(x)) => {
                match (variance, out.logvar) {
                    (Variance::Learned, Some(lv)) => likelihood::gaussian(out.params, lv, x),
                    (Variance::Fixed(v), _) => likelihood::gaussian_fixed(out.params, v, x),
                    (Variance::Learned, None) => unreachable!("learned variance has a logvar"),
                }
            }
            _ => panic!("target does not match the likelihood of modality {m}"),
        }
    }

    /// The expected value of `x_m` given `z`: pixel probabilities, class probabilities or
    /// Gaussian means, `(batch, params)`.
    pub fn decode_mean(&self, m: usize, z: Latent<L, D>) -> Matrix<D> {
        let out = self.decode(m, z).params;
        match self.modalities()[m].kind.likelihood() {
            Likelihood::Bernoulli { .. } => out.sigmoid(),
            Likelihood::Categorical { .. } => out.softmax::<Axis<1>>(),
            Likelihood::Gaussian { .. } => out,
        }
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
                v.scope(name, |v| {
                    v.scope("input", |v| enc.input.visit_params(v));
                    v.scope("hidden", |v| enc.hidden.visit_params(v));
                    v.scope("mean", |v| enc.mean.visit_params(v));
                    v.scope("logvar", |v| enc.logvar.visit_params(v));
                });
            }
        });
        v.scope("decoders", |v| {
            for (dec, name) in self.decoders.iter_mut().zip(&names) {
                v.scope(name, |v| {
                    v.scope("hidden", |v| dec.hidden.visit_params(v));
                    v.scope("out", |v| dec.out.visit_params(v));
                    if let Some(lv) = &mut dec.logvar {
                        v.visit("logvar", ParamMut::Vector(lv));
                    }
                });
            }
        });
    }
}
