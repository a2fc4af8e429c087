//! The elementwise half of a dense layer on the CPU, fused: bias + activation in one pass
//! forward, activation derivative (and bias gradient) in one pass backward.
//!
//! dfdx 0.13 spends one single-threaded pass over memory per elementwise op and per gradient
//! (Swish alone is a sigmoid, a product and their two backward kernels); here each direction is
//! one pass, split across two threads when the layer is large.

use crate::nn::Activation;

/// Elements below which a pass runs on one thread.
const SPLIT_MIN_ELEMENTS: usize = 16 * 1024;

/// `sigmoid(x) = 1 / (1 + e^-x)`.
#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// The tanh-approximated GELU's constants (as dfdx's `fast_gelu`).
const GELU_C: f32 = 0.797_884_6; // sqrt(2 / pi)
const GELU_A: f32 = 0.044_715;

/// Where to cut `len` values of `cols`-wide rows into two row-aligned halves, or `None` when
/// the work is too small to pay for a second thread.
fn halves(len: usize, cols: usize) -> Option<usize> {
    let rows = len.checked_div(cols).unwrap_or(0);
    (len >= SPLIT_MIN_ELEMENTS && rows >= 2 && rayon::current_num_threads() > 1)
        .then_some(rows / 2 * cols)
}

/// What [`backward`] needs besides the layer's output.
#[derive(Debug)]
pub enum Saved {
    /// Nothing (ReLU, tanh and identity differentiate from their output).
    Output,
    /// Swish: `sigmoid(z)`; GELU: the pre-activation `z`.
    Aux(Vec<f32>),
}

/// In place, `y = act(y + bias)` over rows of `cols` values; returns what the backward pass
/// needs when `keep` (a layer on a tape), else [`Saved::Output`].
pub fn forward(
    act: Activation,
    y: &mut [f32],
    cols: usize,
    bias: Option<&[f32]>,
    keep: bool,
) -> Saved {
    let keep_aux = keep && matches!(act, Activation::Swish | Activation::Gelu);
    let mut aux = if keep_aux {
        vec![0f32; y.len()]
    } else {
        Vec::new()
    };
    match halves(y.len(), cols) {
        Some(at) => {
            let (y0, y1) = y.split_at_mut(at);
            let (a0, a1) = if keep_aux {
                aux.split_at_mut(at)
            } else {
                (&mut [][..], &mut [][..])
            };
            rayon::join(
                || forward_slice(act, y0, a0, cols, bias),
                || forward_slice(act, y1, a1, cols, bias),
            );
        }
        None => forward_slice(act, y, &mut aux, cols, bias),
    }
    if keep_aux {
        Saved::Aux(aux)
    } else {
        Saved::Output
    }
}

/// [`forward`] on whole rows; `aux` is empty or as long as `y`.
fn forward_slice(
    act: Activation,
    y: &mut [f32],
    aux: &mut [f32],
    cols: usize,
    bias: Option<&[f32]>,
) {
    let keep = !aux.is_empty();
    for (r, row) in y.chunks_exact_mut(cols).enumerate() {
        if let Some(b) = bias {
            for (v, b) in row.iter_mut().zip(b) {
                *v += b;
            }
        }
        let aux_row = if keep {
            &mut aux[r * cols..(r + 1) * cols]
        } else {
            &mut []
        };
        match act {
            Activation::Identity => {}
            Activation::Relu => row.iter_mut().for_each(|v| *v = v.max(0.0)),
            Activation::Tanh => row.iter_mut().for_each(|v| *v = v.tanh()),
            Activation::Swish if keep => {
                for (v, s) in row.iter_mut().zip(aux_row) {
                    *s = sigmoid(*v);
                    *v *= *s;
                }
            }
            Activation::Swish => row.iter_mut().for_each(|v| *v *= sigmoid(*v)),
            Activation::Gelu => {
                if keep {
                    aux_row.copy_from_slice(row);
                }
                for v in row.iter_mut() {
                    let x = *v;
                    let t = (GELU_C * (x + GELU_A * x * x * x)).tanh();
                    *v = 0.5 * x * (1.0 + t);
                }
            }
        }
    }
}

/// `dz = dy * act'`, from the gradient `dy` of the layer's output `y` and what [`forward`]
/// saved; written over `dy`.
pub fn backward(act: Activation, dy: &mut [f32], y: &[f32], saved: &Saved, cols: usize) {
    let aux: &[f32] = match saved {
        Saved::Aux(a) => a,
        Saved::Output => &[],
    };
    match halves(dy.len(), cols) {
        Some(at) => {
            let (d0, d1) = dy.split_at_mut(at);
            let (y0, y1) = y.split_at(at);
            let (a0, a1) = if aux.is_empty() {
                (aux, aux)
            } else {
                aux.split_at(at)
            };
            rayon::join(
                || backward_slice(act, d0, y0, a0),
                || backward_slice(act, d1, y1, a1),
            );
        }
        None => backward_slice(act, dy, y, aux),
    }
}

/// [`backward`] on one window (`y` and `aux` cover the same elements as `dy`).
fn backward_slice(act: Activation, dy: &mut [f32], y: &[f32], aux: &[f32]) {
    match act {
        Activation::Identity => {}
        Activation::Relu => {
            for (d, y) in dy.iter_mut().zip(y) {
                if *y <= 0.0 {
                    *d = 0.0;
                }
            }
        }
        Activation::Tanh => {
            for (d, y) in dy.iter_mut().zip(y) {
                *d *= 1.0 - y * y;
            }
        }
        Activation::Swish => {
            // d/dz z s(z) = s + z s (1 - s) = s + y (1 - s)
            for ((d, y), s) in dy.iter_mut().zip(y).zip(aux) {
                *d *= s + y * (1.0 - s);
            }
        }
        Activation::Gelu => {
            for (d, x) in dy.iter_mut().zip(aux) {
                let x = *x;
                let t = (GELU_C * (x + GELU_A * x * x * x)).tanh();
                let du = GELU_C * (1.0 + 3.0 * GELU_A * x * x);
                *d *= 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
            }
        }
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
