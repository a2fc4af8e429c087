//! Coherence of generated samples, judged by classifiers the library trains on real data:
//! `coherence(S -> t) = mean_i [f_t(E[x_t | z_i]) = y_i]`, `z_i ~ q(z | x_S,i)` (or its mean), and
//! joint coherence `mean_i [f_m(E[x_m | z_i]) equal for every m]`, `z_i ~ N(0, I)`.
//!
//! The judge `f_m` of a dense modality (image, continuous) is a [`Classifier`] trained on the
//! training split to predict the class column from that modality; the class modality itself,
//! if the model has it, is judged by the argmax of its decoded class probabilities.

use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::classifier::{class_count, Classifier, ClassifierConfig};
use super::{argmax, in_order, report_subsets, select_rows, subset_names};
use crate::backend::{Backend, Matrix};
use crate::batch::Batch;
use crate::data::{HostBatch, MultimodalDataset};
use crate::likelihood::Likelihood;
use crate::modality::{EncoderInput, Modality};
use crate::model::Mvae;
use crate::subset::Subset;
use crate::{Error, Result};

/// Settings of the coherence metrics.
///
/// | Name | Default | Purpose | Range |
/// |---|---|---|---|
/// | `label` | `label` | data column with each sample's class | |
/// | `classifier` | MLP 256, 5 epochs | judges of dense modalities | |
/// | `max_samples` | none | conditioning samples (first of the test split) | >= 1 |
/// | `prior_samples` | 1000 | latents drawn for joint coherence | >= 1 |
/// | `from_mean` | false | decode the posterior mean instead of a sample | |
/// | `seed` | 0 | posterior and prior draws | any |
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoherenceConfig {
    /// The data column with the class of each sample.
    pub label: String,
    /// How the judges of dense modalities are built and trained.
    pub classifier: ClassifierConfig,
    /// Use only the first this many test samples as conditions (`None` = all).
    pub max_samples: Option<usize>,
    /// Prior draws for joint coherence.
    pub prior_samples: usize,
    /// Decode the posterior mean rather than a posterior sample.
    pub from_mean: bool,
    /// Seed of the posterior and prior draws.
    pub seed: u64,
}

impl Default for CoherenceConfig {
    fn default() -> Self {
        Self {
            label: "label".into(),
            classifier: ClassifierConfig::default(),
            max_samples: None,
            prior_samples: 1000,
            from_mean: false,
            seed: 0,
        }
    }
}

/// How well a judge classifies real data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeReport {
    /// The modality it judges.
    pub modality: String,
    /// `classifier` (trained here) or `argmax` (the class modality's own decoder).
    pub kind: String,
    /// Accuracy on the real test data (`None` for `argmax`).
    pub test_accuracy: Option<f64>,
}

/// Coherence of one modality generated from a subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConditionalCoherence {
    /// The conditioning modalities.
    pub given: Vec<String>,
    /// The generated modality.
    pub target: String,
    /// Conditioning samples.
    pub samples: usize,
    /// Fraction of generated samples judged to show the conditioning class.
    pub coherence: f64,
}

/// Agreement of all judged modalities generated from one prior latent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JointCoherence {
    /// The judged modalities.
    pub modalities: Vec<String>,
    /// Prior draws.
    pub samples: usize,
    /// Fraction of draws whose generated modalities all get the same class.
    pub coherence: f64,
}

/// All coherence results of a model.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoherenceReport {
    /// The class column.
    pub label: String,
    /// Number of classes (chance level is about `1 / classes`).
    pub classes: usize,
    /// The judges and their accuracy on real data.
    pub judges: Vec<JudgeReport>,
    /// Each subset to each judged modality outside it.
    pub conditional: Vec<ConditionalCoherence>,
    /// Joint coherence of prior samples, if at least two modalities are judged.
    pub joint: Option<JointCoherence>,
}

/// How one modality's generated samples are classified.
#[derive(Clone, Debug)]
pub enum Judge<D: Backend> {
    /// The decoded class probabilities' argmax (the class modality itself).
    Argmax,
    /// A classifier trained on real data.
    Classifier(Classifier<D>),
}

/// The judges of a model, one optional judge per modality (model order).
#[derive(Clone, Debug)]
pub struct Judges<D: Backend> {
    /// Per modality, `None` where it cannot be judged (another categorical modality).
    pub judges: Vec<Option<Judge<D>>>,
    /// Number of classes.
    pub classes: usize,
    /// Their accuracy on real test data.
    pub reports: Vec<JudgeReport>,
}

