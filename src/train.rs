//! Training: Adam on the sub-sampled ELBO over shuffled, seeded batches.
//!
//! Same seed, same data, same config: same weights and the same numbers, run after run.

use std::any::Any;
use std::ops::Range;
use std::time::Instant;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::batch::Batch;
use crate::codec::Codecs;
use crate::data::{BatchOptions, HostBatch, MultimodalDataset};
use crate::kernels::{PartGradients, WeightFactors};
use crate::likelihood::Likelihood;
use crate::modality::{Modality, ModalitySpec};
use crate::model::Mvae;
use crate::objective::contrastive::{self, PartOf, WholeBatch};
use crate::objective::{self, Objective, ObjectiveConfig, Term, TermPlan, TermStats};
use crate::optim::{Adam, AdamSettings};
use crate::profile::{self, Phase};
use crate::subset::Subset;
use crate::{Error, Result};

/// What every part of a step shares.
struct PartContext<'a, const L: usize, D: Backend, O> {
    objective: &'a O,
    model: &'a Mvae<L, D>,
    batch: &'a Batch<D>,
    plan: &'a [TermPlan],
    beta: f32,
    /// Each term's noise for the whole batch.
    noise: &'a [Vec<f32>],
    /// Each term's component choices for the whole batch (mixtures; empty otherwise).
    choices: &'a [Vec<f32>],
    /// Latent samples per data point (the noise and choices hold this many per sample).
    samples: usize,
    /// Per modality, the contrastive term's draws for the whole batch (none where it is off or
    /// compares means).
    contrastive: &'a [Vec<f32>],
    /// The whole batch's unimodal posterior draws (or means), where a contrastive term couples
    /// the parts.
    whole: Option<WholeBatch<L, D>>,
}

impl<const L: usize, D: Backend, O: Objective> PartContext<'_, L, D, O> {
    /// The forward and backward pass of the batch's samples `rows`.
    fn run(&self, rows: Range<usize>) -> PartResult<D> {
        let n = self.batch.size();
        let part = (rows.len() < n).then(|| self.batch.rows(rows.clone()));
        let k = self.samples;
        let eps: Vec<&[f32]> = self
            .noise
            .iter()
            .map(|v| &v[rows.start * k * L..rows.end * k * L])
            .collect();
        let choices: Vec<&[f32]> = self
            .choices
            .iter()
            .map(|v| &v[rows.start * k..rows.end * k])
            .collect();
        let coupled: Vec<&[f32]> = self
            .contrastive
            .iter()
            .map(|v| &v[rows.start * L..rows.end * L])
            .collect();
        // On the CPU the dense layers' weight gradients come back as factors, formed for the
        // whole batch in the update (`kernels::deferred`).
        let ((value, terms, grads), factors) = D::deferring_weight_gradients(|| {
            let forward = profile::start();
            let loss = objective::loss_with_noise(
                self.objective,
                self.model,
                part.as_ref().unwrap_or(self.batch),
                self.plan,
                self.beta,
                &objective::Draws {
                    noise: &eps,
                    choices: &choices,
                    contrastive: &coupled,
                    part: part
                        .as_ref()
                        .and(self.whole.as_ref())
                        .map(|whole| PartOf { whole, rows: &rows }),
                },
            );
            let value = loss.value.as_vec()[0];
            forward.stop(Phase::PartForward);
            let backward = profile::start();
            let grads = value.is_finite().then(|| loss.value.backward());
            backward.stop(Phase::PartBackward);
            (value, loss.terms, grads)
        });
        PartResult {
            share: rows.len() as f32 / n as f32,
            value,
            terms,
            grads,
            factors,
        }
    }
}

/// The per-term statistics of one step.
type StepStats = Vec<(Term, TermStats)>;

/// One part of a batch after its forward and backward pass.
struct PartResult<D: Backend> {
    /// Its fraction of the batch's samples.
    share: f32,
    /// Its loss (mean over its samples).
    value: f32,
    terms: Vec<(Term, TermStats)>,
    /// Its gradients (`None` when the loss is not finite).
    grads: Option<Gradients<f32, D>>,
    /// The weight gradients its dense layers deferred.
    factors: Vec<WeightFactors>,
}

