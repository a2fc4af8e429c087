//! Round trips, bit-exact resumes, and refusals of other architectures and of damaged files.

use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype as StDtype, SafeTensors, TensorView};
use dfdx::prelude::*;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::io::param_values;
use super::{read_info, FORMAT_VERSION, METADATA_KEY};
use crate::batch::Batch;
use crate::data::{BatchOptions, HostBatch, Mnist, MultimodalDataset, Split};
use crate::modality::{Image, Label, ModalitySpec};
use crate::model::{ModelConfig, Mvae};
use crate::nn::Parameters;
use crate::train::{TrainConfig, Trainer};
use crate::{Error, Result};

type Model = Mvae<4, Cpu>;

fn small_config() -> ModelConfig {
    ModelConfig::mnist().hidden(&[16], &[16])
}

fn mnist(n: usize) -> MultimodalDataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
    Mnist::load(&dir, Split::Train, Some(n))
        .expect("bundled MNIST loads")
        .into_dataset()
        .expect("a valid data set")
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every weight of `model`, as bits, by path.
fn weights<const L: usize>(model: &mut Mvae<L, Cpu>) -> Vec<(String, Vec<u32>)> {
    param_values(model)
        .into_iter()
        .map(|(n, _, v)| (n, bits(&v)))
        .collect()
}

fn moments(t: &mut Trainer<4, Cpu>) -> Vec<(String, Vec<u32>, Vec<u32>)> {
    t.adam
        .moments(&mut t.model)
        .into_iter()
        .map(|(n, m)| (n, bits(&m.first), bits(&m.second)))
        .collect()
}

/// The reason of an [`Error::Checkpoint`]; panics on success or another error.
fn reason<T>(r: Result<T>) -> String {
    match r {
        Err(Error::Checkpoint { reason, .. }) => reason,
        Err(e) => panic!("expected a checkpoint error, got {e}"),
        Ok(_) => panic!("expected a checkpoint error, got success"),
    }
}

fn train_cfg() -> TrainConfig {
    TrainConfig {
        epochs: 2,
        batch_size: 50,
        seed: 7,
        ..Default::default()
    }
}

/// One raw tensor of a checkpoint file.
struct Raw {
    name: String,
    dtype: StDtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

/// Rewrites the checkpoint `src` to `dst` after `edit` changed its tensors and metadata.
fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Vec<Raw>, &mut serde_json::Value)) {
    let bytes = std::fs::read(src).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()[METADATA_KEY]).unwrap();
    let mut raws: Vec<Raw> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| Raw {
            name,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data().to_vec(),
        })
        .collect();
    edit(&mut raws, &mut json);
    let views: Vec<(String, TensorView<'_>)> = raws
        .iter()
        .map(|r| {
            let v = TensorView::new(r.dtype, r.shape.clone(), &r.data).unwrap();
            (r.name.clone(), v)
        })
        .collect();
    let meta = Some(HashMap::from([(
        METADATA_KEY.to_string(),
        json.to_string(),
    )]));
    std::fs::write(dst, ::safetensors::tensor::serialize(views, &meta).unwrap()).unwrap();
}

#[test]
fn model_round_trip_is_bit_identical() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut model = Model::new(&small_config(), &dev, 3).unwrap();
    model.save(&path).unwrap();
    let mut loaded = Model::load(&path, &dev).unwrap();
    assert_eq!(loaded.config(), model.config());
    assert_eq!(weights(&mut loaded), weights(&mut model));

    let data = mnist(50);
    let mut host = HostBatch::default();
    assert!(data
        .batches(&BatchOptions::new(50, 0))
        .unwrap()
        .next_into(&mut host));
    let batch = Batch::from_host_batch(model.modalities(), &dev, &host).unwrap();
    let (a, b) = (model.encode_all(&batch), loaded.encode_all(&batch));
    let (a, b) = (a.as_gaussian().unwrap(), b.as_gaussian().unwrap());
    assert_eq!(bits(&a.mean.as_vec()), bits(&b.mean.as_vec()));
    assert_eq!(bits(&a.logvar.as_vec()), bits(&b.logvar.as_vec()));
    let z = model.sample_prior(8, &mut ChaCha8Rng::seed_from_u64(1));
    for m in 0..2 {
        let (x, y) = (
            model.decode_mean(m, z.clone()),
            loaded.decode_mean(m, z.clone()),
        );
        assert_eq!(bits(&x.as_vec()), bits(&y.as_vec()));
    }

    let info = read_info(&path).unwrap();
    assert_eq!(info.format_version, FORMAT_VERSION);
    assert_eq!(info.crate_version, env!("CARGO_PKG_VERSION"));
    assert_eq!(info.latent_size, 4);
    assert_eq!(&info.model, model.config());
    assert!(info.training.is_none());

    // Tensors are named by the parameter paths.
    let bytes = std::fs::read(&path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor("encoders.image.input.weight").unwrap();
    assert_eq!(t.shape(), &[16, 784]);
    assert!(st.tensor("encoders.label.input.weight").is_ok());
    assert!(st.tensor("decoders.image.out.bias").is_ok());

    // Loading into an existing model of the same architecture keeps its tensor ids.
    let mut other = Model::new(&small_config(), &dev, 4).unwrap();
    other.load_weights(&path).unwrap();
    assert_eq!(weights(&mut other), weights(&mut model));
}

