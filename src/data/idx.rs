//! MNIST in IDX format (gzip or raw): `u32` big-endian magic, `u32` dimensions, then bytes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::DataError;

/// The largest payload accepted (1 GiB): a header that claims more is refused before reading.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// One IDX file of unsigned bytes: its dimensions and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimension sizes, outermost first.
    pub dims: Vec<usize>,
    /// `product(dims)` bytes.
    pub data: Vec<u8>,
}

/// Reads an IDX file of `u8` with the given rank, gzip-compressed or not.
///
/// # Errors
/// [`DataError::Format`] for a wrong magic, rank or dtype, a size over [`MAX_PAYLOAD`], or a
/// payload shorter or longer than the header says.
pub fn read(path: &Path, rank: usize) -> Result<Idx, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let fmt = |reason: String| DataError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut raw = std::io::BufReader::new(file);
    let mut magic2 = [0u8; 2];
    let mut head = Vec::new();
    (&mut raw).take(2).read_to_end(&mut head).map_err(io)?;
    magic2[..head.len()].copy_from_slice(&head);
    let reader: Box<dyn Read> = if head == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(
            std::io::Cursor::new(head).chain(raw),
        ))
    } else {
        Box::new(std::io::Cursor::new(head).chain(raw))
    };
    let mut reader = reader;
    let mut header = [0u8; 4];
    reader
        .read_exact(&mut header)
        .map_err(|e| fmt(format!("cannot read the header ({e})")))?;
    if header[0] != 0 || header[1] != 0 {
        return Err(fmt(format!(
            "bad magic {:02x}{:02x}{:02x}{:02x}, expected 0000 08 0{rank}",
            header[0], header[1], header[2], header[3]
        )));
    }
    if header[2] != 0x08 {
        return Err(fmt(format!(
            "element type 0x{:02x} is not u8 (0x08)",
            header[2]
        )));
    }
    if header[3] as usize != rank {
        return Err(fmt(format!("rank {} but expected {rank}", header[3])));
    }
    let mut dims = Vec::with_capacity(rank);
    for _ in 0..rank {
        let mut d = [0u8; 4];
        reader
            .read_exact(&mut d)
            .map_err(|e| fmt(format!("truncated header ({e})")))?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_PAYLOAD)
        .ok_or_else(|| {
            fmt(format!(
                "header claims {dims:?} elements, over the limit of {MAX_PAYLOAD} bytes"
            ))
        })?;
    let mut data = Vec::new();
    reader
        .take(len as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| fmt(format!("corrupt data ({e})")))?;
    if data.len() != len {
        let got = if data.len() > len {
            "more".to_string()
        } else {
            data.len().to_string()
        };
        return Err(fmt(format!(
            "header says {dims:?} = {len} bytes but {got} bytes follow"
        )));
    }
    Ok(Idx { dims, data })
}

/// A split of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// 60,000 training images.
    Train,
    /// 10,000 test images.
    Test,
}

/// MNIST images (intensities in `[0, 1]`) and labels.
#[derive(Clone, Debug)]
pub struct Mnist {
    /// `n * 784` intensities, row-major.
    pub images: Vec<f32>,
    /// `n` labels 0-9.
    pub labels: Vec<u8>,
}

impl Mnist {
    /// Reads a split from `dir` (holding `train-images-idx3-ubyte.gz` etc.), keeping at most
    /// `limit` samples.
    ///
    /// # Errors
    /// A missing or malformed file, counts that differ, images not 28 x 28, labels over 9.
    pub fn load(dir: &Path, split: Split, limit: Option<usize>) -> Result<Self, DataError> {
        let prefix = match split {
            Split::Train => "train",
            Split::Test => "t10k",
        };
        let find = |stem: &str| -> PathBuf {
            let gz = dir.join(format!("{prefix}-{stem}.gz"));
            if gz.exists() {
                gz
            } else {
                dir.join(format!("{prefix}-{stem}"))
            }
        };
        let ip = find("images-idx3-ubyte");
        let lp = find("labels-idx1-ubyte");
        let images = read(&ip, 3)?;
        let labels = read(&lp, 1)?;
        if images.dims[1..] != [28, 28] {
            return Err(DataError::Format {
                path: ip,
                reason: format!("images are {:?}, expected 28 x 28", &images.dims[1..]),
            });
        }
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::Invalid {
                what: format!("{} and {}", ip.display(), lp.display()),
                reason: format!("{} images but {} labels", images.dims[0], labels.dims[0]),
            });
        }
        if let Some(i) = labels.data.iter().position(|&l| l > 9) {
            return Err(DataError::Format {
                path: lp,
                reason: format!("label {i} is {}, expected 0-9", labels.data[i]),
            });
        }
        let n = limit.map_or(images.dims[0], |l| l.min(images.dims[0]));
        Ok(Self {
            images: images.data[..n * 784]
                .iter()
                .map(|&p| f32::from(p) / 255.0)
                .collect(),
            labels: labels.data[..n].to_vec(),
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
}
