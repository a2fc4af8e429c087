//! `mvae generate` (other modalities from given ones) and `mvae sample` (every modality from
//! the prior): decoded files, an image grid, class probabilities.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dfdx::prelude::HasShape;
use mvae::impute::{argmax, generate, Generated};
use mvae::{Backend, Codec, Codecs, HostValues, Mvae};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::output::{output_dir, refuse_input, report};
use crate::{checkpoint_file, pictures, Common};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mvae generate --checkpoint runs/mnist --label 7 --out gen7\n  \
mvae generate --checkpoint runs/av --audio three.wav --out heard\n  \
mvae generate --checkpoint runs/av --image digit.png --mean --out seen\n  \
mvae generate --checkpoint runs/poly --given m0=m0_3.png --given m1=m1_3.png --out poly\n\n\
Writes <modality>_<i>.png for images (RGB PNG for colour modalities such as polymnist's), <modality>_<i>.wav (and a spectrogram picture) for audio, \
an image grid of the first draws (at most 64), and generated.csv with the values of CSV columns \
(one row per draw); reports each label's class per draw with its probability (every class's \
probability with --mean or one draw; all of them with --json) and the table values. \
--samples is at most 1000 (checked before anything is written); for more, run again with \
another --seed and --out. With --force, the files an earlier generate or sample wrote into --out \
(<modality>_<i>.png|wav, the grid pictures, generated.csv) are removed first; other files stay."
)]
pub struct GenerateArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The modalities given.
    #[command(flatten)]
    given: GivenArgs,
    /// Draws from the posterior (at most 1000).
    #[arg(long, value_name = "N", default_value_t = 8)]
    samples: usize,
    /// Decode the posterior mean once instead of drawing.
    #[arg(long)]
    mean: bool,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Write into a non-empty --out folder, first removing the files an earlier generate or
    /// sample wrote there (other files stay).
    #[arg(long)]
    force: bool,
}

/// The given modalities of `generate` and `search`: files, a class, or any modality by name.
#[derive(clap::Args)]
pub struct GivenArgs {
    /// An image file for the modality `image` (PNG or JPEG; resized, made grey, or RGB for a
    /// colour image modality).
    #[arg(long, value_name = "FILE")]
    image: Option<PathBuf>,
    /// A WAV file for the modality `audio` (any rate; resampled).
    #[arg(long, value_name = "FILE")]
    audio: Option<PathBuf>,
    /// A class number for the modality `label`.
    #[arg(long, value_name = "N")]
    label: Option<String>,
    /// Any modality by name: a file, a class number, or comma-separated column values.
    #[arg(long, value_name = "NAME=VALUE", value_parser = crate::config::key_value::<String>)]
    given: Vec<(String, String)>,
}

/// What [`GivenArgs::read`] found: each given modality's name and text as given, and the
/// values its codec read from it.
pub struct Given {
    /// (name, text as given), the named flags first.
    pub texts: Vec<(String, String)>,
    /// Each one's values, in the same order.
    pub values: Vec<Vec<f32>>,
}

impl Given {
    /// One fully present host column per given modality.
    pub fn host(&self) -> Vec<HostValues<'_>> {
        self.texts
            .iter()
            .zip(&self.values)
            .map(|((name, _), v)| HostValues {
                name,
                values: v,
                present: None,
            })
            .collect()
    }

    /// Name to text as given, as the JSON output reports it.
    pub fn report(&self) -> std::collections::BTreeMap<String, String> {
        self.texts.iter().cloned().collect()
    }
}