impl<D: Backend> Judges<D> {
    /// Trains a classifier of `cfg.label` for every dense modality of the model on `train` and
    /// scores it on `test`; the class modality, if the model has one named `cfg.label`, is
    /// judged by its decoder's argmax.
    ///
    /// # Errors
    /// A missing or non-integer label column, a modality missing from the data, a bad config.
    pub fn train<const L: usize>(
        model: &Mvae<L, D>,
        train: &MultimodalDataset,
        test: &MultimodalDataset,
        cfg: &CoherenceConfig,
    ) -> Result<Self> {
        let label = cfg.label.as_str();
        let classes = class_count(train, label)?.max(class_count(test, label)?);
        let mut judges = Vec::new();
        let mut reports = Vec::new();
        for spec in model.modalities() {
            let name = spec.name();
            let judge = match (spec.kind.likelihood(), spec.kind.encoder_input()) {
                (Likelihood::Categorical { classes: c }, _) if name == label => {
                    if c < classes {
                        return Err(Error::InvalidData {
                            what: format!("column {label}"),
                            reason: format!("has {classes} classes, the model's {c}"),
                        });
                    }
                    reports.push(JudgeReport {
                        modality: name.into(),
                        kind: "argmax".into(),
                        test_accuracy: None,
                    });
                    Some(Judge::Argmax)
                }
                (_, EncoderInput::Dense { .. }) => {
                    let clf = Classifier::fit(
                        train,
                        name,
                        label,
                        classes,
                        &cfg.classifier,
                        model.device(),
                    )?;
                    reports.push(JudgeReport {
                        modality: name.into(),
                        kind: "classifier".into(),
                        test_accuracy: Some(clf.accuracy(test, name, label)?),
                    });
                    Some(Judge::Classifier(clf))
                }
                _ => None,
            };
            judges.push(judge);
        }
        Ok(Self {
            judges,
            classes,
            reports,
        })
    }

    /// The classes the judge of modality `m` sees in decoded values `(batch, params)`, or
    /// `None` if `m` has no judge.
    pub fn judge(&self, m: usize, decoded: Matrix<D>) -> Option<Vec<usize>> {
        match self.judges.get(m)?.as_ref()? {
            Judge::Argmax => {
                let width = decoded.shape().1;
                Some(decoded.as_vec().chunks_exact(width).map(argmax).collect())
            }
            Judge::Classifier(c) => Some(c.predict(decoded)),
        }
    }
}

/// Coherence of modality `target` generated from the modalities in `given`, over the samples
/// of `data` that have every modality of `given` and a class.
///
/// # Errors
/// `target` in `given` or without a judge, data that does not fit the model, or no sample.
pub fn conditional_coherence<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    judges: &Judges<D>,
    given: Subset,
    target: usize,
    cfg: &CoherenceConfig,
) -> Result<ConditionalCoherence> {
    let names = subset_names(model, given)?;
    let judged = judges.judges.get(target).is_some_and(Option::is_some);
    if given.contains(target) || target >= model.modalities().len() || !judged {
        return Err(Error::config(
            "coherence target",
            target,
            "the index of a judged modality outside the conditioning subset",
        ));
    }
    let tname = model.modalities()[target].name().to_string();
    let col = data.column(&cfg.label).ok_or_else(|| Error::InvalidData {
        what: format!("column {}", cfg.label),
        reason: "is not in the data".into(),
    })?;
    let limit = cfg.max_samples.unwrap_or(usize::MAX);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let (mut right, mut count) = (0usize, 0usize);
    let mut batches = data.batches(&in_order())?;
    let mut host = HostBatch::default();
    while batches.next_into(&mut host) {
        let sel = select_rows(model, &host, given, |i| i < limit && col.present()[i]);
        if sel.is_empty() {
            continue;
        }
        let batch = Batch::from_host_batch(model.modalities(), model.device(), &sel)?;
        let q = model.encode(&batch, given);
        let z = if cfg.from_mean {
            q.mean()
        } else {
            q.rsample(&mut rng)
        };
        let pred = judges
            .judge(target, model.decode_mean(target, z))
            .expect("checked: target has a judge");
        for (p, &i) in pred.iter().zip(&sel.indices) {
            right += usize::from(*p as f32 == col.values()[i]);
            count += 1;
        }
    }
    if count == 0 {
        return Err(Error::InvalidData {
            what: "coherence data".into(),
            reason: format!(
                "no sample has {} and every modality of {}",
                cfg.label,
                names.join(" + ")
            ),
        });
    }
    Ok(ConditionalCoherence {
        given: names,
        target: tname,
        samples: count,
        coherence: right as f64 / count as f64,
    })
}

