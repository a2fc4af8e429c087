//! IDX (MNIST) files: a validating reader for u8 images and labels, gzip or raw,
//! a gzip writer, and the [`Mnist`] loader.
//!
//! The reader checks the magic number (dtype byte 0x08, rank 3 for images,
//! rank 1 for labels), the dimensions and that the payload is exactly as long
//! as the dimensions say. Implausible sizes are refused before any large
//! allocation: more than [`MAX_PAYLOAD`] bytes, or more than the file could
//! hold (its length if raw, its length times the deflate limit of 1032 if gzip).

use std::io::{BufReader, Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::data::error::{show, DataError, Result};
use crate::data::split::Split;

/// Largest payload the reader accepts, in bytes (2 GiB).
pub const MAX_PAYLOAD: u64 = 1 << 31;
/// Largest expansion deflate can achieve, used to bound what a gzip file can hold.
const MAX_DEFLATE_RATIO: u64 = 1032;
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// A stack of u8 images read from an IDX file, row-major, image after image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixel intensities.
    pub pixels: Vec<u8>,
}

/// Reads a rank-3 u8 IDX file of images (gzip or raw, told apart by magic bytes).
pub fn read_images(path: &Path) -> Result<IdxImages> {
    let (dims, pixels) = read_path(path, 3)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Reads a rank-1 u8 IDX file of labels (gzip or raw).
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    read_path(path, 1).map(|(_, labels)| labels)
}

/// Parses IDX images from bytes in memory; `name` is used in error messages.
pub fn images_from_bytes(name: &str, bytes: &[u8]) -> Result<IdxImages> {
    let (dims, pixels) = read_source(name, bytes, bytes.len() as u64, 3)?;
    Ok(IdxImages {
        count: dims[0],
        rows: dims[1],
        cols: dims[2],
        pixels,
    })
}

/// Parses IDX labels from bytes in memory; `name` is used in error messages.
pub fn labels_from_bytes(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    read_source(name, bytes, bytes.len() as u64, 1).map(|(_, l)| l)
}

/// Writes a u8 IDX file, gzip-compressed, atomically. `dims` has rank 1 to 255,
/// each at most `u32::MAX`, and their product must equal `data.len()`.
pub fn write_idx_gz(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let file = show(path);
    let bad = |reason: String| DataError::Idx {
        file: file.clone(),
        reason,
    };
    if dims.is_empty() || dims.len() > 255 {
        return Err(bad(format!("rank {} is not between 1 and 255", dims.len())));
    }
    let mut product: usize = 1;
    for &d in dims {
        if d > u32::MAX as usize {
            return Err(bad(format!("dimension {d} does not fit in u32")));
        }
        product = product
            .checked_mul(d)
            .ok_or_else(|| bad("dimensions overflow".into()))?;
    }
    if product != data.len() {
        return Err(bad(format!(
            "dimensions {dims:?} hold {product} bytes but {} were given",
            data.len()
        )));
    }
    let mut header = Vec::with_capacity(4 + 4 * dims.len());
    header.extend_from_slice(&[0, 0, 0x08, dims.len() as u8]);
    for &d in dims {
        header.extend_from_slice(&(d as u32).to_be_bytes());
    }
    crate::data::atomic::write_atomically(path, |tmp| {
        let f = std::fs::File::create(tmp).map_err(|e| DataError::io(tmp, e))?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(f),
            flate2::Compression::default(),
        );
        gz.write_all(&header)
            .and_then(|()| gz.write_all(data))
            .and_then(|()| gz.finish()?.flush())
            .map_err(|e| DataError::io(tmp, e))
    })
}

fn read_path(path: &Path, rank: u8) -> Result<(Vec<usize>, Vec<u8>)> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    read_source(&show(path), BufReader::with_capacity(1 << 16, f), len, rank)
}

/// Reads an IDX stream whose source is `src_len` bytes long (compressed length if gzip).
fn read_source<R: Read>(
    file: &str,
    mut src: R,
    src_len: u64,
    rank: u8,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |reason: String| DataError::Idx {
        file: file.to_string(),
        reason,
    };
    let mut first = [0u8; 2];
    let got = read_full(&mut src, &mut first).map_err(|e| bad(format!("read failed: {e}")))?;
    let head = std::io::Cursor::new(first[..got].to_vec());
    let gz = got == 2 && first == [0x1f, 0x8b];
    let chained = head.chain(src);
    if gz {
        let capacity = src_len.saturating_mul(MAX_DEFLATE_RATIO);
        read_body(file, MultiGzDecoder::new(chained), capacity, true, rank)
    } else {
        read_body(file, chained, src_len, false, rank)
    }
}

