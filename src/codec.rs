//! Codecs: how a modality's values are read from and written to the files people hold.
//!
//! A model sees numbers; a user holds PNG images, WAV recordings, class numbers and CSV
//! columns. A [`Codec`] is the serialisable recipe between the two for one modality (the image
//! size, the spectrogram settings and the normaliser fitted on the training data, the CSV
//! column names), so that a checkpoint can carry it ([`crate::checkpoint::CheckpointInfo`]) and
//! a trained model can be given a new file and answer with files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::griffin_lim::{spectrogram_to_wav, GriffinLimConfig};
use crate::data::image_folder::{load_image, Channels};
use crate::data::{read_wav_at, Normalizer, Resample, SpectrogramConfig, Stft};
use crate::{Error, Result};

/// Codecs by modality name.
pub type Codecs = BTreeMap<String, Codec>;

/// How one modality's values map to files or text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Codec {
    /// Greyscale images of `width x height` pixels in `[0, 1]`: read from PNG or JPEG (resized
    /// and converted to grey), written as PNG.
    Image {
        /// Pixels per row.
        width: usize,
        /// Rows.
        height: usize,
    },
    /// A class index in `0..classes`, given and reported as a number.
    Label {
        /// Number of classes.
        classes: usize,
    },
    /// Speech as a standardised log-magnitude spectrogram: read from WAV (resampled to the
    /// model's rate), written as WAV through Griffin-Lim phase reconstruction.
    Audio {
        /// The spectrogram's shape and resolution.
        spectrogram: SpectrogramConfig,
        /// Per-bin standardisation fitted on the training clips.
        normalizer: Normalizer,
    },
    /// Numeric CSV columns, standardised per column with statistics of the training rows.
    Columns {
        /// Column names, in the modality's order.
        columns: Vec<String>,
        /// Per-column standardisation.
        normalizer: Normalizer,
    },
}

impl Codec {
    /// Values per sample this codec produces.
    pub fn dim(&self) -> usize {
        match self {
            Codec::Image { width, height } => width * height,
            Codec::Label { .. } => 1,
            Codec::Audio { spectrogram, .. } => spectrogram.dim(),
            Codec::Columns { columns, .. } => columns.len(),
        }
    }

    /// The file extension this codec reads and writes, if it works with files.
    pub fn extension(&self) -> Option<&'static str> {
        match self {
            Codec::Image { .. } => Some("png"),
            Codec::Audio { .. } => Some("wav"),
            Codec::Label { .. } | Codec::Columns { .. } => None,
        }
    }

    /// Reads one sample's model values from `path` (an image or a WAV file).
    ///
    /// # Errors
    /// [`Error::Data`] for a file that cannot be read or decoded (a WAV at another rate is
    /// resampled); [`Error::InvalidData`] for a codec whose values do not come from files.
    pub fn read_file(&self, path: &Path) -> Result<Vec<f32>> {
        match self {
            Codec::Image { width, height } => {
                Ok(load_image(path, *width, *height, Channels::Gray)?)
            }
            Codec::Audio {
                spectrogram,
                normalizer,
            } => {
                let samples = read_wav_at(path, spectrogram.sample_rate, Resample::Allow)?;
                let mut spec = Stft::new(spectrogram)?.log_spectrogram(&samples);
                normalizer.apply(&mut spec)?;
                Ok(spec)
            }
            Codec::Label { .. } | Codec::Columns { .. } => Err(Error::InvalidData {
                what: path.display().to_string(),
                reason: "this modality is given as numbers, not as a file".into(),
            }),
        }
    }

    /// Reads a class index from text such as `7`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if the text is not a class of this codec.
    pub fn parse_label(&self, text: &str) -> Result<f32> {
        let classes = match self {
            Codec::Label { classes } => *classes,
            _ => {
                return Err(Error::InvalidData {
                    what: format!("label {text:?}"),
                    reason: "this modality is not a label".into(),
                })
            }
        };
        match text.trim().parse::<usize>() {
            Ok(c) if c < classes => Ok(c as f32),
            _ => Err(Error::InvalidData {
                what: format!("label {text:?}"),
                reason: format!("expected a class number in 0..{classes}"),
            }),
        }
    }

    /// Writes one sample's decoded values (the decoder's mean: pixel probabilities or a
    /// standardised spectrogram) to `stem` plus this codec's extension, atomically, and returns
    /// the path written.
    ///
    /// # Errors
    /// [`Error::Shape`] if `values` is not one sample; [`Error::Data`] if the file cannot be
    /// written; [`Error::InvalidData`] for a codec without files.
    pub fn write_file(&self, values: &[f32], stem: &Path) -> Result<PathBuf> {
        if values.len() != self.dim() {
            return Err(Error::shape(
                "decoded sample",
                format!("{} values", self.dim()),
                values.len(),
            ));
        }
        let ext = self.extension().ok_or_else(|| Error::InvalidData {
            what: stem.display().to_string(),
            reason: "this modality is reported as numbers, not written as a file".into(),
        })?;
        let path = stem.with_extension(ext);
        match self {
            Codec::Image { width, height } => {
                write_grey_png(&path, values, *width, *height)?;
            }
            Codec::Audio {
                spectrogram,
                normalizer,
            } => {
                spectrogram_to_wav(
                    &path,
                    spectrogram,
                    values,
                    Some(normalizer),
                    &GriffinLimConfig::default(),
                )?;
            }
            Codec::Label { .. } | Codec::Columns { .. } => unreachable!("no extension"),
        }
        Ok(path)
    }
}