/// The per-term statistics of a batch from those of its parts.
fn merge_terms<D: Backend>(parts: &[PartResult<D>]) -> Vec<(Term, TermStats)> {
    if let [only] = parts {
        return only.terms.clone();
    }
    (0..parts[0].terms.len())
        .map(|t| {
            let stats: Vec<&TermStats> = parts.iter().map(|p| &p.terms[t].1).collect();
            (parts[0].terms[t].0, TermStats::merge(&stats))
        })
        .collect()
}

/// Settings of a training run.
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `epochs` | 10 | passes over the training set | >= 1 |
/// | `batch_size` | 100 | samples per step (the paper: 100) | >= 1 |
/// | `adam` | lr 1e-3 | optimizer | |
/// | `objective` | joint + unimodal | loss terms, beta and its annealing | |
/// | `seed` | 0 | weights, shuffling, noise | any |
/// | `binarize` | false | fresh Bernoulli pixels each batch | |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Passes over the training set.
    pub epochs: usize,
    /// Samples per optimisation step.
    pub batch_size: usize,
    /// Optimizer settings.
    pub adam: AdamSettings,
    /// Loss terms, KL weight and annealing.
    pub objective: ObjectiveConfig,
    /// Seed of the shuffling and reparameterisation noise.
    pub seed: u64,
    /// Dynamic binarisation: [`Trainer::fit_epoch`] replaces each batch's values of every
    /// Bernoulli modality (images) by fresh Bernoulli draws with the grey levels as
    /// probabilities ([`crate::data::binarize`]), from the trainer's seeded random state, so a
    /// resumed run draws what an uninterrupted one would. Configs without the field: off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub binarize: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 100,
            adam: AdamSettings::default(),
            objective: ObjectiveConfig::default(),
            seed: 0,
            binarize: false,
        }
    }
}

impl TrainConfig {
    /// Sets `objective.anneal_steps` to `epochs` epochs of `samples` training samples, as the
    /// paper's `--annealing-epochs`.
    pub fn anneal_over_epochs(&mut self, epochs: f64, samples: usize) {
        let steps_per_epoch = samples.div_ceil(self.batch_size.max(1));
        self.objective.anneal_steps = (epochs * steps_per_epoch as f64).round() as usize;
    }

    /// Checks every value.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::config("epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::config("batch_size", 0, "at least 1"));
        }
        self.adam.validate()?;
        self.objective.validate()
    }
}

/// Means of one term's statistics over an epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TermMetrics {
    /// `joint`, a modality name, or names joined by `+`.
    pub name: String,
    /// Samples scored.
    pub samples: usize,
    /// Mean weighted negative ELBO per sample.
    pub loss: f64,
    /// Mean negative log-likelihood per scored modality, by name.
    pub nll: Vec<(String, f64)>,
    /// Mean KL to the prior.
    pub kl: f64,
}

/// What one epoch did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Optimisation steps taken so far, over all epochs.
    pub step: usize,
    /// Mean loss per sample (sum of the terms).
    pub loss: f64,
    /// The KL weight at the end of the epoch.
    pub beta: f32,
    /// Per-term means (joint and unimodal terms; random subsets are pooled as `subsets`).
    pub terms: Vec<TermMetrics>,
    /// Wall time of the epoch.
    pub seconds: f64,
    /// Training samples per second.
    pub samples_per_second: f64,
}

/// Progress of one step, for progress bars.
#[derive(Clone, Debug)]
pub struct StepProgress {
    /// Step within the epoch, 1-based.
    pub step: usize,
    /// Steps in the epoch.
    pub steps: usize,
    /// Loss per sample of this step.
    pub loss: f64,
    /// Mean loss per sample over the epoch so far.
    pub running_loss: f64,
    /// Per-term means over the epoch so far (as in [`EpochMetrics::terms`]).
    pub terms: Vec<TermMetrics>,
}