fn read_body<R: Read>(
    file: &str,
    mut r: R,
    capacity: u64,
    gz: bool,
    rank: u8,
) -> Result<(Vec<usize>, Vec<u8>)> {
    let bad = |reason: String| DataError::Idx {
        file: file.to_string(),
        reason,
    };
    let stream_err = |e: std::io::Error| {
        if gz {
            bad(format!("gzip stream is corrupt or truncated: {e}"))
        } else {
            bad(format!("read failed: {e}"))
        }
    };
    let kind = if rank == 3 { "images" } else { "labels" };
    let expected_magic = if rank == 3 {
        IMAGES_MAGIC
    } else {
        LABELS_MAGIC
    };
    let mut magic = [0u8; 4];
    if read_full(&mut r, &mut magic).map_err(stream_err)? < 4 {
        return Err(bad("file is too short for an IDX header".into()));
    }
    let m = u32::from_be_bytes(magic);
    if magic[0] != 0 || magic[1] != 0 {
        return Err(bad(format!(
            "magic 0x{m:08x} is not an IDX magic number (expected 0x{expected_magic:08x} for {kind})"
        )));
    }
    if magic[2] != 0x08 {
        return Err(bad(format!(
            "data type byte 0x{:02x} is not u8 (0x08)",
            magic[2]
        )));
    }
    if magic[3] != rank {
        return Err(bad(format!(
            "rank {} in magic 0x{m:08x} but {kind} files have rank {rank}",
            magic[3]
        )));
    }
    let mut dims = Vec::with_capacity(rank as usize);
    for i in 0..rank {
        let mut d = [0u8; 4];
        if read_full(&mut r, &mut d).map_err(stream_err)? < 4 {
            return Err(bad(format!("header ends before dimension {i}")));
        }
        dims.push(u32::from_be_bytes(d) as u64);
    }
    if rank == 3 && (dims[1] == 0 || dims[2] == 0) {
        return Err(bad(format!(
            "images of {}x{} pixels are empty",
            dims[1], dims[2]
        )));
    }
    let payload = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
    let header_len = 4 + 4 * rank as u64;
    let describe = || {
        if rank == 3 {
            format!("{} images of {}x{}", dims[0], dims[1], dims[2])
        } else {
            format!("{} labels", dims[0])
        }
    };
    let payload = match payload {
        Some(p) if p <= MAX_PAYLOAD => p,
        _ => {
            return Err(bad(format!(
                "header says {} which is more than the {} byte limit",
                describe(),
                MAX_PAYLOAD
            )))
        }
    };
    let room = capacity.saturating_sub(if gz { 0 } else { header_len });
    if payload > room {
        return Err(bad(if gz {
            format!(
                "header says {} ({payload} bytes) but a gzip file of this size holds at most {room} bytes",
                describe()
            )
        } else {
            format!("header says {} but only {room} bytes follow", describe())
        }));
    }
    let mut data = Vec::with_capacity(payload as usize);
    (&mut r)
        .take(payload + 1)
        .read_to_end(&mut data)
        .map_err(stream_err)?;
    if (data.len() as u64) < payload {
        return Err(bad(format!(
            "header says {} but only {} bytes follow",
            describe(),
            data.len()
        )));
    }
    if data.len() as u64 > payload {
        return Err(bad(format!(
            "header says {} ({payload} bytes) but more bytes follow",
            describe()
        )));
    }
    Ok((dims.into_iter().map(|d| d as usize).collect(), data))
}

/// Reads until `buf` is full or the stream ends; returns how many bytes were read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// MNIST images as f32 intensities in `[0, 1]` with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    /// `len() * rows * cols` intensities, row-major, image after image.
    pub images: Vec<f32>,
    /// Digit of each image, 0 to 9.
    pub labels: Vec<u8>,
    /// Rows per image (28).
    pub rows: usize,
    /// Columns per image (28).
    pub cols: usize,
}

impl Mnist {
    /// The images and labels as a two-modality data set: columns `image` (784 intensities in
    /// [0, 1]) and `label` (the digit), the names of [`crate::ModelConfig::mnist`].
    pub fn into_dataset(self) -> Result<crate::data::MultimodalDataset> {
        let dim = self.rows * self.cols;
        crate::data::DatasetBuilder::new()
            .column("image", dim, self.images)
            .labels("label", &self.labels)
            .build()
    }

