//! How the experts of the modalities a sample has are combined into one posterior.
//!
//! Every modality's encoder emits a Gaussian expert `q(z | x_m)`. For a subset `S` of the
//! modalities, an [`Aggregation`] turns the experts of `S` that each sample has into the
//! posterior `q(z | x_S)` ([`Posterior`]): the product of experts with the prior (MVAE, Wu &
//! Goodman 2018) is [`ProductOfExperts`], in `poe.rs`. A sample that has no modality of `S`
//! gets the prior N(0, I).
//!
//! [`Experts`] holds one batch's experts, encoded once (by
//! [`Mvae::experts`](crate::Mvae::experts)) and shared by every subset the objective or an
//! evaluation asks for. [`AggregationKind`] is the serde enum that a
//! [`ModelConfig`](crate::ModelConfig) stores; it defaults to the product of experts, so a
//! config or checkpoint written before the field existed reads as one.
//!
//! # Adding a way of combining experts
//! 1. One file here with a unit struct implementing [`Aggregation`] (its maths and tests);
//! 2. one arm in [`AggregationKind`] (and in its `aggregate` match);
//! 3. its kind added to the list that `tests/it/aggregation.rs` runs through the shared
//!    contract (a masked-out expert changes nothing, parts of a batch equal the whole,
//!    gradients match finite differences).
//!
//! If its posterior is not a diagonal Gaussian, add a [`Posterior`] variant with its sampling,
//! log-density and KL.

mod mmvae_plus;
mod moe;
mod mopoe;
mod poe;

use dfdx::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, Vector};
use crate::posterior::{Gaussian, WeightedExpert};
use crate::subset::Subset;

pub use crate::posterior::Posterior;
pub use mmvae_plus::{MmvaePlus, PrivateLayout};
pub use moe::MixtureOfExperts;
pub use mopoe::{MixtureOfProductsOfExperts, SubsetDraw};
pub use poe::{combine, product_of_experts, MaskedExpert, ProductOfExperts};

/// One modality's expert over a batch, with the samples that have the modality.
#[derive(Debug)]
pub struct Expert<const L: usize, D: Backend, T = NoneTape> {
    /// `q(z | x_m)`: mean and log-variance, `(batch, L)`. Copies with empty tapes: the
    /// encoder's operations are on the tapes of `precision_form`.
    pub gaussian: Gaussian<L, D, T>,
    /// The expert in precision form, masked by presence (`T_m p_m`, `T_m p_m mean_m`): what a
    /// product adds up, computed once per batch because every term of a step reuses it.
    pub precision_form: WeightedExpert<L, D, T>,
    /// Whether each sample has the modality (the precision form is already masked by it).
    pub present_host: Vec<bool>,
}

/// The experts of one batch, one slot per model modality (in model order; `None` where the
/// batch has no value of the modality or it was not encoded).
#[derive(Debug)]
pub struct Experts<const L: usize, D: Backend, T = NoneTape> {
    experts: Vec<Option<Expert<L, D, T>>>,
    batch: usize,
    dev: D,
    private: Option<PrivatePriors<D, T>>,
    subsets: SubsetDraw,
}

impl<const L: usize, D: Backend, T: Tape<f32, D>> Experts<L, D, T> {
    /// Experts for a batch of `batch` samples from one slot per modality.
    ///
    /// # Panics
    /// If an expert's batch size is not `batch`.
    pub fn new(experts: Vec<Option<Expert<L, D, T>>>, batch: usize, dev: &D) -> Self {
        for e in experts.iter().flatten() {
            assert_eq!(e.gaussian.batch(), batch, "expert of another batch size");
        }
        Self {
            experts,
            batch,
            dev: dev.clone(),
            private: None,
            subsets: SubsetDraw::default(),
        }
    }

    /// The same experts with another [`SubsetDraw`]: how many subsets the mixture of
    /// products of experts forms per sample, and from which seed.
    pub fn with_subsets(mut self, subsets: SubsetDraw) -> Self {
        self.subsets = subsets;
        self
    }

    /// How many subsets the mixture of products of experts forms per sample, and the seed.
    pub fn subsets(&self) -> SubsetDraw {
        self.subsets
    }

    /// The same experts with the model's private latents (MMVAE+): where they lie and each
    /// modality's learned prior.
    ///
    /// # Panics
    /// If there is not one prior per modality slot.
    pub fn with_private(mut self, private: PrivatePriors<D, T>) -> Self {
        assert_eq!(
            private.logvar.len(),
            self.experts.len(),
            "one prior per modality"
        );
        self.private = Some(private);
        self
    }

    /// The private latents' layout and priors, if the model has them.
    pub fn private(&self) -> Option<&PrivatePriors<D, T>> {
        self.private.as_ref()
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.dev
    }

    /// Number of modality slots (the model's modalities).
    pub fn len(&self) -> usize {
        self.experts.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.experts.is_empty()
    }

    /// The expert of modality `m`, if the batch has it.
    pub fn get(&self, m: usize) -> Option<&Expert<L, D, T>> {
        self.experts.get(m).and_then(Option::as_ref)
    }

    /// The modalities of `given` that have an expert, in model order.
    pub fn available(&self, given: Subset) -> impl Iterator<Item = usize> + '_ {
        given.iter().filter(|&m| self.get(m).is_some())
    }
}

