//! The run configuration: a TOML file (`--config`) with `[data]`, `[model]` and `[train]`
//! sections, overlaid by command-line flags. The resolved configuration is written into the run
//! directory as `config.toml`, which is what `--resume` and `eval` read back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::model::ContrastiveInput;
use mvae::objective::Estimator;
use mvae::similarity::Similarity;
use mvae::{Activation, AggregationKind};
use serde::{Deserialize, Serialize};

/// Which data set a run trains on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// MNIST images + digit labels (`DIR/mnist`).
    Mnist,
    /// MNIST images + spoken digits (FSDD) + labels (`DIR/mnist`, `DIR/fsdd`). Written
    /// `av_digits` in TOML; `av-digits`, as on the command line, is read too.
    #[serde(alias = "av-digits")]
    AvDigits,
    /// PolyMNIST built from MNIST (`DIR/mnist`): five RGB images m0..m4 of the same digit
    /// on different backgrounds; the class is kept for evaluation only.
    Polymnist,
    /// A manifest (`--manifest`): a CSV or JSON Lines file, one row per sample, one column
    /// per modality (numbers, class words, paths to images and WAV files); empty cells are
    /// missing. Written `manifest` in TOML; `csv`, its former name, is read too.
    #[serde(alias = "csv")]
    #[value(alias = "csv")]
    Manifest,
}

/// `[data]`: where the data comes from and how it is split and thinned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub dataset: DatasetKind,
    /// Folder holding `mnist/` (and `fsdd/`); default `$MVAE_DATA`, else the bundled sample.
    /// Absolute in a run's `config.toml` ([`RunConfig::absolute_paths`]).
    pub dir: Option<PathBuf>,
    /// The manifest file (dataset `manifest`); absolute in a run's `config.toml`. Written
    /// `manifest`; `csv`, its former name, is read too.
    #[serde(alias = "csv")]
    pub manifest: Option<PathBuf>,
    /// Numeric manifest columns grouped into modalities (`name = ["col", ...]`); other
    /// columns are one modality each.
    pub groups: BTreeMap<String, Vec<String>>,
    /// Training samples kept (the first N).
    pub limit: Option<usize>,
    /// Test samples kept (the first N).
    pub test_limit: Option<usize>,
    /// Share of CSV rows held out for testing.
    pub test_fraction: f64,
    /// Share of training samples from which each named modality is hidden.
    pub missing: BTreeMap<String, f64>,
    /// Share of training samples that keep every modality (weak supervision); each of the
    /// others keeps one, chosen at random. None: all paired.
    pub paired: Option<f64>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::Mnist,
            dir: None,
            manifest: None,
            groups: BTreeMap::new(),
            limit: None,
            test_limit: None,
            test_fraction: 0.2,
            missing: BTreeMap::new(),
            paired: None,
        }
    }
}