#[test]
fn resume_is_bit_identical_to_uninterrupted_run() {
    for kind in crate::aggregation::AggregationKind::ALL {
        resume_is_exact(kind, train_cfg());
    }
}

/// With dynamic binarisation the batches' pixels come from the trainer's random state, which
/// the checkpoint keeps: a resumed run draws the same pixels. The draws change the loss.
#[test]
fn resume_with_binarised_batches_is_exact() {
    let poe = crate::aggregation::AggregationKind::ProductOfExperts;
    let binarized = TrainConfig {
        binarize: true,
        ..train_cfg()
    };
    let grey = resume_is_exact(poe, train_cfg());
    let binary = resume_is_exact(poe, binarized);
    assert_ne!(
        grey.to_bits(),
        binary.to_bits(),
        "binarising changes nothing"
    );
}

/// Trains two epochs straight and one plus one resumed from a checkpoint, checks that they
/// agree bit for bit, and returns the first epoch's loss.
fn resume_is_exact(kind: crate::aggregation::AggregationKind, cfg: TrainConfig) -> f64 {
    let dev = Cpu::default();
    let data = mnist(200);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.safetensors");
    let config = small_config().aggregation(kind);

    let model = Model::new(&config, &dev, 11).unwrap();
    let mut straight = Trainer::new(model.clone(), cfg.clone()).unwrap();
    let s1 = straight.fit_epoch(&data, |_| {}).unwrap();
    let s2 = straight.fit_epoch(&data, |_| {}).unwrap();

    let mut first = Trainer::new(model, cfg.clone()).unwrap();
    let r1 = first.fit_epoch(&data, |_| {}).unwrap();
    assert_eq!(r1.loss.to_bits(), s1.loss.to_bits());
    first.save(&path).unwrap();
    drop(first);

    let mut resumed = Trainer::<4, Cpu>::resume(&path, &dev).unwrap();
    assert_eq!(resumed.epochs_done(), 1);
    assert_eq!(resumed.steps(), 4);
    assert_eq!(resumed.config(), &cfg);
    let r2 = resumed.fit_epoch(&data, |_| {}).unwrap();
    assert_eq!((r2.epoch, r2.step), (s2.epoch, s2.step));
    assert_eq!(r2.loss.to_bits(), s2.loss.to_bits());
    assert!(
        weights(&mut resumed.model) == weights(&mut straight.model),
        "weights differ after resuming"
    );
    assert!(
        moments(&mut resumed) == moments(&mut straight),
        "Adam moments differ after resuming"
    );
    assert_eq!(resumed.adam.steps(), straight.adam.steps());
    assert_eq!(resumed.rng.gen::<u64>(), straight.rng.gen::<u64>());

    // A training checkpoint also loads as a model.
    let mut m = Model::load(&path, &dev).unwrap();
    let info = read_info(&path).unwrap();
    let t = info.training.unwrap();
    assert_eq!((t.epoch, t.step, t.adam_steps), (1, 4, 4));
    assert_eq!(m.config(), &config);
    assert_eq!(m.num_params(), straight.model.num_params());
    s1.loss
}

