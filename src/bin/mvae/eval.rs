//! `mvae eval`: the evaluation suite on a checkpoint, as JSON (`eval.json`) and pictures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mvae::eval::likelihood::{conditional_log_likelihood, log_likelihood, IwaeConfig};
use mvae::eval::{cross_modal_retrieval, evaluate, EvalConfig, RetrievalConfig};
use mvae::{Backend, Mvae, Subset};

use crate::config::RunConfig;
use crate::output::{report, write_json};
use crate::train::{read_metrics, CONFIG, METRICS};
use crate::{checkpoint_file, data, pictures, Common};

#[derive(clap::Args)]
#[command(
    after_help = "Reads the data set from the run's config.toml beside the checkpoint. Reports \
importance-weighted log-likelihoods log p(x_S) of every subset (IWAE, K samples), each modality \
given the others, cross-modal and joint coherence judged by classifiers trained on the data, \
coherence given k (for k = 1..M-1, each modality generated from subsets of k others, averaged \
over the subsets; at most 10 subsets of a size, a seeded sample beyond that), and linear probes \
of the latent means, and cross-modal retrieval for every ordered pair of modalities (each \
modality's latent means of the first 2000 test samples ranking another's by cosine: recall@1/5/10 \
and median rank of the true partner; class mAP and precision@10 where the data have a label). \
Writes eval.json and pictures into --out (default: the run \
directory); an existing eval.json is replaced only with --force, and --out is checked to be \
writable before the evaluation starts. At the defaults (--k 1000 --samples 1000) it takes \
minutes on a CPU, and says so on stderr; --k 50 --samples 200 gives a quicker, rougher estimate."
)]
pub struct EvalArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Folder holding the data sets (default: the run's, else $MVAE_DATA or the bundled sample).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Importance samples K per data point.
    #[arg(long, default_value_t = 1000)]
    k: usize,
    /// Test samples used for the likelihoods (the first N).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    samples: usize,
    /// Where eval.json and the pictures go (default: the run directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Replace an existing eval.json in --out.
    #[arg(long)]
    force: bool,
    /// Seed of the estimates.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Judge coherence on the decoded posterior mean of the given modalities instead of one
    /// posterior draw (the draw is the default, as the papers report it; the mean shows how
    /// much of an incoherent draw is the posterior's spread rather than its centre).
    #[arg(long)]
    coherence_from_mean: bool,
}

/// `--k` times `--samples` from which `eval` says, in readable mode, that it takes minutes and
/// names the flags that make it quicker (the defaults, 1000 x 1000, are above it).
const SLOW_DRAWS: usize = 100_000;

/// The report `eval` writes into its output folder.
pub const EVAL_JSON: &str = "eval.json";

/// Reads the run configuration stored beside a checkpoint.
pub fn run_config(ckpt: &Path, data: Option<&PathBuf>) -> Result<RunConfig> {
    let dir = ckpt.parent().unwrap_or(Path::new("."));
    let mut cfg = RunConfig::read(&dir.join(CONFIG)).with_context(|| {
        format!(
            "{} needs the run's {CONFIG} beside it to know its data",
            ckpt.display()
        )
    })?;
    if let Some(d) = data {
        cfg.data.dir = Some(d.clone());
    }
    Ok(cfg)
}

/// Runs `mvae eval`.
pub fn run(common: &Common, args: EvalArgs) -> Result<()> {
    let ckpt = checkpoint_file(&args.checkpoint);
    let info = mvae::checkpoint::read_info(&ckpt)?;
    let cfg = run_config(&ckpt, args.data.as_ref())?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| ckpt.parent().unwrap_or(Path::new(".")).to_path_buf());
    let config = ckpt.with_file_name(crate::train::CONFIG);
    let mut inputs = vec![("--checkpoint", ckpt.as_path()), ("--checkpoint", &config)];
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    crate::output::refuse_input(&out, &inputs)?;
    crate::output::refuse_existing(&out.join(EVAL_JSON), args.force)?;
    // Before the minutes of computation, not after.
    crate::output::check_writable(&out)?;
    // A run directory being trained is not written by eval at the same time.
    let _lock = crate::output::RunLock::acquire(&out)?;
    if !common.json && args.k.saturating_mul(args.samples) >= SLOW_DRAWS {
        eprintln!(
            "note: K = {} importance samples for each of {} test samples and every subset takes \
             minutes on a CPU; --k 50 --samples 200 gives a quicker, rougher estimate",
            args.k, args.samples
        );
    }
    crate::dispatch!(
        common,
        info.latent_size,
        eval_on(common, &cfg, &ckpt, &out, &args)
    )
}

