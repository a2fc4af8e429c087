//! [`Activation`], the non-linearity between hidden layers, and the elementwise half of a dense
//! layer on the CPU, fused: bias, activation and the activation's derivative in one pass forward
//! (when the product comes out transposed, the bias is added by the copy that lays it out
//! row-major instead); one product backward.
//!
//! dfdx 0.13 spends one single-threaded pass over memory per elementwise op and per gradient
//! (Swish alone is a sigmoid, a product and their two backward kernels). Here the forward pass
//! also stores `act'(z)`, so the backward pass is `dz = dy * act'(z)` and needs neither `z` nor
//! the output. Large layers are split over two threads; on x86-64 the loops are compiled a
//! second time for AVX-512 and picked at run time.

use dfdx::prelude::{Device, PutTape, Shape, SplitTape, Tape, Tensor};
use serde::{Deserialize, Serialize};

/// The non-linearity between hidden layers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Swish / SiLU, `x * sigmoid(x)`: the MVAE paper's choice.
    #[default]
    Swish,
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// GELU, tanh approximation.
    Gelu,
    /// No non-linearity, `x`: makes an [`Mlp`](crate::nn::Mlp) affine (linear-Gaussian models with a closed-form
    /// likelihood, linear probes).
    Identity,
}

impl Activation {
    /// Applies the activation elementwise, keeping the tape.
    pub fn apply<S: Shape, D: Device<f32>, T: Tape<f32, D>>(
        self,
        x: Tensor<S, f32, D, T>,
    ) -> Tensor<S, f32, D, T> {
        match self {
            Activation::Swish => {
                // x * sigmoid(x): the untaped copy of x shares its id, so both paths of the
                // product rule accumulate into x's gradient.
                let (x, tape) = x.split_tape();
                let sig = x.clone().put_tape(tape).sigmoid();
                sig * x
            }
            Activation::Relu => x.relu(),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => x.fast_gelu(),
            Activation::Identity => x,
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = crate::Error;
    fn from_str(s: &str) -> crate::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "swish" | "silu" => Ok(Activation::Swish),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "gelu" => Ok(Activation::Gelu),
            "identity" | "linear" => Ok(Activation::Identity),
            _ => Err(crate::Error::config(
                "activation",
                s,
                "one of swish, relu, tanh, gelu, identity",
            )),
        }
    }
}

/// Elements below which a pass runs on one thread.
const SPLIT_MIN_ELEMENTS: usize = 16 * 1024;

/// The tanh-approximated GELU's constants (as dfdx's `fast_gelu`).
const GELU_C: f32 = 0.797_884_6; // sqrt(2 / pi)
const GELU_A: f32 = 0.044_715;

/// `e^x` in straight-line arithmetic that vectorises (libm's `expf` is a call per element):
/// `x = k ln 2 + r`, `|r| <= ln 2 / 2`, degree-6 Taylor polynomial for `e^r`, `2^k` built in
/// the exponent bits; relative error below 3e-7 (about 2 ulp) against libm. Inputs are clamped to
/// `[-87, 88]`, where `e^x` is a normal float.
///
/// The integer `k` is read from the bits of the rounded sum, not converted with `as i32`: Rust's
/// saturating float-to-int cast does not vectorise (LLVM emits a scalar conversion and NaN
/// check per lane), and it made this function several times slower in the AVX-512 loops.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer. Below 2^24 the sum's
    // last mantissa bit is worth 1, so its bits minus ROUND's are that integer, k.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let rounded = x * LOG2E + ROUND;
    let k = rounded - ROUND;
    let k_int = rounded.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let scale = f32::from_bits(((k_int + 127) as u32) << 23);
    p * scale
}

/// `sigmoid(x) = 1 / (1 + e^-x)`.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh(x) = 1 - 2 / (e^2x + 1)` (exact at the clamped ends: +-1).
#[inline(always)]
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

/// Where to cut `len` values of `cols`-wide rows into two row-aligned halves, or `None` when
/// the work is too small to pay for a second thread.
fn halves(len: usize, cols: usize) -> Option<usize> {
    let rows = len.checked_div(cols).unwrap_or(0);
    (len >= SPLIT_MIN_ELEMENTS && rows >= 2 && rayon::current_num_threads() > 1)
        .then_some(rows / 2 * cols)
}

/// In place, `y = act(y + bias)` over rows of `cols` values. When `keep` (a layer on a tape)
/// returns `act'` at each element for [`backward`]; `None` for the identity (derivative 1) or
/// when not kept.
pub fn forward(
    act: Activation,
    y: &mut [f32],
    cols: usize,
    bias: Option<&[f32]>,
    keep: bool,
) -> Option<Vec<f32>> {
    let keep = keep && act != Activation::Identity;
    let mut deriv = if keep {
        vec![0f32; y.len()]
    } else {
        Vec::new()
    };
    match halves(y.len(), cols) {
        Some(at) => {
            let (y0, y1) = y.split_at_mut(at);
            let (d0, d1) = if keep {
                deriv.split_at_mut(at)
            } else {
                (&mut [][..], &mut [][..])
            };
            rayon::join(
                || forward_slice(act, y0, d0, cols, bias),
                || forward_slice(act, y1, d1, cols, bias),
            );
        }
        None => forward_slice(act, y, &mut deriv, cols, bias),
    }
    keep.then_some(deriv)
}

