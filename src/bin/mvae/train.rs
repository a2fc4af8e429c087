//! `mvae train`: trains from a TOML config and/or flags into a run directory, resumable.
//!
//! A run directory holds `config.toml` (the resolved configuration), `checkpoint.safetensors`
//! (a training checkpoint, rewritten atomically after every epoch), `metrics.jsonl` (one JSON
//! line per epoch: the loss terms and the test ELBO) and `pictures/`. While `train` writes it,
//! the folder is locked ([`RunLock`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::aggregation::SubsetDraw;
use mvae::model::ContrastiveInput;
use mvae::objective::Estimator;
use mvae::similarity::Similarity;
use mvae::train::EpochMetrics;
use mvae::{
    eval, AdamSettings, AggregationKind, Backend, ModelConfig, Mvae, ObjectiveConfig, TrainConfig,
    Trainer,
};

use crate::config::{self, DatasetKind, RunConfig};
use crate::output::{bar, report, RunLock};
use crate::{data, pictures, Common};

/// The training checkpoint in a run directory.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The model of the epoch with the lowest test loss after the KL warm-up (`--keep-best`).
pub const BEST: &str = "best.safetensors";
/// The resolved configuration in a run directory.
pub const CONFIG: &str = "config.toml";
/// The per-epoch metrics in a run directory.
pub const METRICS: &str = "metrics.jsonl";

/// Comma-separated layer sizes.
#[derive(Clone, Debug)]
pub struct Sizes(pub Vec<usize>);

impl std::str::FromStr for Sizes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        config::sizes(s).map(Sizes)
    }
}

