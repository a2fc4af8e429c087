//! WAV audio: reading integer (8/16/24/32-bit) and 32-bit float PCM with any
//! channel count mixed down to mono f32 in `[-1, 1]`, resampling by
//! windowed sinc, and atomic 16-bit mono writing.

use std::io::Read;
use std::path::Path;

use crate::data::error::{show, DataError, Result};

/// What to do when a file's sample rate differs from the expected one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resample {
    /// Resample to the expected rate with [`resample`].
    Allow,
    /// Fail with [`DataError::SampleRate`].
    #[default]
    Deny,
}

/// Mono audio at a known sample rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples in `[-1, 1]`.
    pub samples: Vec<f32>,
    /// Samples per second.
    pub sample_rate: u32,
}

/// Reads a WAV file as mono at its own sample rate (channels are averaged).
pub fn read_wav(path: &Path) -> Result<Audio> {
    let f = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let len = f.metadata().map_err(|e| DataError::io(path, e))?.len();
    decode(&show(path), std::io::BufReader::new(f), len)
}

/// Reads a WAV file as mono at `expected_rate`, resampling if `resample` allows.
pub fn read_wav_at(path: &Path, expected_rate: u32, resample: Resample) -> Result<Vec<f32>> {
    let audio = read_wav(path)?;
    conform(&show(path), audio, expected_rate, resample)
}

/// Decodes WAV bytes held in memory; `name` is used in error messages.
pub fn wav_from_bytes(name: &str, bytes: &[u8]) -> Result<Audio> {
    decode(name, bytes, bytes.len() as u64)
}

/// Brings `audio` to `expected_rate`, or fails if the rates differ and `resample` is [`Resample::Deny`].
pub fn conform(
    name: &str,
    audio: Audio,
    expected_rate: u32,
    resample: Resample,
) -> Result<Vec<f32>> {
    if audio.sample_rate == expected_rate {
        return Ok(audio.samples);
    }
    match resample {
        Resample::Allow => {
            resample_to(&audio.samples, audio.sample_rate, expected_rate).map_err(|reason| {
                DataError::Wav {
                    file: name.to_string(),
                    reason,
                }
            })
        }
        Resample::Deny => Err(DataError::SampleRate {
            file: name.to_string(),
            found: audio.sample_rate,
            expected: expected_rate,
        }),
    }
}

fn decode<R: Read>(file: &str, src: R, src_len: u64) -> Result<Audio> {
    let bad = |reason: String| DataError::Wav {
        file: file.to_string(),
        reason,
    };
    let mut reader =
        hound::WavReader::new(src).map_err(|e| bad(format!("not a readable WAV file: {e}")))?;
    let spec = reader.spec();
    let channels = spec.channels as usize;
    if channels == 0 {
        return Err(bad("header says 0 channels".into()));
    }
    if spec.sample_rate == 0 {
        return Err(bad("header says a sample rate of 0 Hz".into()));
    }
    let bytes_per_sample = u64::from(spec.bits_per_sample).div_ceil(8).max(1);
    let claimed = u64::from(reader.len());
    if claimed.saturating_mul(bytes_per_sample) > src_len {
        return Err(bad(format!(
            "header says {claimed} samples of {} bits but the file is only {src_len} bytes long",
            spec.bits_per_sample
        )));
    }
    if claimed % channels as u64 != 0 {
        return Err(bad(format!(
            "{claimed} samples do not divide into {channels} channels"
        )));
    }
    let frames = claimed as usize / channels;
    let mut mono = Vec::with_capacity(frames);
    let truncated = |e: hound::Error, i: usize| {
        bad(format!(
            "data ends or fails at sample {i} of {claimed}: {e}"
        ))
    };
    match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            let mut acc = 0f64;
            for (i, s) in reader.samples::<i32>().enumerate() {
                let s = s.map_err(|e| truncated(e, i))?;
                acc += f64::from(s) * scale;
                if (i + 1) % channels == 0 {
                    mono.push((acc / channels as f64).clamp(-1.0, 1.0) as f32);
                    acc = 0.0;
                }
            }
        }
        (hound::SampleFormat::Float, 32) => {
            let mut acc = 0f64;
            for (i, s) in reader.samples::<f32>().enumerate() {
                let s = s.map_err(|e| truncated(e, i))?;
                if !s.is_finite() {
                    return Err(bad(format!("sample {i} is not finite")));
                }
                acc += f64::from(s);
                if (i + 1) % channels == 0 {
                    mono.push((acc / channels as f64).clamp(-1.0, 1.0) as f32);
                    acc = 0.0;
                }
            }
        }
        (format, bits) => {
            return Err(bad(format!(
                "{bits}-bit {} samples are not supported",
                match format {
                    hound::SampleFormat::Int => "integer",
                    hound::SampleFormat::Float => "float",
                }
            )))
        }
    }
    if mono.len() != frames {
        return Err(bad(format!(
            "header says {frames} frames but {} were read",
            mono.len()
        )));
    }
    Ok(Audio {
        samples: mono,
        sample_rate: spec.sample_rate,
    })
}

