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
use common::{at_least_one, fraction, non_negative, OnDevice, RunArgs};

use anyhow::{Context, Result};
use clap::Parser;
use mvae::data::MultimodalDataset;
use mvae::eval::coherence::{conditional_coherence, CoherenceConfig, Judges};
use mvae::eval::probe::{probe, ProbeConfig};
use mvae::{eval, Backend, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

/// Latent size (small: trains to a useful model in a few epochs on 3,000 images).
const LATENT: usize = 16;

/// Which modalities are hidden.
#[derive(Clone, Copy, PartialEq, Debug, clap::ValueEnum)]
enum Missing {
    /// Image and label, each with probability r, independently (never both of one sample)
    Both,
    /// Only labels, at exactly rate r (the paper's weak supervision)
    Label,
    /// Only images
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

/// Train the MNIST image + label model with modalities missing at several rates and evaluate
/// each on the complete test set.
#[derive(Parser, Debug)]
#[command(name = "robustness")]
struct Args {
    /// Comma-separated missing rates in [0, 1]
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_values_t = [0.0, 0.25, 0.5, 0.75], value_parser = fraction)]
    rates: Vec<f64>,
    /// Which modalities are hidden
    #[arg(long, value_name = "WHICH", value_enum, default_value_t = Missing::Both)]
    missing: Missing,
    /// Passes over the training set per rate
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_least_one)]
    epochs: usize,
    /// The KL weight rises linearly per step from 0 to 1 over E epochs
    #[arg(long, value_name = "E", default_value_t = 1.0, value_parser = non_negative)]
    anneal_epochs: f64,
    /// Width of every hidden layer (the paper: 512)
    #[arg(long, value_name = "H", default_value_t = 256, value_parser = at_least_one)]
    hidden: usize,
    #[command(flatten)]
    common: RunArgs,
}

fn main() -> Result<()> {
    let args = Args::parse();
    args.common.on_device(&args)
}

impl OnDevice for &Args {
    fn run<D: Backend>(self, dev: D) -> Result<()> {
        let (train, test) = self.common.mnist()?;
        run(self, dev, &train, &test)
    }
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
    let new_model = || Mvae::<LATENT, D>::new(&config, &dev, args.common.seed);
    let (img, lab) = (0, 1);
    // The judge of generated images depends only on the real data: train it once.
    let ccfg = CoherenceConfig {
        seed: args.common.seed,
        ..CoherenceConfig::default()
    };
    let judges = Judges::train(&new_model()?, train, test, &ccfg).context("training the judge")?;
    let pcfg = ProbeConfig::default();
    if !args.common.json {
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
        let partial = train.make_partial(&rates, args.common.seed)?;
        let (im, lm) = (
            missing_share(&partial, "image"),
            missing_share(&partial, "label"),
        );
        let mut cfg = TrainConfig {
            epochs: args.epochs,
            seed: args.common.seed,
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
        if args.common.json {
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
