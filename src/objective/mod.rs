//! The MVAE sub-sampled ELBO (Wu & Goodman 2018, sec. 3.2).
//!
//! For each term `S` (the joint subset, each single modality, and `k` random subsets of size
//! 2 to M-1 drawn anew each step), with `z_S ~ q(z | x_S)` by reparameterisation:
//!
//! `loss_S = (1/n) sum_i w_S,i [ sum_{m in S} lambda_m p_m,i (-log p(x_m,i | z_S,i)) + beta KL_i ]`
//!
//! and the loss is the sum over terms. A sample takes part in a subset term (`w = 1`) only
//! when it has every modality of the subset; in the joint term it uses whatever it has (`p` is
//! its presence mask). Encoders run once per step and their experts are shared by every term.
//!
//! # Plan and engine
//! An [`Objective`] says *what* to compute: each step it draws a plan, a list of
//! [`TermPlan`]s (which subset a term encodes, which modalities it scores, which samples take
//! part, its weight), and it may add a term that couples the samples of a batch. The engine
//! (`engine.rs`, [`loss_with_noise`]) computes any plan: it encodes the batch once, combines
//! the experts of each term's subset by the model's [`Aggregation`](crate::aggregation::Aggregation),
//! draws each term's latent from the given noise, runs each decoder once over the stacked
//! latents of every term that scores its modality, and keeps the tape bookkeeping.
//! [`ObjectiveConfig`] is MVAE's sub-sampled ELBO as such a plan (`scored = given`); an
//! objective whose terms score every modality from each subset's latent (MMVAE, MoPoE) is a
//! different plan for the same engine.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

pub mod contrastive;
mod engine;

use crate::aggregation::AggregationKind;
use crate::backend::Backend;
use crate::batch::Batch;
use crate::model::{ModelConfig, Mvae};
use crate::posterior;
use crate::subset::Subset;
use crate::{Error, Result};

pub use engine::{loss_with_noise, Draws, Loss};

/// Settings of the training objective.
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `random_subsets` | 0 | `k` extra random subsets per step | >= 0 |
/// | `unimodal` | true | score each single modality | |
/// | `beta` | 1.0 | KL weight after annealing | > 0 |
/// | `anneal_steps` | 0 | steps over which the KL weight rises linearly to `beta` | >= 0 |
/// | `samples` | 1 | latent samples `K` per data point and term | 1 to 1000 |
/// | `estimator` | `elbo` | how the `K` samples make the bound ([`Estimator`]) | |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectiveConfig {
    /// Number `k` of random subsets (size 2 to M-1) scored per step.
    pub random_subsets: usize,
    /// Whether each single-modality ELBO is part of the loss.
    pub unimodal: bool,
    /// Final KL weight.
    pub beta: f32,
    /// Optimisation steps over which the KL weight rises linearly from 0 to `beta` (0 = none).
    pub anneal_steps: usize,
    /// Latent samples `K` drawn per data point in every term (configs without the field: 1).
    #[serde(default = "one")]
    pub samples: usize,
    /// How a term's `K` samples are combined (configs without the field: the ELBO).
    #[serde(default)]
    pub estimator: Estimator,
}

fn one() -> usize {
    1
}

/// How the `K` latent samples of a term make its bound on `log p(x)`, per data point, from the
/// log weights `lw_k = sum_m lambda_m log p(x_m | z_k) + beta (log p(z_k) - log q(z_k | x))`.
///
/// With a mixture posterior the terms are MMVAE's strata, each modality's own, and the bound of
/// a data point is the mean of its strata's bounds (the average over modalities outside the
/// log, MMVAE's "looser" bound).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// The mean over `k` of `lw_k`, with the KL in closed form where the posterior has one.
    #[default]
    Elbo,
    /// The importance-weighted bound `log (1/K) sum_k exp(lw_k)` (Burda et al. 2016).
    Iwae,
    /// The same bound with doubly reparameterised gradients (Tucker et al. 2019): with
    /// `w_k` the normalised weights, held constant, the decoders get `sum_k w_k grad lw_k`
    /// and the encoders `sum_k w_k^2` times the path derivative of `lw_k` through `z_k`
    /// (`log q` with its parameters held fixed). Costs one extra forward pass per step.
    Dreg,
}

