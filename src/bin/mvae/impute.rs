//! `mvae impute`: fills the missing modalities of a manifest (a CSV or JSON Lines table) or of
//! a folder of paired files from the posterior of what each sample has, into a new output
//! (never the input).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::data::DatasetBuilder;
use mvae::{Backend, Codec, Codecs, MultimodalDataset, Mvae};

use crate::generate::{codecs_of, given_values};
use crate::manifest::Manifest;
use crate::output::{output_dir, refuse_existing, refuse_input, report};
use crate::{checkpoint_file, Common};

#[derive(clap::Args)]
#[command(
    group(clap::ArgGroup::new("input").required(true).args(["manifest", "folder"])),
    after_help = "Inputs:\n  --manifest FILE  a table (CSV, or JSON Lines for .jsonl) with the model's columns, \
as it was trained on: numbers, class words, paths to images and WAV files (relative to the \
file's folder); empty (or NaN) cells are missing. The output has the same header, rows and \
order: every missing cell of a model column is filled (a class by its name; an image or a sound \
as a file written to <out stem>_files/ beside the output, named in the cell relative to the \
output's folder) and every other cell is copied as written (other columns may hold anything: \
ids, names, text). --csv is another name for --manifest.\n  --folder DIR   paired samples as files <id>_<modality>.png (images), \
<id>_<modality>.wav (audio) and <id>_<modality>.txt (a class number, or comma-separated column \
values); a missing file is a missing modality. The output folder gets every input file plus the \
filled ones.\n\nThe input is never modified; an existing output is refused unless --force."
)]
pub struct ImputeArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// A manifest (CSV or JSON Lines) with missing cells.
    #[arg(long, value_name = "FILE", alias = "csv")]
    manifest: Option<PathBuf>,
    /// A folder of paired files with some missing.
    #[arg(long, value_name = "DIR")]
    folder: Option<PathBuf>,
    /// The output: a file for --manifest (of the input's format), a folder for --folder.
    #[arg(long, short, value_name = "PATH")]
    out: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    force: bool,
}

/// Runs `mvae impute`.
pub fn run(common: &Common, args: ImputeArgs) -> Result<()> {
    let ckpt = checkpoint_file(&args.checkpoint);
    let (latent, codecs) = codecs_of(&ckpt)?;
    let input = args
        .manifest
        .as_ref()
        .or(args.folder.as_ref())
        .expect("required");
    if !input.exists() {
        bail!("no such input {}", input.display());
    }
    let flag = if args.manifest.is_some() {
        "--manifest"
    } else {
        "--folder"
    };
    refuse_input(&args.out, &[(flag, input), ("--checkpoint", &ckpt)])?;
    let (source, data) = match (&args.manifest, &args.folder) {
        (Some(file), _) => {
            refuse_existing(&args.out, args.force)?;
            let m = Manifest::read(file)?;
            let data = m.load(&mut codecs.clone(), None)?;
            (Source::Manifest(m), data)
        }
        (None, Some(dir)) => {
            output_dir(&args.out, args.force)?;
            let f = read_folder(dir, &codecs)?;
            let data = f.data.clone();
            (Source::Folder(f), data)
        }
        (None, None) => unreachable!("clap requires one"),
    };
    crate::dispatch!(
        common,
        latent,
        impute_on(common, &ckpt, &codecs, &source, &data, &args.out)
    )
}

enum Source {
    Manifest(Manifest),
    Folder(Folder),
}

fn impute_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    ckpt: &Path,
    codecs: &Codecs,
    source: &Source,
    data: &MultimodalDataset,
    out: &Path,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let (filled, counts) = mvae::impute::impute(&model, data)?;
    let written = match source {
        Source::Manifest(m) => {
            let mut written = m.write_filled(codecs, data, &filled, out)?.files;
            written.insert(0, out.to_path_buf());
            written
        }
        Source::Folder(f) => write_folder(f, codecs, data, &filled, out)?,
    };
    let counts: BTreeMap<String, usize> = counts.into_iter().collect();
    let doc = serde_json::json!({
        "checkpoint": ckpt,
        "samples": data.len(),
        "filled": counts,
        "out": out,
        "files_written": written.len(),
    });
    report(common, &doc, || {
        let parts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!(
            "filled {} of {} samples into {}",
            parts.join(", "),
            data.len(),
            out.display()
        );
    });
    Ok(())
}

