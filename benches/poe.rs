//! The product of experts at training size: batch 100, latent 64, 2 to 4 experts with the
//! N(0, I) prior (`mvae::posterior`).
//!
//! ```text
//! cargo bench --bench poe
//! ```
//! - `product_of_experts/forward/K`: K experts in (mean, logvar) form, no masks;
//! - `product_of_experts/masked/K`: the same with every expert but the first present in half
//!   the samples (the missing-modality path);
//! - `combine/K`: experts already in precision form, as the objective reuses them per subset;
//! - `product_of_experts/forward_backward/K`: on the tape, then `backward` of the sum of the
//!   posterior's mean and logvar (what a training step pays).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dfdx::prelude::*;
use mvae::aggregation::{combine, product_of_experts};
use mvae::backend::{Latent, Vector};
use mvae::posterior::Gaussian;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const BATCH: usize = 100;
const LATENT: usize = 64;

fn latent(dev: &Cpu, rng: &mut ChaCha8Rng, scale: f32) -> Latent<LATENT, Cpu> {
    let v: Vec<f32> = (0..BATCH * LATENT)
        .map(|_| rng.gen_range(-scale..scale))
        .collect();
    dev.tensor_from_vec(v, (BATCH, Const))
}

/// `k` experts with means in (-2, 2) and log-variances in (-3, 3).
fn experts(dev: &Cpu, k: usize) -> Vec<Gaussian<LATENT, Cpu>> {
    let mut rng = ChaCha8Rng::seed_from_u64(k as u64);
    (0..k)
        .map(|_| Gaussian {
            mean: latent(dev, &mut rng, 2.0),
            logvar: latent(dev, &mut rng, 3.0),
        })
        .collect()
}

fn poe(c: &mut Criterion) {
    let dev = Cpu::default();
    let half: Vector<Cpu> =
        dev.tensor_from_vec((0..BATCH).map(|i| (i % 2) as f32).collect(), (BATCH,));
    let mut g = c.benchmark_group("product_of_experts");
    g.throughput(Throughput::Elements(BATCH as u64));
    for k in 2..=4 {
        let ex = experts(&dev, k);
        g.bench_with_input(BenchmarkId::new("forward", k), &ex, |b, ex| {
            b.iter(|| product_of_experts(ex.iter().map(|e| (e.clone(), None)).collect()))
        });
        g.bench_with_input(BenchmarkId::new("masked", k), &ex, |b, ex| {
            b.iter(|| {
                let masked = ex
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (e.clone(), (i > 0).then_some(&half)))
                    .collect();
                product_of_experts(masked)
            })
        });
        g.bench_with_input(BenchmarkId::new("forward_backward", k), &ex, |b, ex| {
            b.iter(|| {
                let taped = ex
                    .iter()
                    .map(|e| {
                        let g = Gaussian {
                            mean: e.mean.clone().leaky_traced(),
                            logvar: e.logvar.clone().leaky_traced(),
                        };
                        (g, None)
                    })
                    .collect();
                let q = product_of_experts(taped).expect("at least one expert");
                let loss = q.mean.sum::<Rank0, _>() + q.logvar.sum::<Rank0, _>();
                loss.backward()
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("combine");
    g.throughput(Throughput::Elements(BATCH as u64));
    for k in 2..=4 {
        let weighted: Vec<_> = experts(&dev, k)
            .into_iter()
            .map(|e| e.weighted(None))
            .collect();
        g.bench_with_input(BenchmarkId::from_parameter(k), &weighted, |b, w| {
            b.iter(|| combine(w.iter().map(|e| e.reuse())))
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = poe
}
criterion_main!(benches);
