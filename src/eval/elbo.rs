//! Single-sample ELBO of a subset on held-out data:
//! `ELBO_S(x) = sum_{m in S} log p(x_m | z) - KL(q(z | x_S) || N(0, I))`, `z ~ q(z | x_S)`,
//! and MVAE's evaluation loss, the sum of the joint's and each modality's weighted negative
//! ELBO ([`test_loss`]).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::in_order;
use crate::backend::Backend;
use crate::batch::Batch;
use crate::data::{HostBatch, MultimodalDataset};
use crate::model::Mvae;
use crate::posterior::normal_draws;
use crate::subset::Subset;
use crate::{Error, Result};

/// Mean ELBO per sample (nats, `lambda = beta = 1`) of the modalities in `subset`, encoding and
/// reconstructing exactly those, over the samples of `data` that have all of them; one
/// reparameterised sample per data point, seeded.
///
/// # Errors
/// Data that does not fit the model, or no sample with every modality of `subset`.
pub fn elbo<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    seed: u64,
) -> Result<f64> {
    Ok(subset_elbos(model, data, subset, 1.0, seed)?.0)
}

/// MVAE's evaluation loss ([`test_loss`]) and, from the same draws, the joint ELBO.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TestLoss {
    /// The sum of the joint's and each modality's weighted negative ELBO.
    pub loss: f64,
    /// The joint subset's ELBO at `lambda = beta = 1`: [`elbo`] of every modality with the
    /// same seed, without a second pass over the data.
    pub joint_elbo: f64,
}

/// MVAE's evaluation loss, as MultiVae logs it and chooses its best epoch by: the sum, over
/// the joint subset and each single modality `S`, of the mean over the samples that have `S`
/// of `sum_{m in S} lambda_m (-log p(x_m | z)) + beta KL(q(z | x_S) || N(0, I))`, each modality
/// weighted by its likelihood weight `lambda_m` (`ModalitySpec::weight`), one seeded
/// reparameterised sample per data point and subset (the joint's from `seed`, modality `m`'s
/// from `seed + 1 + m`). The sub-sampled ELBO's training loss on held-out data, without its
/// random subsets. Also returns the joint ELBO of the same pass.
///
/// # Errors
/// Data that does not fit the model, or a subset that no sample has.
pub fn test_loss<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    beta: f32,
    seed: u64,
) -> Result<TestLoss> {
    let m = model.modalities().len();
    let (joint_elbo, joint) = subset_elbos(model, data, Subset::all(m), beta, seed)?;
    let mut loss = -joint;
    if m > 1 {
        for i in 0..m {
            let seed = seed.wrapping_add(i as u64 + 1);
            loss -= subset_elbos(model, data, Subset::single(i), beta, seed)?.1;
        }
    }
    Ok(TestLoss { loss, joint_elbo })
}

/// From one pass with one seeded draw per data point, the means over the samples that have
/// all of `subset` of the ELBO (`sum_{m in S} log p(x_m | z) - KL`) and of the weighted one
/// (`sum_{m in S} lambda_m log p(x_m | z) - beta KL`).
fn subset_elbos<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    beta: f32,
    seed: u64,
) -> Result<(f64, f64)> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut sum, mut weighted_sum, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut batches = data.batches(&in_order())?;
    let mut host = HostBatch::default();
    while batches.next_into(&mut host) {
        // Columns the model lacks (a class column kept for evaluation) are not uploaded.
        host.columns
            .retain(|c| model.modalities().iter().any(|s| s.name() == c.name));
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &host)?;
        let q = model.encode(&batch, subset);
        let eps = normal_draws(batch.size() * L, &mut rng);
        let (z, kl) = q.rsample_with_kl(&eps);
        let kl = kl.as_vec();
        let mut elbo: Vec<f64> = kl.iter().map(|&k| -f64::from(k)).collect();
        let mut weighted: Vec<f64> = kl.iter().map(|&k| -f64::from(beta * k)).collect();
        let mut have = vec![true; batch.size()];
        for m in subset.iter() {
            let Some(col) = batch.column(m) else {
                have.fill(false);
                continue;
            };
            let ll = model
                .log_likelihood(m, model.decode(m, z.clone()), &col.input)
                .as_vec();
            let w = f64::from(model.modalities()[m].weight);
            for i in 0..batch.size() {
                elbo[i] += f64::from(ll[i]);
                weighted[i] += w * f64::from(ll[i]);
                have[i] &= col.present_host[i];
            }
        }
        for ((e, we), h) in elbo.iter().zip(&weighted).zip(&have) {
            if *h {
                sum += e;
                weighted_sum += we;
                count += 1;
            }
        }
    }
    if count == 0 {
        return Err(Error::InvalidData {
            what: "evaluation data".into(),
            reason: "no sample has every modality of the subset".into(),
        });
    }
    Ok((sum / count as f64, weighted_sum / count as f64))
}