/// Trains a model; owns it, its optimizer state and the random state.
pub struct Trainer<const L: usize, D: Backend> {
    /// The model being trained.
    pub model: Mvae<L, D>,
    pub(crate) cfg: TrainConfig,
    pub(crate) adam: Adam<D>,
    pub(crate) rng: ChaCha8Rng,
    pub(crate) step: usize,
    pub(crate) epoch: usize,
    /// How the modalities' files are read and written; saved in training checkpoints.
    pub codecs: Codecs,
}

impl<const L: usize, D: Backend> Trainer<L, D> {
    /// A trainer for `model`.
    ///
    /// Sets flush-to-zero for denormal floats on this thread and on rayon's workers (which run
    /// the matrix products): subnormal arithmetic is many times slower on x86 and changes
    /// nothing a VAE can see.
    ///
    /// # Errors
    /// If `cfg` does not validate.
    pub fn new(model: Mvae<L, D>, cfg: TrainConfig) -> Result<Self> {
        cfg.validate()?;
        if cfg.binarize && bernoulli_modalities(model.modalities()).is_empty() {
            return Err(Error::config(
                "binarize",
                true,
                "a model with a Bernoulli (image) modality to binarise",
            ));
        }
        crate::flush_denormals();
        Ok(Self {
            adam: Adam::new(&cfg.adam)?,
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6d76_6165),
            model,
            cfg,
            step: 0,
            epoch: 0,
            codecs: Codecs::new(),
        })
    }

    /// A trainer that continues from restored state (a training checkpoint's): `adam` holds
    /// the step count and the moments of `model`'s parameters, `rng` the random state, `step`
    /// and `epoch` the counters. `cfg` must validate (as [`Trainer::new`] checks) and `adam` be
    /// built from `cfg.adam`.
    pub(crate) fn from_parts(
        model: Mvae<L, D>,
        cfg: TrainConfig,
        adam: Adam<D>,
        rng: ChaCha8Rng,
        step: usize,
        epoch: usize,
        codecs: Codecs,
    ) -> Self {
        crate::flush_denormals();
        Self {
            model,
            cfg,
            adam,
            rng,
            step,
            epoch,
            codecs,
        }
    }

    /// The settings.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Optimisation steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Epochs completed (by [`Trainer::fit_epoch`]).
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// One optimisation step on `batch` with the config's objective; returns the per-term
    /// statistics.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite (the weights are then left unchanged).
    pub fn step(&mut self, batch: &Batch<D>) -> Result<Vec<(Term, TermStats)>> {
        let objective = self.cfg.objective.clone();
        self.step_with(&objective, batch)
    }

    /// One optimisation step on `batch` with another objective (its plan, KL weight and
    /// estimator); returns the per-term statistics.
    ///
    /// # Errors
    /// [`Error::Diverged`] if the loss is not finite (the weights are then left unchanged).
    pub fn step_with<O: Objective + Sync>(
        &mut self,
        objective: &O,
        batch: &Batch<D>,
    ) -> Result<Vec<(Term, TermStats)>> {
        let parts = D::training_parts(batch.size());
        // On the CPU the parts run on rayon's threads. dfdx's CUDA device is neither Send nor
        // Sync, so the generic path cannot ask for that: the CPU is picked out by type, where
        // the compiler checks the thread bounds on the concrete types.
        let any_self: &mut dyn Any = self;
        if let Some(cpu) = any_self.downcast_mut::<Trainer<L, Cpu>>() {
            let cpu_batch: &dyn Any = batch;
            let cpu_batch = cpu_batch
                .downcast_ref::<Batch<Cpu>>()
                .expect("a Trainer<Cpu> steps on a Batch<Cpu>");
            // Inside the pool the kernels' two-way splits hand work to the other worker's
            // deque instead of waking the pool from outside for every product.
            let step = profile::start();
            let stats = rayon::scope(|_| {
                let (grads, stats) =
                    cpu.batch_gradients(objective, cpu_batch, parts, |ctx, ranges| {
                        let all = profile::start();
                        let results = ranges.into_par_iter().map(|r| ctx.run(r)).collect();
                        all.stop(Phase::Parts);
                        results
                    })?;
                cpu.update(grads);
                Ok(stats)
            });
            step.stop(Phase::Step);
            return stats;
        }
        let (grads, stats) = self.batch_gradients(objective, batch, parts, |ctx, ranges| {
            ranges.into_iter().map(|r| ctx.run(r)).collect()
        })?;
        self.update(grads);
        Ok(stats)
    }

    /// The Adam update that ends a step.
    fn update(&mut self, parts: Vec<PartGradients<D>>) {
        let update = profile::start();
        self.adam.update_parts(&mut self.model, parts);
        update.stop(Phase::Update);
        self.step += 1;
    }

    /// The gradients of a step's loss in each of the `parts` parts the batch is cut into, which
    /// `map_parts` runs (one after the other, or on threads), and the step's per-term
    /// statistics. Draws the step's terms and noise.
    fn batch_gradients<O: Objective, M>(
        &mut self,
        objective: &O,
        batch: &Batch<D>,
        parts: usize,
        map_parts: M,
    ) -> Result<(Vec<PartGradients<D>>, StepStats)>
    where
        M: FnOnce(&PartContext<'_, L, D, O>, Vec<Range<usize>>) -> Vec<PartResult<D>>,
    {
        let beta = objective.beta_at(self.step);
        let plan = objective.plan(self.model.config(), &mut self.rng);
        // The draws of the whole batch, so the parts below change nothing but the order of
        // floating-point sums.
        let n = batch.size();
        let samples = objective.samples();
        let noise = objective::draw_noise(plan.len(), n * samples * L, &mut self.rng);
        let choices = objective::draw_choices(
            self.model.config().aggregation,
            plan.len(),
            n * samples,
            &mut self.rng,
        );
        let coupled = contrastive::draw_noise(self.model.config(), n, L, &mut self.rng);
        let parts = parts.clamp(1, n.max(1));
        // The contrastive term compares every pair of the batch: parts see the whole of it.
        let whole = (parts > 1 && self.model.config().contrastive > 0.0)
            .then(|| WholeBatch::of(&self.model, batch, &coupled));
        let ctx = PartContext {
            objective,
            model: &self.model,
            batch,
            plan: &plan,
            beta,
            noise: &noise,
            choices: &choices,
            contrastive: &coupled,
            samples,
            whole,
        };
        let ranges = (0..parts)
            .map(|p| p * n / parts..(p + 1) * n / parts)
            .collect();
        let results = map_parts(&ctx, ranges);
        let value: f32 = results.iter().map(|r| r.share * r.value).sum();
        if !value.is_finite() {
            return Err(Error::Diverged {
                step: self.step,
                what: "loss".into(),
                value,
            });
        }
        let stats = merge_terms(&results);
        let parts = results
            .into_iter()
            .map(|r| PartGradients {
                grads: r.grads.expect("finite loss"),
                share: r.share,
                factors: r.factors,
            })
            .collect();
        Ok((parts, stats))
    }

    /// One pass over `data` in a fresh seeded order; `progress` is called after every step.
    /// Columns of `data` that are not modalities of the model (a class column kept for
    /// evaluation) are ignored, but every modality of the model must be a column (a misnamed
    /// column would otherwise train the model without it).
    ///
    /// # Errors
    /// Data that does not fit the model (a modality with no column among them), or a diverged
    /// loss.
    pub fn fit_epoch(
        &mut self,
        data: &MultimodalDataset,
        mut progress: impl FnMut(&StepProgress),
    ) -> Result<EpochMetrics> {
        let have = data.names();
        let lacking: Vec<&str> = self
            .model
            .modalities()
            .iter()
            .map(|m| m.name())
            .filter(|n| !have.contains(n))
            .collect();
        if !lacking.is_empty() {
            return Err(Error::InvalidData {
                what: "training data".into(),
                reason: format!(
                    "has no column for modality {} (its columns: {})",
                    lacking.join(", "),
                    have.join(", ")
                ),
            });
        }
        let start = Instant::now();
        let mut batches = data.batches(&BatchOptions::new(self.cfg.batch_size, self.rng.gen()))?;
        let steps = batches.len();
        let mut acc = TermAccumulator::new(self.model.modalities().len());
        let mut host = HostBatch::default();
        let mut s = 0;
        let names: Vec<String> = self
            .model
            .modalities()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let binarized = if self.cfg.binarize {
            bernoulli_modalities(self.model.modalities())
        } else {
            Vec::new()
        };
        while batches.next_into(&mut host) {
            // Columns the model lacks (a class column kept for evaluation) stay on the host.
            host.columns.retain(|c| names.contains(&c.name.as_str()));
            for c in &mut host.columns {
                if binarized.contains(&c.name) {
                    crate::data::binarize(&mut c.values, &mut self.rng)?;
                }
            }
            let batch =
                Batch::from_host_batch(self.model.modalities(), self.model.device(), &host)?;
            let stats = self.step(&batch)?;
            s += 1;
            let loss = acc.add(&stats);
            let (running_loss, terms) = acc.summary(&names);
            progress(&StepProgress {
                step: s,
                steps,
                loss,
                running_loss,
                terms,
            });
        }
        self.epoch += 1;
        let seconds = start.elapsed().as_secs_f64();
        let (loss, terms) = acc.summary(&names);
        Ok(EpochMetrics {
            epoch: self.epoch,
            step: self.step,
            loss,
            beta: self.cfg.objective.beta_at(self.step.saturating_sub(1)),
            terms,
            seconds,
            samples_per_second: data.len() as f64 / seconds,
        })
    }
}

