//! A per-sample uniform mixture of diagonal Gaussians: the posterior of the mixture
//! aggregations (MMVAE's mixture of experts, MoPoE's mixture of products of experts).
//!
//! Component `c` exists for sample `i` where `a_ci = 1` (its modalities are present); with
//! `k_i = sum_c a_ci`, `q_i(z) = (1/k_i) sum_c a_ci N(z; mean_ci, var_ci)`, so
//! `log q_i(z) = logsumexp_c [log N(z; mean_ci, var_ci) + log(a_ci / k_i)]` (absent components
//! enter as `-inf`), and its mean is `(1/k_i) sum_c a_ci mean_ci`. A sample with no component
//! gets the N(0, I) prior as its one component.
//!
//! Sampling draws each row from one chosen component, `z_i = mean_ci + exp(logvar_ci / 2) eps_i`:
//! by default component `i mod k_i` among the row's available ones (positional, balanced over
//! the rows of a repeated proposal), or one picked from a uniform draw per row
//! ([`Mixture::choose`], `floor(u_i k_i)`), which the trainer draws for the whole batch so that
//! parts of a batch sample what the whole would. The KL to the prior has no closed form: the
//! mixture of experts uses the single-sample estimate `log q(z) - log p(z)` at the drawn `z`,
//! MoPoE the mean of its components' closed-form KLs (an upper bound, by convexity), as
//! [`MixtureKl`] says.

use dfdx::prelude::*;

use super::{repeat_rows_each, standard_normal, standard_normal_log_prob_on, Gaussian};
use crate::backend::{Backend, Latent, Vector};

/// How a mixture's KL to the prior is estimated in the training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MixtureKl {
    /// `log q(z) - log p(z)` at the drawn `z` (MMVAE).
    MonteCarlo,
    /// The mean over the sample's components of their closed-form KLs (MoPoE; an upper bound
    /// on the mixture's KL).
    ComponentMean,
}

/// A uniform mixture of Gaussians per sample; see the module doc.
#[derive(Debug)]
pub struct Mixture<const L: usize, D: Backend, T = NoneTape> {
    components: Vec<Gaussian<L, D, T>>,
    /// `available[c][i]`: whether component `c` exists for sample `i`.
    available: Vec<Vec<bool>>,
    kl: MixtureKl,
    /// The component each row is drawn from.
    chosen: Vec<usize>,
    /// The dimensions that densities count, per row (all without it; see
    /// [`Mixture::with_scored_dims`]).
    dims: Option<Latent<L, D>>,
}

impl<const L: usize, D: Backend> Clone for Mixture<L, D> {
    fn clone(&self) -> Self {
        Self {
            components: self.components.clone(),
            available: self.available.clone(),
            kl: self.kl,
            chosen: self.chosen.clone(),
            dims: self.dims.clone(),
        }
    }
}

impl<const L: usize, D: Backend, T: Tape<f32, D>> Mixture<L, D, T> {
    /// A mixture of `components` (each over the whole batch of `n`), component `c` existing
    /// for the samples where `available[c]` says so; the prior is added as the one component
    /// of any sample that has none (of every sample, if there are no components).
    ///
    /// # Panics
    /// If a mask or component has another batch size, or the masks are not one per component.
    pub fn with_prior_fallback(
        mut components: Vec<Gaussian<L, D, T>>,
        mut available: Vec<Vec<bool>>,
        n: usize,
        dev: &D,
        kl: MixtureKl,
    ) -> Self {
        assert_eq!(components.len(), available.len(), "one mask per component");
        for (c, a) in components.iter().zip(&available) {
            assert!(
                c.batch() == n && a.len() == n,
                "components of one batch size"
            );
        }
        let none: Vec<bool> = (0..n).map(|i| available.iter().all(|a| !a[i])).collect();
        if components.is_empty() || none.iter().any(|&x| x) {
            let p = standard_normal::<L, D>(n, dev);
            components.push(Gaussian {
                mean: p.mean.put_tape(T::default()),
                logvar: p.logvar.put_tape(T::default()),
            });
            available.push(none);
        }
        let mut m = Self {
            components,
            available,
            kl,
            chosen: Vec::new(),
            dims: None,
        };
        m.chosen = (0..n).map(|i| m.nth_available(i, i)).collect();
        m
    }

    /// The same mixture whose log-density and KL count only the dimensions `dims` marks with 1
    /// in each row, `(batch, L)`: the marginal over those dimensions (MMVAE+, whose private
    /// slices of absent modalities come from their priors and are no part of the posterior).
    ///
    /// # Panics
    /// If `dims` has another batch size.
    pub fn with_scored_dims(mut self, dims: Latent<L, D>) -> Self {
        assert_eq!(dims.shape().0, self.batch(), "one mask row per sample");
        self.dims = Some(dims);
        self
    }

