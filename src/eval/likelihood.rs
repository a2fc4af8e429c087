//! Importance-weighted log-likelihood estimates (IWAE, Burda et al. 2016) of a subset `S`:
//! `log p(x_S) ~ log (1/K) sum_k p(x_S | z_k) p(z_k) / q(z_k | x_S)`, `z_k ~ q(z | x_S)`,
//! and the conditional `log p(x_A | x_B) = log p(x_A, x_B) - log p(x_B)`.
//!
//! # The estimator
//! The proposal of `log p(x_S)` is the model's own posterior `q(z | x_S)` (its aggregation of the
//! experts of `S` with the prior). The estimate is a stochastic lower bound whose expectation
//! rises with `K` to `log p(x_S)` (it equals the ELBO in expectation at `K = 1`). The `K` draws
//! are made `rows_per_pass` rows at a time, so `K = 1000` on MNIST needs no more memory than a
//! training batch; the log-weights are computed from host-drawn noise (same numbers on every
//! device) and summed per sample with a streaming log-sum-exp in f64.
//!
//! # Why the conditional is a difference of two estimates
//! - The tempting direct estimator `log (1/K) sum_k p(x_A | z_k)` with `z_k ~ q(z | x_B)`
//!   estimates `log E_{q(z|x_B)} p(x_A | z)`, which equals `log p(x_A | x_B)` only if
//!   `q(z | x_B)` is the exact posterior: it is **not consistent** for an amortised `q`.
//! - Self-normalised importance sampling with proposal `q(z | x_B)`,
//!   `sum_k w_k p(x_A | z_k) / sum_k w_k` with `w_k = p(x_B | z_k) p(z_k) / q(z_k | x_B)`,
//!   is consistent, but its numerator samples the integrand `p(x_A | z) p(x_B | z) p(z)` from the
//!   broad `q(z | x_B)`: for an informative `x_A` (an image given a label) almost every weight is
//!   negligible and the variance is huge.
//! - `log p(x_A, x_B) - log p(x_B)`, each an IWAE estimate with its own posterior as proposal
//!   (`q(z | x_A, x_B)` for the numerator), is consistent (both terms converge almost surely
//!   as `K -> inf`) and uses the best proposal available for each integral. It is not a bound:
//!   both terms are biased low by amounts that shrink with `K`; a poor `q(z | x_B)` biases
//!   `log p(x_B)` most, which inflates the difference. This is what
//!   [`conditional_log_likelihood`] computes, on the samples that have every modality of
//!   `A` and `B`; it reports the self-normalised estimate from the draws of the second term
//!   beside it (almost free) as a cross-check.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{in_order_by, mean_and_se, replicate, select_rows, subset_names, EVAL_BATCH};
use crate::backend::Backend;
use crate::batch::Batch;
use crate::data::{HostBatch, MultimodalDataset};
use crate::model::Mvae;
use crate::posterior::{normal_draws, standard_normal_log_prob_masked, Posterior};
use crate::subset::Subset;
use crate::{Error, Result};

/// Settings of the importance-weighted estimates.
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `k` | 1000 | importance samples per data point | >= 1 |
/// | `seed` | 0 | noise of the draws | any |
/// | `max_samples` | none | evaluate only the first this many data points | >= 1 |
/// | `rows_per_pass` | 8192 | latents decoded at once (memory) | >= 1 |
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IwaeConfig {
    /// Importance samples `K` per data point.
    pub k: usize,
    /// Seed of the draws.
    pub seed: u64,
    /// Use only the first this many data points (`None` = all).
    pub max_samples: Option<usize>,
    /// Latents decoded in one pass: bounds memory whatever `K`. The noise is drawn data point
    /// by data point, draw by draw, whatever this is, so it changes the result only by
    /// rounding.
    pub rows_per_pass: usize,
}

impl Default for IwaeConfig {
    fn default() -> Self {
        Self {
            k: 1000,
            seed: 0,
            max_samples: None,
            rows_per_pass: 8192,
        }
    }
}

impl IwaeConfig {
    /// Checks the values.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the bad field.
    pub fn validate(&self) -> Result<()> {
        if self.k == 0 {
            return Err(Error::config("k", 0, "at least 1 importance sample"));
        }
        if self.rows_per_pass == 0 {
            return Err(Error::config("rows_per_pass", 0, "at least 1"));
        }
        if self.max_samples == Some(0) {
            return Err(Error::config("max_samples", 0, "at least 1 (or none)"));
        }
        Ok(())
    }
}