impl GivenArgs {
    /// Each given modality's name and text (the named flags first), and its values read
    /// through the model's codecs.
    ///
    /// # Errors
    /// Nothing given, a modality given twice, or a value its codec cannot read.
    pub fn read(&self, codecs: &Codecs) -> Result<Given> {
        let mut given: Vec<(String, String)> = Vec::new();
        let named = [
            (
                "image",
                self.image.as_ref().map(|p| p.display().to_string()),
            ),
            (
                "audio",
                self.audio.as_ref().map(|p| p.display().to_string()),
            ),
            ("label", self.label.clone()),
        ];
        for (name, v) in named {
            if let Some(v) = v {
                given.push((name.to_string(), v));
            }
        }
        given.extend(self.given.iter().cloned());
        if given.is_empty() {
            bail!(
                "nothing given: pass --image FILE, --audio FILE, --label N or --given NAME=VALUE"
            );
        }
        let mut values = Vec::new();
        for (i, (name, text)) in given.iter().enumerate() {
            if given[..i].iter().any(|(n, _)| n == name) {
                bail!("{name} is given twice");
            }
            values.push(given_values(codecs, name, text)?);
        }
        Ok(Given {
            texts: given,
            values,
        })
    }

    /// The files given by the named flags, for the check that an output is not an input.
    pub fn files(&self) -> Vec<(&'static str, &Path)> {
        let mut out = Vec::new();
        out.extend(self.image.as_deref().map(|p| ("--image", p)));
        out.extend(self.audio.as_deref().map(|p| ("--audio", p)));
        out
    }
}

#[derive(clap::Args)]
pub struct SampleArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// Samples to draw from the prior (at most 1000).
    #[arg(long, short, value_name = "N", default_value_t = 16)]
    n: usize,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output folder.
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    /// Write into a non-empty --out folder, first removing the files an earlier generate or
    /// sample wrote there (other files stay).
    #[arg(long)]
    force: bool,
}

/// The most draws one `generate` or `sample` writes: each is a file per image or audio
/// modality, so a mistyped count would otherwise fill the disk. Checked before anything is
/// written; for more, run again with another `--seed` into another `--out`.
pub const MAX_DRAWS: usize = 1000;

/// Refuses a count of draws outside 1..=[`MAX_DRAWS`], naming `flag` and the value.
fn check_draws(flag: &str, n: usize) -> Result<()> {
    if n == 0 {
        bail!("{flag} must be at least 1");
    }
    if n > MAX_DRAWS {
        bail!(
            "{flag} {n} is more than the {MAX_DRAWS} draws one run writes; run again with \
another --seed and --out for more"
        );
    }
    Ok(())
}

/// Reads a checkpoint's latent size and codecs.
pub fn codecs_of(ckpt: &Path) -> Result<(usize, Codecs)> {
    let info = mvae::checkpoint::read_info(ckpt)?;
    if info.codecs.is_empty() {
        bail!(
            "{} does not say how to read and write its modalities' files (it was not written by `mvae train`)",
            ckpt.display()
        );
    }
    Ok((info.latent_size, info.codecs))
}