#[test]
fn resume_before_any_step() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.safetensors");
    let model = Model::new(&small_config(), &dev, 1).unwrap();
    let mut t = Trainer::new(model, train_cfg()).unwrap();
    t.save(&path).unwrap();
    let mut r = Trainer::<4, Cpu>::resume(&path, &dev).unwrap();
    assert_eq!((r.steps(), r.adam.steps()), (0, 0));
    assert_eq!(weights(&mut r.model), weights(&mut t.model));
    assert_eq!(r.rng.gen::<u64>(), t.rng.gen::<u64>());
}

#[test]
fn other_architecture_is_refused_naming_the_difference() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = Model::new(&small_config(), &dev, 3).unwrap();
    model.save(&path).unwrap();

    let r = reason(Mvae::<5, Cpu>::load(&path, &dev));
    assert!(
        r.contains("latent size differs: checkpoint 4, model 5"),
        "{r}"
    );
    let mut five = Mvae::<5, Cpu>::new(&small_config(), &dev, 0).unwrap();
    let r = reason(five.load_weights(&path));
    assert!(r.contains("latent size differs"), "{r}");
    let r = reason(Trainer::<5, Cpu>::resume(&path, &dev));
    assert!(r.contains("without training state"), "{r}");

    let refused = |cfg: ModelConfig| {
        let mut m = Model::new(&cfg, &dev, 0).unwrap();
        let before = weights(&mut m);
        let r = reason(m.load_weights(&path));
        assert!(
            weights(&mut m) == before,
            "weights changed by a refused load"
        );
        r
    };
    let mut cfg = small_config();
    cfg.modalities[1] = ModalitySpec::new(Label::new("digit", 10))
        .encoder_hidden(&[16])
        .decoder_hidden(&[16])
        .weight(50.0);
    // Another modality at the same place is named by its index.
    assert_eq!(
        refused(cfg),
        "model config differs at modalities[1].kind.name: checkpoint \"label\", model \"digit\""
    );

    let mut cfg = small_config();
    cfg.modalities.pop();
    let r = refused(cfg);
    assert!(
        r.starts_with("model config differs at modalities[label]: checkpoint {\"")
            && r.ends_with("\"weight\":50.0}, model (absent)"),
        "{r}"
    );

    let mut cfg = small_config();
    cfg.modalities[0].kind = Image::new("image", 14, 14).into();
    let r = refused(cfg);
    assert!(
        r.starts_with("model config differs at modalities[image].kind.")
            && r.ends_with(": checkpoint 28, model 14"),
        "{r}"
    );

    let mut cfg = small_config();
    cfg.modalities[0].encoder_hidden = vec![32];
    assert_eq!(
        refused(cfg),
        "model config differs at modalities[image].encoder_hidden: checkpoint [16], model [32]"
    );

    let mut cfg = small_config();
    cfg.modalities[1].decoder_hidden = vec![16, 16];
    assert_eq!(
        refused(cfg),
        "model config differs at modalities[label].decoder_hidden: checkpoint [16], model [16,16]"
    );

    let mut cfg = small_config();
    cfg.activation = crate::Activation::Relu;
    assert_eq!(
        refused(cfg),
        "model config differs at activation: checkpoint \"swish\", model \"relu\""
    );

    let mut cfg = small_config();
    cfg.modalities[1].weight = 1.0;
    assert_eq!(
        refused(cfg),
        "model config differs at modalities[label].weight: checkpoint 50.0, model 1.0"
    );

    // Numbers as the file writes them: an f32 weight of 0.1 reads 0.1, not 0.10000000149.
    let mut cfg = small_config();
    cfg.modalities[1].weight = 0.1;
    assert_eq!(
        refused(cfg),
        "model config differs at modalities[label].weight: checkpoint 50.0, model 0.1"
    );
}

