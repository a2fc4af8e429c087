//! `mvae search`: ranks a folder of files of one modality by how close their embeddings lie
//! to the embedding of what is given (a sound, a picture, a class), with an optional cache of
//! the folder's embeddings that is checked against the checkpoint and the files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::embed::retrieval::Similarity;
use mvae::{Backend, Codecs, HostValues, Mvae};
use serde::{Deserialize, Serialize};

use crate::generate::{codecs_of, Given, GivenArgs};
use crate::output::report;
use crate::{checkpoint_file, Common};

#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  mvae search --checkpoint runs/av --audio three.wav --gallery digits/ --k 5\n  \
mvae search --checkpoint runs/mnist --label 7 --gallery digits/\n\n\
Embeds what is given (the posterior mean of the model's aggregation of those modalities) and \
every file of --gallery that --modality reads (PNG/JPEG for an image modality, WAV for audio; \
the folder itself, not its subfolders), each from that modality alone, and prints the --k \
files closest to the query: by cosine similarity of the means (1 = same direction), or with \
--similarity euclidean by minus their distance. Ties keep the files' name order. With --cache \
FILE the gallery's embeddings are kept in FILE (JSON) and reused while the checkpoint and \
every file are byte for byte the same (compared by content hashes); otherwise they are \
recomputed and FILE rewritten, saying why."
)]
pub struct SearchArgs {
    /// A run directory or its checkpoint file.
    #[arg(long, value_name = "PATH")]
    checkpoint: PathBuf,
    /// The query.
    #[command(flatten)]
    given: GivenArgs,
    /// The folder of files to rank.
    #[arg(long, value_name = "DIR")]
    gallery: PathBuf,
    /// The modality of the gallery's files (default: the only modality with files that is not
    /// given).
    #[arg(long, value_name = "NAME")]
    modality: Option<String>,
    /// How many files to show.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// cosine or euclidean.
    #[arg(long, value_enum, default_value_t = SimilarityArg::Cosine)]
    similarity: SimilarityArg,
    /// Keep the gallery's embeddings in this JSON file and reuse them while still valid.
    #[arg(long, value_name = "FILE")]
    cache: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum SimilarityArg {
    Cosine,
    Euclidean,
}

impl From<SimilarityArg> for Similarity {
    fn from(s: SimilarityArg) -> Self {
        match s {
            SimilarityArg::Cosine => Similarity::Cosine,
            SimilarityArg::Euclidean => Similarity::Euclidean,
        }
    }
}

/// The cached embeddings of a gallery, with what they were computed from.
#[derive(Debug, Serialize, Deserialize)]
struct GalleryCache {
    /// Content hash of the checkpoint file.
    checkpoint_hash: String,
    /// The gallery's modality.
    modality: String,
    /// Each file's name and content hash, in name order.
    files: Vec<(String, String)>,
    /// Coordinates per embedding.
    dim: usize,
    /// The means, file after file.
    means: Vec<f32>,
}

/// FNV-1a, 64 bits, of a file's bytes, as hex: a content fingerprint (not a security hash).
fn content_hash(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    Ok(format!("{h:016x}"))
}

/// Runs `mvae search`.
pub fn run(common: &Common, args: SearchArgs) -> Result<()> {
    let ckpt = checkpoint_file(&args.checkpoint);
    let (latent, codecs) = codecs_of(&ckpt)?;
    if args.k == 0 {
        bail!("--k must be at least 1");
    }
    let given = args.given.read(&codecs)?;
    let modality = gallery_modality(&codecs, &given.texts, args.modality.as_deref())?;
    if !args.gallery.is_dir() {
        bail!("--gallery {}: not a folder", args.gallery.display());
    }
    let codec = &codecs[&modality];
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.gallery)
        .with_context(|| format!("reading {}", args.gallery.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && codec.reads_file(p))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!(
            "--gallery {} has no file that the modality {modality} reads",
            args.gallery.display()
        );
    }
    if let Some(cache) = &args.cache {
        let mut inputs = vec![("--checkpoint", ckpt.as_path())];
        inputs.extend(args.given.files());
        inputs.extend(files.iter().map(|f| ("--gallery", f.as_path())));
        crate::output::refuse_input(cache, &inputs)?;
    }
    crate::dispatch!(
        common,
        latent,
        search_on(common, &ckpt, &codecs, &modality, &files, &given, &args)
    )
}