/// Most samples [`resample`] produces (2^28, about 9 hours at 8 kHz).
pub const MAX_RESAMPLED: usize = 1 << 28;

/// Zero crossings of the sinc kernel on each side of a sample (kernel half-width).
const SINC_ZEROS: f64 = 16.0;

/// Resamples `samples` from `from` Hz to `to` Hz with a Hann-windowed sinc
/// low-pass (16 zero crossings each side, cut-off at the lower Nyquist rate).
/// The output holds `ceil(len * to / from)` samples. Rates must be non-zero.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    resample_to(samples, from, to).map_err(DataError::Config)
}

fn resample_to(samples: &[f32], from: u32, to: u32) -> std::result::Result<Vec<f32>, String> {
    if from == 0 || to == 0 {
        return Err(format!("cannot resample from {from} Hz to {to} Hz"));
    }
    if from == to {
        return Ok(samples.to_vec());
    }
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = ratio.min(1.0);
    let half = SINC_ZEROS / cutoff;
    let n_out = (samples.len() as f64 * ratio).ceil();
    if n_out > MAX_RESAMPLED as f64 {
        return Err(format!(
            "resampling {} samples from {from} Hz to {to} Hz gives more than {MAX_RESAMPLED} samples",
            samples.len()
        ));
    }
    let n_out = n_out as usize;
    let n_in = samples.len() as i64;
    let mut out = Vec::with_capacity(n_out);
    for j in 0..n_out {
        let t = j as f64 / ratio;
        let lo = ((t - half).ceil() as i64).max(0);
        let hi = ((t + half).floor() as i64).min(n_in - 1);
        let mut acc = 0.0;
        for i in lo..=hi {
            let d = t - i as f64;
            let x = cutoff * d;
            let sinc = if x.abs() < 1e-12 {
                1.0
            } else {
                (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x)
            };
            let w = 0.5 * (1.0 + (std::f64::consts::PI * d / half).cos());
            acc += f64::from(samples[i as usize]) * cutoff * sinc * w;
        }
        out.push(acc.clamp(-1.0, 1.0) as f32);
    }
    Ok(out)
}