/// Paired files read from a folder.
pub(crate) struct Folder {
    /// The sample ids (file names' `<id>` parts), in sorted order.
    pub(crate) ids: Vec<String>,
    /// Input file of each (id, modality), if present.
    files: BTreeMap<(usize, String), PathBuf>,
    pub(crate) data: MultimodalDataset,
}

pub(crate) fn read_folder(dir: &Path, codecs: &Codecs) -> Result<Folder> {
    let mut found: BTreeMap<String, BTreeMap<String, PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let hit = codecs.iter().find(|(name, codec)| {
            stem.ends_with(&format!("_{name}"))
                && match codec {
                    Codec::Image { .. } | Codec::Audio { .. } => codec.reads_file(&path),
                    _ => path
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e.eq_ignore_ascii_case("txt")),
                }
        });
        if let Some((name, _)) = hit {
            let id = &stem[..stem.len() - name.len() - 1];
            let files = found.entry(id.to_string()).or_default();
            if let Some(other) = files.get(name) {
                let mut two = [file_name(other), file_name(&path)];
                two.sort();
                bail!(
                    "{}: {} and {} are both the {name} of {id}; keep one",
                    dir.display(),
                    two[0],
                    two[1]
                );
            }
            files.insert(name.clone(), path.clone());
        }
    }
    if found.is_empty() {
        bail!(
            "{} holds no files named <id>_<modality>.<ext> for the modalities {}",
            dir.display(),
            codecs.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    let ids: Vec<String> = found.keys().cloned().collect();
    let mut files = BTreeMap::new();
    let mut b = DatasetBuilder::new();
    for (name, codec) in codecs {
        let dim = codec.dim();
        let mut values = Vec::with_capacity(ids.len() * dim);
        let mut present = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            match found[id].get(name) {
                Some(path) => {
                    let v = match codec {
                        Codec::Image { .. } | Codec::Audio { .. } => codec.read_file(path)?,
                        _ => {
                            let text = std::fs::read_to_string(path)
                                .with_context(|| format!("reading {}", path.display()))?;
                            given_values(codecs, name, text.trim())
                                .with_context(|| path.display().to_string())?
                        }
                    };
                    values.extend(v);
                    present.push(true);
                    files.insert((i, name.clone()), path.clone());
                }
                None => {
                    values.extend(std::iter::repeat_n(0.0, dim));
                    present.push(false);
                }
            }
        }
        b = b.column_with_mask(name, dim, values, present);
    }
    Ok(Folder {
        ids,
        files,
        data: b.build()?,
    })
}

