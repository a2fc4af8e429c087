//! Contrastive alignment: CLIP's symmetric InfoNCE (Radford et al. 2021) between the unimodal
//! posteriors of every pair of modalities.
//!
//! For modalities `a` and `b` and the `c` samples of the batch that have both, with `u_i` and
//! `v_i` points of the unimodal posteriors `q(z | x_a,i)` and `q(z | x_b,i)` as the model's
//! aggregation forms them (for the product of experts, the expert times the prior's; with
//! private latents, of their shared part only: a private slice belongs to one modality and has
//! nothing to align), `sim` their similarity and `s = exp(t)` the learnable logit scale:
//!
//! `loss_ab = (1 / 2c) sum_i [ -log softmax_j(s sim(u_i, v_j))_i - log softmax_j(s sim(u_j, v_i))_i ]`
//!
//! The points are reparameterised draws `mu + sigma eps` by default, or the means `mu`
//! ([`ModelConfig::contrastive_input`]). On means the spread of a posterior is free: the
//! product of experts' audio posterior learns to point at its images while staying so wide
//! that its draws, decoded into images, show the right digit a third of the time (measured,
//! `docs/results.md`). On draws a pair agrees only where both posteriors are sure of the
//! place, and generation across modalities follows retrieval.
//!
//! `sim` is the cosine (CLIP's; [`Similarity::Cosine`]) or minus half the squared Euclidean
//! distance ([`Similarity::Euclidean`]; for unit vectors it is the cosine minus 1). The cosine
//! aligns directions only; the Euclidean form also asks for the same place
//! ([`ModelConfig::contrastive_similarity`](crate::model::ModelConfig::contrastive_similarity)).
//!
//! The term is `W` times the mean of `loss_ab` over the pairs with at least two such samples
//! ([`ModelConfig::contrastive`](crate::model::ModelConfig::contrastive)). It aligns the
//! posteriors themselves, not a projection of them: their means are what [`crate::embed`]
//! exports and what retrieval compares, so the term trains exactly the space people search
//! (CLIP's heads map pretrained features of different widths into one space; here every
//! expert already emits into the shared latent). With the cosine `t` starts at
//! `ln(1 / 0.07)` and is clamped at `ln 100`, as in CLIP; the Euclidean form starts at
//! temperature 1, the latent's own scale ([`initial_log_scale`]).
//!
//! # Parts of a batch
//! The term couples the samples of a batch, yet the CPU computes a step in parts on several
//! threads. A part therefore sees the whole batch ([`WholeBatch`]: every modality's draws (or
//! means), computed once per step without a tape from the step's noise, [`draw_noise`]) and
//! recomputes only its own rows on the tape, from the same noise. The
//! loss of the whole batch, with the part's rows taped and the rest held constant, has the
//! whole loss's gradient with respect to those rows; the trainer blends the parts' gradients
//! by their share of the batch, so the part's term is divided by its share, and the logit
//! scale's gradient is scaled by the share so that the parts add up to it once. The parts'
//! gradients thus sum to those of the batch computed as one part (tested).

use std::ops::Range;

use dfdx::prelude::*;
use rand::Rng;

use crate::aggregation::{Aggregation, Experts};
use crate::backend::Backend;
use crate::batch::Batch;
use crate::model::{ContrastiveInput, ModelConfig, Mvae};
use crate::posterior::normal_draws;
use crate::similarity::Similarity;
use crate::subset::Subset;
use crate::tensor::{realize, Latent, Matrix, Vector};

pub use crate::model::{initial_log_scale, INITIAL_LOG_SCALE, MAX_LOG_SCALE};

/// A scalar on the loss's tape.
type Scalar<D> = Tensor<Rank0, f32, D, OwnedTape<f32, D>>;

/// A modality's rows on the loss's tape, and which samples have the modality.
pub type Rows<D> = (Matrix<D, OwnedTape<f32, D>>, Vec<bool>);

/// A logit of a pair that is not compared (a sample lacking one of the two modalities): its
/// softmax weight is exactly 0 in `f32`, and unlike `-inf` it leaves every sum finite.
const EXCLUDED: f32 = -1e4;

