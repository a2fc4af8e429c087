//! PolyMNIST, built offline from MNIST: five RGB image modalities `m0`..`m4` that share only
//! the digit's class, after the MoPoE paper's data set (Sutter, Daunhawer and Vogt, 2021).
//!
//! Each modality has its own background, a procedural RGB texture of
//! [`BACKGROUND`] x [`BACKGROUND`] pixels ([`background`]): the textures differ clearly in
//! colour and in spatial frequency (a slow warm plaid, fine blue diagonal stripes, green
//! rings, purple cloud-like value noise, a fine brown checker with grain). They are fixed: they
//! depend on nothing, not even the seed, so every PolyMNIST built here shows the same five
//! styles. An image of modality `m` is a random 28 x 28 crop of `m`'s background in which the
//! pixels of the MNIST digit (binarised: byte value > 128) take the inverted colour `1 - c`;
//! the digit is not moved or scaled.
//!
//! Tuples are paired by class only ([`pair_by_class`]): tuple `i` has the class of MNIST image
//! `i`, and for each class and each modality an independent permutation of that class's
//! images decides which image each tuple of the class shows, so the five images of a tuple
//! are (almost always) five different handwritings of one digit, and every MNIST image
//! appears exactly once per modality. 60,000 training tuples come from the MNIST training
//! images, 10,000 test tuples from the test images; a limit keeps the first `N` MNIST images
//! of a split (and so `N` tuples). The training split is drawn with `seed`, the test split with
//! `seed + 1` (wrapping).
//!
//! Columns: `m0`..`m4` ([`DIM`] = 3 x 28 x 28 values in `[0, 1]` each, **channel-planar**:
//! value `c * 784 + row * 28 + col` is channel `c` (red, green, blue) of that pixel, the
//! layout of [`crate::data::image_folder`]) and [`LABEL`], the class (for evaluation, not a
//! modality of the model). Memory: 9,408 bytes per image, so the full training split holds
//! about 2.8 GB of values; use a limit for quick runs.

use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::dataset::{DatasetBuilder, MultimodalDataset};
use crate::data::error::{DataError, Result};
use crate::data::idx::Mnist;
use crate::data::split::Split;

/// Number of modalities.
pub const MODALITIES: usize = 5;
/// Names of the image columns, in modality order.
pub const NAMES: [&str; MODALITIES] = ["m0", "m1", "m2", "m3", "m4"];
/// Name of the class column (the digit as f32).
pub const LABEL: &str = "label";
/// Side of an image in pixels.
pub const SIDE: usize = 28;
/// Colour channels of an image (red, green, blue).
pub const CHANNELS: usize = 3;
/// Values per image: `CHANNELS * SIDE * SIDE`.
pub const DIM: usize = CHANNELS * SIDE * SIDE;
/// Side of each modality's background texture in pixels.
pub const BACKGROUND: usize = 256;
/// MNIST bytes above this value are the digit.
pub const INK_THRESHOLD: u8 = 128;

/// How to build PolyMNIST.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolyMnistConfig {
    /// Seed of the pairing and of the crops.
    pub seed: u64,
    /// Keep only the first this many MNIST training images (and tuples).
    pub train_limit: Option<usize>,
    /// Keep only the first this many MNIST test images (and tuples).
    pub test_limit: Option<usize>,
}

/// Where one tuple's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TupleSource {
    /// Per modality, the index of the MNIST image of the split it shows.
    pub images: [usize; MODALITIES],
    /// Per modality, the crop's top-left corner `(x, y)` in the background.
    pub crops: [(usize, usize); MODALITIES],
}

/// One split: the data set and the provenance of each tuple.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyMnistSplit {
    /// Columns `m0`..`m4` and [`LABEL`].
    pub data: MultimodalDataset,
    /// Per tuple, its MNIST images and crops.
    pub sources: Vec<TupleSource>,
}

/// The training and test splits.
#[derive(Debug, Clone, PartialEq)]
pub struct PolyMnist {
    /// Tuples from the MNIST training images.
    pub train: PolyMnistSplit,
    /// Tuples from the MNIST test images.
    pub test: PolyMnistSplit,
}

/// A background texture: `CHANNELS` planes of `side x side` values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Background {
    /// Pixels per side.
    pub side: usize,
    /// Channel-planar values: `c * side * side + y * side + x`.
    pub pixels: Vec<f32>,
}

impl Background {
    /// Channel `c` of pixel `(x, y)`.
    pub fn at(&self, c: usize, x: usize, y: usize) -> f32 {
        self.pixels[c * self.side * self.side + y * self.side + x]
    }
}

