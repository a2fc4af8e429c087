//! Turns a [`DataConfig`] into training and test sets, the model's modalities and the codecs
//! that read and write their files; also reads CSV tables into data sets for `impute`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use mvae::data::polymnist;
use mvae::data::{
    read_csv, AvDigits, AvDigitsConfig, DatasetBuilder, Mnist, Normalizer, PolyMnist,
    PolyMnistConfig, Split,
};
use mvae::likelihood::Variance;
use mvae::{Codec, Codecs, Continuous, Image, Label, ModalitySpec, MultimodalDataset};

use crate::config::{DatasetKind, RunConfig};

/// Data ready for training.
pub struct Prepared {
    pub train: MultimodalDataset,
    pub test: MultimodalDataset,
    /// Modalities with the data set's default weights (before `[model]` overrides).
    pub specs: Vec<ModalitySpec>,
    pub codecs: Codecs,
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
            }
        }
        DatasetKind::Csv => {
            let path = d.csv.as_ref().context("dataset csv needs a file")?;
            let table = read_csv(path)?;
            let codecs =
                column_codecs(&table, &d.groups).with_context(|| format!("{}", path.display()))?;
            let all = csv_dataset(path, &table, &codecs)?;
            let (test, train) = all.split(d.test_fraction, cfg.train.seed)?;
            let keep = |set: MultimodalDataset, limit: Option<usize>| match limit {
                Some(n) if n < set.len() => set.subset(&(0..n).collect::<Vec<_>>()),
                _ => Ok(set),
            };
            let train = keep(train, d.limit)?;
            let test = keep(test, d.test_limit)?;
            let specs = codecs
                .iter()
                .map(|(name, c)| {
                    ModalitySpec::new(Continuous::new(name, c.dim(), Variance::Learned))
                })
                .collect();
            Prepared {
                train,
                test,
                specs,
                codecs,
            }
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

/// The seed that binarises a test set once (`--binarize`): fixed, so that runs of any seed
/// are scored on the same binary images.
pub const BINARIZED_TEST_SEED: u64 = 0x6269_6e61;

fn image_label_codecs() -> Codecs {
    let mut c = Codecs::new();
    c.insert("image".into(), Codec::grey_image(28, 28));
    c.insert("label".into(), Codec::Label { classes: 10 });
    c
}

/// One `Columns` codec per group (`groups`) and per remaining column, with per-column
/// standardisation fitted on the present cells.
fn column_codecs(
    table: &mvae::data::Table,
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<Codecs> {
    for (j, h) in table.header.iter().enumerate() {
        if let Some(i) = table.header[..j].iter().position(|o| o == h) {
            bail!(
                "the header names column {h:?} twice (columns {} and {})",
                i + 1,
                j + 1
            );
        }
    }
    let mut used = vec![false; table.header.len()];
    let mut codecs = Codecs::new();
    // What made each modality name: `group "x"` or `column "x"`.
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, what: String| -> Result<()> {
        if let Some(first) = origin.get(name) {
            let both = match (first.strip_prefix("column "), what.strip_prefix("column ")) {
                (Some(a), Some(b)) => format!("columns {a} and {b}"),
                _ => format!("{first} and {what}"),
            };
            bail!("{both} would both be modality {name:?}; rename one");
        }
        origin.insert(name.to_string(), what);
        Ok(())
    };
    let index = |col: &str| {
        table
            .header
            .iter()
            .position(|h| h == col)
            .with_context(|| format!("group column {col:?} is not in the CSV header"))
    };
    let mut add = |name: String, cols: Vec<usize>, used: &mut Vec<bool>| -> Result<()> {
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for &c in &cols {
            if used[c] {
                bail!("column {:?} is in two groups", table.header[c]);
            }
            used[c] = true;
            let vals: Vec<f32> = (0..table.values.nrows())
                .filter(|&r| table.present[[r, c]])
                .map(|r| table.values[[r, c]])
                .collect();
            if vals.is_empty() {
                bail!("column {:?} has no values", table.header[c]);
            }
            let fitted = Normalizer::fit(&vals, 1)?;
            mean.push(fitted.mean[0]);
            std.push(fitted.std[0]);
        }
        let columns = cols.iter().map(|&c| table.header[c].clone()).collect();
        codecs.insert(
            name,
            Codec::Columns {
                columns,
                normalizer: Normalizer { mean, std },
            },
        );
        Ok(())
    };
    for (name, cols) in groups {
        let idx = cols.iter().map(|c| index(c)).collect::<Result<Vec<_>>>()?;
        claim(&modality_name(name), format!("group {name:?}"))?;
        add(modality_name(name), idx, &mut used)?;
    }
    for c in 0..table.header.len() {
        if !used[c] {
            let h = &table.header[c];
            claim(&modality_name(h), format!("column {h:?}"))?;
            add(modality_name(h), vec![c], &mut used)?;
        }
    }
    Ok(codecs)
}

/// A CSV column name as a modality name: ASCII letters, digits and `_`.
fn modality_name(col: &str) -> String {
    col.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Refuses a row of `file` in which no modality of `codecs` is present (a group needs all its
/// cells), naming the file and the row's line rather than a sample index.
fn check_rows(file: &Path, table: &mvae::data::Table, codecs: &Codecs) -> Result<()> {
    let col = |c: &str| table.header.iter().position(|h| h == c);
    let groups: Vec<Vec<usize>> = codecs
        .iter()
        .filter_map(|(name, codec)| match codec {
            Codec::Columns { columns, .. } => columns.iter().map(|c| col(c)).collect(),
            Codec::Label { .. } => col(name).map(|c| vec![c]),
            Codec::Image { .. } | Codec::Audio { .. } => None,
        })
        .collect();
    if groups.is_empty() {
        return Ok(());
    }
    for r in 0..table.values.nrows() {
        if groups
            .iter()
            .any(|g| g.iter().all(|&c| table.present[[r, c]]))
        {
            continue;
        }
        let line = table.lines.get(r).copied().unwrap_or(r as u64 + 2);
        let reason = if table.present.row(r).iter().all(|&p| !p) {
            "every cell is empty"
        } else {
            "no modality of the model has all its cells"
        };
        bail!(
            "{}: line {line}: {reason}, so the row has nothing to encode",
            file.display()
        );
    }
    Ok(())
}

/// The table read from `file` as a data set with one standardised column per codec; a group is
/// present in a row only if all of its cells are. A row with no modality present is an error
/// naming its line.
pub fn csv_dataset(
    file: &Path,
    table: &mvae::data::Table,
    codecs: &Codecs,
) -> Result<MultimodalDataset> {
    check_rows(file, table, codecs)?;
    let rows = table.values.nrows();
    let mut b = DatasetBuilder::new();
    for (name, codec) in codecs {
        let Codec::Columns {
            columns,
            normalizer,
        } = codec
        else {
            continue;
        };
        let idx: Vec<usize> =
            columns
                .iter()
                .map(|c| {
                    table.header.iter().position(|h| h == c).with_context(|| {
                        format!("the CSV has no column {c:?}, which the model needs")
                    })
                })
                .collect::<Result<_>>()?;
        let mut values = Vec::with_capacity(rows * idx.len());
        let mut present = Vec::with_capacity(rows);
        for r in 0..rows {
            let here = idx.iter().all(|&c| table.present[[r, c]]);
            present.push(here);
            values.extend(
                idx.iter()
                    .map(|&c| if here { table.values[[r, c]] } else { 0.0 }),
            );
        }
        for (r, row) in values.chunks(idx.len()).enumerate() {
            if let Some((k, z)) = normalizer.outlier(row).filter(|_| present[r]) {
                let line = table.lines.get(r).copied().unwrap_or(r as u64 + 2);
                bail!(
                    "{}: line {line}: column {}: {}",
                    file.display(),
                    columns[k],
                    outlier_reason(row[k], z)
                );
            }
        }
        normalizer.apply(&mut values)?;
        for (v, p) in values.chunks_mut(idx.len()).zip(&present) {
            if !p {
                v.fill(0.0);
            }
        }
        b = b.column_with_mask(name, idx.len(), values, present);
    }
    Ok(b.build()?)
}

/// Why a value `v`, `z` standard deviations from its column's mean in the training data, is
/// refused ([`mvae::data::normalizer::MAX_STANDARD`]).
pub fn outlier_reason(v: f32, z: f64) -> String {
    format!(
        "{v} lies {z:.1e} standard deviations from the column's mean in the training data (at \
         most {:e}); the model cannot encode it",
        mvae::data::normalizer::MAX_STANDARD
    )
}
