//! The shared latent space as a multimodal embedding: the posterior mean of any subset of
//! modalities for each row of a data set ([`embed`]), and how well the embeddings of one
//! modality find their partners among another's ([`retrieval`]).
//!
//! A row is embedded only if it has every modality asked for: the posterior of fewer would be
//! another embedding under the same name. [`Embeddings::rows`] keeps each row's index in the
//! data set, so embeddings of different subsets can be paired row by row.

pub mod retrieval;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::batch::Batch;
use crate::data::{BatchOptions, HostBatch, HostColumn, MultimodalDataset};
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Error, Result};

/// Rows uploaded to the device at a time when embedding or evaluating: large enough for
/// efficient matrix products, small enough for memory.
pub(crate) const BATCH: usize = 500;

/// Batches in data order, `size` at a time.
pub(crate) fn in_order_by(size: usize) -> BatchOptions {
    BatchOptions {
        shuffle: false,
        ..BatchOptions::new(size.max(1), 0)
    }
}

/// What [`embed`] returns besides the means.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbedOptions {
    /// Also return each coordinate's posterior variance.
    pub variances: bool,
    /// Embed at most the rows among the first this many of the data set (`None` = all).
    pub limit: Option<usize>,
}

/// Posterior means (and optionally variances) of one subset of modalities, one row per data
/// row that has all of them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Embeddings {
    /// The modalities embedded, in model order.
    pub given: Vec<String>,
    /// Each embedded row's index in the data set, increasing.
    pub rows: Vec<usize>,
    /// Coordinates per row (the model's latent size).
    pub dim: usize,
    /// The posterior means, row after row (`rows.len() x dim`).
    pub means: Vec<f32>,
    /// The posterior variances, laid out as `means`, if asked for.
    pub variances: Option<Vec<f32>>,
}

impl Embeddings {
    /// Number of embedded rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was embedded.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The mean of the `i`-th embedded row.
    pub fn mean(&self, i: usize) -> &[f32] {
        &self.means[i * self.dim..(i + 1) * self.dim]
    }
}

/// Embeds the rows of `data` that have every modality named in `given`: the mean of
/// `q(z | x_given)` under the model's aggregation, in data order.
///
/// # Errors
/// An empty `given` or a name the model lacks (the error lists the model's modalities), data
/// that does not fit the model, or no row with every modality of `given`.
pub fn embed<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    given: &[&str],
    options: &EmbedOptions,
) -> Result<Embeddings> {
    if given.is_empty() {
        return Err(Error::config(
            "given",
            "nothing",
            "at least one modality to embed",
        ));
    }
    let subset = model.subset(given)?;
    let limit = options.limit.unwrap_or(usize::MAX);
    let out = embed_where(model, data, subset, options.variances, |i| i < limit)?;
    if out.is_empty() {
        return Err(Error::InvalidData {
            what: format!("embedding of {}", out.given.join(", ")),
            reason: "no row has every modality asked for".into(),
        });
    }
    Ok(out)
}

/// [`embed`] of `subset` for the rows that have all of it and pass `keep` (called with the
/// row's data-set index); possibly none.
///
/// # Errors
/// Data that does not fit the model.
pub(crate) fn embed_where<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    variances: bool,
    keep: impl Fn(usize) -> bool,
) -> Result<Embeddings> {
    let mut out = Embeddings {
        given: model.names(subset).iter().map(|s| s.to_string()).collect(),
        rows: Vec::new(),
        dim: L,
        means: Vec::new(),
        variances: variances.then(Vec::new),
    };
    let mut batches = data.batches(&in_order_by(BATCH))?;
    let mut host = HostBatch::default();
    while batches.next_into(&mut host) {
        let sel = select_rows(model, &host, subset, &keep);
        if sel.is_empty() {
            continue;
        }
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &sel)?;
        let q = model.encode(&batch, subset);
        out.means.extend(q.mean().as_vec());
        if let Some(v) = out.variances.as_mut() {
            v.extend(q.variance().as_vec());
        }
        out.rows.extend(&sel.indices);
    }
    Ok(out)
}

/// The rows of `host` that have every modality of `needed` and pass `extra` (called with the
/// row's data-set index), keeping only the model's columns: a batch the model can upload.
pub(crate) fn select_rows<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    host: &HostBatch,
    needed: Subset,
    extra: impl Fn(usize) -> bool,
) -> HostBatch {
    let specs = model.modalities();
    let keep: Vec<usize> = (0..host.len())
        .filter(|&j| {
            needed
                .iter()
                .all(|m| host.column(specs[m].name()).is_some_and(|c| c.present[j]))
                && extra(host.indices[j])
        })
        .collect();
    let columns = host
        .columns
        .iter()
        .filter(|c| specs.iter().any(|s| s.name() == c.name))
        .map(|c| HostColumn {
            name: c.name.clone(),
            dim: c.dim,
            values: keep
                .iter()
                .flat_map(|&j| c.values[j * c.dim..(j + 1) * c.dim].iter().copied())
                .collect(),
            present: keep.iter().map(|&j| c.present[j]).collect(),
        })
        .collect();
    HostBatch {
        indices: keep.iter().map(|&j| host.indices[j]).collect(),
        columns,
    }
}
