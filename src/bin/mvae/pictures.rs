//! The pictures `train` and `eval` leave in a run directory, and the grids of `generate` and
//! `sample`: training curves, the latent space, reconstructions, cross-modal generations,
//! spectrograms and WAV files of image-to-speech.

use std::path::{Path, PathBuf};

use anyhow::Result;
use mvae::eval::probe::latents;
use mvae::impute::generate;
use mvae::plot::{self, ColourScale, GridOptions};
use mvae::{Backend, Codec, HostValues, Mvae, Subset};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::data::Prepared;
use crate::train::Epoch;
use crate::Common;

/// Draws per row of a cross-modal grid.
const DRAWS: usize = 8;
/// Test samples in the latent-space picture.
const LATENT_POINTS: usize = 2000;

/// Draws every picture that fits the model's modalities into `dir/pictures`; returns the
/// files written.
pub fn draw<const L: usize, D: Backend>(
    common: &Common,
    model: &Mvae<L, D>,
    data: &Prepared,
    history: &[Epoch],
    dir: &Path,
) -> Result<Vec<PathBuf>> {
    let out = dir.join("pictures");
    std::fs::create_dir_all(&out)?;
    let mut files = Vec::new();
    let pb = crate::output::bar(common, 6, "pictures".into());
    if !history.is_empty() {
        let metrics: Vec<_> = history.iter().map(|h| h.metrics.clone()).collect();
        let path = out.join("curves.png");
        plot::training_curves(&path, &metrics)?;
        files.push(path);
    }
    pb.inc(1);
    let names: Vec<&str> = model.modalities().iter().map(|m| m.name()).collect();
    let has = |n: &str| names.contains(&n) && data.test.column(n).is_some();
    // A class column colours the latent picture, whether a modality (`label`) or kept beside
    // the modalities for evaluation (PolyMNIST).
    let classes = data.test.column("label").is_some();
    if classes && data.test.len() < 2 {
        // Two principal components need at least two points.
        if !common.json {
            eprintln!(
                "note: no latent.png: the test set has {} sample(s), and the picture needs two",
                data.test.len()
            );
        }
    } else if classes {
        let z = latents(
            model,
            &data.test,
            Subset::all(names.len()),
            "label",
            Some(LATENT_POINTS),
        )?;
        let zs = z.column("z").expect("latents has z");
        let labels: Vec<usize> = z
            .column("label")
            .expect("latents has label")
            .values()
            .iter()
            .map(|&v| v as usize)
            .collect();
        let points = plot::pca2(zs.values(), L)?;
        let path = out.join("latent.png");
        plot::latent_scatter(
            &path,
            &points,
            &labels,
            "latent means (joint posterior), first two principal components",
        )?;
        files.push(path);
        if let Some(path) = embeddings(model, data, &names, &out)? {
            files.push(path);
        }
    }
    pb.inc(1);
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    if let Some(Codec::Image {
        width,
        height,
        channels,
    }) = data.codecs.get("image").filter(|_| has("image"))
    {
        // Reconstructions: real test images, then the decoder's mean from the image alone.
        let col = data.test.column("image").expect("has image");
        let real: Vec<f32> = (0..data.test.len())
            .filter_map(|i| col.sample(i))
            .take(DRAWS)
            .flatten()
            .copied()
            .collect();
        let mut recon = Vec::new();
        for img in real.chunks(channels * width * height) {
            recon.extend(reconstruct(model, "image", img)?);
        }
        let mut both = real.clone();
        both.extend(&recon);
        let path = out.join("reconstructions.png");
        let opts = GridOptions {
            title: "test images (top) and their reconstructions (bottom)".into(),
            ..GridOptions::default()
        };
        plot::image_grid_channels(
            &path,
            &both,
            *channels,
            *width,
            *height,
            DRAWS.min(real.len() / (channels * width * height)).max(1),
            &opts,
        )?;
        files.push(path);
    }
    pb.inc(1);
    let digits = |data: &Prepared| -> Vec<Option<usize>> {
        // The first test sample of each class 0..10 that has every modality.
        let label = data.test.column("label");
        (0..10)
            .map(|d| {
                label.and_then(|l| {
                    (0..data.test.len()).find(|&i| {
                        l.sample(i) == Some(&[d as f32][..])
                            && data.test.columns().iter().all(|c| c.present()[i])
                    })
                })
            })
            .collect()
    };
    let firsts = digits(data);
    for (given, target) in [("label", "image"), ("audio", "image"), ("image", "audio")] {
        if !(has(given) && has(target)) {
            continue;
        }
        let codec = &data.codecs[target];
        let mut rows = Vec::new();
        let mut row_labels = Vec::new();
        for (d, first) in firsts.iter().enumerate() {
            let Some(i) = first else { continue };
            let values = data
                .test
                .column(given)
                .expect("has")
                .sample(*i)
                .expect("present");
            let g = generate(
                model,
                &[HostValues {
                    name: given,
                    values,
                    present: None,
                }],
                DRAWS,
                Some(&mut rng),
            )?;
            let t = g.into_iter().find(|g| g.name == target).expect("generated");
            rows.extend(t.mean);
            row_labels.push(d.to_string());
        }
        if row_labels.is_empty() {
            continue;
        }
        let title =
            format!("{target} generated from the {given} of a test sample, one digit per row");
        let path = out.join(format!("{given}_to_{target}.png"));
        let opts = GridOptions {
            row_labels: row_labels.clone(),
            title,
            ..GridOptions::default()
        };
        match codec {
            Codec::Image {
                width,
                height,
                channels,
            } => plot::image_grid_channels(&path, &rows, *channels, *width, *height, DRAWS, &opts)?,
            Codec::Audio { spectrogram, .. } => {
                plot::spectrogram_grid(
                    &path,
                    &rows,
                    spectrogram.frames,
                    spectrogram.bins,
                    DRAWS,
                    &ColourScale::default(),
                    &opts,
                )?;
                // Hear it: the first draw of each row as a WAV file.
                let per = codec.dim();
                for (r, d) in row_labels.iter().enumerate() {
                    let stem = out.join(format!("{given}_to_{target}_{d}"));
                    files.push(
                        codec.write_file(&rows[r * DRAWS * per..(r * DRAWS + 1) * per], &stem)?,
                    );
                }
            }
            _ => continue,
        }
        files.push(path);
    }
    pb.inc(3);
    if let Some(path) = cross_modal_images(model, data, &firsts, &out)? {
        files.push(path);
    }
    if let Some(Codec::Audio { spectrogram, .. }) =
        data.codecs.get("audio").filter(|_| has("audio"))
    {
        let col = data.test.column("audio").expect("has audio");
        let real: Vec<f32> = firsts
            .iter()
            .flatten()
            .filter_map(|&i| col.sample(i))
            .flatten()
            .copied()
            .collect();
        if !real.is_empty() {
            let path = out.join("spectrograms.png");
            let opts = GridOptions {
                title: "test spectrograms of digits 0-9 (standardised log magnitude)".into(),
                ..GridOptions::default()
            };
            plot::spectrogram_grid(
                &path,
                &real,
                spectrogram.frames,
                spectrogram.bins,
                5,
                &ColourScale::default(),
                &opts,
            )?;
            files.push(path);
        }
    }
    pb.finish_and_clear();
    Ok(files)
}

