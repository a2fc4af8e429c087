//! The `K`-sample estimators against their definitions, for every aggregation: the engine's
//! IWAE loss is the log-mean-exp of log weights computed here from the public API (encode,
//! sample, decode, log-densities), its gradient matches finite differences, and DReG's
//! gradient is `sum_k w_k grad lw_k` for the decoders and `sum_k w_k^2` times the path
//! derivative (`log q` held fixed) for the encoders.

use dfdx::prelude::*;
use mvae::nn::{ParamMut, ParamVisitor, Parameters};
use mvae::objective::{self, Estimator, Objective, ObjectiveConfig, TermPlan};
use mvae::posterior::standard_normal_log_prob_masked;
use mvae::{AggregationKind, Batch, Mvae};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::aggregation::{batch, model, L, N};

const K: usize = 3;
const BETA: f32 = 0.8;

/// A step's plan and draws.
struct Step {
    objective: ObjectiveConfig,
    plan: Vec<TermPlan>,
    noise: Vec<Vec<f32>>,
    choices: Vec<Vec<f32>>,
}

fn step(m: &Mvae<L, Cpu>, k: usize, estimator: Estimator) -> Step {
    let objective = ObjectiveConfig {
        samples: k,
        estimator,
        random_subsets: 1,
        ..ObjectiveConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let plan = objective.plan(m.config(), &mut rng);
    let noise = objective::draw_noise(plan.len(), N * k * L, &mut rng);
    let choices = objective::draw_choices(m.config().aggregation, plan.len(), N * k, &mut rng);
    Step {
        objective,
        plan,
        noise,
        choices,
    }
}

fn engine_loss(
    m: &Mvae<L, Cpu>,
    b: &Batch<Cpu>,
    s: &Step,
) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
    let noise: Vec<&[f32]> = s.noise.iter().map(Vec::as_slice).collect();
    let choices: Vec<&[f32]> = s.choices.iter().map(Vec::as_slice).collect();
    objective::loss_with_noise(
        &s.objective,
        m,
        b,
        &s.plan,
        BETA,
        &objective::Draws::new(&noise, &choices),
    )
    .value
}

/// One term's data points: each one's factor in the loss (`w share weight / N`) and its `K`
/// log weights.
struct TermWeights {
    factor: Vec<f64>,
    lw: Vec<f64>,
}

/// Per term (`None` where no sample takes part), the log weights
/// `lw = sum_m lambda_m log p(x_m | z) + beta (log p(z) - log q(z | x_kl_given))`, `z` drawn
/// from `sampler`'s posterior and decoded by its decoders, `q` the posterior of `scorer`.
fn log_weights(
    sampler: &Mvae<L, Cpu>,
    scorer: &Mvae<L, Cpu>,
    b: &Batch<Cpu>,
    s: &Step,
) -> Vec<Option<TermWeights>> {
    let k = s.objective.samples();
    let rep = b.repeat_each(k);
    let present = |m: usize, i: usize| b.column(m).is_some_and(|c| c.present_host[i]);
    s.plan
        .iter()
        .enumerate()
        .map(|(t, p)| {
            let scored: Vec<usize> = p.scored.iter().filter(|&m| b.column(m).is_some()).collect();
            let w: Vec<bool> = (0..N)
                .map(|i| p.required.iter().all(|m| present(m, i)))
                .collect();
            if scored.is_empty() || !w.contains(&true) {
                return None;
            }
            let factor = (0..N)
                .map(|i| {
                    let share = if p.split_among.is_empty() {
                        1.0
                    } else {
                        1.0 / p.split_among.iter().filter(|&m| present(m, i)).count() as f64
                    };
                    f64::from(u8::from(w[i])) * share * f64::from(p.weight) / N as f64
                })
                .collect();
            let mut q = sampler.encode(&rep, p.given);
            if !s.choices.is_empty() {
                q = q.choose(&s.choices[t]);
            }
            // The densities count the dimensions the term's own sample drew from experts
            // (MMVAE+: the shared part and the private slices of `given`).
            let dims = q.scored_dims().cloned();
            let z = q.rsample_with(&s.noise[t]);
            let log_q = scorer
                .encode(&rep, p.kl_given)
                .log_prob_on(z.clone(), dims.as_ref())
                .as_vec();
            let dims = dims.map(|d| d.as_vec());
            let log_p = standard_normal_log_prob_masked(&z.as_vec(), L, dims.as_deref());
            let mut lw: Vec<f64> = (0..N * k)
                .map(|r| f64::from(BETA) * (log_p[r] - f64::from(log_q[r])))
                .collect();
            for &m in &scored {
                let col = rep.column(m).expect("scored");
                let ll = sampler
                    .log_likelihood(m, sampler.decode(m, z.clone()), &col.input)
                    .as_vec();
                let lambda = f64::from(sampler.modalities()[m].weight);
                for (r, x) in lw.iter_mut().enumerate() {
                    if col.present_host[r] {
                        *x += lambda * f64::from(ll[r]);
                    }
                }
            }
            Some(TermWeights { factor, lw })
        })
        .collect()
}