/// The estimate of `log p(x_S)` for one subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LikelihoodReport {
    /// The modalities of `S`, in model order.
    pub modalities: Vec<String>,
    /// Importance samples per data point.
    pub k: usize,
    /// Data points that have every modality of `S`.
    pub samples: usize,
    /// Mean IWAE estimate of `log p(x_S)` per data point (nats).
    pub log_likelihood: f64,
    /// Standard error of that mean over data points.
    pub std_error: f64,
    /// Mean log-weight of the same draws: a `K`-sample ELBO estimate (never above
    /// `log_likelihood`, by Jensen's inequality).
    pub elbo: f64,
}

/// The estimate of `log p(x_A | x_B)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionalReport {
    /// The modalities of `A`.
    pub target: Vec<String>,
    /// The modalities of `B`.
    pub given: Vec<String>,
    /// Importance samples per data point, per term.
    pub k: usize,
    /// Data points with every modality of `A` and `B`.
    pub samples: usize,
    /// Mean of `log p(x_A, x_B) - log p(x_B)` per data point (nats).
    pub log_likelihood: f64,
    /// Standard error of that mean over data points.
    pub std_error: f64,
    /// Mean `log p(x_A, x_B)` over the same data points.
    pub joint: f64,
    /// Mean `log p(x_B)` over the same data points.
    pub given_marginal: f64,
    /// Mean self-normalised estimate from the `K` draws of `q(z | x_B)` made for
    /// `log p(x_B)`: `log sum_k w_k p(x_A | z_k) - log sum_k w_k`. Also consistent, with other
    /// biases: a cross-check of `log_likelihood` (they agree as `K` grows).
    pub self_normalised: f64,
    /// Standard error of that mean over data points.
    pub self_normalised_std_error: f64,
}

/// One data point's estimates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointEstimate {
    /// Position in the data set.
    pub index: usize,
    /// IWAE estimate of `log p(x_S)`.
    pub iwae: f64,
    /// Mean log-weight (a `K`-sample ELBO estimate).
    pub elbo: f64,
}

/// A log-sum-exp accumulated one term at a time, in f64.
#[derive(Clone, Copy, Debug)]
struct StreamingLse {
    max: f64,
    sum: f64,
}

impl StreamingLse {
    const EMPTY: Self = Self {
        max: f64::NEG_INFINITY,
        sum: 0.0,
    };

    fn add(&mut self, x: f64) {
        if x.is_nan() {
            self.max = f64::NAN;
        } else if x > self.max {
            self.sum = self.sum * (self.max - x).exp() + 1.0;
            self.max = x;
        } else {
            self.sum += (x - self.max).exp();
        }
    }

    fn value(self) -> f64 {
        if self.max == f64::NEG_INFINITY {
            f64::NEG_INFINITY
        } else {
            self.max + self.sum.ln()
        }
    }
}

/// IWAE estimates of `log p(x_S)` for every data point of `data` that has each modality of
/// `subset` (in data order; the first `cfg.max_samples` data points only, if set).
///
/// # Errors
/// A bad config or subset, data that does not fit the model.
pub fn log_likelihood_per_sample<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    cfg: &IwaeConfig,
) -> Result<Vec<PointEstimate>> {
    Ok(estimate(model, data, subset, Subset(0), cfg)?
        .into_iter()
        .map(|(p, _)| p)
        .collect())
}

