//! Test fixtures written as real files: each tiny valid file next to its
//! corrupted twin, read back through the path-based readers.

use std::path::Path;

use crate::data::error::DataError;
use crate::data::wav::tests::{encode, sine, spec};
use crate::data::{idx, image_folder, tabular, wav};

fn idx_raw(magic: [u8; 4], dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut v = magic.to_vec();
    for d in dims {
        v.extend_from_slice(&d.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn idx_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = d.join("labels-idx1-ubyte.gz");
    idx::write_idx_gz(&good, &[4], &[1, 2, 3, 4]).unwrap();
    assert_eq!(idx::read_labels(&good).unwrap(), vec![1, 2, 3, 4]);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = write(d, "truncated-idx1-ubyte.gz", &bytes[..bytes.len() - 12]);
    let wrong_magic = write(
        d,
        "wrong-magic-idx1-ubyte",
        &idx_raw([0, 0, 8, 3], &[1, 1, 1], &[0]),
    );
    let huge = write(
        d,
        "huge-idx3-ubyte",
        &idx_raw([0, 0, 8, 3], &[60000, 4096, 4096], &[0; 16]),
    );
    let good_raw = write(
        d,
        "images-idx3-ubyte",
        &idx_raw([0, 0, 8, 3], &[1, 2, 2], &[0; 4]),
    );
    assert_eq!(idx::read_images(&good_raw).unwrap().pixels, vec![0; 4]);
    for bad in [&truncated, &wrong_magic] {
        let e = idx::read_labels(bad).unwrap_err();
        assert!(matches!(e, DataError::Idx { .. }), "{e}");
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
    }
    let e = idx::read_images(&huge).unwrap_err().to_string();
    assert!(e.contains("byte limit"), "{e}");
}

#[test]
fn wav_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mono = encode(spec(1, 8000, 16, false), &sine(400.0, 8000, 800, 0.5));
    let good = write(d, "0_fix_0.wav", &mono);
    let truncated = write(d, "0_fix_1.wav", &mono[..mono.len() / 2]);
    let not_wav = write(
        d,
        "0_fix_2.wav",
        b"just some text pretending to be a wav file",
    );
    let cd = write(
        d,
        "cd.wav",
        &encode(spec(1, 44100, 16, false), &sine(400.0, 44100, 4410, 0.5)),
    );
    let stereo = write(
        d,
        "stereo24.wav",
        &encode(spec(2, 8000, 24, false), &sine(400.0, 8000, 800, 0.5)),
    );
    let float = write(
        d,
        "float.wav",
        &encode(spec(1, 8000, 32, true), &sine(400.0, 8000, 800, 0.5)),
    );
    let mut float_bytes = std::fs::read(&float).unwrap();
    let n = float_bytes.len();
    float_bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    let float_nan = write(d, "float-nan.wav", &float_bytes);
    assert_eq!(
        wav::read_wav_at(&good, 8000, wav::Resample::Deny)
            .unwrap()
            .len(),
        800
    );
    assert_eq!(
        wav::read_wav_at(&stereo, 8000, wav::Resample::Deny)
            .unwrap()
            .len(),
        400
    );
    assert_eq!(
        wav::read_wav_at(&float, 8000, wav::Resample::Deny)
            .unwrap()
            .len(),
        800
    );
    assert_eq!(
        wav::read_wav_at(&cd, 8000, wav::Resample::Allow)
            .unwrap()
            .len(),
        800
    );
    assert!(matches!(
        wav::read_wav_at(&cd, 8000, wav::Resample::Deny),
        Err(DataError::SampleRate { .. })
    ));
    for bad in [&truncated, &not_wav, &float_nan] {
        let e = wav::read_wav(bad).unwrap_err();
        assert!(matches!(e, DataError::Wav { .. }), "{e}");
        assert!(e.to_string().starts_with(&bad.display().to_string()), "{e}");
    }
}

#[test]
fn csv_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let blanks = write(d, "blanks.csv", b"x,y,z\n1,,3\nnan,5,\n");
    let t = tabular::read_csv(&blanks).unwrap();
    assert_eq!(t.present.iter().filter(|p| !**p).count(), 3);
    let ragged = write(d, "ragged.csv", b"x,y,z\n1,2,3\n4,5\n");
    let e = tabular::read_csv(&ragged).unwrap_err().to_string();
    assert!(
        e.ends_with("ragged.csv: line 3: row has 2 cells but the header has 3"),
        "{e}"
    );
}

