//! Principal component analysis onto two components, to draw high-dimensional latents in 2-D.
//!
//! The covariance is accumulated in f64. Its two leading eigenvectors come from subspace
//! iteration on a block of up to eight vectors with a Rayleigh-Ritz step (a Jacobi eigen
//! solve of the small projected matrix), so close or repeated eigenvalues below the top two
//! do not slow it down; with eight or fewer dimensions the first step is already exact.

use crate::plot::canvas::{check_finite, invalid};
use crate::{Error, Result};

/// Vectors in the iterated block (more than two so that close eigenvalues converge fast).
const BLOCK: usize = 8;
const MAX_ITERATIONS: usize = 500;

/// The first two principal components of a set of rows.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca2 {
    /// Mean of the rows (`dim` values).
    pub mean: Vec<f64>,
    /// Unit principal directions, largest variance first (each `dim` values). Signs are
    /// fixed so that each direction's largest-magnitude entry is positive.
    pub components: [Vec<f64>; 2],
    /// Variance along each direction (sample covariance, divided by `rows - 1`).
    pub variances: [f64; 2],
    /// Total variance, the trace of the covariance.
    pub total_variance: f64,
}

impl Pca2 {
    /// Fits the two leading components of `values`, row-major with `dim` values per row.
    ///
    /// Needs at least two rows of at least two finite values each.
    pub fn fit(values: &[f32], dim: usize) -> Result<Self> {
        let rows = check_rows(values, dim)?;
        let mut mean = vec![0.0f64; dim];
        for row in values.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        // Upper triangle of the covariance, then mirrored.
        let mut cov = vec![0.0f64; dim * dim];
        let mut centred = vec![0.0f64; dim];
        for row in values.chunks_exact(dim) {
            for ((c, &v), m) in centred.iter_mut().zip(row).zip(&mean) {
                *c = v as f64 - m;
            }
            for i in 0..dim {
                let ci = centred[i];
                if ci == 0.0 {
                    continue;
                }
                let out = &mut cov[i * dim + i..(i + 1) * dim];
                for (o, &cj) in out.iter_mut().zip(&centred[i..]) {
                    *o += ci * cj;
                }
            }
        }
        let denom = (rows - 1) as f64;
        for i in 0..dim {
            for j in i..dim {
                let v = cov[i * dim + j] / denom;
                cov[i * dim + j] = v;
                cov[j * dim + i] = v;
            }
        }
        let total_variance: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
        let (mut vectors, values) = leading_eigenpairs(&cov, dim);
        for v in vectors.iter_mut() {
            let big = v
                .iter()
                .fold(0.0f64, |a, &b| if b.abs() > a.abs() { b } else { a });
            if big < 0.0 {
                v.iter_mut().for_each(|x| *x = -*x);
            }
        }
        let [first, second] = vectors;
        Ok(Pca2 {
            mean,
            components: [first, second],
            variances: [values[0].max(0.0), values[1].max(0.0)],
            total_variance,
        })
    }

    /// Fraction of the total variance each component explains (zeros for constant data).
    pub fn explained_ratio(&self) -> [f64; 2] {
        if self.total_variance > 0.0 {
            self.variances.map(|v| v / self.total_variance)
        } else {
            [0.0; 2]
        }
    }

    /// Coordinates of each row of `values` (row-major, `dim` values each) on the components.
    pub fn project(&self, values: &[f32]) -> Result<Vec<[f32; 2]>> {
        let dim = self.mean.len();
        check_rows(values, dim)?;
        Ok(values
            .chunks_exact(dim)
            .map(|row| {
                self.components.each_ref().map(|c| {
                    row.iter()
                        .zip(&self.mean)
                        .zip(c)
                        .map(|((&v, m), w)| (v as f64 - m) * w)
                        .sum::<f64>() as f32
                })
            })
            .collect())
    }
}

/// Projects the rows of `values` (row-major, `dim` values each) onto their first two
/// principal components; see [`Pca2`] for the components themselves.
pub fn pca2(values: &[f32], dim: usize) -> Result<Vec<[f32; 2]>> {
    Pca2::fit(values, dim)?.project(values)
}