/// The gallery's modality: `--modality`, else the only file modality that is not given.
fn gallery_modality(
    codecs: &Codecs,
    given: &[(String, String)],
    asked: Option<&str>,
) -> Result<String> {
    let with_files: Vec<&String> = codecs
        .iter()
        .filter(|(_, c)| c.extension().is_some())
        .map(|(n, _)| n)
        .collect();
    if let Some(name) = asked {
        if !with_files.iter().any(|n| *n == name) {
            bail!(
                "--modality {name}: the model's modalities with files are {}",
                with_files
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        return Ok(name.to_string());
    }
    let open: Vec<&String> = with_files
        .into_iter()
        .filter(|n| !given.iter().any(|(g, _)| g == *n))
        .collect();
    match open.as_slice() {
        [one] => Ok((*one).clone()),
        [] => bail!("every modality with files is given: name the gallery's with --modality"),
        many => bail!(
            "the gallery could hold any of {}: name it with --modality",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[allow(clippy::too_many_arguments)]
fn search_on<const L: usize, D: Backend>(
    dev: D,
    common: &Common,
    ckpt: &Path,
    codecs: &Codecs,
    modality: &str,
    files: &[PathBuf],
    given: &Given,
    args: &SearchArgs,
) -> Result<()> {
    let model = Mvae::<L, D>::load(ckpt, &dev)?;
    let batch = mvae::Batch::from_host(model.modalities(), model.device(), &given.host())?;
    let names: Vec<&str> = given.texts.iter().map(|(n, _)| n.as_str()).collect();
    let query = model.encode(&batch, model.subset(&names)?).mean().as_vec();
    let (means, cache_note) = gallery_means(&model, ckpt, codecs, modality, files, args)?;
    let similarity = Similarity::from(args.similarity);
    let mut scored: Vec<(usize, f64)> = (0..files.len())
        .map(|i| (i, similarity.of(&query, &means[i * L..(i + 1) * L])))
        .collect();
    // stable: ties keep name order
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.truncate(args.k);
    let results: Vec<serde_json::Value> = scored
        .iter()
        .enumerate()
        .map(|(r, &(i, s))| serde_json::json!({ "rank": r + 1, "file": files[i], "similarity": s }))
        .collect();
    let doc = serde_json::json!({
        "checkpoint": ckpt,
        "given": given.report(),
        "gallery": args.gallery,
        "modality": modality,
        "gallery_size": files.len(),
        "similarity": similarity,
        "cache": cache_note,
        "results": results,
    });
    report(common, &doc, || {
        if let Some(note) = &cache_note {
            eprintln!("note: {note}");
        }
        println!(
            "the {} of {} {modality} files closest to {} ({} similarity):",
            scored.len(),
            files.len(),
            given
                .texts
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(", "),
            similarity
        );
        for (r, &(i, s)) in scored.iter().enumerate() {
            println!("  {:>3}. {:.4}  {}", r + 1, s, files[i].display());
        }
    });
    Ok(())
}

/// The gallery's means, `files.len() x L`: from a valid cache, else computed (and the cache
/// rewritten). Also a note saying what happened to the cache, if one was asked for.
fn gallery_means<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    ckpt: &Path,
    codecs: &Codecs,
    modality: &str,
    files: &[PathBuf],
    args: &SearchArgs,
) -> Result<(Vec<f32>, Option<String>)> {
    let key = match &args.cache {
        Some(_) => Some((
            content_hash(ckpt)?,
            files
                .iter()
                .map(|f| {
                    let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                    Ok((name.unwrap_or_default(), content_hash(f)?))
                })
                .collect::<Result<Vec<_>>>()?,
        )),
        None => None,
    };
    let mut note = None;
    if let (Some(path), Some((ckpt_hash, file_hashes))) = (&args.cache, &key) {
        if path.exists() {
            let stale = match std::fs::read_to_string(path)
                .ok()
                .and_then(|t| serde_json::from_str::<GalleryCache>(&t).ok())
            {
                None => "it is not a gallery cache".to_string(),
                Some(c) if c.checkpoint_hash != *ckpt_hash => "the checkpoint changed".into(),
                Some(c) if c.modality != modality => format!("it holds {}", c.modality),
                Some(c) if c.files != *file_hashes => "the gallery's files changed".into(),
                Some(c) if c.dim != L || c.means.len() != files.len() * L => {
                    "its sizes do not match".into()
                }
                Some(c) => return Ok((c.means, Some(format!("used {}", path.display())))),
            };
            note = Some(format!(
                "{} is stale ({stale}): recomputed and rewritten",
                path.display()
            ));
        }
    }
    let codec = &codecs[modality];
    let m = model.subset(&[modality])?;
    let mut means = Vec::with_capacity(files.len() * L);
    for chunk in files.chunks(256) {
        let values: Vec<f32> = chunk
            .iter()
            .map(|f| {
                codec
                    .read_file(f)
                    .with_context(|| format!("{}", f.display()))
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        let host = [HostValues {
            name: modality,
            values: &values,
            present: None,
        }];
        let batch = mvae::Batch::from_host(model.modalities(), model.device(), &host)?;
        means.extend(model.encode(&batch, m).mean().as_vec());
    }
    if let (Some(path), Some((checkpoint_hash, files))) = (&args.cache, key) {
        let cache = GalleryCache {
            checkpoint_hash,
            modality: modality.to_string(),
            files,
            dim: L,
            means: means.clone(),
        };
        mvae::data::atomic::write_bytes(path, &serde_json::to_vec(&cache)?)
            .with_context(|| format!("writing {}", path.display()))?;
        note.get_or_insert_with(|| format!("wrote {}", path.display()));
    }
    Ok((means, note))
}
