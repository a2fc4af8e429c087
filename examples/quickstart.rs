//! Quick start: train the MVAE paper's MNIST model (image + label) on the 3,000 real MNIST
//! images bundled in `examples/data/`, then generate across modalities: draw each digit from
//! its label alone, and read the label off test images alone.
//!
//! ```text
//! cargo run --release --example quickstart
//! ```
//! Takes about a minute on 2 cores. Prints the loss per epoch, the test ELBOs and accuracy, and
//! the posterior-mean image for each label 0-9 as text; writes pictures into
//! `target/quickstart/`: training curves, the latent space coloured by digit and the images
//! drawn from each label.

use anyhow::Result;
use dfdx::prelude::Cpu;
use mvae::data::{Mnist, Split};
use mvae::eval::probe::latents;
use mvae::{eval, plot, Batch, HostValues, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

const EPOCHS: usize = 10;

fn main() -> Result<()> {
    // 1. Data: the bundled sample, as two modalities named like the model's.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
    let load = |split| -> Result<_> { Ok(Mnist::load(&dir, split, None)?.into_dataset()?) };
    let (train, test) = (load(Split::Train)?, load(Split::Test)?);

    // 2. Model and training: the paper's networks, latent size 64, KL annealed over 2 epochs.
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0)?;
    let mut cfg = TrainConfig {
        epochs: EPOCHS,
        ..Default::default()
    };
    cfg.anneal_over_epochs(2.0, train.len());
    let mut trainer = Trainer::new(model, cfg)?;
    let mut history = Vec::new();
    for _ in 0..EPOCHS {
        let m = trainer.fit_epoch(&train, |_| {})?;
        history.push(m.clone());
        println!(
            "epoch {:2}  loss {:7.2}  beta {:.2}  {:5.0} samples/s",
            m.epoch, m.loss, m.beta, m.samples_per_second
        );
    }
    let model = &trainer.model;

    // 3. Evaluate on the 1,000 bundled test images.
    println!(
        "test ELBO joint {:.1}, image {:.1}, label {:.2}; label from image alone: {:.1}% right",
        eval::elbo(model, &test, model.subset(&["image", "label"])?, 1)?,
        eval::elbo(model, &test, model.subset(&["image"])?, 2)?,
        eval::elbo(model, &test, model.subset(&["label"])?, 3)?,
        100.0
            * eval::accuracy(
                model,
                &test,
                model.subset(&["image"])?,
                model.modality_index("label")?
            )?,
    );

    // 4. Cross-modal generation: encode each label alone, decode an image from the mean.
    let labels: Vec<f32> = (0..10).map(|d| d as f32).collect();
    let batch = Batch::from_host(
        model.modalities(),
        model.device(),
        &[HostValues {
            name: "label",
            values: &labels,
            present: None,
        }],
    )?;
    let q = model.encode(&batch, model.subset(&["label"])?);
    let images = model.decode_mean_of("image", q.mean())?.as_vec();
    println!("\nimages drawn from the label alone (0-9, every second pixel):");
    for row in (0..28).step_by(2) {
        let line: String = (0..10)
            .map(|d| {
                (0..28)
                    .step_by(2)
                    .map(|col| {
                        let v = images[d * 784 + row * 28 + col];
                        [' ', '.', ':', '#'][((v * 3.99) as usize).min(3)]
                    })
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join(" ");
        println!("{line}");
    }

    // 5. Pictures: curves of every loss term, the latent means of the test images (first two
    // principal components, coloured by digit), the images drawn from each label.
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");
    std::fs::create_dir_all(&out)?;
    plot::training_curves(&out.join("curves.png"), &history)?;
    let z = latents(model, &test, Subset::all(2), "label", None)?;
    let digits: Vec<usize> = z
        .column("label")
        .unwrap()
        .values()
        .iter()
        .map(|&v| v as usize)
        .collect();
    let points = plot::pca2(z.column("z").unwrap().values(), 64)?;
    plot::latent_scatter(
        &out.join("latent.png"),
        &points,
        &digits,
        "latent means of test images",
    )?;
    let opts = plot::GridOptions {
        title: "image from the label alone, 0-9".into(),
        ..Default::default()
    };
    plot::image_grid(&out.join("label_to_image.png"), &images, 28, 28, 10, &opts)?;
    println!("\npictures: {}", out.display());
    Ok(())
}
