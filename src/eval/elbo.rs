//! Single-sample ELBO of a subset on held-out data:
//! `ELBO_S(x) = sum_{m in S} log p(x_m | z) - KL(q(z | x_S) || N(0, I))`, `z ~ q(z | x_S)`.

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
        let mut elbo: Vec<f64> = kl.iter().map(|&k| -f64::from(k)).collect();
        let mut have = vec![true; batch.size()];
        for m in subset.iter() {
            let Some(col) = batch.column(m) else {
                have.fill(false);
                continue;
            };
            let ll = model
                .log_likelihood(m, model.decode(m, z.clone()), &col.input)
                .as_vec();
            for i in 0..batch.size() {
                elbo[i] += f64::from(ll[i]);
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
