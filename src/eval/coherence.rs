//! Coherence of generated samples, judged by classifiers the library trains on real data:
//! `coherence(S -> t) = mean_i [f_t(E[x_t | z_i]) = y_i]`, `z_i ~ q(z | x_S,i)` (or its mean), and
//! joint coherence `mean_i [f_m(E[x_m | z_i]) equal for every m]`, `z_i ~ N(0, I)`.
//!
//! Coherence given `k` ([`given_k`], as the MoPoE paper reports PolyMNIST): for each `k` in
//! `1..M`, each subset `S` of `k` modalities gives the mean coherence of the judged modalities
//! outside it, and these subset means are averaged (every subset of size `k`, or a seeded
//! sample of [`CoherenceConfig::max_subsets`] of them when there are more).
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
/// | `seed` | 0 | posterior and prior draws, subsets sampled for coherence given k | any |
/// | `max_subsets` | 10 | subsets of each size `k` for coherence given k (all if fewer) | >= 1 |
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
    /// For coherence given `k`: at most this many subsets of each size, a seeded sample when
    /// there are more (`None` = all).
    #[serde(default = "default_max_subsets")]
    pub max_subsets: Option<usize>,
}

fn default_max_subsets() -> Option<usize> {
    Some(10)
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
            max_subsets: default_max_subsets(),
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

/// The mean coherence of the judged modalities outside one conditioning subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubsetCoherence {
    /// The conditioning modalities.
    pub given: Vec<String>,
    /// The judged modalities generated from them.
    pub targets: Vec<String>,
    /// Mean coherence over the targets.
    pub coherence: f64,
}

/// Coherence given `k` modalities: the mean over conditioning subsets of size `k` of each
/// subset's mean coherence.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GivenK {
    /// Size of the conditioning subsets.
    pub k: usize,
    /// Mean of the subsets' coherences.
    pub coherence: f64,
    /// Subsets of size `k` that have a judged modality outside them (the number averaged
    /// over is `subsets.len()`, fewer when sampled).
    pub of: usize,
    /// The subsets averaged over, each with its own coherence.
    pub subsets: Vec<SubsetCoherence>,
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
    /// Coherence given `k` modalities, for `k = 1..M-1` (see [`given_k`]).
    #[serde(default)]
    pub given_k: Vec<GivenK>,
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

/// Subset counts up to which [`given_k_with`] lists every subset of a size before sampling.
const LISTED_SUBSETS: u128 = 4096;

/// `n choose k`, saturating.
fn binomial(n: usize, k: usize) -> u128 {
    (0..k.min(n)).fold(1u128, |acc, i| {
        acc.saturating_mul((n - i) as u128) / (i as u128 + 1)
    })
}

