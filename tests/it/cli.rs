//! The `mvae` binary driven as a user would: spawned processes, temporary folders, the bundled
//! sample data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::bundled;

fn mvae(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mvae"))
        .args(args)
        .env("MVAE_DATA", bundled())
        .output()
        .expect("the binary runs")
}

/// Runs and expects success; returns the JSON it printed.
fn ok_json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = mvae(&all);
    assert!(
        out.status.success(),
        "mvae {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document on stdout")
}

/// Runs and expects a failure with a one-line message naming `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = mvae(args);
    assert!(!out.status.success(), "mvae {args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{err:?}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err:?}");
}

fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("cli")
        .join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

const TINY: [&str; 10] = [
    "--latent",
    "8",
    "--encoder-hidden",
    "64",
    "--decoder-hidden",
    "64",
    "--limit",
    "600",
    "--test-limit",
    "200",
];

/// A tiny image + label model trained once for the tests that need one.
fn mnist_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("mnist");
        let mut args = vec!["train", "--dataset", "mnist", "--epochs", "1", "--out"];
        let d = dir.to_str().unwrap().to_string();
        args.push(&d);
        args.extend(TINY);
        let v = ok_json(&args);
        assert_eq!(v["epochs"], 1);
        dir
    })
}

/// A tiny image + audio + label model (av-digits) trained once for the tests that need one.
fn av_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("av");
        let d = dir.to_str().unwrap().to_string();
        let mut args = vec!["train", "--dataset", "av-digits", "--epochs", "1", "--out"];
        args.push(&d);
        args.extend(TINY);
        ok_json(&args);
        dir
    })
}

/// A bundled spoken digit.
fn a_wav() -> PathBuf {
    let clips = bundled().join("fsdd/recordings");
    let mut wavs: Vec<PathBuf> = std::fs::read_dir(&clips)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    wavs.sort();
    wavs.swap_remove(0)
}

#[test]
fn train_writes_a_run_and_resumes_it() {
    let dir = scratch("resume");
    let d = dir.to_str().unwrap();
    let mut args = vec!["train", "--epochs", "1", "--seed", "3", "--out", d];
    args.extend(TINY);
    let first = ok_json(&args);
    assert!(first["test_elbo"].as_f64().unwrap().is_finite());
    for f in ["config.toml", "checkpoint.safetensors", "metrics.jsonl"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    for p in [
        "curves.png",
        "latent.png",
        "reconstructions.png",
        "label_to_image.png",
    ] {
        let img = image::open(dir.join("pictures").join(p)).expect(p);
        assert!(img.width() > 100, "{p}");
    }
    // The same --out again is refused: a run is never overwritten by accident.
    let again = mvae(&args);
    assert!(!again.status.success());

    let resumed = ok_json(&["train", "--resume", d, "--epochs", "2", "--no-pictures"]);
    assert_eq!(resumed["epochs"], 2);
    assert_eq!(resumed["steps"], 12, "600 samples / 100 per step, twice");
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 2);
    let test_elbos: Vec<f64> = lines
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["test_elbo"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(test_elbos[1] > test_elbos[0], "learning: {test_elbos:?}");
}

#[test]
fn generate_from_a_png_and_sample() {
    let run = mnist_run().to_str().unwrap().to_string();
    let out = scratch("gen_label");
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        &run,
        "--label",
        "3",
        "--samples",
        "4",
        "--out",
        out.to_str().unwrap(),
    ]);
    let files = v["outputs"]["image"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    let png = PathBuf::from(files[0].as_str().unwrap());
    assert_eq!(image::open(&png).unwrap().width(), 28);

    let out2 = scratch("gen_png");
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        &run,
        "--image",
        png.to_str().unwrap(),
        "--mean",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let p = v["outputs"]["label"]["probabilities"][0]
        .as_array()
        .unwrap();
    assert_eq!(p.len(), 10);
    let sum: f64 = p.iter().map(|x| x.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-4);

    let out3 = scratch("sample");
    let v = ok_json(&[
        "sample",
        "--checkpoint",
        &run,
        "-n",
        "5",
        "--out",
        out3.to_str().unwrap(),
    ]);
    assert_eq!(
        v["outputs"]["label"]["classes"].as_array().unwrap().len(),
        5
    );
    assert!(out3.join("image_grid.png").is_file());
}

#[test]
fn generate_across_image_and_audio() {
    let d = av_run().to_str().unwrap();
    let wav = a_wav();
    let out = scratch("av_gen");
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        d,
        "--audio",
        wav.to_str().unwrap(),
        "--samples",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let png = v["outputs"]["image"]["files"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert!(Path::new(&png).is_file());
    let out2 = scratch("av_gen2");
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        d,
        "--image",
        &png,
        "--mean",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let wav_out = v["outputs"]["audio"]["files"][0].as_str().unwrap();
    let reader = hound::WavReader::open(wav_out).expect("a readable WAV");
    assert_eq!(reader.spec().sample_rate, 8000);
    assert!(reader.len() > 1000);
}

#[test]
fn impute_a_csv_without_touching_the_input() {
    let dir = scratch("csv");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("table.csv");
    let mut text = String::from("a,b,c\n");
    for i in 0..300 {
        let a = (i as f32 * 0.37).sin();
        let b = (i as f32 * 0.11).cos();
        let c = a + b;
        if i % 7 == 0 {
            text.push_str(&format!("{a},,{c}\n"));
        } else {
            text.push_str(&format!("{a},{b},{c}\n"));
        }
    }
    std::fs::write(&csv, &text).unwrap();
    let run = dir.join("run");
    ok_json(&[
        "train",
        "--csv",
        csv.to_str().unwrap(),
        "--latent",
        "8",
        "--encoder-hidden",
        "32",
        "--decoder-hidden",
        "32",
        "--epochs",
        "3",
        "--out",
        run.to_str().unwrap(),
    ]);
    let partial = dir.join("partial.csv");
    std::fs::write(&partial, "a,b,c\n0.5,,1.0\n,0.2,\n0.1,0.2,0.3\n").unwrap();
    let before = std::fs::read(&partial).unwrap();
    let out = dir.join("done.csv");
    let v = ok_json(&[
        "impute",
        "--checkpoint",
        run.to_str().unwrap(),
        "--csv",
        partial.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["filled"]["a"], 1);
    assert_eq!(v["filled"]["b"], 1);
    assert_eq!(v["filled"]["c"], 1);
    assert_eq!(std::fs::read(&partial).unwrap(), before, "input untouched");
    let done = mvae::data::read_csv(&out).unwrap();
    assert!(done.present.iter().all(|&p| p), "every cell filled");
    assert_eq!(done.values[[0, 0]], 0.5);
    assert_eq!(done.values[[2, 2]], 0.3);
    assert!(done.values.iter().all(|v| v.is_finite()));
    // The output exists now: a second run refuses to replace it, and the input is refused.
    fails(
        &[
            "impute",
            "--checkpoint",
            run.to_str().unwrap(),
            "--csv",
            partial.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        "exists",
    );
    fails(
        &[
            "impute",
            "--checkpoint",
            run.to_str().unwrap(),
            "--csv",
            partial.to_str().unwrap(),
            "--out",
            partial.to_str().unwrap(),
        ],
        "input",
    );
}

#[test]
fn errors_are_one_line_and_non_zero() {
    let run = mnist_run().to_str().unwrap().to_string();
    let out = scratch("errors");
    let o = out.to_str().unwrap();
    fails(
        &[
            "generate",
            "--checkpoint",
            &run,
            "--image",
            "no/such.png",
            "--out",
            o,
        ],
        "no such file",
    );
    fails(
        &[
            "generate",
            "--checkpoint",
            &run,
            "--audio",
            "x.wav",
            "--out",
            o,
        ],
        "no modality \"audio\"",
    );
    fails(
        &[
            "generate",
            "--checkpoint",
            &run,
            "--label",
            "12",
            "--out",
            o,
        ],
        "class number",
    );
    fails(&["eval", "--checkpoint", "no/such/run"], "no/such/run");
    // A checkpoint from another configuration (latent 16 instead of 8) in the run directory.
    let other = scratch("other");
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--no-pictures",
        "--out",
        other.to_str().unwrap(),
    ];
    let mut tiny = TINY.to_vec();
    tiny[1] = "16";
    args.extend(tiny);
    ok_json(&args);
    let mixed = scratch("mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    std::fs::copy(
        Path::new(&run).join("config.toml"),
        mixed.join("config.toml"),
    )
    .unwrap();
    std::fs::copy(
        other.join("checkpoint.safetensors"),
        mixed.join("checkpoint.safetensors"),
    )
    .unwrap();
    fails(
        &[
            "train",
            "--resume",
            mixed.to_str().unwrap(),
            "--epochs",
            "2",
        ],
        "latent",
    );
    // Not a checkpoint at all.
    let junk = out.with_extension("safetensors");
    std::fs::write(&junk, b"definitely not safetensors").unwrap();
    fails(
        &["sample", "--checkpoint", junk.to_str().unwrap(), "--out", o],
        "checkpoint",
    );
    // A bad flag value is a usage error (clap's exit code 2).
    let bad = mvae(&["train", "--epochs", "many"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// `--aggregation` picks how experts are combined: stored in the run's config and checkpoint
/// (read back by `mvae eval`'s model), and an unknown kind is a usage error naming the kinds.
#[test]
fn aggregation_is_chosen_stored_and_checked() {
    let dir = scratch("aggregation");
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--aggregation",
        "poe",
        "--no-pictures",
        "--out",
        d,
    ];
    args.extend(TINY);
    ok_json(&args);
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("aggregation = \"poe\""), "{config}");
    let info = mvae::checkpoint::read_info(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(
        info.model.aggregation,
        mvae::AggregationKind::ProductOfExperts
    );
    let bad = mvae(&["train", "--aggregation", "sum", "--out", d]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown aggregation 'sum'") && err.contains("poe"),
        "{err}"
    );
}

/// `--components N` reaches a MoPoE model's checkpoint and the run's config; with another
/// aggregation, or 0, it is refused with the reason.
#[test]
fn mopoe_components_are_stored_and_checked() {
    let dir = scratch("components");
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--aggregation",
        "mopoe",
        "--components",
        "2",
        "--no-pictures",
        "--out",
        d,
    ];
    args.extend(TINY);
    ok_json(&args);
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("components = 2"), "{config}");
    let info = mvae::checkpoint::read_info(dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(info.model.components, 2);
    for (kind, n, want) in [("poe", "2", "only mopoe"), ("mopoe", "0", "at least 1")] {
        let other = scratch(&format!("components-{kind}-{n}"));
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--aggregation",
            kind,
            "--components",
            n,
            "--no-pictures",
            "--out",
            other.to_str().unwrap(),
        ];
        args.extend(TINY);
        let bad = mvae(&args);
        assert_eq!(bad.status.code(), Some(1), "{kind} {n}");
        let err = String::from_utf8_lossy(&bad.stderr);
        assert!(err.contains("components") && err.contains(want), "{err}");
    }
}

/// `--samples K --estimator NAME` reach the objective, the summary and the run's config; an
/// unknown estimator and K = 0 are refused with the reason.
#[test]
fn samples_and_estimator_are_chosen_stored_and_checked() {
    let dir = scratch("estimator");
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--aggregation",
        "moe",
        "--samples",
        "2",
        "--estimator",
        "dreg",
        "--no-pictures",
        "--out",
        d,
    ];
    args.extend(TINY);
    let v = ok_json(&args);
    assert_eq!(v["estimator"], "dreg");
    assert_eq!(v["samples"], 2);
    assert!(v["test_elbo"].as_f64().unwrap().is_finite(), "{v}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("estimator = \"dreg\""), "{config}");
    assert!(config.contains("samples = 2"), "{config}");

    let bad = mvae(&["train", "--estimator", "vimco", "--out", d]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("vimco") && err.contains("dreg"), "{err}");
    let other = scratch("estimator_zero");
    let mut zero = vec!["train", "--samples", "0", "--out", other.to_str().unwrap()];
    zero.extend(TINY);
    let out = mvae(&zero);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("samples"), "{err}");
}

