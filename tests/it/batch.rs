//! Bad input to a batch gets a clear error, never a panic or silent garbage.

use dfdx::prelude::Cpu;
use mvae::{Batch, Error, HostValues, ModelConfig};

fn specs() -> Vec<mvae::ModalitySpec> {
    ModelConfig::mnist().modalities
}

fn err(given: &[HostValues<'_>]) -> String {
    let e = Batch::<Cpu>::from_host(&specs(), &Cpu::default(), given).unwrap_err();
    e.to_string()
}

#[test]
fn unknown_modality_is_named() {
    let msg = err(&[HostValues {
        name: "audio",
        values: &[0.0; 10],
        present: None,
    }]);
    assert!(
        msg.contains("audio") && msg.contains("image, label"),
        "{msg}"
    );
}

#[test]
fn wrong_width_and_mismatched_counts() {
    let msg = err(&[HostValues {
        name: "image",
        values: &[0.0; 785],
        present: None,
    }]);
    assert!(msg.contains("multiple of 784"), "{msg}");
    let img = vec![0.5; 784 * 2];
    let msg = err(&[
        HostValues {
            name: "image",
            values: &img,
            present: None,
        },
        HostValues {
            name: "label",
            values: &[1.0, 2.0, 3.0],
            present: None,
        },
    ]);
    assert!(msg.contains("2 samples") && msg.contains("got 3"), "{msg}");
}

#[test]
fn values_outside_the_likelihood_are_refused() {
    let mut img = vec![0.5; 784];
    img[10] = f32::NAN;
    let msg = err(&[HostValues {
        name: "image",
        values: &img,
        present: None,
    }]);
    assert!(msg.contains("value 10 is NaN"), "{msg}");
    img[10] = 1.5;
    assert!(err(&[HostValues {
        name: "image",
        values: &img,
        present: None
    }])
    .contains("[0, 1]"));
    for bad in [10.0, -1.0, 2.5, f32::INFINITY] {
        let msg = err(&[HostValues {
            name: "label",
            values: &[bad],
            present: None,
        }]);
        assert!(msg.contains("class index in 0..10"), "{bad}: {msg}");
    }
}

#[test]
fn absent_values_are_ignored_and_zero_filled() {
    // A NaN placeholder where the label is missing is fine: it never reaches the model.
    let img = vec![0.5; 784 * 2];
    let b = Batch::<Cpu>::from_host(
        &specs(),
        &Cpu::default(),
        &[
            HostValues {
                name: "image",
                values: &img,
                present: None,
            },
            HostValues {
                name: "label",
                values: &[3.0, f32::NAN],
                present: Some(&[true, false]),
            },
        ],
    )
    .unwrap();
    let lab = b.column(1).unwrap();
    assert_eq!(lab.present.as_vec(), vec![1.0, 0.0]);
    match &lab.input {
        mvae::batch::Input::Classes(ids) => assert_eq!(ids.as_vec(), vec![3, 0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn empty_batches_and_samples_without_data_are_refused() {
    assert!(err(&[]).contains("empty"));
    let msg = err(&[HostValues {
        name: "label",
        values: &[1.0, 2.0],
        present: Some(&[true, false]),
    }]);
    assert!(
        msg.contains("sample 1") && msg.contains("no modality"),
        "{msg}"
    );
}

#[test]
fn bad_configs_are_refused_with_the_field() {
    let mut cfg = ModelConfig::mnist();
    cfg.modalities[1].weight = f32::NAN;
    let e = mvae::Mvae::<8, Cpu>::new(&cfg, &Cpu::default(), 0).unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }) && e.to_string().contains("label weight"));
    let mut cfg = ModelConfig::mnist();
    cfg.modalities[0].encoder_hidden = vec![];
    assert!(mvae::Mvae::<8, Cpu>::new(&cfg, &Cpu::default(), 0).is_err());
    let mut cfg = ModelConfig::mnist();
    cfg.modalities[1] = cfg.modalities[0].clone();
    let e = mvae::Mvae::<8, Cpu>::new(&cfg, &Cpu::default(), 0).unwrap_err();
    assert!(e.to_string().contains("unique"), "{e}");
    let t = mvae::TrainConfig {
        batch_size: 0,
        ..Default::default()
    };
    assert!(t.validate().unwrap_err().to_string().contains("batch_size"));
}
