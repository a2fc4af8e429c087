//! The batch the step benchmarks train on: the first 100 images of the MNIST sample bundled in
//! `examples/data`, with their labels.

use dfdx::prelude::Cpu;
use mvae::data::{Mnist, Split};
use mvae::{Batch, HostValues, Mvae};

/// Samples per step.
pub const BATCH: usize = 100;

/// The bundled sample's first [`BATCH`] images and labels, and the same as a batch for `model`.
pub fn first_hundred(model: &Mvae<64, Cpu>) -> (Mnist, Batch<Cpu>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
    let m = Mnist::load(&dir, Split::Train, Some(BATCH)).expect("bundled MNIST sample");
    let labels: Vec<f32> = m.labels.iter().map(|&l| f32::from(l)).collect();
    let batch = Batch::from_host(
        model.modalities(),
        model.device(),
        &[
            HostValues {
                name: "image",
                values: &m.images,
                present: None,
            },
            HostValues {
                name: "label",
                values: &labels,
                present: None,
            },
        ],
    )
    .expect("the sample fits the MNIST model");
    (m, batch)
}
