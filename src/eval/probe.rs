//! Linear probes of the latent space: a softmax regression
//! `p(y | mu_S) = softmax(W mu_S + b)` on posterior means `mu_S = E[q(z | x_S)]`, trained on the
//! training split's latents and scored (accuracy) on the test split's, for a subset `S`.

use serde::{Deserialize, Serialize};

use super::classifier::{class_count, Classifier, ClassifierConfig};
use super::subset_names;
use crate::backend::Backend;
use crate::data::{DatasetBuilder, MultimodalDataset};
use crate::embed::embed_where;
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Error, Result};

/// The probe's result for one subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeReport {
    /// The modalities encoded, in model order.
    pub modalities: Vec<String>,
    /// Training latents (training samples with every modality of the subset and a label).
    pub train_samples: usize,
    /// Test latents.
    pub test_samples: usize,
    /// Accuracy on the training latents.
    pub train_accuracy: f64,
    /// Accuracy on the test latents.
    pub test_accuracy: f64,
}

/// Posterior means of `subset` for the samples of `data` that have every modality of `subset`
/// and the column `label`, as a data set with columns `z` (`L` values) and `label`; at most the
/// first `limit` samples of `data` are used.
///
/// # Errors
/// Data that does not fit the model, or no column `label`.
pub fn latents<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    subset: Subset,
    label: &str,
    limit: Option<usize>,
) -> Result<MultimodalDataset> {
    subset_names(model, subset)?;
    let col = data.column(label).ok_or_else(|| Error::InvalidData {
        what: format!("column {label}"),
        reason: "is not in the data".into(),
    })?;
    let limit = limit.unwrap_or(usize::MAX);
    let e = embed_where(model, data, subset, false, |i| {
        i < limit && col.present()[i]
    })?;
    if e.is_empty() {
        return Err(Error::InvalidData {
            what: "probe data".into(),
            reason: format!("no sample has {label} and every modality of the subset"),
        });
    }
    let ys = e.rows.iter().map(|&i| col.values()[i]).collect();
    Ok(DatasetBuilder::new()
        .column("z", L, e.means)
        .column(label, 1, ys)
        .build()?)
}

/// Settings of a latent probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// The data column with the class of each sample.
    pub label: String,
    /// The probe and its training (default: softmax regression, 30 epochs, lr 1e-2).
    pub classifier: ClassifierConfig,
    /// Encode at most the first this many training samples (`None` = all).
    pub max_train_samples: Option<usize>,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            label: "label".into(),
            classifier: ClassifierConfig::linear(30, 1e-2),
            max_train_samples: None,
        }
    }
}

/// Trains a linear probe predicting `cfg.label` from the posterior means of `subset` on
/// `train` and scores it on `test`.
///
/// # Errors
/// Data that does not fit the model, a missing or non-integer label column, a bad config.
pub fn probe<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
    subset: Subset,
    cfg: &ProbeConfig,
) -> Result<ProbeReport> {
    let names = subset_names(model, subset)?;
    let label = cfg.label.as_str();
    let classes = class_count(train, label)?.max(class_count(test, label)?);
    let tr = latents(model, train, subset, label, cfg.max_train_samples)?;
    let te = latents(model, test, subset, label, None)?;
    let clf = Classifier::fit(&tr, "z", label, classes, &cfg.classifier, model.device())?;
    Ok(ProbeReport {
        modalities: names,
        train_samples: tr.len(),
        test_samples: te.len(),
        train_accuracy: clf.accuracy(&tr, "z", label)?,
        test_accuracy: clf.accuracy(&te, "z", label)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::eval::likelihood::tests::{linear_model, modalities, sample};

    /// The linear-Gaussian data with a class column: `1` when the first latent's evidence in
    /// modality `a`, `x_a0 + x_a1` (offsets removed), is positive.
    pub(crate) fn with_classes(n: usize, seed: u64) -> MultimodalDataset {
        let mods = modalities();
        let d = sample(&mods, n, seed);
        let (a, b) = (d.column("a").unwrap(), d.column("b").unwrap());
        let (b0, b1) = (mods[0].b[0] as f32, mods[0].b[1] as f32);
        let y = (0..n)
            .map(|i| {
                let x = a.sample(i).unwrap();
                f32::from(u8::from(x[0] - b0 + x[1] - b1 > 0.0))
            })
            .collect();
        DatasetBuilder::new()
            .column("a", 3, a.values().to_vec())
            .column("b", 2, b.values().to_vec())
            .column("label", 1, y)
            .build()
            .unwrap()
    }

    /// The class is a linear function of the posterior mean given `a`, and correlated with
    /// the one given `b` (both see the first latent): the probe finds it, well above chance.
    #[test]
    fn probe_finds_a_linear_class() {
        let model = linear_model(&modalities(), 1.0, 1.0);
        let (train, test) = (with_classes(400, 1), with_classes(200, 2));
        let cfg = ProbeConfig::default();
        let a = probe(&model, &train, &test, Subset::single(0), &cfg).unwrap();
        let b = probe(&model, &train, &test, Subset::single(1), &cfg).unwrap();
        eprintln!("{a:?}\n{b:?}");
        assert_eq!((a.train_samples, a.test_samples), (400, 200));
        assert!(a.test_accuracy > 0.9, "{a:?}");
        assert!(b.test_accuracy > 0.7, "{b:?}");
        assert!(probe(&model, &train, &test, Subset(0), &cfg).is_err());
        let no_label = ProbeConfig {
            label: "nope".into(),
            ..cfg
        };
        assert!(probe(&model, &train, &test, Subset::single(0), &no_label).is_err());
    }
}
