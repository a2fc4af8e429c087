//! Loading benchmark: full MNIST (train + test) and all FSDD clips with
//! spectrogram features. Reads the data from `MVAE_DATA` (the folder holding
//! `mnist/` and `fsdd/`), else `../shared/data`; skips when neither exists.

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use mvae::data::{Fsdd, FsddOptions, Mnist, SpectrogramConfig, Split};

fn data_root() -> Option<PathBuf> {
    let root = std::env::var_os("MVAE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    root.join("mnist").is_dir().then_some(root)
}

fn load(c: &mut Criterion) {
    let Some(root) = data_root() else {
        eprintln!("skipping: set MVAE_DATA to the folder holding mnist/ and fsdd/");
        return;
    };
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    let mnist = root.join("mnist");
    group.bench_function("mnist_train_and_test", |b| {
        b.iter(|| {
            let train = Mnist::load(&mnist, Split::Train, None).expect("mnist train");
            let test = Mnist::load(&mnist, Split::Test, None).expect("mnist test");
            (train.len(), test.len())
        })
    });
    let recordings = root.join("fsdd").join("recordings");
    let config = SpectrogramConfig::default();
    group.bench_function("fsdd_all_clips_2_threads", |b| {
        b.iter(|| {
            Fsdd::load(&recordings, &config, &FsddOptions::default())
                .expect("fsdd")
                .len()
        })
    });
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