/// What every part of a batch needs to know about the whole batch: each modality's unimodal
/// posterior draws (or means) and presence, computed once per step without a tape.
pub struct WholeBatch<const L: usize, D: Backend> {
    /// Per modality the batch has: the draws (or means) of `q(z | x_m)` and which samples
    /// have `m`.
    modalities: Vec<Option<(Latent<L, D>, Vec<bool>)>>,
    size: usize,
}

impl<const L: usize, D: Backend> WholeBatch<L, D> {
    /// The points the term compares of every modality `batch` has: draws from `noise` (per
    /// modality of the model, `batch x L` standard-normal values, as [`draw_noise`] makes
    /// them), or the means where the model's term compares means.
    ///
    /// # Panics
    /// If the term compares draws and `noise` does not hold them.
    pub fn of(model: &Mvae<L, D>, batch: &Batch<D>, noise: &[Vec<f32>]) -> Self {
        let modalities = (0..model.modalities().len())
            .map(|m| {
                let column = batch.column(m)?;
                let q = model.encode(batch, Subset::single(m));
                let point = match model.config().contrastive_input {
                    ContrastiveInput::Mean => q.mean(),
                    ContrastiveInput::Draw => q.rsample_with(noise_of(noise, m, batch.size(), L)),
                };
                Some((point, column.present_host.clone()))
            })
            .collect();
        Self {
            modalities,
            size: batch.size(),
        }
    }

    /// Samples in the batch.
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A part of a batch: the whole batch and which of its rows the part holds.
pub struct PartOf<'a, const L: usize, D: Backend> {
    /// The whole batch.
    pub whole: &'a WholeBatch<L, D>,
    /// The part's rows of it.
    pub rows: &'a Range<usize>,
}

impl<const L: usize, D: Backend> Clone for PartOf<'_, L, D> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<const L: usize, D: Backend> Copy for PartOf<'_, L, D> {}

/// The standard-normal draws of the contrastive term for a batch of `samples` data points: one
/// slice of `samples x L` values per modality of the model, where the term compares draws;
/// nothing where it compares means or the model has no contrastive weight (so those runs'
/// random streams are unchanged).
pub fn draw_noise(
    config: &ModelConfig,
    samples: usize,
    latent: usize,
    rng: &mut impl Rng,
) -> Vec<Vec<f32>> {
    if config.contrastive <= 0.0 || config.contrastive_input != ContrastiveInput::Draw {
        return Vec::new();
    }
    (0..config.modalities.len())
        .map(|_| normal_draws(samples * latent, rng))
        .collect()
}

/// Modality `m`'s draws for `n` data points.
///
/// # Panics
/// If `noise` does not hold `n x L` values for `m`.
fn noise_of<T: AsRef<[f32]>>(noise: &[T], m: usize, n: usize, latent: usize) -> &[f32] {
    let eps = noise
        .get(m)
        .map(AsRef::as_ref)
        .expect("the contrastive term compares draws: one noise slice per modality");
    assert_eq!(
        eps.len(),
        n * latent,
        "contrastive draws: n x L per modality"
    );
    eps
}

