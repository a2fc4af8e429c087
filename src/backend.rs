//! The device abstraction: every model type is generic over a [`Backend`].
//!
//! A backend is any dfdx device for `f32` (`Cpu`, and `Cuda` with the `cuda` feature).

use dfdx::prelude::*;

use crate::kernels::Kernels;

/// A dfdx device that `mvae` can run on.
///
/// Blanket-implemented for every dfdx device that has the library's own [`Kernels`] (`Cpu`,
/// `Cuda`; `Kernels` is where the `Device<f32> + Clone + Default + Debug` bounds live), so user
/// code names `Cpu` or `Cuda` and never implements this trait.
pub trait Backend: Kernels {}

impl<D: Kernels> Backend for D {}

/// The first CUDA GPU, its random generator seeded with `seed` (`Cuda::default()` is seed 0),
/// or an [`Error::Device`](crate::Error::Device) that says why there is none, where
/// `Cuda::default()` panics (no driver, no GPU, cuBLAS not found).
#[cfg(feature = "cuda")]
pub fn cuda_device(seed: u64) -> crate::Result<Cuda> {
    Cuda::try_build(0, seed).map_err(|e| crate::Error::Device {
        what: "CUDA device 0".into(),
        reason: e.to_string(),
    })
}

/// A matrix of runtime shape: `(rows, columns)`.
pub type Matrix<D, T = NoneTape> = Tensor<(usize, usize), f32, D, T>;
/// A vector of runtime length.
pub type Vector<D, T = NoneTape> = Tensor<(usize,), f32, D, T>;
/// A batch of latent vectors: `(batch, L)`.
pub type Latent<const L: usize, D, T = NoneTape> = Tensor<(usize, Const<L>), f32, D, T>;
/// Class indices, one per sample.
pub type Ids<D, T = NoneTape> = Tensor<(usize,), usize, D, T>;

/// Changes a batch tensor's feature dimension between `usize` and `Const<N>` (same id, same
/// data, same tape: gradients flow through).
///
/// # Panics
/// If the runtime width differs from the compile-time one: a bug in the caller, since
/// every layer's width is fixed when the model is built.
pub fn realize<A: Dim, B: Dim, D: Backend, T: Tape<f32, D>>(
    t: Tensor<(usize, A), f32, D, T>,
) -> Tensor<(usize, B), f32, D, T> {
    let got = t.shape().1.size();
    match t.try_realize::<(usize, B)>() {
        Ok(t) => t,
        Err(_) => panic!("feature width {got} does not fit the target shape"),
    }
}
