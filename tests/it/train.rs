//! Training learns on real data, is deterministic from a seed, and handles missing modalities.

use dfdx::prelude::Cpu;
use mvae::data::{DatasetBuilder, MultimodalDataset, Split};
use mvae::nn::{ParamMut, ParamVisitor, Parameters};
use mvae::{eval, ModelConfig, Mvae, Subset, TrainConfig, Trainer};

use crate::common;

fn weights(model: &mut Mvae<16, Cpu>) -> Vec<f32> {
    let mut all = Vec::new();
    let mut f = |_: &str, p: ParamMut<'_, Cpu>| match p {
        ParamMut::Matrix(t) => all.extend(t.as_vec()),
        ParamMut::Vector(t) => all.extend(t.as_vec()),
    };
    model.visit_params(&mut ParamVisitor::new(&mut f));
    all
}

fn small_config() -> ModelConfig {
    ModelConfig::mnist().hidden(&[64], &[64])
}

#[test]
fn same_seed_same_numbers() {
    let data = common::mnist(&common::bundled(), Split::Train, Some(300));
    let run = || {
        let model = Mvae::<16, Cpu>::new(&small_config(), &Cpu::default(), 5).unwrap();
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 50,
            seed: 9,
            ..Default::default()
        };
        let mut t = Trainer::new(model, cfg).unwrap();
        let m = t.fit_epoch(&data, |_| {}).unwrap();
        (m.loss, weights(&mut t.model))
    };
    let (a, b) = (run(), run());
    assert_eq!(a.0, b.0);
    assert!(a.1 == b.1, "weights differ between identical runs");
}

/// A data column the model does not have (a class kept for evaluation, as PolyMNIST's) is
/// left out of training and of the test ELBO: the same numbers as without the column.
#[test]
fn columns_the_model_lacks_change_nothing() {
    let with_label = common::mnist(&common::bundled(), Split::Train, Some(200));
    let image = with_label.column("image").unwrap();
    let image_only = DatasetBuilder::new()
        .column("image", 784, image.values().to_vec())
        .build()
        .unwrap();
    let config =
        ModelConfig::new(vec![mvae::ModalitySpec::new(mvae::Image::mnist())]).hidden(&[32], &[32]);
    let run = |data: &MultimodalDataset| {
        let model = Mvae::<16, Cpu>::new(&config, &Cpu::default(), 3).unwrap();
        let cfg = TrainConfig {
            epochs: 1,
            batch_size: 50,
            seed: 4,
            ..Default::default()
        };
        let mut t = Trainer::new(model, cfg).unwrap();
        let m = t.fit_epoch(data, |_| {}).unwrap();
        let elbo = eval::elbo(&t.model, data, Subset::all(1), 1).unwrap();
        (m.loss, elbo, weights(&mut t.model))
    };
    let (a, b) = (run(&with_label), run(&image_only));
    assert_eq!((a.0, a.1), (b.0, b.1));
    assert!(a.2 == b.2, "weights differ");
    // A modality with no column (a misnamed one) is refused, not trained without.
    let misnamed = DatasetBuilder::new()
        .column("img", 784, image.values().to_vec())
        .build()
        .unwrap();
    let model = Mvae::<16, Cpu>::new(&config, &Cpu::default(), 3).unwrap();
    let mut t = Trainer::new(model, TrainConfig::default()).unwrap();
    let err = t.fit_epoch(&misnamed, |_| {}).unwrap_err().to_string();
    assert!(err.contains("image") && err.contains("img"), "{err}");
}

/// Drops `label` from every fourth sample.
fn half_labelled(data: &MultimodalDataset) -> MultimodalDataset {
    let (img, lab) = (data.column("image").unwrap(), data.column("label").unwrap());
    let present = (0..data.len()).map(|i| i % 4 != 0).collect();
    DatasetBuilder::new()
        .column("image", 784, img.values().to_vec())
        .column_with_mask("label", 1, lab.values().to_vec(), present)
        .build()
        .unwrap()
}

const EPOCHS: usize = 8;