/// Joint coherence of `cfg.prior_samples` prior draws: the fraction whose decoded modalities
/// all get the same class from their judges; `None` when fewer than two modalities are judged.
///
/// # Errors
/// [`Error::InvalidConfig`] for zero prior samples.
pub fn joint_coherence<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    judges: &Judges<D>,
    cfg: &CoherenceConfig,
) -> Result<Option<JointCoherence>> {
    if cfg.prior_samples == 0 {
        return Err(Error::config("prior_samples", 0, "at least 1"));
    }
    let judged: Vec<usize> = (0..model.modalities().len())
        .filter(|&m| judges.judges.get(m).is_some_and(Option::is_some))
        .collect();
    if judged.len() < 2 {
        return Ok(None);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    let mut agree = 0usize;
    let mut left = cfg.prior_samples;
    while left > 0 {
        let n = left.min(super::EVAL_BATCH);
        left -= n;
        let z = model.sample_prior(n, &mut rng);
        let preds: Vec<Vec<usize>> = judged
            .iter()
            .map(|&m| {
                judges
                    .judge(m, model.decode_mean(m, z.clone()))
                    .expect("judged")
            })
            .collect();
        agree += (0..n)
            .filter(|&i| preds.iter().all(|p| p[i] == preds[0][i]))
            .count();
    }
    Ok(Some(JointCoherence {
        modalities: judged
            .iter()
            .map(|&m| model.modalities()[m].name().to_string())
            .collect(),
        samples: cfg.prior_samples,
        coherence: agree as f64 / cfg.prior_samples as f64,
    }))
}

/// Trains the judges on `train`, then measures every conditional coherence (each subset of
/// the report to each judged modality outside it) on `test`, and joint coherence.
///
/// # Errors
/// As [`Judges::train`], [`conditional_coherence`] and [`joint_coherence`].
pub fn coherence<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
    cfg: &CoherenceConfig,
) -> Result<CoherenceReport> {
    let judges = Judges::train(model, train, test, cfg)?;
    let m = model.modalities().len();
    let mut conditional = Vec::new();
    for given in report_subsets(m) {
        for target in 0..m {
            if given.contains(target) || judges.judges[target].is_none() {
                continue;
            }
            conditional.push(conditional_coherence(
                model, test, &judges, given, target, cfg,
            )?);
        }
    }
    Ok(CoherenceReport {
        label: cfg.label.clone(),
        classes: judges.classes,
        joint: joint_coherence(model, &judges, cfg)?,
        judges: judges.reports,
        conditional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::likelihood::tests::{linear_model, modalities};
    use crate::eval::probe::tests::with_classes;

    /// In the linear-Gaussian model the class (sign of the first latent's evidence in `a`)
    /// shows in generated `b` too: generating `b` from `a` keeps the class far above chance
    /// (0.5), and prior draws decode to `a` and `b` of the same class.
    #[test]
    fn generated_samples_keep_the_class() {
        let model = linear_model(&modalities(), 1.0, 1.0);
        let (train, test) = (with_classes(600, 1), with_classes(300, 2));
        let cfg = CoherenceConfig {
            classifier: ClassifierConfig {
                hidden: vec![16],
                epochs: 30,
                adam: crate::AdamSettings {
                    lr: 1e-2,
                    ..Default::default()
                },
                ..Default::default()
            },
            prior_samples: 500,
            ..Default::default()
        };
        let r = coherence(&model, &train, &test, &cfg).unwrap();
        eprintln!("{r:#?}");
        assert_eq!(r.classes, 2);
        assert_eq!(r.judges.len(), 2);
        assert!(r.judges[0].test_accuracy.unwrap() > 0.9, "{r:?}");
        assert!(r.judges[1].test_accuracy.unwrap() > 0.7, "{r:?}");
        // a -> b and b -> a only: the joint subset has no modality left to generate
        assert_eq!(r.conditional.len(), 2);
        let ab = &r.conditional[0];
        assert_eq!(
            (ab.given.clone(), ab.target.as_str()),
            (vec!["a".to_string()], "b")
        );
        assert!(ab.coherence > 0.7, "{ab:?}");
        assert!(r.conditional[1].coherence > 0.7, "{r:?}");
        assert!(r.joint.as_ref().unwrap().coherence > 0.8, "{r:?}");
        let judges = Judges::train(&model, &train, &test, &cfg).unwrap();
        assert!(conditional_coherence(&model, &test, &judges, Subset::single(0), 0, &cfg).is_err());
        assert!(
            conditional_coherence(&model, &test, &judges, Subset::single(0), 70, &cfg).is_err()
        );
    }
}
