//! Training's peak memory stays flat over epochs: nothing a step allocates (deferred weight
//! gradients, pooled weight copies, Adam's buffers, the tape) may pile up from step to step.
//!
//! A test binary of its own, because it reads the whole process's peak resident memory
//! (`VmHWM` in `/proc/self/status`, Linux only): in the shared `it` binary other tests would
//! allocate beside it.

use std::path::PathBuf;

use dfdx::prelude::Cpu;
use mvae::data::{Mnist, Split};
use mvae::{ModelConfig, Mvae, TrainConfig, Trainer};

#[path = "../benches/memory/mod.rs"]
mod memory;
use memory::peak_rss_mib;

/// The paper's MNIST model on 1,000 bundled images for 12 epochs (120 steps): after the first
/// three epochs (everything allocated once is in place) the peak grows by less than 8 MiB.
/// Measured here: 0.8 MiB (87.7 to 88.5; 86.3 after the first epoch). A leak of one
/// weight-sized buffer per step would add about 1.6 MiB a step, 140 MiB over the nine epochs.
#[test]
fn peak_memory_stays_flat_over_epochs() {
    if peak_rss_mib().is_none() {
        eprintln!("no /proc/self/status: skipped");
        return;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
    let data = Mnist::load(&dir, Split::Train, Some(1000))
        .expect("the bundled MNIST sample loads")
        .into_dataset()
        .expect("a valid data set");
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0).unwrap();
    let mut trainer = Trainer::new(model, TrainConfig::default()).unwrap();
    let mut peaks = Vec::new();
    for _ in 0..12 {
        trainer.fit_epoch(&data, |_| {}).unwrap();
        peaks.push(peak_rss_mib().unwrap());
    }
    eprintln!("peak resident memory after each epoch, MiB: {peaks:.1?}");
    let growth = peaks[11] - peaks[2];
    assert!(
        growth < 8.0,
        "peak memory grew by {growth:.1} MiB over epochs 4-12: {peaks:.1?}"
    );
}
