//! `mvae embed`: the posterior means of a run's data set under any subset of modalities, as a
//! CSV table or a safetensors file, written atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::embed::{embed, EmbedOptions, Embeddings};
use mvae::{Backend, Codecs, Mvae};

use crate::config::RunConfig;
use crate::output::{refuse_existing, refuse_input, report};
use crate::{checkpoint_file, data, Common};
use mvae::data::MultimodalDataset;

#[derive(clap::Args)]
#[command(
    after_help = "Embeds each row that has every modality of --given: the mean of the posterior \
the model forms from them (its aggregation's), one row per data row. The rows come from the run's \
data set (config.toml beside the checkpoint; --split test or train), or from your own data: \
--manifest FILE (a CSV or JSON Lines table with the model's columns, as `impute --manifest` \
reads it; row 0 is the first row after the header; --csv is another name) or --folder DIR (files named <id>_<modality>.<ext>, as `impute --folder` \
reads them). --out FILE.csv writes a table with the row's index (or, for --folder, its id), its \
class where the data have one (a column named after the class modality, `label` or a manifest's; \
classes by name where they have names), and z0..z{L-1} (and var0.. with --variances); --out \
FILE.safetensors writes the tensors `rows` (I64), `means` (F32, rows x L) and `variances`, with \
the folder's ids in the metadata (`ids`, JSON). The file is written atomically; an existing one \
is replaced only with --force."
)]
pub struct EmbedArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The modalities to embed from, comma-separated (e.g. `image` or `image,label`).
    #[arg(long, value_name = "NAMES", value_delimiter = ',', required = true)]
    given: Vec<String>,
    /// Which part of the run's data set: `test` or `train`.
    #[arg(long, value_name = "SPLIT", default_value = "test")]
    split: String,
    /// Embed the rows of this manifest (CSV or JSON Lines) instead of the run's data set.
    #[arg(long, value_name = "FILE", alias = "csv", conflicts_with_all = ["folder", "data"])]
    manifest: Option<PathBuf>,
    /// Embed the samples of this folder of paired files instead of the run's data set.
    #[arg(long, value_name = "DIR", conflicts_with = "data")]
    folder: Option<PathBuf>,
    /// Embed only among the first N rows of the split.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Also write each coordinate's posterior variance.
    #[arg(long)]
    variances: bool,
    /// Folder holding the data sets (default: the run's, else $MVAE_DATA or the bundled sample).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The output file: `.csv` or `.safetensors`.
    #[arg(long, short, value_name = "FILE")]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    force: bool,
}

/// The output formats, by file extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Csv,
    Safetensors,
}

fn format_of(path: &Path) -> Result<Format> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => Ok(Format::Csv),
        Some("safetensors") => Ok(Format::Safetensors),
        _ => bail!(
            "--out {}: the file name must end in .csv or .safetensors",
            path.display()
        ),
    }
}

/// Runs `mvae embed`.
pub fn run(common: &Common, args: EmbedArgs) -> Result<()> {
    let format = format_of(&args.out)?;
    if !matches!(args.split.as_str(), "test" | "train") {
        bail!("--split {:?}: expected test or train", args.split);
    }
    if args.limit == Some(0) {
        bail!("--limit must be at least 1");
    }
    let ckpt = checkpoint_file(&args.checkpoint);
    let info = mvae::checkpoint::read_info(&ckpt)?;
    let config = ckpt.with_file_name(crate::train::CONFIG);
    let mut inputs = vec![("--checkpoint", ckpt.as_path()), ("--checkpoint", &config)];
    inputs.extend(args.data.as_deref().map(|p| ("--data", p)));
    inputs.extend(args.manifest.as_deref().map(|p| ("--manifest", p)));
    inputs.extend(args.folder.as_deref().map(|p| ("--folder", p)));
    refuse_input(&args.out, &inputs)?;
    refuse_existing(&args.out, args.force)?;
    // Own data (read with the checkpoint's codecs, as impute reads it) or the run's split.
    let source = match (&args.manifest, &args.folder) {
        (Some(csv), _) => {
            let (_, mut codecs) = crate::generate::codecs_of(&ckpt)?;
            let m = crate::manifest::Manifest::read(csv)?;
            Source::Own {
                data: m.load(&mut codecs, None)?,
                ids: None,
            }
        }
        (None, Some(dir)) => {
            let (_, codecs) = crate::generate::codecs_of(&ckpt)?;
            let folder = crate::impute::read_folder(dir, &codecs)?;
            Source::Own {
                data: folder.data,
                ids: Some(folder.ids),
            }
        }
        (None, None) => Source::Run(Box::new(crate::eval::run_config(
            &ckpt,
            args.data.as_ref(),
        )?)),
    };
    crate::dispatch!(
        common,
        info.latent_size,
        embed_on(common, &source, &ckpt, &info.codecs, &args, format)
    )
}

/// Where the rows come from.
enum Source {
    /// A split of the run's data set.
    Run(Box<RunConfig>),
    /// The user's own table or folder (with the folder's sample ids).
    Own {
        data: MultimodalDataset,
        ids: Option<Vec<String>>,
    },
}

