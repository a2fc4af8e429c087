//! The whole evaluation suite in one call: `evaluate(model, train, test) -> EvalReport` with
//! `log p(x_S)` (IWAE) for each subset `S`, `log p(x_m | x_rest)`, coherence, latent probes and
//! cross-modal retrieval.

use serde::{Deserialize, Serialize};

use super::coherence::{coherence, CoherenceConfig, CoherenceReport};
use super::likelihood::{
    conditional_log_likelihood, log_likelihood, ConditionalReport, IwaeConfig, LikelihoodReport,
};
use super::probe::{probe, ProbeConfig, ProbeReport};
use super::report_subsets;
use crate::backend::Backend;
use crate::data::MultimodalDataset;
use crate::embed::retrieval::{retrieval, RetrievalReport, Similarity};
use crate::embed::{embed, EmbedOptions};
use crate::model::Mvae;
use crate::subset::Subset;
use crate::Result;

/// Settings of [`evaluate`]. Subsets covered: every non-empty subset for up to 4 modalities,
/// otherwise the joint set and each single modality.
///
/// | Name | Default | Purpose |
/// |---|---|---|
/// | `iwae` | K = 1000, first 1000 test samples | likelihood estimates |
/// | `coherence` | class column `label` | judges, samples, draws |
/// | `probe` | softmax regression | latent probes |
/// | `retrieval` | cosine, first 2000 test samples | cross-modal retrieval |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Importance sampling: `K`, number of test samples, seed.
    pub iwae: IwaeConfig,
    /// Coherence: class column, judges, number of samples, seed.
    pub coherence: CoherenceConfig,
    /// Latent probes: class column, probe training, number of training samples.
    pub probe: ProbeConfig,
    /// Cross-modal retrieval between the modalities' embeddings.
    #[serde(default)]
    pub retrieval: RetrievalConfig,
}

/// Settings of the retrieval part of [`evaluate`]: every ordered pair of modalities, the
/// embeddings of one (the queries) ranking those of the other (the gallery) on the test set,
/// classes from the coherence's class column where the data have it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetrievalConfig {
    /// How embeddings are compared.
    pub similarity: Similarity,
    /// Embed at most the first this many test samples (`None` = all; the ranking costs
    /// `n^2` similarities per pair).
    pub max_samples: Option<usize>,
}

impl Default for RetrievalConfig {
    fn default() -> Self {
        Self {
            similarity: Similarity::default(),
            max_samples: Some(2000),
        }
    }
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            iwae: IwaeConfig {
                max_samples: Some(1000),
                ..IwaeConfig::default()
            },
            coherence: CoherenceConfig::default(),
            probe: ProbeConfig::default(),
            retrieval: RetrievalConfig::default(),
        }
    }
}

impl EvalConfig {
    /// The same settings with the class column `label` for coherence and probes.
    pub fn with_label(mut self, label: &str) -> Self {
        self.coherence.label = label.into();
        self.probe.label = label.into();
        self
    }
}

/// Everything [`evaluate`] measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// `log p(x_S)` per subset.
    pub likelihoods: Vec<LikelihoodReport>,
    /// `log p(x_m | x_rest)` for each modality `m` given all the others.
    pub conditionals: Vec<ConditionalReport>,
    /// Cross-modal and joint coherence with the judges' own accuracy.
    pub coherence: CoherenceReport,
    /// Linear probe accuracy per subset.
    pub probes: Vec<ProbeReport>,
    /// Cross-modal retrieval for every ordered pair of modalities (empty for one modality).
    #[serde(default)]
    pub retrieval: Vec<RetrievalReport>,
}

/// Runs the suite: likelihoods and conditionals on `test`, judges and probes trained on
/// `train` and scored on `test`.
///
/// # Errors
/// A bad config, data that does not fit the model, a missing class column, or a subset that
/// no test sample has.
pub fn evaluate<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
    cfg: &EvalConfig,
) -> Result<EvalReport> {
    let m = model.modalities().len();
    let subsets = report_subsets(m);
    let likelihoods = subsets
        .iter()
        .map(|&s| log_likelihood(model, test, s, &cfg.iwae))
        .collect::<Result<Vec<_>>>()?;
    let all = Subset::all(m);
    let conditionals = if m < 2 {
        Vec::new()
    } else {
        (0..m)
            .map(|t| {
                let rest = Subset(all.0 & !Subset::single(t).0);
                conditional_log_likelihood(model, test, Subset::single(t), rest, &cfg.iwae)
            })
            .collect::<Result<Vec<_>>>()?
    };
    let coherence = coherence(model, train, test, &cfg.coherence)?;
    let probes = subsets
        .iter()
        .map(|&s| probe(model, train, test, s, &cfg.probe))
        .collect::<Result<Vec<_>>>()?;
    let retrieval = cross_modal_retrieval(model, test, &cfg.retrieval, &cfg.coherence.label)?;
    Ok(EvalReport {
        likelihoods,
        conditionals,
        coherence,
        probes,
        retrieval,
    })
}

/// Every ordered pair of modalities: the one's embeddings ranking the other's on `test`, with
/// the classes of the column `label` where `test` has it.
///
/// # Errors
/// Data that does not fit the model, or a modality no test sample has.
pub fn cross_modal_retrieval<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    test: &MultimodalDataset,
    cfg: &RetrievalConfig,
    label: &str,
) -> Result<Vec<RetrievalReport>> {
    let names: Vec<&str> = model.modalities().iter().map(|s| s.name()).collect();
    if names.len() < 2 {
        return Ok(Vec::new());
    }
    let opts = EmbedOptions {
        variances: false,
        limit: cfg.max_samples,
    };
    let embeddings = names
        .iter()
        .map(|&n| embed(model, test, &[n], &opts))
        .collect::<Result<Vec<_>>>()?;
    let column = test.column(label);
    let class_of = |row: usize| -> Option<usize> {
        let c = column?;
        let v = *c.values().get(row)?;
        (c.present()[row] && v >= 0.0 && v.fract() == 0.0).then_some(v as usize)
    };
    let classes: Option<&dyn Fn(usize) -> Option<usize>> = column.map(|_| &class_of as _);
    let mut out = Vec::new();
    for (a, query) in embeddings.iter().enumerate() {
        for (b, gallery) in embeddings.iter().enumerate() {
            if a != b {
                out.push(retrieval(query, gallery, cfg.similarity, classes)?);
            }
        }
    }
    Ok(out)
}