impl Estimator {
    /// Every estimator, in the order `--help` lists them.
    pub const ALL: [Estimator; 3] = [Estimator::Elbo, Estimator::Iwae, Estimator::Dreg];

    /// The name used by the CLI, configs and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Estimator::Elbo => "elbo",
            Estimator::Iwae => "iwae",
            Estimator::Dreg => "dreg",
        }
    }
}

impl std::fmt::Display for Estimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Estimator {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Estimator::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| Error::config("estimator", s, "one of elbo, iwae, dreg"))
    }
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            random_subsets: 0,
            unimodal: true,
            beta: 1.0,
            anneal_steps: 0,
            samples: 1,
            estimator: Estimator::Elbo,
        }
    }
}

impl ObjectiveConfig {
    /// The most latent samples per data point a config may ask for (each multiplies a step's
    /// decoder work).
    pub const MAX_SAMPLES: usize = 1000;

    /// The KL weight at optimisation step `step` (0-based): `beta min(1, (step + 1) / anneal_steps)`,
    /// as in the paper's code.
    pub fn beta_at(&self, step: usize) -> f32 {
        if self.anneal_steps == 0 {
            self.beta
        } else {
            self.beta * ((step + 1) as f32 / self.anneal_steps as f32).min(1.0)
        }
    }

    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a non-finite or non-positive `beta`, or `samples` outside
    /// 1 to [`ObjectiveConfig::MAX_SAMPLES`].
    pub fn validate(&self) -> Result<()> {
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(Error::config("beta", self.beta, "a finite number > 0"));
        }
        if !(1..=Self::MAX_SAMPLES).contains(&self.samples) {
            return Err(Error::config(
                "samples",
                self.samples,
                &format!("1 to {}", Self::MAX_SAMPLES),
            ));
        }
        Ok(())
    }
}

/// Which terms to score for a model of `m` modalities: joint, singles, then `k` random subsets.
pub fn terms(m: usize, cfg: &ObjectiveConfig, rng: &mut impl Rng) -> Vec<Term> {
    let mut out = vec![Term::Joint];
    if cfg.unimodal && m > 1 {
        out.extend((0..m).map(|i| Term::Subset(Subset::single(i))));
    }
    if m > 2 {
        let mut idx: Vec<usize> = (0..m).collect();
        for _ in 0..cfg.random_subsets {
            let size = rng.gen_range(2..m);
            idx.shuffle(rng);
            out.push(Term::Subset(Subset::of(&idx[..size])));
        }
    }
    out
}

/// What a training objective computes: a plan of ELBO-like terms per step, the KL weight and
/// the estimator.
///
/// The trainer draws the plan and the noise for the whole batch, then hands them to the engine
/// ([`loss_with_noise`]), which may compute the batch in parts on several threads with the
/// same result up to float order. The model's contrastive term, which couples the samples of a
/// batch, is added by the engine ([`contrastive`]).
pub trait Objective {
    /// The terms of one step for a model of this config (random ones drawn from `rng`).
    fn plan(&self, model: &ModelConfig, rng: &mut impl Rng) -> Vec<TermPlan>;

    /// The KL weight at optimisation step `step` (0-based).
    fn beta_at(&self, step: usize) -> f32;

    /// Latent samples `K` per data point in every term (default 1).
    fn samples(&self) -> usize {
        1
    }

    /// How a term's `K` samples make its bound (default: the ELBO).
    fn estimator(&self) -> Estimator {
        Estimator::Elbo
    }
}