/// The contrastive term of a batch (or of a part of one, see the module doc), `W` times the
/// mean InfoNCE over the pairs of modalities, on the loss's tape; `None` where the model has
/// no contrastive weight or no pair of modalities has two samples. Also returns the InfoNCE
/// mean itself (unweighted). `experts` are the step's, of `k` rows per data point; `noise`
/// holds, per modality of the model, the draws of the batch's (or part's) data points
/// ([`draw_noise`]; unused where the term compares means).
///
/// # Panics
/// If the term compares draws and `noise` does not hold them.
pub fn term<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    experts: &Experts<L, D, OwnedTape<f32, D>>,
    k: usize,
    noise: &[&[f32]],
    part: Option<PartOf<'_, L, D>>,
) -> Option<(Scalar<D>, f32)> {
    let weight = model.config().contrastive;
    let log_scale = model.contrastive_log_scale()?;
    if weight <= 0.0 {
        return None;
    }
    let dev = model.device().clone();
    let n_part = experts.batch() / k.max(1);
    let (total, share) = match part {
        Some(p) => (p.whole.size, n_part as f32 / p.whole.size as f32),
        None => (n_part, 1.0),
    };
    // One in every k rows: the step's experts repeat each data point k times, and a copy of
    // a sample must not be its own negative.
    let pick: Option<Matrix<D>> = (k > 1).then(|| {
        let mut v = vec![0.0f32; n_part * n_part * k];
        for i in 0..n_part {
            v[i * n_part * k + i * k] = 1.0;
        }
        dev.tensor_from_vec(v, (n_part, n_part * k))
    });
    let select = model.private_layout().map(|l| l.shared_selection(L, &dev));
    // Per modality: the whole batch's features (the part's rows on the tape) and presence.
    let aggregation = model.config().aggregation;
    let mut embedded: Vec<Option<Rows<D>>> = Vec::new();
    // The unimodal posteriors, whose tapes (the aggregation's operations) join the loss.
    let mut posteriors = Vec::new();
    for m in 0..experts.len() {
        let Some(e) = experts.get(m) else {
            embedded.push(None);
            continue;
        };
        // The modality's own posterior (for the product of experts, with the prior's expert):
        // the embedding people export and search. An expert's raw mean would not do: where
        // its precision is near 0 its mean is free, and the term would align those values.
        let q = aggregation.aggregate(experts, Subset::single(m));
        let own: Latent<L, D, OwnedTape<f32, D>> = match model.config().contrastive_input {
            ContrastiveInput::Mean => {
                let mean = q.mean();
                posteriors.push(q);
                mean
            }
            ContrastiveInput::Draw => {
                // A data point's k rows share its draw; `pick` keeps one of them.
                let eps: Vec<f32> = noise_of(noise, m, n_part, L)
                    .chunks(L)
                    .flat_map(|row| std::iter::repeat_n(row, k.max(1)).flatten())
                    .copied()
                    .collect();
                q.rsample_with(&eps)
            }
        };
        let own = match &pick {
            Some(p) => p.clone().put_tape(OwnedTape::default()).matmul(own),
            None => own,
        };
        let own = shared_part(own, select.as_ref());
        let own_present: Vec<bool> = e.present_host.iter().step_by(k.max(1)).copied().collect();
        let (features, present) = match part {
            None => (own, own_present),
            Some(p) => {
                let Some((whole, present)) = p.whole.modalities[m].clone() else {
                    embedded.push(None);
                    continue;
                };
                let rows = p.rows.clone();
                let all = shared_part(whole, select.as_ref());
                let mut features = own;
                if rows.start > 0 {
                    let before = all.clone().slice((0..rows.start, ..));
                    features =
                        (before.put_tape(OwnedTape::default()), features).concat_along(Axis::<0>);
                }
                if rows.end < total {
                    let after = all.slice((rows.end..total, ..));
                    features = (features, after).concat_along(Axis::<0>);
                }
                (features, present)
            }
        };
        embedded.push(Some((features, present)));
    }
    // The logit scale, its gradient scaled by the part's share.
    // A held temperature is a constant: a copy of the parameter with an id of its own, so no
    // gradient reaches the parameter and it keeps its start.
    let t = if model.config().contrastive_hold_temperature {
        dev.tensor_from_vec(log_scale.as_vec(), (1,))
    } else {
        log_scale.clone()
    };
    let t: Tensor<Rank0, f32, D, OwnedTape<f32, D>> = t
        .put_tape(OwnedTape::default())
        .reshape_like(&())
        .clamp(f32::NEG_INFINITY, MAX_LOG_SCALE);
    let t = if share < 1.0 {
        let held = t.retaped::<NoneTape>();
        t * share + held * (1.0 - share)
    } else {
        t
    };
    let (loss, pairs) = info_nce(embedded, t, model.config().contrastive_similarity)?;
    let mean = loss * (1.0 / pairs as f32);
    let value = mean.as_vec()[0];
    // Divided by the part's share; the constant makes the value the batch's, as the trainer
    // expects of every part.
    let mut scaled = mean * (weight / share) + weight * value * (1.0 - 1.0 / share);
    for q in posteriors {
        scaled = attach(scaled, q.into_tape());
    }
    Some((scaled, value))
}