/// As [`log_likelihood_per_sample`]; with a non-empty `extra` (disjoint from `subset`), also
/// the self-normalised estimate of `log p(x_extra | x_subset)` from the same draws,
/// `log sum_k w_k p(x_extra | z_k) - log sum_k w_k`, for the points that also have `extra`.
fn estimate<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    extra: Subset,
    cfg: &IwaeConfig,
) -> Result<Vec<(PointEstimate, Option<f64>)>> {
    cfg.validate()?;
    subset_names(model, subset)?;
    let limit = cfg.max_samples.unwrap_or(usize::MAX).min(data.len());
    let chunk = cfg.k.min(cfg.rows_per_pass);
    let per_batch = (cfg.rows_per_pass / chunk).clamp(1, EVAL_BATCH);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut out = Vec::new();
    let mut batches = data.batches(&in_order_by(per_batch))?;
    let mut host = HostBatch::default();
    while batches.next_into(&mut host) {
        let sel = select_rows(model, &host, subset, |i| i < limit);
        if sel.is_empty() {
            continue;
        }
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &sel)?;
        let q = model.encode(&batch, subset);
        let n = sel.len();
        let mut lse = vec![StreamingLse::EMPTY; n];
        let mut lse_extra = vec![StreamingLse::EMPTY; n];
        // which points have every modality of `extra`
        let has_extra: Vec<bool> = (0..n)
            .map(|j| {
                !extra.is_empty()
                    && extra.iter().all(|m| {
                        sel.column(model.modalities()[m].name())
                            .is_some_and(|c| c.present[j])
                    })
            })
            .collect();
        let mut sum_lw = vec![0.0f64; n];
        let mut replicated: Option<(usize, Batch<D>, Posterior<L, D>)> = None;
        let mut done = 0;
        while done < cfg.k {
            let c = chunk.min(cfg.k - done);
            if replicated.as_ref().is_none_or(|(size, _, _)| *size != c) {
                let rep = replicate(&sel, c);
                let b = Batch::from_host_batch(model.modalities(), model.device(), &rep)?;
                replicated = Some((c, b, q.repeat_each(c)));
            }
            let (_, rep, proposal) = replicated.as_ref().expect("just set");
            // Row i * c + j = draw j of data point i, from the proposal q(z | x_S); the
            // log-weight starts at log p(z) - log q(z | x_S).
            let rows = n * c;
            let eps = normal_draws(rows * L, &mut rng);
            let z = proposal.clone().rsample_with(&eps);
            let log_q = proposal.log_prob(z.clone()).as_vec();
            // Over the dimensions the proposal draws from experts (MMVAE+'s private slices of
            // absent modalities come from their priors for decoding only).
            let dims = proposal.scored_dims().map(|d| d.as_vec());
            let mut lw: Vec<f64> = standard_normal_log_prob_masked(&z.as_vec(), L, dims.as_deref())
                .into_iter()
                .zip(log_q)
                .map(|(log_p, log_q)| log_p - f64::from(log_q))
                .collect();
            for m in subset.iter() {
                let col = rep
                    .column(m)
                    .expect("selected rows have every modality of S");
                let ll = model
                    .log_likelihood(m, model.decode(m, z.clone()), &col.input)
                    .as_vec();
                for (w, l) in lw.iter_mut().zip(ll) {
                    *w += f64::from(l);
                }
            }
            for (i, row) in lw.chunks_exact(c).enumerate() {
                for &w in row {
                    lse[i].add(w);
                    sum_lw[i] += w;
                }
            }
            if has_extra.iter().any(|&h| h) {
                let mut lx = lw;
                for m in extra.iter() {
                    let Some(col) = rep.column(m) else { continue };
                    let ll = model
                        .log_likelihood(m, model.decode(m, z.clone()), &col.input)
                        .as_vec();
                    for (w, l) in lx.iter_mut().zip(ll) {
                        *w += f64::from(l);
                    }
                }
                for (i, row) in lx.chunks_exact(c).enumerate() {
                    row.iter().for_each(|&w| lse_extra[i].add(w));
                }
            }
            done += c;
        }
        let log_k = (cfg.k as f64).ln();
        for (i, &index) in sel.indices.iter().enumerate() {
            out.push((
                PointEstimate {
                    index,
                    iwae: lse[i].value() - log_k,
                    elbo: sum_lw[i] / cfg.k as f64,
                },
                has_extra[i].then(|| lse_extra[i].value() - lse[i].value()),
            ));
        }
    }
    Ok(out)
}

/// The IWAE estimate of `log p(x_S)` with proposal `q(z | x_S)`, averaged over the data points
/// that have every modality of `subset`.
///
/// # Errors
/// A bad config or subset, data that does not fit the model, or no data point with every
/// modality of `subset`.
pub fn log_likelihood<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    cfg: &IwaeConfig,
) -> Result<LikelihoodReport> {
    let names = subset_names(model, subset)?;
    let points = log_likelihood_per_sample(model, data, subset, cfg)?;
    if points.is_empty() {
        return Err(no_samples(&names));
    }
    let iwae: Vec<f64> = points.iter().map(|p| p.iwae).collect();
    let (log_likelihood, std_error) = mean_and_se(&iwae);
    let elbo = points.iter().map(|p| p.elbo).sum::<f64>() / points.len() as f64;
    Ok(LikelihoodReport {
        modalities: names,
        k: cfg.k,
        samples: points.len(),
        log_likelihood,
        std_error,
        elbo,
    })
}