/// The names of the modalities of `specs` with a Bernoulli likelihood (what `binarize` draws,
/// in training batches and in a test set binarised once).
pub fn bernoulli_modalities(specs: &[ModalitySpec]) -> Vec<String> {
    specs
        .iter()
        .filter(|m| matches!(m.kind.likelihood(), Likelihood::Bernoulli { .. }))
        .map(|m| m.name().to_string())
        .collect()
}

/// How an epoch's statistics group the terms of its steps.
#[derive(Clone, Copy, PartialEq)]
enum TermGroup {
    Joint,
    Single(Subset),
    /// The random subsets, pooled.
    Subsets,
    Contrastive,
}

/// Running sums of one term's statistics, weighted by participating samples.
struct TermSum {
    group: TermGroup,
    loss: f64,
    samples: usize,
    nll: Vec<f64>,
    kl: f64,
}

/// Sums term statistics over the steps of an epoch.
struct TermAccumulator {
    mods: usize,
    sums: Vec<TermSum>,
    loss_sum: f64,
    samples: usize,
}

impl TermAccumulator {
    fn new(mods: usize) -> Self {
        Self {
            mods,
            sums: Vec::new(),
            loss_sum: 0.0,
            samples: 0,
        }
    }

    /// Adds one step; returns that step's loss per sample.
    fn add(&mut self, stats: &[(Term, TermStats)]) -> f64 {
        // The joint term comes first and every sample takes part in it.
        let batch = stats.first().map_or(0, |(_, s)| s.samples);
        let mut step_loss = 0.0;
        for (term, s) in stats {
            let group = match term {
                Term::Joint => TermGroup::Joint,
                Term::Subset(sub) if sub.len() == 1 => TermGroup::Single(*sub),
                Term::Subset(_) => TermGroup::Subsets,
                Term::Contrastive => TermGroup::Contrastive,
            };
            let idx = match self.sums.iter().position(|x| x.group == group) {
                Some(p) => p,
                None => {
                    self.sums.push(TermSum {
                        group,
                        loss: 0.0,
                        samples: 0,
                        nll: vec![0.0; self.mods],
                        kl: 0.0,
                    });
                    self.sums.len() - 1
                }
            };
            let w = s.samples as f64;
            let sum = &mut self.sums[idx];
            sum.loss += s.loss * w;
            sum.samples += s.samples;
            for (a, b) in sum.nll.iter_mut().zip(&s.nll) {
                *a += b * w;
            }
            sum.kl += s.kl * w;
            step_loss += s.loss * w;
        }
        self.loss_sum += step_loss;
        self.samples += batch;
        if batch == 0 {
            0.0
        } else {
            step_loss / batch as f64
        }
    }