impl<const L: usize, D: Backend> Experts<L, D, OwnedTape<f32, D>> {
    /// Copies of the experts with ids of their own and no history: posteriors formed from them
    /// pass no gradient to the encoders (DReG scores `log q(z)` with its parameters held
    /// fixed, so only the path through `z` carries gradient).
    pub fn detached(&self) -> Self {
        let experts = self
            .experts
            .iter()
            .map(|e| {
                e.as_ref().map(|e| {
                    let gaussian = e.gaussian.detached();
                    let n = self.batch;
                    let mask: Vector<D> = self.dev.tensor_from_vec(
                        e.present_host
                            .iter()
                            .map(|&p| f32::from(u8::from(p)))
                            .collect(),
                        (n,),
                    );
                    Expert {
                        precision_form: gaussian.retaped().weighted(Some(&mask)),
                        gaussian,
                        present_host: e.present_host.clone(),
                    }
                })
            })
            .collect();
        Self {
            experts,
            batch: self.batch,
            dev: self.dev.clone(),
            private: self.private.as_ref().map(PrivatePriors::reuse),
            subsets: self.subsets,
        }
    }

    /// Hands every expert's tape (the encoders' backward operations) to `loss`, so that its
    /// backward pass reaches the encoders. Every use of an expert works on copies with empty
    /// tapes, and dfdx drops the gradient of any branch whose tape never reaches the loss.
    pub fn attach_tapes<S: Shape>(
        self,
        loss: Tensor<S, f32, D, OwnedTape<f32, D>>,
    ) -> Tensor<S, f32, D, OwnedTape<f32, D>> {
        let mut loss = loss;
        for e in self.experts.into_iter().flatten() {
            let (v, tape) = loss.split_tape();
            let (p, t1) = e.precision_form.precision.split_tape();
            let (_, t2) = e.precision_form.weighted_mean.split_tape();
            drop(p);
            loss = v.put_tape(tape.merge(t1).merge(t2));
        }
        loss
    }
}

/// The private latents of a model that has them (MMVAE+): their [`PrivateLayout`] and, per
/// modality, the log-variance of its learned prior `r_m(w) = N(0, diag(exp(logvar_m)))`,
/// `(P,)`, recording on `T`.
#[derive(Debug)]
pub struct PrivatePriors<D: Backend, T = NoneTape> {
    /// Where the shared and private parts lie.
    pub layout: PrivateLayout,
    /// Each modality's prior log-variance, in model order.
    pub logvar: Vec<Vector<D, T>>,
}

impl<D: Backend, T: Tape<f32, D>> PrivatePriors<D, T> {
    /// A copy with empty tapes (same ids: gradients still reach the parameters).
    pub fn reuse(&self) -> Self {
        Self {
            layout: self.layout,
            logvar: self.logvar.iter().map(|v| v.with_empty_tape()).collect(),
        }
    }
}

/// A way of combining experts into a posterior.
pub trait Aggregation {
    /// `q(z | x_S)` for every sample of the batch, from the experts of `given` that the
    /// sample has (per-sample presence); the prior N(0, I) for a sample that has none.
    /// Records on copies of the experts with empty tapes, so one [`Experts`] serves every
    /// subset of a step.
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T>;
}

/// The ways of combining experts, as a model config stores them (`"poe"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggregationKind {
    /// The product of experts with the prior (MVAE).
    #[default]
    #[serde(rename = "poe")]
    ProductOfExperts,
    /// The uniform mixture of the present experts (MMVAE).
    #[serde(rename = "moe")]
    MixtureOfExperts,
    /// The uniform mixture of the products of experts of every non-empty subset (MoPoE).
    #[serde(rename = "mopoe")]
    MixtureOfProductsOfExperts,
    /// A shared latent combined as the mixture of experts, plus a private latent per modality
    /// with a learned prior (MMVAE+).
    #[serde(rename = "mmvae-plus")]
    MmvaePlus,
}

impl AggregationKind {
    /// Every kind, for help texts and tests.
    pub const ALL: [AggregationKind; 4] = [
        AggregationKind::ProductOfExperts,
        AggregationKind::MixtureOfExperts,
        AggregationKind::MixtureOfProductsOfExperts,
        AggregationKind::MmvaePlus,
    ];

    /// The config and command-line name (`poe`).
    pub fn name(self) -> &'static str {
        match self {
            AggregationKind::ProductOfExperts => "poe",
            AggregationKind::MixtureOfExperts => "moe",
            AggregationKind::MixtureOfProductsOfExperts => "mopoe",
            AggregationKind::MmvaePlus => "mmvae-plus",
        }
    }

    /// Whether the shared posterior is the mixture of the unimodal experts (MMVAE and MMVAE+),
    /// whose training objective has one stratum per modality.
    pub fn is_mixture_of_experts(self) -> bool {
        matches!(
            self,
            AggregationKind::MixtureOfExperts | AggregationKind::MmvaePlus
        )
    }

    /// One line on what it computes, for help texts.
    pub fn description(self) -> &'static str {
        match self {
            AggregationKind::ProductOfExperts => {
                "product of the present experts with the N(0, I) prior (MVAE)"
            }
            AggregationKind::MixtureOfExperts => "uniform mixture of the present experts (MMVAE)",
            AggregationKind::MixtureOfProductsOfExperts => {
                "uniform mixture of the products of experts of every subset (MoPoE)"
            }
            AggregationKind::MmvaePlus => {
                "mixture of experts over a shared latent, plus a private latent per modality with a learned prior (MMVAE+)"
            }
        }
    }
}

impl std::fmt::Display for AggregationKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for AggregationKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown aggregation '{s}' (expected one of: {})",
                    names.join(", ")
                )
            })
    }
}

impl Aggregation for AggregationKind {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        match self {
            AggregationKind::ProductOfExperts => ProductOfExperts.aggregate(experts, given),
            AggregationKind::MixtureOfExperts => MixtureOfExperts.aggregate(experts, given),
            AggregationKind::MixtureOfProductsOfExperts => {
                MixtureOfProductsOfExperts.aggregate(experts, given)
            }
            AggregationKind::MmvaePlus => MmvaePlus.aggregate(experts, given),
        }
    }
}
