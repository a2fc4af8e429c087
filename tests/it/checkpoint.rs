//! Checkpoints written by an earlier build still load: `tests/data/checkpoints/` holds a model
//! and a training checkpoint of a tiny model in format version 1 (see its README), and these
//! tests read them with today's code and compare its outputs with the values recorded when
//! they were written.
//!
//! `write_checkpoints` rewrites the files; it is ignored and writes only with
//! `MVAE_WRITE_CHECKPOINTS=1`, so an ordinary run never changes them.

use std::path::PathBuf;

use dfdx::prelude::*;
use mvae::checkpoint::{self, FORMAT_VERSION};
use mvae::data::{DatasetBuilder, MultimodalDataset};
use mvae::likelihood::Variance;
use mvae::{
    AggregationKind, Batch, Codec, Codecs, Continuous, HostValues, Image, Label, ModalitySpec,
    ModelConfig, Mvae, TrainConfig, Trainer,
};

/// The latent size of the tiny model.
const L: usize = 2;

type Tiny = Mvae<L, Cpu>;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/checkpoints")
}

fn model_path() -> PathBuf {
    dir().join("model-v1.safetensors")
}

fn training_path() -> PathBuf {
    dir().join("training-v1.safetensors")
}

/// A 2 x 2 image, 3 classes and a 2-vector with a learned variance; hidden sizes of 3.
fn tiny_config() -> ModelConfig {
    ModelConfig::new(vec![
        ModalitySpec::new(Image::new("image", 2, 2))
            .encoder_hidden(&[3])
            .decoder_hidden(&[3]),
        ModalitySpec::new(Label::new("label", 3))
            .encoder_hidden(&[3])
            .decoder_hidden(&[3, 3])
            .weight(5.0),
        ModalitySpec::new(Continuous::new("point", 2, Variance::Learned))
            .encoder_hidden(&[3])
            .decoder_hidden(&[3]),
    ])
}

fn train_config() -> TrainConfig {
    TrainConfig {
        epochs: 3,
        batch_size: 4,
        seed: 17,
        ..Default::default()
    }
}

fn codecs() -> Codecs {
    Codecs::from([
        ("image".to_string(), Codec::grey_image(2, 2)),
        ("label".to_string(), Codec::label(3)),
    ])
}

/// Eight samples; sample `i` has label `i % 3`, and every third lacks its point.
fn data() -> MultimodalDataset {
    let n = 8;
    let image = (0..n * 4).map(|k| ((k * 7) % 11) as f32 / 10.0).collect();
    let labels: Vec<u8> = (0..n).map(|i| (i % 3) as u8).collect();
    let point = (0..n * 2).map(|k| (k as f32 - 7.5) / 4.0).collect();
    let present = (0..n).map(|i| i % 3 != 2).collect();
    DatasetBuilder::new()
        .column("image", 4, image)
        .labels("label", &labels)
        .column_with_mask("point", 2, point, present)
        .build()
        .expect("a valid data set")
}

/// Three samples: all modalities, the image alone, and the label with the point.
fn batch(model: &Tiny) -> Batch<Cpu> {
    let image = [0.0, 0.5, 1.0, 0.25, 0.9, 0.1, 0.3, 0.7, 0.0, 0.0, 0.0, 0.0];
    let label = [2.0, 0.0, 1.0];
    let point = [0.5, -1.0, 0.0, 0.0, -2.0, 1.5];
    let given = [
        HostValues {
            name: "image",
            values: &image,
            present: Some(&[true, true, false]),
        },
        HostValues {
            name: "label",
            values: &label,
            present: Some(&[true, false, true]),
        },
        HostValues {
            name: "point",
            values: &point,
            present: Some(&[true, false, true]),
        },
    ];
    Batch::from_host(model.modalities(), model.device(), &given).expect("a valid batch")
}

/// Two fixed latents, `(2, L)`.
fn latents(model: &Tiny) -> Tensor<(usize, Const<L>), f32, Cpu> {
    model
        .device()
        .tensor_from_vec(vec![0.0, 0.0, 1.5, -0.75], (2, Const::<L>))
}

/// The outputs the tests compare: the posterior mean and log-variance of [`batch`] given every
/// modality, then each modality's `decode_mean` of [`latents`], flattened.
fn outputs(model: &Tiny) -> Vec<f32> {
    let q = model.encode_all(&batch(model));
    let q = q
        .as_gaussian()
        .expect("the product of experts is a Gaussian");
    let mut out = q.mean.as_vec();
    out.extend(q.logvar.as_vec());
    for m in 0..model.modalities().len() {
        out.extend(model.decode_mean(m, latents(model)).as_vec());
    }
    out
}

/// [`outputs`] of the model in `model-v1.safetensors`, when it was written.
const MODEL_OUTPUTS: [f32; 30] = [
    0.26964867,
    0.23762241,
    0.14785986,
    -0.037655257,
    -0.012500249,
    0.3290217,
    -1.4150435,
    -1.3365176,
    -0.55151594,
    -0.44720083,
    -0.9874613,
    -1.2848403,
    0.43507954,
    0.5999914,
    0.6169644,
    0.37597695,
    0.38458627,
    0.7125942,
    0.6519409,
    0.36726853,
    0.39304543,
    0.23115051,
    0.37580407,
    0.41356963,
    0.22627474,
    0.3601556,
    0.18301614,
    0.12118718,
    0.29580122,
    0.18322992,
];

