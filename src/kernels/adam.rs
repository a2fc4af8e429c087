//! Adam's update of one parameter as one pass over host buffers, vectorised (AVX-512 where
//! the CPU has it).
//!
//! dfdx 0.13's CPU kernel compiles to scalar code (a square root and a division per element)
//! and can only write a tensor's own storage; this one writes the parameter's host mirror
//! ([`super::mirror`]), from which the parameter is then copied. It forms every value with the
//! same `f32` operations in the same order as dfdx's kernel, so the two agree to the bit
//! (tested).
//!
//! Also [`AdamSlot`]: one parameter with its gradient, moments and mirror, as the optimizer
//! hands it to [`Kernels::adam_update`].

use dfdx::prelude::{AdamConfig, Storage, WeightDecay};

use super::activation::multiversion;
use super::deferred::WeightFactors;
use super::mirror::Mirror;
use super::Kernels;
use crate::profile::{self, Phase};
use crate::tensor::ParamMut;

/// A gradient-sized buffer on device `D`.
pub(crate) type Slot<D> = <D as Storage<f32>>::Vec;

/// One parameter with its gradient and moments, out of their stores for the update
/// (`optim::Adam::update_parts` fills it, [`Kernels::adam_update`] consumes it).
///
/// Not part of the documented API: it is public only because it appears in the signature of
/// [`Kernels::adam_update`], and nothing outside the crate can build or read one.
#[doc(hidden)]
pub struct AdamSlot<'p, D: Kernels> {
    /// The parameter, updated in place.
    pub(crate) param: ParamMut<'p, D>,
    /// Its gradient in each part of the batch; the first becomes the batch's gradient. Empty
    /// where the gradient was deferred (the device forms it from `factors`).
    pub(crate) grads: Vec<Slot<D>>,
    /// The factors of its deferred gradient with the share of the part each comes from (see
    /// [`super::deferred`]); empty where the gradient is in `grads`.
    pub(crate) factors: Vec<(f32, WeightFactors)>,
    /// Its first moment.
    pub(crate) moment1: Slot<D>,
    /// Its second moment.
    pub(crate) moment2: Slot<D>,
    /// Its host mirror as of the last update, if the device keeps one: the device's
    /// [`Kernels::adam_update`] releases it before writing the parameter and leaves a fresh
    /// one after ([`super::mirror`]).
    pub(crate) mirror: Option<Mirror<D>>,
}

impl<D: Kernels> AdamSlot<'_, D> {
    /// dfdx's Adam kernel on this parameter, with the gradient in `grads[0]` (the default
    /// [`Kernels::adam_update`]; the CPU runs its own).
    ///
    /// # Errors
    /// The device's error.
    pub(crate) fn update(&mut self, cfg: &AdamConfig, t: i32) -> Result<(), D::Err> {
        let (m, v, g) = (&mut self.moment1, &mut self.moment2, &self.grads[0]);
        match &mut self.param {
            ParamMut::Matrix(p) => cfg.try_update(t, p, m, v, g),
            ParamMut::Vector(p) => cfg.try_update(t, p, m, v, g),
        }
    }
}

/// Step `t` of Adam on `p` with moments `m`, `v` and gradient `g` (all of one length).
///
/// # Panics
/// If the lengths differ.
pub fn update(cfg: &AdamConfig, t: i32, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
    let n = p.len();
    assert!(
        m.len() == n && v.len() == n && g.len() == n,
        "adam: buffers of different lengths"
    );
    let [b0, b1] = cfg.betas.map(|b| b as f32);
    let c = Coefficients {
        b0,
        b1,
        c0: (1.0 - b0.powi(t)).recip(),
        c1: (1.0 - b1.powi(t)).recip(),
        lr: cfg.lr as f32,
        eps: cfg.eps as f32,
        l2: match cfg.weight_decay {
            Some(WeightDecay::L2(wd)) => Some(wd as f32),
            _ => None,
        },
        decoupled: match cfg.weight_decay {
            Some(WeightDecay::Decoupled(wd)) => Some((wd * cfg.lr) as f32),
            _ => None,
        },
    };
    let timer = profile::start();
    pass(&c, p, m, v, g);
    timer.stop(Phase::AdamPass);
}