/// The paper's model on the bundled 3,000 real MNIST images: after 8 epochs (240 steps) the test ELBOs
/// beat the untrained model by a wide margin and the image alone predicts the label well above
/// chance (10%); a quarter of the labels are missing, so this also trains through the masks.
#[test]
fn learns_on_real_mnist_with_missing_labels() {
    let dir = common::bundled();
    let train = half_labelled(&common::mnist(&dir, Split::Train, None));
    let test = common::mnist(&dir, Split::Test, Some(500));
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0).unwrap();
    let before = eval::elbo(&model, &test, Subset::all(2), 1).unwrap();
    let mut cfg = TrainConfig {
        epochs: EPOCHS,
        ..Default::default()
    };
    cfg.anneal_over_epochs(1.0, train.len());
    let mut t = Trainer::new(model, cfg).unwrap();
    let mut losses = Vec::new();
    for _ in 0..EPOCHS {
        let m = t.fit_epoch(&train, |_| {}).unwrap();
        let joint = &m.terms.iter().find(|x| x.name == "joint").unwrap();
        assert_eq!(joint.samples, 3000);
        let label = &m.terms.iter().find(|x| x.name == "label").unwrap();
        assert_eq!(label.samples, 2250);
        losses.push(m.loss);
    }
    assert!(losses[EPOCHS - 1] < losses[0], "{losses:?}");
    let after = eval::elbo(&t.model, &test, Subset::all(2), 1).unwrap();
    let img = eval::elbo(&t.model, &test, Subset::single(0), 1).unwrap();
    let acc = eval::accuracy(&t.model, &test, Subset::single(0), 1).unwrap();
    eprintln!("joint ELBO {before:.1} -> {after:.1}, image ELBO {img:.1}, accuracy {acc:.3}");
    // Measured here: -560 -> -181, image -180, accuracy 0.31 (seed 0). The bounds leave room
    // for other seeds but fail for a model that does not learn (chance accuracy is 0.1).
    assert!(after > before + 300.0, "{before} -> {after}");
    assert!(img > -200.0, "{img}");
    assert!(acc > 0.2, "{acc}");
}

/// One epoch of the paper's recipe on the 60,000 training images (as `examples/mnist.rs` with
/// `--epochs 1 --anneal-epochs 1`), judged against the PyTorch figures of the issue for the
/// same model and training: test ELBOs -132 (joint), -127 (image), -8.5 (label) and
/// image-to-label accuracy 0.60. Seed-to-seed spread of one epoch is about +-1.5 nats and
/// +-0.05 accuracy (docs/performance.md), so each bound allows that much.
#[test]
#[ignore = "needs MVAE_DATA"]
fn one_epoch_on_full_mnist_is_as_good_as_pytorch() {
    let dir = common::full_data().expect("MVAE_DATA");
    let train = common::mnist(&dir, Split::Train, None);
    let test = common::mnist(&dir, Split::Test, None);
    let model = Mvae::<64, Cpu>::new(&ModelConfig::mnist(), &Cpu::default(), 0).unwrap();
    let mut cfg = TrainConfig {
        epochs: 1,
        ..Default::default()
    };
    cfg.anneal_over_epochs(1.0, train.len());
    let mut t = Trainer::new(model, cfg).unwrap();
    t.fit_epoch(&train, |_| {}).unwrap();
    let m = &t.model;
    let joint = eval::elbo(m, &test, Subset::all(2), 1).unwrap();
    let image = eval::elbo(m, &test, Subset::single(0), 2).unwrap();
    let label = eval::elbo(m, &test, Subset::single(1), 3).unwrap();
    let acc = eval::accuracy(m, &test, Subset::single(0), 1).unwrap();
    eprintln!("joint {joint:.2} image {image:.2} label {label:.3} accuracy {acc:.4}");
    assert!(joint > -132.0 - 1.5, "{joint}");
    assert!(image > -127.0 - 1.5, "{image}");
    assert!(label > -8.5 - 0.5, "{label}");
    assert!(acc > 0.60 - 0.05, "{acc}");
}
