//! The engine that computes any plan of terms on one batch (see the module doc of
//! [`crate::objective`]): encoders once, each term's posterior, KL and latent sample, each
//! decoder once over the stacked latents of every term that scores its modality, and the tape
//! bookkeeping that makes every branch's gradient reach the loss.

use dfdx::prelude::*;

use super::contrastive::{self, PartOf};
use super::{mean_where, Estimator, Objective, Term, TermPlan, TermStats};
use crate::aggregation::{Aggregation, SubsetDraw};
use crate::backend::{Backend, Latent, Matrix, Vector};
use crate::batch::{Batch, Input};
use crate::model::Mvae;
use crate::posterior::{standard_normal_log_prob_on, Posterior};
use crate::subset::Subset;

/// The loss of one batch, on the tape, with per-term statistics.
pub struct Loss<D: Backend> {
    /// Scalar loss to minimise (sum of terms, each divided by the batch size).
    pub value: Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
    /// Statistics per term, in the order of the plan.
    pub terms: Vec<(Term, TermStats)>,
}

/// The loss of `plan` on `batch` with KL weight `beta`, the reparameterisation's draws given
/// ([`Draws`]): `noise[t]` holds `batch x K x L` values for term `t` (`K` =
/// [`Objective::samples`], the draws of sample `i` in rows `i K .. i K + K`), and, for an
/// aggregation whose posterior is a
/// mixture, `choices[t]` one uniform per row that picks its component (empty: the positional
/// default, see [`crate::posterior::Mixture`]); the `K` samples of a term make its bound by
/// [`Objective::estimator`]; plus the model's contrastive term, if it has a weight (computed
/// over the whole batch where `batch` is a part of it, see [`contrastive`](super::contrastive)).
///
/// # Panics
/// If `noise` does not hold one slice of `batch x K x L` values per term, or `choices` is
/// neither empty nor one slice of `batch x K` values per term.
pub fn loss_with_noise<const L: usize, D: Backend, O: Objective>(
    objective: &O,
    model: &Mvae<L, D>,
    batch: &Batch<D>,
    plan: &[TermPlan],
    beta: f32,
    draws: &Draws<'_, L, D>,
) -> Loss<D> {
    let draws = *draws;
    match objective.estimator() {
        Estimator::Dreg => {
            // DReG weighs each sample's gradient by its normalised importance weight, known
            // only once the log weights are: a first pass computes them, the second scales
            // the gradient through each z by them.
            let (_, log_weights) = forward(objective, model, batch, plan, beta, &draws, None);
            forward(
                objective,
                model,
                batch,
                plan,
                beta,
                &draws,
                Some(&normalised(&log_weights, objective.samples())),
            )
            .0
        }
        Estimator::Elbo | Estimator::Iwae => {
            forward(objective, model, batch, plan, beta, &draws, None).0
        }
    }
}

/// The reparameterisation's draws of a step, per term, and the batch they belong to.
pub struct Draws<'a, const L: usize, D: Backend> {
    /// Per term, `batch x K x L` standard-normal values.
    pub noise: &'a [&'a [f32]],
    /// Per term, one uniform per row that picks its mixture component (or none).
    pub choices: &'a [&'a [f32]],
    /// Per modality, the contrastive term's `batch x L` draws (none where the term is off or
    /// compares means; see [`contrastive::draw_noise`]).
    pub contrastive: &'a [&'a [f32]],
    /// The whole batch, where the loss is of a part of it.
    pub part: Option<PartOf<'a, L, D>>,
}

impl<'a, const L: usize, D: Backend> Draws<'a, L, D> {
    /// The draws of a whole batch.
    pub fn new(noise: &'a [&'a [f32]], choices: &'a [&'a [f32]]) -> Self {
        Self {
            noise,
            choices,
            contrastive: &[],
            part: None,
        }
    }

    /// The same draws with the contrastive term's.
    pub fn with_contrastive(self, contrastive: &'a [&'a [f32]]) -> Self {
        Self {
            contrastive,
            ..self
        }
    }
}

