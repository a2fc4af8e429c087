//! Turns a [`DataConfig`] into training and test sets, the model's modalities and the codecs
//! that read and write their files (a manifest through [`crate::manifest`]).

use std::path::Path;

use anyhow::{bail, Context, Result};
use mvae::data::polymnist;
use mvae::data::{AvDigits, AvDigitsConfig, Mnist, PolyMnist, PolyMnistConfig, Split};
use mvae::likelihood::Variance;
use mvae::{Codec, Codecs, Continuous, Image, Label, ModalitySpec, MultimodalDataset};

use crate::config::{DatasetKind, RunConfig};
use crate::manifest::{self, Layout, Manifest};

/// Data ready for training.
pub struct Prepared {
    pub train: MultimodalDataset,
    pub test: MultimodalDataset,
    /// Modalities with the data set's default weights (before `[model]` overrides).
    pub specs: Vec<ModalitySpec>,
    pub codecs: Codecs,
    /// How a manifest's columns were read (one line each), for the user.
    pub notes: Vec<String>,
}

/// Loads the configured data set, splits it and hides the configured shares of modalities in
/// the training set.
pub fn prepare(cfg: &RunConfig) -> Result<Prepared> {
    let dir = cfg.data_dir();
    let d = &cfg.data;
    let mut p = match d.dataset {
        DatasetKind::Mnist => {
            let mnist = dir.join("mnist");
            let train = Mnist::load(&mnist, Split::Train, d.limit)
                .with_context(|| format!("loading MNIST from {}", mnist.display()))?;
            let test = Mnist::load(&mnist, Split::Test, d.test_limit)
                .with_context(|| format!("loading MNIST from {}", mnist.display()))?;
            Prepared {
                train: train.into_dataset()?,
                test: test.into_dataset()?,
                specs: vec![
                    ModalitySpec::new(Image::mnist()),
                    ModalitySpec::new(Label::digits()).weight(50.0),
                ],
                codecs: image_label_codecs(),
                notes: Vec::new(),
            }
        }
        DatasetKind::AvDigits => {
            let av_cfg = AvDigitsConfig {
                seed: cfg.train.seed,
                train_limit: d.limit,
                test_limit: d.test_limit,
                ..AvDigitsConfig::default()
            };
            let av = AvDigits::load(&dir, &av_cfg)
                .with_context(|| format!("loading MNIST + FSDD from {}", dir.display()))?;
            let mut codecs = image_label_codecs();
            codecs.insert(
                "audio".into(),
                Codec::Audio {
                    spectrogram: av_cfg.spectrogram.clone(),
                    normalizer: av.normalizer.clone(),
                },
            );
            Prepared {
                train: av.train,
                test: av.test,
                specs: vec![
                    ModalitySpec::new(Image::mnist()),
                    ModalitySpec::new(Continuous::new(
                        "audio",
                        av_cfg.spectrogram.dim(),
                        Variance::Fixed(1.0),
                    )),
                    ModalitySpec::new(Label::digits()).weight(50.0),
                ],
                codecs,
                notes: Vec::new(),
            }
        }
        DatasetKind::Polymnist => {
            let poly_cfg = PolyMnistConfig {
                seed: cfg.train.seed,
                train_limit: d.limit,
                test_limit: d.test_limit,
            };
            let poly = PolyMnist::load(&dir, &poly_cfg).with_context(|| {
                format!("building PolyMNIST from {}", dir.join("mnist").display())
            })?;
            let side = polymnist::SIDE;
            let mut codecs = Codecs::new();
            let mut specs = Vec::new();
            for name in polymnist::NAMES {
                specs.push(ModalitySpec::new(Image::rgb(name, side, side)));
                codecs.insert(
                    name.into(),
                    Codec::Image {
                        width: side,
                        height: side,
                        channels: polymnist::CHANNELS,
                    },
                );
            }
            Prepared {
                train: poly.train.data,
                test: poly.test.data,
                specs,
                codecs,
                notes: Vec::new(),
            }
        }
        DatasetKind::Manifest => {
            let path = d
                .manifest
                .as_ref()
                .context("dataset manifest needs a file")?;
            own_data(path, cfg)?
        }
    };
    if p.train.is_empty() || p.test.is_empty() {
        bail!(
            "the data has {} training and {} test samples; both must be non-empty",
            p.train.len(),
            p.test.len()
        );
    }
    if cfg.train.binarize {
        // The test set once, with a fixed seed: every evaluation of the run scores the same
        // binary images. Training batches are drawn afresh by the trainer.
        let names = mvae::train::bernoulli_modalities(&p.specs);
        if names.is_empty() {
            bail!("--binarize (or [train] binarize) needs an image modality; this data has none");
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        p.test = p.test.binarized(&names, BINARIZED_TEST_SEED)?;
    }
    if let Some(share) = d.paired {
        // Only the modalities unpair (PolyMNIST's class column stays with every sample).
        p.train = unpaired(&p.train, &p.specs, share, cfg.train.seed ^ 0x7061_6972)?;
    }
    if !d.missing.is_empty() {
        // Only modalities can be hidden (PolyMNIST's class column is not one).
        let names: Vec<&str> = p.specs.iter().map(|s| s.name()).collect();
        for name in d.missing.keys() {
            if !names.contains(&name.as_str()) || p.train.column(name).is_none() {
                bail!(
                    "missing rate for {name:?}, which is not a modality of this data (it has {})",
                    names.join(", ")
                );
            }
        }
        if names
            .iter()
            .all(|n| d.missing.get(*n).is_some_and(|&r| r >= 1.0))
        {
            bail!(
                "--missing (or [data] missing) hides every modality ({}) from every training sample; keep at \
                 least one rate below 1",
                names
                    .iter()
                    .map(|n| format!("{n}={}", d.missing[*n]))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        let rates: Vec<(&str, f64)> = d.missing.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        p.train = p.train.make_partial(&rates, cfg.train.seed ^ 0x6d69_7373)?;
    }
    Ok(p)
}

/// `data` with a `share` of its samples paired and the others keeping one modality of
/// `specs` ([`MultimodalDataset::with_paired_share`]); other columns (a class kept for
/// evaluation) stay.
fn unpaired(
    data: &MultimodalDataset,
    specs: &[ModalitySpec],
    share: f64,
    seed: u64,
) -> Result<MultimodalDataset> {
    let names: Vec<&str> = specs.iter().map(|s| s.name()).collect();
    let extra: Vec<&str> = data
        .names()
        .into_iter()
        .filter(|n| !names.contains(n))
        .collect();
    if extra.is_empty() {
        return Ok(data.with_paired_share(share, seed)?);
    }
    bail!(
        "--paired needs data whose columns are all modalities; this data also has {}",
        extra.join(", ")
    )
}

/// The class column of a data set read with `codecs`: `label` where the data have it (a label
/// modality, or PolyMNIST's class kept beside its images), else the only class modality of
/// the codecs (a manifest's, whatever its name); `None` when there is none, or several.
pub fn class_column(codecs: &Codecs, data: &MultimodalDataset) -> Option<String> {
    if data.column("label").is_some() {
        return Some("label".into());
    }
    let labels: Vec<&String> = codecs
        .iter()
        .filter(|(_, c)| matches!(c, Codec::Label { .. }))
        .map(|(name, _)| name)
        .collect();
    match labels.as_slice() {
        [only] if data.column(only).is_some() => Some((*only).clone()),
        _ => None,
    }
}

/// The seed that binarises a test set once (`--binarize`): fixed, so that runs of any seed
/// are scored on the same binary images.
pub const BINARIZED_TEST_SEED: u64 = 0x6269_6e61;

fn image_label_codecs() -> Codecs {
    let mut c = Codecs::new();
    c.insert("image".into(), Codec::grey_image(28, 28));
    c.insert("label".into(), Codec::label(10));
    c
}

/// A manifest's rows split, its modalities inferred (or declared in `[modalities]`), its
/// normalisers fitted on the training rows, and its values read.
fn own_data(path: &Path, cfg: &RunConfig) -> Result<Prepared> {
    let d = &cfg.data;
    let m = Manifest::read(path)?;
    let (train_rows, test_rows) = m.split(d.test_fraction, cfg.train.seed)?;
    let Layout { mut codecs, notes } = manifest::infer(&m, &cfg.modalities, &d.groups)
        .with_context(|| format!("{}", path.display()))?;
    let all = m.load(&mut codecs, Some(&train_rows))?;
    let keep = |rows: &[usize], limit: Option<usize>| {
        let n = limit.unwrap_or(usize::MAX).min(rows.len());
        all.subset(&rows[..n])
    };
    let train = keep(&train_rows, d.limit)?;
    let test = keep(&test_rows, d.test_limit)?;
    let specs = codecs
        .iter()
        .map(|(name, c)| spec_of(name, c))
        .collect::<Result<_>>()?;
    Ok(Prepared {
        train,
        test,
        specs,
        codecs,
        notes,
    })
}

/// The modality a manifest codec is read into: numbers (Gaussian, learned variance), a class
/// label, a grey or RGB image (Bernoulli pixels), audio (a standardised spectrogram, unit
/// variance as for the spoken digits).
fn spec_of(name: &str, codec: &Codec) -> Result<ModalitySpec> {
    Ok(match codec {
        Codec::Columns { columns, .. } => {
            ModalitySpec::new(Continuous::new(name, columns.len(), Variance::Learned))
        }
        Codec::Label { classes, .. } => ModalitySpec::new(Label::new(name, *classes)),
        Codec::Image {
            width,
            height,
            channels,
        } => match channels {
            3 => ModalitySpec::new(Image::rgb(name, *width, *height)),
            _ => ModalitySpec::new(Image::new(name, *width, *height)),
        },
        Codec::Audio { spectrogram, .. } => ModalitySpec::new(Continuous::new(
            name,
            spectrogram.dim(),
            Variance::Fixed(1.0),
        )),
    })
}