/// A 64-bit mix (splitmix64's finaliser): the deterministic source of the textures' grain.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A value in `[0, 1)` fixed by the lattice point `(x, y)` and `salt`.
fn lattice(x: i64, y: i64, salt: u64) -> f32 {
    let h = mix((x as u64).wrapping_mul(0x1f1f_1f1f) ^ mix((y as u64) ^ salt.rotate_left(17)));
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise with cells of `cell` pixels: lattice values blended with a smoothstep.
fn value_noise(x: f32, y: f32, cell: f32, salt: u64) -> f32 {
    let (gx, gy) = (x / cell, y / cell);
    let (x0, y0) = (gx.floor(), gy.floor());
    let smooth = |t: f32| t * t * (3.0 - 2.0 * t);
    let (tx, ty) = (smooth(gx - x0), smooth(gy - y0));
    let (ix, iy) = (x0 as i64, y0 as i64);
    let top = lattice(ix, iy, salt) * (1.0 - tx) + lattice(ix + 1, iy, salt) * tx;
    let bottom = lattice(ix, iy + 1, salt) * (1.0 - tx) + lattice(ix + 1, iy + 1, salt) * tx;
    top * (1.0 - ty) + bottom * ty
}

/// The texture pattern of modality `m` at `(x, y)`, in `[0, 1]`.
fn pattern(m: usize, x: f32, y: f32) -> f32 {
    use std::f32::consts::TAU;
    let v = match m {
        // A slow plaid: periods of 64 and 48 pixels.
        0 => 0.5 + 0.25 * (TAU * x / 64.0).sin() + 0.25 * (TAU * y / 48.0).sin(),
        // Fine diagonal stripes, 8 pixels apart, slightly wavy.
        1 => 0.5 + 0.5 * (TAU * (x + y + 3.0 * (TAU * y / 90.0).sin()) / 8.0).sin(),
        // Concentric rings 18 pixels apart around an off-centre point.
        2 => {
            let r = ((x - 100.0).powi(2) + (y - 140.0).powi(2)).sqrt();
            0.5 + 0.5 * (TAU * r / 18.0).sin()
        }
        // Clouds: two octaves of value noise (cells of 24 and 9 pixels).
        3 => 0.65 * value_noise(x, y, 24.0, 3) + 0.35 * value_noise(x, y, 9.0, 33),
        // A fine 3-pixel checker with per-pixel grain.
        _ => {
            let checker = if ((x as i64 / 3) + (y as i64 / 3)) % 2 == 0 {
                0.75
            } else {
                0.25
            };
            0.6 * checker + 0.4 * lattice(x as i64, y as i64, 4)
        }
    };
    v.clamp(0.0, 1.0)
}

/// The two colours (RGB) between which modality `m`'s pattern runs.
const PALETTES: [([f32; 3], [f32; 3]); MODALITIES] = [
    ([0.55, 0.05, 0.02], [1.0, 0.78, 0.2]), // dark red to amber
    ([0.02, 0.08, 0.4], [0.35, 0.85, 1.0]), // navy to cyan
    ([0.02, 0.3, 0.05], [0.75, 1.0, 0.3]),  // dark green to lime
    ([0.22, 0.0, 0.32], [1.0, 0.55, 0.92]), // purple to pink
    ([0.3, 0.2, 0.08], [0.95, 0.88, 0.72]), // brown to beige
];

/// The background texture of modality `m` (`0..5`), [`BACKGROUND`] pixels a side.
///
/// # Errors
/// [`DataError::Config`] for `m >= 5`.
pub fn background(m: usize) -> Result<Background> {
    let (low, high) = *PALETTES.get(m).ok_or_else(|| {
        DataError::Config(format!(
            "PolyMNIST has modalities 0 to {}, not {m}",
            MODALITIES - 1
        ))
    })?;
    let side = BACKGROUND;
    let plane = side * side;
    let mut pixels = vec![0.0; CHANNELS * plane];
    for y in 0..side {
        for x in 0..side {
            let t = pattern(m, x as f32, y as f32);
            for c in 0..CHANNELS {
                pixels[c * plane + y * side + x] = low[c] + t * (high[c] - low[c]);
            }
        }
    }
    Ok(Background { side, pixels })
}

/// Writes into `out` ([`DIM`] values) the `SIDE x SIDE` crop of `bg` at `(x, y)`, with the
/// colours inverted (`1 - c`) where `digit` (`SIDE * SIDE` bytes) is above
/// [`INK_THRESHOLD`].
///
/// # Errors
/// [`DataError::Dataset`] if the crop leaves the background or the lengths are wrong.
pub fn compose(
    bg: &Background,
    digit: &[u8],
    (x, y): (usize, usize),
    out: &mut [f32],
) -> Result<()> {
    if digit.len() != SIDE * SIDE
        || out.len() != DIM
        || bg.pixels.len() != CHANNELS * bg.side * bg.side
    {
        return Err(DataError::Dataset(format!(
            "a PolyMNIST image needs a {SIDE}x{SIDE} digit and {DIM} outputs, got {} and {}",
            digit.len(),
            out.len()
        )));
    }
    if x + SIDE > bg.side || y + SIDE > bg.side {
        return Err(DataError::Dataset(format!(
            "crop at ({x}, {y}) leaves the {0}x{0} background",
            bg.side
        )));
    }
    let plane = SIDE * SIDE;
    for c in 0..CHANNELS {
        for r in 0..SIDE {
            for col in 0..SIDE {
                let v = bg.at(c, x + col, y + r);
                let ink = digit[r * SIDE + col] > INK_THRESHOLD;
                out[c * plane + r * SIDE + col] = if ink { 1.0 - v } else { v };
            }
        }
    }
    Ok(())
}

/// Pairs images by class: for tuple `i` (class `labels[i]`) and modality `m`, the index of the
/// image it shows. For each class and modality, in that order, a permutation of the class's
/// images (in data order) is drawn from one generator seeded with `seed`; the `j`-th tuple of
/// a class takes the `j`-th image of the permutation. Returns one row of `modalities` indices
/// per tuple.
pub fn pair_by_class(labels: &[u8], modalities: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (i, &l) in labels.iter().enumerate() {
        by_class[usize::from(l)].push(i);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // perms[class][m]: the class's images in modality m's order.
    let perms: Vec<Vec<Vec<usize>>> = by_class
        .iter()
        .map(|members| {
            (0..modalities)
                .map(|_| {
                    let mut p = members.clone();
                    p.shuffle(&mut rng);
                    p
                })
                .collect()
        })
        .collect();
    let mut seen = [0usize; 256];
    labels
        .iter()
        .map(|&l| {
            let c = usize::from(l);
            let j = seen[c];
            seen[c] += 1;
            (0..modalities).map(|m| perms[c][m][j]).collect()
        })
        .collect()
}

/// MNIST bytes of image `i` from its `[0, 1]` intensities.
fn digit_bytes(mnist: &Mnist, i: usize) -> Result<Vec<u8>> {
    let img = mnist.image(i).ok_or_else(|| {
        DataError::Dataset(format!("MNIST has no image {i} ({} images)", mnist.len()))
    })?;
    Ok(img
        .iter()
        .map(|&v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect())
}

impl PolyMnist {
    /// Loads MNIST from `root/mnist` and builds both splits.
    pub fn load(root: &Path, config: &PolyMnistConfig) -> Result<Self> {
        let mnist = root.join("mnist");
        let train = Mnist::load(&mnist, Split::Train, config.train_limit)?;
        let test = Mnist::load(&mnist, Split::Test, config.test_limit)?;
        Self::from_parts(&train, &test, config.seed)
    }

    /// Builds both splits from already loaded MNIST splits (of 28 x 28 images).
    pub fn from_parts(train: &Mnist, test: &Mnist, seed: u64) -> Result<Self> {
        let backgrounds = (0..MODALITIES)
            .map(background)
            .collect::<Result<Vec<_>>>()?;
        Ok(PolyMnist {
            train: build_split(train, &backgrounds, seed)?,
            test: build_split(test, &backgrounds, seed.wrapping_add(1))?,
        })
    }
}

/// One split: pairing with `seed`, then crops from a generator seeded with the pairing's next
/// draw, tuple after tuple, modality after modality.
fn build_split(mnist: &Mnist, backgrounds: &[Background], seed: u64) -> Result<PolyMnistSplit> {
    if (mnist.rows, mnist.cols) != (SIDE, SIDE) {
        return Err(DataError::Dataset(format!(
            "PolyMNIST needs {SIDE}x{SIDE} digits, MNIST has {}x{}",
            mnist.cols, mnist.rows
        )));
    }
    let n = mnist.len();
    let pairs = pair_by_class(&mnist.labels, MODALITIES, seed);
    let mut crop_rng = ChaCha8Rng::seed_from_u64(mix(seed ^ 0x706f_6c79));
    let mut columns: Vec<Vec<f32>> = (0..MODALITIES).map(|_| vec![0.0; n * DIM]).collect();
    let mut sources = Vec::with_capacity(n);
    for (t, row) in pairs.iter().enumerate() {
        let mut src = TupleSource {
            images: [0; MODALITIES],
            crops: [(0, 0); MODALITIES],
        };
        for (m, &img) in row.iter().enumerate() {
            let bg = &backgrounds[m];
            let x = crop_rng.gen_range(0..=bg.side - SIDE);
            let y = crop_rng.gen_range(0..=bg.side - SIDE);
            let digit = digit_bytes(mnist, img)?;
            compose(bg, &digit, (x, y), &mut columns[m][t * DIM..(t + 1) * DIM])?;
            src.images[m] = img;
            src.crops[m] = (x, y);
        }
        sources.push(src);
    }
    let mut builder = DatasetBuilder::new();
    for (name, values) in NAMES.iter().zip(columns) {
        builder = builder.column(name, DIM, values);
    }
    Ok(PolyMnistSplit {
        data: builder.labels(LABEL, &mnist.labels).build()?,
        sources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundled(limit: usize) -> (Mnist, Mnist) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/mnist");
        (
            Mnist::load(&dir, Split::Train, Some(limit)).unwrap(),
            Mnist::load(&dir, Split::Test, Some(limit / 2)).unwrap(),
        )
    }

    #[test]
    fn deterministic_in_the_seed() {
        let (train, test) = bundled(300);
        let a = PolyMnist::from_parts(&train, &test, 7).unwrap();
        let b = PolyMnist::from_parts(&train, &test, 7).unwrap();
        assert_eq!(a, b);
        assert_eq!((a.train.data.len(), a.test.data.len()), (300, 150));
        assert_eq!(
            a.train.data.names(),
            vec!["m0", "m1", "m2", "m3", "m4", LABEL]
        );
        for name in NAMES {
            assert_eq!(a.train.data.column(name).unwrap().dim(), DIM);
        }
        let c = PolyMnist::from_parts(&train, &test, 8).unwrap();
        assert_ne!(c.train.data, a.train.data);
        assert_ne!(c.train.sources, a.train.sources);
        // The splits are drawn with different seeds.
        assert_ne!(a.train.sources[0].crops, a.test.sources[0].crops);
    }

    #[test]
    fn tuples_share_the_class_but_not_the_image() {
        let (train, test) = bundled(2000);
        let p = PolyMnist::from_parts(&train, &test, 1).unwrap();
        let labels = p.train.data.column(LABEL).unwrap().values();
        let mut same_pairs = 0usize;
        let mut pairs = 0usize;
        for (t, src) in p.train.sources.iter().enumerate() {
            for m in 0..MODALITIES {
                assert_eq!(f32::from(train.labels[src.images[m]]), labels[t]);
                assert_eq!(train.labels[t], train.labels[src.images[m]]);
                for k in m + 1..MODALITIES {
                    pairs += 1;
                    same_pairs += usize::from(src.images[m] == src.images[k]);
                }
            }
        }
        // About 200 images per class: a pair of modalities shows the same image about once
        // in 200 tuples.
        assert!(
            (same_pairs as f64) < 0.02 * pairs as f64,
            "{same_pairs} of {pairs}"
        );
        // Every image appears exactly once per modality.
        for m in 0..MODALITIES {
            let mut used: Vec<usize> = p.train.sources.iter().map(|s| s.images[m]).collect();
            used.sort_unstable();
            assert_eq!(used, (0..2000).collect::<Vec<_>>(), "modality {m}");
        }
        // The modalities' permutations are independent, not shared.
        let differs = p
            .train
            .sources
            .iter()
            .filter(|s| s.images[0] != s.images[1])
            .count();
        assert!(differs > 1900, "{differs}");
    }

    #[test]
    fn digit_pixels_invert_the_cropped_background() {
        let (train, test) = bundled(100);
        let p = PolyMnist::from_parts(&train, &test, 3).unwrap();
        let bgs: Vec<Background> = (0..MODALITIES).map(|m| background(m).unwrap()).collect();
        let (mut ink, mut paper) = (0usize, 0usize);
        for (t, src) in p.train.sources.iter().enumerate() {
            for (m, name) in NAMES.iter().enumerate() {
                let img = p.train.data.column(name).unwrap().sample(t).unwrap();
                let digit = digit_bytes(&train, src.images[m]).unwrap();
                let (x, y) = src.crops[m];
                assert!(x + SIDE <= BACKGROUND && y + SIDE <= BACKGROUND);
                for c in 0..CHANNELS {
                    for r in 0..SIDE {
                        for col in 0..SIDE {
                            let bg = bgs[m].at(c, x + col, y + r);
                            let v = img[c * SIDE * SIDE + r * SIDE + col];
                            if digit[r * SIDE + col] > INK_THRESHOLD {
                                assert_eq!(v, 1.0 - bg);
                                ink += 1;
                            } else {
                                assert_eq!(v, bg);
                                paper += 1;
                            }
                        }
                    }
                }
            }
        }
        assert!(ink > 1000 && paper > 3 * ink, "{ink} ink, {paper} paper");
        for name in NAMES {
            let col = p.train.data.column(name).unwrap();
            assert!(
                col.values().iter().all(|v| (0.0..=1.0).contains(v)),
                "{name}"
            );
        }
    }

    #[test]
    fn crops_differ_between_images() {
        let (train, test) = bundled(200);
        let p = PolyMnist::from_parts(&train, &test, 5).unwrap();
        for (m, name) in NAMES.iter().enumerate() {
            let crops: std::collections::BTreeSet<(usize, usize)> =
                p.train.sources.iter().map(|s| s.crops[m]).collect();
            assert!(
                crops.len() > 190,
                "modality {m}: {} distinct crops",
                crops.len()
            );
            // Two images with different crops differ in their background pixels.
            let col = p.train.data.column(name).unwrap();
            let (a, b) = (col.sample(0).unwrap(), col.sample(1).unwrap());
            let differing = a.iter().zip(b).filter(|(x, y)| x != y).count();
            assert!(differing > DIM / 4, "modality {m}: {differing}");
        }
    }

    #[test]
    fn backgrounds_differ_in_colour_and_frequency() {
        let bgs: Vec<Background> = (0..MODALITIES).map(|m| background(m).unwrap()).collect();
        let plane = BACKGROUND * BACKGROUND;
        let mean = |b: &Background, c: usize| {
            b.pixels[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32
        };
        // Mean colours at least 0.15 apart (Euclidean, RGB in [0, 1]).
        for i in 0..MODALITIES {
            for j in i + 1..MODALITIES {
                let d: f32 = (0..CHANNELS)
                    .map(|c| (mean(&bgs[i], c) - mean(&bgs[j], c)).powi(2))
                    .sum::<f32>()
                    .sqrt();
                assert!(d > 0.15, "backgrounds {i} and {j}: {d}");
            }
        }
        // Mean absolute difference of horizontal neighbours (luminance): a measure of the
        // texture's frequency; the slow plaid is far smoother than the stripes and the grain.
        let roughness = |b: &Background| {
            let lum = |x: usize, y: usize| (0..CHANNELS).map(|c| b.at(c, x, y)).sum::<f32>();
            let mut s = 0.0;
            for y in 0..BACKGROUND {
                for x in 1..BACKGROUND {
                    s += (lum(x, y) - lum(x - 1, y)).abs();
                }
            }
            s / (BACKGROUND * (BACKGROUND - 1)) as f32
        };
        let r: Vec<f32> = bgs.iter().map(roughness).collect();
        assert!(r[0] * 4.0 < r[1] && r[0] * 4.0 < r[4], "{r:?}");
        assert!(r[3] < r[1] && r[2] < r[1], "{r:?}");
        assert!(background(5).is_err());
    }

    #[test]
    fn bad_parts_are_errors() {
        let bg = background(0).unwrap();
        let mut out = vec![0.0; DIM];
        assert!(compose(&bg, &[0; 10], (0, 0), &mut out).is_err());
        assert!(compose(&bg, &[0; SIDE * SIDE], (BACKGROUND - 27, 0), &mut out).is_err());
        let small = Mnist {
            images: vec![0.0; 4],
            labels: vec![1],
            rows: 2,
            cols: 2,
        };
        let e = PolyMnist::from_parts(&small, &small, 0).unwrap_err();
        assert!(e.to_string().contains("28x28"), "{e}");
    }

    #[test]
    #[ignore = "needs MVAE_DATA"]
    fn real_polymnist() {
        let root = std::path::PathBuf::from(std::env::var("MVAE_DATA").expect("MVAE_DATA"));
        let p = PolyMnist::load(&root, &PolyMnistConfig::default()).unwrap();
        assert_eq!((p.train.data.len(), p.test.data.len()), (60_000, 10_000));
    }
}