/// The estimate of `log p(x_A | x_B)` as `log p(x_A, x_B) - log p(x_B)`, each term an IWAE
/// estimate with its own posterior as proposal (see the module documentation for why this
/// estimator), averaged over the data points with every modality of `target` and `given`.
/// The second term uses the seed `cfg.seed + 1`.
///
/// # Errors
/// Empty or overlapping subsets, a bad config, data that does not fit the model, or no data
/// point with every modality of both subsets.
pub fn conditional_log_likelihood<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    target: Subset,
    given: Subset,
    cfg: &IwaeConfig,
) -> Result<ConditionalReport> {
    let (a, b) = (subset_names(model, target)?, subset_names(model, given)?);
    if target.0 & given.0 != 0 {
        return Err(Error::config(
            "conditional subsets",
            format!("{a:?} given {b:?}"),
            "disjoint target and given modalities",
        ));
    }
    let joint = log_likelihood_per_sample(model, data, Subset(target.0 | given.0), cfg)?;
    let marginal_cfg = IwaeConfig {
        seed: cfg.seed.wrapping_add(1),
        ..cfg.clone()
    };
    let marginal = estimate(model, data, given, target, &marginal_cfg)?;
    // Both lists are in data order and every joint point is also a marginal point.
    let mut it = marginal.iter().peekable();
    let (mut diff, mut snis, mut js, mut ms) = (Vec::new(), Vec::new(), 0.0, 0.0);
    for p in &joint {
        while it.peek().is_some_and(|(q, _)| q.index < p.index) {
            it.next();
        }
        if let Some((q, sn)) = it.peek().filter(|(q, _)| q.index == p.index) {
            diff.push(p.iwae - q.iwae);
            snis.push(sn.unwrap_or(f64::NAN));
            js += p.iwae;
            ms += q.iwae;
        }
    }
    if diff.is_empty() {
        let mut all = a.clone();
        all.extend(b.iter().cloned());
        return Err(no_samples(&all));
    }
    let n = diff.len() as f64;
    let (log_likelihood, std_error) = mean_and_se(&diff);
    let (self_normalised, self_normalised_std_error) = mean_and_se(&snis);
    Ok(ConditionalReport {
        self_normalised,
        self_normalised_std_error,
        target: a,
        given: b,
        k: cfg.k,
        samples: diff.len(),
        log_likelihood,
        std_error,
        joint: js / n,
        given_marginal: ms / n,
    })
}

