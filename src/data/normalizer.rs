//! [`Normalizer`]: per-feature mean and standard deviation fitted on a training
//! split and applied to any split (for spectrograms, one statistic per bin).

use serde::{Deserialize, Serialize};

use crate::data::error::{DataError, Result};

/// Smallest standard deviation used when scaling, so constant features stay finite.
pub const MIN_STD: f32 = 1e-6;

/// The most standard deviations from its feature's mean that a value given to a trained model
/// may lie ([`Normalizer::outlier`]): 1e6. The data a normaliser is fitted on never lies further
/// (at most `sqrt(n)` for `n` rows); a value beyond it tells the model nothing it could use and
/// would drive its networks out of the range of `f32`.
pub const MAX_STANDARD: f32 = 1e6;

/// Per-feature standardisation `(x - mean) / std`, where a row has `width`
/// features and feature `j` of every row shares statistic `j`.
///
/// For a frame-major spectrogram batch, `width = bins` gives per-bin statistics
/// pooled over frames and clips.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalizer {
    /// Mean of each feature.
    pub mean: Vec<f32>,
    /// Standard deviation of each feature, at least [`MIN_STD`].
    pub std: Vec<f32>,
}

impl Normalizer {
    /// The normaliser that leaves `width` features as they are (mean 0, std 1): the
    /// placeholder of a codec whose normaliser is fitted later.
    pub fn identity(width: usize) -> Self {
        Normalizer {
            mean: vec![0.0; width],
            std: vec![1.0; width],
        }
    }

    /// Fits mean and std on `values`, read as rows of `width` features.
    pub fn fit(values: &[f32], width: usize) -> Result<Self> {
        if width == 0 || values.is_empty() || !values.len().is_multiple_of(width) {
            return Err(DataError::Config(format!(
                "cannot fit a normaliser of width {width} on {} values",
                values.len()
            )));
        }
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(DataError::Config(format!(
                "value {i} to fit a normaliser on is not finite"
            )));
        }
        let rows = (values.len() / width) as f64;
        let mut sum = vec![0f64; width];
        for row in values.chunks_exact(width) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        let mean: Vec<f64> = sum.iter().map(|s| s / rows).collect();
        let mut var = vec![0f64; width];
        for row in values.chunks_exact(width) {
            for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        Ok(Normalizer {
            mean: mean.iter().map(|&m| m as f32).collect(),
            std: var
                .iter()
                .map(|s| ((s / rows).sqrt() as f32).max(MIN_STD))
                .collect(),
        })
    }

    /// Features per row.
    pub fn width(&self) -> usize {
        self.mean.len()
    }

    fn check(&self, values: &[f32]) -> Result<()> {
        let w = self.width();
        if w == 0 || self.std.len() != w || !values.len().is_multiple_of(w) {
            return Err(DataError::Config(format!(
                "normaliser of width {w} cannot scale {} values",
                values.len()
            )));
        }
        Ok(())
    }

    /// The first of the raw `values` (rows of [`Normalizer::width`] features, before
    /// [`Normalizer::apply`]) that lies more than [`MAX_STANDARD`] standard deviations from its
    /// feature's mean, as its index and its standardised value (computed in `f64`, so finite).
    pub fn outlier(&self, values: &[f32]) -> Option<(usize, f64)> {
        let w = self.width().max(1);
        values.iter().enumerate().find_map(|(i, &v)| {
            let j = i % w;
            let (m, s) = (self.mean.get(j)?, self.std.get(j)?);
            let z = (f64::from(v) - f64::from(*m)) / f64::from(s.max(MIN_STD));
            (z.is_nan() || z.abs() > f64::from(MAX_STANDARD)).then_some((i, z))
        })
    }

    /// Standardises `values` in place.
    pub fn apply(&self, values: &mut [f32]) -> Result<()> {
        self.check(values)?;
        for row in values.chunks_exact_mut(self.width()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s.max(MIN_STD);
            }
        }
        Ok(())
    }

    /// Undoes [`Normalizer::apply`] in place.
    pub fn invert(&self, values: &mut [f32]) -> Result<()> {
        self.check(values)?;
        for row in values.chunks_exact_mut(self.width()) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = *v * s.max(MIN_STD) + m;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_apply_invert() {
        let data = vec![1.0, 10.0, 3.0, 10.0, 5.0, 10.0];
        let n = Normalizer::fit(&data, 2).unwrap();
        assert_eq!(n.mean, vec![3.0, 10.0]);
        assert!((n.std[0] - (8.0f32 / 3.0).sqrt()).abs() < 1e-6);
        assert_eq!(n.std[1], MIN_STD);
        let mut x = data.clone();
        n.apply(&mut x).unwrap();
        assert!(x[1] == 0.0 && (x[0] + x[4]).abs() < 1e-6);
        n.invert(&mut x).unwrap();
        for (a, b) in x.iter().zip(&data) {
            assert!((a - b).abs() < 1e-5);
        }
        let j = serde_json::to_string(&n).unwrap();
        assert_eq!(serde_json::from_str::<Normalizer>(&j).unwrap(), n);
    }

    #[test]
    fn outliers_are_found_by_their_standardised_distance() {
        let n = Normalizer {
            mean: vec![0.0, 100.0],
            std: vec![1.0, 1e-9],
        };
        assert_eq!(n.outlier(&[1e6, 100.0, -1e6, 100.5]), None);
        assert_eq!(n.outlier(&[1.0, 100.0, 1.5e6, 100.0]), Some((2, 1.5e6)));
        // The std is at least MIN_STD: 1.1 away is 1.1e6 standard deviations.
        assert_eq!(n.outlier(&[0.0, 101.1]).map(|(i, _)| i), Some(1));
        assert_eq!(n.outlier(&[1e30, 0.0]).map(|(i, _)| i), Some(0));
    }

    #[test]
    fn bad_shapes_are_errors() {
        assert!(Normalizer::fit(&[1.0, 2.0, 3.0], 2).is_err());
        assert!(Normalizer::fit(&[], 2).is_err());
        assert!(Normalizer::fit(&[1.0], 0).is_err());
        assert!(Normalizer::fit(&[f32::NAN], 1).is_err());
        let n = Normalizer::fit(&[1.0, 2.0], 2).unwrap();
        assert!(n.apply(&mut [0.0; 3]).is_err());
        let broken = Normalizer {
            mean: vec![0.0],
            std: vec![],
        };
        assert!(broken.invert(&mut [0.0]).is_err());
    }
}
