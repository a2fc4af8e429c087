//! Does the GPU compute what the CPU computes, and how much faster? The MVAE paper's MNIST model
//! (`ModelConfig::mnist()`, latent 64, with `--aggregation KIND`: poe by default, or a mixture)
//! is built from one seed on the CPU and, in a build with
//! `--features cuda`, on the GPU; both take the same training steps on the same real batches
//! (the training noise is drawn on the host, so it is the same too), then the losses and the
//! weights are compared, training steps and an IWAE evaluation are timed on each, and one JSON
//! line is printed.
//!
//! ```text
//! cargo run --release --example cuda_check             # the CPU half ("cuda_built": false)
//! scripts/build-cuda.sh && target/cuda-bin/cuda_check  # both halves, on a machine with a GPU
//! ```
//! Exits with 1 when both halves ran and they disagree beyond the tolerances below. Data:
//! `--data DIR` or `MVAE_DATA` (a folder with `mnist/`), else the sample in `examples/data`.
//! `--help` lists the flags.

mod common;
use common::at_least_one;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Parser;
use dfdx::prelude::*;
use mvae::data::{BatchOptions, HostBatch, Mnist, MultimodalDataset, Split};
use mvae::eval::likelihood::{log_likelihood, IwaeConfig};
use mvae::nn::{ParamMut, ParamVisitor, Parameters};
use mvae::{AggregationKind, Backend, Batch, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

// The tolerances are about 40x (loss, weights) and 10x (IWAE) what the first GPU run measured
// (H200, 2026-11-28: 2.7e-7, 1.3e-6 and 9.4e-7; docs/cuda.md), as room for another GPU's or
// BLAS's rounding. They were 1e-3 before any GPU run.

/// Relative difference allowed between the two devices' losses, at every compared step.
const LOSS_RTOL: f64 = 1e-5;
/// Allowed `|w_gpu - w_cpu| / |w_cpu|` (Euclidean norms over all weights) after the steps. Adam
/// normalises each update to about `lr`, so a gradient that rounds to the other sign moves a
/// weight by up to `2 lr` per step: single weights may differ by that much, the whole vector not.
const PARAM_RTOL: f64 = 5e-5;
/// Allowed relative difference of the IWAE estimates (same draws, weights trained alike).
const IWAE_RTOL: f64 = 1e-5;
/// Training batch size (the paper's).
const BATCH: usize = 100;

/// Train the MVAE paper's MNIST model on the CPU and on the GPU from one seed with the same
/// batches, compare losses, weights and an IWAE estimate, time both, print one JSON line. Exits
/// with 1 when both halves ran and disagree beyond the tolerances.
#[derive(Parser, Debug)]
#[command(name = "cuda_check")]
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct Args {
    /// Folder holding mnist/ [default: $MVAE_DATA, else the sample bundled in examples/data]
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Training steps compared between the devices
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = at_least_one)]
    steps: usize,
    /// Training steps timed on each device, after the compared ones
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = at_least_one)]
    timed_steps: usize,
    /// Test images of the IWAE estimate
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = at_least_one)]
    iwae_samples: usize,
    /// Importance samples per test image
    #[arg(long, value_name = "K", default_value_t = 1000, value_parser = at_least_one)]
    k: usize,
    /// How experts are combined (poe, moe, mopoe, mmvae-plus), and with it the objective
    #[arg(long, value_name = "KIND", default_value = "poe")]
    aggregation: AggregationKind,
    /// Weight of the contrastive term (0 = off), compared on both devices like the rest
    #[arg(long, value_name = "W", default_value_t = 0.0)]
    contrastive: f32,
    /// Seed of the weights and the noise (the same on both devices)
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Run the CPU half only
    #[arg(long)]
    no_cuda: bool,
}

/// What one device did.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct DeviceRun {
    /// Total loss (sum of the terms' mean losses) at each compared step.
    losses: Vec<f64>,
    /// Every weight after the compared steps, in the visitor's order.
    params: Vec<f32>,
    steps_per_second: f64,
    iwae: f64,
    iwae_seconds: f64,
}

