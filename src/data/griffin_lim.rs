//! Griffin-Lim phase reconstruction: from a (possibly normalised)
//! log-magnitude spectrogram back to audio samples and a playable WAV.
//!
//! Uses the fast variant with momentum (Perraudin et al., 2013); momentum 0
//! gives the classic algorithm. The initial phase is drawn from a seeded RNG,
//! so the result is deterministic.

use std::path::Path;

use rand::{Rng, SeedableRng};
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

use crate::data::error::{DataError, Result};
use crate::data::normalizer::Normalizer;
use crate::data::spectrogram::{SpectrogramConfig, Stft};

/// Settings of the Griffin-Lim iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GriffinLimConfig {
    /// Number of project-and-rebuild iterations.
    pub iterations: usize,
    /// Momentum in `[0, 1)`; 0.99 converges much faster than 0.
    pub momentum: f32,
    /// Seed of the random initial phase.
    pub seed: u64,
}

impl Default for GriffinLimConfig {
    /// 64 iterations, momentum 0.99, seed 0.
    fn default() -> Self {
        GriffinLimConfig {
            iterations: 64,
            momentum: 0.99,
            seed: 0,
        }
    }
}

/// Magnitudes `frames * (n_fft / 2 + 1)` from a log spectrogram of `frames * bins`
/// values (bins above `bins` are zero), undoing `normalizer` first if given.
pub fn magnitudes(
    config: &SpectrogramConfig,
    log_spec: &[f32],
    normalizer: Option<&Normalizer>,
) -> Result<Vec<f32>> {
    config.validate()?;
    if log_spec.len() != config.dim() {
        return Err(DataError::Config(format!(
            "spectrogram holds {} values but the configuration says {} frames x {} bins",
            log_spec.len(),
            config.frames,
            config.bins
        )));
    }
    let mut logs = log_spec.to_vec();
    if let Some(n) = normalizer {
        n.invert(&mut logs)?;
    }
    let nb = config.full_bins();
    let mut mag = vec![0.0; config.frames * nb];
    for t in 0..config.frames {
        for k in 0..config.bins {
            let v = logs[t * config.bins + k];
            // Clamp so that garbage input cannot overflow exp.
            let m = v.clamp(-60.0, 30.0).exp() - config.eps;
            mag[t * nb + k] = if m.is_finite() { m.max(0.0) } else { 0.0 };
        }
    }
    Ok(mag)
}

/// Reconstructs `frames * hop` samples whose spectrogram approximates
/// `log_spec` (normalised by `normalizer` if given).
pub fn griffin_lim(
    config: &SpectrogramConfig,
    log_spec: &[f32],
    normalizer: Option<&Normalizer>,
    gl: &GriffinLimConfig,
) -> Result<Vec<f32>> {
    if !(0.0..1.0).contains(&gl.momentum) {
        return Err(DataError::Config(format!(
            "momentum {} is not in [0, 1)",
            gl.momentum
        )));
    }
    let mag = magnitudes(config, log_spec, normalizer)?;
    let mut stft = Stft::new(config)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(gl.seed);
    let mut angles: Vec<Complex<f32>> = (0..mag.len())
        .map(|_| Complex::from_polar(1.0, rng.gen_range(0.0..std::f32::consts::TAU)))
        .collect();
    let mut spec = vec![Complex::default(); mag.len()];
    let mut rebuilt = vec![Complex::default(); mag.len()];
    let mut previous = vec![Complex::default(); mag.len()];
    let (mut signal, mut weight) = (Vec::new(), Vec::new());
    let beta = gl.momentum / (1.0 + gl.momentum);
    for _ in 0..gl.iterations {
        for ((s, m), a) in spec.iter_mut().zip(&mag).zip(&angles) {
            *s = a * *m;
        }
        stft.synthesise(&spec, &mut signal, &mut weight);
        stft.analyse(&signal, &mut rebuilt);
        for ((a, r), p) in angles.iter_mut().zip(&rebuilt).zip(&previous) {
            let z = r - p * beta;
            let norm = z.norm();
            *a = if norm > 1e-16 {
                z / norm
            } else {
                Complex::new(1.0, 0.0)
            };
        }
        std::mem::swap(&mut previous, &mut rebuilt);
    }
    for ((s, m), a) in spec.iter_mut().zip(&mag).zip(&angles) {
        *s = a * *m;
    }
    stft.synthesise(&spec, &mut signal, &mut weight);
    Ok(signal)
}

