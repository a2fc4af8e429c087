//! The Free Spoken Digit Dataset (FSDD): clip names, the standard split and a
//! parallel loader that turns every clip into a log-magnitude spectrogram.
//!
//! File names are `{digit}_{speaker}_{take}.wav`. Files that do not end in
//! `.wav` and sub-folders are ignored; `.wav` files whose names do not parse
//! are skipped and reported in [`Fsdd::skipped`] with the message of the
//! [`DataError::FileName`] that [`ClipName::parse`] gave. The standard split puts takes 0-4 of every speaker and
//! digit in the test set and all other takes in the training set.

use std::path::{Path, PathBuf};

use crate::data::error::{show, DataError, Result};
use crate::data::spectrogram::{SpectrogramConfig, Stft};
use crate::data::split::Split;
use crate::data::wav::{read_wav_at, Resample};

/// Takes below this number form the test split.
pub const TEST_TAKES: u32 = 5;

/// The parts of an FSDD file name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClipName {
    /// Spoken digit, 0 to 9.
    pub digit: u8,
    /// Speaker name (no underscore).
    pub speaker: String,
    /// Take number.
    pub take: u32,
}

impl ClipName {
    /// Parses a file name such as `7_theo_12.wav`.
    pub fn parse(file_name: &str) -> Result<Self> {
        let bad = |reason: &str| DataError::FileName {
            file: file_name.to_string(),
            reason: format!("{reason} (expected {{digit}}_{{speaker}}_{{take}}.wav)"),
        };
        let stem = file_name
            .strip_suffix(".wav")
            .ok_or_else(|| bad("name does not end in .wav"))?;
        let parts: Vec<&str> = stem.split('_').collect();
        let [digit, speaker, take] = parts[..] else {
            return Err(bad(
                "name does not have exactly three parts separated by '_'",
            ));
        };
        let digit = match digit.as_bytes() {
            [d @ b'0'..=b'9'] => d - b'0',
            _ => return Err(bad(&format!("'{digit}' is not a digit 0-9"))),
        };
        if speaker.is_empty() {
            return Err(bad("speaker is empty"));
        }
        if take.is_empty() || !take.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("take '{take}' is not a whole number")));
        }
        let take = take
            .parse()
            .map_err(|_| bad(&format!("take '{take}' is too large")))?;
        Ok(ClipName {
            digit,
            speaker: speaker.to_string(),
            take,
        })
    }

    /// The standard split this clip belongs to.
    pub fn split(&self) -> Split {
        if self.take < TEST_TAKES {
            Split::Test
        } else {
            Split::Train
        }
    }
}

/// The clips of a folder and the `.wav` files left out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClipListing {
    /// Clip files with their parsed names, sorted by digit, speaker and take.
    pub clips: Vec<(PathBuf, ClipName)>,
    /// `.wav` files whose names do not parse.
    pub skipped: Vec<Skipped>,
}

/// Lists the clips in `dir` (sorted by digit, speaker and take) and the
/// `.wav` files skipped for bad names.
pub fn list_clips(dir: &Path) -> Result<ClipListing> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut clips = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.to_ascii_lowercase().ends_with(".wav") {
            continue;
        }
        match ClipName::parse(&name) {
            Ok(clip) => clips.push((path, clip)),
            Err(e) => skipped.push(Skipped {
                reason: e.to_string(),
                path,
            }),
        }
    }
    clips.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    Ok(ClipListing { clips, skipped })
}

/// A `.wav` file left out because its name does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file.
    pub path: PathBuf,
    /// Why it was left out.
    pub reason: String,
}

/// How [`Fsdd::load`] selects and reads clips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsddOptions {
    /// Keep only this split (`None`: all clips).
    pub split: Option<Split>,
    /// Whether clips at another sample rate are resampled or refused.
    pub resample: Resample,
    /// Worker threads (at least 1).
    pub threads: usize,
}

impl Default for FsddOptions {
    /// All clips, no resampling, 2 threads.
    fn default() -> Self {
        FsddOptions {
            split: None,
            resample: Resample::Deny,
            threads: 2,
        }
    }
}

/// FSDD clips as spectrogram features with their digits, speakers and takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fsdd {
    /// `len() * config.dim()` log-magnitude values, clip after clip.
    pub features: Vec<f32>,
    /// Spoken digit of each clip.
    pub labels: Vec<u8>,
    /// Speaker of each clip.
    pub speakers: Vec<String>,
    /// Take number of each clip.
    pub takes: Vec<u32>,
    /// File of each clip.
    pub paths: Vec<PathBuf>,
    /// Spectrogram settings used for `features`.
    pub config: SpectrogramConfig,
    /// `.wav` files skipped because their names did not parse.
    pub skipped: Vec<Skipped>,
}

