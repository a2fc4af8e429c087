//! The MVAE paper's MNIST setup: image + label, trained on the 60,000 training images.
//!
//! ```text
//! cargo run --release --example mnist -- --epochs 1 --json
//! ```
//! Prints one JSON line with the test ELBOs (nats per sample, lambda = beta = 1) and the
//! accuracy of predicting the label from the image alone. Data: `--data DIR` or `MVAE_DATA`
//! (a folder with `mnist/`), else the sample bundled in `examples/data`.
//!
//! `--help` lists the flags (`--epochs`, `--anneal-epochs`, `--aggregation`, `--samples`,
//! `--estimator`, `--limit`, `--seed`, `--json`, `--cuda`).

mod common;
use common::{at_least_one, non_negative, OnDevice, RunArgs};

use anyhow::Result;
use clap::Parser;
use mvae::data::MultimodalDataset;
use mvae::objective::Estimator;
use mvae::Backend;
use mvae::{eval, AggregationKind, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

/// Train the MVAE paper's MNIST model (image + label) and print test metrics.
///
/// With --json, one JSON line: epochs, train_seconds, samples_per_second,
/// epoch_samples_per_second (one figure per epoch: the first includes warm-up, such as a
/// GPU's), test_elbo_joint, test_elbo_image, test_elbo_label, image_to_label_accuracy.
#[derive(Parser, Debug)]
#[command(name = "mnist")]
struct Args {
    /// Passes over the training images
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = at_least_one)]
    epochs: usize,
    /// The KL weight rises linearly per step from 0 to 1 over E epochs (the paper's code: 200)
    #[arg(long, value_name = "E", default_value_t = 200.0, value_parser = non_negative)]
    anneal_epochs: f64,
    /// How the experts are combined: poe (MVAE, the paper), moe (MMVAE), mopoe (MoPoE)
    #[arg(long, value_name = "KIND", default_value = "poe")]
    aggregation: AggregationKind,
    /// Latent samples per data point and term
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = at_least_one)]
    samples: usize,
    /// How the samples make the bound: elbo, iwae or dreg
    #[arg(long, value_name = "NAME", default_value = "elbo")]
    estimator: Estimator,
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

/// Trains and evaluates on any device.
fn run<D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
) -> Result<()> {
    let config = ModelConfig::mnist().aggregation(args.aggregation);
    let model = Mvae::<64, D>::new(&config, &dev, args.common.seed)?;
    let mut cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.common.seed,
        ..TrainConfig::default()
    };
    cfg.objective.samples = args.samples;
    cfg.objective.estimator = args.estimator;
    cfg.anneal_over_epochs(args.anneal_epochs, train.len());
    let mut trainer = Trainer::new(model, cfg)?;

    let mut train_seconds = 0.0;
    let mut epoch_rates = Vec::with_capacity(args.epochs);
    for _ in 0..args.epochs {
        let m = trainer.fit_epoch(train, |_| {})?;
        train_seconds += m.seconds;
        epoch_rates.push(m.samples_per_second);
        if !args.common.json {
            eprintln!(
                "epoch {} loss {:.2} beta {:.3} ({:.0} samples/s)",
                m.epoch, m.loss, m.beta, m.samples_per_second
            );
        }
    }
    let model = &trainer.model;
    let (img, lab) = (
        model.modality_index("image")?,
        model.modality_index("label")?,
    );
    let report = serde_json::json!({
        "aggregation": args.aggregation.name(),
        "samples": args.samples,
        "estimator": args.estimator.name(),
        "epochs": args.epochs,
        "train_samples": train.len(),
        "train_seconds": train_seconds,
        "samples_per_second": (train.len() * args.epochs) as f64 / train_seconds,
        "epoch_samples_per_second": epoch_rates,
        "test_elbo_joint": eval::elbo(model, test, Subset::all(2), 1)?,
        "test_elbo_image": eval::elbo(model, test, Subset::single(img), 2)?,
        "test_elbo_label": eval::elbo(model, test, Subset::single(lab), 3)?,
        "image_to_label_accuracy": eval::accuracy(model, test, Subset::single(img), lab)?,
    });
    println!("{report}");
    Ok(())
}
