//! Completing a partially observed data set: MNIST images and labels with some of each hidden.
//!
//! ```text
//! cargo run --example impute
//! MVAE_DATA=../shared/data cargo run --example impute -- --epochs 2 --json
//! ```
//! Hides 50% of the labels and 30% of the images of the training set
//! (`MultimodalDataset::make_partial`, which never hides both of a sample), trains an image +
//! label model (the paper's, with latent 16 and `--hidden 256` layers by default) on what is left (the product of experts simply leaves a missing
//! modality out), then hides the same fractions of the test set (another seed) and fills every
//! hidden entry from the posterior of what the sample still has: `encode` with the presence
//! masks, `decode_mean` of the posterior mean. The filled values are scored against the hidden
//! truth:
//!
//! - labels: accuracy of the imputed label (most probable class), against guessing the
//!   training set's most frequent visible label;
//! - images: per-pixel mean absolute error and binary cross-entropy (nats per pixel, truth
//!   intensities as targets) of the imputed pixel probabilities, against the mean visible
//!   training image and, as a stronger baseline that knows the label, the mean visible training
//!   image of the sample's class.
//!
//! Prints a readable summary, or with `--json` one JSON line: `imputed_label_accuracy`,
//! `majority_label_accuracy`, `image_to_label_accuracy` (`eval::accuracy` on every test image,
//! a cross-check), `imputed_image_mae`, `mean_image_mae`, `class_mean_image_mae`,
//! `imputed_image_bce`, `mean_image_bce`, `class_mean_image_bce`, the counts
//! (`train_samples`, `train_labels_visible`, `train_images_visible`, `test_labels_imputed`,
//! `test_images_imputed`), the rates, and `epochs`, `train_seconds`, `seed`.
//!
//! Data: `--data DIR` or `MVAE_DATA` (a folder with `mnist/`), else the sample bundled in
//! `examples/data` (3,000 training and 1,000 test images).

mod common;
use common::{at_least_one, fraction, non_negative, OnDevice, RunArgs};

use anyhow::{ensure, Context, Result};
use clap::Parser;
use mvae::data::MultimodalDataset;
use mvae::impute::argmax;
use mvae::{eval, Backend, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

/// Latent size (small: trains to a useful model in a few epochs on 3,000 images).
const LATENT: usize = 16;
/// Clamp of probabilities in the cross-entropy, so that a confident wrong pixel costs at
/// most `-ln(1e-6)` = 13.8 nats.
const EPS: f64 = 1e-6;

/// Hide labels and images of MNIST, train on what is left, and fill in the hidden entries of
/// held-out test samples from what they still have.
#[derive(Parser, Debug)]
#[command(name = "impute")]
struct Args {
    /// Fraction of labels hidden, in training and test
    #[arg(long, value_name = "R", default_value_t = 0.5, value_parser = fraction)]
    hide_labels: f64,
    /// Fraction of images hidden, in training and test
    #[arg(long, value_name = "R", default_value_t = 0.3, value_parser = fraction)]
    hide_images: f64,
    /// Passes over the training set
    #[arg(long, value_name = "N", default_value_t = 30, value_parser = at_least_one)]
    epochs: usize,
    /// The KL weight rises linearly per step from 0 to 1 over E epochs
    #[arg(long, value_name = "E", default_value_t = 2.0, value_parser = non_negative)]
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
        let rates = [("image", self.hide_images), ("label", self.hide_labels)];
        let seed = self.common.seed;
        let train = train.make_partial(&rates, seed)?;
        let test_partial = test.make_partial(&rates, seed.wrapping_add(1))?;
        run(self, dev, &train, &test, &test_partial)
    }
}

/// Per-pixel absolute error and cross-entropy of `guess` (probabilities) for `truth`.
#[derive(Default)]
struct PixelError {
    abs: f64,
    bce: f64,
    pixels: usize,
}

impl PixelError {
    fn add(&mut self, truth: &[f32], guess: &[f32]) {
        for (&t, &g) in truth.iter().zip(guess) {
            let (t, g) = (f64::from(t), f64::from(g).clamp(EPS, 1.0 - EPS));
            self.abs += (t - g).abs();
            self.bce -= t * g.ln() + (1.0 - t) * (1.0 - g).ln();
        }
        self.pixels += truth.len();
    }
    fn mae(&self) -> f64 {
        self.abs / self.pixels as f64
    }
    fn bce(&self) -> f64 {
        self.bce / self.pixels as f64
    }
}

