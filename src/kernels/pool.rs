//! The dense kernel's host values of its parameters: a parameter's mirror where an optimizer
//! publishes one ([`super::mirror`]), else a copy in a reused buffer.
//!
//! dfdx 0.13 lends no slice of a tensor's storage, so a parameter without a mirror (before the
//! first update, or outside training) is copied afresh in every forward pass. A fresh
//! allocation of a weight's size costs more than the copy: zeroed memory, and above glibc's
//! mmap threshold, new pages that fault in one by one. The copy takes a buffer of the right
//! size from a small pool instead and gives it back when it is dropped.

use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError};

use dfdx::prelude::*;

/// The most bytes the pool keeps: enough for two parts' copies of a large model's weights;
/// beyond it, returned buffers are freed.
const MAX_BYTES: usize = 256 << 20;

/// Free buffers.
static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A dense parameter's values on the host, row-major.
pub(crate) enum HostValues {
    /// Its published mirror.
    Mirrored(Arc<Vec<f32>>),
    /// A copy, in a pooled buffer.
    Copied(Vec<f32>),
}

impl HostValues {
    /// The values of `t`, a dense tensor whose storage has the mirror key `key`.
    pub(crate) fn of<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>, key: Option<usize>) -> Self {
        let n = t.shape().num_elements();
        if let Some(values) = key.and_then(|k| super::mirror::lookup(k, n)) {
            return Self::Mirrored(values);
        }
        let reused = {
            let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
            let found = pool.iter().position(|b| b.len() == n);
            found.map(|i| pool.swap_remove(i))
        };
        let mut v = reused.unwrap_or_else(|| vec![0.0; n]);
        t.copy_into(&mut v);
        Self::Copied(v)
    }
}

impl Deref for HostValues {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match self {
            Self::Mirrored(v) => v,
            Self::Copied(v) => v,
        }
    }
}

impl Drop for HostValues {
    fn drop(&mut self) {
        let Self::Copied(v) = self else { return };
        let mut pool = POOL.lock().unwrap_or_else(PoisonError::into_inner);
        let kept: usize = pool.iter().map(Vec::len).sum();
        if (kept + v.len()) * size_of::<f32>() <= MAX_BYTES {
            pool.push(std::mem::take(v));
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
        let first = HostValues::of(&a, None);
        assert_eq!(&*first, a.as_vec().as_slice());
        let address = first.as_ptr();
        drop(first);
        // Other tests run on other threads and may take it first: look for it a few times.
        let reused = (0..100).any(|_| {
            let c = HostValues::of(&b, None);
            assert_eq!(&*c, b.as_vec().as_slice());
            c.as_ptr() == address
        });
        assert!(reused, "the buffer given back was not taken again");
    }
}