fn no_samples(names: &[String]) -> Error {
    Error::InvalidData {
        what: "evaluation data".into(),
        reason: format!("no sample has every modality of {}", names.join(" + ")),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::DatasetBuilder;
    use crate::likelihood::Variance;
    use crate::modality::{Continuous, ModalitySpec};
    use crate::model::{InputLayer, ModelConfig};
    use crate::nn::Activation;
    use dfdx::prelude::*;
    use rand_distr::{Distribution, StandardNormal};

    /// Fixed observation variance of every modality.
    const SIGMA2: f64 = 0.25;

    /// A linear-Gaussian modality `x = W z + b + N(0, SIGMA2 I)`; `W` has orthogonal columns,
    /// so the exact posterior of any set of such modalities is diagonal.
    pub(crate) struct Linear {
        pub name: &'static str,
        /// Rows of `W`, `(dim, 2)`.
        pub w: Vec<[f64; 2]>,
        pub b: Vec<f64>,
    }

    pub(crate) fn modalities() -> Vec<Linear> {
        vec![
            Linear {
                name: "a",
                w: vec![[0.9, 0.8], [0.9, -0.8], [0.0, 0.8]],
                b: vec![0.5, -1.0, 0.2],
            },
            Linear {
                name: "b",
                w: vec![[0.7, 0.5], [0.7, -0.5]],
                b: vec![-0.3, 0.4],
            },
        ]
    }

    /// A model whose decoders are exactly `W z + b` and whose experts are the exact likelihood
    /// factors of `z` scaled: mean times `alpha`, precision times `c` (`alpha = c = 1`: every
    /// posterior `q(z | x_S)` is exact).
    pub(crate) fn linear_model(mods: &[Linear], alpha: f64, c: f64) -> Mvae<2, Cpu> {
        let specs = mods
            .iter()
            .map(|m| {
                ModalitySpec::new(Continuous::new(
                    m.name,
                    m.b.len(),
                    Variance::Fixed(SIGMA2 as f32),
                ))
                .encoder_hidden(&[m.b.len()])
                .decoder_hidden(&[2])
            })
            .collect();
        let mut cfg = ModelConfig::new(specs);
        cfg.activation = Activation::Identity;
        let dev = Cpu::default();
        let mut model = Mvae::<2, Cpu>::new(&cfg, &dev, 0).unwrap();
        let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
        for (i, m) in mods.iter().enumerate() {
            let dim = m.b.len();
            let dec = &mut model.decoders[i];
            dec.hidden.layers[0].weight = dev.tensor_from_vec(vec![1., 0., 0., 1.], (2, 2));
            dec.hidden.layers[0].bias = Some(dev.zeros_like(&(2,)));
            let w: Vec<f64> = m.w.iter().flatten().copied().collect();
            dec.out.weight = dev.tensor_from_vec(f(w), (dim, 2));
            dec.out.bias = Some(dev.tensor_from_vec(f(m.b.clone()), (dim,)));
            let enc = &mut model.encoders[i];
            let InputLayer::Dense(input) = &mut enc.input else {
                panic!("dense")
            };
            let eye: Vec<f64> = (0..dim * dim)
                .map(|k| f64::from(u8::from(k % (dim + 1) == 0)))
                .collect();
            input.weight = dev.tensor_from_vec(f(eye), (dim, dim));
            input.bias = Some(dev.zeros_like(&(dim,)));
            // expert j: mean alpha w_j.(x - b) / |w_j|^2, precision c |w_j|^2 / sigma^2
            let (mut mw, mut mb, mut lvb) = (Vec::new(), Vec::new(), Vec::new());
            for j in 0..2 {
                let col: Vec<f64> = m.w.iter().map(|r| r[j]).collect();
                let n2: f64 = col.iter().map(|x| x * x).sum();
                mw.extend(col.iter().map(|x| alpha * x / n2));
                mb.push(-alpha * col.iter().zip(&m.b).map(|(x, b)| x * b).sum::<f64>() / n2);
                lvb.push(-(c * n2 / SIGMA2).ln());
            }
            enc.mean.weight = dev.tensor_from_vec(f(mw), (2, dim));
            enc.mean.bias = Some(dev.tensor_from_vec(f(mb), (2,)));
            enc.logvar.weight = dev.zeros_like(&(2, dim));
            enc.logvar.bias = Some(dev.tensor_from_vec(f(lvb), (2,)));
        }
        model
    }

    /// `n` draws from the model, as a data set with one column per modality.
    pub(crate) fn sample(mods: &[Linear], n: usize, seed: u64) -> MultimodalDataset {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut cols: Vec<Vec<f32>> = vec![Vec::new(); mods.len()];
        for _ in 0..n {
            let z: [f64; 2] = [
                StandardNormal.sample(&mut rng),
                StandardNormal.sample(&mut rng),
            ];
            for (m, col) in mods.iter().zip(&mut cols) {
                for (r, b) in m.w.iter().zip(&m.b) {
                    let e: f64 = StandardNormal.sample(&mut rng);
                    col.push((r[0] * z[0] + r[1] * z[1] + b + SIGMA2.sqrt() * e) as f32);
                }
            }
        }
        let mut d = DatasetBuilder::new();
        for (m, col) in mods.iter().zip(cols) {
            d = d.column(m.name, m.b.len(), col);
        }
        d.build().unwrap()
    }

    /// Exact `log N(x; b, W W^T + SIGMA2 I)` of the stacked modalities `which` of sample `i`.
    fn exact(mods: &[Linear], which: &[usize], data: &MultimodalDataset, i: usize) -> f64 {
        let (mut w, mut b, mut x) = (Vec::new(), Vec::new(), Vec::new());
        for &m in which {
            w.extend(mods[m].w.iter().copied());
            b.extend(mods[m].b.iter().copied());
            let col = data.column(mods[m].name).unwrap();
            x.extend(col.sample(i).unwrap().iter().map(|&v| f64::from(v)));
        }
        let n = b.len();
        // Cholesky of the covariance.
        let mut l = vec![0.0f64; n * n];
        for r in 0..n {
            for c in 0..=r {
                let mut s = w[r][0] * w[c][0] + w[r][1] * w[c][1];
                if r == c {
                    s += SIGMA2;
                }
                for k in 0..c {
                    s -= l[r * n + k] * l[c * n + k];
                }
                l[r * n + c] = if r == c { s.sqrt() } else { s / l[c * n + c] };
            }
        }
        // Solve L y = x - b; log N = -0.5 |y|^2 - sum log L_rr - n/2 log 2 pi.
        let mut y = vec![0.0f64; n];
        for r in 0..n {
            let s: f64 = (0..r).map(|k| l[r * n + k] * y[k]).sum();
            y[r] = (x[r] - b[r] - s) / l[r * n + r];
        }
        let logdet: f64 = (0..n).map(|r| l[r * n + r].ln()).sum();
        -0.5 * y.iter().map(|v| v * v).sum::<f64>()
            - logdet
            - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln()
    }

    fn cfg(k: usize, seed: u64) -> IwaeConfig {
        IwaeConfig {
            k,
            seed,
            max_samples: None,
            rows_per_pass: 4096,
        }
    }

    /// With the exact posterior as proposal every importance weight equals `p(x)`: one sample
    /// gives the closed form, for each subset and for the conditional.
    #[test]
    fn exact_posterior_gives_the_closed_form_at_k_1() {
        let mods = modalities();
        let model = linear_model(&mods, 1.0, 1.0);
        let data = sample(&mods, 30, 1);
        for (subset, which) in [
            (Subset::single(0), vec![0]),
            (Subset::single(1), vec![1]),
            (Subset::all(2), vec![0, 1]),
        ] {
            let pts = log_likelihood_per_sample(&model, &data, subset, &cfg(1, 2)).unwrap();
            assert_eq!(pts.len(), 30);
            for p in pts {
                let want = exact(&mods, &which, &data, p.index);
                assert!(
                    (p.iwae - want).abs() < 2e-3,
                    "{which:?}: {} vs {want}",
                    p.iwae
                );
            }
        }
        let c = conditional_log_likelihood(
            &model,
            &data,
            Subset::single(0),
            Subset::single(1),
            &cfg(1, 3),
        )
        .unwrap();
        let want = (0..30)
            .map(|i| exact(&mods, &[0, 1], &data, i) - exact(&mods, &[1], &data, i))
            .sum::<f64>()
            / 30.0;
        assert!(
            (c.log_likelihood - want).abs() < 2e-3,
            "{} vs {want}",
            c.log_likelihood
        );
        assert_eq!(
            (c.samples, c.target.clone(), c.given.clone()),
            (30, vec!["a".into()], vec!["b".into()])
        );
    }

    /// With a deliberately wrong posterior (means shrunk, precisions halved) the bound is loose
    /// at K = 1 and closes as K grows; IWAE never falls below the ELBO of the same draws.
    #[test]
    fn iwae_converges_to_the_closed_form() {
        let mods = modalities();
        let model = linear_model(&mods, 0.7, 0.5);
        let n = 40;
        let data = sample(&mods, n, 4);
        for (subset, which) in [(Subset::single(0), vec![0]), (Subset::all(2), vec![0, 1])] {
            let truth = (0..n).map(|i| exact(&mods, &which, &data, i)).sum::<f64>() / n as f64;
            let mut gaps = Vec::new();
            for k in [1, 10, 100, 1000] {
                let r = log_likelihood(&model, &data, subset, &cfg(k, 5)).unwrap();
                assert!(r.log_likelihood >= r.elbo, "{r:?}");
                gaps.push(truth - r.log_likelihood);
            }
            eprintln!("{which:?}: truth {truth:.4}, gap at K = 1, 10, 100, 1000: {gaps:.4?}");
            assert!(
                gaps[0] > 0.05,
                "the proposal should be visibly wrong: {gaps:?}"
            );
            assert!(gaps[1] < gaps[0] && gaps[2] < gaps[1], "{gaps:?}");
            assert!(
                gaps[3].abs() < 0.01 && gaps[3].abs() < gaps[2].abs().max(1e-3) * 2.0,
                "{gaps:?}"
            );
        }
    }

    /// Both conditional estimators of `log p(x_a | x_b)` converge to the closed form.
    #[test]
    fn conditional_estimators_converge_to_the_closed_form() {
        let mods = modalities();
        let model = linear_model(&mods, 0.7, 0.5);
        let n = 40;
        let data = sample(&mods, n, 4);
        let truth = (0..n)
            .map(|i| exact(&mods, &[0, 1], &data, i) - exact(&mods, &[1], &data, i))
            .sum::<f64>()
            / n as f64;
        let mut gaps = Vec::new();
        for k in [1, 10, 100, 1000] {
            let (a, b) = (Subset::single(0), Subset::single(1));
            let r = conditional_log_likelihood(&model, &data, a, b, &cfg(k, 5)).unwrap();
            gaps.push((truth - r.log_likelihood, truth - r.self_normalised));
        }
        eprintln!("log p(a | b): truth {truth:.4}, gaps (difference, self-normalised) at K = 1, 10, 100, 1000: {gaps:.4?}");
        let (d, sn) = gaps[3];
        assert!(d.abs() < 0.02 && sn.abs() < 0.02, "{gaps:?}");
        assert!(
            gaps[0].0.abs() > d.abs() && gaps[0].1.abs() > sn.abs(),
            "{gaps:?}"
        );
    }

    /// Per data point, IWAE >= the ELBO of the same draws (Jensen); on average it is also above
    /// the independently computed single-sample ELBO of [`crate::eval::elbo`].
    #[test]
    fn iwae_is_above_the_elbo() {
        let mods = modalities();
        let model = linear_model(&mods, 0.7, 0.5);
        let data = sample(&mods, 300, 6);
        let pts = log_likelihood_per_sample(&model, &data, Subset::all(2), &cfg(50, 7)).unwrap();
        assert!(pts.iter().all(|p| p.iwae >= p.elbo));
        let iwae = pts.iter().map(|p| p.iwae).sum::<f64>() / pts.len() as f64;
        let elbo = crate::eval::elbo(&model, &data, Subset::all(2), 8).unwrap();
        let k1 = log_likelihood(&model, &data, Subset::all(2), &cfg(1, 9)).unwrap();
        eprintln!(
            "IWAE(50) {iwae:.4}, eval::elbo {elbo:.4}, IWAE(1) {:.4} +- {:.4}",
            k1.log_likelihood, k1.std_error
        );
        assert!(iwae > elbo, "{iwae} vs {elbo}");
        // IWAE(1) is an unbiased ELBO estimate: it agrees with eval::elbo within noise.
        assert!(
            (k1.log_likelihood - elbo).abs() < 4.0 * k1.std_error,
            "{} vs {elbo}",
            k1.log_likelihood
        );
    }

    #[test]
    fn bad_requests_are_errors() {
        let mods = modalities();
        let model = linear_model(&mods, 1.0, 1.0);
        let data = sample(&mods, 5, 1);
        assert!(log_likelihood(&model, &data, Subset::single(0), &cfg(0, 0)).is_err());
        assert!(log_likelihood(&model, &data, Subset(0), &cfg(1, 0)).is_err());
        assert!(log_likelihood(&model, &data, Subset::single(5), &cfg(1, 0)).is_err());
        let e = conditional_log_likelihood(
            &model,
            &data,
            Subset::all(2),
            Subset::single(1),
            &cfg(1, 0),
        );
        assert!(e.unwrap_err().to_string().contains("disjoint"));
        // no sample has modality b
        let only_a = DatasetBuilder::new()
            .column("a", 3, data.column("a").unwrap().values().to_vec())
            .build()
            .unwrap();
        let e = log_likelihood(&model, &only_a, Subset::single(1), &cfg(1, 0)).unwrap_err();
        assert!(e.to_string().contains("no sample"), "{e}");
    }

    #[test]
    fn streaming_lse_matches_direct_and_survives_huge_values() {
        let xs = [-1000.0, -1001.5, -999.2, -1003.0];
        let mut s = StreamingLse::EMPTY;
        xs.iter().for_each(|&x| s.add(x));
        let m = -999.2f64;
        let direct = m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        assert!((s.value() - direct).abs() < 1e-12);
    }
}