impl DeviceRun {
    fn json(&self, a: &Args) -> serde_json::Value {
        serde_json::json!({
            "losses": self.losses,
            "steps_per_second": self.steps_per_second,
            "samples_per_second": self.steps_per_second * BATCH as f64,
            "iwae_log_likelihood": self.iwae,
            "iwae_seconds": self.iwae_seconds,
            "iwae_samples_k_per_second":
                (a.iwae_samples * a.k) as f64 / self.iwae_seconds,
        })
    }
}

/// Copies every weight to the host.
fn weights<D: Backend>(model: &mut Mvae<64, D>) -> Vec<f32> {
    let mut all = Vec::new();
    let mut f = |_: &str, p: ParamMut<'_, D>| match p {
        ParamMut::Matrix(t) => all.extend(t.as_vec()),
        ParamMut::Vector(t) => all.extend(t.as_vec()),
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    all
}

/// Trains `a.steps` compared steps and `a.timed_steps` timed ones on `hosts` (in turn), then
/// times the IWAE estimate of `log p(image, label)` on `test`. `sync` waits for the device.
fn run_on<D: Backend>(
    dev: D,
    sync: impl Fn(&D),
    hosts: &[HostBatch],
    test: &MultimodalDataset,
    a: &Args,
) -> Result<DeviceRun> {
    let config = ModelConfig::mnist()
        .aggregation(a.aggregation)
        .with_default_private(64)
        .contrastive(a.contrastive);
    let model = Mvae::<64, D>::new(&config, &dev, a.seed)?;
    let cfg = TrainConfig {
        seed: a.seed,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(model, cfg)?;
    let batches = hosts
        .iter()
        .map(|h| Batch::from_host_batch(trainer.model.modalities(), &dev, h))
        .collect::<mvae::Result<Vec<_>>>()?;
    let mut losses = Vec::with_capacity(a.steps);
    for s in 0..a.steps {
        let stats = trainer.step(&batches[s % batches.len()])?;
        losses.push(stats.iter().map(|(_, t)| t.loss).sum());
    }
    let params = weights(&mut trainer.model);

    sync(&dev);
    let start = Instant::now();
    for s in 0..a.timed_steps {
        trainer.step(&batches[(a.steps + s) % batches.len()])?;
    }
    sync(&dev);
    let steps_per_second = a.timed_steps as f64 / start.elapsed().as_secs_f64();

    let iwae_cfg = IwaeConfig {
        k: a.k,
        seed: a.seed,
        max_samples: Some(a.iwae_samples),
        ..IwaeConfig::default()
    };
    let start = Instant::now();
    let report = log_likelihood(&trainer.model, test, Subset::all(2), &iwae_cfg)?;
    sync(&dev);
    Ok(DeviceRun {
        losses,
        params,
        steps_per_second,
        iwae: report.log_likelihood,
        iwae_seconds: start.elapsed().as_secs_f64(),
    })
}

/// The comparison of the two runs, and whether it is within the tolerances.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
fn compare(cpu: &DeviceRun, gpu: &DeviceRun) -> (serde_json::Value, bool) {
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(1e-12);
    let loss_rel = cpu
        .losses
        .iter()
        .zip(&gpu.losses)
        .map(|(&a, &b)| rel(a, b))
        .fold(0.0, f64::max);
    let (mut diff2, mut norm2, mut max_abs) = (0.0f64, 0.0f64, 0.0f64);
    for (&a, &b) in cpu.params.iter().zip(&gpu.params) {
        let d = f64::from(a) - f64::from(b);
        diff2 += d * d;
        norm2 += f64::from(a) * f64::from(a);
        max_abs = max_abs.max(d.abs());
    }
    let param_rel = (diff2 / norm2.max(1e-300)).sqrt();
    let iwae_rel = rel(cpu.iwae, gpu.iwae);
    let pass = cpu.params.len() == gpu.params.len()
        && loss_rel <= LOSS_RTOL
        && param_rel <= PARAM_RTOL
        && iwae_rel <= IWAE_RTOL;
    let json = serde_json::json!({
        "loss_max_rel_diff": loss_rel,
        "param_rel_l2_diff": param_rel,
        "param_max_abs_diff": max_abs,
        "iwae_rel_diff": iwae_rel,
        "tolerances": {"loss": LOSS_RTOL, "params": PARAM_RTOL, "iwae": IWAE_RTOL},
        "train_speedup": gpu.steps_per_second / cpu.steps_per_second,
        "iwae_speedup": cpu.iwae_seconds / gpu.iwae_seconds,
    });
    (json, pass)
}

fn main() -> Result<()> {
    let a = Args::parse();
    let dir = common::data_root(a.data.as_deref()).join("mnist");
    // The batches of the compared and timed steps, in data order (at most 50 distinct ones).
    let n_train = (BATCH * (a.steps + a.timed_steps)).min(BATCH * 50);
    let train = Mnist::load(&dir, Split::Train, Some(n_train))?.into_dataset()?;
    let test = Mnist::load(&dir, Split::Test, Some(a.iwae_samples))?.into_dataset()?;
    let options = BatchOptions {
        shuffle: false,
        drop_last: true,
        ..BatchOptions::new(BATCH, 0)
    };
    let mut hosts = Vec::new();
    let mut it = train.batches(&options)?;
    let mut host = HostBatch::default();
    while it.next_into(&mut host) {
        hosts.push(host.clone());
    }
    if hosts.is_empty() {
        bail!("{} has fewer than {BATCH} training images", dir.display());
    }

    let cpu = run_on(Cpu::default(), |_| {}, &hosts, &test, &a)?;
    let mut report = serde_json::json!({
        "model": "ModelConfig::mnist(), latent 64, batch 100",
        "aggregation": a.aggregation.name(),
        "contrastive": a.contrastive,
        "data": dir.display().to_string(),
        "steps_compared": a.steps,
        "timed_steps": a.timed_steps,
        "iwae_samples": test.len(),
        "k": a.k,
        "seed": a.seed,
        "rayon_threads": rayon_threads(),
        "cpu": cpu.json(&a),
    });
    let pass = gpu_half(&cpu, &hosts, &test, &a, &mut report)?;
    report["cuda_built"] = cfg!(feature = "cuda").into();
    println!("{report}");
    if !pass {
        std::process::exit(1);
    }
    Ok(())
}

/// Runs the GPU half, adds it and the comparison to `report`; false when they disagree.
#[cfg(feature = "cuda")]
fn gpu_half(
    cpu: &DeviceRun,
    hosts: &[HostBatch],
    test: &MultimodalDataset,
    a: &Args,
    report: &mut serde_json::Value,
) -> Result<bool> {
    if a.no_cuda {
        report["note"] = "--no-cuda: CPU half only".into();
        return Ok(true);
    }
    let dev = mvae::backend::cuda_device(a.seed)?;
    let gpu = run_on(dev, |d: &Cuda| d.synchronize(), hosts, test, a)?;
    let (cmp, ok) = compare(cpu, &gpu);
    report["cuda"] = gpu.json(a);
    report["compare"] = cmp;
    report["pass"] = ok.into();
    Ok(ok)
}

/// Without the `cuda` feature there is no GPU half.
#[cfg(not(feature = "cuda"))]
fn gpu_half(
    _: &DeviceRun,
    _: &[HostBatch],
    _: &MultimodalDataset,
    _: &Args,
    report: &mut serde_json::Value,
) -> Result<bool> {
    report["note"] = "cuda not built: CPU half only (build with scripts/build-cuda.sh)".into();
    Ok(true)
}

/// Threads in rayon's pool (the CPU matrix products run there).
fn rayon_threads() -> usize {
    rayon::current_num_threads()
}
