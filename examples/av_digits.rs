//! Audio-visual digits: hear a digit and see it, see a digit and hear it. Three modalities in
//! one latent space: an MNIST image, a spoken FSDD clip of the same digit (log spectrogram,
//! 32 frames x 64 bins, standardised per bin) and the label, paired by `AvDigits`.
//!
//! ```text
//! cargo run --example av_digits
//! MVAE_DATA=../shared/data cargo run --example av_digits -- --epochs 2 --json
//! ```
//! Trains on the training pairs, then evaluates on the test pairs with the library's judges
//! (`eval::coherence`: an MLP trained here on real images, one on real spectrograms, and the
//! label decoder's argmax) and `eval::accuracy`. Prints a readable summary, or with `--json`
//! one JSON line: `audio_to_image_coherence`, `image_to_audio_coherence`,
//! `label_to_image_coherence`, `label_to_audio_coherence`, `joint_coherence`,
//! `audio_to_label_accuracy`, `image_to_label_accuracy`, `image_audio_to_label_accuracy`,
//! the judges' accuracy on real test data (`image_judge_accuracy`, `audio_judge_accuracy`),
//! `test_elbo_joint`, and the run (`epochs`, `train_samples`, `test_samples`,
//! `train_seconds`, `eval_seconds`, `samples_per_second`, `latent`, `aggregation`,
//! `audio_weight`, `subsets`, `seed`).
//!
//! Data: `--data DIR` or `MVAE_DATA` (a folder with `mnist/` and `fsdd/recordings/`), else the
//! sample bundled in `examples/data` (3,000 + 1,000 images, 100 + 100 clips).
//!
//! Coherence decodes one posterior sample per test pair (not the mean); chance is 0.1.
//!
//! By default the experts are combined as MMVAE+ (`--aggregation mmvae-plus`) in a latent of 64
//! (`--latent`): its objective decodes every modality from every other's expert, which keeps
//! image <-> audio generation working (`docs/results.md`, "AV digits"). With `--aggregation
//! poe` (MVAE) pass `--latent 8`: with 64 dimensions each modality keeps the digit in
//! dimensions of its own and image <-> audio generation stays at chance, since that objective
//! never decodes one modality from another's expert alone.

mod common;
use common::{at_least_one, non_negative, positive, OnDevice, RunArgs};

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use mvae::data::av_digits::{AUDIO, IMAGE, LABEL};
use mvae::data::{AvDigits, AvDigitsConfig, MultimodalDataset};
use mvae::eval::coherence::{conditional_coherence, joint_coherence, CoherenceConfig, Judges};
use mvae::likelihood::Variance;
use mvae::{
    eval, AggregationKind, Backend, Continuous, Image, Label, ModalitySpec, ModelConfig, Mvae,
    Subset,
};
use mvae::{TrainConfig, Trainer};

/// Latent sizes `--latent` takes (the size is a type parameter of the model).
const LATENTS: [usize; 4] = [8, 16, 32, 64];

/// Train a three-modality MVAE (MNIST image, FSDD spoken digit, label) and measure how well
/// each modality is generated from the others.
#[derive(Parser, Debug)]
#[command(name = "av_digits")]
struct Args {
    /// Passes over the training pairs
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = at_least_one)]
    epochs: usize,
    /// Latent size: 8, 16, 32 or 64 (with poe a wide latent lets each modality keep its own
    /// dimensions and the cross generation fails: use 8 there)
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = latent_size)]
    latent: usize,
    /// How the experts are combined: mmvae-plus (MMVAE+, its private latents latent / 6 per
    /// modality), moe (MMVAE), mopoe (MoPoE), poe (MVAE)
    #[arg(long, value_name = "KIND", default_value = "mmvae-plus")]
    aggregation: AggregationKind,
    /// The KL weight rises linearly per step from 0 to 1 over E epochs
    #[arg(long, value_name = "E", default_value_t = 2.0, value_parser = non_negative)]
    anneal_epochs: f64,
    /// Likelihood weight lambda of the audio
    #[arg(long, value_name = "W", default_value_t = 1.0, value_parser = positive)]
    audio_weight: f32,
    /// Also score K random pairs of modalities per step (0: the joint ELBO and each single
    /// modality only)
    #[arg(long, value_name = "K", default_value_t = 0)]
    subsets: usize,
    /// Evaluate on only the first N test images
    #[arg(long, value_name = "N")]
    test_limit: Option<usize>,
    #[command(flatten)]
    common: RunArgs,
}

/// Parses `--latent`: one of [`LATENTS`].
fn latent_size(s: &str) -> Result<usize, String> {
    match s.parse() {
        Ok(n) if LATENTS.contains(&n) => Ok(n),
        _ => Err(format!("takes one of {LATENTS:?}, not {s:?}")),
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    args.common.on_device(&args)
}

impl OnDevice for &Args {
    fn run<D: Backend>(self, dev: D) -> Result<()> {
        let root = self.common.data_root();
        let cfg = AvDigitsConfig {
            seed: self.common.seed,
            train_limit: self.common.limit,
            test_limit: self.test_limit,
            ..AvDigitsConfig::default()
        };
        let av = AvDigits::load(&root, &cfg).with_context(|| {
            format!(
                "loading the audio-visual digits from {} (mnist/ and fsdd/recordings/)",
                root.display()
            )
        })?;
        run_latent(self, dev, &av.train, &av.test)
    }
}

/// Picks the model type for `--latent`.
fn run_latent<D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
) -> Result<()> {
    match args.latent {
        8 => run::<8, D>(args, dev, train, test),
        16 => run::<16, D>(args, dev, train, test),
        32 => run::<32, D>(args, dev, train, test),
        _ => run::<64, D>(args, dev, train, test),
    }
}