impl<const L: usize, D: Backend> Clone for Draws<'_, L, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<const L: usize, D: Backend> Copy for Draws<'_, L, D> {}

/// Per term, the softmax over each data point's `k` log weights (empty for an inactive term).
fn normalised(log_weights: &[Vec<f32>], k: usize) -> Vec<Vec<f32>> {
    log_weights
        .iter()
        .map(|lw| {
            lw.chunks(k)
                .flat_map(|g| {
                    let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    let e: Vec<f64> = g.iter().map(|&x| f64::from(x - max).exp()).collect();
                    let s: f64 = e.iter().sum();
                    e.into_iter().map(move |x| (x / s) as f32)
                })
                .collect()
        })
        .collect()
}

/// `log (1/k) sum_j exp(x_j)` of each data point's `k` values, in f64.
fn log_mean_exp(x: &[f32], k: usize) -> Vec<f32> {
    x.chunks(k)
        .map(|g| {
            let max = g.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if !max.is_finite() {
                return max;
            }
            let s: f64 = g.iter().map(|&v| f64::from(v - max).exp()).sum();
            (f64::from(max) + (s / k as f64).ln()) as f32
        })
        .collect()
}

/// One pass of the plan; with `dreg` (per term, each row's normalised weight) the gradient
/// through each latent is scaled by its weight and the log-densities of the posteriors are
/// taken with their parameters held fixed. Returns the loss and, per term, each row's log
/// weight (empty for an inactive term).
fn forward<const L: usize, D: Backend, O: Objective>(
    objective: &O,
    model: &Mvae<L, D>,
    batch: &Batch<D>,
    plan: &[TermPlan],
    beta: f32,
    draws: &Draws<'_, L, D>,
    dreg: Option<&[Vec<f32>]>,
) -> (Loss<D>, Vec<Vec<f32>>) {
    let (noise, choices) = (draws.noise, draws.choices);
    assert_eq!(noise.len(), plan.len(), "one noise slice per term");
    assert!(
        choices.is_empty() || choices.len() == plan.len(),
        "one choice slice per term, or none"
    );
    let n = batch.size();
    let k = objective.samples().max(1);
    let estimator = objective.estimator();
    // Every term of every sample has its log weights in the loss (not a closed-form KL).
    let log_weights = estimator != Estimator::Elbo;
    // K samples per data point: the batch's rows repeated K times in a row, scored as one.
    let expanded;
    let rows: &Batch<D> = if k == 1 {
        batch
    } else {
        expanded = batch.repeat_each(k);
        &expanded
    };
    let nk = n * k;
    let dev = model.device().clone();
    let mods = model.modalities().len();
    let aggregation = model.config().aggregation;
    // Encoders run once; each expert's own tape is handed to the loss at the end, every use
    // works on a copy with an empty tape.
    let experts = model.experts::<OwnedTape<f32, D>>(rows, Subset::all(mods));
    let experts = match plan.iter().find_map(|p| p.subset_seed) {
        Some(seed) => {
            let draw = experts.subsets();
            experts.with_subsets(SubsetDraw { seed, ..draw })
        }
        None => experts,
    };
    let fixed = dreg.map(|_| experts.detached());
    // 1. Per term: who takes part, the posterior, its KL and a latent sample.
    let mut active: Vec<Option<ActiveTerm<L, D>>> = Vec::with_capacity(plan.len());
    let mut stats = Vec::with_capacity(plan.len());
    let mut against: Vec<(Subset, Taped<L, D>)> = Vec::new();
    for (t, (p, &eps)) in plan.iter().zip(noise).enumerate() {
        let scored: Vec<usize> = p
            .scored
            .iter()
            .filter(|&m| batch.column(m).is_some())
            .collect();
        // Per-sample participation w.
        let w: Vec<bool> = (0..n)
            .map(|i| {
                p.required
                    .iter()
                    .all(|m| batch.column(m).is_some_and(|c| c.present_host[i]))
            })
            .collect();
        let count = w.iter().filter(|&&x| x).count();
        stats.push((
            p.term,
            TermStats {
                samples: count,
                nll: vec![0.0; mods],
                ..Default::default()
            },
        ));
        if count == 0 || scored.is_empty() {
            active.push(None);
            continue;
        }
        let mut q = aggregation.aggregate(&experts, p.given);
        if let Some(u) = choices.get(t) {
            q = q.choose(u);
        }
        let (z, kl) = if p.kl_given == p.given && !log_weights {
            q.rsample_with_kl(eps)
        } else {
            // The single-sample `log q'(z) - log p(z)` at this z, q' the posterior of
            // `kl_given`: the term's own (a fresh copy, its tape kept) or another, formed
            // once per step and shared by the terms that score against it (MMVAE's strata all
            // use the mixture of every expert). DReG holds q' fixed.
            // The dimensions the term's own sample drew from experts (MMVAE+: the shared
            // part and the private slices of `given`; all of them otherwise): the densities
            // count those.
            let dims = q.scored_dims().cloned();
            let mut z = q.rsample_with(eps);
            if let Some(weights) = dreg {
                // Same value; the gradient through z is scaled by the sample's weight.
                let held = z.retaped::<NoneTape>() + 0.0;
                let wt: Vector<D> = dev.tensor_from_vec(weights[t].clone(), (nk,));
                let shape = *z.shape();
                z = (z - held.clone()) * wt.broadcast_like(&shape) + held;
            }
            let source = fixed.as_ref().unwrap_or(&experts);
            let log_q = if p.kl_given == p.given {
                aggregation
                    .aggregate(source, p.given)
                    .into_log_prob(z.with_empty_tape())
            } else {
                let at = match against.iter().position(|(s, _)| *s == p.kl_given) {
                    Some(i) => i,
                    None => {
                        against.push((p.kl_given, aggregation.aggregate(source, p.kl_given)));
                        against.len() - 1
                    }
                };
                against[at]
                    .1
                    .log_prob_on(z.with_empty_tape(), dims.as_ref())
            };
            let log_p = standard_normal_log_prob_on(z.with_empty_tape(), dims.as_ref());
            (z, log_q - log_p)
        };
        let w_rows: Vec<bool> = w.iter().flat_map(|&x| std::iter::repeat_n(x, k)).collect();
        stats.last_mut().expect("pushed").1.kl = mean_where(&kl.as_vec(), &w_rows);
        active.push(Some(ActiveTerm {
            per_sample: Some(kl * beta),
            z: Some(z),
            scored,
            w,
            w_rows,
            count,
            weight: p.weight,
            share: (!p.split_among.is_empty()).then(|| {
                let share = (0..n)
                    .map(|i| {
                        let k = p
                            .split_among
                            .iter()
                            .filter(|&m| batch.column(m).is_some_and(|c| c.present_host[i]))
                            .count();
                        if k == 0 {
                            0.0
                        } else {
                            1.0 / k as f32
                        }
                    })
                    .collect();
                dev.tensor_from_vec(share, (n,))
            }),
        }));
    }
    // 2. Per modality: one decoder pass over the latents of every term that scores it,
    // stacked along the batch (larger products, each weight read once), then each term's
    // rows of the log-likelihood back to that term.
    for m in 0..mods {
        let scoring: Vec<usize> = (0..active.len())
            .filter(|&t| active[t].as_ref().is_some_and(|a| a.scored.contains(&m)))
            .collect();
        if scoring.is_empty() {
            continue;
        }
        let col = rows.column(m).expect("scored modalities have a column");
        let zs: Vec<Latent<L, D, OwnedTape<f32, D>>> = scoring
            .iter()
            .map(|&t| {
                active[t]
                    .as_mut()
                    .expect("scoring terms are active")
                    .z_for(m)
            })
            .collect();
        let terms = zs.len();
        let z = stack_rows(zs);
        let target = repeat_rows(&col.input, terms);
        let nll = model.log_likelihood(m, model.decode(m, z), &target) * -1.0;
        let lambda = model.modalities()[m].weight;
        for (&t, part) in scoring.iter().zip(split_rows(nll, terms, nk)) {
            let part = match col.mask() {
                Some(p) => part * p.clone(),
                None => part,
            };
            let a = active[t].as_mut().expect("scoring terms are active");
            stats[t].1.nll[m] = mean_where(&part.as_vec(), &a.w_rows);
            let so_far = a.per_sample.take().expect("put back after every modality");
            a.per_sample = Some(so_far + part * lambda);
        }
    }
    // 3. Per term: each data point's bound from its K rows, its loss, on the tape and on the
    // host.
    let mut total: Option<Tensor<Rank0, f32, D, OwnedTape<f32, D>>> = None;
    let mut all_log_weights = vec![Vec::new(); plan.len()];
    for (t, a) in active.into_iter().enumerate() {
        let Some(a) = a else { continue };
        let per_row = a.per_sample.expect("every active term has its sum");
        if log_weights {
            all_log_weights[t] = per_row.as_vec().iter().map(|&x| -x).collect();
        }
        let mut per_sample = if k == 1 {
            per_row
        } else {
            let grouped = per_row.reshape_like(&(n, k));
            match (estimator, dreg) {
                (Estimator::Elbo, _) => grouped.mean::<(usize,), Axis<1>>(),
                // DReG's first pass only needs the log weights: the bound will do.
                (Estimator::Iwae, _) | (Estimator::Dreg, None) => {
                    (grouped * -1.0).logsumexp::<(usize,), Axis<1>>() * -1.0 + (k as f32).ln()
                }
                (Estimator::Dreg, Some(dreg)) => {
                    let weights = &dreg[t];
                    let wt: Matrix<D> = dev.tensor_from_vec(weights.clone(), (n, k));
                    let surrogate = (grouped * wt).sum::<(usize,), Axis<1>>();
                    // Its value made the bound's (-log mean exp of the log weights); the
                    // constant changes no gradient.
                    let bound = log_mean_exp(&all_log_weights[t], k);
                    let value = surrogate.as_vec();
                    let shift: Vec<f32> = bound.iter().zip(&value).map(|(b, v)| -b - v).collect();
                    surrogate + dev.tensor_from_vec(shift, (n,))
                }
            }
        };
        if a.count < n {
            let w_dev: Vector<D> =
                dev.tensor_from_vec(a.w.iter().map(|&x| f32::from(u8::from(x))).collect(), (n,));
            per_sample = per_sample * w_dev;
        }
        if let Some(share) = &a.share {
            per_sample = per_sample * share.clone();
        }
        if a.weight != 1.0 {
            per_sample = per_sample * a.weight;
        }
        let loss_host = per_sample.as_vec();
        stats[t].1.loss = loss_host.iter().map(|&x| f64::from(x)).sum::<f64>() / a.count as f64;
        let term_total = per_sample.sum::<Rank0, _>() * (1.0 / n as f32);
        total = Some(match total {
            None => term_total,
            Some(t) => t + term_total,
        });
    }
    if let Some((coupled, info_nce)) =
        contrastive::term(model, &experts, k, draws.contrastive, draws.part)
    {
        stats.push((
            Term::Contrastive,
            TermStats {
                samples: n,
                loss: f64::from(model.config().contrastive * info_nce),
                nll: vec![0.0; mods],
                kl: 0.0,
            },
        ));
        total = Some(match total {
            None => coupled,
            Some(t) => t + coupled,
        });
    }
    let mut value = total.unwrap_or_else(|| dev.zeros::<Rank0>().put_tape(OwnedTape::default()));
    // The shared posteriors were scored through copies: their own operations (an
    // aggregation's slices and products of the experts) join the loss's tape once here.
    for (_, q) in against {
        let (v, tape) = value.split_tape();
        value = v.put_tape(tape.merge(q.into_tape()));
    }
    (
        Loss {
            value: experts.attach_tapes(value),
            terms: stats,
        },
        all_log_weights,
    )
}

