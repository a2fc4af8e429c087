//! Evaluation on held-out data: single-sample ELBOs of any subset and cross-modal
//! classification accuracy.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::backend::Backend;
use crate::batch::Batch;
use crate::data::MultimodalDataset;
use crate::data::{BatchOptions, HostBatch};
use crate::likelihood::Likelihood;
use crate::modality::Modality;
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Error, Result};

/// Evaluation batch size: large enough for efficient matrix products, small enough for memory.
const EVAL_BATCH: usize = 500;

/// Batches in data order, [`EVAL_BATCH`] at a time.
fn in_order() -> BatchOptions {
    BatchOptions {
        shuffle: false,
        ..BatchOptions::new(EVAL_BATCH, 0)
    }
}

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
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &host)?;
        let q = model.encode(&batch, subset);
        let kl = q.clone().kl_to_standard_normal().as_vec();
        let z = q.rsample(&mut rng);
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

/// Accuracy of predicting categorical modality `target` from the posterior mean of `from`:
/// decode the class probabilities and take the most likely class. Counts the samples that
/// have `target` and at least one modality of `from`.
///
/// # Errors
/// `target` is not categorical or not in `data`, or data that does not fit the model.
pub fn accuracy<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    from: Subset,
    target: usize,
) -> Result<f64> {
    let spec = &model.modalities()[target];
    if !matches!(spec.kind.likelihood(), Likelihood::Categorical { .. }) {
        return Err(Error::InvalidData {
            what: format!("modality {}", spec.name()),
            reason: "is not categorical, so it has no accuracy".into(),
        });
    }
    let col = data.column(spec.name()).ok_or_else(|| Error::InvalidData {
        what: format!("modality {}", spec.name()),
        reason: "is not in the evaluation data".into(),
    })?;
    let classes = spec.kind.likelihood().params();
    let (mut right, mut count) = (0usize, 0usize);
    let mut batches = data.batches(&in_order())?;
    let mut host = HostBatch::default();
    while batches.next_into(&mut host) {
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &host)?;
        let chunk = &host.indices;
        let q = model.encode(&batch, from);
        let probs = model.decode_mean(target, q.mean).as_vec();
        for (j, &i) in chunk.iter().enumerate() {
            let has_source = from
                .iter()
                .any(|m| batch.column(m).is_some_and(|c| c.present_host[j]));
            if !col.present()[i] || !has_source {
                continue;
            }
            let row = &probs[j * classes..(j + 1) * classes];
            let pred = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k)
                .unwrap_or(0);
            right += usize::from(pred == col.values()[i] as usize);
            count += 1;
        }
    }
    if count == 0 {
        return Err(Error::InvalidData {
            what: "evaluation data".into(),
            reason: "no sample has the target and a source modality".into(),
        });
    }
    Ok(right as f64 / count as f64)
}