/// The model: the paper's MNIST networks for the image and label, the same sizes for the
/// audio (2,048 standardised spectrogram values, Gaussian with unit variance).
fn config(audio_dim: usize, audio_weight: f32, args: &Args) -> ModelConfig {
    ModelConfig::new(vec![
        ModalitySpec::new(Image::mnist()),
        ModalitySpec::new(Continuous::new(AUDIO, audio_dim, Variance::Fixed(1.0)))
            .weight(audio_weight),
        ModalitySpec::new(Label::digits()).weight(50.0),
    ])
    .aggregation(args.aggregation)
    .with_default_private(args.latent)
}

/// Trains and evaluates on any device.
fn run<const L: usize, D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
) -> Result<()> {
    let audio_dim = train.column(AUDIO).context("no audio column")?.dim();
    let model = Mvae::<L, D>::new(
        &config(audio_dim, args.audio_weight, args),
        &dev,
        args.common.seed,
    )?;
    let mut cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.common.seed,
        ..TrainConfig::default()
    };
    cfg.objective.random_subsets = args.subsets;
    cfg.anneal_over_epochs(args.anneal_epochs, train.len());
    let mut trainer = Trainer::new(model, cfg)?;
    let mut train_seconds = 0.0;
    for _ in 0..args.epochs {
        let m = trainer.fit_epoch(train, |_| {})?;
        train_seconds += m.seconds;
        if !args.common.json {
            eprintln!(
                "epoch {:2}  loss {:8.2}  beta {:.2}  {:4.0} samples/s",
                m.epoch, m.loss, m.beta, m.samples_per_second
            );
        }
    }
    let model = &trainer.model;
    let (img, aud, lab) = (
        model.modality_index(IMAGE)?,
        model.modality_index(AUDIO)?,
        model.modality_index(LABEL)?,
    );

    let t0 = Instant::now();
    let ccfg = CoherenceConfig {
        seed: args.common.seed,
        ..CoherenceConfig::default()
    };
    if !args.common.json {
        eprintln!("training the judges (an MLP each for images and spectrograms)...");
    }
    let judges = Judges::train(model, train, test, &ccfg).context("training the judges")?;
    let judge_accuracy = |name: &str| {
        judges
            .reports
            .iter()
            .find(|r| r.modality == name)
            .and_then(|r| r.test_accuracy)
    };
    let coherence = |given: usize, target: usize| -> Result<f64> {
        Ok(
            conditional_coherence(model, test, &judges, Subset::single(given), target, &ccfg)?
                .coherence,
        )
    };
    let image_audio = Subset(Subset::single(img).0 | Subset::single(aud).0);
    let report = serde_json::json!({
        "epochs": args.epochs,
        "latent": L,
        "aggregation": args.aggregation.name(),
        "audio_weight": args.audio_weight,
        "subsets": args.subsets,
        "seed": args.common.seed,
        "train_samples": train.len(),
        "test_samples": test.len(),
        "train_seconds": train_seconds,
        "samples_per_second": (train.len() * args.epochs) as f64 / train_seconds,
        "audio_to_image_coherence": coherence(aud, img)?,
        "image_to_audio_coherence": coherence(img, aud)?,
        "label_to_image_coherence": coherence(lab, img)?,
        "label_to_audio_coherence": coherence(lab, aud)?,
        "joint_coherence": joint_coherence(model, &judges, &ccfg)?.map(|j| j.coherence),
        "audio_to_label_accuracy": eval::accuracy(model, test, Subset::single(aud), lab)?,
        "image_to_label_accuracy": eval::accuracy(model, test, Subset::single(img), lab)?,
        "image_audio_to_label_accuracy": eval::accuracy(model, test, image_audio, lab)?,
        "image_judge_accuracy": judge_accuracy(IMAGE),
        "audio_judge_accuracy": judge_accuracy(AUDIO),
        "test_elbo_joint": eval::elbo(model, test, Subset::all(3), 1)?,
        "eval_seconds": t0.elapsed().as_secs_f64(),
    });
    if args.common.json {
        println!("{report}");
        return Ok(());
    }
    let r = |k: &str| report[k].as_f64().unwrap_or(f64::NAN);
    let pct = |k: &str| 100.0 * r(k);
    println!(
        "\n{} training pairs, latent {L}, {} epochs in {:.0} s; {} test pairs (chance is 10%)",
        train.len(),
        args.epochs,
        train_seconds,
        test.len()
    );
    println!(
        "judges on real test data: image {:.1}%, audio {:.1}%",
        pct("image_judge_accuracy"),
        pct("audio_judge_accuracy")
    );
    for (what, key) in [
        (
            "hear a digit, see it (audio -> image coherence)",
            "audio_to_image_coherence",
        ),
        (
            "see a digit, hear it (image -> audio coherence)",
            "image_to_audio_coherence",
        ),
        ("label -> image coherence", "label_to_image_coherence"),
        ("label -> audio coherence", "label_to_audio_coherence"),
        ("joint coherence of prior samples", "joint_coherence"),
        ("label read off the audio alone", "audio_to_label_accuracy"),
        ("label read off the image alone", "image_to_label_accuracy"),
        (
            "label read off image + audio",
            "image_audio_to_label_accuracy",
        ),
    ] {
        println!("{what:<50} {:5.1}%", pct(key));
    }
    println!(
        "{:<50} {:7.1}",
        "test ELBO of all three (nats per sample)",
        r("test_elbo_joint")
    );
    Ok(())
}