/// A posterior on the loss's tape.
type Taped<const L: usize, D> = Posterior<L, D, OwnedTape<f32, D>>;

/// A term of [`loss_with_noise`] that some sample takes part in, between its phases.
struct ActiveTerm<const L: usize, D: Backend> {
    /// `beta KL + sum of lambda-weighted NLLs` so far, per sample.
    per_sample: Option<Vector<D, OwnedTape<f32, D>>>,
    /// The latent sample, until its last decoder takes it.
    z: Option<Latent<L, D, OwnedTape<f32, D>>>,
    /// The modalities it scores that the batch has, in model order.
    scored: Vec<usize>,
    /// Which samples take part.
    w: Vec<bool>,
    /// The same per row (each sample's `K` rows).
    w_rows: Vec<bool>,
    /// How many do.
    count: usize,
    /// Its weight in the loss.
    weight: f32,
    /// `1 / (how many modalities of the plan's split_among set the sample has)`, if any.
    share: Option<Vector<D>>,
}

impl<const L: usize, D: Backend> ActiveTerm<L, D> {
    /// The latent for decoder `m`: a copy with an empty tape, or, for the term's last
    /// decoder, `z` itself (and with it the tape of the posterior and the reparameterisation).
    fn z_for(&mut self, m: usize) -> Latent<L, D, OwnedTape<f32, D>> {
        if self.scored.last() == Some(&m) {
            self.z.take().expect("taken once, by the last decoder")
        } else {
            self.z.as_ref().expect("still here").with_empty_tape()
        }
    }
}