/// `dz = dy * act'`, written over `dy`; `deriv` as [`forward`] returned it.
pub fn backward(dy: &mut [f32], deriv: Option<&[f32]>, cols: usize) {
    let Some(deriv) = deriv else { return };
    let at = halves(dy.len(), cols);
    zip_in_halves(dy, deriv, at, multiply);
}

/// Runs `f` on `dst` and `src` cut at `at` into two halves on two threads, or on the whole on
/// this thread when `at` is `None`.
fn zip_in_halves(
    dst: &mut [f32],
    src: &[f32],
    at: Option<usize>,
    f: impl Fn(&mut [f32], &[f32]) + Sync,
) {
    match at {
        Some(at) => {
            let (d0, d1) = dst.split_at_mut(at);
            let (s0, s1) = src.split_at(at.min(src.len()));
            rayon::join(|| f(d0, s0), || f(d1, s1));
        }
        None => f(dst, src),
    }
}

/// `db += column sums of dz` over rows of `cols` values.
pub fn bias_gradient(db: &mut [f32], dz: &[f32], cols: usize) {
    for row in dz.chunks_exact(cols) {
        for (b, d) in db.iter_mut().zip(row) {
            *b += d;
        }
    }
}

/// Runs `$body` compiled for AVX-512 where the CPU has it, else for the baseline target.
macro_rules! multiversion {
    (fn $name:ident($($arg:ident: $ty:ty),*) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn wide($($arg: $ty),*) {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F, the only feature `wide` is compiled for.
                    return unsafe { wide($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

multiversion! {
    fn multiply(dy: &mut [f32], deriv: &[f32]) {
        for (g, d) in dy.iter_mut().zip(deriv) {
            *g *= d;
        }
    }
}

multiversion! {
    fn forward_slice(act: Activation, y: &mut [f32], deriv: &mut [f32], cols: usize, bias: Option<&[f32]>) {
        let keep = !deriv.is_empty();
        for (r, row) in y.chunks_exact_mut(cols).enumerate() {
            if let Some(b) = bias {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            }
            if !keep {
                match act {
                    Activation::Identity => {}
                    Activation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
                    Activation::Tanh => row.iter_mut().for_each(|v| *v = tanh(*v)),
                    Activation::Swish => row.iter_mut().for_each(|v| *v *= sigmoid(*v)),
                    Activation::Gelu => row.iter_mut().for_each(|v| {
                        let t = tanh(GELU_C * (*v + GELU_A * *v * *v * *v));
                        *v = 0.5 * *v * (1.0 + t);
                    }),
                }
                continue;
            }
            let d = &mut deriv[r * cols..(r + 1) * cols];
            match act {
                Activation::Identity => d.fill(1.0),
                Activation::Relu => {
                    for (v, d) in row.iter_mut().zip(d) {
                        *d = if *v > 0.0 { 1.0 } else { 0.0 };
                        *v = v.max(0.0);
                    }
                }
                Activation::Tanh => {
                    for (v, d) in row.iter_mut().zip(d) {
                        let t = tanh(*v);
                        *d = 1.0 - t * t;
                        *v = t;
                    }
                }
                Activation::Swish => {
                    // d/dz z s(z) = s + z s (1 - s) = s + y (1 - s)
                    for (v, d) in row.iter_mut().zip(d) {
                        let s = sigmoid(*v);
                        let y = *v * s;
                        *d = s + y * (1.0 - s);
                        *v = y;
                    }
                }
                Activation::Gelu => {
                    for (v, d) in row.iter_mut().zip(d) {
                        let x = *v;
                        let t = tanh(GELU_C * (x + GELU_A * x * x * x));
                        let du = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
                        *d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
                        *v = 0.5 * x * (1.0 + t);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_3e7_of_libm() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_37;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
        // clamped, finite and ordered at the ends
        assert!(exp(-1000.0) > 0.0 && exp(-1000.0) < 1e-37);
        assert!(exp(1000.0).is_finite() && exp(1000.0) > 1e38);
        assert_eq!(exp(0.0), 1.0);
    }

    /// `k` read from the bits equals the rounded float converted with `as`, over the whole
    /// clamped range (so `exp` is bit for bit what it was with the cast).
    #[test]
    fn exp_exponent_from_bits_matches_the_cast() {
        const ROUND: f32 = 12_582_912.0;
        for i in 0..=1_750_000 {
            let x = -87.0 + i as f32 * 1e-4;
            let rounded = x * std::f32::consts::LOG2_E + ROUND;
            let k = rounded - ROUND;
            assert_eq!(
                rounded.to_bits().wrapping_sub(ROUND.to_bits()) as i32,
                k as i32,
                "x = {x}"
            );
        }
    }

    #[test]
    fn sigmoid_and_tanh_match_libm() {
        for i in -2000..2000 {
            let x = i as f32 * 0.01;
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 1e-6,
                "sigmoid {x}"
            );
            assert!((tanh(x) - x.tanh()).abs() < 2e-6, "tanh {x}");
        }
        assert_eq!(tanh(100.0), 1.0);
        assert_eq!(tanh(-100.0), -1.0);
    }
}