/// The columns of `z` the term compares: the shared part where `select` picks it (private
/// latents), all of them otherwise.
fn shared_part<const L: usize, D: Backend, T: Tape<f32, D> + Merge<NoneTape>>(
    z: Latent<L, D, T>,
    select: Option<&Matrix<D>>,
) -> Matrix<D, T> {
    let z: Matrix<D, T> = realize(z);
    match select {
        Some(s) => z.matmul(s.clone()),
        None => z,
    }
}

/// The sum over pairs of modalities of the symmetric InfoNCE of their rows `features` (per
/// modality, `None` where absent: its rows and which samples have it), compared by
/// `similarity` with the logit scale `exp(t)`, and the number of pairs summed (`None`: no pair
/// has two samples that have both).
pub fn info_nce<D: Backend>(
    features: Vec<Option<Rows<D>>>,
    t: Tensor<Rank0, f32, D, OwnedTape<f32, D>>,
    similarity: Similarity,
) -> Option<(Scalar<D>, usize)> {
    let dev = t.device().clone();
    // Each modality's rows prepared once (normalised for the cosine); its pairs use copies
    // with empty tapes, and the operations that made them join the loss once at the end.
    let (normalised, present): (Vec<_>, Vec<_>) = features
        .into_iter()
        .map(|f| match f {
            Some((x, p)) => (
                Some(match similarity {
                    Similarity::Cosine => normalise(x),
                    Similarity::Euclidean => x,
                }),
                p,
            ),
            None => (None, Vec::new()),
        })
        .unzip();
    let scale = t.exp();
    let mut total: Option<Tensor<Rank0, f32, D, OwnedTape<f32, D>>> = None;
    let mut pairs = 0;
    for a in 0..normalised.len() {
        for b in a + 1..normalised.len() {
            let (Some(u), Some(v)) = (&normalised[a], &normalised[b]) else {
                continue;
            };
            let both: Vec<bool> = present[a]
                .iter()
                .zip(&present[b])
                .map(|(&x, &y)| x && y)
                .collect();
            if both.iter().filter(|&&x| x).count() < 2 {
                continue;
            }
            let loss = pair_loss(
                u.with_empty_tape(),
                v.with_empty_tape(),
                &both,
                scale.with_empty_tape(),
                similarity,
                &dev,
            );
            pairs += 1;
            total = Some(match total {
                None => loss,
                Some(s) => s + loss,
            });
        }
    }
    let mut total = total?;
    for x in normalised.into_iter().flatten() {
        total = attach(total, x.split_tape().1);
    }
    Some((attach(total, scale.split_tape().1), pairs))
}

/// `loss` with `tape` (operations recorded elsewhere) merged into its own.
fn attach<S: Shape, D: Backend>(
    loss: Tensor<S, f32, D, OwnedTape<f32, D>>,
    tape: OwnedTape<f32, D>,
) -> Tensor<S, f32, D, OwnedTape<f32, D>> {
    let (v, own) = loss.split_tape();
    v.put_tape(own.merge(tape))
}

/// Each row divided by its Euclidean norm.
fn normalise<D: Backend>(x: Matrix<D, OwnedTape<f32, D>>) -> Matrix<D, OwnedTape<f32, D>> {
    let shape = *x.shape();
    let norm = (x.with_empty_tape().square().sum::<(usize,), Axis<1>>() + 1e-12).sqrt();
    x / norm.broadcast_like::<_, Axis<1>>(&shape)
}

