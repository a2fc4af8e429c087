//! The evaluation suite on a model trained on the bundled real MNIST sample: coherence and
//! probes far above chance, and the likelihood bounds in the right order.

use dfdx::prelude::Cpu;
use mvae::data::Split;
use mvae::eval::{self, likelihood::IwaeConfig, EvalConfig};
use mvae::{ModelConfig, Mvae, Subset, TrainConfig, Trainer};

use crate::common;

const EPOCHS: usize = 10;

fn small_config() -> ModelConfig {
    ModelConfig::mnist().hidden(&[256, 256], &[256, 256])
}

/// A small MVAE trained 10 epochs on the 3,000 bundled images (about 30 s with the dev
/// profile), then the whole suite with K = 100 on 100 test images.
#[test]
fn trained_model_is_coherent_and_its_latents_are_linearly_separable() {
    let dir = common::bundled();
    let train = common::mnist(&dir, Split::Train, None);
    let test = common::mnist(&dir, Split::Test, Some(500));
    let t0 = std::time::Instant::now();
    let model = Mvae::<16, Cpu>::new(&small_config(), &Cpu::default(), 0).unwrap();
    let mut cfg = TrainConfig {
        epochs: EPOCHS,
        ..Default::default()
    };
    cfg.anneal_over_epochs(1.0, train.len());
    let mut t = Trainer::new(model, cfg).unwrap();
    for _ in 0..EPOCHS {
        t.fit_epoch(&train, |_| {}).unwrap();
    }
    let trained = std::time::Instant::now();
    let mut ecfg = EvalConfig::default();
    ecfg.iwae.k = 100;
    ecfg.iwae.max_samples = Some(100);
    ecfg.coherence.classifier.epochs = 3;
    let report = eval::evaluate(&t.model, &train, &test, &ecfg).unwrap();
    eprintln!(
        "train {:.1} s, evaluate {:.1} s\n{}",
        (trained - t0).as_secs_f64(),
        trained.elapsed().as_secs_f64(),
        serde_json::to_string_pretty(&report).unwrap()
    );
    let c = &report.coherence;
    assert_eq!(c.classes, 10);
    let judge = c.judges.iter().find(|j| j.modality == "image").unwrap();
    assert!(judge.test_accuracy.unwrap() > 0.85, "{judge:?}");
    let coh = |given: &str, target: &str| {
        c.conditional
            .iter()
            .find(|x| x.given == [given] && x.target == target)
            .unwrap()
            .coherence
    };
    // Chance is 0.1 for all of these. Measured here (seed 0, 10 epochs): label -> image 0.62,
    // image -> label 0.41, joint 0.31, image probe 0.70, image judge 0.90.
    assert!(coh("label", "image") > 0.45, "{c:?}");
    assert!(coh("image", "label") > 0.25, "{c:?}");
    assert!(c.joint.as_ref().unwrap().coherence > 0.2, "{c:?}");
    let probe = |s: &[&str]| {
        report
            .probes
            .iter()
            .find(|p| p.modalities == s)
            .unwrap()
            .test_accuracy
    };
    assert!(probe(&["image"]) > 0.5, "{:?}", report.probes);
    assert!(probe(&["label"]) > 0.9, "{:?}", report.probes);
    // Retrieval both ways over the 500 test samples, with the label's classes.
    let pairs: Vec<(Vec<String>, Vec<String>)> = report
        .retrieval
        .iter()
        .map(|r| (r.query.clone(), r.gallery.clone()))
        .collect();
    let s = |x: &str| vec![x.to_string()];
    assert_eq!(
        pairs,
        [(s("image"), s("label")), (s("label"), s("image"))],
        "{:?}",
        report.retrieval
    );
    for r in &report.retrieval {
        assert_eq!((r.queries, r.gallery_size), (500, 500), "{r:?}");
        let recall: Vec<f64> = r.recall.iter().map(|x| x.recall).collect();
        assert!(recall.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
        assert!((1.0..=500.0).contains(&r.median_rank), "{r:?}");
        // chance is about 0.1 (ten balanced classes); measured here: 0.61 and 0.54
        let map = r.class_map.unwrap();
        assert!(map > 0.25 && map <= 1.0, "{r:?}");
    }
    // IWAE(K) >= its own K-sample ELBO, and log p(image | label) > log p(image)
    for l in &report.likelihoods {
        assert!(l.log_likelihood >= l.elbo, "{l:?}");
    }
    let img = report
        .likelihoods
        .iter()
        .find(|l| l.modalities == ["image"])
        .unwrap();
    let cond = report
        .conditionals
        .iter()
        .find(|c| c.target == ["image"])
        .unwrap();
    assert_eq!(cond.given, ["label"]);
    // a weighted mean of p(label | z) <= 1: the self-normalised estimate is never positive
    let lab = report
        .conditionals
        .iter()
        .find(|c| c.target == ["label"])
        .unwrap();
    assert!(lab.self_normalised <= 0.0, "{lab:?}");
    assert!(
        cond.log_likelihood > img.log_likelihood - 5.0 * img.std_error,
        "{cond:?} {img:?}"
    );

    // K = 1000 on real images, decoded in passes of 8192 rows or of 250 (four passes per
    // image): the noise is drawn in the same order either way, so the estimates agree to
    // rounding; and the bound is tighter than at K = 10 (measured: -158.62 vs -160.61).
    let iw = |k: usize, rows: usize| {
        let cfg = IwaeConfig {
            k,
            seed: 3,
            max_samples: Some(16),
            rows_per_pass: rows,
        };
        eval::likelihood::log_likelihood(&t.model, &test, Subset::single(0), &cfg).unwrap()
    };
    let (big, small, k10) = (iw(1000, 8192), iw(1000, 250), iw(10, 8192));
    eprintln!(
        "image IWAE(1000) {:.3} (passes of 8192 rows), {:.3} (250 rows); IWAE(10) {:.3}",
        big.log_likelihood, small.log_likelihood, k10.log_likelihood
    );
    assert!(
        (big.log_likelihood - small.log_likelihood).abs() < 1e-2,
        "{big:?} {small:?}"
    );
    assert!(big.log_likelihood > k10.log_likelihood, "{big:?} {k10:?}");
}

/// The full suite on full MNIST, sized for CI: a small model trained 2 epochs; K = 1000 on 300
/// test images; judges trained 2 epochs on all 60,000 training images; probes on 20,000 latents.
/// (The defaults — 1,000 test images, 5 judge epochs, all latents — took 336 s here.)
#[test]
#[ignore = "needs MVAE_DATA"]
fn full_mnist_suite_with_defaults() {
    let Some(dir) = common::full_data() else {
        panic!("set MVAE_DATA to the folder holding mnist/");
    };
    let train = common::mnist(&dir, Split::Train, None);
    let test = common::mnist(&dir, Split::Test, None);
    let t0 = std::time::Instant::now();
    let model = Mvae::<16, Cpu>::new(&small_config(), &Cpu::default(), 0).unwrap();
    let mut cfg = TrainConfig {
        epochs: 2,
        ..Default::default()
    };
    cfg.anneal_over_epochs(1.0, train.len());
    let mut t = Trainer::new(model, cfg).unwrap();
    for _ in 0..2 {
        t.fit_epoch(&train, |_| {}).unwrap();
    }
    let trained = std::time::Instant::now();
    let mut ecfg = EvalConfig::default();
    ecfg.iwae.max_samples = Some(300);
    ecfg.coherence.max_samples = Some(1000);
    ecfg.coherence.classifier.epochs = 2;
    ecfg.probe.max_train_samples = Some(20_000);
    let report = eval::evaluate(&t.model, &train, &test, &ecfg).unwrap();
    eprintln!(
        "train {:.1} s, evaluate {:.1} s\n{}",
        (trained - t0).as_secs_f64(),
        trained.elapsed().as_secs_f64(),
        serde_json::to_string_pretty(&report).unwrap()
    );
    let c = &report.coherence;
    assert!(c.judges[0].test_accuracy.unwrap() > 0.95, "{c:?}");
    assert!(c.conditional.iter().all(|x| x.coherence > 0.3), "{c:?}");
    assert!(
        report.probes.iter().all(|p| p.test_accuracy > 0.6),
        "{:?}",
        report.probes
    );
    for l in &report.likelihoods {
        assert!(l.log_likelihood >= l.elbo && l.samples == 300, "{l:?}");
    }
}

/// MVAE's test loss is the sum of the joint's and each modality's negative ELBO: with unit
/// weights and beta 1 it is minus the sum of [`eval::elbo`] of the three subsets (the same
/// seeds); it is affine in beta and in the label's likelihood weight (the same draws), so the
/// weights and the KL weight enter as the training loss has them.
#[test]
fn test_loss_is_the_sum_of_the_weighted_negative_elbos() {
    let dir = common::bundled();
    let test = common::mnist(&dir, Split::Test, Some(200));
    let with_label_weight = |w: f32| {
        let mut cfg = ModelConfig::mnist().hidden(&[32], &[32]);
        cfg.modalities[1].weight = w;
        Mvae::<8, Cpu>::new(&cfg, &Cpu::default(), 3).unwrap()
    };
    let unit = with_label_weight(1.0);
    let seed = 5;
    let by_elbo: f64 = [Subset::all(2), Subset::single(0), Subset::single(1)]
        .into_iter()
        .enumerate()
        .map(|(i, s)| -eval::elbo(&unit, &test, s, seed + i as u64).unwrap())
        .sum();
    let loss = |m: &Mvae<8, Cpu>, beta: f32| eval::test_loss(m, &test, beta, seed).unwrap().loss;
    let l1 = loss(&unit, 1.0);
    // The joint ELBO it reports is eval::elbo's with the same seed, from the same pass.
    let joint = eval::test_loss(&unit, &test, 0.5, seed).unwrap().joint_elbo;
    assert_eq!(
        joint,
        eval::elbo(&unit, &test, Subset::all(2), seed).unwrap()
    );
    assert!(
        (l1 - by_elbo).abs() <= 1e-9 * by_elbo.abs(),
        "{l1} vs {by_elbo}"
    );
    let (l0, half) = (loss(&unit, 0.0), loss(&unit, 0.5));
    assert!(l0 < l1, "the KL adds: {l0} vs {l1}");
    assert!((half - (l0 + l1) / 2.0).abs() <= 1e-6 * l1.abs(), "{half}");
    let (w2, w3) = (
        loss(&with_label_weight(2.0), 1.0),
        loss(&with_label_weight(3.0), 1.0),
    );
    assert!(
        w2 > l1,
        "the label's weight multiplies its NLL: {w2} vs {l1}"
    );
    assert!(
        ((w3 - l1) - 2.0 * (w2 - l1)).abs() <= 1e-6 * l1.abs(),
        "{l1} {w2} {w3}"
    );
}