impl Objective for ObjectiveConfig {
    /// The terms of the model's aggregation: for the product of experts, MVAE's sub-sampled
    /// ELBO ([`terms`], each term scoring the modalities it encodes); for the mixture of
    /// experts, MMVAE's stratified ELBO ([`TermPlan::stratum`]: one term per modality, its
    /// latent drawn from that modality's expert, decoded into every modality, the KL estimated
    /// against the mixture of all, averaged over the strata a sample has); for the mixture of
    /// products of experts, MoPoE's ELBO (one term: a latent per sample from one component of
    /// the mixture, decoded into every modality; with more subsets than the model's
    /// `components`, a seed for the step's sample of them). `random_subsets` and `unimodal` concern the
    /// product of experts only.
    fn plan(&self, model: &ModelConfig, rng: &mut impl Rng) -> Vec<TermPlan> {
        let m = model.modalities.len();
        match model.aggregation {
            AggregationKind::ProductOfExperts => terms(m, self, rng)
                .into_iter()
                .map(|t| TermPlan::elbo(t, m))
                .collect(),
            AggregationKind::MixtureOfExperts | AggregationKind::MmvaePlus => {
                (0..m).map(|i| TermPlan::stratum(i, m)).collect()
            }
            AggregationKind::MixtureOfProductsOfExperts => {
                let all = Subset::all(m);
                // A seed only where subsets are sampled, so that the random stream of a model
                // that mixes every subset is what it always was.
                let sampled = (1u128 << m) - 1 > model.components as u128;
                vec![TermPlan {
                    scored: all,
                    subset_seed: sampled.then(|| rng.gen()),
                    ..TermPlan::elbo(Term::Joint, m)
                }]
            }
        }
    }

    fn beta_at(&self, step: usize) -> f32 {
        ObjectiveConfig::beta_at(self, step)
    }

    fn samples(&self) -> usize {
        self.samples
    }

    fn estimator(&self) -> Estimator {
        self.estimator
    }
}

/// One term of a step's plan.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TermPlan {
    /// What the statistics call it.
    pub term: Term,
    /// The modalities whose experts are combined into the term's posterior (each where the
    /// sample has it).
    pub given: Subset,
    /// The modalities decoded from the term's latent sample and scored (each where the sample
    /// has it).
    pub scored: Subset,
    /// A sample takes part only if it has every modality of this set (empty: every sample).
    pub required: Subset,
    /// The KL term compares the latent with the posterior of these modalities: `given` (the
    /// KL of the term's own posterior, closed form where one exists) or another set (the
    /// single-sample `log q(z | x_kl_given) - log p(z)`, MMVAE's strata).
    pub kl_given: Subset,
    /// A sample's loss in this term is divided by how many modalities of this set it has
    /// (empty: not divided), so that strata average per sample.
    pub split_among: Subset,
    /// The term's weight in the loss.
    pub weight: f32,
    /// The seed of the step's sample of subsets, where the mixture of products of experts
    /// has more subsets than the model's [`ModelConfig::components`] (drawn by the plan, so
    /// every part of a batch forms the same ones; the step uses the first term's; `None`:
    /// seed 0, or nothing to draw).
    pub subset_seed: Option<u64>,
}

impl TermPlan {
    /// MVAE's ELBO term: the joint term encodes and scores everything each sample has; a subset
    /// term encodes and scores exactly its modalities, for the samples that have all of them.
    ///
    /// # Panics
    /// For [`Term::Contrastive`], which is not an ELBO term (the engine adds it by itself).
    pub fn elbo(term: Term, modalities: usize) -> Self {
        let (given, required) = match term {
            Term::Joint => (Subset::all(modalities), Subset::default()),
            Term::Subset(s) => (s, s),
            Term::Contrastive => panic!("the contrastive term has no ELBO plan"),
        };
        Self {
            term,
            given,
            scored: given,
            required,
            kl_given: given,
            split_among: Subset::default(),
            weight: 1.0,
            subset_seed: None,
        }
    }

    /// MMVAE's stratum of modality `m`: `z` from `m`'s expert, decoded into every modality the
    /// sample has, its KL estimated against the mixture of all experts, for the samples that
    /// have `m`, divided by how many modalities the sample has.
    pub fn stratum(m: usize, modalities: usize) -> Self {
        let all = Subset::all(modalities);
        let own = Subset::single(m);
        Self {
            term: Term::Subset(own),
            given: own,
            scored: all,
            required: own,
            kl_given: all,
            split_among: all,
            weight: 1.0,
            subset_seed: None,
        }
    }
}

/// One term of the objective.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Term {
    /// Every modality each sample has.
    Joint,
    /// Exactly these modalities (samples lacking one of them sit this term out).
    Subset(Subset),
    /// The contrastive term between the modalities' experts ([`contrastive`]); its
    /// statistics hold only the loss (weight times the InfoNCE).
    Contrastive,
}