/// The symmetric InfoNCE of one pair: rows `u` and `v` (normalised for the cosine), compared
/// where `both`.
fn pair_loss<D: Backend>(
    u: Matrix<D, OwnedTape<f32, D>>,
    v: Matrix<D, OwnedTape<f32, D>>,
    both: &[bool],
    scale: Scalar<D>,
    similarity: Similarity,
    dev: &D,
) -> Scalar<D> {
    let n = both.len();
    let c = both.iter().filter(|&&x| x).count();
    let mut bias = vec![0.0f32; n * n];
    let mut eye = vec![0.0f32; n * n];
    for i in 0..n {
        eye[i * n + i] = 1.0;
        for j in 0..n {
            if !(both[i] && both[j]) {
                bias[i * n + j] = EXCLUDED;
            }
        }
    }
    let bias: Matrix<D> = dev.tensor_from_vec(bias, (n, n));
    let eye: Matrix<D> = dev.tensor_from_vec(eye, (n, n));
    let w: Vector<D> =
        dev.tensor_from_vec(both.iter().map(|&b| f32::from(u8::from(b))).collect(), (n,));
    let shape = (n, n);
    let similarity = match similarity {
        Similarity::Cosine => u.matmul(v.permute::<(usize, usize), Axes2<1, 0>>()),
        Similarity::Euclidean => {
            // u.v - |u|^2 / 2 - |v|^2 / 2 = -|u - v|^2 / 2.
            let uu = u.with_empty_tape().square().sum::<(usize,), Axis<1>>() * 0.5;
            let vv = v.with_empty_tape().square().sum::<(usize,), Axis<1>>() * 0.5;
            let dot = u.matmul(v.permute::<(usize, usize), Axes2<1, 0>>());
            dot - uu.broadcast_like::<_, Axis<1>>(&shape) - vv.broadcast_like::<_, Axis<0>>(&shape)
        }
    };
    let logits = similarity * scale.broadcast_like(&shape) + bias;
    let rows = logits.with_empty_tape().logsumexp::<(usize,), Axis<1>>();
    let cols = logits.with_empty_tape().logsumexp::<(usize,), Axis<0>>();
    let diagonal = (logits * eye).sum::<(usize,), Axis<1>>();
    let per_sample = rows + cols - diagonal * 2.0;
    (per_sample * w).sum::<Rank0, _>() * (1.0 / (2.0 * c as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Taped = Matrix<Cpu, OwnedTape<f32, Cpu>>;

    fn rows(dev: &Cpu, v: &[[f32; 2]]) -> Taped {
        let flat: Vec<f32> = v.iter().flatten().copied().collect();
        dev.tensor_from_vec(flat, (v.len(), 2))
            .put_tape(OwnedTape::default())
    }

    fn scale(dev: &Cpu, t: f32) -> Tensor<Rank0, f32, Cpu, OwnedTape<f32, Cpu>> {
        dev.tensor(t).put_tape(OwnedTape::default())
    }

    fn lse(x: &[f64]) -> f64 {
        let m = x.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        m + x.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
    }

    /// Two samples, two modalities, by hand: with `u = (1,0), (0,1)`, `v = (1,0), (0.6,0.8)`
    /// and `s = 2`, the logits are `2 u_i . v_j` = [[2, 1.2], [0, 1.6]]; the loss is the mean
    /// of the rows' and the columns' cross-entropies with the diagonal as the answer. The
    /// rows' lengths do not matter (cosine), and a third sample lacking one modality changes
    /// nothing.
    #[test]
    fn a_tiny_batch_gives_the_hand_computed_loss() {
        let dev = Cpu::default();
        let want = (lse(&[2.0, 1.2]) - 2.0 + lse(&[0.0, 1.6]) - 1.6 + lse(&[2.0, 0.0]) - 2.0
            + lse(&[1.2, 1.6])
            - 1.6)
            / 4.0;
        let t = 2f32.ln();
        let cases = [
            (
                rows(&dev, &[[1.0, 0.0], [0.0, 1.0]]),
                rows(&dev, &[[1.0, 0.0], [0.6, 0.8]]),
                vec![true, true],
                vec![true, true],
            ),
            (
                rows(&dev, &[[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]]),
                rows(&dev, &[[2.0, 0.0], [6.0, 8.0], [-1.0, 5.0]]),
                vec![true, true, true],
                vec![true, true, false],
            ),
        ];
        for (i, (u, v, pu, pv)) in cases.into_iter().enumerate() {
            let (loss, pairs) = info_nce(
                vec![Some((u, pu)), None, Some((v, pv))],
                scale(&dev, t),
                Similarity::Cosine,
            )
            .unwrap();
            assert_eq!(pairs, 1);
            let got = f64::from(loss.as_vec()[0]);
            assert!((got - want).abs() < 1e-6, "case {i}: {got} vs {want}");
        }
        // One sample with both modalities leaves nothing to contrast.
        let none = info_nce(
            vec![
                Some((rows(&dev, &[[1.0, 0.0], [0.0, 1.0]]), vec![true, false])),
                Some((rows(&dev, &[[1.0, 0.0], [0.0, 1.0]]), vec![true, true])),
            ],
            scale(&dev, 0.0),
            Similarity::Cosine,
        );
        assert!(none.is_none());
    }

    /// The Euclidean form by hand: `u = (2,0), (0,1)`, `v = (1,0), (0,3)`, `s = 1`: the logits
    /// `-|u_i - v_j|^2 / 2` are [[-0.5, -6.5], [-1, -2]]. Lengths matter here.
    #[test]
    fn the_euclidean_form_gives_the_hand_computed_loss() {
        let dev = Cpu::default();
        let want = (lse(&[-0.5, -6.5])
            + 0.5
            + lse(&[-1.0, -2.0])
            + 2.0
            + lse(&[-0.5, -1.0])
            + 0.5
            + lse(&[-6.5, -2.0])
            + 2.0)
            / 4.0;
        let (loss, _) = info_nce(
            vec![
                Some((rows(&dev, &[[2.0, 0.0], [0.0, 1.0]]), vec![true, true])),
                Some((rows(&dev, &[[1.0, 0.0], [0.0, 3.0]]), vec![true, true])),
            ],
            scale(&dev, 0.0),
            Similarity::Euclidean,
        )
        .unwrap();
        let got = f64::from(loss.as_vec()[0]);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    /// The gradient with respect to every input value and the log scale against central
    /// differences, three modalities (three pairs), one sample missing a modality, for both
    /// similarities.
    #[test]
    fn gradients_match_finite_differences() {
        for similarity in Similarity::ALL {
            gradients_match_finite_differences_for(similarity);
        }
    }

    fn gradients_match_finite_differences_for(similarity: Similarity) {
        let dev = Cpu::default();
        let a: Vec<[f32; 2]> = vec![[0.3, -1.2], [1.1, 0.4], [-0.7, 0.9], [0.2, 0.5]];
        let b: Vec<[f32; 2]> = vec![[0.8, 0.1], [-0.2, 1.3], [0.5, -0.6], [1.0, 1.0]];
        let c: Vec<[f32; 2]> = vec![[-0.4, 0.7], [0.9, -0.3], [0.1, 0.2], [-1.0, 0.4]];
        let present = [vec![true; 4], vec![true, false, true, true], vec![true; 4]];
        let t0 = 1.3f32;
        let value = |x: &[Vec<[f32; 2]>; 3], t: f32| -> f64 {
            let features = x
                .iter()
                .zip(&present)
                .map(|(v, p)| Some((rows(&dev, v), p.clone())))
                .collect();
            f64::from(
                info_nce(features, scale(&dev, t), similarity)
                    .unwrap()
                    .0
                    .as_vec()[0],
            )
        };
        let x = [a, b, c];
        let inputs: Vec<Taped> = x.iter().map(|v| rows(&dev, v)).collect();
        let ids: Vec<Matrix<Cpu>> = inputs.iter().map(|t| t.retaped::<NoneTape>()).collect();
        let t = scale(&dev, t0);
        let t_id = t.retaped::<NoneTape>();
        let features = inputs
            .into_iter()
            .zip(&present)
            .map(|(v, p)| Some((v, p.clone())))
            .collect();
        let grads = info_nce(features, t, similarity).unwrap().0.backward();
        let h = 1e-3f32;
        for m in 0..3 {
            let g = grads.get(&ids[m]).as_vec();
            for i in 0..4 {
                for d in 0..2 {
                    let (mut up, mut down) = (x.clone(), x.clone());
                    up[m][i][d] += h;
                    down[m][i][d] -= h;
                    let fd = (value(&up, t0) - value(&down, t0)) / (2.0 * f64::from(h));
                    let got = f64::from(g[i * 2 + d]);
                    assert!(
                        (got - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
                        "{similarity}: modality {m} row {i} dim {d}: {got} vs {fd}"
                    );
                }
            }
        }
        let gt = f64::from(grads.get(&t_id).as_vec()[0]);
        let fd = (value(&x, t0 + h) - value(&x, t0 - h)) / (2.0 * f64::from(h));
        assert!(
            (gt - fd).abs() <= 2e-3 * (1.0 + fd.abs()),
            "t: {gt} vs {fd}"
        );
    }
}