fn log_mean_exp(x: &[f64]) -> f64 {
    let max = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + (x.iter().map(|v| (v - max).exp()).sum::<f64>() / x.len() as f64).ln()
}

/// The loss from log weights: per data point `-log mean exp` (IWAE) or `-mean` (ELBO) of its
/// `K` log weights, times its factor, summed.
fn loss_from(weights: &[Option<TermWeights>], k: usize, iwae: bool) -> f64 {
    weights
        .iter()
        .flatten()
        .map(|t| {
            t.lw.chunks(k)
                .zip(&t.factor)
                .map(|(g, f)| {
                    let bound = if iwae {
                        log_mean_exp(g)
                    } else {
                        g.iter().sum::<f64>() / k as f64
                    };
                    -f * bound
                })
                .sum::<f64>()
        })
        .sum()
}

/// The engine's IWAE loss with `K = 3` is the log-mean-exp of the log weights computed here,
/// for every aggregation; for the mixture of experts (whose strata score the KL by the
/// log-ratio in every estimator) the ELBO with `K = 3` is their mean.
#[test]
fn k_sample_losses_are_their_definitions() {
    for kind in AggregationKind::ALL {
        let m = model(kind);
        let b = batch(&m);
        for (estimator, iwae) in [(Estimator::Iwae, true), (Estimator::Elbo, false)] {
            if !iwae && !kind.is_mixture_of_experts() {
                continue;
            }
            let s = step(&m, K, estimator);
            let got = f64::from(engine_loss(&m, &b, &s).as_vec()[0]);
            let want = loss_from(&log_weights(&m, &m, &b, &s), K, iwae);
            assert!(
                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{kind} {estimator}: engine {got}, definition {want}"
            );
        }
        // DReG reports the IWAE bound as its value.
        let s = step(&m, K, Estimator::Dreg);
        let got = f64::from(engine_loss(&m, &b, &s).as_vec()[0]);
        let want = loss_from(&log_weights(&m, &m, &b, &s), K, true);
        assert!(
            (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
            "{kind} dreg: engine {got}, bound {want}"
        );
    }
}

/// The parameters of a model: name, backward gradient and values, in visitor order.
fn params(m: &mut Mvae<L, Cpu>, grads: &Gradients<f32, Cpu>) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let mut out = Vec::new();
    let mut f = |name: &str, p: ParamMut<'_, Cpu>| {
        let (g, v) = match p {
            ParamMut::Matrix(t) => (grads.get(&*t).as_vec(), t.as_vec()),
            ParamMut::Vector(t) => (grads.get(&*t).as_vec(), t.as_vec()),
        };
        out.push((name.to_string(), g, v));
    };
    m.visit_params(&mut ParamVisitor::new(&mut f));
    out
}