/// `[model]`: the networks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// Latent size (one of [`crate::LATENT_SIZES`]); by default 64 for `mnist` (the paper), 32
    /// for `polymnist` (the shared size of the MMVAE+ recipe; five modalities of one kind) and 8
    /// otherwise (with a wide latent, the experts of two rich modalities such as images and
    /// sound keep their content in separate dimensions and cross-generation fails).
    pub latent: Option<usize>,
    /// Encoder hidden sizes, input side first; by default `[512, 512]` (the paper's), and
    /// `[64, 64]` for a table (a manifest of numbers and classes only).
    pub encoder_hidden: Option<Vec<usize>>,
    /// Decoder hidden sizes, latent side first; by default `[512, 512, 512]`, and `[64, 64]`
    /// for a table.
    pub decoder_hidden: Option<Vec<usize>>,
    /// Hidden activation.
    pub activation: Activation,
    /// How the experts of the present modalities are combined; by default `"poe"`, and
    /// `"mmvae-plus"` for `av_digits` (the best recipe measured there, `docs/results.md`).
    pub aggregation: Option<AggregationKind>,
    /// Size of each modality's private latent, for `mmvae-plus` (by default `latent / (2 M)`
    /// for `M` modalities, at least 1; the shared part is `latent - M private`).
    pub private: Option<usize>,
    /// For `mopoe`, the most subsets mixed per sample (default 1,023: every subset of up to
    /// 10 modalities); a sample with more modalities mixes a seeded uniform sample of this
    /// many subsets, a new one every step.
    pub components: Option<usize>,
    /// Weight of the contrastive term (CLIP's symmetric InfoNCE between the modalities'
    /// posterior means, with a learnable temperature); 0 or absent = off.
    pub contrastive: Option<f32>,
    /// How the contrastive term compares two means: "cosine" (CLIP's, the default) or
    /// "euclidean" (minus half the squared distance).
    pub contrastive_similarity: Option<Similarity>,
    /// The contrastive term's temperature at the start of training (learned from there; by
    /// default 0.07 for "cosine", as CLIP, and 1 for "euclidean").
    pub contrastive_temperature: Option<f32>,
    /// Hold the contrastive term's temperature at its start instead of learning it.
    pub contrastive_hold_temperature: bool,
    /// What the contrastive term compares of each posterior: "draw" (a reparameterised
    /// sample, the default) or "mean".
    pub contrastive_input: Option<ContrastiveInput>,
    /// Likelihood weights by modality name (default 1; `label` 50 as in the paper).
    pub weights: BTreeMap<String, f32>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            latent: None,
            encoder_hidden: None,
            decoder_hidden: None,
            activation: Activation::Swish,
            aggregation: None,
            private: None,
            components: None,
            contrastive: None,
            contrastive_similarity: None,
            contrastive_temperature: None,
            contrastive_hold_temperature: false,
            contrastive_input: None,
            weights: BTreeMap::new(),
        }
    }
}

/// `[train]`: the optimisation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Passes over the training set (in total, counting resumed epochs).
    pub epochs: usize,
    /// Samples per step; by default 100, and 16 for a table (a few hundred rows still make
    /// many steps an epoch).
    pub batch_size: Option<usize>,
    /// Adam's learning rate.
    pub lr: f64,
    /// Final KL weight.
    pub beta: f32,
    /// Epochs over which the KL weight rises linearly from 0 (0 = no annealing).
    pub anneal_epochs: Option<f64>,
    /// Random subsets of size 2..M-1 scored per step, besides joint and single modalities.
    pub subsets: usize,
    /// Latent samples per data point and term.
    pub samples: usize,
    /// How a term's samples make its bound: elbo, iwae or dreg.
    pub estimator: Estimator,
    /// Seed of weights, split, shuffling, hidden modalities and noise.
    pub seed: u64,
    /// Dynamic binarisation of the image modalities: fresh Bernoulli pixels every training
    /// batch, the test set binarised once with a fixed seed.
    pub binarize: bool,
    /// Keep the model of the epoch with the lowest test loss after the KL warm-up in
    /// best.safetensors.
    pub keep_best: bool,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: None,
            lr: 1e-3,
            beta: 1.0,
            anneal_epochs: None,
            subsets: 0,
            samples: 1,
            estimator: Estimator::Elbo,
            seed: 0,
            binarize: false,
            keep_best: false,
        }
    }
}

/// A whole run's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    /// Data.
    pub data: DataConfig,
    /// How a manifest's columns are read, by modality name, where inference should not
    /// decide (kind, image size and colour, audio settings, grouped numeric columns).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub modalities: BTreeMap<String, crate::manifest::ModalityDecl>,
    /// Model.
    pub model: ModelSection,
    /// Training.
    pub train: TrainSection,
}