#[test]
fn bad_tensors_and_versions_are_refused() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let model = Model::new(&small_config(), &dev, 3).unwrap();
    model.save(&good).unwrap();
    let check = |edit: &dyn Fn(&mut Vec<Raw>, &mut serde_json::Value), want: &str| {
        rewrite(&good, &bad, edit);
        let r = reason(Model::load(&bad, &dev));
        assert!(r.contains(want), "{r:?} lacks {want:?}");
        let mut m = Model::new(&small_config(), &dev, 0).unwrap();
        let r = reason(m.load_weights(&bad));
        assert!(r.contains(want), "{r:?} lacks {want:?}");
    };
    // The unchanged rewrite loads.
    rewrite(&good, &bad, |_, _| {});
    Model::load(&bad, &dev).unwrap();

    check(
        &|t, _| t.retain(|r| r.name != "decoders.label.out.bias"),
        "tensor decoders.label.out.bias is missing",
    );
    check(
        &|t, _| {
            let r = t
                .iter_mut()
                .find(|r| r.name == "encoders.image.mean.weight");
            let r = r.unwrap();
            r.shape = vec![16, 4];
        },
        "tensor encoders.image.mean.weight has shape [16, 4], the model expects [4, 16]",
    );
    check(
        &|t, _| {
            let r = t.iter_mut().find(|r| r.name == "decoders.image.out.bias");
            let r = r.unwrap();
            r.dtype = StDtype::I32;
        },
        "tensor decoders.image.out.bias has dtype I32, expected F32",
    );
    check(
        &|t, _| {
            t.push(Raw {
                name: "encoders.audio.mean.bias".into(),
                dtype: StDtype::F32,
                shape: vec![1],
                data: vec![0; 4],
            })
        },
        "unexpected tensor encoders.audio.mean.bias",
    );
    check(
        &|_, j| j["format_version"] = 2.into(),
        "format version 2 is not supported",
    );
    check(
        &|_, j| j["latent_size"] = 8.into(),
        "latent size differs: checkpoint 8, model 4",
    );
    check(
        &|_, j| j["model"]["modalities"][0]["encoder_hidden"] = serde_json::json!([]),
        "model config in the checkpoint: invalid image hidden sizes",
    );
    check(
        &|_, j| *j = serde_json::json!({"format_version": 1}),
        "metadata does not parse",
    );
    check(
        &|_, j| *j = serde_json::json!("x"),
        "metadata has no format_version",
    );

    // A safetensors file that is not an mvae checkpoint.
    let t = TensorView::new(StDtype::F32, vec![1], &[0u8; 4]).unwrap();
    let bytes = ::safetensors::tensor::serialize([("x".to_string(), t)], &None).unwrap();
    std::fs::write(&bad, bytes).unwrap();
    let r = reason(Model::load(&bad, &dev));
    assert!(r.contains("not an mvae checkpoint"), "{r}");
}

#[test]
fn non_finite_weights_are_refused_naming_the_tensor() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    Model::new(&small_config(), &dev, 3)
        .unwrap()
        .save(&good)
        .unwrap();
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        rewrite(&good, &bad, |t, _| {
            let r = t.iter_mut().find(|r| r.name == "decoders.label.out.bias");
            r.unwrap().data[4..8].copy_from_slice(&v.to_le_bytes());
        });
        let want = format!("tensor decoders.label.out.bias holds {v} at index 1");
        let r = reason(Model::load(&bad, &dev));
        assert!(r.contains(&want), "{r:?} lacks {want:?}");
        let mut m = Model::new(&small_config(), &dev, 0).unwrap();
        let r = reason(m.load_weights(&bad));
        assert!(r.contains(&want), "{r:?} lacks {want:?}");
    }
}

#[test]
fn bad_training_state_is_refused() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let data = mnist(100);
    let model = Model::new(&small_config(), &dev, 3).unwrap();
    let mut t = Trainer::new(model, train_cfg()).unwrap();
    t.fit_epoch(&data, |_| {}).unwrap();
    t.save(&good).unwrap();
    let check = |edit: &dyn Fn(&mut Vec<Raw>, &mut serde_json::Value), want: &str| {
        rewrite(&good, &bad, edit);
        let r = reason(Trainer::<4, Cpu>::resume(&bad, &dev));
        assert!(r.contains(want), "{r:?} lacks {want:?}");
    };
    check(
        &|t, _| t.retain(|r| r.name != "optimizer.moment2.encoders.label.mean.bias"),
        "tensor optimizer.moment2.encoders.label.mean.bias is missing",
    );
    check(
        &|_, j| j["training"]["rng"]["seed"] = "zz".into(),
        "rng seed \"zz\" is not 64 hex digits",
    );
    check(
        &|_, j| j["training"]["config"]["batch_size"] = 0.into(),
        "training config in the checkpoint: invalid batch_size",
    );
    check(
        &|_, j| j["training"]["adam_steps"] = 0.into(),
        "unexpected tensor optimizer.moment",
    );
}