    /// Loads a split from `dir` holding the four standard files
    /// (`train-images-idx3-ubyte.gz` ... `t10k-labels-idx1-ubyte.gz`; the same
    /// names without `.gz` are used when the gzip files are absent), keeping
    /// the first `limit` samples if given. Checks that images and labels
    /// agree in count and that labels are digits.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let pick = |stem: String| {
            let gz = dir.join(format!("{stem}.gz"));
            if gz.exists() {
                gz
            } else {
                let raw = dir.join(&stem);
                if raw.exists() {
                    raw
                } else {
                    gz
                }
            }
        };
        let images_path = pick(format!("{prefix}-images-idx3-ubyte"));
        let labels_path = pick(format!("{prefix}-labels-idx1-ubyte"));
        let images = read_images(&images_path)?;
        let labels = read_labels(&labels_path)?;
        if images.count != labels.len() {
            return Err(DataError::Idx {
                file: show(&labels_path),
                reason: format!(
                    "holds {} labels but {} holds {} images",
                    labels.len(),
                    show(&images_path),
                    images.count
                ),
            });
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l > 9) {
            return Err(DataError::Idx {
                file: show(&labels_path),
                reason: format!("label {l} at index {i} is not a digit 0-9"),
            });
        }
        let n = limit.map_or(images.count, |l| l.min(images.count));
        let per = images.rows * images.cols;
        let images_f = images.pixels[..n * per]
            .iter()
            .map(|&p| f32::from(p) / 255.0)
            .collect();
        let mut labels = labels;
        labels.truncate(n);
        Ok(Mnist {
            images: images_f,
            labels,
            rows: images.rows,
            cols: images.cols,
        })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Intensities of image `i`, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[f32]> {
        let per = self.rows.checked_mul(self.cols)?;
        let start = i.checked_mul(per)?;
        self.images.get(start..start.checked_add(per)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw_idx(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = magic.to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn reason(e: DataError) -> String {
        match e {
            DataError::Idx { reason, .. } => reason,
            other => panic!("not an idx error: {other}"),
        }
    }

    #[test]
    fn round_trip_gz_and_raw() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("img.gz");
        let pixels: Vec<u8> = (0..2 * 3 * 4).map(|i| i as u8).collect();
        write_idx_gz(&p, &[2, 3, 4], &pixels).unwrap();
        let got = read_images(&p).unwrap();
        assert_eq!((got.count, got.rows, got.cols), (2, 3, 4));
        assert_eq!(got.pixels, pixels);
        let raw = dir.path().join("img");
        std::fs::write(&raw, raw_idx([0, 0, 8, 3], &[2, 3, 4], &pixels)).unwrap();
        assert_eq!(read_images(&raw).unwrap(), got);
    }

    #[test]
    fn truncated_is_error_with_counts() {
        let b = raw_idx([0, 0, 8, 3], &[10000, 28, 28], &[0u8; 1024]);
        let m = images_from_bytes("t10k-images-idx3-ubyte", &b)
            .unwrap_err()
            .to_string();
        assert_eq!(
            m,
            "t10k-images-idx3-ubyte: header says 10000 images of 28x28 but only 1024 bytes follow"
        );
        let g = gz(&raw_idx([0, 0, 8, 1], &[5], &[1, 2, 3]));
        let r = reason(labels_from_bytes("l.gz", &g).unwrap_err());
        assert!(r.contains("only 3 bytes follow"), "{r}");
        let g = gz(&raw_idx([0, 0, 8, 1], &[5], &[1, 2, 3, 4, 5]));
        let r = reason(labels_from_bytes("l.gz", &g[..g.len() - 10]).unwrap_err());
        assert!(r.contains("gzip"), "{r}");
    }

    #[test]
    fn trailing_bytes_are_error() {
        let b = raw_idx([0, 0, 8, 1], &[2], &[1, 2, 3]);
        assert!(reason(labels_from_bytes("l", &b).unwrap_err()).contains("more bytes follow"));
    }

    #[test]
    fn wrong_magic_dtype_rank() {
        let r = reason(labels_from_bytes("l", &raw_idx([1, 2, 8, 1], &[1], &[0])).unwrap_err());
        assert!(r.contains("not an IDX magic"), "{r}");
        let r = reason(labels_from_bytes("l", &raw_idx([0, 0, 9, 1], &[1], &[0])).unwrap_err());
        assert!(r.contains("not u8"), "{r}");
        let r = reason(images_from_bytes("i", &raw_idx([0, 0, 8, 1], &[1], &[0])).unwrap_err());
        assert!(r.contains("rank 1"), "{r}");
        let r = reason(images_from_bytes("i", &[0, 0]).unwrap_err());
        assert!(r.contains("too short"), "{r}");
        let r =
            reason(images_from_bytes("i", &raw_idx([0, 0, 8, 3], &[1, 0, 3], &[])).unwrap_err());
        assert!(r.contains("empty"), "{r}");
    }

    #[test]
    fn huge_claims_are_refused_before_allocating() {
        let b = raw_idx([0, 0, 8, 3], &[u32::MAX, u32::MAX, u32::MAX], &[]);
        let r = reason(images_from_bytes("i", &b).unwrap_err());
        assert!(r.contains("byte limit"), "{r}");
        // 1 GiB claimed inside a tiny gzip file.
        let g = gz(&raw_idx([0, 0, 8, 3], &[1 << 20, 32, 32], &[0; 100]));
        let r = reason(images_from_bytes("i.gz", &g).unwrap_err());
        assert!(r.contains("holds at most"), "{r}");
        // 1 GiB claimed in a small raw file.
        let b = raw_idx([0, 0, 8, 3], &[1 << 20, 32, 32], &[0; 100]);
        let r = reason(images_from_bytes("i", &b).unwrap_err());
        assert!(r.contains("only 100 bytes follow"), "{r}");
    }

    #[test]
    fn writer_checks_shape() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gz");
        assert!(write_idx_gz(&p, &[2, 2], &[0; 3]).is_err());
        assert!(write_idx_gz(&p, &[], &[]).is_err());
        assert!(!p.exists());
    }

    fn write_mnist(dir: &Path, prefix: &str, labels: &[u8], n_images: usize) {
        write_idx_gz(
            &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
            &[n_images, 2, 2],
            &vec![255; n_images * 4],
        )
        .unwrap();
        write_idx_gz(
            &dir.join(format!("{prefix}-labels-idx1-ubyte.gz")),
            &[labels.len()],
            labels,
        )
        .unwrap();
    }

    #[test]
    fn mnist_load_checks_counts_and_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_mnist(dir.path(), "train", &[1, 2, 3], 3);
        let m = Mnist::load(dir.path(), Split::Train, Some(2)).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.images, vec![1.0; 8]);
        assert_eq!(m.image(1).unwrap().len(), 4);
        assert!(m.image(2).is_none());
        write_mnist(dir.path(), "t10k", &[1, 2], 3);
        let e = Mnist::load(dir.path(), Split::Test, None).unwrap_err();
        assert!(e.to_string().contains("holds 2 labels"), "{e}");
        write_mnist(dir.path(), "t10k", &[1, 12, 3], 3);
        let e = Mnist::load(dir.path(), Split::Test, None).unwrap_err();
        assert!(e.to_string().contains("label 12 at index 1"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = Mnist::load(empty.path(), Split::Test, None).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }), "{e}");
    }

    #[test]
    #[ignore = "needs MVAE_DATA"]
    fn real_mnist() {
        let root = std::env::var("MVAE_DATA").expect("MVAE_DATA");
        let dir = Path::new(&root).join("mnist");
        let train = Mnist::load(&dir, Split::Train, None).unwrap();
        let test = Mnist::load(&dir, Split::Test, None).unwrap();
        assert_eq!((train.len(), test.len()), (60000, 10000));
        assert_eq!((train.rows, train.cols), (28, 28));
        assert_eq!(train.labels[..5], [5, 0, 4, 1, 9]);
        assert!(train.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = images_from_bytes("r", &bytes);
            let _ = labels_from_bytes("r", &bytes);
            let _ = labels_from_bytes("r", &gz(&bytes));
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..400, gzip in any::<bool>()) {
            let data: Vec<u8> = (0..3 * 4 * 5).map(|i| i as u8).collect();
            let mut b = raw_idx([0, 0, 8, 3], &[3, 4, 5], &data);
            if gzip { b = gz(&b); }
            let cut = cut.min(b.len());
            let r = images_from_bytes("t", &b[..cut]);
            prop_assert_eq!(r.is_ok(), cut == b.len());
        }
    }
}