    /// Mean loss per sample and per-term means so far.
    fn summary(&self, names: &[&str]) -> (f64, Vec<TermMetrics>) {
        let loss = self.loss_sum / self.samples.max(1) as f64;
        let terms = self
            .sums
            .iter()
            .map(|t| {
                let d = t.samples.max(1) as f64;
                let (name, scored) = match t.group {
                    TermGroup::Joint => ("joint".to_string(), None),
                    TermGroup::Single(s) => (
                        s.iter().map(|i| names[i]).collect::<Vec<_>>().join("+"),
                        Some(s),
                    ),
                    TermGroup::Subsets => ("subsets".to_string(), None),
                    TermGroup::Contrastive => ("contrastive".to_string(), Some(Subset::default())),
                };
                let nll = t
                    .nll
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| scored.is_none_or(|s| s.contains(*i)))
                    .map(|(i, v)| (names[i].to_string(), v / d))
                    .collect();
                TermMetrics {
                    name,
                    samples: t.samples,
                    loss: t.loss / d,
                    nll,
                    kl: t.kl / d,
                }
            })
            .collect();
        (loss, terms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::HostValues;
    use crate::kernels::Kernels;
    use crate::likelihood::Variance;
    use crate::modality::{Continuous, Image, Label, ModalitySpec};
    use crate::model::ModelConfig;
    use crate::nn::{ParamMut, ParamVisitor, Parameters};

    /// Every parameter's gradient in the batch, `sum_i share_i * grads_i` over its parts, by
    /// dotted name (zero where a part left none), a deferred weight gradient formed from its
    /// factors as the update forms it.
    fn gradients(
        model: &mut Mvae<4, Cpu>,
        parts: &mut [PartGradients<Cpu>],
    ) -> Vec<(String, Vec<f32>)> {
        let mut deferred = crate::kernels::deferred::by_weight(
            parts
                .iter_mut()
                .map(|p| (p.share, std::mem::take(&mut p.factors))),
        );
        let mut out = Vec::new();
        let mut f = |name: &str, p: ParamMut<'_, Cpu>| {
            let factors = Cpu::param_key(&p)
                .and_then(|k| deferred.remove(&k))
                .unwrap_or_default();
            let mut sum = vec![0.0; p.len()];
            if factors.is_empty() {
                for part in parts.iter_mut() {
                    let g = match &p {
                        ParamMut::Matrix(t) => part.grads.get_or_alloc_mut(*t).unwrap().to_vec(),
                        ParamMut::Vector(t) => part.grads.get_or_alloc_mut(*t).unwrap().to_vec(),
                    };
                    for (s, g) in sum.iter_mut().zip(g) {
                        *s += part.share * g;
                    }
                }
            } else {
                crate::kernels::deferred::weight_gradient(&mut sum, &factors);
            }
            out.push((name.to_string(), sum));
        };
        model.visit_params(&mut ParamVisitor::new(&mut f));
        assert!(
            deferred.is_empty(),
            "factors of weights that are not the model's"
        );
        out
    }