#[test]
fn truncated_or_random_files_are_errors() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let data = mnist(50);
    let mut t = Trainer::new(Model::new(&small_config(), &dev, 3).unwrap(), train_cfg()).unwrap();
    t.fit_epoch(&data, |_| {}).unwrap();
    t.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let cuts = [
        0,
        1,
        7,
        8,
        9,
        header / 2,
        header,
        header + 1,
        bytes.len() / 2,
        bytes.len() - 1,
    ];
    for cut in cuts {
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let r = reason(Model::load(&bad, &dev));
        assert!(r.contains("not a readable checkpoint"), "cut {cut}: {r}");
        reason(Trainer::<4, Cpu>::resume(&bad, &dev));
        reason(read_info(&bad));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    for len in [1, 8, 100, 5000] {
        for _ in 0..20 {
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            std::fs::write(&bad, &b).unwrap();
            reason(Model::load(&bad, &dev));
            reason(Trainer::<4, Cpu>::resume(&bad, &dev));
        }
    }
    // A plausible header length followed by garbage, and flipped bytes in the header.
    for _ in 0..200 {
        let mut b = bytes.clone();
        let i = rng.gen_range(8..header);
        b[i] ^= 1 << rng.gen_range(0..8);
        std::fs::write(&bad, &b).unwrap();
        // Either an error or, when the flip hit something harmless, a model.
        let _ = Model::load(&bad, &dev);
        let _ = Trainer::<4, Cpu>::resume(&bad, &dev);
    }
    let missing = dir.path().join("missing.safetensors");
    assert!(matches!(Model::load(&missing, &dev), Err(Error::Io { .. })));
}

#[test]
fn interrupted_save_leaves_old_checkpoint_readable() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let mut old = Model::new(&small_config(), &dev, 3).unwrap();
    old.save(&path).unwrap();
    let mut new = Model::new(&small_config(), &dev, 4).unwrap();
    // A save killed half-way leaves only a partial temporary file beside the checkpoint.
    new.save(dir.path().join("other.safetensors")).unwrap();
    let full = std::fs::read(dir.path().join("other.safetensors")).unwrap();
    let stale = dir.path().join(".model.safetensors.tmp-4242-0");
    std::fs::write(&stale, &full[..full.len() / 2]).unwrap();
    assert_eq!(
        weights(&mut Model::load(&path, &dev).unwrap()),
        weights(&mut old)
    );
    // The next save still replaces the checkpoint, and leaves no temporary file of its own.
    new.save(&path).unwrap();
    assert_eq!(
        weights(&mut Model::load(&path, &dev).unwrap()),
        weights(&mut new)
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ".model.safetensors.tmp-4242-0",
            "model.safetensors",
            "other.safetensors"
        ]
    );
    // A save that fails (here: the target is a folder) leaves the old file alone.
    let folder = dir.path().join("folder.safetensors");
    std::fs::create_dir(&folder).unwrap();
    reason(old.save(&folder));
    assert!(folder.is_dir());
}

#[test]
fn parameter_count_is_the_models_without_building_it() {
    use crate::aggregation::AggregationKind;
    use crate::likelihood::Variance;
    use crate::modality::Continuous;
    let dev = Cpu::default();
    let continuous = ModelConfig::new(vec![
        ModalitySpec::new(Continuous::new("x", 3, Variance::Learned)).encoder_hidden(&[5, 7]),
        ModalitySpec::new(Continuous::new("y", 2, Variance::Fixed(1.0))).decoder_hidden(&[6]),
        ModalitySpec::new(Label::digits()),
    ]);
    for config in [
        small_config(),
        small_config().aggregation(AggregationKind::MmvaePlus),
        continuous.clone(),
        continuous.aggregation(AggregationKind::MmvaePlus),
    ] {
        let mut model = Model::new(&config, &dev, 0).unwrap();
        let walked: usize = super::io::param_shapes(&mut model)
            .iter()
            .map(|(_, s)| s.iter().product::<usize>())
            .sum();
        assert_eq!(config.parameter_count(4), Some(walked), "{config:?}");
    }
}

