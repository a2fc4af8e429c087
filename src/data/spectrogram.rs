//! Short-time Fourier transform with a periodic Hann window and fixed-size
//! log-magnitude spectrograms, configured by [`SpectrogramConfig`].
//!
//! Frame `t` is centred on sample `t * hop` (the signal is zero-padded by
//! `n_fft / 2` at the start and as needed at the end), so a clip yields
//! `len / hop + 1` natural frames; the spectrogram is then cropped or padded
//! with silence (`ln(eps)`) to exactly `frames` frames and keeps the lowest
//! `bins` frequency bins. Layout is frame-major: value `(t, k)` sits at
//! `t * bins + k`.

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use crate::data::error::{DataError, Result};

/// Largest spectrogram accepted, in values (`frames * bins`).
pub const MAX_VALUES: usize = 1 << 24;

/// Shape and resolution of log-magnitude spectrograms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectrogramConfig {
    /// Sample rate the audio is brought to before analysis, in Hz.
    pub sample_rate: u32,
    /// FFT (and window) length in samples.
    pub n_fft: usize,
    /// Step between frames in samples.
    pub hop: usize,
    /// Frames kept (cropped or padded with silence).
    pub frames: usize,
    /// Lowest frequency bins kept, at most `n_fft / 2 + 1`.
    pub bins: usize,
    /// Floor added before the logarithm: values are `ln(eps + |X|)`.
    pub eps: f32,
}

impl Default for SpectrogramConfig {
    /// 8 kHz, 256-point FFT with hop 128 (32 ms windows, 16 ms steps),
    /// 32 frames (about 0.5 s) by the lowest 64 bins (0 to 2 kHz).
    fn default() -> Self {
        SpectrogramConfig {
            sample_rate: 8000,
            n_fft: 256,
            hop: 128,
            frames: 32,
            bins: 64,
            eps: 1e-4,
        }
    }
}

impl SpectrogramConfig {
    /// Values per spectrogram, `frames * bins`.
    pub fn dim(&self) -> usize {
        self.frames * self.bins
    }

    /// Bins of the one-sided spectrum, `n_fft / 2 + 1`.
    pub fn full_bins(&self) -> usize {
        self.n_fft / 2 + 1
    }

    /// Checks that every field is in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DataError::Config(m));
        if self.sample_rate == 0 {
            return bad("sample_rate must be positive".into());
        }
        if self.n_fft < 2 || self.n_fft > 1 << 20 {
            return bad(format!("n_fft {} is not between 2 and 2^20", self.n_fft));
        }
        if self.hop == 0 || self.hop > self.n_fft {
            return bad(format!(
                "hop {} is not between 1 and n_fft {}",
                self.hop, self.n_fft
            ));
        }
        if self.frames == 0 || self.frames > 1 << 20 {
            return bad(format!("frames {} is not between 1 and 2^20", self.frames));
        }
        if self.bins == 0 || self.bins > self.full_bins() {
            return bad(format!(
                "bins {} is not between 1 and n_fft / 2 + 1 = {}",
                self.bins,
                self.full_bins()
            ));
        }
        if self.frames.saturating_mul(self.bins) > MAX_VALUES {
            return bad(format!(
                "{} frames x {} bins is more than {MAX_VALUES} values",
                self.frames, self.bins
            ));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return bad(format!("eps {} is not a positive number", self.eps));
        }
        Ok(())
    }
}

/// A planned STFT with reusable buffers; cheap to reuse, one per thread.
pub struct Stft {
    config: SpectrogramConfig,
    forward: Arc<dyn Fft<f32>>,
    inverse: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    buf: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

impl std::fmt::Debug for Stft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stft")
            .field("config", &self.config)
            .finish()
    }
}

impl Stft {
    /// Plans the transforms for `config` (validated first).
    pub fn new(config: &SpectrogramConfig) -> Result<Self> {
        config.validate()?;
        let n = config.n_fft;
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(n);
        let inverse = planner.plan_fft_inverse(n);
        let scratch_len = forward
            .get_inplace_scratch_len()
            .max(inverse.get_inplace_scratch_len());
        let window = (0..n)
            .map(|i| {
                let x = 2.0 * std::f64::consts::PI * i as f64 / n as f64;
                (0.5 - 0.5 * x.cos()) as f32
            })
            .collect();
        Ok(Stft {
            config: config.clone(),
            forward,
            inverse,
            window,
            buf: vec![Complex::default(); n],
            scratch: vec![Complex::default(); scratch_len],
        })
    }