/// One given modality's values from a flag value.
pub fn given_values(codecs: &Codecs, name: &str, text: &str) -> Result<Vec<f32>> {
    let codec = codecs.get(name).with_context(|| {
        format!(
            "the model has no modality {name:?} (it has {})",
            codecs.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    Ok(match codec {
        Codec::Label { .. } => vec![codec.parse_label(text)?],
        Codec::Columns {
            columns,
            normalizer,
        } => {
            let mut v = text
                .split(',')
                .map(|p| match mvae::data::cell_value(p) {
                    Ok(Some(v)) => Ok(v),
                    Ok(None) => Err(format!("{:?} is not a number", p.trim())),
                    Err(reason) => Err(reason),
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| {
                    anyhow::anyhow!("{name}: {text:?} is not comma-separated numbers: {reason}")
                })?;
            if v.len() != columns.len() {
                bail!(
                    "{name} needs {} values ({}), got {}",
                    columns.len(),
                    columns.join(", "),
                    v.len()
                );
            }
            if let Some((k, z)) = normalizer.outlier(&v) {
                bail!(
                    "{name}: column {}: {}",
                    columns[k],
                    crate::manifest::outlier_reason(v[k], z)
                );
            }
            normalizer.apply(&mut v)?;
            v
        }
        Codec::Image { .. } | Codec::Audio { .. } => {
            let path = Path::new(text);
            if !path.is_file() {
                bail!("{name}: no such file {}", path.display());
            }
            codec.read_file(path)?
        }
    })
}

/// Runs `mvae generate`.
pub fn run(common: &Common, args: GenerateArgs) -> Result<()> {
    let ckpt = checkpoint_file(&args.checkpoint);
    let (latent, codecs) = codecs_of(&ckpt)?;
    let given = args.given.read(&codecs)?;
    if !args.mean {
        check_draws("--samples", args.samples)?;
    }
    let mut inputs = vec![("--checkpoint", ckpt.as_path())];
    inputs.extend(args.given.files());
    refuse_input(&args.out, &inputs)?;
    output_dir(&args.out, args.force)?;
    clear_outputs(&codecs, &args.out)?;
    crate::dispatch!(
        common,
        latent,
        generate_on(common, &ckpt, &codecs, &given, &args)
    )
}

fn generate_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    ckpt: &Path,
    codecs: &Codecs,
    given: &Given,
    args: &GenerateArgs,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let host = given.host();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let rng: Option<&mut dyn rand::RngCore> = if args.mean { None } else { Some(&mut rng) };
    let generated = generate(&model, &host, args.samples, rng)?;
    let outputs = write_outputs(codecs, &generated, &args.out)?;
    let doc = serde_json::json!({
        "checkpoint": ckpt,
        "given": given.report(),
        "draws": if args.mean { 1 } else { args.samples },
        "posterior_mean": args.mean,
        "outputs": outputs,
    });
    report(common, &doc, || print_outputs(&doc["outputs"], &args.out));
    Ok(())
}

/// Runs `mvae sample`.
pub fn sample(common: &Common, args: SampleArgs) -> Result<()> {
    let ckpt = checkpoint_file(&args.checkpoint);
    let (latent, codecs) = codecs_of(&ckpt)?;
    check_draws("-n", args.n)?;
    refuse_input(&args.out, &[("--checkpoint", &ckpt)])?;
    output_dir(&args.out, args.force)?;
    clear_outputs(&codecs, &args.out)?;
    crate::dispatch!(common, latent, sample_on(common, &ckpt, &codecs, &args))
}

fn sample_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    ckpt: &Path,
    codecs: &Codecs,
    args: &SampleArgs,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let z = model.sample_prior(args.n, &mut ChaCha8Rng::seed_from_u64(args.seed));
    let generated: Vec<Generated> = model
        .modalities()
        .iter()
        .enumerate()
        .map(|(m, spec)| {
            let mean = model.decode_mean(m, z.clone());
            Generated {
                name: spec.name().to_string(),
                params: mean.shape().1,
                mean: mean.as_vec(),
            }
        })
        .collect();
    let outputs = write_outputs(codecs, &generated, &args.out)?;
    let doc = serde_json::json!({ "checkpoint": ckpt, "draws": args.n, "outputs": outputs });
    report(common, &doc, || print_outputs(&doc["outputs"], &args.out));
    Ok(())
}

/// The table `generate` and `sample` write for the modalities of CSV columns: a header of
/// their columns, one row of values per draw.
pub const TABLE: &str = "generated.csv";

/// Whether `name` is a file that `generate` or `sample` writes for a model of `codecs`: a
/// draw of an image or audio modality (`<modality>_<i>.png|wav`), its grid picture
/// (`<modality>_grid.png`, `<modality>_spectrograms.png`), or [`TABLE`].
fn is_output(codecs: &Codecs, name: &str) -> bool {
    if name == TABLE {
        return codecs.values().any(|c| matches!(c, Codec::Columns { .. }));
    }
    codecs.iter().any(|(modality, codec)| {
        let Some(ext) = codec.extension() else {
            return false;
        };
        let Some(rest) = name
            .strip_prefix(modality.as_str())
            .and_then(|r| r.strip_prefix('_'))
        else {
            return false;
        };
        let picture = match codec {
            Codec::Audio { .. } => "spectrograms.png",
            _ => "grid.png",
        };
        rest == picture
            || rest
                .strip_suffix(ext)
                .and_then(|r| r.strip_suffix('.'))
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Removes from `out` the files an earlier `generate` or `sample` of a model with these
/// modalities wrote there ([`is_output`]), so that `--force` leaves no old draw beside the
/// new ones; every other file, and every folder, stays (a link is removed, not followed).
fn clear_outputs(codecs: &Codecs, out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))? {
        let entry = entry.with_context(|| format!("reading {}", out.display()))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let name = entry.file_name();
        if !is_dir && name.to_str().is_some_and(|n| is_output(codecs, n)) {
            let path = entry.path();
            std::fs::remove_file(&path)
                .with_context(|| format!("--force: removing the old {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes [`TABLE`] into `out` for the generated modalities of CSV columns (their column
/// names and values, one row per draw), if there are any.
fn write_table(tables: &[(&[String], Vec<f32>)], out: &Path) -> Result<()> {
    let Some(draws) = tables
        .first()
        .map(|(columns, v)| v.len() / columns.len().max(1))
    else {
        return Ok(());
    };
    let header: Vec<String> = tables.iter().flat_map(|(c, _)| c.iter().cloned()).collect();
    let mut values = ndarray::Array2::<f32>::zeros((draws, header.len()));
    let mut at = 0;
    for (columns, v) in tables {
        let k = columns.len().max(1);
        for (r, row) in v.chunks(k).enumerate().take(draws) {
            for (j, x) in row.iter().enumerate() {
                values[(r, at + j)] = *x;
            }
        }
        at += columns.len();
    }
    let table = mvae::data::Table {
        present: ndarray::Array2::from_elem(values.dim(), true),
        lines: Vec::new(),
        header,
        values,
    };
    mvae::data::write_csv(&out.join(TABLE), &table)?;
    Ok(())
}

/// Writes each generated modality (files for images and audio, a grid of the images) and
/// returns what was written or decoded, by modality.
pub fn write_outputs(
    codecs: &Codecs,
    generated: &[Generated],
    out: &Path,
) -> Result<serde_json::Value> {
    let mut outputs = serde_json::Map::new();
    let mut tables = Vec::new();
    for g in generated {
        let draws = g.mean.len() / g.params.max(1);
        let rows = || g.mean.chunks(g.params.max(1));
        let value = match codecs.get(&g.name) {
            Some(codec @ Codec::Label { .. }) => {
                let classes: Vec<usize> = rows().map(argmax).collect();
                let name = |k: usize| codec.class_name(k).unwrap_or_else(|| k.to_string());
                serde_json::json!({
                    "classes": classes,
                    "names": classes.iter().map(|&k| name(k)).collect::<Vec<_>>(),
                    "probability": rows().zip(&classes).map(|(r, &k)| r[k]).collect::<Vec<_>>(),
                    "class_names": (0..g.params).map(name).collect::<Vec<_>>(),
                    "probabilities": rows().map(<[f32]>::to_vec).collect::<Vec<_>>(),
                })
            }
            Some(Codec::Columns {
                columns,
                normalizer,
            }) => {
                let mut v = g.mean.clone();
                normalizer.invert(&mut v)?;
                let value = serde_json::json!({
                    "columns": columns,
                    "values": v.chunks(columns.len().max(1)).map(<[f32]>::to_vec).collect::<Vec<_>>(),
                    "file": out.join(TABLE),
                });
                tables.push((columns.as_slice(), v));
                value
            }
            Some(codec @ (Codec::Image { .. } | Codec::Audio { .. })) => {
                let mut files = Vec::new();
                for (i, row) in rows().enumerate() {
                    files.push(codec.write_file(row, &out.join(format!("{}_{i}", g.name)))?);
                }
                let pictures = pictures::draws(codec, &g.name, &g.mean, draws, out)?;
                serde_json::json!({ "files": files, "pictures": pictures })
            }
            None => serde_json::json!({ "values": g.mean }),
        };
        outputs.insert(g.name.clone(), value);
    }
    write_table(&tables, out)?;
    Ok(serde_json::Value::Object(outputs))
}

/// The readable summary: each label's class per draw with its probability (and every class's
/// probability for one draw), the files written, and the table values.
fn print_outputs(outputs: &serde_json::Value, out: &Path) {
    let Some(map) = outputs.as_object() else {
        return;
    };
    for (name, v) in map {
        if let Some(c) = v.get("classes").and_then(|c| c.as_array()) {
            let probs = v["probabilities"].as_array().cloned().unwrap_or_default();
            let text = |x: &serde_json::Value| match x.as_str() {
                Some(s) => s.to_string(),
                None => x.to_string(),
            };
            let names: Vec<String> = v["names"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let all_names: Vec<String> = v["class_names"]
                .as_array()
                .into_iter()
                .flatten()
                .map(text)
                .collect();
            let chosen: Vec<f64> = v["probability"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| p.as_f64().unwrap_or(f64::NAN))
                .collect();
            let classes: Vec<String> = (0..c.len())
                .map(|i| {
                    let shown = names.get(i).cloned().unwrap_or_else(|| c[i].to_string());
                    format!(
                        "{shown} (p {:.2})",
                        chosen.get(i).copied().unwrap_or(f64::NAN)
                    )
                })
                .collect();
            println!("{name}: {}", classes.join(", "));
            if let [row] = probs.as_slice() {
                let all: Vec<String> = row
                    .as_array()
                    .into_iter()
                    .flatten()
                    .enumerate()
                    .map(|(k, x)| {
                        let shown = all_names.get(k).cloned().unwrap_or_else(|| k.to_string());
                        format!("{shown}: {:.2}", x.as_f64().unwrap_or(f64::NAN))
                    })
                    .collect();
                println!("  probabilities {}", all.join(", "));
            }
        } else if let Some(f) = v.get("files").and_then(|f| f.as_array()) {
            println!("{name}: {} files in {}", f.len(), out.display());
        } else if let Some(rows) = v.get("values") {
            // Numbers as the f32 they are (0.29858309, not 0.29858309030532837).
            let f32s = |row: &serde_json::Value| -> String {
                let cells: Vec<String> = row
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| (x.as_f64().unwrap_or(f64::NAN) as f32).to_string())
                    .collect();
                format!("[{}]", cells.join(", "))
            };
            let rows: Vec<String> = rows.as_array().into_iter().flatten().map(f32s).collect();
            let columns: Vec<&str> = v
                .get("columns")
                .and_then(|c| c.as_array())
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
                .collect();
            match columns.as_slice() {
                [] => println!("{name}: {}", rows.join(" ")),
                [only] if only == name => println!(
                    "{name}: {} (in {})",
                    rows.join(" "),
                    out.join(TABLE).display()
                ),
                _ => println!(
                    "{name} ({}): {} (in {})",
                    columns.join(", "),
                    rows.join(" "),
                    out.join(TABLE).display()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_only_the_files_generate_writes() {
        let mut codecs = Codecs::new();
        codecs.insert("image".into(), Codec::grey_image(2, 2));
        codecs.insert("label".into(), Codec::label(10));
        for name in ["image_0.png", "image_12.png", "image_grid.png"] {
            assert!(is_output(&codecs, name), "{name}");
        }
        for name in [
            "image_.png",
            "image_1.wav",
            "image_1.png.bak",
            "image_x.png",
            "image_-1.png",
            "image0.png",
            "label_0.png",
            "label_0.txt",
            "audio_0.wav",
            "generated.csv",
            "notes.txt",
            "eval.json",
        ] {
            assert!(!is_output(&codecs, name), "{name}");
        }
        let columns = Codec::Columns {
            columns: vec!["x".into()],
            normalizer: mvae::data::Normalizer::fit(&[0.0, 1.0], 1).unwrap(),
        };
        codecs.insert("x".into(), columns);
        assert!(is_output(&codecs, TABLE));
    }
}