/// With two or more image modalities of one shape (PolyMNIST's five): for the first test
/// sample of each class (`firsts`), the real images of every image modality, then each of them
/// generated from all the other modalities (the posterior mean), one class per row, in
/// `cross_modal.png`. `None` when the model has fewer image modalities or no class shows.
fn cross_modal_images<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &Prepared,
    firsts: &[Option<usize>],
    out: &Path,
) -> Result<Option<PathBuf>> {
    let images: Vec<(usize, &str, &Codec)> = model
        .modalities()
        .iter()
        .enumerate()
        .filter_map(|(m, s)| {
            let codec = data.codecs.get(s.name())?;
            data.test.column(s.name())?;
            matches!(codec, Codec::Image { .. }).then_some((m, s.name(), codec))
        })
        .collect();
    let Some(&(_, _, first_codec)) = images.first() else {
        return Ok(None);
    };
    let Codec::Image {
        width,
        height,
        channels,
    } = *first_codec
    else {
        return Ok(None);
    };
    if images.len() < 2 || images.iter().any(|(_, _, c)| *c != first_codec) {
        return Ok(None);
    }
    let mut tiles = Vec::new();
    let mut row_labels = Vec::new();
    for (d, first) in firsts.iter().enumerate() {
        let Some(i) = *first else { continue };
        let sample = |name: &str| data.test.column(name).and_then(|c| c.sample(i));
        for (_, name, _) in &images {
            tiles.extend_from_slice(sample(name).expect("first samples have every modality"));
        }
        for (_, target, _) in &images {
            let given: Vec<HostValues> = model
                .modalities()
                .iter()
                .map(|s| s.name())
                .filter(|n| n != target)
                .filter_map(|n| {
                    sample(n).map(|values| HostValues {
                        name: n,
                        values,
                        present: None,
                    })
                })
                .collect();
            let g = generate(model, &given, 1, None)?;
            let t = g
                .into_iter()
                .find(|g| g.name == *target)
                .expect("generated");
            tiles.extend(t.mean);
        }
        row_labels.push(d.to_string());
    }
    if row_labels.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = images.iter().map(|(_, n, _)| *n).collect();
    let path = out.join("cross_modal.png");
    let opts = GridOptions {
        row_labels,
        title: format!(
            "test samples ({}, left) and each generated from all the others (right)",
            names.join(", ")
        ),
        ..GridOptions::default()
    };
    plot::image_grid_channels(
        &path,
        &tiles,
        channels,
        width,
        height,
        2 * images.len(),
        &opts,
    )?;
    Ok(Some(path))
}

