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
use crate::data::image_folder::{is_image, load_image, Channels};
use crate::data::{read_wav_at, Normalizer, Resample, SpectrogramConfig, Stft};
use crate::{Error, Result};

/// Codecs by modality name.
pub type Codecs = BTreeMap<String, Codec>;

/// How one modality's values map to files or text.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Codec {
    /// Images of `width x height` pixels in `[0, 1]`, grey (`channels` 1) or RGB (3,
    /// channel-planar values): read from PNG or JPEG (resized and converted to grey or RGB),
    /// written as 8-bit grey or RGB PNG.
    Image {
        /// Pixels per row.
        width: usize,
        /// Rows.
        height: usize,
        /// 1 (grey; the default, and left out of the serialised form, so codecs written
        /// before colour read and write unchanged) or 3 (RGB).
        #[serde(default = "one", skip_serializing_if = "is_one")]
        channels: usize,
    },
    /// A class index in `0..classes`, given and reported by its name when the codec has names
    /// (the words of a table's class column, in sorted order), else as a number.
    Label {
        /// Number of classes.
        classes: usize,
        /// The name of each class, or empty (classes are numbers). Left out of the serialised
        /// form when empty, so codecs written before names read and write unchanged.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
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

fn one() -> usize {
    1
}

fn is_one(c: &usize) -> bool {
    *c == 1
}

impl Codec {
    /// A grey image codec.
    pub fn grey_image(width: usize, height: usize) -> Self {
        Codec::Image {
            width,
            height,
            channels: 1,
        }
    }

    /// A label codec whose classes are numbers `0..classes`.
    pub fn label(classes: usize) -> Self {
        Codec::Label {
            classes,
            names: Vec::new(),
        }
    }

    /// A label codec whose classes are `names`, in this order (class `i` is `names[i]`).
    pub fn named_label(names: Vec<String>) -> Self {
        Codec::Label {
            classes: names.len(),
            names,
        }
    }

    /// How a class of this label codec is shown: its name, else its number. `None` for
    /// another codec or a class out of range.
    pub fn class_name(&self, class: usize) -> Option<String> {
        match self {
            Codec::Label { classes, names } if class < *classes => Some(
                names
                    .get(class)
                    .cloned()
                    .unwrap_or_else(|| class.to_string()),
            ),
            _ => None,
        }
    }

    /// Values per sample this codec produces.
    pub fn dim(&self) -> usize {
        match self {
            Codec::Image {
                width,
                height,
                channels,
            } => channels * width * height,
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

    /// Whether this codec reads the file `path` names, by its extension in any case: an image
    /// codec `.png`, `.jpg` and `.jpeg`, an audio codec `.wav`; the others read no files.
    pub fn reads_file(&self, path: &Path) -> bool {
        match self {
            Codec::Image { .. } => is_image(path),
            Codec::Audio { .. } => path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("wav")),
            Codec::Label { .. } | Codec::Columns { .. } => false,
        }
    }

    /// Reads one sample's model values from `path` (an image or a WAV file).
    ///
    /// # Errors
    /// [`Error::Data`] for a file that cannot be read or decoded (a WAV at another rate is
    /// resampled); [`Error::InvalidData`] for a codec whose values do not come from files.
    pub fn read_file(&self, path: &Path) -> Result<Vec<f32>> {
        match self {
            Codec::Image {
                width,
                height,
                channels,
            } => {
                let ch = match channels {
                    1 => Channels::Gray,
                    3 => Channels::Rgb,
                    c => return Err(channel_error(*c)),
                };
                Ok(load_image(path, *width, *height, ch)?)
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

    /// Reads a class index from text: a class name such as `benign` (spaces around it
    /// ignored, letter case kept) when the codec has names, else a number such as `7`.
    ///
    /// # Errors
    /// [`Error::InvalidData`] if the text is not a class of this codec; the reason lists the
    /// classes (the first 20 names).
    pub fn parse_label(&self, text: &str) -> Result<f32> {
        let bad = |reason: String| Error::InvalidData {
            what: format!("label {text:?}"),
            reason,
        };
        let (classes, names) = match self {
            Codec::Label { classes, names } => (*classes, names),
            _ => return Err(bad("this modality is not a label".into())),
        };
        let word = text.trim();
        if !names.is_empty() {
            return match names.iter().position(|n| n == word) {
                Some(c) => Ok(c as f32),
                None => {
                    let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
                    let more = if names.len() > 20 { ", ..." } else { "" };
                    Err(bad(format!(
                        "expected one of the {} classes: {}{more}",
                        names.len(),
                        shown.join(", ")
                    )))
                }
            };
        }
        match word.parse::<usize>() {
            Ok(c) if c < classes => Ok(c as f32),
            _ => Err(bad(format!("expected a class number in 0..{classes}"))),
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
            Codec::Image {
                width,
                height,
                channels,
            } => {
                write_png(&path, values, *width, *height, *channels)?;
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

fn channel_error(c: usize) -> Error {
    Error::config("image channels", c, "1 (grey) or 3 (RGB)")
}

/// Writes `values` in `[0, 1]` (clamped) as an 8-bit greyscale PNG, atomically.
///
/// # Errors
/// [`Error::Shape`] if `values` is not `width * height` long; [`Error::Data`] if the file
/// cannot be written.
pub fn write_grey_png(path: &Path, values: &[f32], width: usize, height: usize) -> Result<()> {
    write_png(path, values, width, height, 1)
}

/// Writes `values` in `[0, 1]` (clamped) as an 8-bit PNG, atomically: greyscale for one
/// channel, RGB for three (channel-planar values: all red, then all green, then all blue).
///
/// # Errors
/// [`Error::InvalidConfig`] for another channel count; [`Error::Shape`] if `values` is not
/// `channels * width * height` long; [`Error::Data`] if the file cannot be written.
pub fn write_png(
    path: &Path,
    values: &[f32],
    width: usize,
    height: usize,
    channels: usize,
) -> Result<()> {
    if !matches!(channels, 1 | 3) {
        return Err(channel_error(channels));
    }
    let plane = width * height;
    if values.len() != channels * plane || values.is_empty() {
        return Err(Error::shape(
            "image",
            format!("{channels} x {width} x {height} values"),
            values.len(),
        ));
    }
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    let (w, h) = (width as u32, height as u32);
    let save = |tmp: &Path| -> std::result::Result<(), image::ImageError> {
        if channels == 1 {
            let pixels: Vec<u8> = values.iter().map(|&v| byte(v)).collect();
            image::GrayImage::from_raw(w, h, pixels)
                .expect("length checked above")
                .save_with_format(tmp, image::ImageFormat::Png)
        } else {
            let pixels: Vec<u8> = (0..plane)
                .flat_map(|i| (0..3).map(move |c| byte(values[c * plane + i])))
                .collect();
            image::RgbImage::from_raw(w, h, pixels)
                .expect("length checked above")
                .save_with_format(tmp, image::ImageFormat::Png)
        }
    };
    crate::data::atomic::write_atomically(path, |tmp| {
        save(tmp).map_err(|e| crate::data::DataError::Image {
            file: tmp.display().to_string(),
            reason: format!("cannot write PNG: {e}"),
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One rule for which files a codec reads, by extension in any case.
    #[test]
    fn codecs_read_files_by_extension_in_any_case() {
        let image = Codec::grey_image(4, 3);
        for (name, yes) in [
            ("a.png", true),
            ("a.PNG", true),
            ("a.Jpeg", true),
            ("a.jpg", true),
            ("a.wav", false),
            ("a", false),
            ("png", false),
        ] {
            assert_eq!(image.reads_file(Path::new(name)), yes, "image {name}");
        }
        assert!(!Codec::label(3).reads_file(Path::new("a.txt")));
    }

    #[test]
    fn image_round_trip_through_png() {
        let dir = tempfile::tempdir().unwrap();
        let codec = Codec::grey_image(4, 3);
        let values: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
        let path = codec.write_file(&values, &dir.path().join("x")).unwrap();
        assert_eq!(path.extension().unwrap(), "png");
        let back = codec.read_file(&path).unwrap();
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
        }
    }

    /// A 3-channel codec writes an RGB PNG whose pixels hold the planar values, and reads it
    /// back as RGB; a grey codec reading the same file gets one plane of luminance.
    #[test]
    fn rgb_round_trip_through_png() {
        let dir = tempfile::tempdir().unwrap();
        let codec = Codec::Image {
            width: 4,
            height: 3,
            channels: 3,
        };
        assert_eq!(codec.dim(), 36);
        // Red rises along the pixels, green falls, blue is constant.
        let mut values = vec![0.0f32; 36];
        for i in 0..12 {
            values[i] = i as f32 / 11.0;
            values[12 + i] = 1.0 - i as f32 / 11.0;
            values[24 + i] = 0.25;
        }
        let path = codec.write_file(&values, &dir.path().join("c")).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!(img.color(), image::ColorType::Rgb8);
        let rgb = img.to_rgb8();
        assert_eq!(rgb.get_pixel(3, 2).0, [255, 0, 64]);
        assert_eq!(rgb.get_pixel(0, 0).0, [0, 255, 64]);
        let back = codec.read_file(&path).unwrap();
        assert_eq!(back.len(), 36);
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6, "{a} vs {b}");
        }
        let grey = Codec::grey_image(4, 3).read_file(&path).unwrap();
        assert_eq!(grey.len(), 12);
        // A grey PNG stays a grey PNG.
        let g = Codec::grey_image(4, 3)
            .write_file(&back[..12], &dir.path().join("g"))
            .unwrap();
        assert_eq!(image::open(&g).unwrap().color(), image::ColorType::L8);
        let two = Codec::Image {
            width: 4,
            height: 3,
            channels: 2,
        };
        assert!(two.write_file(&[0.0; 24], &dir.path().join("two")).is_err());
        assert!(two.read_file(&path).is_err());
        assert!(codec
            .write_file(&values[..12], &dir.path().join("short"))
            .is_err());
        // Grey codecs serialise as before; colour ones name their channels.
        let text = serde_json::to_string(&Codec::grey_image(28, 28)).unwrap();
        assert_eq!(text, r#"{"type":"image","width":28,"height":28}"#);
        let text = serde_json::to_string(&codec).unwrap();
        assert_eq!(serde_json::from_str::<Codec>(&text).unwrap(), codec);
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
        let normalizer = Normalizer::identity(spectrogram.bins);
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
        let img = Codec::grey_image(2, 2);
        assert!(img.write_file(&[0.0; 3], &dir.path().join("a")).is_err());
        assert!(img.read_file(&dir.path().join("missing.png")).is_err());
        let junk = dir.path().join("junk.png");
        std::fs::write(&junk, b"not a png").unwrap();
        assert!(img.read_file(&junk).is_err());
        let label = Codec::label(10);
        assert_eq!(label.parse_label(" 7 ").unwrap(), 7.0);
        assert_eq!(label.class_name(7).as_deref(), Some("7"));
        assert_eq!(label.class_name(10), None);
        assert!(label.parse_label("10").is_err());
        assert!(label.parse_label("seven").is_err());
        assert!(img.parse_label("1").is_err());
        assert!(label.write_file(&[1.0], &dir.path().join("l")).is_err());
        assert!(label.read_file(&junk).is_err());
    }

    /// A named label codec reads and shows its words; numbers are not its classes; a codec
    /// without names serialises as before names existed.
    #[test]
    fn named_labels_read_and_show_words() {
        let label = Codec::named_label(vec!["benign".into(), "malignant".into()]);
        assert_eq!(label.dim(), 1);
        assert_eq!(label.parse_label(" malignant ").unwrap(), 1.0);
        assert_eq!(label.class_name(0).as_deref(), Some("benign"));
        let e = label.parse_label("1").unwrap_err().to_string();
        assert!(e.contains("benign, malignant"), "{e}");
        assert!(label.parse_label("Benign").is_err());
        let text = serde_json::to_string(&label).unwrap();
        assert_eq!(serde_json::from_str::<Codec>(&text).unwrap(), label);
        let plain = serde_json::to_string(&Codec::label(10)).unwrap();
        assert_eq!(plain, r#"{"type":"label","classes":10}"#);
        let many = Codec::named_label((0..30).map(|i| format!("c{i}")).collect());
        let e = many.parse_label("x").unwrap_err().to_string();
        assert!(
            e.contains("30 classes") && e.contains("c19, ...") && !e.contains("c20"),
            "{e}"
        );
    }
}