impl Fsdd {
    /// Loads the clips of `dir` (the `recordings` folder) in parallel on
    /// `options.threads` threads, in the order of [`list_clips`].
    pub fn load(dir: &Path, config: &SpectrogramConfig, options: &FsddOptions) -> Result<Self> {
        config.validate()?;
        let ClipListing { mut clips, skipped } = list_clips(dir)?;
        if let Some(split) = options.split {
            clips.retain(|(_, c)| c.split() == split);
        }
        if clips.is_empty() {
            return Err(DataError::Empty {
                path: show(dir),
                reason: format!(
                    "no {}clips named {{digit}}_{{speaker}}_{{take}}.wav",
                    match options.split {
                        Some(Split::Train) => "training ",
                        Some(Split::Test) => "test ",
                        None => "",
                    }
                ),
            });
        }
        let dim = config.dim();
        let mut features = vec![0.0; clips.len() * dim];
        let per_thread = clips.len().div_ceil(options.threads.max(1));
        std::thread::scope(|scope| {
            let workers: Vec<_> = clips
                .chunks(per_thread)
                .zip(features.chunks_mut(per_thread * dim))
                .map(|(chunk, out)| {
                    scope.spawn(move || -> Result<()> {
                        let mut stft = Stft::new(config)?;
                        for ((path, _), o) in chunk.iter().zip(out.chunks_exact_mut(dim)) {
                            let samples = read_wav_at(path, config.sample_rate, options.resample)?;
                            stft.log_spectrogram_into(&samples, o)?;
                        }
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().try_for_each(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(DataError::Dataset("an FSDD worker thread panicked".into()))
                })
            })
        })?;
        let mut fsdd = Fsdd {
            features,
            labels: Vec::with_capacity(clips.len()),
            speakers: Vec::with_capacity(clips.len()),
            takes: Vec::with_capacity(clips.len()),
            paths: Vec::with_capacity(clips.len()),
            config: config.clone(),
            skipped,
        };
        for (path, clip) in clips {
            fsdd.labels.push(clip.digit);
            fsdd.speakers.push(clip.speaker);
            fsdd.takes.push(clip.take);
            fsdd.paths.push(path);
        }
        Ok(fsdd)
    }

    /// Number of clips.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no clips.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Spectrogram of clip `i`, or `None` past the end.
    pub fn feature(&self, i: usize) -> Option<&[f32]> {
        let d = self.config.dim();
        let start = i.checked_mul(d)?;
        self.features.get(start..start.checked_add(d)?)
    }

    /// Indices of the clips in `split`.
    pub fn indices(&self, split: Split) -> Vec<usize> {
        self.takes
            .iter()
            .enumerate()
            .filter(|(_, &take)| (take < TEST_TAKES) == (split == Split::Test))
            .map(|(i, _)| i)
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::data::wav::tests::{encode, sine, spec};

    #[test]
    fn names_parse_or_explain() {
        let c = ClipName::parse("7_theo_12.wav").unwrap();
        assert_eq!((c.digit, c.speaker.as_str(), c.take), (7, "theo", 12));
        assert_eq!(c.split(), Split::Train);
        assert_eq!(
            ClipName::parse("0_george_4.wav").unwrap().split(),
            Split::Test
        );
        for bad in [
            "7_theo_12.mp3",
            "7_theo.wav",
            "7_the_o_1.wav",
            "x_theo_1.wav",
            "10_theo_1.wav",
            "7__1.wav",
            "7_theo_.wav",
            "7_theo_-1.wav",
            "7_theo_99999999999.wav",
        ] {
            let e = ClipName::parse(bad).unwrap_err();
            assert!(matches!(e, DataError::FileName { .. }), "{bad}");
            assert!(e.to_string().starts_with(bad), "{e}");
        }
    }

    /// Writes `takes` tiny synthetic clips per digit for `speakers` into `dir`.
    pub(crate) fn write_fake_fsdd(dir: &Path, speakers: &[&str], takes: u32) {
        for d in 0..10u8 {
            for s in speakers {
                for t in 0..takes {
                    let f = 200.0 + 100.0 * f64::from(d) + f64::from(t);
                    let b = encode(spec(1, 8000, 16, false), &sine(f, 8000, 1200, 0.4));
                    std::fs::write(dir.join(format!("{d}_{s}_{t}.wav")), b).unwrap();
                }
            }
        }
    }

    #[test]
    fn loads_sorted_with_split_and_skips_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        write_fake_fsdd(dir.path(), &["ann", "bob"], 7);
        std::fs::write(dir.path().join("README.md"), b"hi").unwrap();
        std::fs::write(dir.path().join("bad_name.wav"), b"x").unwrap();
        let cfg = SpectrogramConfig::default();
        let all = Fsdd::load(dir.path(), &cfg, &FsddOptions::default()).unwrap();
        assert_eq!(all.len(), 140);
        assert_eq!(all.features.len(), 140 * cfg.dim());
        assert_eq!(all.skipped.len(), 1);
        assert!(all.skipped[0]
            .reason
            .starts_with("bad_name.wav: name does not have exactly three"));
        assert_eq!(
            (all.labels[0], all.speakers[0].as_str(), all.takes[0]),
            (0, "ann", 0)
        );
        assert_eq!(all.indices(Split::Test).len(), 100);
        let one = FsddOptions {
            threads: 1,
            ..Default::default()
        };
        assert_eq!(Fsdd::load(dir.path(), &cfg, &one).unwrap(), all);
        let test = FsddOptions {
            split: Some(Split::Test),
            threads: 3,
            ..Default::default()
        };
        let t = Fsdd::load(dir.path(), &cfg, &test).unwrap();
        assert_eq!(t.len(), 100);
        assert!(t.takes.iter().all(|&k| k < 5));
        assert_eq!(t.feature(0), all.feature(0));
        assert!(t.feature(100).is_none());
        assert!(t.feature(usize::MAX).is_none());
    }

    #[test]
    fn empty_folder_bad_clip_and_rate() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SpectrogramConfig::default();
        let e = Fsdd::load(dir.path(), &cfg, &FsddOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        std::fs::write(dir.path().join("3_ann_0.wav"), b"RIFF junk").unwrap();
        let e = Fsdd::load(dir.path(), &cfg, &FsddOptions::default()).unwrap_err();
        assert!(e.to_string().contains("3_ann_0.wav"), "{e}");
        let b = encode(spec(1, 44100, 16, false), &sine(440.0, 44100, 4410, 0.4));
        std::fs::write(dir.path().join("3_ann_0.wav"), b).unwrap();
        let e = Fsdd::load(dir.path(), &cfg, &FsddOptions::default()).unwrap_err();
        assert!(matches!(e, DataError::SampleRate { .. }), "{e}");
        let allow = FsddOptions {
            resample: Resample::Allow,
            ..Default::default()
        };
        assert_eq!(Fsdd::load(dir.path(), &cfg, &allow).unwrap().len(), 1);
        let e = Fsdd::load(&dir.path().join("nope"), &cfg, &allow).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
    }

    #[test]
    fn bundled_sample_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sample/fsdd/recordings");
        if !dir.is_dir() {
            eprintln!("no bundled sample at {}", dir.display());
            return;
        }
        let f = Fsdd::load(&dir, &SpectrogramConfig::default(), &FsddOptions::default()).unwrap();
        assert_eq!(f.len(), 200);
        assert_eq!(f.indices(Split::Test).len(), 100);
        for d in 0..10 {
            assert_eq!(f.labels.iter().filter(|&&l| l == d).count(), 20);
        }
    }