/// Writes `values` in `[0, 1]` (clamped) as an 8-bit greyscale PNG, atomically.
///
/// # Errors
/// [`Error::Shape`] if `values` is not `width * height` long; [`Error::Data`] if the file
/// cannot be written.
pub fn write_grey_png(path: &Path, values: &[f32], width: usize, height: usize) -> Result<()> {
    if values.len() != width * height || values.is_empty() {
        return Err(Error::shape(
            "image",
            format!("{width} x {height} values"),
            values.len(),
        ));
    }
    let pixels: Vec<u8> = values
        .iter()
        .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
        .collect();
    let img = image::GrayImage::from_raw(width as u32, height as u32, pixels)
        .expect("length checked above");
    crate::data::atomic::write_atomically(path, |tmp| {
        img.save_with_format(tmp, image::ImageFormat::Png)
            .map_err(|e| crate::data::DataError::Image {
                file: tmp.display().to_string(),
                reason: format!("cannot write PNG: {e}"),
            })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_round_trip_through_png() {
        let dir = tempfile::tempdir().unwrap();
        let codec = Codec::Image {
            width: 4,
            height: 3,
        };
        let values: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        let path = codec.write_file(&values, &dir.path().join("x")).unwrap();
        assert_eq!(path.extension().unwrap(), "png");
        let back = codec.read_file(&path).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn audio_round_trip_keeps_the_spectrogram_shape() {
        let dir = tempfile::tempdir().unwrap();
        let spectrogram = SpectrogramConfig::default();
        let sr = spectrogram.sample_rate as f32;
        let tone: Vec<f32> = (0..4000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / sr).sin())
            .collect();
        let raw = Stft::new(&spectrogram).unwrap().log_spectrogram(&tone);
        assert_eq!(raw.len(), spectrogram.dim());
        // An identity normaliser, so the values compared below are log magnitudes.
        let normalizer = Normalizer {
            mean: vec![0.0; spectrogram.bins],
            std: vec![1.0; spectrogram.bins],
        };
        let codec = Codec::Audio {
            spectrogram,
            normalizer,
        };
        let wav = dir.path().join("tone.wav");
        crate::data::write_wav(&wav, &tone, sr as u32).unwrap();
        let spec = codec.read_file(&wav).unwrap();
        assert_eq!(spec.len(), codec.dim());
        let out = codec.write_file(&spec, &dir.path().join("again")).unwrap();
        let again = codec.read_file(&out).unwrap();
        assert_eq!(again.len(), codec.dim());
        // The 440 Hz bin (440 / 8000 * 256 = 14) stays the loudest of the reconstruction.
        let mean_bin = |s: &[f32], k: usize| s.iter().skip(k).step_by(64).sum::<f32>();
        let loudest = (0..64)
            .max_by(|&a, &b| mean_bin(&again, a).total_cmp(&mean_bin(&again, b)))
            .unwrap();
        assert!((13..=15).contains(&loudest), "loudest bin {loudest}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let img = Codec::Image {
            width: 2,
            height: 2,
        };
        assert!(img.write_file(&[0.0; 3], &dir.path().join("a")).is_err());
        assert!(img.read_file(&dir.path().join("missing.png")).is_err());
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        assert!(img.read_file(&junk).is_err());
        let label = Codec::Label { classes: 10 };
        assert_eq!(label.parse_label(" 7 ").unwrap(), 7.0);
        assert!(label.parse_label("10").is_err());
        assert!(label.parse_label("seven").is_err());
        assert!(img.parse_label("1").is_err());
        assert!(label.write_file(&[1.0], &dir.path().join("l")).is_err());
        assert!(label.read_file(&junk).is_err());
    }
}