/// `v` (`k n` rows) cut into `k` slices of `n` rows; the last one carries the tape. The
/// slices must not overlap: dfdx 0.13's slice backward on the CPU assigns the gradient, it
/// does not add.
fn split_rows<D: Backend>(
    v: Vector<D, OwnedTape<f32, D>>,
    k: usize,
    n: usize,
) -> Vec<Vector<D, OwnedTape<f32, D>>> {
    if k == 1 {
        return vec![v];
    }
    let mut out: Vec<_> = (0..k - 1)
        .map(|i| v.with_empty_tape().slice((i * n..(i + 1) * n,)))
        .collect();
    out.push(v.slice(((k - 1) * n..k * n,)));
    out
}

/// The latents stacked along the batch, in order.
fn stack_rows<const L: usize, D: Backend>(
    zs: Vec<Latent<L, D, OwnedTape<f32, D>>>,
) -> Latent<L, D, OwnedTape<f32, D>> {
    let mut it = zs.into_iter();
    let first = it.next().expect("at least one latent");
    it.fold(first, |acc, z| (acc, z).concat_along(Axis::<0>))
}

/// `input` repeated `k` times along the batch (the targets of stacked latents).
fn repeat_rows<D: Backend>(input: &Input<D>, k: usize) -> Input<D> {
    if k == 1 {
        return input.clone();
    }
    match input {
        Input::Dense(x) => {
            let first = x.clone();
            Input::Dense((1..k).fold(first, |acc, _| (acc, x.clone()).concat_along(Axis::<0>)))
        }
        Input::Classes(ids) => {
            // dfdx concatenates float tensors only: ids go through the host.
            let host = ids.as_vec();
            let n = host.len();
            Input::Classes(ids.device().tensor_from_vec(host.repeat(k), (n * k,)))
        }
    }
}
