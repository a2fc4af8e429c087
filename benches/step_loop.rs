//! Milliseconds per training step of the MVAE paper's MNIST model (batch 100, the first 100
//! bundled images, the default `TrainConfig`), timed over a plain loop: the program to run
//! alternately with a build of another commit when comparing two versions on this noisy VM
//! (criterion's saved baselines drift with the machine).
//!
//! ```text
//! cargo bench --bench step_loop                 # 20 warm-up steps, then 100 timed
//! STEPS=300 cargo bench --bench step_loop
//! ```
//! Prints one JSON line. Run without `--bench` (as `cargo test --benches` does) it times 3
//! steps, as a smoke test. Built with `--features profile` the line also gives the
//! milliseconds per step spent in each phase of the step (`mvae::profile`), summed over
//! threads, and `parts_idle`: the threads' time outside their own part while the parts ran
//! (waiting for the other part, or helping with its split products).

use dfdx::prelude::Cpu;
use mvae::profile::{self, Phase};
use mvae::{ModelConfig, Mvae, TrainConfig, Trainer};

/// `x` to three decimals.
fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}

#[path = "batch/mod.rs"]
mod batch;

fn main() -> anyhow::Result<()> {
    let bench = std::env::args().any(|a| a == "--bench");
    let steps: usize = match (bench, std::env::var("STEPS")) {
        (false, _) => 3,
        (true, Ok(v)) => v.parse()?,
        (true, Err(_)) => 100,
    };
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0)?;
    let (_, batch) = batch::first_hundred(&model);
    let mut trainer = Trainer::new(model, TrainConfig::default())?;
    for _ in 0..if bench { 20 } else { 1 } {
        trainer.step(&batch)?;
    }
    profile::take();
    let start = std::time::Instant::now();
    for _ in 0..steps {
        trainer.step(&batch)?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    let mut line = serde_json::json!({
        "bench": "step_loop",
        "steps": steps,
        "ms_per_step": round3(ms),
        "samples_per_second": round3(batch::BATCH as f64 * 1e3 / ms),
        "rayon_threads": rayon::current_num_threads(),
    });
    if profile::ENABLED {
        let per_step = |d: std::time::Duration| d.as_secs_f64() * 1e3 / steps as f64;
        let phases = profile::take();
        let total =
            |p: Phase| per_step(phases.iter().find(|(q, _)| *q == p).expect("every phase").1);
        let mut obj = serde_json::Map::new();
        for &(p, d) in &phases {
            obj.insert(p.name().into(), round3(per_step(d)).into());
        }
        // Each thread runs one part: what the parts' wall time leaves of the threads' time.
        let parts = <Cpu as mvae::kernels::Kernels>::training_parts(batch::BATCH);
        let threads = rayon::current_num_threads().min(parts) as f64;
        let idle =
            threads * total(Phase::Parts) - total(Phase::PartForward) - total(Phase::PartBackward);
        obj.insert("parts_idle".into(), round3(idle).into());
        line["phases_ms_per_step"] = obj.into();
    }
    println!("{line}");
    Ok(())
}