fn eval_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    cfg: &RunConfig,
    ckpt: &Path,
    out: &Path,
    args: &EvalArgs,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let prepared = data::prepare(cfg)?;
    let iwae = IwaeConfig {
        k: args.k,
        seed: args.seed,
        max_samples: Some(args.samples.max(1)),
        ..IwaeConfig::default()
    };
    let started = std::time::Instant::now();
    let class = data::class_column(&prepared.codecs, &prepared.test)
        .filter(|c| prepared.train.column(c).is_some());
    let value = if let Some(class) = class {
        let mut ec = EvalConfig {
            iwae,
            ..EvalConfig::default()
        }
        .with_label(&class);
        ec.coherence.from_mean = args.coherence_from_mean;
        serde_json::to_value(evaluate(&model, &prepared.train, &prepared.test, &ec)?)?
    } else {
        // No class column: the likelihoods only (coherence and probes need classes).
        let m = model.modalities().len();
        let all = Subset::all(m);
        let mut subsets: Vec<Subset> = (0..m).map(Subset::single).collect();
        if m > 1 {
            subsets.push(all);
        }
        let likelihoods = subsets
            .iter()
            .map(|&s| log_likelihood(&model, &prepared.test, s, &iwae))
            .collect::<mvae::Result<Vec<_>>>()?;
        let conditionals = if m > 1 {
            (0..m)
                .map(|t| {
                    let rest = Subset(all.0 & !Subset::single(t).0);
                    conditional_log_likelihood(
                        &model,
                        &prepared.test,
                        Subset::single(t),
                        rest,
                        &iwae,
                    )
                })
                .collect::<mvae::Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let retrieval =
            cross_modal_retrieval(&model, &prepared.test, &RetrievalConfig::default(), "label")?;
        serde_json::json!({
            "likelihoods": likelihoods,
            "conditionals": conditionals,
            "retrieval": retrieval,
        })
    };
    let seconds = started.elapsed().as_secs_f64();
    let history = read_metrics(&ckpt.parent().unwrap_or(Path::new(".")).join(METRICS))?;
    let pics = pictures::draw(common, &model, &prepared, &history, out)?;
    let mut doc = value.clone();
    doc["checkpoint"] = serde_json::json!(ckpt);
    doc["seconds"] = serde_json::json!(seconds);
    doc["coherence_from"] = serde_json::json!(if args.coherence_from_mean {
        "mean"
    } else {
        "draw"
    });
    doc["pictures"] = serde_json::json!(pics);
    write_json(&out.join(EVAL_JSON), &doc)?;
    report(common, &doc, || print_human(&value, seconds, out));
    Ok(())
}

fn print_human(v: &serde_json::Value, seconds: f64, out: &Path) {
    let names = |x: &serde_json::Value| {
        x.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("+")
            })
            .unwrap_or_default()
    };
    println!("log-likelihoods (IWAE, nats per sample):");
    for l in v["likelihoods"].as_array().into_iter().flatten() {
        println!(
            "  log p({}) = {:.2} ± {:.2}  (ELBO {:.2}, K={}, {} samples)",
            names(&l["modalities"]),
            l["log_likelihood"].as_f64().unwrap_or(f64::NAN),
            l["std_error"].as_f64().unwrap_or(f64::NAN),
            l["elbo"].as_f64().unwrap_or(f64::NAN),
            l["k"],
            l["samples"]
        );
    }
    for c in v["conditionals"].as_array().into_iter().flatten() {
        println!(
            "  log p({} | {}) = {:.2} ± {:.2}",
            names(&c["target"]),
            names(&c["given"]),
            c["log_likelihood"].as_f64().unwrap_or(f64::NAN),
            c["std_error"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(coh) = v.get("coherence") {
        println!("coherence (share of generated samples showing the right class):");
        for c in coh["conditional"].as_array().into_iter().flatten() {
            println!(
                "  {} -> {}: {:.3}",
                names(&c["given"]),
                c["target"].as_str().unwrap_or("?"),
                c["coherence"].as_f64().unwrap_or(f64::NAN)
            );
        }
        let given_k = coh["given_k"].as_array().into_iter().flatten();
        for g in given_k {
            let n = g["subsets"].as_array().map_or(0, Vec::len);
            let of = g["of"].as_u64().unwrap_or(0);
            let sampled = if n as u64 == of {
                format!("{n} subsets")
            } else {
                format!("{n} of {of} subsets")
            };
            println!(
                "  given {} modalit{}: {:.3}  ({sampled})",
                g["k"],
                if g["k"] == 1 { "y" } else { "ies" },
                g["coherence"].as_f64().unwrap_or(f64::NAN)
            );
        }
        if let Some(j) = coh.get("joint").filter(|j| !j.is_null()) {
            println!(
                "  joint (prior samples): {:.3}",
                j["coherence"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    if let Some(p) = v.get("probes") {
        println!("linear probes of the latent means (test accuracy):");
        for r in p.as_array().into_iter().flatten() {
            println!(
                "  {}: {:.3}",
                names(&r["modalities"]),
                r["test_accuracy"].as_f64().unwrap_or(f64::NAN)
            );
        }
    }
    if let Some(r) = v.get("retrieval").and_then(|r| r.as_array()) {
        if !r.is_empty() {
            println!(
                "cross-modal retrieval (queries -> gallery, cosine of the latent means; \
                 recall@1/5/10, median rank, class mAP):"
            );
        }
        for x in r {
            let recall: Vec<String> = x["recall"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{:.3}", a["recall"].as_f64().unwrap_or(f64::NAN)))
                .collect();
            let map = x["class_map"]
                .as_f64()
                .map_or_else(|| "-".to_string(), |m| format!("{m:.3}"));
            println!(
                "  {} -> {}: {}, median rank {}, class mAP {map}",
                names(&x["query"]),
                names(&x["gallery"]),
                recall.join("/"),
                x["median_rank"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    println!(
        "({seconds:.1} s; details in {})",
        out.join("eval.json").display()
    );
}
