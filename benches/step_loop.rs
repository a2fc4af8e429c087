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
//! steps, as a smoke test.

use dfdx::prelude::Cpu;
use mvae::{ModelConfig, Mvae, TrainConfig, Trainer};

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
    let start = std::time::Instant::now();
    for _ in 0..steps {
        trainer.step(&batch)?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / steps as f64;
    println!(
        "{{\"bench\":\"step_loop\",\"steps\":{steps},\"ms_per_step\":{ms:.3},\"samples_per_second\":{:.1},\"rayon_threads\":{}}}",
        batch::BATCH as f64 * 1e3 / ms,
        rayon::current_num_threads()
    );
    Ok(())
}
