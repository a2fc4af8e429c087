//! [`Kernels`] on the `Cpu`: the dense layer as one forward pass and one backward closure.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::deferred::{self, Sink, WeightFactors};
use super::gemm::{matmul, Operand};
use super::mirror::Mirror;
use super::pool::HostValues;
use super::{activation, adam, bernoulli};
use super::{bernoulli_composed, dense_composed, Activation, AdamSlot, Kernels};
use crate::profile::{self, Phase};
use crate::tensor::{Matrix, ParamMut, Vector};

/// Whether a `Cpu` matrix is stored densely in row-major order (not a permuted or broadcast
/// view). dfdx 0.13 keeps strides private, so they are read off the element addresses.
fn is_row_major<T>(t: &Matrix<Cpu, T>) -> bool {
    let (rows, cols) = *t.shape();
    if rows == 0 || cols == 0 {
        return true;
    }
    let at = |i: usize, j: usize| std::ptr::from_ref(&t[[i, j]]) as usize;
    let size = std::mem::size_of::<f32>();
    (rows < 2 || at(1, 0).wrapping_sub(at(0, 0)) == cols * size)
        && (cols < 2 || at(0, 1).wrapping_sub(at(0, 0)) == size)
}

/// Whether a `Cpu` vector is stored densely (not broadcast).
fn is_dense_vector(t: &Vector<Cpu>) -> bool {
    let at = |i: usize| std::ptr::from_ref(&t[[i]]) as usize;
    t.shape().0 < 2 || at(1).wrapping_sub(at(0)) == std::mem::size_of::<f32>()
}

/// The address of a dense matrix's storage: the key of its deferred gradient
/// ([`Kernels::param_key`]), unique among the tensors alive at once; `None` when it is empty.
fn storage_key<T>(t: &Matrix<Cpu, T>) -> Option<usize> {
    (t.shape().num_elements() > 0).then(|| std::ptr::from_ref(&t[[0, 0]]) as usize)
}

/// The address of a dense vector's storage ([`Kernels::param_key`]); `None` when it is empty.
fn vector_key<T>(t: &Vector<Cpu, T>) -> Option<usize> {
    (t.shape().0 > 0).then(|| std::ptr::from_ref(&t[[0]]) as usize)
}