fn embed_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    source: &Source,
    ckpt: &Path,
    codecs: &Codecs,
    args: &EmbedArgs,
    format: Format,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let prepared;
    let (split, ids, from) = match source {
        Source::Run(cfg) => {
            prepared = data::prepare(cfg)?;
            let split = if args.split == "train" {
                &prepared.train
            } else {
                &prepared.test
            };
            (split, None, args.split.clone())
        }
        Source::Own { data, ids } => {
            let from = match (&args.manifest, &args.folder) {
                (Some(p), _) | (None, Some(p)) => p.display().to_string(),
                (None, None) => unreachable!("own data come from --manifest or --folder"),
            };
            (data, ids.as_deref(), from)
        }
    };
    let given: Vec<&str> = args.given.iter().map(String::as_str).collect();
    let opts = EmbedOptions {
        variances: args.variances,
        limit: args.limit,
    };
    let e = embed(&model, split, &given, &opts)?;
    // The class column (`label`, or a manifest's only class modality): by name where its
    // codec has names, else as numbers.
    let class = data::class_column(codecs, split);
    let label_codec = class.as_deref().and_then(|c| codecs.get(c));
    let label = class.as_deref().and_then(|c| split.column(c));
    let classes: Option<Vec<String>> = label.map(|c| {
        e.rows
            .iter()
            .map(|&r| {
                if c.present()[r] {
                    let k = c.values()[r];
                    label_codec
                        .and_then(|codec| codec.class_name(k as usize))
                        .unwrap_or_else(|| format!("{k}"))
                } else {
                    String::new()
                }
            })
            .collect()
    });
    // The folder's sample ids, in the rows' order.
    let ids: Option<Vec<&str>> = ids.map(|ids| e.rows.iter().map(|&r| ids[r].as_str()).collect());
    let bytes = match format {
        Format::Csv => {
            csv(&e, class.as_deref().zip(classes.as_deref()), ids.as_deref()).into_bytes()
        }
        Format::Safetensors => safetensors(&e, ids.as_deref())?,
    };
    mvae::data::atomic::write_bytes(&args.out, &bytes)
        .with_context(|| format!("writing {}", args.out.display()))?;
    let doc = serde_json::json!({
        "checkpoint": ckpt,
        "given": e.given,
        "from": from,
        "rows": e.len(),
        "dim": e.dim,
        "variances": e.variances.is_some(),
        "out": args.out,
    });
    report(common, &doc, || {
        println!(
            "embedded {} rows of {} from {} ({} coordinates) into {}",
            e.len(),
            from,
            e.given.join(", "),
            e.dim,
            args.out.display()
        );
    });
    Ok(())
}

/// The CSV table: `row` (or `id`, given the rows' ids), `label` where known, `z0..`, then
/// `var0..` if present.
fn csv(e: &Embeddings, classes: Option<(&str, &[String])>, ids: Option<&[&str]>) -> String {
    let mut s = String::from(if ids.is_some() { "id" } else { "row" });
    if let Some((name, _)) = classes {
        s.push(',');
        s.push_str(name);
    }
    let classes = classes.map(|(_, c)| c);
    for j in 0..e.dim {
        let _ = write!(s, ",z{j}");
    }
    if e.variances.is_some() {
        for j in 0..e.dim {
            let _ = write!(s, ",var{j}");
        }
    }
    s.push('\n');
    for (i, &r) in e.rows.iter().enumerate() {
        match ids {
            Some(ids) => s.push_str(&quoted(ids[i])),
            None => {
                let _ = write!(s, "{r}");
            }
        }
        if let Some(c) = classes {
            let _ = write!(s, ",{}", c[i]);
        }
        for v in e.mean(i) {
            let _ = write!(s, ",{v}");
        }
        if let Some(var) = &e.variances {
            for v in &var[i * e.dim..(i + 1) * e.dim] {
                let _ = write!(s, ",{v}");
            }
        }
        s.push('\n');
    }
    s
}

/// A CSV cell holding `text`, quoted where it needs to be.
fn quoted(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The safetensors file: `rows` (I64), `means` and `variances` (F32, rows x dim), and in the
/// metadata the modalities given and the rows' ids (JSON) where known.
fn safetensors(e: &Embeddings, ids: Option<&[&str]>) -> Result<Vec<u8>> {
    use safetensors::tensor::{serialize, TensorView};
    use safetensors::Dtype;
    let n = e.len();
    let rows: Vec<u8> = e
        .rows
        .iter()
        .flat_map(|&r| (r as i64).to_le_bytes())
        .collect();
    let f32s = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
    let means = f32s(&e.means);
    let variances = e.variances.as_deref().map(f32s);
    let mut views = vec![
        ("rows", TensorView::new(Dtype::I64, vec![n], &rows)?),
        (
            "means",
            TensorView::new(Dtype::F32, vec![n, e.dim], &means)?,
        ),
    ];
    if let Some(v) = &variances {
        views.push(("variances", TensorView::new(Dtype::F32, vec![n, e.dim], v)?));
    }
    let mut meta = std::collections::HashMap::from([("given".to_string(), e.given.join(","))]);
    if let Some(ids) = ids {
        meta.insert("ids".to_string(), serde_json::to_string(ids)?);
    }
    Ok(serialize(views, &Some(meta))?)
}