/// Checks the layout of `values` and returns the number of rows.
fn check_rows(values: &[f32], dim: usize) -> Result<usize> {
    if dim < 2 {
        return Err(Error::shape("pca values per row", "at least 2", dim));
    }
    check_finite("pca values", values)?;
    if !values.len().is_multiple_of(dim) {
        return Err(Error::shape(
            "pca values",
            format!("a multiple of {dim} values"),
            values.len(),
        ));
    }
    let rows = values.len() / dim;
    if rows < 2 {
        return Err(invalid("pca values", "needs at least two rows"));
    }
    Ok(rows)
}

/// The two leading eigenvectors and eigenvalues of the symmetric `dim x dim` matrix `a`.
fn leading_eigenpairs(a: &[f64], dim: usize) -> ([Vec<f64>; 2], [f64; 2]) {
    let k = dim.min(BLOCK);
    let scale = (0..dim).map(|i| a[i * dim + i].abs()).fold(0.0, f64::max);
    // Start from the coordinate axes with the largest diagonal entries, plus a small
    // deterministic spread so that no start is orthogonal to a leading direction.
    let mut order: Vec<usize> = (0..dim).collect();
    order.sort_by(|&i, &j| a[j * dim + j].total_cmp(&a[i * dim + i]));
    let mut q: Vec<Vec<f64>> = order[..k]
        .iter()
        .enumerate()
        .map(|(c, &axis)| {
            let mut v: Vec<f64> = (0..dim).map(|i| 1e-3 * noise(c, i)).collect();
            v[axis] += 1.0;
            v
        })
        .collect();
    orthonormalise(&mut q);
    let mut iteration = 0;
    loop {
        iteration += 1;
        // Rayleigh-Ritz: the best approximations to eigenpairs within span(q).
        let aq: Vec<Vec<f64>> = q.iter().map(|v| mat_vec(a, v)).collect();
        let h: Vec<f64> = (0..k * k).map(|ij| dot(&q[ij / k], &aq[ij % k])).collect();
        let (vals, vecs) = jacobi_eigen(&h, k);
        let combine = |vs: &[Vec<f64>], col: usize| -> Vec<f64> {
            let mut out = vec![0.0; dim];
            for (r, v) in vs.iter().enumerate() {
                let w = vecs[r * k + col];
                out.iter_mut().zip(v).for_each(|(o, x)| *o += w * x);
            }
            out
        };
        let ritz_vectors: Vec<Vec<f64>> = (0..k).map(|c| combine(&q, c)).collect();
        // Converged when the top two residuals are small against the matrix's scale.
        let residual = (0..2)
            .map(|c| {
                let av = combine(&aq, c);
                av.iter()
                    .zip(&ritz_vectors[c])
                    .map(|(x, y)| (x - vals[c] * y).powi(2))
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(0.0, f64::max);
        if k == dim || scale == 0.0 || residual <= 1e-10 * scale || iteration == MAX_ITERATIONS {
            return (
                [ritz_vectors[0].clone(), ritz_vectors[1].clone()],
                [vals[0], vals[1]],
            );
        }
        // One power step on the whole block.
        q = ritz_vectors.iter().map(|v| mat_vec(a, v)).collect();
        orthonormalise(&mut q);
    }
}

/// A deterministic value in [-1, 1) for column `c`, entry `i`.
fn noise(c: usize, i: usize) -> f64 {
    let mut x =
        (c as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_add(0x632b_e59b);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn mat_vec(a: &[f64], v: &[f64]) -> Vec<f64> {
    a.chunks_exact(v.len()).map(|row| dot(row, v)).collect()
}

/// Modified Gram-Schmidt; a column that collapses (the matrix has lower rank than the block)
/// is replaced by a fresh deterministic vector, so the block stays orthonormal.
fn orthonormalise(q: &mut [Vec<f64>]) {
    for c in 0..q.len() {
        for attempt in 0..4 {
            let before = dot(&q[c], &q[c]).sqrt();
            for p in 0..c {
                let (done, rest) = q.split_at_mut(c);
                let d = dot(&done[p], &rest[0]);
                rest[0]
                    .iter_mut()
                    .zip(&done[p])
                    .for_each(|(x, y)| *x -= d * y);
            }
            let norm = dot(&q[c], &q[c]).sqrt();
            if norm > 1e-8 * before && norm > 1e-300 {
                q[c].iter_mut().for_each(|x| *x /= norm);
                break;
            }
            let len = q[c].len();
            q[c] = (0..len).map(|i| noise(c + 97 * (attempt + 1), i)).collect();
        }
    }
}

/// Eigenvalues (descending) and eigenvectors (columns of a row-major `n x n` matrix) of the
/// symmetric `n x n` matrix `h`, by cyclic Jacobi rotations.
fn jacobi_eigen(h: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = h.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        let diag: f64 = (0..n).map(|i| a[i * n + i].powi(2)).sum();
        if off <= 1e-30 * diag || off == 0.0 {
            break;
        }
        for p in 0..n {
            for r in p + 1..n {
                let apr = a[p * n + r];
                if apr == 0.0 {
                    continue;
                }
                // Rotation that zeroes a[p][r].
                let theta = (a[r * n + r] - a[p * n + p]) / (2.0 * apr);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akr) = (a[k * n + p], a[k * n + r]);
                    a[k * n + p] = c * akp - s * akr;
                    a[k * n + r] = s * akp + c * akr;
                }
                for k in 0..n {
                    let (apk, ark) = (a[p * n + k], a[r * n + k]);
                    a[p * n + k] = c * apk - s * ark;
                    a[r * n + k] = s * apk + c * ark;
                }
                for k in 0..n {
                    let (vkp, vkr) = (v[k * n + p], v[k * n + r]);
                    v[k * n + p] = c * vkp - s * vkr;
                    v[k * n + r] = s * vkp + c * vkr;
                }
            }
        }
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| a[j * n + j].total_cmp(&a[i * n + i]));
    let values = order.iter().map(|&i| a[i * n + i]).collect();
    let mut vectors = vec![0.0; n * n];
    for (new, &old) in order.iter().enumerate() {
        for k in 0..n {
            vectors[k * n + new] = v[k * n + old];
        }
    }
    (values, vectors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// An orthonormal basis of R^dim from Gram-Schmidt on random vectors.
    fn random_basis(dim: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f64>> {
        let mut q: Vec<Vec<f64>> = (0..dim)
            .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        orthonormalise(&mut q);
        q
    }

    /// Rows `mean + sum_j c_j sqrt(var_j) basis_j` where the coefficients are +-1 patterns
    /// that are exactly balanced, so the sample covariance is known in closed form.
    fn data_on(
        basis: &[Vec<f64>],
        variances: &[f64],
        mean: &[f64],
        rows: usize,
    ) -> (Vec<f32>, Vec<[f64; 2]>) {
        let dim = mean.len();
        let mut values = Vec::with_capacity(rows * dim);
        let mut coords = Vec::with_capacity(rows);
        for r in 0..rows {
            // Walsh-like signs: coefficient j flips with bit j of r; rows is a power of two
            // at least 2^variances.len(), so each pattern appears equally often and the
            // coefficients are uncorrelated with mean zero and variance exactly 1.
            let signs: Vec<f64> = (0..variances.len())
                .map(|j| if (r >> j) & 1 == 1 { 1.0 } else { -1.0 })
                .collect();
            let mut x = mean.to_vec();
            for ((b, &v), s) in basis.iter().zip(variances).zip(&signs) {
                x.iter_mut()
                    .zip(b)
                    .for_each(|(xi, bi)| *xi += s * v.sqrt() * bi);
            }
            values.extend(x.iter().map(|&v| v as f32));
            coords.push([
                signs[0] * variances[0].sqrt(),
                signs[1] * variances[1].sqrt(),
            ]);
        }
        (values, coords)
    }

    #[test]
    fn recovers_known_directions_and_variances() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for dim in [2, 3, 8, 20] {
            let basis = random_basis(dim, &mut rng);
            // Strictly decreasing variances; with +-1 patterns the population covariance
            // is sum_j var_j b_j b_j^T, and the sample covariance (n - 1) scales it.
            let variances: Vec<f64> = (0..dim.min(6)).map(|j| 9.0 / (1 + j) as f64).collect();
            let mean: Vec<f64> = (0..dim).map(|i| i as f64 - 3.0).collect();
            let rows = 64;
            let (values, coords) = data_on(&basis, &variances, &mean, rows);
            let pca = Pca2::fit(&values, dim).unwrap();
            let n = rows as f64;
            for c in 0..2 {
                let expected = variances[c] * n / (n - 1.0);
                assert!(
                    (pca.variances[c] - expected).abs() < 1e-4 * expected,
                    "dim {dim} component {c}: {} vs {expected}",
                    pca.variances[c]
                );
                let cos = dot(&pca.components[c], &basis[c]);
                assert!(
                    (cos.abs() - 1.0).abs() < 1e-6,
                    "dim {dim} component {c}: cos {cos}"
                );
            }
            let total: f64 = variances.iter().sum::<f64>() * n / (n - 1.0);
            assert!((pca.total_variance - total).abs() < 1e-4 * total);
            let ratio = pca.explained_ratio();
            assert!((ratio[0] - variances[0] / variances.iter().sum::<f64>()).abs() < 1e-5);
            for (m, e) in pca.mean.iter().zip(&mean) {
                assert!((m - e).abs() < 1e-5);
            }
            // Projections equal the generating coefficients up to each component's sign.
            let points = pca2(&values, dim).unwrap();
            for c in 0..2 {
                let sign = (dot(&pca.components[c], &basis[c])).signum();
                for (p, k) in points.iter().zip(&coords) {
                    assert!((p[c] as f64 - sign * k[c]).abs() < 1e-3, "{p:?} vs {k:?}");
                }
            }
        }
    }

    #[test]
    fn repeated_lower_eigenvalues_and_low_rank_are_fine() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let dim = 40;
        let basis = random_basis(dim, &mut rng);
        // Rank 5: the rest of the space has variance exactly zero; components 3..5 tie.
        let variances = [5.0, 2.0, 1.0, 1.0, 1.0];
        let (values, _) = data_on(&basis, &variances, &vec![0.5; dim], 32);
        let pca = Pca2::fit(&values, dim).unwrap();
        for (component, direction) in pca.components.iter().zip(&basis) {
            assert!((dot(component, direction).abs() - 1.0).abs() < 1e-6);
            assert!((dot(component, component) - 1.0).abs() < 1e-9);
        }
        assert!(dot(&pca.components[0], &pca.components[1]).abs() < 1e-9);
    }

    #[test]
    fn constant_rows_project_to_the_origin() {
        let values = vec![1.5f32; 4 * 3];
        let pca = Pca2::fit(&values, 3).unwrap();
        assert_eq!(pca.variances, [0.0, 0.0]);
        assert_eq!(pca.explained_ratio(), [0.0, 0.0]);
        assert!(pca2(&values, 3).unwrap().iter().all(|p| *p == [0.0, 0.0]));
    }

    #[test]
    fn signs_are_deterministic() {
        let values = [0.0f32, 0.0, 2.0, 1.0, -2.0, -1.0, 4.0, 2.0];
        let pca = Pca2::fit(&values, 2).unwrap();
        let big = pca.components[0]
            .iter()
            .fold(0.0f64, |a, &b| if b.abs() > a.abs() { b } else { a });
        assert!(big > 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(pca2(&[], 2), Err(Error::InvalidData { .. })));
        assert!(matches!(
            pca2(&[1.0, 2.0, 3.0], 2),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            pca2(&[1.0, 2.0], 2),
            Err(Error::InvalidData { .. })
        ));
        assert!(matches!(
            pca2(&[1.0, 2.0, 3.0, 4.0], 1),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            pca2(&[1.0, 2.0, 3.0, 4.0], 0),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            pca2(&[1.0, f32::NAN, 3.0, 4.0], 2),
            Err(Error::InvalidData { .. })
        ));
        assert!(matches!(
            pca2(&[1.0, f32::INFINITY, 3.0, 4.0], 2),
            Err(Error::InvalidData { .. })
        ));
        let pca = Pca2::fit(&[0.0, 1.0, 1.0, 0.0], 2).unwrap();
        assert!(pca.project(&[0.0, 1.0, 1.0]).is_err());
    }
}