/// [`outputs`] of the model in `training-v1.safetensors`, when it was written.
const TRAINED_OUTPUTS: [f32; 30] = [
    -0.2417661,
    -0.039484065,
    -0.1939874,
    0.095387146,
    -0.35942942,
    0.025213923,
    -1.3835341,
    -1.506487,
    -0.7229679,
    -0.8620994,
    -0.8532183,
    -1.2013854,
    0.44478312,
    0.62768394,
    0.6213049,
    0.38623732,
    0.45832676,
    0.63598615,
    0.6365704,
    0.3916199,
    0.3158471,
    0.31550446,
    0.36864847,
    0.4078528,
    0.29834124,
    0.29380593,
    -0.4775722,
    0.149719,
    -0.70074034,
    -0.091991894,
];

/// The loss of the epoch that follows the training checkpoint (its third), as recorded.
const NEXT_EPOCH_LOSS: f64 = 23.388751953840256;

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-6, "{what}[{i}]: got {g}, recorded {w}");
    }
}

#[test]
fn model_checkpoint_of_format_1_loads() {
    let info = checkpoint::read_info(model_path()).unwrap();
    assert_eq!(info.format_version, 1);
    assert!(info.format_version <= FORMAT_VERSION);
    assert_eq!(info.latent_size, L);
    assert_eq!(info.model, tiny_config());
    assert!(info.training.is_none());
    assert!(info.codecs.is_empty());

    let model = Tiny::load(model_path(), &Cpu::default()).unwrap();
    assert_eq!(model.config(), &tiny_config());
    // A checkpoint written before `ModelConfig::aggregation` existed has no such field: it
    // loads as a product-of-experts model.
    let bytes = std::fs::read(model_path()).unwrap();
    assert!(!bytes.windows(11).any(|w| w == b"aggregation"));
    assert_eq!(
        model.config().aggregation,
        AggregationKind::ProductOfExperts
    );
    assert_close(&outputs(&model), &MODEL_OUTPUTS, "model outputs");

    // Also into an existing model of the same architecture.
    let mut other = Tiny::new(&tiny_config(), &Cpu::default(), 99).unwrap();
    other.load_weights(model_path()).unwrap();
    assert_close(
        &outputs(&other),
        &MODEL_OUTPUTS,
        "outputs after load_weights",
    );
}

#[test]
fn training_checkpoint_of_format_1_resumes() {
    let info = checkpoint::read_info(training_path()).unwrap();
    assert_eq!(info.model, tiny_config());
    assert_eq!(info.codecs, codecs());
    let t = info.training.expect("training state");
    assert_eq!(t.config, train_config());
    assert_eq!((t.epoch, t.step, t.adam_steps), (2, 4, 4));

    let model = Tiny::load(training_path(), &Cpu::default()).unwrap();
    assert_eq!(
        model.config().aggregation,
        AggregationKind::ProductOfExperts
    );
    assert_close(&outputs(&model), &TRAINED_OUTPUTS, "trained model outputs");

    let mut trainer = Trainer::<L, Cpu>::resume(training_path(), &Cpu::default()).unwrap();
    assert_eq!(trainer.config(), &train_config());
    assert_eq!((trainer.epochs_done(), trainer.steps()), (2, 4));
    assert_eq!(trainer.codecs, codecs());
    assert_close(
        &outputs(&trainer.model),
        &TRAINED_OUTPUTS,
        "resumed model outputs",
    );
    let m = trainer.fit_epoch(&data(), |_| {}).unwrap();
    assert_eq!((m.epoch, m.step), (3, 6));
    assert!(
        (m.loss - NEXT_EPOCH_LOSS).abs() <= 1e-6 * NEXT_EPOCH_LOSS.abs().max(1.0),
        "loss of the resumed epoch: got {}, recorded {NEXT_EPOCH_LOSS}",
        m.loss
    );
    let stats = trainer.step(&batch(&trainer.model)).unwrap();
    assert!(stats.iter().all(|(_, s)| s.loss.is_finite()));
}

/// Writes the two checkpoints with this build and prints the values to record above. Run it
/// only to replace the files (then update their README):
/// `MVAE_WRITE_CHECKPOINTS=1 cargo test --test it write_checkpoints -- --ignored --nocapture`.
#[test]
#[ignore = "rewrites tests/data/checkpoints; needs MVAE_WRITE_CHECKPOINTS=1"]
fn write_checkpoints() {
    if std::env::var_os("MVAE_WRITE_CHECKPOINTS").is_none() {
        eprintln!("MVAE_WRITE_CHECKPOINTS is not set: nothing written");
        return;
    }
    let dev = Cpu::default();
    std::fs::create_dir_all(dir()).unwrap();
    let model = Tiny::new(&tiny_config(), &dev, 2024).unwrap();
    model.save(model_path()).unwrap();
    let model_outputs = outputs(&model);

    let mut trainer =
        Trainer::new(Tiny::new(&tiny_config(), &dev, 7).unwrap(), train_config()).unwrap();
    trainer.codecs = codecs();
    let data = data();
    for _ in 0..2 {
        trainer.fit_epoch(&data, |_| {}).unwrap();
    }
    trainer.save(training_path()).unwrap();
    let trained_outputs = outputs(&trainer.model);
    let next = trainer.fit_epoch(&data, |_| {}).unwrap();

    let list = |v: &[f32]| {
        v.iter()
            .map(|x| format!("{x:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "const MODEL_OUTPUTS: [f32; {}] = [{}];",
        model_outputs.len(),
        list(&model_outputs)
    );
    println!(
        "const TRAINED_OUTPUTS: [f32; {}] = [{}];",
        trained_outputs.len(),
        list(&trained_outputs)
    );
    println!("const NEXT_EPOCH_LOSS: f64 = {:?};", next.loss);
}