    /// The dimensions the densities count, if not all.
    pub fn scored_dims(&self) -> Option<&Latent<L, D>> {
        self.dims.as_ref()
    }

    /// Batch size.
    pub fn batch(&self) -> usize {
        self.components[0].batch()
    }

    /// The components.
    pub fn components(&self) -> &[Gaussian<L, D, T>] {
        &self.components
    }

    /// `available[c][i]`: whether component `c` exists for sample `i`.
    pub fn available(&self) -> &[Vec<bool>] {
        &self.available
    }

    /// How many components sample `i` has.
    fn count(&self, i: usize) -> usize {
        self.available.iter().filter(|a| a[i]).count()
    }

    /// The `(j mod k_i)`-th component available to sample `i`.
    fn nth_available(&self, i: usize, j: usize) -> usize {
        let k = self.count(i);
        let mut left = j % k;
        for (c, a) in self.available.iter().enumerate() {
            if a[i] {
                if left == 0 {
                    return c;
                }
                left -= 1;
            }
        }
        unreachable!("every sample has a component")
    }

    /// Draws row `i` from its `floor(u_i k_i)`-th available component, `u_i` in `[0, 1)`.
    ///
    /// # Panics
    /// If `u` does not hold one value per row.
    pub fn choose(&mut self, u: &[f32]) {
        assert_eq!(u.len(), self.batch(), "one uniform draw per row");
        self.chosen = u
            .iter()
            .enumerate()
            .map(|(i, &u)| {
                let k = self.count(i);
                let j = ((u.clamp(0.0, 1.0) * k as f32) as usize).min(k - 1);
                self.nth_available(i, j)
            })
            .collect();
    }

    /// Per component, a `(batch,)` host vector from `f(c, i)`.
    fn per_component(&self, f: impl Fn(usize, usize) -> f32) -> Vec<Vector<D>> {
        let n = self.batch();
        let dev = self.components[0].mean.device().clone();
        (0..self.components.len())
            .map(|c| dev.tensor_from_vec((0..n).map(|i| f(c, i)).collect(), (n,)))
            .collect()
    }

    /// `a_ci / k_i` per component.
    fn weights(&self) -> Vec<Vector<D>> {
        self.per_component(|c, i| {
            if self.available[c][i] {
                1.0 / self.count(i) as f32
            } else {
                0.0
            }
        })
    }

    /// `sum_c v_c * w_c` (each `w_c` broadcast over the latent dimensions).
    fn blend(vs: Vec<Latent<L, D, T>>, ws: Vec<Vector<D>>) -> Latent<L, D, T> {
        let mut out: Option<Latent<L, D, T>> = None;
        for (v, w) in vs.into_iter().zip(ws) {
            let shape = *v.shape();
            let term = v * w.broadcast_like(&shape);
            out = Some(match out {
                None => term,
                Some(o) => o + term,
            });
        }
        out.expect("a mixture has a component")
    }

    /// A copy whose tensors share ids but carry empty tapes.
    fn retaped(&self) -> Self {
        Self {
            components: self.components.iter().map(Gaussian::retaped).collect(),
            available: self.available.clone(),
            kl: self.kl,
            chosen: self.chosen.clone(),
            dims: self.dims.clone(),
        }
    }

    /// The mixture's mean per sample, `(batch, L)`, with an empty tape.
    pub fn mean(&self) -> Latent<L, D, T> {
        let means = self
            .components
            .iter()
            .map(|c| c.mean.with_empty_tape())
            .collect();
        Self::blend(means, self.weights())
    }

    /// The mixture's variance per sample and dimension, `(batch, L)`, with an empty tape: the
    /// components' second moments blended, less the squared mean
    /// (`sum_c w_c (var_c + mean_c^2) - mean^2`).
    pub fn variance(&self) -> Latent<L, D, T> {
        let second = self
            .components
            .iter()
            .map(|c| {
                let m = c.mean.with_empty_tape();
                c.logvar.with_empty_tape().exp() + m.with_empty_tape() * m
            })
            .collect();
        let mean = self.mean();
        // Clamped at 0: the difference of two nearly equal moments can round below it.
        (Self::blend(second, self.weights()) - mean.with_empty_tape() * mean).relu()
    }

    /// A reparameterised sample, row `i` from its chosen component.
    ///
    /// # Panics
    /// If `eps` does not hold `batch x L` values.
    pub fn rsample_with(self, eps: &[f32]) -> Latent<L, D, T> {
        let onehot = self.per_component(|c, i| f32::from(u8::from(self.chosen[i] == c)));
        let zs = self
            .components
            .into_iter()
            .map(|c| c.rsample_with(eps))
            .collect();
        Self::blend(zs, onehot)
    }

