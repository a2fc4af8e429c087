//! Robustness to missing modalities: the MNIST image + label model trained with a growing
//! fraction of each training sample's modalities hidden, evaluated on the complete test set.
//!
//! ```text
//! cargo run --example robustness
//! cargo run --example robustness -- --missing label --json
//! ```
//! For each rate `r` (default 0, 0.25, 0.5, 0.75) the training set is made partial with
//! `MultimodalDataset::make_partial`, a fresh model (same seed) is trained on it, and the test
//! set (nothing hidden) gives: the single-sample test ELBOs (joint, image, label; nats per
//! sample), image -> label accuracy (`eval::accuracy`), label -> image coherence
//! (`eval::coherence`, judged by an MLP trained once on the complete training images) and the
//! test accuracy of a linear probe on the image-only posterior mean (`eval::probe`, trained on
//! the complete training set's latents).
//!
//! `--missing` chooses what is hidden:
//! - `both` (default): image and label each hidden with probability `r`, independently. A
//!   sample never loses both (make_partial then keeps one of them at random), so the share of
//!   samples with both is `(1 - r)^2` and each modality is in fact missing from `r - r^2 / 2`
//!   of them (0.75 -> 0.47); the output reports the measured shares.
//! - `label`: only labels hidden, at exactly rate `r` (the paper's weak supervision).
//! - `image`: only images hidden.
//!
//! Prints a table, or with `--json` one JSON line per rate: `rate`, `missing`,
//! `image_missing`, `label_missing`, `paired` (shares of training samples), `train_seconds`,
//! `test_elbo_joint`, `test_elbo_image`, `test_elbo_label`, `image_to_label_accuracy`,
//! `label_to_image_coherence`, `image_probe_accuracy`.
//!
//! Defaults are sized for the bundled sample (3,000 images: about 40 s per rate on 2 cores):
//! `--epochs 10`, a smaller network than the paper's (`--hidden 256`: encoders 256-256,
//! decoders 256-256-256; `--hidden 512` is the paper's), latent 16.

mod common;
use common::num;

use std::path::PathBuf;

use anyhow::{bail, ensure, Context, Result};
use dfdx::prelude::Cpu;
use mvae::data::{Mnist, MultimodalDataset, Split};
use mvae::eval::coherence::{conditional_coherence, CoherenceConfig, Judges};
use mvae::eval::probe::{probe, ProbeConfig};
use mvae::{eval, Backend, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

const USAGE: &str = "\
Train the MNIST image + label model with modalities missing at several rates and evaluate
each on the complete test set.

usage: cargo run --example robustness -- [flags]

  --data DIR           folder holding mnist/ (default: $MVAE_DATA, else the bundled sample)
  --rates LIST         comma-separated missing rates in [0, 1] (default 0,0.25,0.5,0.75)
  --missing WHICH      both | label | image: which modalities are hidden (default both)
  --epochs N           passes over the training set per rate (default 10)
  --anneal-epochs E    KL weight rises linearly per step from 0 to 1 over E epochs (default 1)
  --hidden H           width of every hidden layer (default 256; the paper: 512)
  --limit N            use only the first N training images
  --seed S             seed of the hiding, weights, shuffling and noise (default 0)
  --json               print one JSON line per rate instead of the table
  --cuda               train on the GPU (needs a build with --features cuda)";

/// Latent size (small: trains to a useful model in a few epochs on 3,000 images).
const LATENT: usize = 16;

#[derive(Clone, Copy, PartialEq)]
enum Missing {
    Both,
    Label,
    Image,
}

impl Missing {
    fn name(self) -> &'static str {
        match self {
            Missing::Both => "both",
            Missing::Label => "label",
            Missing::Image => "image",
        }
    }
}

struct Args {
    data: Option<PathBuf>,
    rates: Vec<f64>,
    missing: Missing,
    epochs: usize,
    anneal_epochs: f64,
    hidden: usize,
    limit: Option<usize>,
    seed: u64,
    json: bool,
    cuda: bool,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        data: std::env::var_os("MVAE_DATA").map(PathBuf::from),
        rates: vec![0.0, 0.25, 0.5, 0.75],
        missing: Missing::Both,
        epochs: 10,
        anneal_epochs: 1.0,
        hidden: 256,
        limit: None,
        seed: 0,
        json: false,
        cuda: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        let whole = "a whole number";
        match flag.as_str() {
            "--data" => a.data = Some(val()?.into()),
            "--rates" => {
                let list = val()?;
                a.rates = list
                    .split(',')
                    .map(|r| num(&flag, r.trim(), "comma-separated fractions between 0 and 1"))
                    .collect::<Result<_>>()?;
                if let Some(r) = a.rates.iter().find(|r| !(0.0..=1.0).contains(*r)) {
                    bail!("--rates takes fractions between 0 and 1, not {r}");
                }
            }
            "--missing" => {
                a.missing = match val()?.as_str() {
                    "both" => Missing::Both,
                    "label" => Missing::Label,
                    "image" => Missing::Image,
                    other => bail!("--missing takes both, label or image, not {other:?}"),
                }
            }
            "--epochs" => a.epochs = num(&flag, &val()?, whole)?,
            "--anneal-epochs" => a.anneal_epochs = num(&flag, &val()?, "a number")?,
            "--hidden" => a.hidden = num(&flag, &val()?, whole)?,
            "--limit" => a.limit = Some(num(&flag, &val()?, whole)?),
            "--seed" => a.seed = num(&flag, &val()?, whole)?,
            "--json" => a.json = true,
            "--cuda" => a.cuda = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n\n{USAGE}"),
        }
    }
    ensure!(a.epochs >= 1, "--epochs must be at least 1");
    ensure!(a.hidden >= 1, "--hidden must be at least 1");
    ensure!(!a.rates.is_empty(), "--rates needs at least one rate");
    ensure!(
        a.anneal_epochs >= 0.0 && a.anneal_epochs.is_finite(),
        "--anneal-epochs must be a number >= 0"
    );
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse()?;
    let dir = match &args.data {
        Some(d) => d.join("mnist"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist"),
    };
    let load = |split, limit| -> Result<MultimodalDataset> {
        Ok(Mnist::load(&dir, split, limit)
            .with_context(|| format!("loading MNIST from {}", dir.display()))?
            .into_dataset()?)
    };
    let (train, test) = (load(Split::Train, args.limit)?, load(Split::Test, None)?);
    if args.cuda {
        #[cfg(feature = "cuda")]
        return run(&args, dfdx::prelude::Cuda::default(), &train, &test);
        #[cfg(not(feature = "cuda"))]
        bail!("--cuda needs a build with `--features cuda`");
    }
    run(&args, Cpu::default(), &train, &test)
}

