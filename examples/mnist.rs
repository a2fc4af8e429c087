//! The MVAE paper's MNIST setup: image + label, trained on the 60,000 training images.
//!
//! ```text
//! cargo run --release --example mnist -- --epochs 1 --json
//! ```
//! Prints one JSON line with the test ELBOs (nats per sample, lambda = beta = 1) and the
//! accuracy of predicting the label from the image alone. Data: `--data DIR` or `MVAE_DATA`
//! (a folder with `mnist/`), else the sample bundled in `examples/data`.
//!
//! Flags: `--epochs N` (1), `--anneal-epochs E` (200, as the paper's code: the KL weight rises
//! linearly per step over E epochs), `--limit N` training images, `--seed S`, `--json`,
//! `--cuda` (build with `--features cuda`).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use dfdx::prelude::Cpu;
use mvae::data::{Mnist, MultimodalDataset, Split};
use mvae::Backend;
use mvae::{eval, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

const USAGE: &str = "\
Train the MVAE paper's MNIST model (image + label) and print test metrics.

usage: cargo run --release --example mnist -- [flags]

  --data DIR           folder holding mnist/ (default: $MVAE_DATA, else the bundled sample)
  --epochs N           passes over the training images (default 1)
  --anneal-epochs E    KL weight rises linearly per step from 0 to 1 over E epochs (default 200)
  --limit N            use only the first N training images
  --seed S             seed of the weights, shuffling and noise (default 0)
  --json               print one JSON line (epochs, train_seconds, samples_per_second,
                       epoch_samples_per_second (one figure per epoch: the first one
                       includes warm-up, such as a GPU's), test_elbo_joint,
                       test_elbo_image, test_elbo_label, image_to_label_accuracy)
  --cuda               train on the GPU (needs a build with --features cuda)";

struct Args {
    data: Option<PathBuf>,
    epochs: usize,
    anneal_epochs: f64,
    limit: Option<usize>,
    seed: u64,
    json: bool,
    cuda: bool,
}

fn parse() -> Result<Args> {
    let mut a = Args {
        data: std::env::var_os("MVAE_DATA").map(PathBuf::from),
        epochs: 1,
        anneal_epochs: 200.0,
        limit: None,
        seed: 0,
        json: false,
        cuda: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = Some(val()?.into()),
            "--epochs" => {
                a.epochs = val()?
                    .parse()
                    .with_context(|| format!("{flag} takes a whole number"))?
            }
            "--anneal-epochs" => {
                a.anneal_epochs = val()?
                    .parse()
                    .with_context(|| format!("{flag} takes a number"))?
            }
            "--limit" => {
                a.limit = Some(
                    val()?
                        .parse()
                        .with_context(|| format!("{flag} takes a whole number"))?,
                )
            }
            "--seed" => {
                a.seed = val()?
                    .parse()
                    .with_context(|| format!("{flag} takes a whole number"))?
            }
            "--json" => a.json = true,
            "--cuda" => a.cuda = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown flag {other}\n\n{USAGE}"),
        }
    }
    Ok(a)
}

fn main() -> Result<()> {
    let args = parse()?;
    let dir = match &args.data {
        Some(d) => d.join("mnist"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist"),
    };
    let train = Mnist::load(&dir, Split::Train, args.limit)?.into_dataset()?;
    let test = Mnist::load(&dir, Split::Test, None)?.into_dataset()?;
    if args.cuda {
        #[cfg(feature = "cuda")]
        return run(&args, dfdx::prelude::Cuda::default(), &train, &test);
        #[cfg(not(feature = "cuda"))]
        bail!("--cuda needs a build with `--features cuda`");
    }
    run(&args, Cpu::default(), &train, &test)
}

/// Trains and evaluates on any device.
fn run<D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
) -> Result<()> {
    let model = Mvae::<64, D>::new(&ModelConfig::mnist(), &dev, args.seed)?;
    let mut cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..TrainConfig::default()
    };
    cfg.anneal_over_epochs(args.anneal_epochs, train.len());
    let mut trainer = Trainer::new(model, cfg)?;

    let mut train_seconds = 0.0;
    let mut epoch_rates = Vec::with_capacity(args.epochs);
    for _ in 0..args.epochs {
        let m = trainer.fit_epoch(train, |_| {})?;
        train_seconds += m.seconds;
        epoch_rates.push(m.samples_per_second);
        if !args.json {
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