/// `--contrastive W` adds CLIP's InfoNCE to the loss: stored in the config and checkpoint, its
/// term reported per epoch by name, its learned temperature in the JSON, on posterior draws
/// unless `--contrastive-input mean` says means; the run resumes and evaluates (coherence from
/// draws, or from means with `--coherence-from-mean`); a negative weight is refused naming the
/// setting.
#[test]
fn contrastive_term_is_trained_stored_and_checked() {
    // One epoch of the tiny model with `--contrastive 5` and `flags` into `dir`.
    let train = |dir: &std::path::Path, flags: &[&str]| {
        let mut args = vec![
            "train",
            "--epochs",
            "1",
            "--contrastive",
            "5",
            "--no-pictures",
        ];
        args.extend(flags);
        args.extend(["--out", dir.to_str().unwrap()]);
        args.extend(TINY);
        ok_json(&args)
    };
    let dir = scratch("contrastive");
    let d = dir.to_str().unwrap();
    let v = train(&dir, &[]);
    assert_eq!(v["contrastive"], 5.0);
    assert_eq!(v["contrastive_input"], "draw");
    let temperature = v["temperature"].as_f64().unwrap();
    assert!(
        temperature > 0.01 && temperature < 0.2 && (temperature - 0.07).abs() > 1e-6,
        "a learned temperature near CLIP's 0.07: {v}"
    );
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("contrastive = 5"), "{config}");
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert!(metrics.contains("\"contrastive\""), "{metrics}");
    let resumed = ok_json(&["train", "--resume", d, "--epochs", "2", "--no-pictures"]);
    assert_eq!(resumed["epochs"], 2);
    assert_eq!(resumed["contrastive"], 5.0);
    let eval = ok_json(&["eval", "--checkpoint", d, "--k", "2", "--samples", "20"]);
    assert!(
        eval["retrieval"].is_array() || eval["retrieval"].is_object(),
        "{eval}"
    );
    assert_eq!(eval["coherence_from"], "draw");
    let means = scratch("contrastive_eval_means");
    let eval = ok_json(&[
        "eval",
        "--checkpoint",
        d,
        "--k",
        "2",
        "--samples",
        "20",
        "--coherence-from-mean",
        "--out",
        means.to_str().unwrap(),
    ]);
    assert_eq!(eval["coherence_from"], "mean");
    // On means, stored in the config.
    let on_means = scratch("contrastive_means");
    let v = train(&on_means, &["--contrastive-input", "mean"]);
    assert_eq!(v["contrastive_input"], "mean");
    let config = std::fs::read_to_string(on_means.join("config.toml")).unwrap();
    assert!(config.contains("contrastive_input = \"mean\""), "{config}");
    // A chosen starting temperature, stored in the config.
    let soft = scratch("contrastive_soft");
    let v = train(&soft, &["--contrastive-temperature", "0.5"]);
    let t = v["temperature"].as_f64().unwrap();
    assert!(t > 0.3 && t < 0.7 && t != 0.5, "learned from 0.5: {v}");
    let config = std::fs::read_to_string(soft.join("config.toml")).unwrap();
    assert!(config.contains("contrastive_temperature = 0.5"), "{config}");
    // Held, it stays where it started.
    let held = scratch("contrastive_held");
    let v = train(
        &held,
        &[
            "--contrastive-temperature",
            "0.5",
            "--contrastive-hold-temperature",
        ],
    );
    let t = v["temperature"].as_f64().unwrap();
    assert!((t - 0.5).abs() < 1e-6, "held at 0.5: {v}");
    let config = std::fs::read_to_string(held.join("config.toml")).unwrap();
    assert!(
        config.contains("contrastive_hold_temperature = true"),
        "{config}"
    );

    let other = scratch("contrastive_negative");
    let mut bad = vec![
        "train",
        "--contrastive=-1",
        "--out",
        other.to_str().unwrap(),
    ];
    bad.extend(TINY);
    let out = mvae(&bad);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("contrastive"), "{err}");
}

/// `--binarize` trains on fresh Bernoulli pixels: stored in the config (and kept by a resumed
/// run), reported in the JSON, evaluated on the once-binarised test set; data without an image
/// modality are refused with the reason.
#[test]
fn binarize_is_stored_resumed_and_refused_without_images() {
    let dir = scratch("binarize");
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--binarize",
        "--no-pictures",
        "--out",
        d,
    ];
    args.extend(TINY);
    let v = ok_json(&args);
    assert_eq!(v["binarize"], true, "{v}");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("binarize = true"), "{config}");
    let resumed = ok_json(&["train", "--resume", d, "--epochs", "2", "--no-pictures"]);
    assert_eq!(resumed["binarize"], true, "{resumed}");
    let eval = ok_json(&["eval", "--checkpoint", d, "--k", "2", "--samples", "20"]);
    assert!(eval["likelihoods"].is_array(), "{eval}");

    let csv = scratch("binarize_csv");
    std::fs::create_dir_all(&csv).unwrap();
    let table = csv.join("t.csv");
    let rows: String = (0..40).map(|i| format!("{i},{}\n", i % 7)).collect();
    std::fs::write(&table, format!("a,b\n{rows}")).unwrap();
    let out = mvae(&[
        "train",
        "--csv",
        table.to_str().unwrap(),
        "--binarize",
        "--epochs",
        "1",
        "--out",
        csv.join("run").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("binarize") && err.contains("image"), "{err}");
}

/// Every epoch logs MVAE's test loss; `--keep-best` keeps the model of the epoch with the
/// lowest one after the warm-up (from warm-up + 2 on, as MultiVae), names it in the JSON, and
/// `eval` reads it; a resumed run goes on from the best logged so far.
#[test]
fn keep_best_keeps_the_epoch_with_the_lowest_test_loss() {
    let dir = scratch("keep_best");
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "3",
        "--anneal-epochs",
        "1",
        "--keep-best",
        "--no-pictures",
        "--out",
        d,
    ];
    args.extend(TINY);
    ok_json(&args);
    let v = ok_json(&["train", "--resume", d, "--epochs", "5", "--no-pictures"]);
    let metrics = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let losses: Vec<(u64, f64)> = metrics
        .lines()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                e["epoch"].as_u64().unwrap(),
                e["test_loss"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(losses.len(), 5, "{metrics}");
    assert!(
        losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0),
        "{losses:?}"
    );
    // Warm-up 1: epochs 3 to 5 compete.
    let (epoch, loss) = losses[2..]
        .iter()
        .copied()
        .fold((0, f64::INFINITY), |b, x| if x.1 < b.1 { x } else { b });
    assert_eq!(v["best"]["epoch"], epoch, "{v} {losses:?}");
    assert_eq!(v["best"]["test_loss"].as_f64().unwrap(), loss);
    assert!(dir.join("best.safetensors").exists());
    let best = dir.join("best.safetensors");
    let eval = ok_json(&[
        "eval",
        "--checkpoint",
        best.to_str().unwrap(),
        "--k",
        "2",
        "--samples",
        "20",
        "--out",
        scratch("keep_best_eval").to_str().unwrap(),
    ]);
    assert!(eval["likelihoods"].is_array(), "{eval}");
}

/// `--paired SHARE` trains on partly paired data and is stored; a share outside [0, 1] is
/// refused naming it.
#[test]
fn paired_share_is_stored_and_checked() {
    let dir = scratch("paired");
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--paired",
        "0.1",
        "--no-pictures",
        "--out",
        dir.to_str().unwrap(),
    ];
    args.extend(TINY);
    ok_json(&args);
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    assert!(config.contains("paired = 0.1"), "{config}");
    let bad = scratch("paired_bad");
    let mut args = vec!["train", "--paired", "1.5", "--out", bad.to_str().unwrap()];
    args.extend(TINY);
    let out = mvae(&args);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("paired") && err.contains("1.5"), "{err}");
}