impl RunConfig {
    /// Reads a TOML file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config {} is not valid", path.display()))
    }

    /// Writes it as TOML, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self)?;
        mvae::data::atomic::write_bytes(path, text.as_bytes())?;
        Ok(())
    }

    /// The folder holding the data sets: the config's, else `$MVAE_DATA`, else the sample
    /// bundled with the sources.
    pub fn data_dir(&self) -> PathBuf {
        self.data
            .dir
            .clone()
            .or_else(|| std::env::var_os("MVAE_DATA").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data"))
    }

    /// The latent size: the configured one, else the data set's default (`av_digits`: 64 with
    /// its default aggregation; with the product of experts it needs 8, see `docs/results.md`).
    pub fn latent(&self) -> usize {
        self.model.latent.unwrap_or(match self.data.dataset {
            DatasetKind::Mnist => 64,
            DatasetKind::AvDigits if self.aggregation() != AggregationKind::ProductOfExperts => 64,
            DatasetKind::Polymnist => 32,
            DatasetKind::AvDigits | DatasetKind::Manifest => 8,
        })
    }

    /// How experts are combined: the configured way, else the data set's default (`av_digits`:
    /// MMVAE+, whose cross-modal coherence at latent 64 meets the goals the product of experts
    /// misses; a table: MoPoE, which decodes every column from every subset of the others, as
    /// imputation does; the product of experts otherwise).
    pub fn aggregation(&self) -> AggregationKind {
        self.model
            .aggregation
            .unwrap_or_else(|| self.default_aggregation(self.is_table()))
    }

    fn default_aggregation(&self, table: bool) -> AggregationKind {
        match self.data.dataset {
            DatasetKind::AvDigits => AggregationKind::MmvaePlus,
            DatasetKind::Manifest if table => AggregationKind::MixtureOfProductsOfExperts,
            DatasetKind::Mnist | DatasetKind::Manifest | DatasetKind::Polymnist => {
                AggregationKind::ProductOfExperts
            }
        }
    }

    /// Epochs of KL annealing: the configured number, else the data set's default
    /// (`av_digits`: 2, the measured recipe; a table: half the epochs; 0 otherwise).
    pub fn anneal_epochs(&self) -> f64 {
        self.train
            .anneal_epochs
            .unwrap_or_else(|| self.default_anneal_epochs(self.is_table()))
    }

    fn default_anneal_epochs(&self, table: bool) -> f64 {
        match self.data.dataset {
            DatasetKind::AvDigits => 2.0,
            DatasetKind::Manifest if table => self.train.epochs as f64 / 2.0,
            DatasetKind::Mnist | DatasetKind::Manifest | DatasetKind::Polymnist => 0.0,
        }
    }

    /// Encoder hidden sizes: the configured ones, else `[64, 64]` for a table and
    /// `[512, 512]` otherwise.
    pub fn encoder_hidden(&self) -> Vec<usize> {
        self.model
            .encoder_hidden
            .clone()
            .unwrap_or_else(|| default_encoder_hidden(self.is_table()))
    }

    /// Decoder hidden sizes: the configured ones, else `[64, 64]` for a table and
    /// `[512, 512, 512]` otherwise.
    pub fn decoder_hidden(&self) -> Vec<usize> {
        self.model
            .decoder_hidden
            .clone()
            .unwrap_or_else(|| default_decoder_hidden(self.is_table()))
    }

    /// Samples per step: the configured number, else 16 for a table and 100 otherwise.
    pub fn batch_size(&self) -> usize {
        self.train
            .batch_size
            .unwrap_or_else(|| default_batch_size(self.is_table()))
    }

    /// Whether the run trains on a table: a manifest whose modalities are all numbers or
    /// classes (the table recipe: MoPoE, small layers, small batches, KL annealed over half
    /// the epochs, which keeps the posterior from collapsing on a few hundred rows). A manifest
    /// that cannot be read counts as no table; loading it reports why.
    pub fn is_table(&self) -> bool {
        use crate::manifest::{infer, Manifest};
        if self.data.dataset != DatasetKind::Manifest {
            return false;
        }
        self.data
            .manifest
            .as_deref()
            .and_then(|p| Manifest::read(p).ok())
            .and_then(|m| infer(&m, &self.modalities, &self.data.groups).ok())
            .is_some_and(|layout| {
                layout
                    .codecs
                    .values()
                    .all(|c| matches!(c, mvae::Codec::Columns { .. } | mvae::Codec::Label { .. }))
            })
    }

    /// Makes the CSV file and the data folder absolute (resolving links), so that the run's
    /// `config.toml` finds them from any working folder (`--resume`, `eval`); a path that does
    /// not exist is left as given, for the loader to name.
    pub fn absolute_paths(&mut self) {
        for path in [&mut self.data.manifest, &mut self.data.dir]
            .into_iter()
            .flatten()
        {
            if let Ok(abs) = std::fs::canonicalize(&*path) {
                *path = abs;
            }
        }
    }

    /// Writes the data set's defaults into the config, so that the run's `config.toml` is
    /// the resolved configuration (and a resumed run keeps them if defaults change).
    pub fn resolve_defaults(&mut self) {
        // The data folder too: a run started with `$MVAE_DATA` and resumed without it would
        // otherwise train on the bundled sample.
        if self.data.dataset != DatasetKind::Manifest {
            let dir = self.data_dir();
            self.data.dir = Some(std::fs::canonicalize(&dir).unwrap_or(dir));
        }
        // Whether this is a table reads the manifest: once, for every default that asks.
        let table = self.is_table();
        let (m, t) = (&mut self.model, &mut self.train);
        m.encoder_hidden
            .get_or_insert_with(|| default_encoder_hidden(table));
        m.decoder_hidden
            .get_or_insert_with(|| default_decoder_hidden(table));
        t.batch_size
            .get_or_insert_with(|| default_batch_size(table));
        self.model.aggregation = Some(
            self.model
                .aggregation
                .unwrap_or_else(|| self.default_aggregation(table)),
        );
        self.train.anneal_epochs = Some(
            self.train
                .anneal_epochs
                .unwrap_or_else(|| self.default_anneal_epochs(table)),
        );
        self.model.latent = Some(self.latent());
    }

    /// Checks what the library does not check itself.
    pub fn validate(&self) -> Result<()> {
        if !crate::LATENT_SIZES.contains(&self.latent()) {
            bail!(
                "latent size {} is not built into this tool; choose one of {:?}",
                self.latent(),
                crate::LATENT_SIZES
            );
        }
        if !(0.0..1.0).contains(&self.data.test_fraction) || self.data.test_fraction == 0.0 {
            bail!(
                "test_fraction {} must be in (0, 1)",
                self.data.test_fraction
            );
        }
        for (name, rate) in &self.data.missing {
            if !(0.0..=1.0).contains(rate) {
                bail!("missing rate {rate} of {name} must be in [0, 1]");
            }
        }
        if let Some(p) = self.data.paired.filter(|p| !(0.0..=1.0).contains(p)) {
            bail!("paired share {p} must be in [0, 1]");
        }
        let anneal = self.anneal_epochs();
        if !(anneal >= 0.0 && anneal.is_finite()) {
            bail!("anneal_epochs {anneal} must be >= 0");
        }
        if self.data.dataset == DatasetKind::Manifest && self.data.manifest.is_none() {
            bail!("dataset manifest needs a file: --manifest FILE or [data] manifest = \"FILE\"");
        }
        Ok(())
    }
}