/// Statistics of one ELBO term on one batch (means over the samples that took part).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TermStats {
    /// Samples that took part.
    pub samples: usize,
    /// Mean weighted negative ELBO (`lambda`-weighted reconstruction + `beta` KL).
    pub loss: f64,
    /// Mean unweighted negative log-likelihood per modality (model order; 0 if not scored).
    pub nll: Vec<f64>,
    /// Mean KL to the prior.
    pub kl: f64,
}

impl TermStats {
    /// The statistics of a whole batch from those of its parts (means weighted by the
    /// samples that took part in each).
    pub fn merge(parts: &[&TermStats]) -> TermStats {
        let samples: usize = parts.iter().map(|p| p.samples).sum();
        let mods = parts.iter().map(|p| p.nll.len()).max().unwrap_or(0);
        let mut out = TermStats {
            samples,
            nll: vec![0.0; mods],
            ..Default::default()
        };
        if samples == 0 {
            return out;
        }
        for p in parts {
            let w = p.samples as f64 / samples as f64;
            out.loss += w * p.loss;
            out.kl += w * p.kl;
            for (o, v) in out.nll.iter_mut().zip(&p.nll) {
                *o += w * v;
            }
        }
        out
    }
}

/// Computes the sub-sampled ELBO loss of `batch` for the given terms with KL weight `beta`,
/// drawing the noise from `rng`.
pub fn loss<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    batch: &Batch<D>,
    terms: &[Term],
    beta: f32,
    rng: &mut impl Rng,
) -> Loss<D> {
    let mods = model.modalities().len();
    let plan: Vec<TermPlan> = terms.iter().map(|&t| TermPlan::elbo(t, mods)).collect();
    let noise = draw_noise(plan.len(), batch.size() * L, rng);
    let noise: Vec<&[f32]> = noise.iter().map(Vec::as_slice).collect();
    let choices = draw_choices(model.config().aggregation, plan.len(), batch.size(), rng);
    let choices: Vec<&[f32]> = choices.iter().map(Vec::as_slice).collect();
    let coupled = contrastive::draw_noise(model.config(), batch.size(), L, rng);
    let coupled: Vec<&[f32]> = coupled.iter().map(Vec::as_slice).collect();
    loss_with_noise(
        &ObjectiveConfig::default(),
        model,
        batch,
        &plan,
        beta,
        &Draws::new(&noise, &choices).with_contrastive(&coupled),
    )
}

/// The standard-normal draws of the reparameterisation: `len` values for each of `terms`
/// terms, in term order (drawn for every term, used or not, so the stream does not depend
/// on which samples take part).
pub fn draw_noise(terms: usize, len: usize, rng: &mut impl Rng) -> Vec<Vec<f32>> {
    (0..terms)
        .map(|_| posterior::normal_draws(len, rng))
        .collect()
}

