//! The device abstraction: every model type is generic over a [`Backend`].
//!
//! A backend is any dfdx device for `f32` (`Cpu`, and `Cuda` with the `cuda` feature).

#[cfg(feature = "cuda")]
use dfdx::prelude::Cuda;

use crate::kernels::Kernels;
pub use crate::tensor::{realize, Ids, Latent, Matrix, Vector};

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