/// Reconstructs audio from `log_spec` with [`griffin_lim`] and writes it as a
/// 16-bit WAV at `config.sample_rate` (atomically).
pub fn spectrogram_to_wav(
    path: &Path,
    config: &SpectrogramConfig,
    log_spec: &[f32],
    normalizer: Option<&Normalizer>,
    gl: &GriffinLimConfig,
) -> Result<()> {
    let samples = griffin_lim(config, log_spec, normalizer, gl)?;
    crate::data::wav::write_wav(path, &samples, config.sample_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::spectrogram::spectral_convergence;

    fn convergence(cfg: &SpectrogramConfig, x: &[f32], gl: &GriffinLimConfig) -> f32 {
        let mut stft = Stft::new(cfg).unwrap();
        let spec = stft.log_spectrogram(x);
        let y = griffin_lim(cfg, &spec, None, gl).unwrap();
        let again = stft.log_spectrogram(&y);
        let a = magnitudes(cfg, &spec, None).unwrap();
        let b = magnitudes(cfg, &again, None).unwrap();
        spectral_convergence(&a, &b).unwrap()
    }

    fn chirp(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                0.5 * (2.0 * std::f32::consts::PI * (300.0 + 800.0 * t) * t).sin()
            })
            .collect()
    }

    #[test]
    fn reconstructs_a_chirp() {
        let cfg = SpectrogramConfig {
            frames: 40,
            bins: 129,
            ..SpectrogramConfig::default()
        };
        let gl = GriffinLimConfig::default();
        let sc = convergence(&cfg, &chirp(5000), &gl);
        assert!(sc < 0.1, "spectral convergence {sc}");
        let few = GriffinLimConfig {
            iterations: 2,
            ..gl.clone()
        };
        assert!(convergence(&cfg, &chirp(5000), &few) > sc);
    }

    #[test]
    fn deterministic_and_normalised_input() {
        let cfg = SpectrogramConfig::default();
        let mut stft = Stft::new(&cfg).unwrap();
        let mut spec = stft.log_spectrogram(&chirp(3000));
        let gl = GriffinLimConfig {
            iterations: 8,
            ..Default::default()
        };
        let a = griffin_lim(&cfg, &spec, None, &gl).unwrap();
        assert_eq!(a.len(), cfg.frames * cfg.hop);
        let norm = Normalizer::fit(&spec, cfg.bins).unwrap();
        norm.apply(&mut spec).unwrap();
        let b = griffin_lim(&cfg, &spec, Some(&norm), &gl).unwrap();
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-3, "{diff}");
    }

    #[test]
    fn bad_input_is_error_not_panic() {
        let cfg = SpectrogramConfig::default();
        let gl = GriffinLimConfig::default();
        assert!(griffin_lim(&cfg, &[0.0; 5], None, &gl).is_err());
        let bad = GriffinLimConfig {
            momentum: 1.5,
            ..gl.clone()
        };
        assert!(griffin_lim(&cfg, &vec![0.0; cfg.dim()], None, &bad).is_err());
        let wild = vec![f32::INFINITY; cfg.dim()];
        let y = griffin_lim(
            &cfg,
            &wild,
            None,
            &GriffinLimConfig {
                iterations: 2,
                ..gl
            },
        )
        .unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn writes_a_playable_wav() {
        let cfg = SpectrogramConfig::default();
        let spec = Stft::new(&cfg).unwrap().log_spectrogram(&chirp(3000));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gl.wav");
        spectrogram_to_wav(&p, &cfg, &spec, None, &GriffinLimConfig::default()).unwrap();
        let a = crate::data::wav::read_wav(&p).unwrap();
        assert_eq!(
            (a.sample_rate, a.samples.len()),
            (8000, cfg.frames * cfg.hop)
        );
    }
}