/// Writes mono 16-bit PCM atomically (temporary file in the same folder, then
/// rename). Samples are clipped to `[-1, 1]`; non-finite samples are an error.
pub fn write_wav(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    if sample_rate == 0 {
        return Err(DataError::Config("sample rate must be positive".into()));
    }
    if let Some(i) = samples.iter().position(|s| !s.is_finite()) {
        return Err(DataError::Wav {
            file: show(path),
            reason: format!("sample {i} to write is not finite"),
        });
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    crate::data::atomic::write_atomically(path, |tmp| {
        let wav_err = |e: hound::Error| DataError::Wav {
            file: show(tmp),
            reason: format!("write failed: {e}"),
        };
        let mut w = hound::WavWriter::create(tmp, spec).map_err(wav_err)?;
        for &s in samples {
            w.write_sample((s.clamp(-1.0, 1.0) * 32767.0).round() as i16)
                .map_err(wav_err)?;
        }
        w.finalize().map_err(wav_err)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Encodes interleaved samples with hound into bytes.
    pub(crate) fn encode(spec: hound::WavSpec, interleaved: &[f64]) -> Vec<u8> {
        let mut cur = std::io::Cursor::new(Vec::new());
        {
            let mut w = hound::WavWriter::new(&mut cur, spec).unwrap();
            for &s in interleaved {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(s as f32).unwrap(),
                    (_, 8) => w.write_sample((s * 127.0).round() as i8).unwrap(),
                    (_, 16) => w.write_sample((s * 32767.0).round() as i16).unwrap(),
                    (_, bits) => w
                        .write_sample((s * ((1i64 << (bits - 1)) - 1) as f64).round() as i32)
                        .unwrap(),
                }
            }
            w.finalize().unwrap();
        }
        cur.into_inner()
    }

    pub(crate) fn spec(channels: u16, rate: u32, bits: u16, float: bool) -> hound::WavSpec {
        hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: bits,
            sample_format: if float {
                hound::SampleFormat::Float
            } else {
                hound::SampleFormat::Int
            },
        }
    }

    pub(crate) fn sine(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f64> {
        (0..n)
            .map(|i| amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin())
            .collect()
    }

    #[test]
    fn every_integer_depth_and_float_reads_back() {
        let x = sine(440.0, 8000, 400, 0.5);
        for (bits, float, tol) in [
            (8, false, 1e-2),
            (16, false, 1e-4),
            (24, false, 1e-6),
            (32, false, 1e-6),
            (32, true, 1e-7),
        ] {
            let a = wav_from_bytes("x.wav", &encode(spec(1, 8000, bits, float), &x)).unwrap();
            assert_eq!(a.sample_rate, 8000);
            assert_eq!(a.samples.len(), 400);
            for (got, want) in a.samples.iter().zip(&x) {
                assert!(
                    (f64::from(*got) - want).abs() < tol,
                    "{bits} bits {float}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn stereo_24_bit_mixes_to_mono() {
        let mut inter = Vec::new();
        for i in 0..100 {
            inter.push(0.5);
            inter.push(if i % 2 == 0 { -0.5 } else { 0.25 });
        }
        let a = wav_from_bytes("s.wav", &encode(spec(2, 8000, 24, false), &inter)).unwrap();
        assert_eq!(a.samples.len(), 100);
        assert!(a.samples[0].abs() < 1e-6);
        assert!((a.samples[1] - 0.375).abs() < 1e-6);
    }

    #[test]
    fn float_non_finite_is_error() {
        let b = encode(spec(1, 8000, 32, true), &[0.0, f64::NAN]);
        let e = wav_from_bytes("f.wav", &b).unwrap_err().to_string();
        assert!(e.contains("sample 1 is not finite"), "{e}");
    }

    #[test]
    fn truncated_and_non_wav_are_errors() {
        let b = encode(spec(1, 8000, 16, false), &sine(300.0, 8000, 1000, 0.5));
        let e = wav_from_bytes("t.wav", &b[..b.len() - 501]).unwrap_err();
        assert!(matches!(e, DataError::Wav { .. }), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notes.wav");
        std::fs::write(&p, b"these are plain text notes, not audio").unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(
            e.contains("notes.wav") && e.contains("not a readable WAV"),
            "{e}"
        );
        let e = read_wav(&dir.path().join("missing.wav")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
    }

    #[test]
    fn rate_mismatch_denied_or_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cd.wav");
        let x = sine(440.0, 44100, 44100 / 4, 0.5);
        std::fs::write(&p, encode(spec(1, 44100, 16, false), &x)).unwrap();
        let e = read_wav_at(&p, 8000, Resample::Deny).unwrap_err();
        assert!(matches!(
            e,
            DataError::SampleRate {
                found: 44100,
                expected: 8000,
                ..
            }
        ));
        let y = read_wav_at(&p, 8000, Resample::Allow).unwrap();
        assert_eq!(y.len(), 2000);
        let want = sine(440.0, 8000, 2000, 0.5);
        // Away from the edges the resampled sine matches the analytic one.
        let err = y[100..1900]
            .iter()
            .zip(&want[100..1900])
            .map(|(a, b)| (f64::from(*a) - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 5e-3, "max error {err}");
    }

    #[test]
    fn upsampling_and_bad_rates() {
        let x: Vec<f32> = sine(100.0, 8000, 800, 0.5)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let y = resample(&x, 8000, 16000).unwrap();
        assert_eq!(y.len(), 1600);
        let want = sine(100.0, 16000, 1600, 0.5);
        assert!((f64::from(y[801]) - want[801]).abs() < 5e-3);
        assert!(matches!(resample(&x, 0, 8000), Err(DataError::Config(_))));
        assert_eq!(resample(&[], 8000, 44100).unwrap(), Vec::<f32>::new());
        assert!(resample(&[0.0; 100], 1, u32::MAX).is_err());
    }

    #[test]
    fn write_then_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.wav");
        let x: Vec<f32> = vec![0.0, 0.5, -0.5, 2.0, -2.0];
        write_wav(&p, &x, 8000).unwrap();
        let a = read_wav(&p).unwrap();
        assert_eq!(a.sample_rate, 8000);
        let want = [0.0, 0.5, -0.5, 1.0, -1.0];
        for (g, w) in a.samples.iter().zip(want) {
            assert!((g - w).abs() < 1e-4);
        }
        assert!(write_wav(&p, &[f32::NAN], 8000).is_err());
        assert!(write_wav(&p, &[0.0], 0).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = wav_from_bytes("r.wav", &bytes);
            let mut with_header = b"RIFF\x24\x08\x00\x00WAVEfmt ".to_vec();
            with_header.extend_from_slice(&bytes);
            let _ = wav_from_bytes("r.wav", &with_header);
        }

        #[test]
        fn truncations_never_panic(cut in 0usize..2000, kind in 0usize..4) {
            let (s, n) = [(spec(1, 8000, 16, false), 300), (spec(2, 8000, 24, false), 200),
                          (spec(1, 8000, 32, true), 100), (spec(1, 44100, 8, false), 500)][kind];
            let b = encode(s, &sine(200.0, s.sample_rate, n, 0.3));
            let cut = cut.min(b.len());
            let r = wav_from_bytes("t.wav", &b[..cut]);
            prop_assert_eq!(r.is_ok(), cut == b.len());
        }

        #[test]
        fn corrupted_headers_never_panic(pos in 0usize..44, byte in any::<u8>()) {
            let mut b = encode(spec(1, 8000, 16, false), &sine(200.0, 8000, 50, 0.3));
            b[pos] = byte;
            let _ = wav_from_bytes("c.wav", &b);
        }
    }
}