    /// Three modalities (image, label with weight 2, a learned-variance vector).
    fn three_modalities() -> ModelConfig {
        ModelConfig::new(vec![
            ModalitySpec::new(Image::new("image", 4, 4))
                .encoder_hidden(&[8])
                .decoder_hidden(&[8, 6]),
            ModalitySpec::new(Label::new("label", 3)).weight(2.0),
            ModalitySpec::new(Continuous::new("vec", 2, Variance::Learned)),
        ])
    }

    /// 70 samples of [`three_modalities`], the label missing in every fourth, the vector in
    /// every fifth.
    fn batch_of_70(model: &Mvae<4, Cpu>) -> Batch<Cpu> {
        let n = 70;
        let img: Vec<f32> = (0..n * 16).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let lab: Vec<f32> = (0..n).map(|i| (i % 3) as f32).collect();
        let vec: Vec<f32> = (0..n * 2)
            .map(|i| ((i * 13) % 7) as f32 / 3.0 - 1.0)
            .collect();
        let lab_present: Vec<bool> = (0..n).map(|i| i % 4 != 1).collect();
        let vec_present: Vec<bool> = (0..n).map(|i| i % 5 != 2).collect();
        let columns = [
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
        ];
        // A model of fewer modalities takes the columns it has.
        let columns: Vec<HostValues<'_>> = columns
            .into_iter()
            .filter(|c| model.modality_index(c.name).is_ok())
            .collect();
        Batch::from_host(model.modalities(), model.device(), &columns).unwrap()
    }