#[derive(clap::Args)]
#[command(
    after_help = "Flags override the --config file, which overrides the defaults (the MVAE \
paper's MNIST recipe: latent 64 (32 for polymnist, 8 for av-digits and manifests), encoders 512-512, decoders 512-512-512, Swish, label weight 50, \
Adam 1e-3, batch 100). Example config:\n\n  [data]\n  dataset = \"mnist\"\n  missing = { label = 0.5 }\n  \
[model]\n  latent = 32\n  [train]\n  epochs = 20\n  anneal_epochs = 5\n\n\
Data sets: mnist (image + label), av-digits (image + spoken digit + label), polymnist (five \
RGB images m0..m4 of one digit, each on its own background texture, built from MNIST; the class \
is kept for evaluation only), manifest (your own data: --manifest FILE; csv is its former \
name).\n\n\
Resume an interrupted or finished run with more epochs: mvae train --resume RUN --epochs 30 \
(the run keeps its own settings: other flags are refused). A run directory is locked while a \
process writes it (a second train into it is refused; the lock of a killed process is taken \
over), and gets its config.toml only once the data and the model are known good."
)]
pub struct TrainArgs {
    /// TOML configuration with [data], [model] and [train] sections.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Continue the run in this directory (its config.toml and checkpoint) up to --epochs; it
    /// takes only --epochs, --data and --no-pictures besides (other flags are refused).
    #[arg(long, value_name = "RUN", conflicts_with = "config")]
    resume: Option<PathBuf>,
    /// The run directory to create (default runs/<dataset>-<seed>).
    #[arg(long, short, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Reuse a non-empty --out directory (its files are replaced).
    #[arg(long)]
    force: bool,
    /// The data set.
    #[arg(long, value_enum)]
    dataset: Option<DatasetKind>,
    /// Folder holding mnist/ and fsdd/ (default $MVAE_DATA, else the bundled sample); stored
    /// absolute in the run's config.toml.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Your own data: a manifest, a CSV file with a header (or JSON Lines, `.jsonl`), one row
    /// per sample and one column per modality: numbers, class words, or paths to images and
    /// WAV files relative to the file's folder; an empty cell is a missing modality; an
    /// optional `split` column (train/test). Each column's kind is inferred and printed
    /// (declare it in the config's [modalities] table). Stored absolute in the run's
    /// config.toml, so that --resume and eval work from any folder.
    #[arg(long, value_name = "FILE", alias = "csv")]
    manifest: Option<PathBuf>,
    /// Group numeric manifest columns into one modality, e.g. `--group xy=x,y` (repeatable).
    #[arg(long, value_name = "NAME=COL,COL", value_parser = config::group)]
    group: Vec<(String, Vec<String>)>,
    /// Keep only the first N training samples.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Keep only the first N test samples.
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
    /// Hide a modality from this share of training samples, e.g. `--missing label=0.5`.
    #[arg(long, value_name = "NAME=RATE", value_parser = config::key_value::<f64>)]
    missing: Vec<(String, f64)>,
    /// Weak supervision: keep every modality in this share of the training samples (seeded)
    /// and only one, chosen at random, in each of the others, e.g. `--paired 0.1` (the MVAE
    /// paper's curve: 0.01 to 1). Applied before --missing.
    #[arg(long, value_name = "SHARE")]
    paired: Option<f64>,
    /// Latent size (2, 8, 16, 20, 32, 64 or 128; default 64 for mnist and av-digits, 32 for
    /// polymnist, 8 for csv and for av-digits with --aggregation poe).
    #[arg(long, value_name = "N")]
    latent: Option<usize>,
    /// Encoder hidden sizes, e.g. 512,512.
    #[arg(long, value_name = "SIZES")]
    encoder_hidden: Option<Sizes>,
    /// Decoder hidden sizes, e.g. 512,512,512.
    #[arg(long, value_name = "SIZES")]
    decoder_hidden: Option<Sizes>,
    /// How the experts of the present modalities are combined, and with it the objective: poe
    /// (product of experts with the prior, MVAE's sub-sampled ELBO; the default, except for
    /// av-digits, whose default is mmvae-plus), moe (mixture
    /// of experts, MMVAE: every modality's sample decoded into every modality), mopoe (mixture
    /// of the products of experts of every subset, MoPoE), mmvae-plus (MMVAE+: a shared latent
    /// combined as moe plus a private latent per modality with a learned prior).
    #[arg(long, value_name = "KIND")]
    aggregation: Option<AggregationKind>,
    /// With mmvae-plus, the size of each modality's private latent (default latent / (2 M) for
    /// M modalities, at least 1); `--latent` is the whole latent, shared part first, so the
    /// shared part is latent - M x private.
    #[arg(long, value_name = "P")]
    private: Option<usize>,
    /// With mopoe, the most subsets mixed per sample (default 1023: every subset of up to 10
    /// modalities); with more modalities, each sample mixes a seeded uniform sample of this
    /// many subsets of the modalities it has, a new one every step (fewer: faster steps).
    #[arg(long, value_name = "N")]
    components: Option<usize>,
    /// Weight W of a contrastive term added to the loss: CLIP's symmetric InfoNCE between the
    /// posterior means of each modality alone, for every pair of modalities a sample has, with
    /// a learnable temperature (from 0.07 as CLIP; from 1 with `--contrastive-similarity
    /// euclidean`). Pulls a sample's modalities together in the latent space and pushes the
    /// rest of the batch away, for search across modalities (`mvae search`) and coherence.
    /// 0 = off (the default).
    #[arg(long, value_name = "W")]
    contrastive: Option<f32>,
    /// How the contrastive term compares two posterior means: cosine (CLIP's; the default) or
    /// euclidean (minus half the squared distance, which also pulls a pair to the same place,
    /// what decoding one modality from another's posterior needs).
    #[arg(long, value_name = "KIND")]
    contrastive_similarity: Option<Similarity>,
    /// The contrastive term's temperature at the start of training, learned from there
    /// (default 0.07 with cosine, as CLIP; 1 with euclidean). A softer start (1) pulls a
    /// pair's means closer together, which decoding one modality from another needs
    /// (docs/results.md).
    #[arg(long, value_name = "T")]
    contrastive_temperature: Option<f32>,
    /// Hold the contrastive term's temperature at its start instead of learning it (learned,
    /// it sharpens as training goes on and the pull between a pair's means weakens; held at 1
    /// the product of experts generates across modalities better: docs/results.md).
    #[arg(long)]
    contrastive_hold_temperature: bool,
    /// What the contrastive term compares of each modality's posterior: draw (a
    /// reparameterised sample; the default: the pair must agree where the posteriors put
    /// their samples, which generating one modality from another's draws needs) or mean (the
    /// embedding `mvae embed` exports; the posterior's spread is free).
    #[arg(long, value_name = "KIND")]
    contrastive_input: Option<ContrastiveInput>,
    /// Likelihood weight of a modality, e.g. `--weight label=50` (repeatable).
    #[arg(long, value_name = "NAME=W", value_parser = config::key_value::<f32>)]
    weight: Vec<(String, f32)>,
    /// Total epochs (counting those of a resumed run).
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Samples per step.
    #[arg(long, value_name = "N")]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long, value_name = "LR")]
    lr: Option<f64>,
    /// Final KL weight beta.
    #[arg(long, value_name = "B")]
    beta: Option<f32>,
    /// Epochs over which beta rises linearly from 0 (KL annealing; default 0, 2 for av-digits).
    #[arg(long, value_name = "E")]
    anneal_epochs: Option<f64>,
    /// Random subsets (size 2..M-1) scored per step besides joint and single modalities.
    #[arg(long, value_name = "K")]
    subsets: Option<usize>,
    /// Latent samples per data point and term (default 1; each multiplies a step's decoder
    /// work). With moe, MMVAE's recipe is `--samples 10 --estimator dreg`.
    #[arg(long, value_name = "K")]
    samples: Option<usize>,
    /// How a term's samples make its bound: elbo (their mean; the default), iwae (the
    /// importance-weighted bound), dreg (the same bound with doubly reparameterised gradients,
    /// one extra forward pass per step).
    #[arg(long, value_name = "NAME")]
    estimator: Option<Estimator>,
    /// Seed of weights, split, shuffling, hidden modalities and noise.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Dynamic binarisation, as papers train MNIST: each batch's image pixels become fresh
    /// Bernoulli draws (1 with the grey level's probability) from the run's seeded random
    /// state; the test set is binarised once with a fixed seed, so `eval` scores the same
    /// binary test images. Likelihoods then compare with published ones (grey levels as
    /// Bernoulli targets carry each grey pixel's entropy).
    #[arg(long)]
    binarize: bool,
    /// Keep the model of the epoch with the lowest test loss (MVAE's evaluation loss, logged
    /// per epoch as test_loss) among the epochs after the KL warm-up, from warm-up + 2 on as
    /// MultiVae chooses, in best.safetensors beside the checkpoint (for comparison with
    /// results chosen that way: it selects on the test set).
    #[arg(long)]
    keep_best: bool,
    /// Do not draw pictures at the end.
    #[arg(long)]
    no_pictures: bool,
}