#[test]
fn absurd_sizes_are_refused_before_allocation() {
    let dev = Cpu::default();
    let refused = |config: ModelConfig, want: &str| {
        let e = Model::new(&config, &dev, 0).unwrap_err().to_string();
        assert!(e.contains(want), "{e:?} lacks {want:?}");
    };
    // Would overflow (capacity overflow) or abort on a failed allocation.
    refused(small_config().hidden(&[usize::MAX], &[16]), "at most 65536");
    refused(
        small_config().hidden(&[100_000_000], &[16]),
        "at most 65536",
    );
    let huge = ModelConfig::new(vec![
        ModalitySpec::new(Image::new("image", 100_000, 100_000)),
        ModalitySpec::new(Label::digits()),
    ]);
    refused(huge, "image size");
    let overflow = ModelConfig::new(vec![
        ModalitySpec::new(Image::new("image", usize::MAX, 3)),
        ModalitySpec::new(Label::digits()),
    ]);
    refused(overflow, "image size");
    // Every size within its bound, but too many parameters together.
    refused(
        small_config().hidden(&[65_536, 65_536], &[16]),
        "at most 1073741824 parameters",
    );
}

#[test]
fn checkpoint_metadata_declaring_more_than_the_file_holds_is_refused() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    Model::new(&small_config(), &dev, 3)
        .unwrap()
        .save(&good)
        .unwrap();
    let check = |edit: &dyn Fn(&mut serde_json::Value), want: &str| {
        rewrite(&good, &bad, |_, j| edit(j));
        let r = reason(Model::load(&bad, &dev));
        assert!(r.contains(want), "{r:?} lacks {want:?}");
        reason(read_info(&bad));
    };
    let image = |j: &mut serde_json::Value| {
        j["model"]["modalities"][0]["kind"]["width"] = 100_000.into();
        j["model"]["modalities"][0]["kind"]["height"] = 100_000.into();
    };
    check(&image, "image size: 100000 x 100000 x 1");
    // Within every bound, but far more parameters than the file's bytes.
    let wide = |j: &mut serde_json::Value| {
        j["model"]["modalities"][0]["encoder_hidden"] = serde_json::json!([60_000]);
    };
    check(&wide, "parameters");
    check(&|j| j["latent_size"] = 1_000_000_000.into(), "parameters");
}

#[test]
fn a_checkpoint_is_read_only_as_far_as_it_declares() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.safetensors");
    let check = |bytes: &[u8], want: &str| {
        std::fs::write(&path, bytes).unwrap();
        let r = reason(Model::load(&path, &dev));
        assert!(r.contains(want), "{r:?} lacks {want:?}");
    };
    // A header length beyond any header, then beyond the file.
    check(
        &u64::MAX.to_le_bytes(),
        "a header of 18446744073709551615 bytes",
    );
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend(b"{}");
    check(
        &b,
        "declares a header of 1000 bytes but the file has 10 bytes",
    );
    // Tensors that end past the file.
    let header = br#"{"x":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header);
    b.extend([0u8; 16]);
    check(&b, "bytes (header and tensors) but the file has");
    // An endless source of random bytes fails at once instead of being read whole.
    if Path::new("/dev/urandom").exists() {
        let started = std::time::Instant::now();
        for _ in 0..20 {
            reason(Model::load("/dev/urandom", &dev));
        }
        assert!(started.elapsed().as_secs() < 5);
    }
}

/// A value that a field should never hold, for the structured mutations below.
fn absurd_value(rng: &mut ChaCha8Rng) -> serde_json::Value {
    use serde_json::json;
    let values = [
        json!(0),
        json!(-1),
        json!(1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1u64 << 32),
        json!(1u64 << 53),
        json!(100_000),
        json!(1e300),
        json!(-1e300),
        json!(0.5),
        json!(f32::MAX),
        json!(""),
        json!("x"),
        json!("swish"),
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!([u64::MAX]),
        json!([100_000, 100_000]),
        json!({"Image": {"name": "image", "width": 100_000, "height": 100_000}}),
    ];
    values[rng.gen_range(0..values.len())].clone()
}

