//! One training step of the MVAE paper's MNIST model (batch 100, joint + image + label ELBOs,
//! Adam), through the library and through a bare dfdx program of the same model, so the two
//! can be compared on one machine in one run; and the same model's step with each mixture
//! aggregation and its objective (`mvae_moe`, `mvae_mopoe`).
//!
//! ```text
//! cargo bench --bench train_step
//! ```
//! Data: the first 100 images of the sample bundled in `examples/data`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use mvae::{AggregationKind, ModelConfig, Mvae, TrainConfig, Trainer};

use batch::BATCH;

fn library_step(c: &mut Criterion) {
    let dev = Cpu::default();
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &dev, 0).unwrap();
    let (m, batch) = batch::first_hundred(&model);
    let mut trainer = Trainer::new(model, TrainConfig::default()).unwrap();
    let mut g = c.benchmark_group("train_step");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(30);
    g.bench_function("mvae", |b| b.iter(|| trainer.step(&batch).unwrap()));
    let mut bare = bare::Bare::new(&dev);
    let x: Tensor<(usize, Const<784>), f32, Cpu> =
        dev.tensor_from_vec(m.images.clone(), (BATCH, Const));
    let y: Tensor<(usize,), usize, Cpu> =
        dev.tensor_from_vec(m.labels.iter().map(|&l| l as usize).collect(), (BATCH,));
    g.bench_function("bare_dfdx", |b| b.iter(|| bare.step(&x, &y)));
    for kind in AggregationKind::ALL {
        if kind == AggregationKind::ProductOfExperts {
            continue;
        }
        let config = ModelConfig::mnist().aggregation(kind);
        let model = Mvae::<64, Cpu>::new(&config, &dev, 0).unwrap();
        let mut trainer = Trainer::new(model, TrainConfig::default()).unwrap();
        g.bench_function(format!("mvae_{kind}"), |b| {
            b.iter(|| trainer.step(&batch).unwrap())
        });
    }
    g.finish();
}

#[path = "bare/mod.rs"]
mod bare;
#[path = "batch/mod.rs"]
mod batch;

criterion_group!(benches, library_step);
criterion_main!(benches);
