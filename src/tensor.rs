//! The tensor vocabulary every layer above shares: runtime-shaped aliases over dfdx's
//! `Tensor`, [`realize`], and [`ParamMut`], a mutable view of one parameter.
//!
//! A leaf: it depends on dfdx only, so the kernels, the backend and the layers can all use it
//! without importing each other. Bounded on dfdx's `Device<f32>`, not on the crate's
//! `Backend`. The public paths are `backend::{Matrix, Vector, Latent, Ids, realize}` and
//! `nn::ParamMut`, which re-export these.

use dfdx::prelude::*;

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
pub fn realize<A: Dim, B: Dim, D: Device<f32>, T: Tape<f32, D>>(
    t: Tensor<(usize, A), f32, D, T>,
) -> Tensor<(usize, B), f32, D, T> {
    let got = t.shape().1.size();
    match t.try_realize::<(usize, B)>() {
        Ok(t) => t,
        Err(_) => panic!("feature width {got} does not fit the target shape"),
    }
}

/// A mutable view of one parameter tensor, as handed to a `ParamVisitor` (`nn`).
pub enum ParamMut<'a, D: Device<f32>> {
    /// A weight matrix, `(outputs, inputs)`.
    Matrix(&'a mut Matrix<D>),
    /// A bias or other vector.
    Vector(&'a mut Vector<D>),
}

impl<D: Device<f32>> ParamMut<'_, D> {
    /// Number of scalars in the parameter.
    pub fn len(&self) -> usize {
        match self {
            ParamMut::Matrix(t) => t.shape().num_elements(),
            ParamMut::Vector(t) => t.shape().num_elements(),
        }
    }

    /// Its values, copied to the host.
    pub fn to_vec(&self) -> Vec<f32> {
        match self {
            ParamMut::Matrix(t) => t.as_vec(),
            ParamMut::Vector(t) => t.as_vec(),
        }
    }

    /// Whether the parameter holds no scalars.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