/// Every path (object keys and array indices) to a value inside `v`, `v` itself first.
fn json_paths(v: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    let mut out = vec![Vec::new()];
    let children: Vec<(serde_json::Value, &serde_json::Value)> = match v {
        serde_json::Value::Object(m) => m.iter().map(|(k, c)| (k.as_str().into(), c)).collect(),
        serde_json::Value::Array(a) => a.iter().enumerate().map(|(i, c)| (i.into(), c)).collect(),
        _ => Vec::new(),
    };
    for (key, child) in children {
        for mut rest in json_paths(child) {
            rest.insert(0, key.clone());
            out.push(rest);
        }
    }
    out
}

/// The value at `path` in `v`.
fn json_at<'a>(
    v: &'a mut serde_json::Value,
    path: &[serde_json::Value],
) -> &'a mut serde_json::Value {
    path.iter().fold(v, |v, key| match key {
        serde_json::Value::String(k) => &mut v[k.as_str()],
        k => &mut v[k.as_u64().unwrap() as usize],
    })
}

/// One structured mutation of a JSON document: a value replaced by an absurd one, removed,
/// or an array repeated to a huge length.
fn mutate_json(v: &mut serde_json::Value, rng: &mut ChaCha8Rng) {
    let paths = json_paths(v);
    let path = &paths[rng.gen_range(0..paths.len())];
    match rng.gen_range(0..4) {
        // A value of the same type, mostly, so that the mutation passes the JSON schema and
        // reaches the checks of sizes and counts.
        0 => {
            let target = json_at(v, path);
            let same = match target {
                serde_json::Value::Number(_) => {
                    let n = [0, 1, 2, 3, 1 << 16, 1 << 24, 1 << 31, u64::MAX, 100_000];
                    serde_json::json!(n[rng.gen_range(0..n.len())])
                }
                serde_json::Value::String(_) => {
                    let s = ["", "x", "mopoe", "mmvae-plus", "relu", "iwae", "0", "ff"];
                    serde_json::json!(s[rng.gen_range(0..s.len())])
                }
                _ => absurd_value(rng),
            };
            *target = same;
        }
        1 => *json_at(v, path) = absurd_value(rng),
        2 => {
            if let Some((last, parent)) = path.split_last() {
                match (json_at(v, parent), last) {
                    (serde_json::Value::Object(m), serde_json::Value::String(k)) => {
                        m.remove(k);
                    }
                    (serde_json::Value::Array(a), i) => {
                        a.remove(i.as_u64().unwrap() as usize);
                    }
                    _ => {}
                }
            }
        }
        _ => {
            let target = json_at(v, path);
            if let serde_json::Value::Array(a) = target {
                if let Some(first) = a.first().cloned() {
                    let n = [2, 11, 1000, 20_000][rng.gen_range(0..4)];
                    a.resize(n, first);
                }
            }
        }
    }
}

/// Loads `path` every way a checkpoint is read; each must return (an error or a model), never
/// panic or abort. Counts into `seen` whether the model loaded or, if not, the start of why.
fn load_every_way(path: &Path, dev: &Cpu, seen: &mut std::collections::BTreeMap<String, usize>) {
    let _ = read_info(path);
    let outcome = match Model::load(path, dev) {
        Ok(_) => "loaded".to_string(),
        Err(e) => {
            let e = e.to_string();
            let why = e.rsplit(": ").next().unwrap_or(&e);
            let why = why.split('(').next().unwrap_or(why);
            why.chars()
                .filter(|c| !c.is_ascii_digit())
                .take(40)
                .collect()
        }
    };
    *seen.entry(outcome).or_default() += 1;
    let _ = Trainer::<4, Cpu>::resume(path, dev);
    let mut m = Model::new(&small_config(), dev, 0).unwrap();
    let _ = m.load_weights(path);
}

/// Structured mutations of a valid training checkpoint's `mvae` metadata: absurd sizes and
/// counts, wrong types, removed fields, huge arrays (modalities, hidden layers).
#[test]
fn mutated_metadata_is_an_error_or_a_model() {
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let data = mnist(50);
    let mut t = Trainer::new(Model::new(&small_config(), &dev, 3).unwrap(), train_cfg()).unwrap();
    t.fit_epoch(&data, |_| {}).unwrap();
    t.save(&good).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut seen = std::collections::BTreeMap::new();
    for case in 0..300 {
        let mutations = rng.gen_range(1..=3);
        let seed = rng.gen::<u64>();
        rewrite(&good, &bad, |_, j| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            for _ in 0..mutations {
                mutate_json(j, &mut rng);
            }
        });
        let started = std::time::Instant::now();
        load_every_way(&bad, &dev, &mut seen);
        assert!(
            started.elapsed().as_secs() < 5,
            "case {case} (seed {seed}) took {:?}",
            started.elapsed()
        );
    }
    // The mutations reach both the parser's checks and the loader's.
    assert!(seen.len() > 4 && seen.contains_key("loaded"), "{seen:#?}");
}

