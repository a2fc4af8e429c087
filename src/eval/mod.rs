//! Evaluation on held-out data, one file per metric:
//!
//! - [`elbo`]: single-sample ELBO of any subset; [`test_loss`]: MVAE's evaluation loss;
//! - [`accuracy`]: cross-modal classification accuracy from a posterior mean;
//! - [`likelihood`]: importance-weighted bounds on `log p(x_S)` and `log p(x_A | x_B)`;
//! - [`coherence`]: do generated samples show the conditioning class, judged by classifiers
//!   trained here ([`classifier`]);
//! - [`probe`]: linear (softmax-regression) probes on posterior means;
//! - cross-modal retrieval between the modalities' embeddings ([`crate::embed::retrieval`]).
//!
//! For a subset `S`: `log p(x_S) >= E[IWAE_K] >= E[ELBO] = E[log p(x_S | z) + log p(z) - log q(z | x_S)]`.
//! [`evaluate`] runs them all into one serialisable [`EvalReport`].

mod accuracy;
pub mod classifier;
pub mod coherence;
mod elbo;
pub mod likelihood;
pub mod probe;
mod report;

pub use accuracy::accuracy;
pub use elbo::{elbo, test_loss, TestLoss};
pub use report::{cross_modal_retrieval, evaluate, EvalConfig, EvalReport, RetrievalConfig};

use crate::data::{BatchOptions, HostBatch, HostColumn};
use crate::embed::{in_order_by, select_rows, BATCH as EVAL_BATCH};
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Backend, Error, Result};

/// Batches in data order, [`EVAL_BATCH`] at a time.
fn in_order() -> BatchOptions {
    in_order_by(EVAL_BATCH)
}

/// Names of the modalities in `subset`, in model order.
///
/// # Errors
/// [`Error::InvalidConfig`] for an empty subset or one naming a modality the model lacks.
pub fn subset_names<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    subset: Subset,
) -> Result<Vec<String>> {
    let m = model.modalities().len();
    if subset.is_empty() || subset.iter().any(|i| i >= m) {
        return Err(Error::config(
            "subset",
            format!("{:#b}", subset.0),
            &format!("a non-empty set of the model's {m} modalities"),
        ));
    }
    Ok(subset
        .iter()
        .map(|i| model.modalities()[i].name().to_string())
        .collect())
}

/// Each row of `host` repeated `times` times in a row (row `i` becomes rows
/// `i * times .. (i + 1) * times`).
fn replicate(host: &HostBatch, times: usize) -> HostBatch {
    HostBatch {
        indices: host
            .indices
            .iter()
            .flat_map(|&i| std::iter::repeat_n(i, times))
            .collect(),
        columns: host
            .columns
            .iter()
            .map(|c| HostColumn {
                name: c.name.clone(),
                dim: c.dim,
                values: c
                    .values
                    .chunks_exact(c.dim)
                    .flat_map(|row| std::iter::repeat_n(row, times).flatten().copied())
                    .collect(),
                present: c
                    .present
                    .iter()
                    .flat_map(|&p| std::iter::repeat_n(p, times))
                    .collect(),
            })
            .collect(),
    }
}

/// Index of the largest value of `row` (0 for an empty row; NaN never wins).
fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(k, _)| k)
}

/// Mean and standard error of the mean.
fn mean_and_se(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mean = xs.iter().sum::<f64>() / n;
    if xs.len() < 2 {
        return (mean, 0.0);
    }
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// Every non-empty subset of `m` modalities when there are at most 4, otherwise the joint set
/// and each single modality: the subsets a report covers.
fn report_subsets(m: usize) -> Vec<Subset> {
    if m <= 4 {
        (1..(1u64 << m)).map(Subset).collect()
    } else {
        let mut v: Vec<Subset> = (0..m).map(Subset::single).collect();
        v.push(Subset::all(m));
        v
    }
}
