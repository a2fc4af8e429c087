//! The whole evaluation suite in one call: `evaluate(model, train, test) -> EvalReport` with
//! `log p(x_S)` (IWAE) for each subset `S`, `log p(x_m | x_rest)`, coherence and latent probes.

use serde::{Deserialize, Serialize};

use super::coherence::{coherence, CoherenceConfig, CoherenceReport};
use super::likelihood::{
    conditional_log_likelihood, log_likelihood, ConditionalReport, IwaeConfig, LikelihoodReport,
};
use super::probe::{probe, ProbeConfig, ProbeReport};
use super::report_subsets;
use crate::backend::Backend;
use crate::data::MultimodalDataset;
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalConfig {
    /// Importance sampling: `K`, number of test samples, seed.
    pub iwae: IwaeConfig,
    /// Coherence: class column, judges, number of samples, seed.
    pub coherence: CoherenceConfig,
    /// Latent probes: class column, probe training, number of training samples.
    pub probe: ProbeConfig,
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
    Ok(EvalReport {
        likelihoods,
        conditionals,
        coherence,
        probes,
    })
}