/// `embed` takes the user's own data: a folder of paired files (rows named by their ids, the
/// posterior mean the same as from the same values in a CSV table), and a CSV table (row
/// indices, only the rows that have the given modality).
#[test]
fn embed_reads_a_folder_and_a_csv_table() {
    let run = av_run().to_str().unwrap().to_string();
    let dir = scratch("embed_own");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let digit = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y) % 256) as u8]));
    digit.save(input.join("b,1_image.png")).unwrap();
    std::fs::copy(a_wav(), input.join("b,1_audio.wav")).unwrap();
    std::fs::copy(a_wav(), input.join("a0_audio.wav")).unwrap();
    std::fs::write(input.join("c2_label.txt"), "3\n").unwrap();
    let folder = input.to_str().unwrap();
    // `embed` of `given` from `source` (`--folder DIR` or `--csv FILE`) into `out`.
    let embed = |run: &str, given: &str, source: [&str; 2], out: &std::path::Path| {
        ok_json(&[
            "embed",
            "--checkpoint",
            run,
            "--given",
            given,
            source[0],
            source[1],
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let out = dir.join("audio.csv");
    let v = embed(&run, "audio", ["--folder", folder], &out);
    assert_eq!(v["rows"], 2, "{v}");
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("id,label,z0,"), "{text}");
    assert!(lines[1].starts_with("a0,"), "{text}");
    assert!(lines[2].starts_with("\"b,1\","), "{text}");
    // The same clip gives the same embedding, whatever sample it is in.
    let tail = |l: &str| {
        l.rsplit_once('"')
            .map_or(l.split_once(',').unwrap().1, |x| x.1)
            .trim_start_matches(',')
            .to_string()
    };
    assert_eq!(tail(lines[1]), tail(lines[2]), "{text}");
    let st = dir.join("audio.safetensors");
    embed(&run, "audio", ["--folder", folder], &st);
    let bytes = std::fs::read(&st).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let ids = meta.metadata().as_ref().unwrap()["ids"].clone();
    assert_eq!(ids, r#"["a0","b,1"]"#);

    let table = dir.join("table.csv");
    std::fs::write(&table, "a,b,c\n0.5,0.1,0.6\n,0.3,0.2\n-0.2,0.4,0.2\n").unwrap();
    let csv_out = dir.join("table_a.csv");
    let csv_model = csv_run().to_str().unwrap();
    let v = embed(csv_model, "a", ["--csv", table.to_str().unwrap()], &csv_out);
    assert_eq!(v["rows"], 2, "{v}");
    let text = std::fs::read_to_string(&csv_out).unwrap();
    let rows: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(rows, ["0", "2"], "{text}");
    // Own data and the run's data set are one or the other.
    let both = mvae(&[
        "embed",
        "--checkpoint",
        &run,
        "--given",
        "audio",
        "--folder",
        folder,
        "--data",
        "x",
        "--out",
        dir.join("x.csv").to_str().unwrap(),
    ]);
    assert_eq!(both.status.code(), Some(2));
}

/// `impute --folder` on a three-modality model hands each filled modality to its own files,
/// whatever the order of the model's modalities and the folder's columns.
#[test]
fn impute_a_folder_for_a_three_modality_model() {
    let run = av_run().to_str().unwrap().to_string();
    let dir = scratch("av_folder");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let digit = image::GrayImage::from_fn(28, 28, |x, y| image::Luma([((x * y) % 256) as u8]));
    digit.save(input.join("s0_image.png")).unwrap();
    digit.save(input.join("s1_image.png")).unwrap();
    std::fs::copy(a_wav(), input.join("s0_audio.wav")).unwrap();
    std::fs::copy(a_wav(), input.join("s2_audio.wav")).unwrap();
    std::fs::write(input.join("s0_label.txt"), "3\n").unwrap();
    let out = dir.join("out");
    let v = ok_json(&[
        "impute",
        "--checkpoint",
        &run,
        "--folder",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["samples"], 3);
    assert_eq!(v["filled"]["audio"], 1);
    assert_eq!(v["filled"]["image"], 1);
    assert_eq!(v["filled"]["label"], 2);
    assert_eq!(image::open(out.join("s2_image.png")).unwrap().width(), 28);
    let wav = hound::WavReader::open(out.join("s1_audio.wav")).expect("a readable WAV");
    assert_eq!(wav.spec().sample_rate, 8000);
    for id in ["s1", "s2"] {
        let text = std::fs::read_to_string(out.join(format!("{id}_label.txt"))).unwrap();
        assert!(text.trim().parse::<usize>().unwrap() < 10, "{text:?}");
    }
    assert_eq!(
        std::fs::read(out.join("s0_audio.wav")).unwrap(),
        std::fs::read(input.join("s0_audio.wav")).unwrap(),
        "present files are copied"
    );
}

/// A CSV row with every cell empty is named by its file and 1-based line.
#[test]
fn an_empty_csv_row_names_its_file_and_line() {
    let dir = scratch("empty_row");
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("holes.csv");
    let mut text = String::from("a,b\n");
    for i in 0..30 {
        if i == 3 {
            text.push_str(",\n");
        } else {
            text.push_str(&format!("{i},{}\n", i * 2));
        }
    }
    std::fs::write(&csv, text).unwrap();
    fails(
        &[
            "train",
            "--csv",
            csv.to_str().unwrap(),
            "--out",
            dir.join("run").to_str().unwrap(),
        ],
        "holes.csv: line 5:",
    );
}

/// A finished training does not fail on a picture: one test sample cannot be drawn as a
/// principal-component plot, so that picture is skipped.
#[test]
fn one_test_sample_still_finishes_training() {
    let dir = scratch("one_test");
    let d = dir.to_str().unwrap();
    let v = ok_json(&[
        "train",
        "--epochs",
        "1",
        "--latent",
        "8",
        "--encoder-hidden",
        "32",
        "--decoder-hidden",
        "32",
        "--limit",
        "200",
        "--test-limit",
        "1",
        "--out",
        d,
    ]);
    assert_eq!(v["test_samples"], 1);
    assert!(dir.join("pictures/curves.png").is_file());
    assert!(!dir.join("pictures/latent.png").exists());
}

/// Hiding every modality from every sample leaves nothing to train on: refused, naming the flag.
#[test]
fn hiding_every_modality_is_refused() {
    let dir = scratch("hide_all");
    let mut args = vec![
        "train",
        "--missing",
        "image=1",
        "--missing",
        "label=1",
        "--epochs",
        "1",
        "--out",
    ];
    let d = dir.to_str().unwrap().to_string();
    args.push(&d);
    args.extend(TINY);
    fails(&args, "--missing");
}

/// CSV columns that would become one modality are refused, naming both.
#[test]
fn colliding_csv_columns_are_refused() {
    let dir = scratch("collide");
    std::fs::create_dir_all(&dir).unwrap();
    let table = |name: &str, header: &str| {
        let path = dir.join(name);
        let mut text = format!("{header}\n");
        for i in 0..20 {
            text.push_str(&format!("{i},{},{}\n", i + 1, i * 3));
        }
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_string()
    };
    for (i, (header, needle)) in [
        ("a,a,c", "\"a\" twice (columns 1 and 2)"),
        ("a.b,a_b,c", "\"a.b\" and \"a_b\""),
        ("x y,x-y,c", "\"x y\" and \"x-y\""),
    ]
    .into_iter()
    .enumerate()
    {
        let csv = table(&format!("t{i}.csv"), header);
        let out = dir.join(format!("run{i}"));
        fails(
            &["train", "--csv", &csv, "--out", out.to_str().unwrap()],
            needle,
        );
    }
    let csv = table("g.csv", "a,b,c");
    let out = dir.join("run_group");
    fails(
        &[
            "train",
            "--csv",
            &csv,
            "--group",
            "c=a,b",
            "--out",
            out.to_str().unwrap(),
        ],
        "group \"c\" and column \"c\"",
    );
}

/// A tiny CSV model (columns a, b, c) trained once.
fn csv_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("csv_model");
        std::fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("table.csv");
        let mut text = String::from("a,b,c\n");
        for i in 0..200 {
            let a = (i as f32 * 0.37).sin();
            let b = (i as f32 * 0.11).cos();
            text.push_str(&format!("{a},{b},{}\n", a + b));
        }
        std::fs::write(&csv, &text).unwrap();
        let run = dir.join("run");
        ok_json(&[
            "train",
            "--csv",
            csv.to_str().unwrap(),
            "--latent",
            "8",
            "--encoder-hidden",
            "16",
            "--decoder-hidden",
            "16",
            "--epochs",
            "1",
            "--no-pictures",
            "--out",
            run.to_str().unwrap(),
        ]);
        run
    })
}

/// An output that is an input of the command (here the checkpoint), directly or through a
/// link, is refused even with --force, and the input is left as it was.
#[test]
fn an_output_that_is_an_input_is_refused() {
    let run = csv_run();
    let ckpt = run.join("checkpoint.safetensors");
    let before = std::fs::read(&ckpt).unwrap();
    let dir = scratch("out_is_input");
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join("partial.csv");
    std::fs::write(&partial, "a,b,c\n0.5,,1.0\n").unwrap();
    let link = dir.join("link.safetensors");
    std::os::unix::fs::symlink(&ckpt, &link).unwrap();
    for out in [&ckpt, &link] {
        fails(
            &[
                "impute",
                "--checkpoint",
                run.to_str().unwrap(),
                "--csv",
                partial.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
                "--force",
            ],
            "(--checkpoint)",
        );
    }
    assert_eq!(
        std::fs::read(&ckpt).unwrap(),
        before,
        "the checkpoint is kept"
    );
    // The same check guards the other commands that write: a config file as train's --out.
    let config = run.join("config.toml");
    fails(
        &[
            "train",
            "--config",
            config.to_str().unwrap(),
            "--out",
            config.to_str().unwrap(),
            "--force",
        ],
        "(--config)",
    );
}

/// Two files for one modality of one sample are refused, naming both.
#[test]
fn impute_folder_refuses_two_files_for_one_modality() {
    let run = mnist_run().to_str().unwrap().to_string();
    let dir = scratch("two_files");
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    let digit = image::GrayImage::new(28, 28);
    digit.save(input.join("x_image.png")).unwrap();
    digit.save(input.join("x_image.jpg")).unwrap();
    fails(
        &[
            "impute",
            "--checkpoint",
            &run,
            "--folder",
            input.to_str().unwrap(),
            "--out",
            dir.join("out").to_str().unwrap(),
        ],
        "x_image.jpg and x_image.png",
    );
}

