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