impl TrainArgs {
    /// The flags given that `--resume` would ignore (the run keeps its own configuration;
    /// only `--epochs`, `--data` and `--no-pictures` apply to a resumed run).
    fn ignored_by_resume(&self) -> Vec<&'static str> {
        let given = [
            ("--config", self.config.is_some()),
            ("--out", self.out.is_some()),
            ("--force", self.force),
            ("--dataset", self.dataset.is_some()),
            ("--manifest", self.manifest.is_some()),
            ("--group", !self.group.is_empty()),
            ("--limit", self.limit.is_some()),
            ("--test-limit", self.test_limit.is_some()),
            ("--missing", !self.missing.is_empty()),
            ("--paired", self.paired.is_some()),
            ("--latent", self.latent.is_some()),
            ("--encoder-hidden", self.encoder_hidden.is_some()),
            ("--decoder-hidden", self.decoder_hidden.is_some()),
            ("--aggregation", self.aggregation.is_some()),
            ("--private", self.private.is_some()),
            ("--components", self.components.is_some()),
            ("--contrastive", self.contrastive.is_some()),
            (
                "--contrastive-similarity",
                self.contrastive_similarity.is_some(),
            ),
            (
                "--contrastive-temperature",
                self.contrastive_temperature.is_some(),
            ),
            (
                "--contrastive-hold-temperature",
                self.contrastive_hold_temperature,
            ),
            ("--contrastive-input", self.contrastive_input.is_some()),
            ("--weight", !self.weight.is_empty()),
            ("--batch-size", self.batch_size.is_some()),
            ("--lr", self.lr.is_some()),
            ("--beta", self.beta.is_some()),
            ("--anneal-epochs", self.anneal_epochs.is_some()),
            ("--subsets", self.subsets.is_some()),
            ("--samples", self.samples.is_some()),
            ("--estimator", self.estimator.is_some()),
            ("--seed", self.seed.is_some()),
            ("--binarize", self.binarize),
            ("--keep-best", self.keep_best),
        ];
        given
            .into_iter()
            .filter_map(|(flag, on)| on.then_some(flag))
            .collect()
    }

    /// Applies the flags over `cfg`.
    fn overlay(&self, cfg: &mut RunConfig) {
        let d = &mut cfg.data;
        if let Some(v) = self.dataset {
            d.dataset = v;
        }
        if let Some(v) = &self.data {
            d.dir = Some(v.clone());
        }
        if let Some(v) = &self.manifest {
            d.manifest = Some(v.clone());
            if self.dataset.is_none() {
                d.dataset = DatasetKind::Manifest;
            }
        }
        d.groups.extend(self.group.iter().cloned());
        d.limit = self.limit.or(d.limit);
        d.test_limit = self.test_limit.or(d.test_limit);
        d.missing.extend(self.missing.iter().cloned());
        d.paired = self.paired.or(d.paired);
        let m = &mut cfg.model;
        m.latent = self.latent.or(m.latent);
        if let Some(s) = &self.encoder_hidden {
            m.encoder_hidden = Some(s.0.clone());
        }
        if let Some(s) = &self.decoder_hidden {
            m.decoder_hidden = Some(s.0.clone());
        }
        m.aggregation = self.aggregation.or(m.aggregation);
        m.private = self.private.or(m.private);
        m.components = self.components.or(m.components);
        m.contrastive = self.contrastive.or(m.contrastive);
        m.contrastive_similarity = self.contrastive_similarity.or(m.contrastive_similarity);
        m.contrastive_temperature = self.contrastive_temperature.or(m.contrastive_temperature);
        m.contrastive_hold_temperature |= self.contrastive_hold_temperature;
        m.contrastive_input = self.contrastive_input.or(m.contrastive_input);
        m.weights.extend(self.weight.iter().cloned());
        let t = &mut cfg.train;
        t.epochs = self.epochs.unwrap_or(t.epochs);
        t.batch_size = self.batch_size.or(t.batch_size);
        t.lr = self.lr.unwrap_or(t.lr);
        t.beta = self.beta.unwrap_or(t.beta);
        t.anneal_epochs = self.anneal_epochs.or(t.anneal_epochs);
        t.subsets = self.subsets.unwrap_or(t.subsets);
        t.samples = self.samples.unwrap_or(t.samples);
        t.estimator = self.estimator.unwrap_or(t.estimator);
        t.seed = self.seed.unwrap_or(t.seed);
        t.binarize |= self.binarize;
        t.keep_best |= self.keep_best;
    }
}

