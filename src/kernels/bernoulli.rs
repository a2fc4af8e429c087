//! The Bernoulli log-likelihood of logits on the CPU in one vectorised pass.
//!
//! `log p(x | l) = sum_j x_j l_j - softplus(l_j)` with `softplus(l) = max(l, 0) + ln(1 +
//! e^-|l|)`, and `d/dl = x - sigmoid(l)`. dfdx 0.13 spends a binary-cross-entropy pass (scalar
//! `exp` and `ln` from libm), a sum and their two backward passes, and computes a gradient for
//! the data too. Here one pass computes each row's sum and, on a tape, the derivative, with
//! `exp` and `ln(1 + u)` in arithmetic the compiler vectorises.

use super::activation::{exp, multiversion};

/// `ln(1 + u)` for `u` in `[0, 1]`, as `2 atanh(s)` with `s = u / (2 + u)` in `[0, 1/3]`: no
/// cancellation for small `u` (the result is `u` to first order), relative error below 3e-7
/// (a few units in the last place of f32).
#[inline(always)]
pub fn ln_1p_unit(u: f32) -> f32 {
    let s = u / (2.0 + u);
    let s2 = s * s;
    // 2 (s + s^3/3 + ... + s^15/15), Horner in s^2; the last term is below 2e-8 at s = 1/3.
    let p = 1.0 / 15.0;
    let p = p * s2 + 1.0 / 13.0;
    let p = p * s2 + 1.0 / 11.0;
    let p = p * s2 + 1.0 / 9.0;
    let p = p * s2 + 1.0 / 7.0;
    let p = p * s2 + 1.0 / 5.0;
    let p = p * s2 + 1.0 / 3.0;
    let p = p * s2 + 1.0;
    2.0 * s * p
}

/// Sums `x l - softplus(l)` over each row of `cols` values into `out` (one value per row);
/// when `deriv` is not empty, writes `x - sigmoid(l)` there, element by element.
pub fn forward(logits: &[f32], x: &[f32], cols: usize, out: &mut [f32], deriv: &mut [f32]) {
    forward_rows(logits, x, cols, out, deriv);
}

/// Lanes of the running sums: independent partial sums let the compiler vectorise the
/// reduction (a single float sum must be added in order).
const LANES: usize = 16;

/// `x l - softplus(l)` and, with it, `x - sigmoid(l)`.
#[inline(always)]
fn term(l: f32, x: f32) -> (f32, f32) {
    let u = exp(-l.abs());
    let log_p = x * l - (l.max(0.0) + ln_1p_unit(u));
    // sigmoid(l) = 1 / (1 + u) for l >= 0, u / (1 + u) below
    let sig = if l >= 0.0 { 1.0 } else { u } / (1.0 + u);
    (log_p, x - sig)
}

multiversion! {
    fn forward_rows(logits: &[f32], x: &[f32], cols: usize, out: &mut [f32], deriv: &mut [f32]) {
        let keep = !deriv.is_empty();
        for (r, (l, x)) in logits.chunks_exact(cols).zip(x.chunks_exact(cols)).enumerate() {
            // Whole blocks of LANES as fixed-size arrays, so the loop body is one vector wide.
            let mut acc = [0f32; LANES];
            let blocks = l.chunks_exact(LANES).zip(x.chunks_exact(LANES));
            let full = cols / LANES * LANES;
            if keep {
                let d = &mut deriv[r * cols..(r + 1) * cols];
                for ((l, x), d) in blocks.zip(d.chunks_exact_mut(LANES)) {
                    let (l, x): (&[f32; LANES], &[f32; LANES]) =
                        (l.try_into().expect("a block"), x.try_into().expect("a block"));
                    let d: &mut [f32; LANES] = d.try_into().expect("a block");
                    for i in 0..LANES {
                        let (log_p, dv) = term(l[i], x[i]);
                        acc[i] += log_p;
                        d[i] = dv;
                    }
                }
                for i in full..cols {
                    let (log_p, dv) = term(l[i], x[i]);
                    acc[0] += log_p;
                    d[i] = dv;
                }
            } else {
                for (l, x) in blocks {
                    let (l, x): (&[f32; LANES], &[f32; LANES]) =
                        (l.try_into().expect("a block"), x.try_into().expect("a block"));
                    for i in 0..LANES {
                        acc[i] += term(l[i], x[i]).0;
                    }
                }
                for i in full..cols {
                    acc[0] += term(l[i], x[i]).0;
                }
            }
            out[r] = acc.iter().sum();
        }
    }
}

multiversion! {
    fn backward_rows(grad: &mut [f32], deriv: &[f32], g: &[f32], cols: usize) {
        for ((row, d), &g) in grad.chunks_exact_mut(cols).zip(deriv.chunks_exact(cols)).zip(g) {
            for (v, &d) in row.iter_mut().zip(d) {
                *v += g * d;
            }
        }
    }
}

/// Adds `g_r * deriv` to each row `r` of `grad` (the logits' gradient).
pub fn backward(grad: &mut [f32], deriv: &[f32], g: &[f32], cols: usize) {
    backward_rows(grad, deriv, g, cols);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_1p_matches_libm_over_the_unit_interval() {
        for i in 0..=100_000 {
            let u = i as f32 / 100_000.0;
            let want = f64::from(u).ln_1p();
            let got = f64::from(ln_1p_unit(u));
            let err = (got - want).abs() / want.max(1e-30);
            assert!(err <= 3e-7, "ln(1 + {u}): {got} vs {want}");
        }
        // tiny u: the result is u, not 0
        assert_eq!(ln_1p_unit(1e-20), 1e-20);
        assert_eq!(ln_1p_unit(0.0), 0.0);
    }
}