/// Every mixture aggregation goes through the whole tool: train (with pictures), eval,
/// generate from a label and from an image, sample; the run's config names its aggregation.
#[test]
fn mixtures_train_evaluate_and_generate() {
    for kind in ["moe", "mopoe", "mmvae-plus"] {
        let dir = scratch(&format!("mix_{kind}"));
        let d = dir.to_str().unwrap().to_string();
        let mut args = vec!["train", "--epochs", "1", "--aggregation", kind, "--out", &d];
        args.extend(TINY);
        let v = ok_json(&args);
        assert!(v["test_elbo"].as_f64().unwrap().is_finite(), "{kind}");
        assert_eq!(v["aggregation"], kind);
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(
            config.contains(&format!("aggregation = \"{kind}\"")),
            "{config}"
        );

        let eval_out = scratch(&format!("mix_{kind}_eval"));
        let e = ok_json(&[
            "eval",
            "--checkpoint",
            &d,
            "--k",
            "4",
            "--samples",
            "40",
            "--out",
            eval_out.to_str().unwrap(),
        ]);
        let lls = e["likelihoods"].as_array().unwrap();
        assert!(!lls.is_empty(), "{kind}");
        for l in lls {
            assert!(
                l["log_likelihood"].as_f64().unwrap().is_finite(),
                "{kind}: {l}"
            );
        }
        let coh = e["coherence"]["conditional"].as_array().unwrap();
        assert!(
            coh.iter().all(|c| c["coherence"].as_f64().is_some()),
            "{kind}"
        );

        let gen = scratch(&format!("mix_{kind}_gen"));
        let g = ok_json(&[
            "generate",
            "--checkpoint",
            &d,
            "--label",
            "3",
            "--samples",
            "2",
            "--out",
            gen.to_str().unwrap(),
        ]);
        let files = g["outputs"]["image"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 2, "{kind}");
        let png = files[0].as_str().unwrap().to_string();
        let read = scratch(&format!("mix_{kind}_read"));
        let r = ok_json(&[
            "generate",
            "--checkpoint",
            &d,
            "--image",
            &png,
            "--mean",
            "--out",
            read.to_str().unwrap(),
        ]);
        let p = r["outputs"]["label"]["probabilities"][0]
            .as_array()
            .unwrap();
        let sum: f64 = p.iter().map(|x| x.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{kind}");

        let samples = scratch(&format!("mix_{kind}_sample"));
        let s = ok_json(&[
            "sample",
            "--checkpoint",
            &d,
            "-n",
            "3",
            "--out",
            samples.to_str().unwrap(),
        ]);
        assert_eq!(
            s["outputs"]["label"]["classes"].as_array().unwrap().len(),
            3
        );
    }
}

/// `impute --csv` writes every present cell and every column the model does not know exactly as
/// the input spells it (large ids, long decimals, leading zeros, text); only the empty cells of
/// the model's columns get new text.
#[test]
fn impute_csv_keeps_present_cells_byte_for_byte() {
    let run = csv_run();
    let dir = scratch("impute_bytes");
    std::fs::create_dir_all(&dir).unwrap();
    let partial = dir.join("partial.csv");
    let input = "id,a,name,b,c,code\n\
                 1234567891,3.14159265358979,Ada,,1.0,007\n\
                 1234567892,,\"Lovelace, A.\",0.2,,007\n\
                 1234567893,0.10, Bob ,0.20000000000000001,0.30,1e3\n";
    std::fs::write(&partial, input).unwrap();
    let out = dir.join("done.csv");
    let v = ok_json(&[
        "impute",
        "--checkpoint",
        run.to_str().unwrap(),
        "--csv",
        partial.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(v["filled"]["a"], 1);
    assert_eq!(v["filled"]["b"], 1);
    assert_eq!(v["filled"]["c"], 1);
    let records = |bytes: &[u8]| -> Vec<Vec<String>> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(bytes)
            .records()
            .map(|r| r.unwrap().iter().map(str::to_string).collect())
            .collect()
    };
    let written = std::fs::read(&out).unwrap();
    let (before, after) = (records(input.as_bytes()), records(&written));
    assert_eq!(before.len(), after.len(), "same rows");
    let empty = [(1, 3), (2, 1), (2, 4)];
    for (r, (old, new)) in before.iter().zip(&after).enumerate() {
        assert_eq!(old.len(), new.len(), "row {r}");
        for (c, (o, n)) in old.iter().zip(new).enumerate() {
            if empty.contains(&(r, c)) {
                assert!(
                    n.parse::<f32>().is_ok_and(f32::is_finite),
                    "({r},{c}): {n:?}"
                );
            } else {
                assert_eq!(o, n, "cell ({r},{c}) kept as written");
            }
        }
    }
    // A row with nothing to fill, and the header, come out as the very same bytes.
    let text = String::from_utf8(written).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "id,a,name,b,c,code");
    assert_eq!(
        lines[3],
        "1234567893,0.10, Bob ,0.20000000000000001,0.30,1e3"
    );
}

/// A count of draws over the cap is refused before anything is written (no folder, no
/// files); the cap itself works and its grid picture shows the first draws only.
#[test]
fn draws_over_the_cap_are_refused_before_writing() {
    let run = mnist_run().to_str().unwrap().to_string();
    let dir = scratch("draw_cap");
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    fails(
        &["sample", "--checkpoint", &run, "-n", "1001", "--out", o],
        "-n 1001 is more than the 1000 draws",
    );
    fails(
        &[
            "generate",
            "--checkpoint",
            &run,
            "--label",
            "3",
            "--samples",
            "100000",
            "--out",
            o,
        ],
        "--samples 100000 is more than the 1000 draws",
    );
    assert!(!out.exists(), "nothing written");
    let v = ok_json(&["sample", "--checkpoint", &run, "-n", "1000", "--out", o]);
    assert_eq!(v["draws"], 1000);
    assert_eq!(
        v["outputs"]["image"]["files"].as_array().unwrap().len(),
        1000
    );
    let grid = image::open(out.join("image_grid.png")).unwrap();
    assert!(grid.height() < 2000, "a grid of the first draws only");
}

/// `train --force` into an old run removes the old run's results (config, checkpoint, metrics,
/// `eval.json`, `pictures/`) and leaves other files; `--resume --epochs N` records N in the
/// run's `config.toml`.
#[test]
fn force_clears_old_results_and_resume_records_epochs() {
    let dir = scratch("force_stale");
    std::fs::create_dir_all(dir.join("pictures")).unwrap();
    std::fs::write(dir.join("eval.json"), "{\"old\": true}").unwrap();
    std::fs::write(dir.join("pictures").join("image_to_audio_0.wav"), "old").unwrap();
    std::fs::write(dir.join("metrics.jsonl"), "not json\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--epochs",
        "1",
        "--no-pictures",
        "--force",
        "--out",
        d,
    ];
    args.extend(TINY);
    ok_json(&args);
    assert!(!dir.join("eval.json").exists(), "old eval.json removed");
    assert!(!dir.join("pictures").exists(), "old pictures removed");
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
        "mine"
    );
    let epochs = || {
        let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        let v: toml::Value = toml::from_str(&text).unwrap();
        v["train"]["epochs"].as_integer().unwrap()
    };
    assert_eq!(epochs(), 1);
    let v = ok_json(&["train", "--resume", d, "--epochs", "2", "--no-pictures"]);
    assert_eq!(v["epochs"], 2);
    assert_eq!(epochs(), 2, "config.toml is the resolved configuration");
}

/// PolyMNIST through the tool: every aggregation trains one epoch of five RGB modalities on a
/// few hundred tuples built from the bundled MNIST; `eval` reports coherence given 1 to 4
/// modalities by name (in eval.json and the readable summary); pictures, samples and
/// generated files are RGB PNGs, and an RGB PNG can be given back to `generate`.
#[test]
fn polymnist_trains_with_every_aggregation_and_reports_coherence_given_k() {
    let names = ["m0", "m1", "m2", "m3", "m4"];
    for kind in ["poe", "moe", "mopoe", "mmvae-plus"] {
        let dir = scratch(&format!("poly_{kind}"));
        let d = dir.to_str().unwrap().to_string();
        let v = ok_json(&[
            "train",
            "--dataset",
            "polymnist",
            "--aggregation",
            kind,
            "--epochs",
            "1",
            "--latent",
            "8",
            "--encoder-hidden",
            "64",
            "--decoder-hidden",
            "64",
            "--limit",
            "300",
            "--test-limit",
            "100",
            "--out",
            &d,
        ]);
        assert_eq!(v["epochs"], 1, "{kind}");
        assert_eq!(v["train_samples"], 300, "{kind}");
        assert!(v["test_elbo"].as_f64().unwrap().is_finite(), "{kind}: {v}");
        let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
        assert!(config.contains("dataset = \"polymnist\""), "{config}");
        let cross = image::open(dir.join("pictures/cross_modal.png")).unwrap();
        assert_eq!(cross.color(), image::ColorType::Rgb8, "{kind}");
        let coloured = cross
            .to_rgb8()
            .pixels()
            .filter(|p| p.0[0].abs_diff(p.0[1]) > 40 || p.0[1].abs_diff(p.0[2]) > 40)
            .count();
        assert!(coloured > 1000, "{kind}: {coloured} coloured pixels");
        assert!(dir.join("pictures/latent.png").is_file(), "{kind}");
        if kind != "mopoe" {
            continue;
        }

        let eval_out = scratch("poly_eval");
        let out = mvae(&[
            "eval",
            "--checkpoint",
            &d,
            "--k",
            "4",
            "--samples",
            "20",
            "--out",
            eval_out.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("given 1 modality:"), "{text}");
        assert!(text.contains("given 4 modalities:"), "{text}");
        let e: Value =
            serde_json::from_str(&std::fs::read_to_string(eval_out.join("eval.json")).unwrap())
                .unwrap();
        let judges = e["coherence"]["judges"].as_array().unwrap();
        let judged: Vec<&str> = judges
            .iter()
            .map(|j| j["modality"].as_str().unwrap())
            .collect();
        assert_eq!(judged, names);
        let given_k = e["coherence"]["given_k"].as_array().unwrap();
        assert_eq!(given_k.len(), 4, "{given_k:?}");
        for (g, (k, count)) in given_k.iter().zip([(1, 5), (2, 10), (3, 10), (4, 5)]) {
            assert_eq!(g["k"], k);
            assert_eq!(g["of"], count);
            let subsets = g["subsets"].as_array().unwrap();
            assert_eq!(subsets.len(), count);
            let c = g["coherence"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&c), "{g}");
            let mean = subsets
                .iter()
                .map(|s| s["coherence"].as_f64().unwrap())
                .sum::<f64>()
                / count as f64;
            assert!((c - mean).abs() < 1e-9, "{g}");
            for s in subsets {
                let given = s["given"].as_array().unwrap();
                let targets = s["targets"].as_array().unwrap();
                assert_eq!(given.len(), k);
                assert_eq!(targets.len(), 5 - k);
                for n in given.iter().chain(targets) {
                    assert!(names.contains(&n.as_str().unwrap()), "{s}");
                }
            }
        }

        let samples = scratch("poly_sample");
        let s = ok_json(&[
            "sample",
            "--checkpoint",
            &d,
            "-n",
            "2",
            "--out",
            samples.to_str().unwrap(),
        ]);
        let files = s["outputs"]["m2"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 2);
        let png = files[0].as_str().unwrap().to_string();
        assert_eq!(image::open(&png).unwrap().color(), image::ColorType::Rgb8);
        let gen = scratch("poly_gen");
        let given = format!("m2={png}");
        let g = ok_json(&[
            "generate",
            "--checkpoint",
            &d,
            "--given",
            &given,
            "--mean",
            "--out",
            gen.to_str().unwrap(),
        ]);
        let outputs = g["outputs"].as_object().unwrap();
        let generated: Vec<&str> = outputs.keys().map(String::as_str).collect();
        assert_eq!(generated, ["m0", "m1", "m3", "m4"]);
        let file = g["outputs"]["m4"]["files"][0].as_str().unwrap();
        let img = image::open(file).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8);
        assert_eq!((img.width(), img.height()), (28, 28));

        // impute --folder reads the given RGB files as colour and writes the missing ones.
        let folder = scratch("poly_folder");
        let input = folder.join("in");
        std::fs::create_dir_all(&input).unwrap();
        let red = image::RgbImage::from_fn(28, 28, |x, _| image::Rgb([200, (x * 9) as u8, 10]));
        red.save(input.join("t0_m0.png")).unwrap();
        std::fs::copy(&png, input.join("t0_m2.png")).unwrap();
        let filled = folder.join("out");
        let v = ok_json(&[
            "impute",
            "--checkpoint",
            &d,
            "--folder",
            input.to_str().unwrap(),
            "--out",
            filled.to_str().unwrap(),
        ]);
        assert_eq!(v["samples"], 1);
        for m in ["m1", "m3", "m4"] {
            assert_eq!(v["filled"][m], 1, "{v}");
            let img = image::open(filled.join(format!("t0_{m}.png"))).unwrap();
            assert_eq!(img.color(), image::ColorType::Rgb8, "{m}");
        }
        assert_eq!(
            std::fs::read(filled.join("t0_m0.png")).unwrap(),
            std::fs::read(input.join("t0_m0.png")).unwrap(),
            "present files are copied"
        );
    }
    // The class column is not a modality: it cannot be hidden.
    let bad = scratch("poly_missing");
    fails(
        &[
            "train",
            "--dataset",
            "polymnist",
            "--missing",
            "label=0.5",
            "--limit",
            "50",
            "--test-limit",
            "20",
            "--out",
            bad.to_str().unwrap(),
        ],
        "not a modality of this data (it has m0, m1, m2, m3, m4)",
    );
}

