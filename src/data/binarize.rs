//! Dynamic binarisation, as the MNIST likelihood literature trains (Salakhutdinov & Murray
//! 2008; MVAE and MultiVae on MNIST): each grey level `v` in `[0, 1]` becomes a fresh Bernoulli
//! draw, 1 with probability `v`. A Bernoulli likelihood of grey levels carries the entropy of
//! every grey pixel, `-v ln v - (1 - v) ln(1 - v)`, which no model can remove; on binary
//! pixels it does not, so likelihoods on binarised MNIST are the figures papers report.

use rand::Rng;

use crate::data::error::{DataError, Result};

/// Replaces each value `v` of `values` by 1 with probability `v`, else 0, drawing one uniform
/// number per value from `rng`. Checks every value before changing any.
///
/// # Errors
/// [`DataError::Dataset`] naming the first value outside `[0, 1]` (or not a number).
pub fn binarize(values: &mut [f32], rng: &mut impl Rng) -> Result<()> {
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(DataError::Dataset(format!(
            "binarising needs values in [0, 1] (probabilities of a 1); value {i} is {v}"
        )));
    }
    for v in values.iter_mut() {
        *v = f32::from(u8::from(rng.gen::<f32>() < *v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Draws are 0 or 1, with the grey level's frequency (within 5 standard errors over
    /// 20,000 draws); 0 and 1 stay as they are; the same seed gives the same draws.
    #[test]
    fn draws_have_the_grey_levels_frequency() {
        let levels = [0.0f32, 0.1, 0.5, 0.9, 1.0];
        let n = 20_000;
        let mut values: Vec<f32> = levels.iter().flat_map(|&v| vec![v; n]).collect();
        let original = values.clone();
        binarize(&mut values, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert!(values.iter().all(|&v| v == 0.0 || v == 1.0));
        for (k, &p) in levels.iter().enumerate() {
            let ones = values[k * n..(k + 1) * n].iter().sum::<f32>() as f64;
            let freq = ones / n as f64;
            let se = (f64::from(p) * (1.0 - f64::from(p)) / n as f64).sqrt();
            assert!(
                (freq - f64::from(p)).abs() <= 5.0 * se + 1e-12,
                "level {p}: frequency {freq}"
            );
        }
        let mut again = original;
        binarize(&mut again, &mut ChaCha8Rng::seed_from_u64(1)).unwrap();
        assert_eq!(again, values);
    }

    /// A value outside `[0, 1]` is refused, named, and nothing is changed.
    #[test]
    fn values_outside_the_unit_interval_are_refused() {
        for bad in [1.5f32, -0.1, f32::NAN] {
            let mut values = vec![0.3f32, 0.7, bad];
            let err = binarize(&mut values, &mut ChaCha8Rng::seed_from_u64(0)).unwrap_err();
            assert!(err.to_string().contains("value 2"), "{err}");
            assert_eq!(&values[..2], &[0.3, 0.7]);
        }
    }
}