/// The values of a dense tensor, row-major: dfdx 0.13 lends no slice of a tensor's storage,
/// so they are copied.
fn values<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    let mut v = vec![0f32; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

impl Kernels for Cpu {
    fn dense<T: Tape<f32, Self>>(
        x: Matrix<Self, T>,
        weight: &Matrix<Self>,
        bias: Option<&Vector<Self>>,
        act: Activation,
    ) -> Matrix<Self, T> {
        dense(x, weight, bias, act, true)
    }

    fn dense_on_data<T: Tape<f32, Self>>(
        x: Matrix<Self, T>,
        weight: &Matrix<Self>,
        bias: Option<&Vector<Self>>,
        act: Activation,
    ) -> Matrix<Self, T> {
        dense(x, weight, bias, act, false)
    }

    fn bernoulli_log_likelihood<T: Tape<f32, Self>>(
        logits: Matrix<Self, T>,
        x: &Matrix<Self>,
    ) -> Vector<Self, T> {
        let (rows, cols) = *logits.shape();
        assert_eq!(
            *x.shape(),
            (rows, cols),
            "bernoulli likelihood: logits and values differ in shape"
        );
        if !(is_row_major(&logits) && is_row_major(x)) {
            return bernoulli_composed(logits, x);
        }
        let (logits, mut tape) = logits.split_tape();
        let (ls, xs) = (values(&logits), values(x));
        let mut out = vec![0f32; rows];
        let mut deriv = if T::OWNS_TAPE {
            vec![0f32; rows * cols]
        } else {
            Vec::new()
        };
        bernoulli::forward(&ls, &xs, cols, &mut out, &mut deriv);
        let out = logits.device().tensor_from_vec(out, (rows,));
        if T::OWNS_TAPE {
            let y = out.clone();
            tape.add_backward_op(move |grads| {
                let g = grads.get_or_alloc_mut(&y)?.to_vec();
                bernoulli::backward(grads.get_or_alloc_mut(&logits)?, &deriv, &g, cols);
                Ok(())
            });
        }
        out.put_tape(tape)
    }

    fn training_parts(batch: usize) -> usize {
        // Two halves, each big enough for gemm to stay efficient (measured on the MNIST
        // model: batch 100 in two parts of 50 on 2 threads; see docs/performance.md).
        if batch >= 2 * MIN_PART {
            2
        } else {
            1
        }
    }

    fn deferring_weight_gradients<R>(f: impl FnOnce() -> R) -> (R, Vec<WeightFactors>) {
        deferred::collect(f)
    }

    fn param_key(p: &ParamMut<'_, Self>) -> Option<usize> {
        match p {
            ParamMut::Matrix(t) => storage_key(t),
            ParamMut::Vector(t) => vector_key(t),
        }
    }

    fn adam_update(
        cfg: &AdamConfig,
        t: i32,
        shares: &[f32],
        slots: &mut [AdamSlot<'_, Self>],
    ) -> Result<(), CpuError> {
        // Each parameter's gradient is formed (from its deferred factors) or blended from the
        // parts' right before Adam reads it, while it is in this core's cache.
        let update = |s: &mut AdamSlot<'_, Cpu>| {
            // The update runs on the parameter's host mirror (a copy of the parameter where it
            // has none yet), whose guard goes first so the parameter is written in place.
            let mut values = match s.mirror.take() {
                Some(m) => m.release(),
                None => s.param.to_vec(),
            };
            let (m, v) = (&mut s.moment1, &mut s.moment2);
            match (&s.param, s.grads.split_first_mut()) {
                (ParamMut::Matrix(w), _) if !s.factors.is_empty() => {
                    deferred_update(cfg, t, *w.shape(), &s.factors, &mut values, m, v);
                }
                (_, Some((batch, parts))) => {
                    let parts: Vec<&[f32]> = parts.iter().map(|g| g.as_slice()).collect();
                    blend(batch, &parts, shares);
                    adam::update(cfg, t, &mut values, m, v, batch);
                }
                (_, None) => panic!("adam: a parameter with neither gradients nor factors"),
            }
            s.mirror = Mirror::write(&mut s.param, values);
        };
        // Each parameter's update is a job of its own for rayon's threads (they are
        // independent), largest first, so a thread that is done takes the next one and neither
        // waits long for the other, even when one core runs slower (as this project's VM's
        // often do).
        let mut order: Vec<&mut AdamSlot<'_, Cpu>> = slots.iter_mut().collect();
        order.sort_by_key(|s| std::cmp::Reverse(s.param.len()));
        order.into_par_iter().with_max_len(1).for_each(update);
        Ok(())
    }
}

/// Adam on a weight `(outputs, inputs)` whose gradient the parts deferred: the gradient is
/// formed from `factors` a block of rows at a time into a buffer the thread keeps, and each
/// block updates its rows of `p` and the moments while it is in the core's cache (a whole
/// gradient of the weight's size would go out to L3 and come back).
fn deferred_update(
    cfg: &AdamConfig,
    t: i32,
    (outputs, inputs): (usize, usize),
    factors: &[(f32, WeightFactors)],
    p: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = outputs * inputs;
    assert!(
        p.len() == n && m.len() == n && v.len() == n,
        "adam: a weight's buffers differ from its shape"
    );
    if n == 0 {
        return;
    }
    let rows = (GRADIENT_BLOCK_FLOATS / inputs).max(1);
    let mut g = GRADIENT_BLOCK.take();
    if g.len() < rows.min(outputs) * inputs {
        g.resize(rows.min(outputs) * inputs, 0.0);
    }
    for r0 in (0..outputs).step_by(rows) {
        let r1 = (r0 + rows).min(outputs);
        let span = r0 * inputs..r1 * inputs;
        let block = &mut g[..span.len()];
        deferred::weight_gradient_rows(block, factors, r0..r1, inputs);
        let (p, m, v) = (&mut p[span.clone()], &mut m[span.clone()], &mut v[span]);
        adam::update(cfg, t, p, m, v, block);
    }
    GRADIENT_BLOCK.set(g);
}

/// The size of a block of a deferred weight gradient: 256 KiB, an eighth of a core's L2 here,
/// and wide enough that gemm's repacking of `x` per block stays small.
const GRADIENT_BLOCK_FLOATS: usize = 64 << 10;

thread_local! {
    /// The block [`deferred_update`] forms gradients in.
    static GRADIENT_BLOCK: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `batch = shares[0] * batch + sum_i shares[i + 1] * parts[i]`: the gradient of a batch from
/// its parts' (each the gradient of the part's mean loss).
fn blend(batch: &mut [f32], parts: &[&[f32]], shares: &[f32]) {
    assert_eq!(parts.len() + 1, shares.len(), "one share per part");
    let a = shares[0];
    match parts.split_first() {
        None if a == 1.0 => {}
        None => batch.iter_mut().for_each(|d| *d *= a),
        Some((first, rest)) => {
            let b = shares[1];
            for (d, s) in batch.iter_mut().zip(*first) {
                *d = a * *d + b * s;
            }
            for (part, &b) in rest.iter().zip(&shares[2..]) {
                for (d, s) in batch.iter_mut().zip(*part) {
                    *d += b * s;
                }
            }
        }
    }
}

/// The smallest part of a batch worth a thread of its own.
const MIN_PART: usize = 32;

/// [`Kernels::dense`] on the CPU; `input_grad`: whether the backward pass adds `x`'s gradient.
fn dense<T: Tape<f32, Cpu>>(
    x: Matrix<Cpu, T>,
    weight: &Matrix<Cpu>,
    bias: Option<&Vector<Cpu>>,
    act: Activation,
    input_grad: bool,
) -> Matrix<Cpu, T> {
    let (rows, inputs) = *x.shape();
    let (outputs, w_inputs) = *weight.shape();
    assert_eq!(
        w_inputs, inputs,
        "dense layer: weight has {w_inputs} inputs, x has {inputs} columns"
    );
    let dense = is_row_major(&x)
        && is_row_major(weight)
        && bias.is_none_or(|b| is_dense_vector(b) && b.shape().0 == outputs);
    if !dense {
        return dense_composed(x, weight, bias, act);
    }
    let (x, mut tape) = x.split_tape();
    let xs = values(&x);
    let copy = profile::start();
    let ws = HostValues::of(weight, storage_key(weight));
    let bs = bias.map(|b| HostValues::of(b, vector_key(b)));
    copy.stop(Phase::WeightCopy);
    let product = profile::start();
    // gemm repacks one of the two operands for its micro-kernels; the product is laid out so
    // that it is the smaller one. A few rows of x through a wide layer (training): y^T = W
    // x^T, which gemm computes reading W where it lies, then laid out row-major with the bias
    // added on the way. Many rows through a narrow layer (evaluation, K samples per image), or
    // few inputs (a decoder's first layer), where laying out y^T would cost more than the
    // product gains: y = x W^T directly, the bias added in the activation pass.
    let (mut y, bias_left) = if rows <= outputs && inputs >= TRANSPOSE_MIN_INPUTS {
        // y^T only lives until it is laid out: a buffer this thread keeps (taken out while in
        // use, since a nested part may run here during the split product), not a zeroed one.
        let mut yt = TRANSPOSED.take();
        if yt.len() < rows * outputs {
            yt.resize(rows * outputs, 0.0);
        }
        let yt_used = &mut yt[..rows * outputs];
        matmul(
            yt_used,
            (outputs, rows, inputs),
            Operand::plain(&ws),
            Operand::transposed(&xs),
            false,
        );
        product.stop(Phase::ForwardProduct);
        let layout = profile::start();
        let y = transpose_with_bias(yt_used, outputs, rows, bs.as_deref());
        layout.stop(Phase::Transpose);
        TRANSPOSED.set(yt);
        (y, None)
    } else {
        let mut y = vec![0f32; rows * outputs];
        matmul(
            &mut y,
            (rows, outputs, inputs),
            Operand::plain(&xs),
            Operand::transposed(&ws),
            false,
        );
        product.stop(Phase::ForwardProduct);
        (y, bs.as_deref())
    };
    let activation = profile::start();
    let saved = activation::forward(act, &mut y, outputs, bias_left, T::OWNS_TAPE);
    activation.stop(Phase::Activation);
    let out = x.device().tensor_from_vec(y, (rows, outputs));
    if T::OWNS_TAPE {
        let weight = weight.clone();
        let bias = bias.cloned();
        let y = out.clone();
        let layer = Saves {
            xs,
            ws,
            deriv: saved,
            deferred: deferred::sink().zip(storage_key(&weight)),
        };
        tape.add_backward_op(move |grads| {
            backward(&x, &weight, bias.as_ref(), &y, layer, input_grad, grads)
        });
    }
    out.put_tape(tape)
}

/// The fewest inputs for which the forward product goes through `y^T`: below it the copy that
/// lays `y^T` out row-major costs more than the product gains from it (gemm 0.19, one thread,
/// 512 outputs: with 64 inputs 0.05 ms directly against 0.09 ms through `y^T` at 100 rows, with
/// 128 inputs 0.10 against 0.13, with 256 about equal, with 512 0.55 against 0.43).
const TRANSPOSE_MIN_INPUTS: usize = 256;

thread_local! {
    /// The forward product's `y^T`, kept for the next layer on this thread.
    static TRANSPOSED: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `src^T + bias`: `src` is `(cols, rows)` row-major, the result `(rows, cols)`, `bias` one
/// value per column of the result.
///
/// Row by row of the result: the `cols` lines of `src` it reads stay in the L1 cache for the
/// next rows (`cols` x 64 bytes: 32 KiB at 512 columns).
fn transpose_with_bias(src: &[f32], cols: usize, rows: usize, bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        let column = src[r..].iter().step_by(rows).take(cols);
        match bias {
            Some(b) => out.extend(column.zip(b).map(|(v, b)| v + b)),
            None => out.extend(column),
        }
    }
    out
}

/// Host copies a layer keeps for its backward pass.
struct Saves {
    xs: Vec<f32>,
    ws: HostValues,
    /// `act'(z)`; `None` for the identity.
    deriv: Option<Vec<f32>>,
    /// Where the weight's gradient goes as factors, and the weight's key, if it is deferred.
    deferred: Option<(Sink, usize)>,
}

/// Adds the gradients of `x`, `W` and `b` given `y`'s; `W`'s goes to the layer's sink as
/// factors instead where it is deferred.
fn backward(
    x: &Matrix<Cpu>,
    weight: &Matrix<Cpu>,
    bias: Option<&Vector<Cpu>>,
    y: &Matrix<Cpu>,
    layer: Saves,
    input_grad: bool,
    grads: &mut Gradients<f32, Cpu>,
) -> Result<(), CpuError> {
    let (rows, inputs) = *x.shape();
    let outputs = y.shape().1;
    let Saves {
        xs,
        ws,
        deriv,
        deferred,
    } = layer;
    // dz = dy * act'(z); dy is copied out because the gradient store lends one slot at a time.
    let timer = profile::start();
    let mut dz: Vec<f32> = grads.get_or_alloc_mut(y)?.to_vec();
    activation::backward(&mut dz, deriv.as_deref(), outputs);
    if let Some(b) = bias {
        activation::bias_gradient(grads.get_or_alloc_mut(b)?, &dz, outputs);
    }
    timer.stop(Phase::OutputGradient);
    if input_grad {
        let timer = profile::start();
        let dx = grads.get_or_alloc_mut(x)?;
        timer.stop(Phase::GradientAlloc);
        let timer = profile::start();
        // dx (rows x inputs) += dz W
        matmul(
            dx,
            (rows, inputs, outputs),
            Operand::plain(&dz),
            Operand::plain(&ws),
            true,
        );
        timer.stop(Phase::InputProduct);
    }
    if let Some((sink, weight)) = deferred {
        let factors = WeightFactors {
            weight,
            rows,
            dz,
            x: xs,
        };
        sink.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(factors);
        return Ok(());
    }
    let timer = profile::start();
    let dw = grads.get_or_alloc_mut(weight)?;
    timer.stop(Phase::GradientAlloc);
    let timer = profile::start();
    // dW (outputs x inputs) += dz^T x
    matmul(
        dw,
        (outputs, inputs, rows),
        Operand::transposed(&dz),
        Operand::plain(&xs),
        true,
    );
    timer.stop(Phase::WeightProduct);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn random(dev: &Cpu, rows: usize, cols: usize, rng: &mut impl Rng) -> Matrix<Cpu> {
        let v: Vec<f32> = (0..rows * cols).map(|_| rng.gen_range(-2.0..2.0)).collect();
        dev.tensor_from_vec(v, (rows, cols))
    }

    fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= tol * (1.0 + y.abs()),
                "{what}[{i}]: kernel {x}, composed {y}"
            );
        }
    }

    /// Forward values and the gradients of x, W and b equal dfdx's composed layer, for every
    /// activation, with and without bias, in both layouts of the forward product, below and
    /// above the two-thread thresholds.
    #[test]
    fn kernel_matches_the_composed_layer() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let acts = [
            Activation::Swish,
            Activation::Relu,
            Activation::Tanh,
            Activation::Gelu,
            Activation::Identity,
        ];
        // Both layouts of the forward product (rows <= outputs: transposed), each below and
        // above the two-thread thresholds.
        for &(rows, inputs, outputs) in &[(3, 5, 4), (100, 300, 200), (9, 7, 3), (600, 300, 100)] {
            for act in acts {
                for with_bias in [true, false] {
                    let x = random(&dev, rows, inputs, &mut rng);
                    let w = random(&dev, outputs, inputs, &mut rng) * 0.1;
                    let b = with_bias.then(|| {
                        let v: Vec<f32> = (0..outputs).map(|_| rng.gen_range(-1.0..1.0)).collect();
                        dev.tensor_from_vec(v, (outputs,))
                    });
                    // a non-uniform upstream gradient: weights on the outputs
                    let up = random(&dev, rows, outputs, &mut rng);
                    let run = |kernel: bool| {
                        let xt = x.leaky_trace();
                        let y = if kernel {
                            Cpu::dense(xt, &w, b.as_ref(), act)
                        } else {
                            dense_composed(xt, &w, b.as_ref(), act)
                        };
                        let values = y.as_vec();
                        let g = (y * up.clone()).sum().backward();
                        let gb = b.as_ref().map(|b| g.get(b).as_vec());
                        (values, g.get(&x).as_vec(), g.get(&w).as_vec(), gb)
                    };
                    let (y1, gx1, gw1, gb1) = run(true);
                    let (y2, gx2, gw2, gb2) = run(false);
                    let what = format!("{act:?} {rows}x{inputs}->{outputs} bias {with_bias}");
                    close(&y1, &y2, 1e-5, &format!("{what} y"));
                    close(&gx1, &gx2, 1e-4, &format!("{what} dx"));
                    close(&gw1, &gw2, 1e-4, &format!("{what} dW"));
                    if let (Some(a), Some(b)) = (gb1, gb2) {
                        close(&a, &b, 1e-4, &format!("{what} db"));
                    }
                }
            }
        }
    }

    /// On data, the layer computes the same values and parameter gradients and leaves `x`'s
    /// gradient out.
    #[test]
    fn on_data_skips_only_the_input_gradient() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(6);
        let x = random(&dev, 8, 5, &mut rng);
        let w = random(&dev, 4, 5, &mut rng);
        let b: Vector<Cpu> = dev.tensor_from_vec(vec![0.1, -0.2, 0.3, 0.0], (4,));
        let run = |on_data: bool| {
            let xt = x.leaky_trace();
            let y = if on_data {
                Cpu::dense_on_data(xt, &w, Some(&b), Activation::Swish)
            } else {
                Cpu::dense(xt, &w, Some(&b), Activation::Swish)
            };
            let v = y.as_vec();
            let mut g = y.sum().backward();
            let gx = g.get_or_alloc_mut(&x).unwrap().to_vec();
            (v, g.get(&w).as_vec(), g.get(&b).as_vec(), gx)
        };
        let (y1, gw1, gb1, gx1) = run(true);
        let (y2, gw2, gb2, gx2) = run(false);
        assert_eq!((y1, gw1, gb1), (y2, gw2, gb2));
        assert!(gx1.iter().all(|&g| g == 0.0));
        assert!(gx2.iter().any(|&g| g != 0.0));
    }

    /// Inside a deferring scope the layer leaves its weight's gradient as factors, one per use
    /// (here two uses of one weight), which form the gradient the tape gives outside it; the
    /// gradients of `x` and `b` stay on the tape, unchanged.
    /// Adam on a deferred weight, block by block (three blocks, the last one short), gives the
    /// same bits as the whole gradient formed first and one pass of Adam over it.
    #[test]
    fn deferred_update_in_blocks_equals_the_whole() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let (outputs, inputs) = (150, 1000); // 65 rows per block: 65, 65, 20
        assert_eq!(GRADIENT_BLOCK_FLOATS / inputs, 65);
        let mut random =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect() };
        let factors: Vec<(f32, WeightFactors)> = [(0.4, 3), (0.6, 5)]
            .into_iter()
            .map(|(share, rows)| {
                let f = WeightFactors {
                    weight: 1,
                    rows,
                    dz: random(rows * outputs),
                    x: random(rows * inputs),
                };
                (share, f)
            })
            .collect();
        let cfg = AdamConfig {
            weight_decay: Some(WeightDecay::Decoupled(0.01)),
            ..AdamConfig::default()
        };
        let n = outputs * inputs;
        let (p, m, v) = (
            random(n),
            random(n),
            random(n).iter().map(|x| x.abs()).collect(),
        );
        let (mut p1, mut m1, mut v1): (Vec<f32>, Vec<f32>, Vec<f32>) = (p.clone(), m.clone(), v);
        let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
        deferred_update(
            &cfg,
            4,
            (outputs, inputs),
            &factors,
            &mut p1,
            &mut m1,
            &mut v1,
        );
        let mut g = vec![0.0; n];
        deferred::weight_gradient(&mut g, &factors);
        adam::update(&cfg, 4, &mut p2, &mut m2, &mut v2, &g);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&p1), bits(&p2));
        assert_eq!(bits(&m1), bits(&m2));
        assert_eq!(bits(&v1), bits(&v2));
        assert_ne!(bits(&p1), bits(&p), "the update moved the weight");
    }

    #[test]
    fn deferred_factors_form_the_tape_gradient() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let (rows, inputs, outputs) = (60, 70, 90);
        let x = random(&dev, rows, inputs, &mut rng);
        let w = random(&dev, outputs, inputs, &mut rng) * 0.1;
        let b: Vector<Cpu> = dev.tensor_from_vec(vec![0.1; outputs], (outputs,));
        let w2 = random(&dev, inputs, outputs, &mut rng) * 0.1;
        let up = random(&dev, rows, outputs, &mut rng);
        let run = || {
            let h = Cpu::dense(x.leaky_trace(), &w, Some(&b), Activation::Tanh);
            let h2 = Cpu::dense(h, &w2, None, Activation::Swish);
            let y = Cpu::dense(h2, &w, Some(&b), Activation::Relu);
            let mut g = (y * up.clone()).sum().backward();
            let gx = g.get_or_alloc_mut(&x).unwrap().to_vec();
            (gx, g.get(&b).as_vec(), g)
        };
        let (gx1, gb1, g) = run();
        let ((gx2, gb2, _), factors) = Cpu::deferring_weight_gradients(run);
        close(&gx2, &gx1, 1e-6, "dx");
        close(&gb2, &gb1, 1e-6, "db");
        for (weight, uses) in [(&w, 2), (&w2, 1)] {
            let key = storage_key(weight);
            let mine: Vec<(f32, WeightFactors)> = factors
                .iter()
                .filter(|f| Some(f.weight) == key)
                .map(|f| (1.0, f.clone()))
                .collect();
            assert_eq!(mine.len(), uses);
            let mut dw = vec![f32::NAN; weight.shape().num_elements()];
            deferred::weight_gradient(&mut dw, &mine);
            close(&dw, &g.get(weight).as_vec(), 1e-5, "dW");
        }
        assert_eq!(factors.len(), 3);
    }

    /// `blend` gives `sum_i shares[i] * parts[i]` for one part (whole or not), two and three.
    #[test]
    fn blend_is_the_weighted_sum_of_the_parts() {
        let n = 37;
        let part =
            |k: usize| -> Vec<f32> { (0..n).map(|i| ((i * (k + 3)) % 11) as f32 - 5.0).collect() };
        for shares in [vec![1.0], vec![0.5], vec![0.3, 0.7], vec![0.2, 0.5, 0.3]] {
            let mut batch = part(0);
            let others: Vec<Vec<f32>> = (1..shares.len()).map(part).collect();
            let refs: Vec<&[f32]> = others.iter().map(Vec::as_slice).collect();
            blend(&mut batch, &refs, &shares);
            for (i, got) in batch.iter().enumerate() {
                let want: f32 = shares.iter().enumerate().map(|(k, s)| s * part(k)[i]).sum();
                assert!(
                    (got - want).abs() <= 1e-5,
                    "{shares:?}[{i}]: {got} vs {want}"
                );
            }
        }
    }

    /// The Bernoulli log-likelihood and its logits' gradient equal dfdx's composed version,
    /// logits from saturated to small, targets binary and fractional.
    #[test]
    fn bernoulli_matches_the_composed_likelihood() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (rows, cols) = (6, 300);
        let l: Vec<f32> = (0..rows * cols)
            .map(|i| match i % 5 {
                0 => rng.gen_range(-30.0..30.0),
                1 => rng.gen_range(-1e-3..1e-3),
                _ => rng.gen_range(-4.0..4.0),
            })
            .collect();
        let x: Vec<f32> = (0..rows * cols)
            .map(|i| {
                if i % 3 == 0 {
                    rng.gen_range(0.0..1.0)
                } else {
                    f32::from(u8::from(rng.gen_bool(0.3)))
                }
            })
            .collect();
        let l: Matrix<Cpu> = dev.tensor_from_vec(l, (rows, cols));
        let x: Matrix<Cpu> = dev.tensor_from_vec(x, (rows, cols));
        let up: Vector<Cpu> =
            dev.tensor_from_vec((0..rows).map(|r| r as f32 - 2.5).collect(), (rows,));
        let run = |kernel: bool| {
            let lt = l.leaky_trace();
            let y = if kernel {
                Cpu::bernoulli_log_likelihood(lt, &x)
            } else {
                bernoulli_composed(lt, &x)
            };
            let v = y.as_vec();
            let g = (y * up.clone()).sum().backward();
            (v, g.get(&l).as_vec())
        };
        let (y1, g1) = run(true);
        let (y2, g2) = run(false);
        close(&y1, &y2, 1e-5, "log p");
        close(&g1, &g2, 1e-5, "d/dlogits");
        let untaped = Cpu::bernoulli_log_likelihood(l.clone(), &x).as_vec();
        assert_eq!(untaped, y1);
    }

    #[test]
    fn untaped_forward_equals_taped_forward() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x = random(&dev, 10, 6, &mut rng);
        let w = random(&dev, 7, 6, &mut rng);
        let a = Cpu::dense(x.clone(), &w, None, Activation::Swish).as_vec();
        let b = Cpu::dense(x.leaky_trace(), &w, None, Activation::Swish).as_vec();
        assert_eq!(a, b);
    }

    #[test]
    fn a_strided_input_takes_the_composed_path() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let xt = random(&dev, 6, 4, &mut rng);
        // x = xt^T as a permuted view: not row-major
        let x: Matrix<Cpu> = xt.clone().permute::<_, Axes2<1, 0>>();
        assert!(!is_row_major(&x));
        assert!(is_row_major(&xt));
        let w = random(&dev, 3, 6, &mut rng);
        let got = Cpu::dense(x.clone(), &w, None, Activation::Tanh).as_vec();
        let want = dense_composed(x, &w, None, Activation::Tanh).as_vec();
        close(&got, &want, 1e-6, "strided");
    }
}