/// PolyMNIST from the full MNIST: MoPoE trained for 10 epochs on the first 10,000 tuples
/// generates images of the conditioning digit well above chance (0.1), and more often the more
/// modalities it is given. Measured with these commands (2026-12-07, 2 CPU cores, about 12
/// minutes): coherence given 1, 2, 3, 4 = 0.252, 0.278, 0.301, 0.318; the judges' accuracy on
/// real test images 0.74 to 0.86.
#[test]
#[ignore = "needs MVAE_DATA; about 12 minutes, so .ci/run skips it by name"]
fn polymnist_coherence_rises_with_the_modalities_given() {
    let data = crate::common::full_data().expect("MVAE_DATA");
    let dir = scratch("poly_full");
    let d = dir.to_str().unwrap().to_string();
    ok_json(&[
        "train",
        "--dataset",
        "polymnist",
        "--data",
        data.to_str().unwrap(),
        "--aggregation",
        "mopoe",
        "--limit",
        "10000",
        "--test-limit",
        "2000",
        "--epochs",
        "10",
        "--out",
        &d,
    ]);
    let e = ok_json(&["eval", "--checkpoint", &d, "--k", "10", "--samples", "200"]);
    let given: Vec<f64> = e["coherence"]["given_k"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["coherence"].as_f64().unwrap())
        .collect();
    eprintln!("coherence given 1..4: {given:?}");
    assert_eq!(given.len(), 4);
    assert!(given[0] > 0.18, "{given:?}");
    assert!(given[3] > given[0] + 0.03, "{given:?}");
}

#[test]
fn absurd_sizes_and_endless_checkpoints_are_refused() {
    for hidden in ["18446744073709551615", "100000000"] {
        let out = scratch(&format!("sizes-{hidden}"));
        let o = out.to_str().unwrap();
        let args = [
            "train",
            "--epochs",
            "1",
            "--limit",
            "100",
            "--test-limit",
            "50",
            "--encoder-hidden",
            hidden,
            "--out",
            o,
        ];
        fails(&args, "invalid image hidden size");
        let _ = std::fs::remove_dir_all(&out);
        fails(&args, "at most 65536 units per layer");
    }
    let out = scratch("sizes");
    let o = out.to_str().unwrap();
    if Path::new("/dev/urandom").exists() {
        let started = std::time::Instant::now();
        let args = [
            "sample",
            "--checkpoint",
            "/dev/urandom",
            "-n",
            "1",
            "--out",
            o,
        ];
        fails(&args, "not a readable checkpoint");
        fails(
            &["eval", "--checkpoint", "/dev/urandom", "--out", o],
            "not a readable checkpoint",
        );
        assert!(started.elapsed().as_secs() < 10);
    }
}

#[test]
fn eval_keeps_an_existing_report_and_checks_its_folder_first() {
    let run = mnist_run().to_str().unwrap().to_string();
    let out = scratch("eval_twice");
    let o = out.to_str().unwrap();
    let args = [
        "eval",
        "--checkpoint",
        &run,
        "--k",
        "2",
        "--samples",
        "20",
        "--out",
        o,
    ];
    ok_json(&args);
    let first = std::fs::read(out.join("eval.json")).unwrap();
    fails(
        &args,
        "eval.json exists; choose another --out or pass --force",
    );
    assert_eq!(std::fs::read(out.join("eval.json")).unwrap(), first);
    let mut forced = args.to_vec();
    forced.push("--force");
    ok_json(&forced);
    // A folder locked by a running process (here: this test) is not written.
    std::fs::write(out.join(".mvae.lock"), std::process::id().to_string()).unwrap();
    fails(
        &forced,
        &format!("is in use by process {}", std::process::id()),
    );
    // A folder nobody may write into (even root may not create files in /proc) fails before
    // the evaluation (minutes at the default --k and --samples), not after it.
    if Path::new("/proc/self").is_dir() {
        let started = std::time::Instant::now();
        fails(
            &["eval", "--checkpoint", &run, "--out", "/proc"],
            "/proc is not writable",
        );
        assert!(started.elapsed().as_secs() < 10);
    }
}

#[test]
fn a_failed_run_leaves_no_config_and_resume_takes_only_its_flags() {
    let dir = scratch("failed_run");
    let d = dir.to_str().unwrap();
    let csv = dir.with_extension("csv");
    let _ = std::fs::remove_file(&csv);
    let c = csv.to_str().unwrap();
    let args = ["train", "--csv", c, "--epochs", "1", "--out", d];
    fails(&args, "No such file");
    assert!(
        !dir.join("config.toml").exists(),
        "a failed run left its config"
    );
    // Good data, a model that cannot be built.
    let rows = "a,b\n1,2\n2,3\n3,4\n4,5\n5,6\n6,7\n7,8\n8,9\n9,10\n10,11\n";
    std::fs::write(&csv, rows).unwrap();
    let mut wide = args.to_vec();
    wide.extend(["--decoder-hidden", "100000000"]);
    fails(&wide, "at most 65536 units per layer");
    assert!(
        !dir.join("config.toml").exists(),
        "a failed run left its config"
    );
    // The corrected rerun needs no --force.
    ok_json(&args);
    assert!(
        !dir.join(".mvae.lock").exists(),
        "the lock is removed at the end"
    );
    let out = mvae(&[
        "train", "--resume", d, "--epochs", "2", "--lr", "0.1", "--latent", "16", "--out", "x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("not --out, --latent, --lr;"), "{err}");
    // --epochs and --data are taken.
    let v = ok_json(&["train", "--resume", d, "--epochs", "2"]);
    assert_eq!(v["epochs"], 2);
}

#[test]
fn a_run_directory_is_locked_and_a_killed_first_epoch_says_how_to_restart() {
    let dir = scratch("locked");
    let d = dir.to_str().unwrap();
    let slow = [
        "train",
        "--epochs",
        "50",
        "--limit",
        "1000",
        "--test-limit",
        "100",
        "--encoder-hidden",
        "2048,2048",
        "--decoder-hidden",
        "2048,2048",
        "--latent",
        "8",
        "--no-pictures",
        "--out",
        d,
    ];
    let mut first = Command::new(env!("CARGO_BIN_EXE_mvae"))
        .args(slow)
        .env("MVAE_DATA", bundled())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !dir.join("config.toml").exists() {
        assert!(
            started.elapsed().as_secs() < 120,
            "the first run never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // A second train into the same folder, even with --force, is refused naming the holder.
    let mut second = slow.to_vec();
    second.push("--force");
    fails(&second, &format!("is in use by process {}", first.id()));
    fails(
        &["train", "--resume", d],
        &format!("process {}", first.id()),
    );
    // SIGKILL in the first epoch: no checkpoint yet, and a stale lock.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        !dir.join("checkpoint.safetensors").exists(),
        "killed too late"
    );
    assert!(dir.join(".mvae.lock").exists());
    let out = mvae(&["train", "--resume", d]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("taking over the lock"), "{err}");
    assert!(
        err.contains("has no checkpoint yet") && err.contains("--force"),
        "{err}"
    );
    // The way out it names works (here with fewer epochs and a smaller model).
    let config = dir.join("config.toml");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("epochs = 50", "epochs = 1")
        .replace("2048, 2048", "32");
    let cfg = dir.with_extension("toml");
    std::fs::write(&cfg, text).unwrap();
    let v = ok_json(&[
        "train",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        d,
        "--force",
    ]);
    assert_eq!(v["epochs"], 1);
    assert!(!dir.join(".mvae.lock").exists());
}

#[test]
fn huge_finite_inputs_are_refused_naming_their_column() {
    let dir = scratch("huge");
    std::fs::create_dir_all(&dir).unwrap();
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let mut rows = String::from("a,b,c\n");
    for i in 0..50 {
        rows.push_str(&format!("{i},{},{}\n", i * 2, i * 3));
    }
    rows.push_str("1,1e30,2\n");
    let table = file("table.csv", &rows);
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    fails(
        &["train", "--csv", &table, "--epochs", "1", "--out", r],
        "line 52: column 2 (b): '1e30' is beyond ±1e18",
    );
    assert!(!run.join("config.toml").exists());

    let model = csv_run().to_str().unwrap();
    let out = dir.join("filled.csv");
    let o = out.to_str().unwrap();
    let huge = file("huge.csv", "a,b,c\n0.5,,\n,0.1,1e30\n");
    let impute = ["impute", "--checkpoint", model, "--csv", &huge, "--out", o];
    fails(&impute, "line 3: column 3 (c): '1e30' is beyond ±1e18");
    // Finite and within the bound, but a billion standard deviations from the training data.
    let far = file("far.csv", "a,b,c\n0.5,,\n,1e9,0.2\n");
    let impute = ["impute", "--checkpoint", model, "--csv", &far, "--out", o];
    fails(&impute, "line 3: column b: 1000000000 lies");
    assert!(!out.exists());

    let g = dir.join("gen");
    let g = g.to_str().unwrap();
    for (given, needle) in [
        (
            "b=1e30",
            "b: \"1e30\" is not comma-separated numbers: '1e30' is beyond ±1e18",
        ),
        ("c=-1e12", "column c: -1000000000000 lies"),
    ] {
        let args = [
            "generate",
            "--checkpoint",
            model,
            "--given",
            given,
            "--out",
            g,
        ];
        fails(&args, needle);
    }
    // Within the bounds: every output is a number, none null.
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        model,
        "--given",
        "b=100000",
        "--out",
        g,
    ]);
    for (name, o) in v["outputs"].as_object().unwrap() {
        for row in o["values"].as_array().unwrap() {
            for x in row.as_array().unwrap() {
                assert!(x.as_f64().is_some_and(f64::is_finite), "{name}: {x}");
            }
        }
    }
}

#[test]
fn existing_outputs_need_force() {
    let dir = scratch("existing");
    std::fs::create_dir_all(&dir).unwrap();
    let kept = dir.join("kept.txt");
    std::fs::write(&kept, "mine").unwrap();
    let d = dir.to_str().unwrap();
    let run = mnist_run().to_str().unwrap();
    fails(
        &["sample", "--checkpoint", run, "-n", "2", "--out", d],
        "is not empty; choose another --out or pass --force",
    );
    let csv = dir.join("partial.csv");
    std::fs::write(&csv, "a,b,c\n0.5,,1.0\n").unwrap();
    let model = csv_run().to_str().unwrap();
    let c = csv.to_str().unwrap();
    let k = kept.to_str().unwrap();
    fails(
        &["impute", "--checkpoint", model, "--csv", c, "--out", k],
        "exists; choose another --out or pass --force",
    );
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "mine");
}