/// What `train` and `eval` write into a run directory. `train --force` removes these from an
/// old run before it starts, so no result of the old run stays beside the new one; other files
/// in the folder are left alone.
pub const RUN_FILES: [&str; 6] = [
    CONFIG,
    CHECKPOINT,
    BEST,
    METRICS,
    crate::eval::EVAL_JSON,
    "pictures",
];

/// Removes the [`RUN_FILES`] of an old run from `dir` (a link is removed, not followed).
fn clear_run(dir: &Path) -> Result<()> {
    for name in RUN_FILES {
        let path = dir.join(name);
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        }
        .with_context(|| format!("--force: removing the old run's {}", path.display()))?;
    }
    Ok(())
}

/// Runs `mvae train`.
pub fn run(common: &Common, args: TrainArgs) -> Result<()> {
    // Held until the run ends; its file goes with it.
    let (cfg, dir, resume, _lock) = match &args.resume {
        Some(run) => {
            let ignored = args.ignored_by_resume();
            if !ignored.is_empty() {
                bail!(
                    "--resume continues {} with its own configuration and takes only --epochs, \
                     --data and --no-pictures, not {}; for other settings start a new run \
                     (--config {}/{CONFIG} with flags and another --out)",
                    run.display(),
                    ignored.join(", "),
                    run.display()
                );
            }
            let mut cfg = RunConfig::read(&run.join(CONFIG))
                .with_context(|| format!("{} is not a run directory", run.display()))?;
            let lock = RunLock::acquire(run)?;
            if !run.join(CHECKPOINT).exists() {
                bail!(
                    "{} has no checkpoint yet: it stopped before its first epoch ended; start it \
                     again with mvae train --config {}/{CONFIG} --out {} --force",
                    run.display(),
                    run.display(),
                    run.display()
                );
            }
            if let Some(e) = args.epochs {
                cfg.train.epochs = e;
            }
            if let Some(d) = &args.data {
                cfg.data.dir = Some(d.clone());
            }
            cfg.absolute_paths();
            (cfg, run.clone(), true, lock)
        }
        None => {
            let mut cfg = match &args.config {
                Some(p) => RunConfig::read(p)?,
                None => RunConfig::default(),
            };
            args.overlay(&mut cfg);
            cfg.absolute_paths();
            cfg.resolve_defaults();
            cfg.validate()?;
            let dir = args.out.clone().unwrap_or_else(|| {
                let name = format!("{:?}", cfg.data.dataset).to_lowercase();
                PathBuf::from("runs").join(format!("{name}-{}", cfg.train.seed))
            });
            let mut inputs: Vec<(&str, &Path)> = Vec::new();
            inputs.extend(args.config.as_deref().map(|p| ("--config", p)));
            inputs.extend(cfg.data.manifest.as_deref().map(|p| ("--manifest", p)));
            inputs.extend(cfg.data.dir.as_deref().map(|p| ("--data", p)));
            crate::output::refuse_input(&dir, &inputs)?;
            crate::output::output_dir(&dir, args.force)?;
            let lock = RunLock::acquire(&dir)?;
            if args.force {
                clear_run(&dir)?;
            }
            // config.toml is written by train_on once the data and the model are known good.
            (cfg, dir, false, lock)
        }
    };
    cfg.validate()?;
    crate::dispatch!(
        common,
        cfg.latent(),
        train_on(common, &cfg, &dir, resume, !args.no_pictures)
    )
}