    /// A sample (as [`Mixture::rsample_with`]) and the KL estimate of [`MixtureKl`].
    pub fn rsample_with_kl(self, eps: &[f32]) -> (Latent<L, D, T>, Vector<D, T>) {
        let copy = self.retaped();
        match self.kl {
            MixtureKl::ComponentMean => {
                let z = self.rsample_with(eps);
                let weights = copy.weights();
                let mut kl: Option<Vector<D, T>> = None;
                for (c, w) in copy.components.into_iter().zip(weights) {
                    let term = c.kl_to_standard_normal() * w;
                    kl = Some(match kl {
                        None => term,
                        Some(k) => k + term,
                    });
                }
                (z, kl.expect("a mixture has a component"))
            }
            MixtureKl::MonteCarlo => {
                let z = self.rsample_with(eps);
                let log_q = copy.log_prob(z.with_empty_tape());
                let log_p = standard_normal_log_prob_on(z.with_empty_tape(), copy.dims.as_ref());
                (z, log_q - log_p)
            }
        }
    }

    /// `log q(z)` per sample, `(batch,)`: the log-sum-exp over the sample's components.
    pub fn log_prob(&self, z: Latent<L, D, T>) -> Vector<D, T> {
        self.log_prob_on(z, None)
    }

    /// [`Mixture::log_prob`] over the dimensions `dims` marks (without it, the mixture's own
    /// [`Mixture::scored_dims`]).
    pub fn log_prob_on(&self, z: Latent<L, D, T>, dims: Option<&Latent<L, D>>) -> Vector<D, T> {
        let dims = dims.or(self.dims.as_ref());
        let last = self.components.len() - 1;
        let mut z = Some(z);
        let logs: Vec<Vector<D, T>> = self
            .components
            .iter()
            .enumerate()
            .map(|(c, g)| {
                let zc = if c == last {
                    z.take().expect("taken once")
                } else {
                    z.as_ref().expect("still here").with_empty_tape()
                };
                g.log_prob_on(zc, dims)
            })
            .collect();
        (logs.stack() + self.log_weights()).logsumexp::<(usize,), Axis<0>>()
    }

    /// `log(a_ci / k_i)` per component and sample, `(components, batch)` (`-inf` where the
    /// component does not exist for the sample).
    fn log_weights(&self) -> Tensor<(usize, usize), f32, D> {
        let n = self.batch();
        let c = self.components.len();
        let log_w: Vec<f32> = (0..c)
            .flat_map(|c| {
                (0..n).map(move |i| {
                    if self.available[c][i] {
                        -(self.count(i) as f32).ln()
                    } else {
                        f32::NEG_INFINITY
                    }
                })
            })
            .collect();
        let dev = self.components[0].mean.device().clone();
        dev.tensor_from_vec(log_w, (c, n))
    }
}

impl<const L: usize, D: Backend> Mixture<L, D, OwnedTape<f32, D>> {
    /// The tapes of every component, merged (see [`super::Posterior::into_tape`]).
    pub fn into_tape(self) -> OwnedTape<f32, D> {
        self.components
            .into_iter()
            .map(Gaussian::into_tape)
            .fold(OwnedTape::default(), |acc, t| acc.merge(t))
    }

    /// [`Mixture::log_prob`] that consumes the mixture and keeps its components' tapes.
    pub fn into_log_prob(self, z: Latent<L, D, OwnedTape<f32, D>>) -> Vector<D, OwnedTape<f32, D>> {
        let log_w = self.log_weights();
        let dims = self.dims;
        let last = self.components.len() - 1;
        let mut z = Some(z);
        let logs: Vec<Vector<D, OwnedTape<f32, D>>> = self
            .components
            .into_iter()
            .enumerate()
            .map(|(c, g)| {
                let zc = if c == last {
                    z.take().expect("taken once")
                } else {
                    z.as_ref().expect("still here").with_empty_tape()
                };
                g.into_log_prob_on(zc, dims.as_ref())
            })
            .collect();
        (logs.stack() + log_w).logsumexp::<(usize,), Axis<0>>()
    }
}

impl<const L: usize, D: Backend> Mixture<L, D> {
    /// Each sample repeated `k` times in a row (row `i k + j` is sample `i`), rows drawn from
    /// their components in turn (row `i k + j` from the `j mod k_i`-th): `k` importance
    /// samples per data point, balanced over its components.
    pub fn repeat_each(&self, k: usize) -> Self {
        let rep_bool = |a: &Vec<bool>| a.iter().flat_map(|&x| std::iter::repeat_n(x, k)).collect();
        let mut m = Self {
            components: self.components.iter().map(|c| c.repeat_each(k)).collect(),
            available: self.available.iter().map(rep_bool).collect(),
            kl: self.kl,
            chosen: Vec::new(),
            dims: self.dims.as_ref().map(|d| repeat_rows_each(d, k)),
        };
        m.chosen = (0..m.batch()).map(|r| m.nth_available(r, r % k)).collect();
        m
    }
}
