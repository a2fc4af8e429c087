//! Cross-modal classification accuracy: `mean_i [argmax_c p(y = c | z = mean q(z | x_S,i)) = y_i]`.

use super::in_order;
use crate::backend::Backend;
use crate::batch::Batch;
use crate::data::{HostBatch, MultimodalDataset};
use crate::likelihood::Likelihood;
use crate::modality::Modality;
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Error, Result};

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
    let spec = model
        .modalities()
        .get(target)
        .ok_or_else(|| Error::config("target", target, "the index of a model modality"))?;
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
        let probs = model.decode_mean(target, q.mean()).as_vec();
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