    /// The configuration this STFT was planned for.
    pub fn config(&self) -> &SpectrogramConfig {
        &self.config
    }

    /// Log-magnitude spectrogram of `samples`, `frames * bins` values.
    pub fn log_spectrogram(&mut self, samples: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0; self.config.dim()];
        self.fill_log_spectrogram(samples, &mut out);
        out
    }

    /// Writes the log-magnitude spectrogram of `samples` into `out`, which must
    /// hold `frames * bins` values.
    pub fn log_spectrogram_into(&mut self, samples: &[f32], out: &mut [f32]) -> Result<()> {
        if out.len() != self.config.dim() {
            return Err(DataError::Config(format!(
                "output holds {} values but the spectrogram has {}",
                out.len(),
                self.config.dim()
            )));
        }
        self.fill_log_spectrogram(samples, out);
        Ok(())
    }

    fn fill_log_spectrogram(&mut self, samples: &[f32], out: &mut [f32]) {
        let bins = self.config.bins;
        let eps = self.config.eps;
        for t in 0..self.config.frames {
            self.transform_frame(samples, t);
            for (o, c) in out[t * bins..(t + 1) * bins].iter_mut().zip(&self.buf) {
                *o = (eps + c.norm()).ln();
            }
        }
    }

    /// Loads windowed frame `t` of `samples` into `buf` and transforms it.
    fn transform_frame(&mut self, samples: &[f32], t: usize) {
        let n = self.config.n_fft;
        let start = (t * self.config.hop) as isize - (n / 2) as isize;
        for (i, b) in self.buf.iter_mut().enumerate() {
            let j = start + i as isize;
            let s = if j >= 0 && (j as usize) < samples.len() {
                samples[j as usize]
            } else {
                0.0
            };
            *b = Complex::new(s * self.window[i], 0.0);
        }
        self.forward
            .process_with_scratch(&mut self.buf, &mut self.scratch);
    }

    /// One-sided complex STFT of `samples`: `frames * (n_fft / 2 + 1)` values.
    pub(crate) fn analyse(&mut self, samples: &[f32], out: &mut [Complex<f32>]) {
        let nb = self.config.full_bins();
        for t in 0..self.config.frames {
            self.transform_frame(samples, t);
            out[t * nb..(t + 1) * nb].copy_from_slice(&self.buf[..nb]);
        }
    }

    /// Weighted overlap-add inverse of [`Stft::analyse`]; writes
    /// `frames * hop` samples into `out`, using `weight` as scratch.
    pub(crate) fn synthesise(
        &mut self,
        spec: &[Complex<f32>],
        out: &mut Vec<f32>,
        weight: &mut Vec<f32>,
    ) {
        let n = self.config.n_fft;
        let nb = self.config.full_bins();
        let len = self.config.frames * self.config.hop;
        out.clear();
        out.resize(len, 0.0);
        weight.clear();
        weight.resize(len, 0.0);
        for t in 0..self.config.frames {
            let half = &spec[t * nb..(t + 1) * nb];
            self.buf[..nb].copy_from_slice(half);
            for k in nb..n {
                self.buf[k] = self.buf[n - k].conj();
            }
            self.buf[0].im = 0.0;
            if n.is_multiple_of(2) {
                self.buf[n / 2].im = 0.0;
            }
            self.inverse
                .process_with_scratch(&mut self.buf, &mut self.scratch);
            let start = (t * self.config.hop) as isize - (n / 2) as isize;
            for i in 0..n {
                let j = start + i as isize;
                if j >= 0 && (j as usize) < len {
                    let w = self.window[i];
                    out[j as usize] += self.buf[i].re / n as f32 * w;
                    weight[j as usize] += w * w;
                }
            }
        }
        for (o, w) in out.iter_mut().zip(weight.iter()) {
            *o = if *w > 1e-6 { *o / *w } else { 0.0 };
        }
    }
}