/// The last part of `path`, for messages.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn write_folder(
    f: &Folder,
    codecs: &Codecs,
    data: &MultimodalDataset,
    filled: &MultimodalDataset,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (name, codec) in codecs {
        let col = data.column(name).expect("built from the codecs");
        let new = filled.column(name).expect("impute keeps columns");
        for (i, id) in f.ids.iter().enumerate() {
            let stem = out.join(format!("{id}_{name}"));
            if col.present()[i] {
                let src = &f.files[&(i, name.clone())];
                let dst = out.join(src.file_name().expect("a file"));
                std::fs::copy(src, &dst)
                    .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
                continue;
            }
            let values = new.sample(i).expect("in range");
            let path = match codec {
                Codec::Image { .. } | Codec::Audio { .. } => codec.write_file(values, &stem)?,
                Codec::Label { .. } => {
                    let path = stem.with_extension("txt");
                    let text = format!("{}\n", values[0] as usize);
                    mvae::data::atomic::write_bytes(&path, text.as_bytes())?;
                    path
                }
                Codec::Columns { normalizer, .. } => {
                    let mut v = values.to_vec();
                    normalizer.invert(&mut v)?;
                    let text: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    let path = stem.with_extension("txt");
                    mvae::data::atomic::write_bytes(
                        &path,
                        format!("{}\n", text.join(",")).as_bytes(),
                    )?;
                    path
                }
            };
            written.push(path);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Names of the `<id>_<modality>.<ext>` layout, well-formed and odd.
    const NAMES: [&str; 20] = [
        "1_image.png",
        "1_image.jpg",
        "1_audio.wav",
        "1_label.txt",
        "2_image.PNG",
        "2_label.txt",
        "_image.png",
        "_label.txt",
        "image.png",
        "x_image_image.png",
        "x_label.txt.txt",
        "é ü_audio.wav",
        "a\nb_label.txt",
        ".._image.png",
        "3_label",
        "3_label.",
        "3_audio.WAV",
        "4_image.jpeg",
        "4_audio.wav",
        "notes.txt",
    ];

    /// Random `--folder` layouts for an image + audio + label model (valid, empty and garbage
    /// files, folders and links where files are expected, odd names): each reads or is
    /// refused, never panics.
    #[test]
    fn random_folder_layouts_read_or_are_refused() {
        let spectrogram = mvae::data::SpectrogramConfig::default();
        let width = spectrogram.dim();
        let mut codecs = Codecs::new();
        codecs.insert("image".into(), Codec::grey_image(4, 4));
        codecs.insert("label".into(), Codec::label(10));
        codecs.insert(
            "audio".into(),
            Codec::Audio {
                spectrogram,
                normalizer: mvae::data::Normalizer::fit(&vec![0.0; 2 * width], width).unwrap(),
            },
        );
        let png = {
            let mut b = std::io::Cursor::new(Vec::new());
            image::GrayImage::from_pixel(3, 2, image::Luma([200]))
                .write_to(&mut b, image::ImageFormat::Png)
                .unwrap();
            b.into_inner()
        };
        let mut wav = Vec::new();
        {
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::new(std::io::Cursor::new(&mut wav), spec).unwrap();
            for i in 0..800 {
                w.write_sample((1000.0 * (i as f32 * 0.3).sin()) as i16)
                    .unwrap();
            }
            w.finalize().unwrap();
        }
        let texts: [&[u8]; 6] = [b"3", b" 7\n", b"", b"12", b"-1", b"1e400"];
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let (mut read, mut refused) = (0, 0);
        for _ in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            for _ in 0..rng.gen_range(0..6) {
                let name = NAMES[rng.gen_range(0..NAMES.len())];
                let path = dir.path().join(name);
                if std::fs::symlink_metadata(&path).is_ok() {
                    continue;
                }
                let ext = name.rsplit('.').next().unwrap_or("");
                match rng.gen_range(0..10) {
                    // Mostly what the name says, so that some folders read.
                    7.. => match ext {
                        "png" | "PNG" | "jpg" | "jpeg" => std::fs::write(&path, &png).unwrap(),
                        "wav" | "WAV" => std::fs::write(&path, &wav).unwrap(),
                        _ => std::fs::write(&path, b"4").unwrap(),
                    },
                    0 => std::fs::write(&path, &png).unwrap(),
                    1 => std::fs::write(&path, &wav).unwrap(),
                    2 => std::fs::write(&path, texts[rng.gen_range(0..texts.len())]).unwrap(),
                    3 => std::fs::write(&path, b"").unwrap(),
                    4 => std::fs::create_dir(&path).unwrap(),
                    5 => std::os::unix::fs::symlink(name, &path).unwrap(),
                    _ => std::os::unix::fs::symlink("..", &path).unwrap(),
                }
            }
            match read_folder(dir.path(), &codecs) {
                Ok(f) => {
                    assert_eq!(f.ids.len(), f.data.len());
                    read += 1;
                }
                Err(e) => {
                    assert!(!format!("{e:#}").is_empty());
                    refused += 1;
                }
            }
        }
        assert!(read > 10 && refused > 10, "{read} read, {refused} refused");
    }
}