    /// A batch cut into parts on rayon's threads gives the gradient of the batch run as one
    /// part, for every parameter, with missing values and a random subset term.
    #[test]
    fn parts_give_the_gradient_of_the_whole_batch() {
        use crate::aggregation::{AggregationKind, SubsetDraw};
        use crate::objective::Estimator;
        let mut cases: Vec<_> = AggregationKind::ALL
            .into_iter()
            .map(|k| (k, SubsetDraw::DEFAULT_LIMIT))
            .collect();
        // MoPoE mixing a seeded sample of 2 of a sample's subsets: every part forms the same.
        cases.push((AggregationKind::MixtureOfProductsOfExperts, 2));
        for (kind, components) in cases {
            let cfg = three_modalities().aggregation(kind).components(components);
            parts_equal_the_whole(&cfg, 1, Estimator::Elbo);
            // K samples per data point: each part holds its samples' K rows.
            for estimator in Estimator::ALL {
                parts_equal_the_whole(&cfg, 3, estimator);
            }
        }
    }

    /// The contrastive term compares every pair of a batch, yet its parts give the loss and
    /// the gradient of the batch computed as one part, for every aggregation (MMVAE+ aligning
    /// only the shared part), with K samples per data point, and with the logit scale among
    /// the parameters.
    #[test]
    fn contrastive_parts_give_the_loss_and_gradient_of_the_whole_batch() {
        use crate::aggregation::AggregationKind;
        use crate::objective::Estimator;
        for kind in AggregationKind::ALL {
            let mut cfg = three_modalities();
            if kind == AggregationKind::MmvaePlus {
                // Two modalities, so that the latent of 4 keeps a shared part of 2 (the
                // cosine of 1-dimensional rows is their sign, whose gradient is 0 or huge).
                cfg.modalities.truncate(2);
            }
            let cfg = cfg.aggregation(kind).contrastive(3.0);
            parts_equal_the_whole(&cfg, 1, Estimator::Elbo);
            parts_equal_the_whole(&cfg, 3, Estimator::Dreg);
            let euclidean = cfg
                .clone()
                .contrastive_similarity(crate::similarity::Similarity::Euclidean);
            parts_equal_the_whole(&euclidean, 1, Estimator::Elbo);
            let means = cfg.contrastive_input(crate::model::ContrastiveInput::Mean);
            parts_equal_the_whole(&means, 1, Estimator::Elbo);
        }
    }

    /// Binarising needs an image (Bernoulli) modality to binarise; without one the trainer
    /// says so instead of silently training on the values as they are.
    #[test]
    fn binarize_without_an_image_modality_is_refused() {
        let cfg = ModelConfig::new(vec![
            ModalitySpec::new(Label::new("label", 3)),
            ModalitySpec::new(Continuous::new("vec", 2, Variance::Learned)),
        ]);
        let model = Mvae::<4, Cpu>::new(&cfg, &Cpu::default(), 5).unwrap();
        let train = TrainConfig {
            binarize: true,
            ..TrainConfig::default()
        };
        let err = Trainer::new(model.clone(), train).err().unwrap();
        assert!(err.to_string().contains("binarize"), "{err}");
        assert!(Trainer::new(model, TrainConfig::default()).is_ok());
    }

