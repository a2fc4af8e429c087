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
    weighted_elbo(model, data, subset, 1.0, false, seed)
}

/// MVAE's evaluation loss, as MultiVae logs it and chooses its best epoch by: the sum, over
/// the joint subset and each single modality `S`, of the mean over the samples that have `S`
/// of `sum_{m in S} lambda_m (-log p(x_m | z)) + beta KL(q(z | x_S) || N(0, I))`, each modality
/// weighted by its likelihood weight `lambda_m` (`ModalitySpec::weight`), one seeded
/// reparameterised sample per data point and subset. The sub-sampled ELBO's training loss on
/// held-out data, without its random subsets.
///
/// # Errors
/// Data that does not fit the model, or a subset that no sample has.
pub fn test_loss<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    beta: f32,
    seed: u64,
) -> Result<f64> {
    let m = model.modalities().len();
    let mut subsets = vec![Subset::all(m)];
    if m > 1 {
        subsets.extend((0..m).map(Subset::single));
    }
    let mut total = 0.0;
    for (i, s) in subsets.into_iter().enumerate() {
        total -= weighted_elbo(model, data, s, beta, true, seed.wrapping_add(i as u64))?;
    }
    Ok(total)
}

/// The mean over the samples that have all of `subset` of `sum_{m in S} w_m log p(x_m | z) -
/// beta KL`, `w_m` the likelihood weights where `weighted`, else 1.
fn weighted_elbo<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    beta: f32,
    weighted: bool,
    seed: u64,
) -> Result<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut sum, mut count) = (0.0f64, 0usize);
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
        let mut elbo: Vec<f64> = kl.iter().map(|&k| -f64::from(beta * k)).collect();
        let mut have = vec![true; batch.size()];
        for m in subset.iter() {
            let Some(col) = batch.column(m) else {
                have.fill(false);
                continue;
            };
            let ll = model
                .log_likelihood(m, model.decode(m, z.clone()), &col.input)
                .as_vec();
            let w = if weighted {
                f64::from(model.modalities()[m].weight)
            } else {
                1.0
            };
            for i in 0..batch.size() {
                elbo[i] += w * f64::from(ll[i]);
                have[i] &= col.present_host[i];
            }
        }
        for (e, h) in elbo.iter().zip(&have) {
            if *h {
                sum += e;
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
    Ok(sum / count as f64)
}