/// The model configuration: the data set's modalities with `[model]` applied.
fn model_config(cfg: &RunConfig, specs: Vec<mvae::ModalitySpec>) -> Result<ModelConfig> {
    for name in cfg.model.weights.keys() {
        if !specs.iter().any(|s| s.name() == name) {
            bail!(
                "weight for {name:?}, which is not a modality of this data (it has {})",
                specs
                    .iter()
                    .map(|s| s.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let modalities = specs
        .into_iter()
        .map(|s| {
            let w = cfg.model.weights.get(s.name()).copied().unwrap_or(s.weight);
            s.encoder_hidden(&cfg.encoder_hidden())
                .decoder_hidden(&cfg.decoder_hidden())
                .weight(w)
        })
        .collect();
    let mut mc = ModelConfig {
        modalities,
        activation: cfg.model.activation,
        aggregation: cfg.aggregation(),
        private: 0,
        components: cfg.model.components.unwrap_or(SubsetDraw::DEFAULT_LIMIT),
        contrastive: cfg.model.contrastive.unwrap_or(0.0),
        contrastive_similarity: cfg.model.contrastive_similarity.unwrap_or_default(),
        contrastive_temperature: cfg.model.contrastive_temperature,
        contrastive_hold_temperature: cfg.model.contrastive_hold_temperature,
        contrastive_input: cfg.model.contrastive_input.unwrap_or_default(),
    };
    if mc.aggregation == AggregationKind::MmvaePlus {
        mc.private = cfg
            .model
            .private
            .unwrap_or_else(|| mc.default_private(cfg.latent()));
    } else if let Some(p) = cfg.model.private.filter(|&p| p > 0) {
        bail!(
            "--private {p} needs --aggregation mmvae-plus (aggregation {} has no private latents)",
            mc.aggregation
        );
    }
    mc.validate()?;
    mc.private_layout(cfg.latent())?;
    Ok(mc)
}

/// The training settings of `[train]`, with the KL annealed over `samples` training samples.
fn train_config(cfg: &RunConfig, samples: usize) -> TrainConfig {
    let t = &cfg.train;
    let mut tc = TrainConfig {
        epochs: t.epochs,
        batch_size: cfg.batch_size(),
        adam: AdamSettings {
            lr: t.lr,
            ..AdamSettings::default()
        },
        objective: ObjectiveConfig {
            random_subsets: t.subsets,
            beta: t.beta,
            samples: t.samples,
            estimator: t.estimator,
            ..ObjectiveConfig::default()
        },
        seed: t.seed,
        binarize: t.binarize,
    };
    tc.anneal_over_epochs(cfg.anneal_epochs(), samples);
    tc
}

fn train_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    cfg: &RunConfig,
    dir: &Path,
    resume: bool,
    draw: bool,
) -> Result<()> {
    let prepared = data::prepare(cfg)?;
    let ckpt = dir.join(CHECKPOINT);
    let mut trainer = if resume {
        let t = Trainer::<L, D>::resume(&ckpt, &dev)?;
        let have: Vec<&str> = t.model.modalities().iter().map(|m| m.name()).collect();
        let want: Vec<&str> = prepared.specs.iter().map(|m| m.name()).collect();
        if have != want {
            bail!(
                "{} has modalities {have:?} but the data has {want:?}",
                ckpt.display()
            );
        }
        // Every epoch takes the same number of steps; another number means other data.
        let batch = t.config().batch_size.max(1);
        let now = prepared.train.len().div_ceil(batch);
        if let Some(before) = (t.epochs_done() > 0).then(|| t.steps() / t.epochs_done()) {
            if before != now {
                bail!(
                    "{} took {before} steps an epoch, but its data now give {now} ({} training \
                     samples from {}): the data differ from those it was trained on",
                    ckpt.display(),
                    prepared.train.len(),
                    cfg.data_dir().display()
                );
            }
        }
        t
    } else {
        let mc = model_config(cfg, prepared.specs.clone())?;
        let tc = train_config(cfg, prepared.train.len());
        let model = Mvae::<L, D>::new(&mc, &dev, cfg.train.seed)?;
        let mut tr = Trainer::new(model, tc)?;
        tr.codecs = prepared.codecs.clone();
        tr
    };
    if !resume && !prepared.notes.is_empty() {
        // Once the model is built: an error before this is one line on its own.
        eprintln!("the manifest's columns (declare others in the config's [modalities]):");
        for note in &prepared.notes {
            eprintln!("  {note}");
        }
    }
    // The data, the model (and a resumed checkpoint) are known good: record the resolved
    // configuration (for a resumed run, the new --epochs and --data) as the run's. A run that
    // fails before this leaves no config.toml that would block the corrected rerun.
    cfg.write(&dir.join(CONFIG))?;
    let mut history = read_metrics(&dir.join(METRICS))?;
    history.truncate(trainer.epochs_done());
    let start = trainer.epochs_done();
    if start >= cfg.train.epochs && !common.json {
        eprintln!(
            "{} has already trained {start} epochs; pass --epochs N with N > {start} to go on",
            dir.display()
        );
    }
    // `--keep-best`: the epochs after the warm-up, from warm-up + 2 on (MultiVae's
    // start_keep_best_epoch is warm-up + 1 and excluded), and the best of those logged so far.
    let first_best = cfg.anneal_epochs().floor() as usize + 2;
    let mut best = best_epoch(&history, first_best);
    while trainer.epochs_done() < cfg.train.epochs {
        let e = trainer.epochs_done() + 1;
        let steps = prepared.train.len().div_ceil(cfg.batch_size().max(1));
        let pb = bar(
            common,
            steps as u64,
            format!("epoch {e}/{}", cfg.train.epochs),
        );
        let metrics = trainer.fit_epoch(&prepared.train, |p| {
            pb.set_position(p.step as u64);
            if p.step % 5 == 0 || p.step == p.steps {
                let terms: Vec<String> = p
                    .terms
                    .iter()
                    .map(|t| format!("{} {:.1}", t.name, t.loss))
                    .collect();
                pb.set_message(format!("loss {:.2} [{}]", p.running_loss, terms.join(", ")));
            }
        })?;
        pb.finish_and_clear();
        // The joint ELBO with seed e, from the test loss's own joint pass.
        let eval::TestLoss {
            loss: test_loss,
            joint_elbo: test_elbo,
        } = eval::test_loss(&trainer.model, &prepared.test, cfg.train.beta, e as u64)?;
        if cfg.train.keep_best && e >= first_best && best.is_none_or(|(_, b)| test_loss < b) {
            trainer.model.save(dir.join(BEST))?;
            best = Some((e, test_loss));
        }
        trainer.save(&ckpt)?;
        history.push(Epoch {
            metrics,
            test_elbo,
            test_loss: Some(test_loss),
        });
        write_metrics(&dir.join(METRICS), &history)?;
        if !common.json {
            let h = history.last().expect("just pushed");
            eprintln!(
                "epoch {e}: loss {:.2}, beta {:.3}, test ELBO {:.2}, test loss {:.2} ({:.0} samples/s)",
                h.metrics.loss,
                h.metrics.beta,
                h.test_elbo,
                test_loss,
                h.metrics.samples_per_second
            );
        }
    }
    let pictures = if draw && !history.is_empty() {
        pictures::draw(common, &trainer.model, &prepared, &history, dir)?
    } else {
        Vec::new()
    };
    let last = history.last();
    let warnings: Vec<String> = last.and_then(collapsed).into_iter().collect();
    if !common.json {
        for w in &warnings {
            eprintln!("warning: {w}");
        }
    }
    let summary = serde_json::json!({
        "run": dir,
        "checkpoint": ckpt,
        "aggregation": trainer.model.config().aggregation.name(),
        "estimator": trainer.config().objective.estimator.name(),
        "samples": trainer.config().objective.samples,
        "contrastive": trainer.model.config().contrastive,
        "contrastive_input": trainer.model.config().contrastive_input.name(),
        "binarize": trainer.config().binarize,
        "warnings": warnings,
        "columns": prepared.notes,
        "test_loss": last.and_then(|h| h.test_loss),
        "best": best.map(|(epoch, test_loss)| serde_json::json!({
            "epoch": epoch,
            "test_loss": test_loss,
            "checkpoint": dir.join(BEST),
        })),
        "temperature": trainer.model.contrastive_temperature(),
        "epochs": trainer.epochs_done(),
        "steps": trainer.steps(),
        "train_samples": prepared.train.len(),
        "test_samples": prepared.test.len(),
        "loss": last.map(|h| h.metrics.loss),
        "test_elbo": last.map(|h| h.test_elbo),
        "train_seconds": history.iter().map(|h| h.metrics.seconds).sum::<f64>(),
        "pictures": pictures,
    });
    report(common, &summary, || {
        println!(
            "trained {} epochs ({}) into {} (test ELBO {}); pictures: {}",
            trainer.epochs_done(),
            trainer.model.config().aggregation.description(),
            dir.display(),
            last.map_or("-".into(), |h| format!("{:.2}", h.test_elbo)),
            if pictures.is_empty() {
                "none".to_string()
            } else {
                pictures.len().to_string()
            }
        )
    });
    Ok(())
}

/// One line of `metrics.jsonl`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Epoch {
    /// What the trainer measured.
    #[serde(flatten)]
    pub metrics: EpochMetrics,
    /// Joint ELBO per test sample after the epoch.
    pub test_elbo: f64,
    /// MVAE's evaluation loss on the test set after the epoch, at full KL weight
    /// ([`eval::test_loss`]; absent from the metrics of older runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
}

/// The joint posterior's KL to the prior (nats per sample) below which `train` warns that the
/// posterior has collapsed: it then barely depends on the data.
const COLLAPSED_KL: f64 = 0.01;

/// A warning where the joint posterior of `epoch` has collapsed onto the prior: every sample
/// then encodes to about the same latent, and generation and imputation give each
/// modality's average whatever is given.
fn collapsed(epoch: &Epoch) -> Option<String> {
    let joint = epoch.metrics.terms.iter().find(|t| t.name == "joint")?;
    (joint.kl < COLLAPSED_KL).then(|| {
        format!(
            "the posterior has collapsed: its KL to the prior is {:.2e} nats per sample after \
             epoch {}, so it barely depends on the data and imputation will give each column's \
             average; try a smaller latent, KL annealing (--anneal-epochs), or more epochs",
            joint.kl, epoch.metrics.epoch
        )
    })
}

/// The epoch from `first` on with the lowest test loss, and that loss.
fn best_epoch(history: &[Epoch], first: usize) -> Option<(usize, f64)> {
    history
        .iter()
        .filter(|h| h.metrics.epoch >= first)
        .filter_map(|h| Some((h.metrics.epoch, h.test_loss?)))
        .fold(None, |best, (e, l)| match best {
            Some((_, b)) if b <= l => best,
            _ => Some((e, l)),
        })
}

/// Reads `metrics.jsonl` (empty if absent).
pub fn read_metrics(path: &Path) -> Result<Vec<Epoch>> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l)
                    .with_context(|| format!("{} line {} is not valid", path.display(), i + 1))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn write_metrics(path: &Path, history: &[Epoch]) -> Result<()> {
    let mut text = String::new();
    for h in history {
        text.push_str(&serde_json::to_string(h)?);
        text.push('\n');
    }
    mvae::data::atomic::write_bytes(path, text.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Values a key of the config should never hold.
    const ABSURD: [&str; 24] = [
        "0",
        "-1",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "4294967296",
        "100000000",
        "1e300",
        "-1e300",
        "nan",
        "inf",
        "-inf",
        "0.5",
        "\"\"",
        "\"x\"",
        "\"mmvae-plus\"",
        "true",
        "[]",
        "[0]",
        "[18446744073709551615]",
        "[65536, 65536]",
        "{}",
        "{ x = 1e300 }",
        "1979-05-27",
    ];

    /// Characters that change what a TOML line means.
    const SIGNIFICANT: &[u8] = b"=[]{}\"',.#\n -_0123456789eE+xyz";

    /// One random edit of a config's text: a value replaced by an absurd one, a line
    /// duplicated or removed, or a character inserted, removed or replaced.
    fn mutate(text: &str, rng: &mut ChaCha8Rng) -> String {
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let i = rng.gen_range(0..lines.len());
        match rng.gen_range(0..5) {
            0 | 1 => {
                if let Some((key, _)) = lines[i].split_once(" = ") {
                    lines[i] = format!("{key} = {}", ABSURD[rng.gen_range(0..ABSURD.len())]);
                }
            }
            2 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            3 => {
                lines.remove(i);
            }
            _ => {
                let mut bytes = lines[i].clone().into_bytes();
                let at = rng.gen_range(0..=bytes.len());
                let c = SIGNIFICANT[rng.gen_range(0..SIGNIFICANT.len())];
                match rng.gen_range(0..3) {
                    0 => bytes.insert(at, c),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = c,
                    _ => bytes.push(c),
                }
                lines[i] = String::from_utf8_lossy(&bytes).into_owned();
            }
        }
        lines.join("\n")
    }

    /// Mutated `config.toml` files give an error or a configuration that every later step
    /// (validation, the model and training settings, writing it back) accepts; none panics.
    /// `train` warns where the joint posterior's KL is near 0 (a collapsed posterior), not
    /// where it is not, nor without a joint term.
    #[test]
    fn a_collapsed_posterior_is_named() {
        let epoch = |kl: f64, name: &str| Epoch {
            metrics: EpochMetrics {
                epoch: 7,
                terms: vec![mvae::train::TermMetrics {
                    name: name.into(),
                    kl,
                    ..Default::default()
                }],
                ..Default::default()
            },
            test_elbo: 0.0,
            test_loss: None,
        };
        let w = collapsed(&epoch(9e-7, "joint")).unwrap();
        assert!(w.contains("collapsed") && w.contains("epoch 7"), "{w}");
        assert!(collapsed(&epoch(2.5, "joint")).is_none());
        assert!(collapsed(&epoch(0.0, "image")).is_none());
    }

    #[test]
    fn mutated_config_toml_is_an_error_or_a_valid_config() {
        let mut rich = RunConfig::default();
        rich.data.missing.insert("label".into(), 0.5);
        rich.data
            .groups
            .insert("xy".into(), vec!["x".into(), "y".into()]);
        rich.data.manifest = Some("data.csv".into());
        rich.data.limit = Some(100);
        rich.model.weights.insert("label".into(), 50.0);
        rich.model.private = Some(2);
        rich.model.components = Some(7);
        rich.resolve_defaults();
        let mut plain = RunConfig::default();
        plain.resolve_defaults();
        let texts = [
            toml::to_string_pretty(&rich).unwrap(),
            toml::to_string_pretty(&plain).unwrap(),
        ];
        let specs = || {
            vec![
                mvae::ModalitySpec::new(mvae::Image::mnist()),
                mvae::ModalitySpec::new(mvae::Label::digits()).weight(50.0),
            ]
        };
        let dir = tempfile::tempdir().unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (mut parsed, mut valid) = (0, 0);
        for case in 0..3000 {
            let mut text = texts[case % 2].clone();
            for _ in 0..rng.gen_range(1..=3) {
                text = mutate(&text, &mut rng);
            }
            let Ok(mut cfg) = toml::from_str::<RunConfig>(&text) else {
                continue;
            };
            parsed += 1;
            cfg.resolve_defaults();
            if cfg.validate().is_err() {
                continue;
            }
            let Ok(mc) = model_config(&cfg, specs()) else {
                continue;
            };
            if mc.check_size(cfg.latent()).is_err() {
                continue;
            }
            if train_config(&cfg, 1000).validate().is_err() {
                continue;
            }
            valid += 1;
            // A configuration that is accepted is written and read back unchanged.
            let path = dir.path().join("config.toml");
            cfg.write(&path).unwrap();
            let back =
                RunConfig::read(&path).unwrap_or_else(|e| panic!("case {case}: {e:#}\n{text}"));
            assert_eq!(back, cfg, "case {case}:\n{text}");
        }
        // The mutations reach every stage.
        assert!(
            parsed > 300 && valid > 100,
            "{parsed} parsed, {valid} valid"
        );
    }
}