/// Share of samples where `column` is absent.
fn missing_share(data: &MultimodalDataset, column: &str) -> f64 {
    let present = data.column(column).map_or(&[][..], |c| c.present());
    present.iter().filter(|&&p| !p).count() as f64 / data.len().max(1) as f64
}

/// Trains one model per rate and evaluates it.
fn run<D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
) -> Result<()> {
    let h = args.hidden;
    let config = ModelConfig::mnist().hidden(&[h, h], &[h, h, h]);
    let new_model = || Mvae::<LATENT, D>::new(&config, &dev, args.seed);
    let (img, lab) = (0, 1);
    // The judge of generated images depends only on the real data: train it once.
    let ccfg = CoherenceConfig {
        seed: args.seed,
        ..CoherenceConfig::default()
    };
    let judges = Judges::train(&new_model()?, train, test, &ccfg).context("training the judge")?;
    let pcfg = ProbeConfig::default();
    if !args.json {
        println!(
            "hidden: {}; {} training samples, {} epochs per rate; {} test samples",
            args.missing.name(),
            train.len(),
            args.epochs,
            test.len()
        );
        println!(
            "{:>5} {:>8} {:>8} {:>7} | {:>8} {:>8} {:>7} | {:>7} {:>7} {:>7} | {:>6}",
            "rate",
            "img miss",
            "lab miss",
            "paired",
            "ELBO jnt",
            "ELBO img",
            "ELBO lab",
            "img->lab",
            "lab->img",
            "probe",
            "train s"
        );
    }
    for &rate in &args.rates {
        let rates: Vec<(&str, f64)> = match args.missing {
            Missing::Both => vec![("image", rate), ("label", rate)],
            Missing::Label => vec![("label", rate)],
            Missing::Image => vec![("image", rate)],
        };
        let partial = train.make_partial(&rates, args.seed)?;
        let (im, lm) = (
            missing_share(&partial, "image"),
            missing_share(&partial, "label"),
        );
        let mut cfg = TrainConfig {
            epochs: args.epochs,
            seed: args.seed,
            ..TrainConfig::default()
        };
        cfg.anneal_over_epochs(args.anneal_epochs, partial.len());
        let mut trainer = Trainer::new(new_model()?, cfg)?;
        let mut train_seconds = 0.0;
        for _ in 0..args.epochs {
            train_seconds += trainer.fit_epoch(&partial, |_| {})?.seconds;
        }
        let model = &trainer.model;
        let coherence =
            conditional_coherence(model, test, &judges, Subset::single(lab), img, &ccfg)?;
        let r = serde_json::json!({
            "rate": rate,
            "missing": args.missing.name(),
            "image_missing": im,
            "label_missing": lm,
            "paired": 1.0 - im - lm,
            "epochs": args.epochs,
            "train_samples": partial.len(),
            "train_seconds": train_seconds,
            "test_elbo_joint": eval::elbo(model, test, Subset::all(2), 1)?,
            "test_elbo_image": eval::elbo(model, test, Subset::single(img), 2)?,
            "test_elbo_label": eval::elbo(model, test, Subset::single(lab), 3)?,
            "image_to_label_accuracy": eval::accuracy(model, test, Subset::single(img), lab)?,
            "label_to_image_coherence": coherence.coherence,
            "image_probe_accuracy":
                probe(model, train, test, Subset::single(img), &pcfg)?.test_accuracy,
        });
        if args.json {
            println!("{r}");
            continue;
        }
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:5.2} {:8.3} {:8.3} {:7.3} | {:8.2} {:8.2} {:7.3} | {:7.3} {:7.3} {:7.3} | {:6.1}",
            rate,
            im,
            lm,
            f("paired"),
            f("test_elbo_joint"),
            f("test_elbo_image"),
            f("test_elbo_label"),
            f("image_to_label_accuracy"),
            f("label_to_image_coherence"),
            f("image_probe_accuracy"),
            train_seconds
        );
    }
    Ok(())
}
