//! The project's own kernels for the hot path of training: a dense layer `act(x W^T + b)` and
//! the Bernoulli log-likelihood, each as one tape operation, and Adam's update from the
//! gradients of a batch trained in parts.
//!
//! [`Kernels`] is implemented per device. On the `Cpu` (`kernels/cpu.rs`) a dense layer is one
//! gemm 0.19 product (AVX-512 where present, split over two threads) laid out so that gemm
//! repacks the smaller operand, and one fused bias + activation pass forward; one fused
//! derivative pass plus two products backward. On other devices (`Cuda`) it is
//! [`dense_composed`], the same layer from dfdx's own ops; the CPU kernels are tested against
//! it, as the Bernoulli kernel is against [`bernoulli_composed`].

use dfdx::prelude::*;

use crate::tensor::{Matrix, ParamMut, Vector};

// The kernels' internals: crate-private, reached only through `Kernels` and the types below.
pub(crate) mod activation;
pub(crate) mod adam;
pub(crate) mod bernoulli;
mod cpu;
pub(crate) mod deferred;
pub(crate) mod gemm;
pub(crate) mod mirror;
mod pool;

pub use activation::Activation;
// Public only because `Kernels`' hidden methods name them; not part of the documented API.
#[doc(hidden)]
pub use adam::AdamSlot;
#[doc(hidden)]
pub use deferred::WeightFactors;

/// Device kernels the library provides beyond dfdx's.
pub trait Kernels: Device<f32> + Clone + Default + std::fmt::Debug + 'static {
    /// `act(x W^T + b)` for `x: (batch, inputs)`, `W: (outputs, inputs)`, `b: (outputs,)`,
    /// recording its backward pass on `x`'s tape (gradients for `x`, `W` and `b`).
    ///
    /// # Panics
    /// If `W`'s inputs differ from `x`'s width (layers are sized when the model is built).
    fn dense<T: Tape<f32, Self>>(
        x: Matrix<Self, T>,
        weight: &Matrix<Self>,
        bias: Option<&Vector<Self>>,
        act: Activation,
    ) -> Matrix<Self, T>;

    /// [`Kernels::dense`] on an `x` that is data, not a result: the backward pass leaves out
    /// `x`'s gradient (for the first layer of an encoder, the product `dz W` nobody reads).
    fn dense_on_data<T: Tape<f32, Self>>(
        x: Matrix<Self, T>,
        weight: &Matrix<Self>,
        bias: Option<&Vector<Self>>,
        act: Activation,
    ) -> Matrix<Self, T> {
        Self::dense(x, weight, bias, act)
    }

    /// `log p(x | logits)` per row for independent Bernoulli variables,
    /// `sum_j x_j l_j - softplus(l_j)`, recorded on `logits`' tape (no gradient for `x`).
    fn bernoulli_log_likelihood<T: Tape<f32, Self>>(
        logits: Matrix<Self, T>,
        x: &Matrix<Self>,
    ) -> Vector<Self, T> {
        bernoulli_composed(logits, x)
    }

    /// Into how many parts a training batch of `batch` samples is cut, each part's forward
    /// and backward pass running on its own thread (on the CPU, where dfdx's elementwise
    /// kernels are single-threaded); `1` where one device runs the whole batch.
    ///
    /// A function of the batch size only, never of the thread count, so a seed gives the
    /// same run on any machine.
    ///
    /// Hidden from the docs: the trainer's business, public as a bench hook
    /// (`benches/step_loop.rs` calls `<Cpu as Kernels>::training_parts`).
    #[doc(hidden)]
    fn training_parts(batch: usize) -> usize {
        let _ = batch;
        1
    }

    /// Runs one training part's forward and backward pass, `f`; returns its result and the
    /// weight gradients the device's dense kernel deferred in it (`kernels/deferred.rs`: all of
    /// them on the CPU, none by default).
    ///
    /// Hidden from the docs, as are [`WeightFactors`]: the trainer's business.
    #[doc(hidden)]
    fn deferring_weight_gradients<R>(f: impl FnOnce() -> R) -> (R, Vec<WeightFactors>) {
        (f(), Vec::new())
    }

    /// The key by which [`WeightFactors`] and the host mirrors (`kernels/mirror.rs`) name a
    /// parameter (on the CPU the address of its storage, as dfdx 0.13 keeps tensor ids
    /// crate-private); `None` where the device defers nothing and keeps no host mirrors.
    ///
    /// Hidden from the docs: the optimizer's business.
    #[doc(hidden)]
    fn param_key(p: &ParamMut<'_, Self>) -> Option<usize> {
        let _ = p;
        None
    }

    /// Adam step `t` on every parameter in `slots`, each from the gradient of the whole batch:
    /// `sum_i shares[i] * grads[i]` over the batch's parts, or formed from the slot's
    /// `factors` where the gradient was deferred (`grads` is then empty). A device
    /// that keeps host mirrors ([`Kernels::param_key`]) releases the slot's
    /// `mirror` before writing the parameter and leaves a fresh one after.
    ///
    /// By default one parameter after the other with dfdx's kernel, from a batch in one part.
    ///
    /// # Errors
    /// The device's error.
    ///
    /// # Panics
    /// By default, if `shares` is not `[1.0]`: a device whose [`Kernels::training_parts`] is
    /// above 1 implements the blend.
    ///
    /// Hidden from the docs, as is [`AdamSlot`]: the optimizer's business.
    #[doc(hidden)]
    fn adam_update(
        cfg: &AdamConfig,
        t: i32,
        shares: &[f32],
        slots: &mut [AdamSlot<'_, Self>],
    ) -> Result<(), Self::Err> {
        assert_eq!(shares, [1.0], "this device trains each batch in one part");
        assert!(
            slots.iter().all(|s| s.factors.is_empty()),
            "this device defers no weight gradient"
        );
        slots.iter_mut().try_for_each(|s| s.update(cfg, t))
    }
}