/// Sets entry `at` of parameter `which` (visitor order) to `x`.
fn set(m: &mut Mvae<L, Cpu>, which: usize, values: &[f32], at: usize, x: f32) {
    let mut i = 0;
    let mut f = |_: &str, p: ParamMut<'_, Cpu>| {
        if i == which {
            let mut w = values.to_vec();
            w[at] = x;
            match p {
                ParamMut::Matrix(t) => t.copy_from(&w),
                ParamMut::Vector(t) => t.copy_from(&w),
            }
        }
        i += 1;
    };
    m.visit_params(&mut ParamVisitor::new(&mut f));
}

const EPS: f32 = 1e-2;

fn assert_close(what: &str, backward: f32, fd: f64) {
    let err = (fd - f64::from(backward)).abs() / (1.0 + fd.abs());
    assert!(err < 2e-2, "{what}: backward {backward} vs {fd}");
}

/// The IWAE loss (`K = 3`) is a function of the weights: its backward gradient matches
/// central finite differences, for every aggregation.
#[test]
fn iwae_gradients_match_finite_differences() {
    for kind in AggregationKind::ALL {
        let mut m = model(kind);
        let b = batch(&m);
        let s = step(&m, K, Estimator::Iwae);
        let grads = engine_loss(&m, &b, &s).backward();
        for (pi, (name, g, v)) in params(&mut m, &grads).iter().enumerate() {
            let at = v.len() / 2;
            set(&mut m, pi, v, at, v[at] + EPS);
            let up = f64::from(engine_loss(&m, &b, &s).as_vec()[0]);
            set(&mut m, pi, v, at, v[at] - EPS);
            let down = f64::from(engine_loss(&m, &b, &s).as_vec()[0]);
            set(&mut m, pi, v, at, v[at]);
            let fd = (up - down) / (2.0 * f64::from(EPS));
            assert_close(&format!("{kind}: {name}[{at}]"), g[at], fd);
        }
    }
}

/// DReG's gradient is its definition: with `w_k` the normalised weights of a data point's
/// `K` log weights (held constant), the decoders' gradient is `-sum_k w_k d lw_k` and the
/// encoders' `-sum_k w_k^2 d lw_k` with `log q` held at the current parameters (only the
/// path through `z_k` moves), each data point times its factor; the derivatives by central
/// finite differences of the log weights computed here.
#[test]
fn dreg_gradients_are_their_definition() {
    for kind in AggregationKind::ALL {
        let mut m = model(kind);
        let b = batch(&m);
        let s = step(&m, K, Estimator::Dreg);
        let grads = engine_loss(&m, &b, &s).backward();
        let base = log_weights(&m, &m, &b, &s);
        // Normalised weights per data point, per term.
        let norm: Vec<Option<Vec<f64>>> = base
            .iter()
            .map(|t| {
                t.as_ref().map(|t| {
                    t.lw.chunks(K)
                        .flat_map(|g| {
                            let lme = log_mean_exp(g) + (K as f64).ln();
                            g.iter().map(move |x| (x - lme).exp())
                        })
                        .collect()
                })
            })
            .collect();
        let held = m.clone();
        for (pi, (name, g, v)) in params(&mut m, &grads).iter().enumerate() {
            let power = if name.starts_with("encoders") { 2 } else { 1 };
            let at = v.len() / 2;
            set(&mut m, pi, v, at, v[at] + EPS);
            let up = log_weights(&m, &held, &b, &s);
            set(&mut m, pi, v, at, v[at] - EPS);
            let down = log_weights(&m, &held, &b, &s);
            set(&mut m, pi, v, at, v[at]);
            let mut want = 0.0;
            for ((u, d), (t, w)) in up.iter().zip(&down).zip(base.iter().zip(&norm)) {
                let (Some(u), Some(d), Some(t), Some(w)) = (u, d, t, w) else {
                    continue;
                };
                for (r, (wr, (ur, dr))) in w.iter().zip(u.lw.iter().zip(&d.lw)).enumerate() {
                    let dlw = (ur - dr) / (2.0 * f64::from(EPS));
                    want -= t.factor[r / K] * wr.powi(power) * dlw;
                }
            }
            assert_close(&format!("{kind}: {name}[{at}]"), g[at], want);
        }
    }
}