/// Structured mutations of a valid checkpoint's safetensors header: wrong dtypes, absurd or
/// empty shapes, reversed, overlapping, out-of-range and huge data offsets, tensors duplicated
/// under new names, with the data cut or padded to what the header then declares.
#[test]
fn mutated_tensor_headers_are_an_error_or_a_model() {
    use serde_json::json;
    let dev = Cpu::default();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.safetensors");
    let bad = dir.path().join("bad.safetensors");
    let data = mnist(50);
    let mut t = Trainer::new(Model::new(&small_config(), &dev, 3).unwrap(), train_cfg()).unwrap();
    t.fit_epoch(&data, |_| {}).unwrap();
    t.save(&good).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let tensors = &bytes[8 + n..];
    let names: Vec<String> = header
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| *k != "__metadata__")
        .cloned()
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    let mut seen = std::collections::BTreeMap::new();
    for case in 0..300 {
        let mut h = header.clone();
        for _ in 0..rng.gen_range(1..=3) {
            let name = &names[rng.gen_range(0..names.len())];
            let other = &names[rng.gen_range(0..names.len())];
            let end = tensors.len() as u64;
            let entry = &mut h[name.as_str()];
            let [a, b] = [0, 1].map(|i| entry["data_offsets"][i].as_u64().unwrap_or(0));
            match rng.gen_range(0..9) {
                0 => {
                    let dtypes = ["F16", "BF16", "F64", "I32", "U8", "BOOL", "I64", "Q4", ""];
                    entry["dtype"] = dtypes[rng.gen_range(0..dtypes.len())].into();
                }
                1 => {
                    let shapes = [
                        json!([]),
                        json!([0]),
                        json!([1]),
                        json!([u64::MAX]),
                        json!([u64::MAX, 2]),
                        json!([1u64 << 32, 1u64 << 32]),
                        json!([100_000, 100_000]),
                        json!([-1]),
                        json!([1, 1, 1, 1, 1, 1, 1, 1, 1]),
                    ];
                    entry["shape"] = shapes[rng.gen_range(0..shapes.len())].clone();
                }
                2 => entry["data_offsets"] = json!([b, a]),
                3 => entry["data_offsets"] = header[other.as_str()]["data_offsets"].clone(),
                4 => entry["data_offsets"] = json!([a, rng.gen_range(b.min(end)..=end + 64)]),
                5 => entry["data_offsets"] = json!([a.saturating_sub(4), b]),
                6 => {
                    let huge = [u64::MAX, 1u64 << 40, 1u64 << 32, end + 1];
                    entry["data_offsets"] = json!([a, huge[rng.gen_range(0..huge.len())]]);
                }
                7 => entry["data_offsets"] = absurd_value(&mut rng),
                _ => {
                    let copy = entry.clone();
                    h[format!("{name}.copy{case}")] = copy;
                }
            }
        }
        let text = h.to_string();
        let mut file = (text.len() as u64).to_le_bytes().to_vec();
        file.extend(text.as_bytes());
        let declared = h
            .as_object()
            .unwrap()
            .values()
            .filter_map(|e| e.get("data_offsets")?.get(1)?.as_u64())
            .max()
            .unwrap_or(0);
        // Mostly the data the header now declares (cut, or padded with zeros), so that the
        // mutation reaches the parser instead of failing the size check.
        let len = if rng.gen_bool(0.8) && declared <= 4 * tensors.len() as u64 {
            declared as usize
        } else {
            tensors.len()
        };
        file.extend(
            tensors
                .iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(len),
        );
        std::fs::write(&bad, &file).unwrap();
        load_every_way(&bad, &dev, &mut seen);
    }
    // The mutations reach both the parser's checks and the loader's.
    assert!(seen.len() > 4 && seen.contains_key("loaded"), "{seen:#?}");
}