/// The table recipe's layer sizes and batch size against the others' (see
/// [`RunConfig::is_table`]).
fn default_encoder_hidden(table: bool) -> Vec<usize> {
    if table {
        vec![64, 64]
    } else {
        vec![512, 512]
    }
}

fn default_decoder_hidden(table: bool) -> Vec<usize> {
    if table {
        vec![64, 64]
    } else {
        vec![512, 512, 512]
    }
}

fn default_batch_size(table: bool) -> usize {
    if table {
        16
    } else {
        100
    }
}

/// Parses `NAME=VALUE` flag values.
pub fn key_value<T: std::str::FromStr>(s: &str) -> Result<(String, T), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {s:?}"))?;
    let v = v
        .parse()
        .map_err(|_| format!("{v:?} is not a valid value for {k}"))?;
    Ok((k.trim().to_string(), v))
}

/// Parses `NAME=COL,COL` flag values.
pub fn group(s: &str) -> Result<(String, Vec<String>), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=COL,COL, got {s:?}"))?;
    Ok((
        k.trim().to_string(),
        v.split(',').map(|c| c.trim().to_string()).collect(),
    ))
}

/// Parses comma-separated sizes such as `512,512`.
pub fn sizes(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| {
            p.trim()
                .parse()
                .map_err(|_| format!("{p:?} is not a layer size"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latent_defaults_by_data_set_and_explicit_wins() {
        let mut cfg = RunConfig::default();
        assert_eq!(cfg.latent(), 64);
        cfg.data.dataset = DatasetKind::AvDigits;
        assert_eq!(cfg.latent(), 64, "av_digits with its default, MMVAE+");
        assert_eq!(cfg.aggregation(), AggregationKind::MmvaePlus);
        assert_eq!(cfg.anneal_epochs(), 2.0);
        cfg.model.aggregation = Some(AggregationKind::ProductOfExperts);
        assert_eq!(cfg.latent(), 8, "av_digits with the product of experts");
        cfg.resolve_defaults();
        assert_eq!(
            (
                cfg.model.latent,
                cfg.model.aggregation,
                cfg.train.anneal_epochs
            ),
            (Some(8), Some(AggregationKind::ProductOfExperts), Some(2.0))
        );
        cfg.model.latent = None;
        cfg.model.aggregation = None;
        cfg.data.dataset = DatasetKind::Polymnist;
        assert_eq!(cfg.latent(), 32);
        assert!(cfg.validate().is_ok());
        cfg.model.latent = Some(16);
        assert_eq!(cfg.latent(), 16);
        cfg.model.latent = Some(20);
        assert!(
            cfg.validate().is_ok(),
            "20, the MVAE paper's weak-supervision size"
        );
        cfg.model.latent = Some(24);
        assert!(cfg.validate().is_err(), "24 is not compiled in");
    }

    #[test]
    fn toml_round_trips_and_refuses_unknown_keys() {
        let cfg: RunConfig = toml::from_str(
            "[data]\ndataset = \"av_digits\"\nmissing = { label = 0.5 }\n[train]\nepochs = 3\n",
        )
        .unwrap();
        assert_eq!(cfg.data.dataset, DatasetKind::AvDigits);
        assert_eq!(cfg.data.missing["label"], 0.5);
        assert_eq!((cfg.train.epochs, cfg.latent()), (3, 64));
        let back: RunConfig = toml::from_str(&toml::to_string_pretty(&cfg).unwrap()).unwrap();
        assert_eq!(back, cfg);
        assert!(toml::from_str::<RunConfig>("[train]\nepoch = 3\n").is_err());
        assert!(toml::from_str::<RunConfig>("[data]\ndataset = \"cifar\"\n").is_err());
        // The command line's spelling is read too, and the canonical one written.
        let dashed: RunConfig = toml::from_str("[data]\ndataset = \"av-digits\"\n").unwrap();
        assert_eq!(dashed.data.dataset, DatasetKind::AvDigits);
        assert!(toml::to_string_pretty(&dashed)
            .unwrap()
            .contains("dataset = \"av_digits\""));
        let poly: RunConfig = toml::from_str("[data]\ndataset = \"polymnist\"\n").unwrap();
        assert_eq!(poly.data.dataset, DatasetKind::Polymnist);
    }

    #[test]
    fn flag_parsers_name_the_problem() {
        assert_eq!(
            key_value::<f64>("label=0.5").unwrap(),
            ("label".into(), 0.5)
        );
        assert!(key_value::<f64>("label")
            .unwrap_err()
            .contains("NAME=VALUE"));
        assert!(key_value::<f64>("label=x").unwrap_err().contains("label"));
        assert_eq!(sizes("512, 256").unwrap(), vec![512, 256]);
        assert!(sizes("512,a").is_err());
        assert_eq!(group("xy=x,y").unwrap().1, vec!["x", "y"]);
    }
}