/// Encodes one sample of modality `name` alone and decodes the same modality's mean.
fn reconstruct<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    name: &str,
    values: &[f32],
) -> Result<Vec<f32>> {
    let m = model.modality_index(name)?;
    let batch = mvae::Batch::from_host(
        model.modalities(),
        model.device(),
        &[HostValues {
            name,
            values,
            present: None,
        }],
    )?;
    let z = model.encode_all(&batch).mean();
    Ok(model.decode_mean(m, z).as_vec())
}

/// Draws shown in the grid picture of `generate` and `sample`; the files hold every draw.
pub const GRID_DRAWS: usize = 64;

/// The grid of the first [`GRID_DRAWS`] of `draws` generated samples of one modality
/// (`generate`, `sample`).
pub fn draws(
    codec: &Codec,
    name: &str,
    mean: &[f32],
    draws: usize,
    out: &Path,
) -> Result<Vec<PathBuf>> {
    let cols = draws.clamp(1, 8);
    let shown = draws.min(GRID_DRAWS);
    let mean = &mean[..mean.len() / draws.max(1) * shown];
    let opts = GridOptions {
        title: if shown < draws {
            format!("{name}: first {shown} of {draws} draws")
        } else {
            format!("{name}: {draws} draws")
        },
        ..GridOptions::default()
    };
    let path = match codec {
        Codec::Image {
            width,
            height,
            channels,
        } => {
            let path = out.join(format!("{name}_grid.png"));
            plot::image_grid_channels(&path, mean, *channels, *width, *height, cols, &opts)?;
            path
        }
        Codec::Audio { spectrogram, .. } => {
            let path = out.join(format!("{name}_spectrograms.png"));
            plot::spectrogram_grid(
                &path,
                mean,
                spectrogram.frames,
                spectrogram.bins,
                cols,
                &ColourScale::default(),
                &opts,
            )?;
            path
        }
        _ => return Ok(Vec::new()),
    };
    Ok(vec![path])
}

/// `embeddings.png`: the test set's embeddings of two modalities, each from its modality alone
/// (the posterior mean given only it), in one PCA plot, coloured by class, a marker per
/// modality. The two are the first two modalities that are not the class label, or the two
/// modalities of a two-modality model. `None` where the model has one modality.
fn embeddings<const L: usize, D: Backend>(
    model: &Mvae<L, D>,
    data: &Prepared,
    names: &[&str],
    out: &Path,
) -> Result<Option<PathBuf>> {
    let others: Vec<usize> = (0..names.len()).filter(|&m| names[m] != "label").collect();
    let (a, b) = match (others.as_slice(), names.len()) {
        ([a, b, ..], _) => (*a, *b),
        (_, 2) => (0, 1),
        _ => return Ok(None),
    };
    let mut values = Vec::new();
    let mut labels = Vec::new();
    let mut groups = Vec::new();
    for (g, m) in [a, b].into_iter().enumerate() {
        let z = latents(
            model,
            &data.test,
            Subset::single(m),
            "label",
            Some(LATENT_POINTS / 2),
        )?;
        values.extend_from_slice(z.column("z").expect("latents has z").values());
        let ys = z.column("label").expect("latents has label").values();
        labels.extend(ys.iter().map(|&v| v as usize));
        groups.extend(std::iter::repeat_n(g, ys.len()));
    }
    let points = plot::pca2(&values, L)?;
    let path = out.join("embeddings.png");
    let options = plot::ScatterOptions {
        title: format!(
            "embeddings of {} and {} (each alone), first two principal components",
            names[a], names[b]
        ),
        ..Default::default()
    };
    let group_names = [names[a].to_string(), names[b].to_string()];
    plot::grouped_scatter(&path, &points, &labels, &groups, &group_names, &options)?;
    Ok(Some(path))
}