/// The subsets of size `k` of `m` modalities that coherence given `k` averages over: all of
/// them in increasing order of their bits when there are at most `max` (`None`: no limit),
/// otherwise `max` distinct ones drawn with `rng`, in the same order.
pub fn subsets_of_size(
    m: usize,
    k: usize,
    max: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Vec<Subset> {
    if k == 0 || k > m || m > Subset::MAX_MODALITIES {
        return Vec::new();
    }
    let total = binomial(m, k);
    let want = max.map_or(total, |x| (x as u128).min(total));
    let mut out: Vec<Subset> = if want == total {
        // Every k-combination, in lexicographic order of indices.
        let mut idx: Vec<usize> = (0..k).collect();
        let mut all = Vec::new();
        loop {
            all.push(Subset::of(&idx));
            let Some(i) = (0..k).rev().find(|&i| idx[i] < m - k + i) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..k {
                idx[j] = idx[j - 1] + 1;
            }
        }
        all
    } else {
        let mut chosen = std::collections::BTreeSet::new();
        while (chosen.len() as u128) < want {
            let pick = rand::seq::index::sample(rng, m, k).into_vec();
            chosen.insert(Subset::of(&pick).0);
        }
        chosen.into_iter().map(Subset).collect()
    };
    out.sort_by_key(|s| s.0);
    out
}

/// Coherence given `k` for `k = 1..m-1` from a measure of single conditional coherences:
/// `measure(S, t)` is the coherence of modality `t` generated from subset `S`, asked only for
/// `judged[t]` and `t` outside `S`. Each subset's coherence is the mean over its judged
/// targets (subsets without one are left out), each `k`'s the mean over its subsets
/// ([`subsets_of_size`] with `max_subsets` and a generator seeded with `seed`); a `k` without
/// a subset is left out. `names` names the modalities.
///
/// # Errors
/// Whatever `measure` returns; [`Error::Shape`] if `names` and `judged` disagree.
pub fn given_k_with(
    names: &[String],
    judged: &[bool],
    max_subsets: Option<usize>,
    seed: u64,
    mut measure: impl FnMut(Subset, usize) -> Result<f64>,
) -> Result<Vec<GivenK>> {
    let m = names.len();
    if judged.len() != m {
        return Err(Error::shape("judged modalities", m, judged.len()));
    }
    if max_subsets == Some(0) {
        return Err(Error::config("max_subsets", 0, "at least 1"));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(2));
    let mut out = Vec::new();
    for k in 1..m {
        // Only subsets with a judged modality outside them count, so sample among those.
        let eligible = |s: &Subset| (0..m).any(|t| judged[t] && !s.contains(t));
        let total = binomial(m, k);
        let (subsets, of): (Vec<Subset>, usize) = if total <= LISTED_SUBSETS {
            let all: Vec<Subset> = subsets_of_size(m, k, None, &mut rng)
                .into_iter()
                .filter(eligible)
                .collect();
            let of = all.len();
            match max_subsets {
                Some(x) if x < of => {
                    let mut picks = rand::seq::index::sample(&mut rng, of, x).into_vec();
                    picks.sort_unstable();
                    (picks.into_iter().map(|i| all[i]).collect(), of)
                }
                _ => (all, of),
            }
        } else {
            // Too many to list: a sample of all subsets of size k, then the eligible ones.
            let cap = max_subsets.unwrap_or(LISTED_SUBSETS as usize);
            let picks = subsets_of_size(m, k, Some(cap), &mut rng);
            let of = usize::try_from(total).unwrap_or(usize::MAX);
            (picks.into_iter().filter(eligible).collect(), of)
        };
        if subsets.is_empty() {
            continue;
        }
        let mut reports = Vec::with_capacity(subsets.len());
        for s in subsets {
            let targets: Vec<usize> = (0..m).filter(|&t| judged[t] && !s.contains(t)).collect();
            let mut sum = 0.0;
            for &t in &targets {
                sum += measure(s, t)?;
            }
            reports.push(SubsetCoherence {
                given: s.iter().map(|i| names[i].clone()).collect(),
                targets: targets.iter().map(|&t| names[t].clone()).collect(),
                coherence: sum / targets.len() as f64,
            });
        }
        let coherence = reports.iter().map(|r| r.coherence).sum::<f64>() / reports.len() as f64;
        out.push(GivenK {
            k,
            coherence,
            of,
            subsets: reports,
        });
    }
    Ok(out)
}

/// Coherence given `k` of the model on `data` for `k = 1..M-1`, with trained judges (see
/// [`given_k_with`]; each conditional coherence is [`conditional_coherence`]).
///
/// # Errors
/// As [`conditional_coherence`].
pub fn given_k<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    judges: &Judges<D>,
    cfg: &CoherenceConfig,
) -> Result<Vec<GivenK>> {
    given_k_cached(
        model,
        data,
        judges,
        cfg,
        &mut std::collections::HashMap::new(),
    )
}

/// [`given_k`] reusing and filling `cache`: coherence by (subset bits, target).
fn given_k_cached<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &MultimodalDataset,
    judges: &Judges<D>,
    cfg: &CoherenceConfig,
    cache: &mut std::collections::HashMap<(u64, usize), f64>,
) -> Result<Vec<GivenK>> {
    let names: Vec<String> = model
        .modalities()
        .iter()
        .map(|s| s.name().to_string())
        .collect();
    let judged: Vec<bool> = (0..names.len())
        .map(|t| judges.judges.get(t).is_some_and(Option::is_some))
        .collect();
    given_k_with(&names, &judged, cfg.max_subsets, cfg.seed, |s, t| {
        if let Some(&c) = cache.get(&(s.0, t)) {
            return Ok(c);
        }
        let c = conditional_coherence(model, data, judges, s, t, cfg)?.coherence;
        cache.insert((s.0, t), c);
        Ok(c)
    })
}

