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
an image grid of the first draws (at most 64), and reports class probabilities and table values. \
--samples is at most 1000 (checked before anything is written); for more, run again with \
another --seed and --out."
)]
pub struct GenerateArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
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
    /// Write into a non-empty --out folder.
    #[arg(long)]
    force: bool,
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
    /// Write into a non-empty --out folder.
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
                    crate::data::outlier_reason(v[k], z)
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
    let mut given: Vec<(String, String)> = Vec::new();
    let named = [
        (
            "image",
            args.image.as_ref().map(|p| p.display().to_string()),
        ),
        (
            "audio",
            args.audio.as_ref().map(|p| p.display().to_string()),
        ),
        ("label", args.label.clone()),
    ];
    for (name, v) in named {
        if let Some(v) = v {
            given.push((name.to_string(), v));
        }
    }
    given.extend(args.given.iter().cloned());
    if given.is_empty() {
        bail!("nothing given: pass --image FILE, --audio FILE, --label N or --given NAME=VALUE");
    }
    let mut values = Vec::new();
    for (i, (name, text)) in given.iter().enumerate() {
        if given[..i].iter().any(|(n, _)| n == name) {
            bail!("{name} is given twice");
        }
        values.push(given_values(&codecs, name, text)?);
    }
    if !args.mean {
        check_draws("--samples", args.samples)?;
    }
    let mut inputs = vec![("--checkpoint", ckpt.as_path())];
    inputs.extend(args.image.as_deref().map(|p| ("--image", p)));
    inputs.extend(args.audio.as_deref().map(|p| ("--audio", p)));
    refuse_input(&args.out, &inputs)?;
    output_dir(&args.out, args.force)?;
    crate::dispatch!(
        common,
        latent,
        generate_on(common, &ckpt, &codecs, &given, &values, &args)
    )
}

fn generate_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    ckpt: &Path,
    codecs: &Codecs,
    given: &[(String, String)],
    values: &[Vec<f32>],
    args: &GenerateArgs,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let host: Vec<HostValues<'_>> = given
        .iter()
        .zip(values)
        .map(|((name, _), v)| HostValues {
            name,
            values: v,
            present: None,
        })
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let rng: Option<&mut dyn rand::RngCore> = if args.mean { None } else { Some(&mut rng) };
    let generated = generate(&model, &host, args.samples, rng)?;
    let outputs = write_outputs(codecs, &generated, &args.out)?;
    let doc = serde_json::json!({
        "checkpoint": ckpt,
        "given": given.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
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

/// Writes each generated modality (files for images and audio, a grid of the images) and
/// returns what was written or decoded, by modality.
pub fn write_outputs(
    codecs: &Codecs,
    generated: &[Generated],
    out: &Path,
) -> Result<serde_json::Value> {
    let mut outputs = serde_json::Map::new();
    for g in generated {
        let draws = g.mean.len() / g.params.max(1);
        let rows = || g.mean.chunks(g.params.max(1));
        let value = match codecs.get(&g.name) {
            Some(Codec::Label { .. }) => serde_json::json!({
                "classes": rows().map(argmax).collect::<Vec<_>>(),
                "probabilities": rows().map(<[f32]>::to_vec).collect::<Vec<_>>(),
            }),
            Some(Codec::Columns {
                columns,
                normalizer,
            }) => {
                let mut v = g.mean.clone();
                normalizer.invert(&mut v)?;
                serde_json::json!({
                    "columns": columns,
                    "values": v.chunks(columns.len().max(1)).map(<[f32]>::to_vec).collect::<Vec<_>>(),
                })
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
    Ok(serde_json::Value::Object(outputs))
}

fn print_outputs(outputs: &serde_json::Value, out: &Path) {
    let Some(map) = outputs.as_object() else {
        return;
    };
    for (name, v) in map {
        if let Some(c) = v.get("classes").and_then(|c| c.as_array()) {
            let classes: Vec<String> = c.iter().map(|x| x.to_string()).collect();
            println!("{name}: {}", classes.join(" "));
        } else if let Some(f) = v.get("files").and_then(|f| f.as_array()) {
            println!("{name}: {} files in {}", f.len(), out.display());
        } else if let Some(rows) = v.get("values") {
            println!("{name}: {rows}");
        }
    }
}