/// Spectral convergence `||A - B|| / ||A||` between two magnitude arrays of the
/// same length (0 when identical); `None` if lengths differ or `A` is all zero.
pub fn spectral_convergence(reference: &[f32], estimate: &[f32]) -> Option<f32> {
    if reference.len() != estimate.len() {
        return None;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (a, b) in reference.iter().zip(estimate) {
        num += f64::from(a - b).powi(2);
        den += f64::from(*a).powi(2);
    }
    (den > 0.0).then(|| (num / den).sqrt() as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_peaks_at_its_bin() {
        let cfg = SpectrogramConfig {
            frames: 20,
            bins: 129,
            ..SpectrogramConfig::default()
        };
        let mut stft = Stft::new(&cfg).unwrap();
        // 1 kHz at 8 kHz with n_fft 256: bin 1000 / (8000 / 256) = 32.
        let x: Vec<f32> = (0..4000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin())
            .collect();
        let s = stft.log_spectrogram(&x);
        assert_eq!(s.len(), 20 * 129);
        for t in 1..20 {
            let row = &s[t * 129..(t + 1) * 129];
            let peak = (0..129).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            assert_eq!(peak, 32, "frame {t}");
            // Hann window: |X| at the peak is amplitude * n_fft / 4 = 64.
            assert!((row[32].exp() - 64.0).abs() < 0.5, "{}", row[32].exp());
        }
    }

    #[test]
    fn short_clips_pad_with_silence_and_long_clips_crop() {
        let cfg = SpectrogramConfig::default();
        let mut stft = Stft::new(&cfg).unwrap();
        let silence = cfg.eps.ln();
        let s = stft.log_spectrogram(&[0.5; 300]);
        assert!(s[..cfg.bins].iter().any(|&v| v > silence + 1.0));
        assert!(s[10 * cfg.bins..]
            .iter()
            .all(|&v| (v - silence).abs() < 1e-6));
        let long = stft.log_spectrogram(&vec![0.1; 100_000]);
        assert_eq!(long.len(), cfg.dim());
        let mut out = vec![0.0; 3];
        assert!(stft.log_spectrogram_into(&[0.0], &mut out).is_err());
        assert_eq!(stft.log_spectrogram(&[]), vec![silence; cfg.dim()]);
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = SpectrogramConfig::default();
        for bad in [
            SpectrogramConfig {
                n_fft: 1,
                ..ok.clone()
            },
            SpectrogramConfig {
                hop: 0,
                ..ok.clone()
            },
            SpectrogramConfig {
                hop: 300,
                ..ok.clone()
            },
            SpectrogramConfig {
                bins: 130,
                ..ok.clone()
            },
            SpectrogramConfig {
                frames: 0,
                ..ok.clone()
            },
            SpectrogramConfig {
                frames: 1 << 20,
                ..ok.clone()
            },
            SpectrogramConfig {
                eps: 0.0,
                ..ok.clone()
            },
            SpectrogramConfig {
                sample_rate: 0,
                ..ok.clone()
            },
        ] {
            assert!(
                matches!(Stft::new(&bad), Err(DataError::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn analyse_then_synthesise_is_identity() {
        let cfg = SpectrogramConfig {
            frames: 40,
            bins: 129,
            ..SpectrogramConfig::default()
        };
        let mut stft = Stft::new(&cfg).unwrap();
        let x: Vec<f32> = (0..cfg.frames * cfg.hop)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let mut spec = vec![Complex::default(); cfg.frames * cfg.full_bins()];
        stft.analyse(&x, &mut spec);
        let (mut y, mut w) = (Vec::new(), Vec::new());
        stft.synthesise(&spec, &mut y, &mut w);
        // The last half window is only partly covered by frames.
        let err = x[..x.len() - cfg.n_fft / 2]
            .iter()
            .zip(&y)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 1e-4, "{err}");
    }

    #[test]
    fn config_serde_round_trip() {
        let c = SpectrogramConfig::default();
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<SpectrogramConfig>(&j).unwrap(), c);
        assert_eq!(spectral_convergence(&[1.0, 0.0], &[1.0, 0.0]), Some(0.0));
        assert_eq!(spectral_convergence(&[0.0], &[1.0]), None);
        assert_eq!(spectral_convergence(&[0.0], &[]), None);
    }
}
