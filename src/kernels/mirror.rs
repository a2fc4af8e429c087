//! Host mirrors of the parameters an optimizer updates: the CPU dense kernel reads a weight's
//! values from its mirror instead of copying them out of dfdx's storage in every forward pass.
//!
//! Why: dfdx 0.13 lends no slice of a tensor's storage, so without a mirror each dense layer
//! copies its weight once per use and part (about 6M floats per step of the MNIST model,
//! 3 thread-ms). With mirrors, Adam updates each parameter's mirror ([`super::adam`]) and copies
//! it into the parameter once per step, in the parameter's job, while it is in that core's cache.
//!
//! Soundness rests on one invariant: a mirror is published (found by [`lookup`]) only while a
//! clone of its parameter, the *guard*, shares the parameter's storage. dfdx writes a CPU
//! tensor only through `Arc::make_mut`, which copies shared storage first, so while the guard
//! lives the storage at the published address cannot change: anyone who writes the parameter
//! (loading a checkpoint, a user's `copy_from`) moves it to a new address that has no mirror,
//! and the dense kernel copies it as before. The optimizer unpublishes its mirrors and drops
//! the guards before it updates the parameters in place, and publishes fresh ones after.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use super::Kernels;
use crate::profile::{self, Phase};
use crate::tensor::{Matrix, ParamMut, Vector};

/// The published mirrors of all optimizers: storage address -> values.
static PUBLISHED: RwLock<BTreeMap<usize, Arc<Vec<f32>>>> = RwLock::new(BTreeMap::new());

/// The mirrored values of the tensor whose storage starts at `key` and holds `len` values, if
/// an optimizer publishes them.
pub(crate) fn lookup(key: usize, len: usize) -> Option<Arc<Vec<f32>>> {
    let published = PUBLISHED.read().unwrap_or_else(PoisonError::into_inner);
    published.get(&key).filter(|v| v.len() == len).cloned()
}

/// A clone of a parameter that shares its storage (see the module's invariant).
enum Guard<D: Kernels> {
    Matrix(Matrix<D>),
    Vector(Vector<D>),
}

/// One parameter's host values with the guard that keeps them valid.
pub struct Mirror<D: Kernels> {
    key: usize,
    values: Arc<Vec<f32>>,
    _guard: Guard<D>,
}

impl<D: Kernels> Mirror<D> {
    /// Writes `values` into `p` and mirrors them; `None` (the values written all the same)
    /// where the device names no storage ([`super::Kernels::param_key`]).
    ///
    /// # Panics
    /// If `values` is not of `p`'s length.
    pub fn write(p: &mut ParamMut<'_, D>, values: Vec<f32>) -> Option<Self> {
        let timer = profile::start();
        let guard = match p {
            ParamMut::Matrix(t) => {
                t.copy_from(&values);
                Guard::Matrix((**t).clone())
            }
            ParamMut::Vector(t) => {
                t.copy_from(&values);
                Guard::Vector((**t).clone())
            }
        };
        timer.stop(Phase::ParamWrite);
        Some(Self {
            key: D::param_key(p)?,
            values: Arc::new(values),
            _guard: guard,
        })
    }

    /// Gives up the guard (so the parameter can be written in place again) and returns the
    /// mirrored values, still equal to the parameter's.
    pub fn release(self) -> Vec<f32> {
        Arc::try_unwrap(self.values).unwrap_or_else(|shared| shared.to_vec())
    }
}

/// The mirrors of one optimizer's parameters, published while it holds them; dropping it
/// unpublishes them.
pub struct Mirrors<D: Kernels> {
    held: HashMap<usize, Mirror<D>>,
}

impl<D: Kernels> Default for Mirrors<D> {
    fn default() -> Self {
        Self {
            held: HashMap::new(),
        }
    }
}

impl<D: Kernels> std::fmt::Debug for Mirrors<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mirrors({} parameters)", self.held.len())
    }
}

impl<D: Kernels> Mirrors<D> {
    /// Unpublishes every mirror and hands them over, by key, for an update.
    pub fn take(&mut self) -> HashMap<usize, Mirror<D>> {
        self.unpublish();
        std::mem::take(&mut self.held)
    }