/// For an aggregation whose posterior is a mixture, one uniform draw in `[0, 1)` per sample
/// and term, which picks the component the sample's latent is drawn from; nothing for the
/// product of experts (so its random stream is what it always was).
pub fn draw_choices(
    aggregation: AggregationKind,
    terms: usize,
    samples: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<f32>> {
    if aggregation == AggregationKind::ProductOfExperts {
        return Vec::new();
    }
    (0..terms)
        .map(|_| (0..samples).map(|_| rng.gen::<f32>()).collect())
        .collect()
}

fn mean_where(v: &[f32], w: &[bool]) -> f64 {
    let (s, c) = v
        .iter()
        .zip(w)
        .filter(|(_, &w)| w)
        .fold((0.0f64, 0usize), |(s, c), (&x, _)| {
            (s + f64::from(x), c + 1)
        });
    if c == 0 {
        0.0
    } else {
        s / c as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::HostValues;
    use crate::likelihood::Variance;
    use crate::modality::{Continuous, Image, Label, ModalitySpec};
    use crate::model::ModelConfig;
    use crate::nn::{ParamMut, ParamVisitor, Parameters};
    use dfdx::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn small_model() -> Mvae<3, Cpu> {
        let cfg = ModelConfig::new(vec![
            ModalitySpec::new(Image::new("image", 2, 2))
                .encoder_hidden(&[5])
                .decoder_hidden(&[4, 3]),
            ModalitySpec::new(Label::new("label", 3))
                .encoder_hidden(&[4, 3])
                .decoder_hidden(&[5])
                .weight(2.0),
            ModalitySpec::new(Continuous::new("vec", 2, Variance::Learned))
                .encoder_hidden(&[3])
                .decoder_hidden(&[3])
                .weight(0.5),
            ModalitySpec::new(Continuous::new("fixed", 1, Variance::Fixed(0.3)))
                .encoder_hidden(&[2])
                .decoder_hidden(&[2]),
        ]);
        Mvae::new(&cfg, &Cpu::default(), 3).unwrap()
    }

    fn batch(model: &Mvae<3, Cpu>) -> Batch<Cpu> {
        let img = [0.0, 1.0, 0.3, 0.8, 1.0, 0.0, 0.5, 0.2, 0.9, 0.9, 0.1, 0.0];
        let lab = [2.0, 0.0, 1.0];
        let vec = [0.5, -1.0, 2.0, 0.1, -0.3, 0.7];
        let lab_present = [true, false, true];
        let vec_present = [true, true, false];
        let fixed = [0.2, -0.4, 1.5];
        Batch::from_host(
            model.modalities(),
            model.device(),
            &[
                HostValues {
                    name: "image",
                    values: &img,
                    present: None,
                },
                HostValues {
                    name: "label",
                    values: &lab,
                    present: Some(&lab_present),
                },
                HostValues {
                    name: "vec",
                    values: &vec,
                    present: Some(&vec_present),
                },
                HostValues {
                    name: "fixed",
                    values: &fixed,
                    present: None,
                },
            ],
        )
        .unwrap()
    }

    fn terms_all() -> Vec<Term> {
        vec![
            Term::Joint,
            Term::Subset(Subset::single(0)),
            Term::Subset(Subset::single(1)),
            Term::Subset(Subset::single(2)),
            Term::Subset(Subset::single(3)),
            Term::Subset(Subset::of(&[0, 2])),
            Term::Subset(Subset::of(&[1, 2, 3])),
        ]
    }

    fn loss_value(model: &Mvae<3, Cpu>, b: &Batch<Cpu>) -> f64 {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        f64::from(loss(model, b, &terms_all(), 0.7, &mut rng).value.as_vec()[0])
    }

    /// Stacking the terms' latents through each decoder changes nothing: every term's
    /// statistics and the total equal those of the term computed on its own.
    #[test]
    fn terms_computed_together_equal_terms_computed_alone() {
        let model = small_model();
        let b = batch(&model);
        let terms = terms_all();
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let noise = draw_noise(terms.len(), b.size() * 3, &mut rng);
        let all: Vec<&[f32]> = noise.iter().map(Vec::as_slice).collect();
        let plan: Vec<TermPlan> = terms.iter().map(|&t| TermPlan::elbo(t, 4)).collect();
        let cfg = ObjectiveConfig::default();
        let together = loss_with_noise(&cfg, &model, &b, &plan, 0.7, &Draws::new(&all, &[]));
        let mut total = 0.0;
        for (t, term) in terms.iter().enumerate() {
            let alone = loss_with_noise(
                &cfg,
                &model,
                &b,
                &plan[t..=t],
                0.7,
                &Draws::new(&all[t..=t], &[]),
            );
            total += alone.value.as_vec()[0];
            let (got, want) = (&together.terms[t].1, &alone.terms[0].1);
            assert_eq!(got.samples, want.samples, "{term:?}");
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(
                close(got.loss, want.loss),
                "{term:?} loss {} vs {}",
                got.loss,
                want.loss
            );
            assert!(close(got.kl, want.kl), "{term:?} kl");
            for m in 0..4 {
                assert!(close(got.nll[m], want.nll[m]), "{term:?} nll[{m}]");
            }
        }
        let got = together.value.as_vec()[0];
        assert!(
            (got - total).abs() <= 1e-5 * total.abs(),
            "{got} vs {total}"
        );
    }

    /// Every parameter's gradient (a few entries of each) against central differences of
    /// the whole loss with the noise held fixed: catches any branch whose tape is dropped.
    #[test]
    fn gradients_match_finite_differences() {
        let mut model = small_model();
        let b = batch(&model);
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let grads = loss(&model, &b, &terms_all(), 0.7, &mut rng)
            .value
            .backward();
        // Collect (name, analytic grad, values) for each parameter.
        let mut params: Vec<(String, Vec<f32>, Vec<f32>)> = Vec::new();
        let mut f = |name: &str, p: ParamMut<'_, Cpu>| {
            let (g, v) = match p {
                ParamMut::Matrix(t) => (grads.get(&*t).as_vec(), t.as_vec()),
                ParamMut::Vector(t) => (grads.get(&*t).as_vec(), t.as_vec()),
            };
            params.push((name.to_string(), g, v));
        };
        model.visit_params(&mut ParamVisitor::new(&mut f));
        assert!(params.len() >= 20, "{}", params.len());
        let mut worst = 0.0f64;
        for (pi, (name, g, v)) in params.iter().enumerate() {
            let mut nonzero = false;
            for k in [0, v.len() / 2, v.len() - 1] {
                let eps = 1e-2f32;
                let set = |model: &mut Mvae<3, Cpu>, x: f32| {
                    let mut i = 0;
                    let mut f = |_: &str, p: ParamMut<'_, Cpu>| {
                        if i == pi {
                            let mut w = v.clone();
                            w[k] = x;
                            match p {
                                ParamMut::Matrix(t) => t.copy_from(&w),
                                ParamMut::Vector(t) => t.copy_from(&w),
                            }
                        }
                        i += 1;
                    };
                    model.visit_params(&mut ParamVisitor::new(&mut f));
                };
                set(&mut model, v[k] + eps);
                let up = loss_value(&model, &b);
                set(&mut model, v[k] - eps);
                let down = loss_value(&model, &b);
                set(&mut model, v[k]);
                let fd = (up - down) / (2.0 * f64::from(eps));
                let err = (fd - f64::from(g[k])).abs() / (1.0 + fd.abs());
                worst = worst.max(err);
                assert!(
                    err < 2e-2,
                    "{name}[{k}]: backward {} vs finite difference {fd}",
                    g[k]
                );
                nonzero |= g[k] != 0.0;
            }
            // every parameter influences the loss through some entry
            assert!(
                nonzero || g.iter().any(|&x| x != 0.0),
                "{name} has no gradient"
            );
        }
        eprintln!("worst relative error {worst:.2e}");
    }

    #[test]
    fn missing_samples_contribute_nothing_to_their_terms() {
        let model = small_model();
        let b = batch(&model);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let l = loss(&model, &b, &terms_all(), 1.0, &mut rng);
        let by = |t: Term| l.terms.iter().find(|x| x.0 == t).unwrap().1.clone();
        assert_eq!(by(Term::Joint).samples, 3);
        assert_eq!(by(Term::Subset(Subset::single(1))).samples, 2);
        assert_eq!(by(Term::Subset(Subset::single(2))).samples, 2);
        assert_eq!(by(Term::Subset(Subset::of(&[0, 2]))).samples, 2);
        // the label term scores no other modality
        let lab = by(Term::Subset(Subset::single(1)));
        assert!(lab.nll[0] == 0.0 && lab.nll[2] == 0.0 && lab.nll[1] > 0.0);
    }

    #[test]
    fn annealing_is_linear_per_step() {
        let cfg = ObjectiveConfig {
            anneal_steps: 4,
            beta: 2.0,
            ..Default::default()
        };
        let b: Vec<f32> = (0..6).map(|s| cfg.beta_at(s)).collect();
        assert_eq!(b, vec![0.5, 1.0, 1.5, 2.0, 2.0, 2.0]);
    }

    #[test]
    fn random_subsets_are_proper_and_seeded() {
        let cfg = ObjectiveConfig {
            random_subsets: 5,
            ..Default::default()
        };
        let t1 = terms(4, &cfg, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(t1, terms(4, &cfg, &mut ChaCha8Rng::seed_from_u64(2)));
        assert_eq!(t1.len(), 1 + 4 + 5);
        for t in &t1[5..] {
            let Term::Subset(s) = t else { panic!() };
            assert!((2..4).contains(&s.len()), "{s:?}");
        }
        // two modalities: no proper subsets of size >= 2 exist
        assert_eq!(terms(2, &cfg, &mut ChaCha8Rng::seed_from_u64(2)).len(), 3);
    }
}