/// One part of a batch after its backward pass, on its way into the batch's gradient
/// (`optim::Adam::update_parts`).
pub(crate) struct PartGradients<D: Kernels> {
    /// The gradients of the part's own mean loss.
    pub(crate) grads: Gradients<f32, D>,
    /// Its fraction of the batch's samples.
    pub(crate) share: f32,
    /// The weight gradients its dense layers deferred ([`Kernels::deferring_weight_gradients`]);
    /// `grads` holds none for these weights.
    pub(crate) factors: Vec<WeightFactors>,
}

/// [`Kernels::dense`] from dfdx's ops: a matmul, a broadcast bias add and the activation.
pub fn dense_composed<D: Device<f32>, T: Tape<f32, D>>(
    x: Matrix<D, T>,
    weight: &Matrix<D>,
    bias: Option<&Vector<D>>,
    act: Activation,
) -> Matrix<D, T> {
    let y = x.matmul(weight.clone().permute::<_, Axes2<1, 0>>());
    let y = match bias {
        Some(b) => {
            let shape = *y.shape();
            y + b.clone().broadcast_like::<_, Axis<0>>(&shape)
        }
        None => y,
    };
    act.apply(y)
}

/// [`Kernels::bernoulli_log_likelihood`] from dfdx's ops: binary cross-entropy with logits,
/// summed per row and negated.
pub fn bernoulli_composed<D: Device<f32>, T: Tape<f32, D>>(
    logits: Matrix<D, T>,
    x: &Matrix<D>,
) -> Vector<D, T> {
    logits.bce_with_logits(x.clone()).sum::<(usize,), Axis<1>>() * -1.0
}

#[cfg(feature = "cuda")]
impl Kernels for Cuda {
    fn dense<T: Tape<f32, Self>>(
        x: Matrix<Self, T>,
        weight: &Matrix<Self>,
        bias: Option<&Vector<Self>>,
        act: Activation,
    ) -> Matrix<Self, T> {
        dense_composed(x, weight, bias, act)
    }
}