    /// Holds and publishes `mirrors` (after an update), in place of any held before.
    pub fn publish(&mut self, mirrors: impl IntoIterator<Item = Mirror<D>>) {
        self.unpublish();
        self.held = mirrors.into_iter().map(|m| (m.key, m)).collect();
        let mut published = PUBLISHED.write().unwrap_or_else(PoisonError::into_inner);
        for m in self.held.values() {
            published.insert(m.key, m.values.clone());
        }
    }

    fn unpublish(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut published = PUBLISHED.write().unwrap_or_else(PoisonError::into_inner);
        for key in self.held.keys() {
            published.remove(key);
        }
    }
}

impl<D: Kernels> Drop for Mirrors<D> {
    fn drop(&mut self) {
        self.unpublish();
    }
}

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;
    use rand::SeedableRng;

    use super::*;
    use crate::kernels::{dense_composed, Kernels};
    use crate::nn::{Activation, Mlp, Parameters};
    use crate::optim::{Adam, AdamSettings};

    /// The key and values of every parameter of `model`, in visiting order.
    fn keyed(model: &mut Mlp<Cpu>) -> Vec<(usize, Vec<f32>)> {
        let params = model.params_mut();
        let keyed = params
            .iter()
            .map(|p| (Cpu::param_key(p).unwrap(), p.to_vec()));
        keyed.collect()
    }

    /// The first layer of `model` by the CPU kernel (reading mirrors where published) against
    /// dfdx's ops.
    fn first_layer_agrees(model: &mut Mlp<Cpu>) {
        let dev = Cpu::default();
        let mut params = model.params_mut();
        let (ParamMut::Matrix(w), ParamMut::Vector(b)) = (&params[0], &params[1]) else {
            panic!("a weight and a bias first");
        };
        let x: Matrix<Cpu> = dev.sample_normal_like(&(5, w.shape().1));
        let got = Cpu::dense(x.clone(), w, Some(b), Activation::Tanh).as_vec();
        let want = dense_composed(x, w, Some(b), Activation::Tanh).as_vec();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= 1e-5, "{g} vs {w}");
        }
        params.clear();
    }

    /// After an update every parameter's mirror holds its new values; a parameter written by
    /// someone else moves away from its mirror (the dense kernel then reads the new values), gets
    /// a fresh one at the next update, and dropping the optimizer unpublishes them all.
    #[test]
    fn mirrors_follow_the_parameters() {
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut model = Mlp::<Cpu>::new(6, &[9, 4], Activation::Tanh, &mut rng, &dev);
        // Decoupled weight decay moves every parameter even with zero gradients.
        let settings = AdamSettings {
            weight_decay: 0.5,
            lr: 0.1,
            ..AdamSettings::default()
        };
        let mut adam = Adam::<Cpu>::new(&settings).unwrap();
        for (key, _) in keyed(&mut model) {
            assert!(lookup(key, 1).is_none() && lookup(key, 0).is_none());
        }
        adam.update(&mut model, Gradients::leaky());
        let before = keyed(&mut model);
        for (key, values) in &before {
            assert_eq!(lookup(*key, values.len()).as_deref(), Some(values));
            assert!(lookup(*key, values.len() + 1).is_none(), "length checked");
        }
        first_layer_agrees(&mut model);

        // A user's write of the first weight: a new storage, no mirror; the kernel reads it.
        if let ParamMut::Matrix(w) = &mut model.params_mut()[0] {
            let doubled: Vec<f32> = w.as_vec().iter().map(|v| 2.0 * v).collect();
            w.copy_from(&doubled);
        }
        let written = keyed(&mut model);
        assert_ne!(written[0].0, before[0].0, "the write moved the weight");
        assert!(lookup(written[0].0, written[0].1.len()).is_none());
        assert_eq!(
            lookup(before[0].0, before[0].1.len()).as_deref(),
            Some(&before[0].1)
        );
        first_layer_agrees(&mut model);

        adam.update(&mut model, Gradients::leaky());
        let after = keyed(&mut model);
        for (key, values) in &after {
            assert_eq!(lookup(*key, values.len()).as_deref(), Some(values));
        }
        assert!(
            lookup(before[0].0, before[0].1.len()).is_none(),
            "the moved one's old mirror"
        );
        first_layer_agrees(&mut model);

        drop(adam);
        for (key, values) in &after {
            assert!(lookup(*key, values.len()).is_none());
        }
    }
}