/// Trains on the partial training set, imputes the hidden test entries, scores them.
fn run<D: Backend>(
    args: &Args,
    dev: D,
    train: &MultimodalDataset,
    test: &MultimodalDataset,
    partial: &MultimodalDataset,
) -> Result<()> {
    let col = |d: &MultimodalDataset, name: &str| d.column(name).cloned().context(name.to_string());
    let (train_img, train_lab) = (col(train, "image")?, col(train, "label")?);
    let (truth_img, truth_lab) = (col(test, "image")?, col(test, "label")?);
    let (part_img, part_lab) = (col(partial, "image")?, col(partial, "label")?);
    let dim = train_img.dim();

    // Baselines from what the training set shows: the most frequent label, the mean image
    // and the mean image of each class (over samples with both).
    let mut counts = [0usize; 10];
    let mut mean = vec![0.0f64; dim];
    let mut class_mean = vec![vec![0.0f64; dim]; 10];
    let mut class_n = [0usize; 10];
    let mut images_visible = 0;
    for s in 0..train.len() {
        let label = train_lab.present()[s].then(|| train_lab.values()[s] as usize);
        if let Some(l) = label {
            counts[l] += 1;
        }
        if train_img.present()[s] {
            images_visible += 1;
            let x = train_img.sample(s).expect("in range");
            for (m, &v) in mean.iter_mut().zip(x) {
                *m += f64::from(v);
            }
            if let Some(l) = label {
                class_n[l] += 1;
                for (m, &v) in class_mean[l].iter_mut().zip(x) {
                    *m += f64::from(v);
                }
            }
        }
    }
    ensure!(images_visible > 0, "every training image is hidden");
    let majority = argmax(&counts.map(|c| c as f32));
    let mean: Vec<f32> = mean
        .iter()
        .map(|&m| (m / images_visible as f64) as f32)
        .collect();
    let class_mean: Vec<Vec<f32>> = (0..10)
        .map(|l| match class_n[l] {
            0 => mean.clone(),
            n => class_mean[l]
                .iter()
                .map(|&m| (m / n as f64) as f32)
                .collect(),
        })
        .collect();

    // Train on what is present.
    let h = args.hidden;
    let config = ModelConfig::mnist().hidden(&[h, h], &[h, h, h]);
    let model = Mvae::<LATENT, D>::new(&config, &dev, args.common.seed)?;
    let mut cfg = TrainConfig {
        epochs: args.epochs,
        seed: args.common.seed,
        ..TrainConfig::default()
    };
    cfg.anneal_over_epochs(args.anneal_epochs, train.len());
    let mut trainer = Trainer::new(model, cfg)?;
    let mut train_seconds = 0.0;
    for _ in 0..args.epochs {
        let m = trainer.fit_epoch(train, |_| {})?;
        train_seconds += m.seconds;
        if !args.common.json {
            eprintln!(
                "epoch {:2}  loss {:7.2}  beta {:.2}  {:4.0} samples/s",
                m.epoch, m.loss, m.beta, m.samples_per_second
            );
        }
    }
    let model = &trainer.model;
    let (img, lab) = (
        model.modality_index("image")?,
        model.modality_index("label")?,
    );

    // Impute: the library fills every hidden value from the posterior of what that sample has
    // (the masks leave the rest out of the product) with the decoder's mean at its mean.
    let (filled, _) = mvae::impute::impute(model, partial)?;
    let (mut right, mut majority_right, mut labels_imputed) = (0usize, 0usize, 0usize);
    let mut imputed = PixelError::default();
    let mut flat = PixelError::default();
    let mut by_class = PixelError::default();
    let fill_img = filled.column("image").context("imputed images")?;
    let fill_lab = filled.column("label").context("imputed labels")?;
    for s in 0..partial.len() {
        let truth_label = truth_lab.values()[s] as usize;
        if !part_lab.present()[s] {
            let guess = fill_lab.values()[s] as usize;
            right += usize::from(guess == truth_label);
            majority_right += usize::from(majority == truth_label);
            labels_imputed += 1;
        }
        if !part_img.present()[s] {
            let truth = truth_img.sample(s).expect("in range");
            imputed.add(truth, fill_img.sample(s).expect("in range"));
            flat.add(truth, &mean);
            by_class.add(truth, &class_mean[truth_label]);
        }
    }
    ensure!(
        labels_imputed > 0 && imputed.pixels > 0,
        "the test set has no hidden label or no hidden image to fill in"
    );
    let acc = |n: usize| n as f64 / labels_imputed as f64;
    // Cross-check with the library's metric: labels read off every test image alone.
    let all_images = eval::accuracy(model, test, Subset::single(img), lab)?;
    let visible = |c: &mvae::data::dataset::Column| c.present().iter().filter(|&&p| p).count();
    let report = serde_json::json!({
        "epochs": args.epochs,
        "hidden": args.hidden,
        "latent": LATENT,
        "seed": args.common.seed,
        "hide_labels": args.hide_labels,
        "hide_images": args.hide_images,
        "train_samples": train.len(),
        "train_labels_visible": visible(&train_lab),
        "train_images_visible": images_visible,
        "train_seconds": train_seconds,
        "test_labels_imputed": labels_imputed,
        "test_images_imputed": imputed.pixels / dim,
        "imputed_label_accuracy": acc(right),
        "majority_label_accuracy": acc(majority_right),
        "image_to_label_accuracy": all_images,
        "imputed_image_mae": imputed.mae(),
        "mean_image_mae": flat.mae(),
        "class_mean_image_mae": by_class.mae(),
        "imputed_image_bce": imputed.bce(),
        "mean_image_bce": flat.bce(),
        "class_mean_image_bce": by_class.bce(),
    });
    if args.common.json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "\ntrained {} epochs in {:.0} s on {} samples ({} with a label, {} with an image)",
        args.epochs,
        train_seconds,
        train.len(),
        visible(&train_lab),
        images_visible
    );
    println!(
        "{} hidden test labels filled from the image: {:.1}% right (most frequent label: {:.1}%)",
        labels_imputed,
        100.0 * acc(right),
        100.0 * acc(majority_right)
    );
    println!(
        "(the label read off every test image alone: {:.1}% right)",
        100.0 * all_images
    );
    println!(
        "{} hidden test images filled from the label, per pixel:",
        imputed.pixels / dim
    );
    println!("  {:<32} {:>8} {:>8}", "", "MAE", "BCE");
    for (name, e) in [
        ("imputed (MVAE posterior mean)", &imputed),
        ("mean training image", &flat),
        ("mean training image of the class", &by_class),
    ] {
        println!("  {name:<32} {:8.4} {:8.4}", e.mae(), e.bce());
    }
    Ok(())
}