    /// The term on posterior draws: with zero noise a draw is the mean, so the term equals
    /// the one on means (the product of experts and MMVAE+); other noise changes it, and the
    /// same noise gives the same value.
    #[test]
    fn contrastive_draws_at_zero_noise_are_the_means() {
        use crate::aggregation::AggregationKind;
        use crate::model::ContrastiveInput;
        use crate::objective::contrastive::term;
        for kind in [
            AggregationKind::ProductOfExperts,
            AggregationKind::MmvaePlus,
        ] {
            let mut cfg = three_modalities().aggregation(kind).contrastive(3.0);
            if kind == AggregationKind::MmvaePlus {
                cfg.modalities.truncate(2);
            }
            let value = |input: ContrastiveInput, noise: &[Vec<f32>]| {
                let cfg = cfg.clone().contrastive_input(input);
                let model = Mvae::<4, Cpu>::new(&cfg, &Cpu::default(), 5).unwrap();
                let batch = batch_of_70(&model);
                let experts = model.experts::<OwnedTape<f32, Cpu>>(&batch, Subset::all(3));
                let noise: Vec<&[f32]> = noise.iter().map(Vec::as_slice).collect();
                term(&model, &experts, 1, &noise, None).unwrap().1
            };
            let m = cfg.modalities.len();
            let zeros = vec![vec![0.0f32; 70 * 4]; m];
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            let noise: Vec<Vec<f32>> = (0..m)
                .map(|_| crate::posterior::normal_draws(70 * 4, &mut rng))
                .collect();
            let mean = value(ContrastiveInput::Mean, &[]);
            let at_zero = value(ContrastiveInput::Draw, &zeros);
            assert!(
                (mean - at_zero).abs() <= 1e-5 * (1.0 + mean.abs()),
                "{kind}: {mean} on means, {at_zero} on draws of zero noise"
            );
            let drawn = value(ContrastiveInput::Draw, &noise);
            assert!(
                (drawn - mean).abs() > 1e-3,
                "{kind}: noise changes nothing ({drawn})"
            );
            assert_eq!(drawn, value(ContrastiveInput::Draw, &noise), "{kind}");
        }
    }

    fn parts_equal_the_whole(
        cfg: &ModelConfig,
        samples: usize,
        estimator: crate::objective::Estimator,
    ) {
        let what = format!(
            "{} (components {}) K={samples} {estimator}",
            cfg.aggregation, cfg.components
        );
        let mut train = TrainConfig::default();
        train.objective.random_subsets = 1;
        train.objective.samples = samples;
        train.objective.estimator = estimator;
        let make = || {
            let model = Mvae::<4, Cpu>::new(cfg, &Cpu::default(), 5).unwrap();
            Trainer::new(model, train.clone()).unwrap()
        };
        let (mut one, mut three) = (make(), make());
        let batch = batch_of_70(&one.model);
        let obj = one.cfg.objective.clone();
        let (mut g1, s1) = one
            .batch_gradients(&obj, &batch, 1, |ctx, ranges| {
                ranges.into_iter().map(|r| ctx.run(r)).collect()
            })
            .unwrap();
        let (mut g3, s3) = rayon::scope(|_| {
            three.batch_gradients(&obj, &batch, 3, |ctx, ranges| {
                ranges.into_par_iter().map(|r| ctx.run(r)).collect()
            })
        })
        .unwrap();
        assert_eq!((g1.len(), g3.len()), (1, 3));
        assert_eq!(s1.len(), s3.len(), "{what}: terms");
        for ((term, x), (_, y)) in s1.iter().zip(&s3) {
            assert!(
                (x.loss - y.loss).abs() <= 1e-5 * (1.0 + x.loss.abs()),
                "{what}: {term:?}: loss {} in one part, {} in three",
                x.loss,
                y.loss
            );
        }
        assert_eq!(
            s1.iter().any(|(t, _)| *t == Term::Contrastive),
            cfg.contrastive > 0.0,
            "{what}: a contrastive term where the model has a weight"
        );
        let a = gradients(&mut one.model, &mut g1);
        let b = gradients(&mut three.model, &mut g3);
        assert_eq!(a.len(), b.len());
        for ((name, x), (_, y)) in a.iter().zip(&b) {
            let scale = x.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            assert!(
                x.iter().any(|&v| v != 0.0),
                "{what}: {name}: no gradient at all"
            );
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                assert!(
                    (u - v).abs() <= 1e-4 * scale,
                    "{what}: {name}[{i}]: one part {u}, three {v}"
                );
            }
        }
    }
}
