//! Importance-weighted evaluation throughput: `mvae::eval::likelihood::log_likelihood` of the
//! MVAE paper's MNIST model on test images, in (data points x K) per second, for the joint
//! subset (image + label: both decoders per draw) and the image alone.
//!
//! ```text
//! cargo bench --bench iwae              # 100 bundled test images, K = 1000, 3 repeats
//! IWAE_SAMPLES=20 IWAE_K=5000 REPEATS=1 cargo bench --bench iwae
//! ```
//! A plain timed program (`harness = false`): one estimate takes seconds. The model is untrained
//! (its weights do not change the work). Prints each run and then one JSON line. Run without
//! `--bench` (as `cargo test --benches` does) it makes one small estimate only.

use std::path::PathBuf;
use std::time::Instant;

use dfdx::prelude::Cpu;
use mvae::data::{Mnist, Split};
use mvae::eval::likelihood::{log_likelihood, IwaeConfig};
use mvae::{ModelConfig, Mvae, Subset};

fn env_or(name: &str, default: usize) -> anyhow::Result<usize> {
    Ok(match std::env::var(name) {
        Ok(v) => v.parse()?,
        Err(_) => default,
    })
}

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let dir = std::env::var_os("MVAE_DATA")
        .map(|d| PathBuf::from(d).join("mnist"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist"));
    let (samples, k, repeats) = if bench {
        (
            env_or("IWAE_SAMPLES", 100)?,
            env_or("IWAE_K", 1000)?,
            env_or("REPEATS", 3)?,
        )
    } else {
        (5, 10, 1)
    };
    let test = Mnist::load(&dir, Split::Test, Some(samples))?.into_dataset()?;
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0)?;
    mvae::flush_denormals();
    let cfg = IwaeConfig {
        k,
        ..IwaeConfig::default()
    };
    let mut results = serde_json::Map::new();
    for (name, subset) in [
        ("image_label", Subset::all(2)),
        ("image", Subset::single(0)),
    ] {
        let mut rates = Vec::with_capacity(repeats);
        for _ in 0..repeats.max(1) {
            let start = Instant::now();
            let r = log_likelihood(&model, &test, subset, &cfg)?;
            let seconds = start.elapsed().as_secs_f64();
            let rate = (r.samples * k) as f64 / seconds;
            eprintln!(
                "{name}: {} x K={k} in {seconds:.2} s, {rate:.0} draws/s (log p = {:.2})",
                r.samples, r.log_likelihood
            );
            rates.push(rate);
        }
        let mut sorted = rates.clone();
        sorted.sort_by(f64::total_cmp);
        results.insert(
            name.into(),
            serde_json::json!({
                "samples_k_per_second": rates,
                "median": sorted[sorted.len() / 2],
            }),
        );
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "iwae",
            "data": dir.display().to_string(),
            "samples": test.len(),
            "k": k,
            "rows_per_pass": cfg.rows_per_pass,
            "rayon_threads": rayon::current_num_threads(),
            "results": results,
        })
    );
    Ok(())
}
