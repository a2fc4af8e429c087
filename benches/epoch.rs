//! Training throughput over whole epochs: the MVAE paper's MNIST model (batch 100, the
//! default `TrainConfig`) through `Trainer::fit_epoch`, in samples per second.
//!
//! ```text
//! cargo bench --bench epoch                       # the 3,000 bundled images, 3 epochs
//! MVAE_DATA=../shared/data EPOCHS=1 cargo bench --bench epoch   # the 60,000 images
//! ```
//! A plain timed program (`harness = false`): an epoch takes seconds, so criterion's repeated
//! sampling would take minutes. Prints each epoch and then one JSON line, which also gives the
//! process's peak resident memory after each epoch (Linux; `null` elsewhere), to show that
//! training's memory stays flat over epochs. Run without `--bench`
//! (as `cargo test --benches` does) it trains one short epoch only, as a smoke test.

use std::path::PathBuf;

use dfdx::prelude::Cpu;
use mvae::data::{Mnist, Split};
use mvae::{ModelConfig, Mvae, TrainConfig, Trainer};

#[path = "memory/mod.rs"]
mod memory;
use memory::peak_rss_mib;

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let dir = std::env::var_os("MVAE_DATA")
        .map(|d| PathBuf::from(d).join("mnist"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist"));
    let epochs: usize = match std::env::var("EPOCHS") {
        Ok(v) => v.parse()?,
        Err(_) => 3,
    };
    let (limit, epochs) = if bench {
        (None, epochs.max(1))
    } else {
        (Some(200), 1)
    };
    let data = Mnist::load(&dir, Split::Train, limit)?.into_dataset()?;
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0)?;
    let mut trainer = Trainer::new(model, TrainConfig::default())?;
    let mut rates = Vec::with_capacity(epochs);
    let mut peaks = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let m = trainer.fit_epoch(&data, |_| {})?;
        let peak = peak_rss_mib();
        eprintln!(
            "epoch {}: {} samples in {:.2} s, {:.0} samples/s, peak resident memory {} MiB",
            m.epoch,
            data.len(),
            m.seconds,
            m.samples_per_second,
            peak.map_or("?".into(), |p| format!("{p:.1}"))
        );
        rates.push(m.samples_per_second);
        peaks.push(peak);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "bench": "epoch",
            "data": dir.display().to_string(),
            "samples": data.len(),
            "rayon_threads": rayon::current_num_threads(),
            "samples_per_second": rates,
            "median_samples_per_second": sorted[sorted.len() / 2],
            "peak_rss_mib_after_epoch": peaks,
        })
    );
    Ok(())
}