/// The update's constants for one step, in `f32`.
struct Coefficients {
    b0: f32,
    b1: f32,
    /// `1 / (1 - b0^t)`, `1 / (1 - b1^t)`: the bias corrections.
    c0: f32,
    c1: f32,
    lr: f32,
    eps: f32,
    /// L2 weight decay, added to the gradient.
    l2: Option<f32>,
    /// Decoupled weight decay times the learning rate (AdamW), added to the step.
    decoupled: Option<f32>,
}

multiversion! {
    fn pass(c: &Coefficients, p: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        let n = p.len();
        let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
        for i in 0..n {
            let mut gi = g[i];
            if let Some(wd) = c.l2 {
                gi += wd * p[i];
            }
            let mi = m[i] * c.b0 + gi * (1.0 - c.b0);
            let vi = v[i] * c.b1 + gi.powi(2) * (1.0 - c.b1);
            m[i] = mi;
            v[i] = vi;
            let m_hat = mi * c.c0;
            let v_hat = vi * c.c1;
            let mut step = c.lr * m_hat / (v_hat.sqrt() + c.eps);
            if let Some(wd) = c.decoupled {
                step += wd * p[i];
            }
            p[i] -= step;
        }
    }
}

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;

    use super::*;

    /// Three steps agree to the bit with dfdx's kernel, for each kind of weight decay, on
    /// values that include zeros, subnormals and large gradients, at a length that is not a
    /// multiple of the vector width.
    #[test]
    fn agrees_with_dfdx_to_the_bit() {
        let dev = Cpu::default();
        let n = 1037;
        let wave =
            |k: f32, s: f32| -> Vec<f32> { (0..n).map(|i| s * ((i as f32) * k).sin()).collect() };
        let mut grads = wave(0.37, 3.0);
        grads[5] = 0.0;
        grads[6] = 1e-40;
        grads[7] = -7e4;
        for weight_decay in [
            None,
            Some(WeightDecay::L2(0.01)),
            Some(WeightDecay::Decoupled(0.1)),
        ] {
            let cfg = AdamConfig {
                lr: 3e-3,
                betas: [0.85, 0.995],
                eps: 1e-7,
                weight_decay,
            };
            let start = wave(0.11, 1.0);
            let mut theirs: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(start.clone(), (n,));
            let (mut m1, mut m2) = (Gradients::leaky(), Gradients::leaky());
            let mut g_store = Gradients::leaky();
            g_store
                .get_or_alloc_mut(&theirs)
                .unwrap()
                .copy_from_slice(&grads);
            let (mut p, mut m, mut v) = (start, vec![0.0; n], vec![0.0; n]);
            for t in 1..=3 {
                let (mut a, mut b) = (
                    m1.get_or_alloc_mut(&theirs).unwrap().clone(),
                    m2.get_or_alloc_mut(&theirs).unwrap().clone(),
                );
                let g = g_store.get_or_alloc_mut(&theirs).unwrap().clone();
                cfg.try_update(t, &mut theirs, &mut a, &mut b, &g).unwrap();
                *m1.get_or_alloc_mut(&theirs).unwrap() = a;
                *m2.get_or_alloc_mut(&theirs).unwrap() = b;
                update(&cfg, t, &mut p, &mut m, &mut v, &grads);
            }
            let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&p), bits(&theirs.as_vec()), "{weight_decay:?}");
            assert_eq!(
                bits(&m),
                bits(&m1.get(&theirs).as_vec()),
                "{weight_decay:?}"
            );
            assert_eq!(
                bits(&v),
                bits(&m2.get(&theirs).as_vec()),
                "{weight_decay:?}"
            );
        }
    }
}