/// Runs `mvae` in readable mode, expects success and returns what it printed on stdout.
fn ok_text(args: &[&str]) -> String {
    let out = mvae(args);
    assert!(
        out.status.success(),
        "mvae {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sample --force` and `generate --force` into a folder of an earlier run's draws remove
/// those draws (files, grid) first, so no old draw is left beside the new ones; the user's
/// other files and folders stay.
#[test]
fn force_clears_the_old_draws_of_generate_and_sample() {
    let dir = scratch("force_draws");
    let d = dir.to_str().unwrap();
    let run = mnist_run().to_str().unwrap();
    ok_json(&["sample", "--checkpoint", run, "-n", "5", "--out", d]);
    for i in 0..5 {
        assert!(dir.join(format!("image_{i}.png")).is_file());
    }
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    std::fs::write(dir.join("image_mine.png"), "mine").unwrap();
    std::fs::create_dir(dir.join("image_7.png")).unwrap();
    ok_json(&[
        "sample",
        "--checkpoint",
        run,
        "-n",
        "2",
        "--out",
        d,
        "--force",
    ]);
    let names = || {
        let mut n: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    assert_eq!(
        names(),
        [
            "image_0.png",
            "image_1.png",
            "image_7.png",
            "image_grid.png",
            "image_mine.png",
            "notes.txt"
        ]
    );
    ok_json(&[
        "generate",
        "--checkpoint",
        run,
        "--label",
        "3",
        "--samples",
        "1",
        "--out",
        d,
        "--force",
    ]);
    assert_eq!(
        names(),
        [
            "image_0.png",
            "image_7.png",
            "image_grid.png",
            "image_mine.png",
            "notes.txt"
        ]
    );
    assert!(dir.join("image_7.png").is_dir());
}

/// `generate` for a CSV model writes the generated columns to `generated.csv` (one row per
/// draw) and names it, in JSON and in the readable summary; `sample` too, and `--force` removes
/// an old table.
#[test]
fn generate_for_a_csv_model_writes_a_table() {
    let run = csv_run().to_str().unwrap();
    let dir = scratch("csv_generate");
    let d = dir.to_str().unwrap();
    let v = ok_json(&[
        "generate",
        "--checkpoint",
        run,
        "--given",
        "a=0.5",
        "--samples",
        "3",
        "--out",
        d,
    ]);
    let table = dir.join("generated.csv");
    assert_eq!(v["outputs"]["b"]["file"], table.to_str().unwrap());
    let text = std::fs::read_to_string(&table).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "b,c");
    assert_eq!(lines.len(), 4, "{text}");
    let b = v["outputs"]["b"]["values"][1][0].as_f64().unwrap();
    let cell: f64 = lines[2].split(',').next().unwrap().parse().unwrap();
    assert!((b - cell).abs() < 1e-5 * b.abs().max(1.0), "{b} vs {cell}");
    let printed = ok_text(&[
        "generate",
        "--checkpoint",
        run,
        "--given",
        "a=0.5",
        "--mean",
        "--out",
        d,
        "--force",
    ]);
    assert!(printed.contains("generated.csv"), "{printed}");
    assert_eq!(std::fs::read_to_string(&table).unwrap().lines().count(), 2);
    ok_json(&[
        "sample",
        "--checkpoint",
        run,
        "-n",
        "4",
        "--out",
        d,
        "--force",
    ]);
    let text = std::fs::read_to_string(&table).unwrap();
    assert_eq!(text.lines().next(), Some("a,b,c"));
    assert_eq!(text.lines().count(), 5);
}

/// The readable summary of `generate` shows each drawn class with its probability, and every
/// class's probability for the posterior mean, as `--help` says.
#[test]
fn readable_generate_shows_class_probabilities() {
    let run = mnist_run().to_str().unwrap();
    let dir = scratch("readable_probs");
    let d = dir.to_str().unwrap();
    ok_json(&[
        "generate",
        "--checkpoint",
        run,
        "--label",
        "3",
        "--samples",
        "1",
        "--out",
        d,
    ]);
    let png = dir.join("image_0.png");
    let out2 = scratch("readable_probs_mean");
    let printed = ok_text(&[
        "generate",
        "--checkpoint",
        run,
        "--image",
        png.to_str().unwrap(),
        "--mean",
        "--out",
        out2.to_str().unwrap(),
    ]);
    let label = printed
        .lines()
        .find(|l| l.starts_with("label: "))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(
        label.contains(" (p 0.") || label.contains(" (p 1.00)"),
        "{printed}"
    );
    assert!(printed.contains("probabilities 0: "), "{printed}");
    assert!(printed.contains(", 9: "), "{printed}");
    let help = String::from_utf8(mvae(&["generate", "--help"]).stdout).unwrap();
    assert!(help.contains("with its probability"), "{help}");
}

/// `eval` at its defaults says on stderr (readable mode only) that it takes minutes and names
/// `--k` and `--samples`; `--help` says so too.
#[test]
fn eval_at_its_defaults_names_the_flags_that_make_it_quicker() {
    let run = mnist_run().to_str().unwrap();
    let dir = scratch("eval_hint");
    let d = dir.to_str().unwrap();
    // A data folder that does not exist ends the run after the note, before any computation.
    let missing = dir.join("no_data");
    let m = missing.to_str().unwrap();
    let out = mvae(&["eval", "--checkpoint", run, "--data", m, "--out", d]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("takes minutes") && err.contains("--k 50 --samples 200"),
        "{err}"
    );
    let out = mvae(&[
        "eval",
        "--checkpoint",
        run,
        "--data",
        m,
        "--out",
        d,
        "--json",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note:"));
    let out = mvae(&[
        "eval",
        "--checkpoint",
        run,
        "--data",
        m,
        "--out",
        d,
        "--k",
        "10",
    ]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("note:"));
    let help = String::from_utf8(mvae(&["eval", "--help"]).stdout).unwrap();
    assert!(
        help.contains("takes minutes") && help.contains("--k 50"),
        "{help}"
    );
}

/// `dataset = "av-digits"` (the command line's spelling) is read from a TOML config as well as
/// `av_digits`; a run's config.toml writes `av_digits`.
#[test]
fn both_spellings_of_av_digits_are_read_from_toml() {
    let dir = scratch("av_spelling");
    std::fs::create_dir_all(&dir).unwrap();
    for spelling in ["av-digits", "av_digits"] {
        let cfg = dir.join(format!("{spelling}.toml"));
        std::fs::write(&cfg, format!("[data]\ndataset = \"{spelling}\"\n")).unwrap();
        // Parsed: the run goes on to the next check, the latent size.
        fails(
            &[
                "train",
                "--config",
                cfg.to_str().unwrap(),
                "--latent",
                "24",
                "--out",
                dir.join("run").to_str().unwrap(),
            ],
            "latent size 24 is not built into this tool",
        );
    }
    let text = std::fs::read_to_string(av_run().join("config.toml")).unwrap();
    assert!(text.contains("dataset = \"av_digits\""), "{text}");
}

/// A CSV run started with a relative `--csv` stores the file's absolute path in its
/// config.toml, so that `--resume` and `eval` work from another folder.
#[test]
fn a_csv_run_stores_its_file_absolute_and_resumes_from_elsewhere() {
    let dir = scratch("csv_relative");
    std::fs::create_dir_all(dir.join("elsewhere")).unwrap();
    let mut text = String::from("x,y\n");
    for i in 0..60 {
        let x = (i as f32 * 0.3).sin();
        text.push_str(&format!("{x},{}\n", 2.0 * x));
    }
    std::fs::write(dir.join("t.csv"), text).unwrap();
    let run_in = |cwd: &Path, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mvae"))
            .args(args)
            .arg("--json")
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mvae {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut args = vec!["train", "--csv", "t.csv", "--epochs", "1", "--no-pictures"];
    args.extend([
        "--encoder-hidden",
        "8",
        "--decoder-hidden",
        "8",
        "--out",
        "run",
    ]);
    run_in(&dir, &args);
    let cfg: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("run/config.toml")).unwrap()).unwrap();
    let stored = PathBuf::from(cfg["data"]["manifest"].as_str().unwrap());
    assert!(stored.is_absolute(), "{stored:?}");
    assert_eq!(stored, dir.join("t.csv").canonicalize().unwrap());
    // A run written when the data set was called `csv` reads and resumes as well.
    let text = std::fs::read_to_string(dir.join("run/config.toml")).unwrap();
    let old = text
        .replace("dataset = \"manifest\"", "dataset = \"csv\"")
        .replace("manifest = ", "csv = ");
    assert_ne!(old, text);
    std::fs::write(dir.join("run/config.toml"), old).unwrap();
    run_in(
        &dir.join("elsewhere"),
        &[
            "train",
            "--resume",
            "../run",
            "--epochs",
            "2",
            "--no-pictures",
        ],
    );
}

/// `embed` writes one row per test sample with the given modalities, as CSV (row index,
/// class, z0..) or safetensors (rows, means, variances), and refuses bad requests before
/// reading data.
#[test]
fn embed_writes_the_latent_means_of_a_split() {
    let dir = scratch("embed");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--epochs", "1", "--no-pictures", "--out", r];
    args.extend(TINY);
    ok_json(&args);
    let csv = dir.join("image.csv");
    let v = ok_json(&[
        "embed",
        "--checkpoint",
        r,
        "--given",
        "image",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(v["rows"], 200, "{v}");
    assert_eq!(v["dim"], 8, "{v}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["row", "label", "z0"]);
    assert_eq!(header.len(), 2 + 8);
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0][0], "0");
    assert!(rows.iter().all(|r| r.len() == 10
        && r[2..]
            .iter()
            .all(|x| x.parse::<f32>().is_ok_and(f32::is_finite))));
    // the same file again needs --force
    let again = mvae(&[
        "embed",
        "--checkpoint",
        r,
        "--given",
        "image",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(1));
    // safetensors with variances, both modalities
    let st = dir.join("both.safetensors");
    ok_json(&[
        "embed",
        "--checkpoint",
        r,
        "--given",
        "image,label",
        "--variances",
        "--limit",
        "50",
        "--out",
        st.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&st).unwrap();
    let t = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(t.tensor("rows").unwrap().shape(), [50]);
    assert_eq!(t.tensor("means").unwrap().shape(), [50, 8]);
    let var = t.tensor("variances").unwrap();
    assert!(var
        .data()
        .chunks(4)
        .all(|b| f32::from_le_bytes(b.try_into().unwrap()) > 0.0));
    for (bad, want) in [
        (vec!["--given", "sound", "--out", "x.csv"], "sound"),
        (
            vec!["--given", "image", "--out", "x.txt"],
            ".csv or .safetensors",
        ),
        (
            vec!["--given", "image", "--split", "dev", "--out", "x.csv"],
            "test or train",
        ),
    ] {
        let mut a = vec!["embed", "--checkpoint", r];
        a.extend(bad);
        let out = mvae(&a);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

/// `search` ranks a folder's images by their embeddings' cosine to the query's, best first,
/// `--k` of them; `--cache` keeps the gallery's embeddings and says when they are reused and
/// when a changed file or checkpoint makes them stale.
#[test]
fn search_ranks_a_gallery_and_checks_its_cache() {
    let dir = scratch("search");
    let run = dir.join("run");
    let r = run.to_str().unwrap();
    let mut args = vec!["train", "--epochs", "1", "--no-pictures", "--out", r];
    args.extend(TINY);
    ok_json(&args);
    // a gallery of generated digits: four 3s and four 7s
    let gallery = dir.join("gallery");
    std::fs::create_dir_all(&gallery).unwrap();
    for label in ["3", "7"] {
        let out = dir.join(format!("gen{label}"));
        ok_json(&[
            "generate",
            "--checkpoint",
            r,
            "--label",
            label,
            "--samples",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]);
        for i in 0..4 {
            std::fs::copy(
                out.join(format!("image_{i}.png")),
                gallery.join(format!("d{label}_{i}.png")),
            )
            .unwrap();
        }
    }
    std::fs::write(gallery.join("notes.txt"), "not an image").unwrap();
    let g = gallery.to_str().unwrap();
    let cache = dir.join("gallery.json");
    let c = cache.to_str().unwrap();
    let search = |extra: &[&str]| {
        let mut a = vec![
            "search",
            "--checkpoint",
            r,
            "--label",
            "3",
            "--gallery",
            g,
            "--k",
            "5",
        ];
        a.extend(extra);
        ok_json(&a)
    };
    let v = search(&["--cache", c]);
    assert_eq!(v["modality"], "image");
    assert_eq!(v["gallery_size"], 8, "the text file is not a picture");
    let res = v["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    let sims: Vec<f64> = res
        .iter()
        .map(|x| x["similarity"].as_f64().unwrap())
        .collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]), "{sims:?}");
    assert!(sims.iter().all(|s| (-1.0..=1.0).contains(s)));
    assert!(v["cache"].as_str().unwrap().starts_with("wrote"), "{v}");
    let again = search(&["--cache", c]);
    assert!(
        again["cache"].as_str().unwrap().starts_with("used"),
        "{again}"
    );
    assert_eq!(again["results"], v["results"]);
    // a file changes: the cache is stale, said and rewritten
    std::fs::copy(gallery.join("d7_0.png"), gallery.join("d3_0.png")).unwrap();
    let changed = search(&["--cache", c]);
    assert!(
        changed["cache"]
            .as_str()
            .unwrap()
            .contains("the gallery's files changed"),
        "{changed}"
    );
    // the checkpoint changes
    ok_json(&["train", "--resume", r, "--epochs", "2"]);
    let retrained = search(&["--cache", c]);
    assert!(
        retrained["cache"]
            .as_str()
            .unwrap()
            .contains("the checkpoint changed"),
        "{retrained}"
    );
    // bad requests
    for (bad, want) in [
        (vec!["--label", "3", "--gallery", g, "--k", "0"], "--k"),
        (vec!["--label", "3", "--gallery", c], "not a folder"),
        (
            vec!["--label", "3", "--gallery", g, "--modality", "label"],
            "modalities with files",
        ),
        (vec!["--gallery", g], "nothing given"),
    ] {
        let mut a = vec!["search", "--checkpoint", r];
        a.extend(bad);
        let out = mvae(&a);
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

/// Trains a small model (latent 8, layers of 16) on `manifest` into `run` for `epochs`.
fn train_manifest(manifest: &Path, run: &Path, epochs: usize) -> Value {
    let epochs = epochs.to_string();
    ok_json(&[
        "train",
        "--manifest",
        manifest.to_str().unwrap(),
        "--latent",
        "8",
        "--encoder-hidden",
        "16",
        "--decoder-hidden",
        "16",
        "--epochs",
        &epochs,
        "--no-pictures",
        "--out",
        run.to_str().unwrap(),
    ])
}

/// Imputes the manifest `input` with the model of `run` into `out`.
fn impute_manifest(run: &Path, input: &Path, out: &Path) -> Value {
    ok_json(&[
        "impute",
        "--checkpoint",
        run.to_str().unwrap(),
        "--manifest",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// Writes a `w x h` PNG, RGB when `rgb`, whose brightness is `level`.
fn write_png(path: &Path, w: u32, h: u32, rgb: bool, level: u8) {
    if rgb {
        image::RgbImage::from_fn(w, h, |x, _| {
            image::Rgb([level, (x * 10) as u8, 255 - level])
        })
        .save(path)
        .unwrap();
    } else {
        image::GrayImage::from_pixel(w, h, image::Luma([level]))
            .save(path)
            .unwrap();
    }
}

/// Writes a mono 16-bit WAV of a tone at `hz`, `rate` samples a second, 0.3 s.
fn write_tone(path: &Path, hz: f32, rate: u32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(rate * 3 / 10) {
        let t = i as f32 / rate as f32;
        w.write_sample(((2.0 * std::f32::consts::PI * hz * t).sin() * 12000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

/// A manifest of images (RGB, of two sizes), sounds (at two rates), class words, numbers and
/// an id column, with blanks: `train --manifest` infers and prints each column's kind, trains;
/// `generate` names the classes; `impute --manifest` fills a class word, a number and an
/// image (a file beside the output, named in the cell) and copies every other cell.
#[test]
fn a_manifest_of_images_sounds_words_and_numbers_trains_and_imputes() {
    let dir = scratch("manifest_mixed");
    std::fs::create_dir_all(dir.join("media")).unwrap();
    let mut text = String::from("id,photo,voice,kind,weight\n");
    for i in 0..60 {
        let dog = i % 2 == 1;
        let photo = format!("media/p{i}.png");
        // The first image is 12 x 10; later ones are larger and are resized.
        let (w, h) = if i == 0 { (12, 10) } else { (24, 20) };
        write_png(&dir.join(&photo), w, h, true, if dog { 220 } else { 40 });
        let voice = format!("media/v{i}.wav");
        let rate = if i % 3 == 0 { 16000 } else { 8000 };
        write_tone(&dir.join(&voice), if dog { 300.0 } else { 900.0 }, rate);
        let kind = if dog { "dog" } else { "cat" };
        let weight = if dog {
            30.0 + i as f32 * 0.1
        } else {
            4.0 + i as f32 * 0.05
        };
        // Blanks: every fifth row lacks its voice, every seventh its weight.
        let voice = if i % 5 == 4 { String::new() } else { voice };
        let weight = if i % 7 == 6 {
            String::new()
        } else {
            weight.to_string()
        };
        text.push_str(&format!("s{i:03},{photo},{voice},{kind},{weight}\n"));
    }
    let manifest = dir.join("pets.csv");
    std::fs::write(&manifest, &text).unwrap();
    let run = dir.join("run");
    let v = train_manifest(&manifest, &run, 2);
    let columns: Vec<String> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let has = |needle: &str| columns.iter().any(|c| c.contains(needle));
    assert!(has("photo: image, 12 x 10 RGB"), "{columns:?}");
    assert!(
        has("voice: audio, 32 frames x 64 bins at 8000 Hz"),
        "{columns:?}"
    );
    assert!(has("kind: label, 2 classes (cat, dog)"), "{columns:?}");
    assert!(has("weight: continuous"), "{columns:?}");
    assert!(has("id: skipped"), "{columns:?}");
    assert_eq!(
        v["train_samples"].as_u64().unwrap() + v["test_samples"].as_u64().unwrap(),
        60
    );

    // generate names the classes, with their probabilities.
    let gen = dir.join("gen");
    let g = ok_json(&[
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--given",
        &format!("photo={}", dir.join("media/p1.png").display()),
        "--mean",
        "--out",
        gen.to_str().unwrap(),
    ]);
    let kind = &g["outputs"]["kind"];
    assert_eq!(
        kind["class_names"],
        serde_json::json!(["cat", "dog"]),
        "{kind}"
    );
    let name = kind["names"][0].as_str().unwrap();
    assert!(name == "cat" || name == "dog", "{kind}");
    let p = kind["probability"][0].as_f64().unwrap();
    assert!((0.5..=1.0).contains(&p), "{kind}");
    // A class given by its word.
    let g = ok_json(&[
        "generate",
        "--checkpoint",
        run.to_str().unwrap(),
        "--given",
        "kind=dog",
        "--samples",
        "2",
        "--out",
        dir.join("gen_dog").to_str().unwrap(),
    ]);
    assert_eq!(g["outputs"]["photo"]["files"].as_array().unwrap().len(), 2);
    fails(
        &[
            "generate",
            "--checkpoint",
            run.to_str().unwrap(),
            "--given",
            "kind=horse",
            "--out",
            dir.join("gen_horse").to_str().unwrap(),
        ],
        "expected one of the 2 classes: cat, dog",
    );

    // impute: a row without its class, one without its photo, one without its weight.
    let partial = dir.join("partial.csv");
    let input = "id,photo,voice,kind,weight,note\n\
                 a1,media/p3.png,media/v3.wav,,31.5,\"keep, this\"\n\
                 a2,,media/v4.wav,cat,4.2,x\n\
                 a3,media/p5.png,,dog,,y\n";
    std::fs::write(&partial, input).unwrap();
    let out = dir.join("done.csv");
    let v = impute_manifest(&run, &partial, &out);
    assert_eq!(v["filled"]["kind"], 1);
    assert_eq!(v["filled"]["photo"], 1);
    assert_eq!(v["filled"]["weight"], 1);
    assert_eq!(v["filled"]["voice"], 1);
    let written = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines[0], "id,photo,voice,kind,weight,note");
    let row1: Vec<&str> = lines[1].split(',').collect();
    assert!(row1[3] == "cat" || row1[3] == "dog", "{written}");
    assert!(lines[1].ends_with(",31.5,\"keep, this\""), "{written}");
    assert!(
        lines[2].starts_with("a2,done_files/line3_photo.png,media/v4.wav,cat,4.2,x"),
        "{written}"
    );
    assert!(dir.join("done_files/line3_photo.png").is_file());
    assert!(dir.join("done_files/line4_voice.wav").is_file());
    let row3: Vec<&str> = lines[3].split(',').collect();
    assert!(
        row3[4].parse::<f32>().is_ok_and(f32::is_finite),
        "{written}"
    );
    assert_eq!(row3[5], "y");
}

/// A JSON Lines manifest with a split column trains on its `train` rows and tests on the
/// others; `impute` fills its nulls and absent keys, keeps the lines it does not fill byte for
/// byte and the keys of those it does in their order.
#[test]
fn a_json_lines_manifest_with_a_split_trains_and_imputes() {
    let dir = scratch("manifest_jsonl");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for i in 0..50 {
        let x = (i as f32 * 0.3).sin();
        let class = if x > 0.0 { "up" } else { "down" };
        let split = if i % 5 == 0 { "test" } else { "train" };
        text.push_str(&format!(
            "{{\"x\": {x}, \"y\": {}, \"class\": \"{class}\", \"split\": \"{split}\"}}\n",
            2.0 * x
        ));
    }
    let manifest = dir.join("rows.jsonl");
    std::fs::write(&manifest, &text).unwrap();
    let run = dir.join("run");
    let v = train_manifest(&manifest, &run, 1);
    assert_eq!(v["train_samples"], 40);
    assert_eq!(v["test_samples"], 10);
    // eval finds the class column by its kind, whatever its name.
    let e = ok_json(&[
        "eval",
        "--checkpoint",
        run.to_str().unwrap(),
        "--k",
        "2",
        "--samples",
        "10",
    ]);
    assert_eq!(e["coherence"]["label"], "class", "{e}");
    // embed names the class column and writes the classes' words.
    let emb = dir.join("z.csv");
    ok_json(&[
        "embed",
        "--checkpoint",
        run.to_str().unwrap(),
        "--given",
        "x",
        "--out",
        emb.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&emb).unwrap();
    assert!(text.starts_with("row,class,z0,"), "{text}");
    let second = text.lines().nth(1).unwrap();
    let word = second.split(',').nth(1).unwrap();
    assert!(word == "up" || word == "down", "{second}");
    let partial = dir.join("partial.jsonl");
    let input = "{\"y\":1.5,  \"class\":null,\"x\":0.7}\n\
                 {\"x\": 0.1, \"y\": 0.2, \"class\": \"up\", \"extra\": [1, 2]}\n\
                 {\"class\":\"down\",\"id\":\"k\"}\n";
    std::fs::write(&partial, input).unwrap();
    // A list is not a cell.
    fails(
        &[
            "impute",
            "--checkpoint",
            run.to_str().unwrap(),
            "--manifest",
            partial.to_str().unwrap(),
            "--out",
            dir.join("bad.jsonl").to_str().unwrap(),
        ],
        "partial.jsonl: line 2: key \"extra\": a cell is",
    );
    let input = input.replace(", \"extra\": [1, 2]", "");
    std::fs::write(&partial, &input).unwrap();
    let out = dir.join("done.jsonl");
    let v = impute_manifest(&run, &partial, &out);
    assert_eq!(v["filled"]["class"], 1);
    let written = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert!(lines[0].starts_with("{\"y\":1.5,\"class\":\""), "{written}");
    assert!(lines[0].ends_with(",\"x\":0.7}"), "{written}");
    assert_eq!(lines[1], "{\"x\": 0.1, \"y\": 0.2, \"class\": \"up\"}");
    let third: Value = serde_json::from_str(lines[2]).unwrap();
    assert!(
        third["x"].is_number() && third["y"].is_number(),
        "{written}"
    );
    assert_eq!(third["id"], "k");
}

/// A manifest's bad rows are refused naming the file, the line and the column.
#[test]
fn bad_manifest_rows_name_their_line_and_column() {
    let dir = scratch("manifest_errors");
    std::fs::create_dir_all(&dir).unwrap();
    write_png(&dir.join("a.png"), 4, 4, false, 10);
    let train = |name: &str, text: &str, needle: &str| {
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        fails(
            &[
                "train",
                "--manifest",
                file.to_str().unwrap(),
                "--epochs",
                "1",
                "--out",
                dir.join(format!("run_{name}")).to_str().unwrap(),
            ],
            needle,
        );
    };
    let mut rows = String::from("pic,w\n");
    for i in 0..6 {
        rows.push_str(&format!("a.png,{i}\n"));
    }
    train(
        "missing.csv",
        &format!("{rows}nothere.png,1\n"),
        "missing.csv: line 8: column 1 (pic):",
    );
    train(
        "typo.csv",
        &format!("{rows}a.png,1O\n"),
        "typo.csv: line 8: column 2 (w): '1O' is not a number, but the column's other cells are numbers",
    );
    train(
        "notimage.csv",
        &format!("{rows}b.txt,1\n"),
        "notimage.csv: line 8: column 1 (pic): \"b.txt\" is not an image path",
    );
    train(
        "split.csv",
        "w,split\n1,train\n2,val\n",
        "split.csv: line 3: column 2 (split): \"val\" is not train or test",
    );
    train(
        "garbage.png.csv",
        &format!("{rows}{},2\n", {
            std::fs::write(dir.join("junk.png"), b"not a png").unwrap();
            "junk.png"
        }),
        "garbage.png.csv: line 8: column 1 (pic):",
    );
}

/// A run records the data folder it used (here `$MVAE_DATA`), absolute, so that resuming
/// without the variable trains on the same data; a resume whose data give another number of
/// steps an epoch is refused, naming both counts.
#[test]
fn a_run_keeps_its_data_folder_and_refuses_other_data() {
    let dir = scratch("resume_other_data");
    copy_dir(mnist_run(), &dir);
    let text = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let cfg: toml::Value = toml::from_str(&text).unwrap();
    let stored = PathBuf::from(cfg["data"]["dir"].as_str().unwrap());
    assert_eq!(stored, bundled().canonicalize().unwrap());
    // 600 training samples gave 6 steps an epoch; 300 give 3.
    std::fs::write(
        dir.join("config.toml"),
        text.replace("limit = 600", "limit = 300"),
    )
    .unwrap();
    fails(
        &["train", "--resume", dir.to_str().unwrap(), "--epochs", "2"],
        "took 6 steps an epoch, but its data now give 3 (300 training samples from",
    );
}

/// Copies the files of `from` into a new folder `to` (one level).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The issue's table (300 rows, c = a + b + noise, a fifth of the cells blank) trained with
/// the table recipe's defaults (MoPoE, layers of 64, batches of 16, KL annealed over half the
/// epochs): the posterior does not collapse (no warning), and c imputed from a and b on new
/// rows is closer than the column mean (which misses by the column's deviation).
#[test]
fn a_table_trains_with_the_table_recipe_and_imputes_better_than_the_mean() {
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, StandardNormal};
    let dir = scratch("table_recipe");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let draw = |rng: &mut rand::rngs::StdRng| -> f32 { StandardNormal.sample(rng) };
    let mut text = String::from("a,b,c\n");
    for _ in 0..300 {
        let (a, b) = (draw(&mut rng), draw(&mut rng));
        let c = a + b + 0.1 * draw(&mut rng);
        let mut cells: Vec<String> = [a, b, c].iter().map(|v| format!("{v:.5}")).collect();
        let blank: Vec<bool> = (0..3).map(|_| rng.gen::<f32>() < 0.2).collect();
        if !blank.iter().all(|&x| x) {
            for (cell, &hide) in cells.iter_mut().zip(&blank) {
                if hide {
                    cell.clear();
                }
            }
        }
        text.push_str(&(cells.join(",") + "\n"));
    }
    let table = dir.join("table.csv");
    std::fs::write(&table, &text).unwrap();
    let run = dir.join("run");
    let v = ok_json(&[
        "train",
        "--manifest",
        table.to_str().unwrap(),
        "--latent",
        "8",
        "--epochs",
        "60",
        "--no-pictures",
        "--out",
        run.to_str().unwrap(),
    ]);
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for line in [
        "batch_size = 16",
        "anneal_epochs = 30.0",
        "aggregation = \"mopoe\"",
    ] {
        assert!(cfg.contains(line), "{line} not in {cfg}");
    }
    let mut probe = String::from("a,b,c\n");
    let mut truth = Vec::new();
    for _ in 0..200 {
        let (a, b) = (draw(&mut rng), draw(&mut rng));
        truth.push(a + b + 0.1 * draw(&mut rng));
        probe.push_str(&format!("{a:.5},{b:.5},\n"));
    }
    std::fs::write(dir.join("probe.csv"), probe).unwrap();
    let out = dir.join("filled.csv");
    impute_manifest(&run, &dir.join("probe.csv"), &out);
    let filled: Vec<f32> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse().unwrap())
        .collect();
    let n = truth.len() as f32;
    let mean = truth.iter().sum::<f32>() / n;
    let sd = (truth.iter().map(|t| (t - mean).powi(2)).sum::<f32>() / n).sqrt();
    let rmse = (filled
        .iter()
        .zip(&truth)
        .map(|(f, t)| (f - t).powi(2))
        .sum::<f32>()
        / n)
        .sqrt();
    assert!(
        rmse < 0.8 * sd,
        "imputed c: RMSE {rmse} against a deviation of {sd}"
    );
}