/// Trains the judges on `train`, then measures every conditional coherence (each subset of
/// the report to each judged modality outside it) on `test`, coherence given `k`
/// ([`given_k`]) and joint coherence.
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
    let mut cache = std::collections::HashMap::new();
    for given in report_subsets(m) {
        for target in 0..m {
            if given.contains(target) || judges.judges[target].is_none() {
                continue;
            }
            let c = conditional_coherence(model, test, &judges, given, target, cfg)?;
            cache.insert((given.0, target), c.coherence);
            conditional.push(c);
        }
    }
    let given_k = given_k_cached(model, test, &judges, cfg, &mut cache)?;
    Ok(CoherenceReport {
        label: cfg.label.clone(),
        classes: judges.classes,
        joint: joint_coherence(model, &judges, cfg)?,
        judges: judges.reports,
        conditional,
        given_k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::likelihood::tests::{linear_model, modalities};
    use crate::eval::probe::tests::with_classes;

    /// Averaging by hand on three modalities, the third without a judge: each subset's mean
    /// over its judged targets, then the mean over subsets; subsets with nothing to judge
    /// outside them are left out, as are sizes without subsets.
    #[test]
    fn given_k_averages_subsets_of_each_size() {
        let names: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let judged = [true, true, false];
        let mut asked = Vec::new();
        let measure =
            |s: Subset, t: usize| -> Result<f64> { Ok(0.1 * t as f64 + 0.01 * s.0 as f64) };
        let r = given_k_with(&names, &judged, None, 0, |s, t| {
            assert!(judged[t] && !s.contains(t), "asked for {t} given {s:?}");
            asked.push((s.0, t));
            measure(s, t)
        })
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].k, r[0].of, r[0].subsets.len()), (1, 3, 3));
        // {a} -> b: 0.11; {b} -> a: 0.02; {c} -> a, b: (0.04 + 0.14) / 2 = 0.09.
        assert!(
            (r[0].coherence - (0.11 + 0.02 + 0.09) / 3.0).abs() < 1e-12,
            "{r:?}"
        );
        assert_eq!(r[0].subsets[2].given, vec!["c"]);
        assert_eq!(r[0].subsets[2].targets, vec!["a", "b"]);
        assert!((r[0].subsets[2].coherence - 0.09).abs() < 1e-12);
        // k = 2: {a, b} has only c outside, which has no judge; {a, c} -> b: 0.15, {b, c} -> a: 0.06.
        assert_eq!((r[1].k, r[1].of), (2, 2));
        assert_eq!(r[1].subsets[0].given, vec!["a", "c"]);
        assert!((r[1].coherence - 0.105).abs() < 1e-12, "{r:?}");
        assert_eq!(asked.len(), 4 + 2);
        // At most one subset per size: a seeded sample, the same for the same seed.
        let one = given_k_with(&names, &judged, Some(1), 4, measure).unwrap();
        assert_eq!(one[0].subsets.len(), 1);
        assert_eq!(one[0].of, 3);
        assert!(r[0].subsets.contains(&one[0].subsets[0]));
        assert_eq!(one[0].coherence, one[0].subsets[0].coherence);
        assert_eq!(
            one,
            given_k_with(&names, &judged, Some(1), 4, measure).unwrap()
        );
        let picks: std::collections::BTreeSet<Vec<String>> = (0..20)
            .map(|seed| {
                given_k_with(&names, &judged, Some(1), seed, measure).unwrap()[0].subsets[0]
                    .given
                    .clone()
            })
            .collect();
        assert!(picks.len() > 1, "the sample depends on the seed");
        // Errors pass through; bad settings are refused.
        let fail = given_k_with(&names, &judged, None, 0, |_, _| {
            Err(Error::config("x", 1, "y"))
        });
        assert!(fail.is_err());
        assert!(given_k_with(&names, &judged, Some(0), 0, measure).is_err());
        assert!(given_k_with(&names, &judged[..2], None, 0, measure).is_err());
    }

    #[test]
    fn subsets_of_size_lists_or_samples() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let all = subsets_of_size(5, 2, None, &mut rng);
        assert_eq!(all.len(), 10);
        assert!(all.iter().all(|s| s.len() == 2));
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
        let some = subsets_of_size(5, 2, Some(4), &mut rng);
        assert_eq!(some.len(), 4);
        assert!(some.iter().all(|s| all.contains(s)));
        assert_eq!(subsets_of_size(40, 20, Some(7), &mut rng).len(), 7);
        assert!(subsets_of_size(3, 4, None, &mut rng).is_empty());
        assert_eq!(binomial(5, 2), 10);
        assert_eq!(binomial(64, 32), 1_832_624_140_942_590_534);
    }

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
        // Given one modality: the mean of a -> b and b -> a.
        assert_eq!(r.given_k.len(), 1);
        let g = &r.given_k[0];
        assert_eq!((g.k, g.of, g.subsets.len()), (1, 2, 2));
        let mean = (r.conditional[0].coherence + r.conditional[1].coherence) / 2.0;
        assert!((g.coherence - mean).abs() < 1e-12, "{g:?}");
        let judges = Judges::train(&model, &train, &test, &cfg).unwrap();
        assert!(conditional_coherence(&model, &test, &judges, Subset::single(0), 0, &cfg).is_err());
        assert!(
            conditional_coherence(&model, &test, &judges, Subset::single(0), 70, &cfg).is_err()
        );
    }
}
