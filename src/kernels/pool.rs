//! Reused host buffers for the dense kernel's copies of its weights.
//!
//! dfdx 0.13 lends no slice of a tensor's storage, so the CPU dense layer reads its weight
//! from a host copy, made afresh in every forward pass (the copy also brings the weight into
//! the core's own cache for the products that read it). A fresh allocation of a weight's size
//! costs more than the copy: zeroed memory, and above glibc's mmap threshold, new pages that
//! fault in one by one. [`WeightCopy`] takes a buffer of the right size from a small pool
//! instead and gives it back when it is dropped.

use std::ops::Deref;
use std::sync::{Mutex, PoisonError};

use dfdx::prelude::*;

/// The most bytes the pool keeps: enough for two parts' copies of a large model's weights;
/// beyond it, returned buffers are freed.
const MAX_BYTES: usize = 256 << 20;

/// Free buffers.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A host copy of a dense tensor's values, in a pooled buffer.
pub(crate) struct WeightCopy(Vec<f32>);

impl WeightCopy {
    /// The values of `t`, row-major.
    pub(crate) fn of<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Self {
        let n = t.shape().num_elements();
        let reused = {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            let found = pool.iter().position(|b| b.len() == n);
            found.map(|i| pool.swap_remove(i))
        };
        let mut v = reused.unwrap_or_else(|| vec![0.0; n]);
        t.copy_into(&mut v);
        Self(v)
    }
}

impl Deref for WeightCopy {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

impl Drop for WeightCopy {
    fn drop(&mut self) {
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: usize = pool.iter().map(Vec::len).sum();
        if (kept + self.0.len()) * size_of::<f32>() <= MAX_BYTES {
            pool.push(std::mem::take(&mut self.0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy holds the tensor's values; a buffer given back is taken again for the next copy
    /// of that size, and holds the new values.
    #[test]
    fn copies_reuse_buffers() {
        let dev = Cpu::default();
        let a = dev.tensor_from_vec((0..12).map(|i| i as f32).collect(), (3usize, 4usize));
        let b = dev.tensor_from_vec((0..12).map(|i| -(i as f32)).collect(), (3usize, 4usize));
        let first = WeightCopy::of(&a);
        assert_eq!(&*first, a.as_vec().as_slice());
        let address = first.as_ptr();
        drop(first);
        // Other tests run on other threads and may take it first: look for it a few times.
        let reused = (0..100).any(|_| {
            let c = WeightCopy::of(&b);
            assert_eq!(&*c, b.as_vec().as_slice());
            c.as_ptr() == address
        });
        assert!(reused, "the buffer given back was not taken again");
    }
}