#[test]
fn image_folder_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("seven");
    std::fs::create_dir(&class).unwrap();
    let good = class.join("ok.png");
    image::GrayImage::from_pixel(3, 3, image::Luma([128]))
        .save(&good)
        .unwrap();
    let f =
        image_folder::ImageFolder::load(dir.path(), 2, 2, image_folder::Channels::Gray).unwrap();
    assert!((f.images[0] - 128.0 / 255.0).abs() < 1e-6);
    let mut bytes = std::fs::read(&good).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0xff;
    bytes[n / 2 + 1] ^= 0xff;
    write(&class, "corrupt.png", &bytes);
    let e = image_folder::ImageFolder::load(dir.path(), 2, 2, image_folder::Channels::Gray)
        .unwrap_err();
    assert!(matches!(e, DataError::Image { .. }), "{e}");
    assert!(e.to_string().contains("corrupt.png"), "{e}");
}

/// Names a folder reader may meet: well-formed ones beside odd ones (empty stems, dots,
/// spaces, non-ASCII, a newline, upper-case extensions, very long).
const ODD_NAMES: [&str; 22] = [
    "a.png",
    "b.PNG",
    "c.jpg",
    "d.jpeg",
    ".png",
    "..png",
    "png",
    "x.png.wav",
    " .wav",
    "3_jackson_0.wav",
    "3_jackson_0.WAV",
    "10_x_1.wav",
    "3__0.wav",
    "3_jackson_99999999999999999999.wav",
    "_.wav",
    "é_ü_1.wav",
    "line\nbreak.png",
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "cat",
    "n",
];

/// Fills `dir` with a random layout: valid, empty and garbage files, folders where files are
/// expected (nested up to `depth`), and links that loop, dangle or point at a parent.
fn random_layout(dir: &Path, rng: &mut rand_chacha::ChaCha8Rng, depth: usize) {
    use rand::Rng;
    let png = {
        let mut b = std::io::Cursor::new(Vec::new());
        image::GrayImage::from_pixel(3, 2, image::Luma([200]))
            .write_to(&mut b, image::ImageFormat::Png)
            .unwrap();
        b.into_inner()
    };
    let wav = encode(spec(1, 8000, 16, false), &sine(440.0, 8000, 400, 0.4));
    for _ in 0..rng.gen_range(0..8) {
        let mut name = ODD_NAMES[rng.gen_range(0..ODD_NAMES.len())].to_string();
        if rng.gen_bool(0.05) {
            name = format!("{}.png", "n".repeat(250));
        }
        let path = dir.join(&name);
        if std::fs::symlink_metadata(&path).is_ok() {
            continue;
        }
        match rng.gen_range(0..8) {
            0 => std::fs::write(&path, &png).unwrap(),
            1 => std::fs::write(&path, &wav).unwrap(),
            2 => std::fs::write(&path, b"").unwrap(),
            3 => {
                let mut junk = vec![0u8; rng.gen_range(1..64)];
                rng.fill(&mut junk[..]);
                std::fs::write(&path, junk).unwrap();
            }
            4 | 5 if depth > 0 => {
                std::fs::create_dir(&path).unwrap();
                random_layout(&path, rng, depth - 1);
            }
            #[cfg(unix)]
            6 => std::os::unix::fs::symlink(&name, &path).unwrap(),
            #[cfg(unix)]
            7 => {
                let target = if rng.gen_bool(0.5) { ".." } else { "missing" };
                std::os::unix::fs::symlink(target, &path).unwrap();
            }
            _ => std::fs::create_dir(&path).unwrap(),
        }
    }
}

/// Random folder layouts given to every folder reader (image classes, FSDD recordings,
/// MNIST): each returns data or an error, never panics.
#[test]
fn random_folder_layouts_are_data_or_errors() {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let spectrogram = crate::data::SpectrogramConfig::default();
    let options = crate::data::FsddOptions {
        threads: 2,
        ..Default::default()
    };
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..150 {
        let dir = tempfile::tempdir().unwrap();
        random_layout(dir.path(), &mut rng, 2);
        let results = [
            image_folder::ImageFolder::load(dir.path(), 4, 3, image_folder::Channels::Gray)
                .map(|_| ()),
            image_folder::ImageFolder::load(dir.path(), 2, 2, image_folder::Channels::Rgb)
                .map(|_| ()),
            crate::data::fsdd::list_clips(dir.path()).map(|_| ()),
            crate::data::Fsdd::load(dir.path(), &spectrogram, &options).map(|_| ()),
            crate::data::Mnist::load(dir.path(), crate::data::Split::Train, Some(2)).map(|_| ()),
        ];
        for r in results {
            match r {
                Ok(()) => loaded += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
            }
        }
    }
    assert!(
        loaded > 10 && refused > 10,
        "{loaded} loaded, {refused} refused"
    );
}