    fn mvae_data() -> PathBuf {
        PathBuf::from(std::env::var("MVAE_DATA").expect("MVAE_DATA"))
    }

    #[test]
    #[ignore = "needs MVAE_DATA"]
    fn real_fsdd() {
        let dir = mvae_data().join("fsdd/recordings");
        let cfg = SpectrogramConfig::default();
        let f = Fsdd::load(&dir, &cfg, &FsddOptions::default()).unwrap();
        assert_eq!(f.len(), 3000);
        assert!(f.skipped.is_empty());
        assert_eq!(f.indices(Split::Test).len(), 300);
        assert!(f.features.iter().all(|v| v.is_finite()));
        let mut speakers = f.speakers.clone();
        speakers.dedup();
        assert_eq!(speakers.len() % 6, 0);
    }

    #[test]
    #[ignore = "needs MVAE_DATA"]
    fn griffin_lim_on_a_real_clip() {
        use crate::data::griffin_lim::{griffin_lim, magnitudes, GriffinLimConfig};
        use crate::data::spectrogram::spectral_convergence;
        let path = mvae_data().join("fsdd/recordings/3_theo_0.wav");
        let x = read_wav_at(&path, 8000, Resample::Deny).unwrap();
        let cfg = SpectrogramConfig {
            frames: x.len() / 128 + 1,
            bins: 129,
            ..Default::default()
        };
        let mut stft = Stft::new(&cfg).unwrap();
        let spec = stft.log_spectrogram(&x);
        let target = magnitudes(&cfg, &spec, None).unwrap();
        let mut results = Vec::new();
        for iterations in [0, 16, 64] {
            let gl = GriffinLimConfig {
                iterations,
                ..Default::default()
            };
            let y = griffin_lim(&cfg, &spec, None, &gl).unwrap();
            let got = magnitudes(&cfg, &stft.log_spectrogram(&y), None).unwrap();
            results.push(spectral_convergence(&target, &got).unwrap());
        }
        eprintln!("spectral convergence after 0/16/64 iterations: {results:?}");
        assert!(results[2] < results[0]);
        // Measured 0.019 after 64 iterations (0.56 with random phase only).
        assert!(results[2] < 0.05, "{results:?}");
    }
}
