//! The distributions over the latent space: diagonal Gaussians (one expert, or a posterior),
//! and [`Posterior`], what an [`Aggregation`](crate::aggregation::Aggregation) of experts yields.
//!
//! A Gaussian `N(mean, diag(exp(logvar)))` has the log-density
//! `log q(z) = -0.5 sum_d [(z_d - mean_d)^2 exp(-logvar_d) + logvar_d + ln 2 pi]` and
//! `KL(N(mean, var) || N(0, I)) = 0.5 sum(var + mean^2 - 1 - logvar)`. Its precision form
//! (`T = exp(-logvar)` and `T mean`, optionally masked per sample) is what a product of
//! Gaussians adds up: the product of the N(0, I) prior with experts `m` is `T = 1 + sum_m p_m T_m`,
//! `mean = sum_m p_m T_m mean_m / T` (Wu & Goodman 2018, eq. 4), where `p_m` in {0, 1} marks
//! whether the sample has modality `m`.

use dfdx::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::{Backend, Latent, Vector};

mod mixture;

pub use mixture::{Mixture, MixtureKl};

/// Log-variances are clamped to `[-LOGVAR_LIMIT, LOGVAR_LIMIT]` before they become precisions,
/// so that `exp` stays finite in f32 whatever an encoder emits (e^30 ~ 1e13).
pub const LOGVAR_LIMIT: f32 = 30.0;

/// A diagonal Gaussian over a batch of `L`-dimensional latents: one expert, or a posterior.
///
/// # Shapes
/// `mean` and `logvar` are `(batch, L)`.
#[derive(Debug)]
pub struct Gaussian<const L: usize, D: Backend, T = NoneTape> {
    /// Means, `(batch, L)`.
    pub mean: Latent<L, D, T>,
    /// Log-variances, `(batch, L)`.
    pub logvar: Latent<L, D, T>,
}

impl<const L: usize, D: Backend> Clone for Gaussian<L, D> {
    fn clone(&self) -> Self {
        Self {
            mean: self.mean.clone(),
            logvar: self.logvar.clone(),
        }
    }
}

/// One expert in precision form: `T_m p_m` and `T_m p_m mean_m`, ready to be summed.
///
/// The objective computes this once per expert and reuses it for every subset it scores.
#[derive(Debug)]
pub struct WeightedExpert<const L: usize, D: Backend, T = NoneTape> {
    /// `p_m exp(-logvar_m)`, `(batch, L)`.
    pub precision: Latent<L, D, T>,
    /// `p_m exp(-logvar_m) mean_m`, `(batch, L)`.
    pub weighted_mean: Latent<L, D, T>,
}

impl<const L: usize, D: Backend, T: Tape<f32, D>> WeightedExpert<L, D, T> {
    /// A copy that shares values and gradient slots but carries an empty tape, for reuse in
    /// several products within one graph.
    pub fn reuse(&self) -> Self {
        Self {
            precision: self.precision.with_empty_tape(),
            weighted_mean: self.weighted_mean.with_empty_tape(),
        }
    }

    /// The expert left out of the samples where `mask` (0/1 per sample, `(batch,)`) is 0:
    /// its products then skip it there, as for an absent modality.
    pub fn masked(self, mask: &Vector<D>) -> Self {
        let shape = *self.precision.shape();
        let m = mask.clone().broadcast_like(&shape);
        Self {
            precision: self.precision * m.clone(),
            weighted_mean: self.weighted_mean * m,
        }
    }
}

impl<const L: usize, D: Backend, T: Tape<f32, D>> Gaussian<L, D, T> {
    /// Batch size.
    pub fn batch(&self) -> usize {
        self.mean.shape().0
    }

    /// Precision form of this expert; `present` (0/1 per sample) masks it out where absent.
    pub fn weighted(self, present: Option<&Vector<D>>) -> WeightedExpert<L, D, T> {
        let shape = *self.mean.shape();
        let mut precision = (self.logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT) * -1.0).exp();
        if let Some(p) = present {
            precision = precision * p.clone().broadcast_like(&shape);
        }
        let weighted_mean = precision.with_empty_tape() * self.mean;
        WeightedExpert {
            precision,
            weighted_mean,
        }
    }

    /// Draws `mean + exp(logvar / 2) * eps` with `eps ~ N(0, I)` from `rng` (drawn on the host,
    /// so a seed gives the same numbers on every device).
    pub fn rsample(self, rng: &mut impl Rng) -> Latent<L, D, T> {
        let eps = normal_draws(self.batch() * L, rng);
        self.reparameterise(eps)
    }

    /// `mean + exp(logvar / 2) * eps` with the given standard-normal draws, `batch x L`
    /// row-major (so parts of a batch can share the draws of the whole).
    ///
    /// # Panics
    /// If `eps` does not hold `batch x L` values.
    pub fn rsample_with(self, eps: &[f32]) -> Latent<L, D, T> {
        self.reparameterise(eps.to_vec())
    }

    fn reparameterise(self, eps: Vec<f32>) -> Latent<L, D, T> {
        let n = self.batch();
        assert_eq!(
            eps.len(),
            n * L,
            "rsample_with: {} draws for {n} x {L}",
            eps.len()
        );
        let dev = self.mean.device().clone();
        let eps = dev.tensor_from_vec(eps, (n, Const::<L>));
        (self.logvar * 0.5).exp() * eps + self.mean
    }

    /// `KL(q || N(0, I))` per sample, `(batch,)`.
    pub fn kl_to_standard_normal(self) -> Vector<D, T> {
        let var = self.logvar.with_empty_tape().exp();
        let terms = var + self.mean.square() - self.logvar - 1.0;
        terms.sum::<(usize,), Axis<1>>() * 0.5
    }

    /// A copy that shares the tensors' ids but carries empty tapes (gradients still reach the
    /// originals by id).
    pub fn retaped(&self) -> Self {
        Self {
            mean: self.mean.with_empty_tape(),
            logvar: self.logvar.with_empty_tape(),
        }
    }

    /// `log q(z)` per sample, `(batch,)`, for latents `z` of the same batch size (one row of
    /// `z` per row of the Gaussian). Records on `z`'s tape; the Gaussian's parameters enter
    /// as copies with empty tapes (their gradients still reach them by id).
    pub fn log_prob(&self, z: Latent<L, D, T>) -> Vector<D, T> {
        self.log_prob_on(z, None)
    }

    /// [`Gaussian::log_prob`] over the dimensions that `dims` marks with 1 in each row (all
    /// of them without `dims`): the log-density of those dimensions' marginal.
    pub fn log_prob_on(&self, z: Latent<L, D, T>, dims: Option<&Latent<L, D>>) -> Vector<D, T> {
        let precision = (self.logvar.with_empty_tape() * -1.0).exp();
        let sq = (z - self.mean.with_empty_tape()).square() * precision;
        let terms = sq + self.logvar.with_empty_tape() + LN_2PI;
        sum_on(terms, dims) * -0.5
    }
}

/// The sum of each row of `terms`, over the dimensions `dims` marks (all without it).
fn sum_on<const L: usize, D: Backend, T: Tape<f32, D>>(
    terms: Latent<L, D, T>,
    dims: Option<&Latent<L, D>>,
) -> Vector<D, T> {
    match dims {
        Some(m) => (terms * m.clone()).sum::<(usize,), Axis<1>>(),
        None => terms.sum::<(usize,), Axis<1>>(),
    }
}

impl<const L: usize, D: Backend> Gaussian<L, D, OwnedTape<f32, D>> {
    /// [`Gaussian::log_prob`] that consumes the Gaussian and keeps its tape, so that a
    /// posterior formed on the tape (a product of experts) passes the gradient of `log q(z)`
    /// back to its experts.
    pub fn into_log_prob(self, z: Latent<L, D, OwnedTape<f32, D>>) -> Vector<D, OwnedTape<f32, D>> {
        self.into_log_prob_on(z, None)
    }

    /// [`Gaussian::into_log_prob`] over the dimensions `dims` marks (see
    /// [`Gaussian::log_prob_on`]).
    pub fn into_log_prob_on(
        self,
        z: Latent<L, D, OwnedTape<f32, D>>,
        dims: Option<&Latent<L, D>>,
    ) -> Vector<D, OwnedTape<f32, D>> {
        let precision = (self.logvar.with_empty_tape() * -1.0).exp();
        let sq = (z - self.mean).square() * precision;
        let terms = sq + self.logvar + LN_2PI;
        sum_on(terms, dims) * -0.5
    }

    /// The tapes of its mean and log-variance, merged.
    pub fn into_tape(self) -> OwnedTape<f32, D> {
        let (_, a) = self.mean.split_tape();
        let (_, b) = self.logvar.split_tape();
        a.merge(b)
    }

    /// A copy whose tensors have ids of their own and no history: the gradient of anything
    /// computed from it stops here (DReG's `log q` with its parameters held fixed).
    pub fn detached(&self) -> Self {
        let fresh = |t: &Latent<L, D, OwnedTape<f32, D>>| {
            (t.retaped::<NoneTape>() + 0.0).put_tape(OwnedTape::default())
        };
        Self {
            mean: fresh(&self.mean),
            logvar: fresh(&self.logvar),
        }
    }
}

/// `log N(z; 0, I)` per row of `z`, `(batch,)`, on the tape.
pub fn standard_normal_log_prob_of<const L: usize, D: Backend, T: Tape<f32, D>>(
    z: Latent<L, D, T>,
) -> Vector<D, T> {
    standard_normal_log_prob_on(z, None)
}

/// `log N(z; 0, I)` per row of `z` over the dimensions `dims` marks (all without it), on the
/// tape.
pub fn standard_normal_log_prob_on<const L: usize, D: Backend, T: Tape<f32, D>>(
    z: Latent<L, D, T>,
    dims: Option<&Latent<L, D>>,
) -> Vector<D, T> {
    sum_on(z.square() + LN_2PI, dims) * -0.5
}

/// `ln(2 pi)`, the constant of every Gaussian log-density (per dimension).
pub const LN_2PI: f32 = 1.837_877_1;

/// `log N(z; 0, I)` of each row of `z` (host values, `L` per row), in f64.
pub fn standard_normal_log_prob(z: &[f32], dim: usize) -> Vec<f64> {
    standard_normal_log_prob_masked(z, dim, None)
}

/// [`standard_normal_log_prob`] over the dimensions a 0/1 mask of the same layout marks (all
/// without one).
pub fn standard_normal_log_prob_masked(z: &[f32], dim: usize, dims: Option<&[f32]>) -> Vec<f64> {
    let one = std::f64::consts::TAU.ln();
    z.chunks_exact(dim)
        .enumerate()
        .map(|(r, row)| {
            -0.5 * row
                .iter()
                .enumerate()
                .filter(|&(d, _)| dims.is_none_or(|m| m[r * dim + d] != 0.0))
                .map(|(_, &x)| f64::from(x) * f64::from(x) + one)
                .sum::<f64>()
        })
        .collect()
}

/// The distribution `q(z | x_S)` that an aggregation of experts yields for a batch: what the
/// objective samples and scores, what evaluation proposes from, what `encode` returns.
///
/// Each variant can draw a reparameterised sample from given standard-normal noise, give its
/// log-density and its KL to the N(0, I) prior (closed form where one exists) and its mean.
#[derive(Debug)]
pub enum Posterior<const L: usize, D: Backend, T = NoneTape> {
    /// A diagonal Gaussian (the product of experts).
    Gaussian(Gaussian<L, D, T>),
    /// A uniform mixture of Gaussians per sample (the mixture aggregations).
    Mixture(Mixture<L, D, T>),
}

impl<const L: usize, D: Backend> Clone for Posterior<L, D> {
    fn clone(&self) -> Self {
        match self {
            Posterior::Gaussian(g) => Posterior::Gaussian(g.clone()),
            Posterior::Mixture(m) => Posterior::Mixture(m.clone()),
        }
    }
}

impl<const L: usize, D: Backend, T: Tape<f32, D>> Posterior<L, D, T> {
    /// Batch size.
    pub fn batch(&self) -> usize {
        match self {
            Posterior::Gaussian(g) => g.batch(),
            Posterior::Mixture(m) => m.batch(),
        }
    }

    /// The mean of each sample's distribution, `(batch, L)`: the point estimate that
    /// embeddings and "decode the mean" use. A copy with an empty tape.
    pub fn mean(&self) -> Latent<L, D, T> {
        match self {
            Posterior::Gaussian(g) => g.mean.with_empty_tape(),
            Posterior::Mixture(m) => m.mean(),
        }
    }

    /// The variance of each sample's distribution per dimension, `(batch, L)`: how sure the
    /// posterior is of each coordinate of [`Posterior::mean`]. A copy with an empty tape.
    pub fn variance(&self) -> Latent<L, D, T> {
        match self {
            Posterior::Gaussian(g) => g.logvar.with_empty_tape().exp(),
            Posterior::Mixture(m) => m.variance(),
        }
    }

    /// The Gaussian, if this posterior is one.
    pub fn as_gaussian(&self) -> Option<&Gaussian<L, D, T>> {
        match self {
            Posterior::Gaussian(g) => Some(g),
            Posterior::Mixture(_) => None,
        }
    }

    /// For a mixture, draws row `i` from the component that the uniform `u_i` in `[0, 1)`
    /// picks among the row's available ones (see [`Mixture::choose`]); a Gaussian is
    /// unchanged.
    ///
    /// # Panics
    /// If `u` does not hold one value per row of a mixture.
    pub fn choose(mut self, u: &[f32]) -> Self {
        if let Posterior::Mixture(m) = &mut self {
            m.choose(u);
        }
        self
    }

    /// Whether this posterior is a mixture (its samples need a component choice).
    pub fn is_mixture(&self) -> bool {
        matches!(self, Posterior::Mixture(_))
    }

    /// A reparameterised sample from the given standard-normal draws (`batch x L`, row-major),
    /// so that parts of a batch can share the draws of the whole.
    ///
    /// # Panics
    /// If `eps` does not hold `batch x L` values.
    pub fn rsample_with(self, eps: &[f32]) -> Latent<L, D, T> {
        match self {
            Posterior::Gaussian(g) => g.rsample_with(eps),
            Posterior::Mixture(m) => m.rsample_with(eps),
        }
    }

    /// A reparameterised sample with draws from `rng` (on the host: same numbers on every
    /// device).
    pub fn rsample(self, rng: &mut impl Rng) -> Latent<L, D, T> {
        let eps = normal_draws(self.batch() * L, rng);
        self.rsample_with(&eps)
    }

    /// A reparameterised sample `z` from `eps` (as [`Posterior::rsample_with`]) and the KL to
    /// the N(0, I) prior per sample, `(batch,)`: in closed form where one exists, else the
    /// single-sample estimate `log q(z) - log p(z)` at that `z`. Both on the tape.
    pub fn rsample_with_kl(self, eps: &[f32]) -> (Latent<L, D, T>, Vector<D, T>) {
        match self {
            Posterior::Gaussian(g) => {
                let copy = g.retaped();
                let z = g.rsample_with(eps);
                (z, copy.kl_to_standard_normal())
            }
            Posterior::Mixture(m) => m.rsample_with_kl(eps),
        }
    }

    /// The KL to the N(0, I) prior per sample in closed form, `(batch,)`; `None` where no
    /// closed form exists.
    pub fn kl_to_prior(&self) -> Option<Vector<D, T>> {
        match self {
            Posterior::Gaussian(g) => Some(g.retaped().kl_to_standard_normal()),
            Posterior::Mixture(_) => None,
        }
    }

    /// `log q(z)` per sample, `(batch,)`, for one latent per sample, over the dimensions the
    /// posterior scores ([`Posterior::scored_dims`]).
    pub fn log_prob(&self, z: Latent<L, D, T>) -> Vector<D, T> {
        self.log_prob_on(z, None)
    }

    /// [`Posterior::log_prob`] over the dimensions `dims` marks in each row (without `dims`,
    /// those of [`Posterior::scored_dims`]): MMVAE+'s strata score the mixture of every
    /// expert over the dimensions their own sample was drawn from an expert.
    pub fn log_prob_on(&self, z: Latent<L, D, T>, dims: Option<&Latent<L, D>>) -> Vector<D, T> {
        match self {
            Posterior::Gaussian(g) => g.log_prob_on(z, dims),
            Posterior::Mixture(m) => m.log_prob_on(z, dims),
        }
    }

    /// The dimensions the posterior's densities and KL count, per row (1 or 0), if not all:
    /// with private latents (MMVAE+), the private slices of the modalities a row does not
    /// have are drawn from their learned priors for decoding, and are no part of the
    /// variational posterior.
    pub fn scored_dims(&self) -> Option<&Latent<L, D>> {
        match self {
            Posterior::Gaussian(_) => None,
            Posterior::Mixture(m) => m.scored_dims(),
        }
    }
}

impl<const L: usize, D: Backend> Posterior<L, D, OwnedTape<f32, D>> {
    /// The operations that formed the posterior from its inputs (its tensors' tapes, merged),
    /// for a loss that used it only through copies.
    pub fn into_tape(self) -> OwnedTape<f32, D> {
        match self {
            Posterior::Gaussian(g) => g.into_tape(),
            Posterior::Mixture(m) => m.into_tape(),
        }
    }

    /// [`Posterior::log_prob`] that consumes the posterior and keeps its tape (see
    /// [`Gaussian::into_log_prob`]).
    pub fn into_log_prob(self, z: Latent<L, D, OwnedTape<f32, D>>) -> Vector<D, OwnedTape<f32, D>> {
        match self {
            Posterior::Gaussian(g) => g.into_log_prob(z),
            Posterior::Mixture(m) => m.into_log_prob(z),
        }
    }
}

impl<const L: usize, D: Backend> Gaussian<L, D> {
    /// Each row repeated `k` times in a row (row `i k + j` is row `i`).
    pub fn repeat_each(&self, k: usize) -> Self {
        Gaussian {
            mean: repeat_rows_each(&self.mean, k),
            logvar: repeat_rows_each(&self.logvar, k),
        }
    }
}

/// Each row of `t` repeated `k` times in a row (row `i k + j` is row `i`).
fn repeat_rows_each<const L: usize, D: Backend>(t: &Latent<L, D>, k: usize) -> Latent<L, D> {
    let v = t.as_vec();
    let n = v.len() / L;
    let mut out = Vec::with_capacity(v.len() * k);
    for row in v.chunks_exact(L) {
        for _ in 0..k {
            out.extend_from_slice(row);
        }
    }
    t.device().tensor_from_vec(out, (n * k, Const::<L>))
}

impl<const L: usize, D: Backend> Posterior<L, D> {
    /// Each sample's distribution repeated `k` times in a row (row `i k + j` is sample `i`;
    /// a mixture draws row `i k + j` from the `j mod k_i`-th of its components): the proposal
    /// of `k` importance samples per data point.
    pub fn repeat_each(&self, k: usize) -> Self {
        match self {
            Posterior::Gaussian(g) => Posterior::Gaussian(g.repeat_each(k)),
            Posterior::Mixture(m) => Posterior::Mixture(m.repeat_each(k)),
        }
    }
}

/// `len` draws from N(0, 1), from `rng` on the host: the noise of every latent sample.
pub fn normal_draws(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// The standard normal prior for a batch of `n`.
pub fn standard_normal<const L: usize, D: Backend>(n: usize, dev: &D) -> Gaussian<L, D> {
    Gaussian {
        mean: dev.zeros_like(&(n, Const::<L>)),
        logvar: dev.zeros_like(&(n, Const::<L>)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::backend::Latent;

    /// Rows of two latent dimensions from `v`.
    pub(crate) fn t2(dev: &Cpu, v: &[f32]) -> Latent<2, Cpu> {
        dev.tensor_from_vec(v.to_vec(), (v.len() / 2, Const::<2>))
    }

    /// A two-dimensional Gaussian per row.
    pub(crate) fn g(dev: &Cpu, mean: &[f32], logvar: &[f32]) -> Gaussian<2, Cpu> {
        Gaussian {
            mean: t2(dev, mean),
            logvar: t2(dev, logvar),
        }
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    /// The log-density against the closed form of a diagonal Gaussian, per sample.
    #[test]
    fn log_prob_matches_closed_form() {
        let dev = Cpu::default();
        let q = g(&dev, &[0.5, -1.0, 2.0, 0.0], &[0.3, -2.0, 1.0, 0.0]);
        let z = t2(&dev, &[0.1, 0.2, -1.0, 3.0]);
        let got = q.log_prob(z).as_vec();
        let f = |z: f64, m: f64, lv: f64| {
            -0.5 * ((z - m).powi(2) * (-lv).exp() + lv + (2.0 * std::f64::consts::PI).ln())
        };
        let want = [
            f(0.1, 0.5, 0.3) + f(0.2, -1.0, -2.0),
            f(-1.0, 2.0, 1.0) + f(3.0, 0.0, 0.0),
        ];
        close(&got, &want.map(|x| x as f32), 1e-6);
        let host = standard_normal_log_prob(&[-1.0, 3.0], 2);
        assert!((host[0] - (f(-1.0, 0.0, 0.0) + f(3.0, 0.0, 0.0))).abs() < 1e-12);
    }

    /// The closed-form KL equals the Monte Carlo mean of `log q(z) - log p(z)` over many
    /// draws (within five standard errors), and `rsample_with_kl` gives the same sample as
    /// `rsample_with` from the same draws.
    #[test]
    fn kl_is_the_mean_log_ratio_and_sampling_is_consistent() {
        use rand::SeedableRng;
        let dev = Cpu::default();
        let n = 20_000;
        let q = Gaussian::<2, Cpu> {
            mean: dev.tensor_from_vec([0.7f32, -0.4].repeat(n), (n, Const::<2>)),
            logvar: dev.tensor_from_vec([-0.5f32, 0.8].repeat(n), (n, Const::<2>)),
        };
        let eps = normal_draws(2 * n, &mut rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let post = Posterior::Gaussian(q.clone());
        let (z, kl) = post.clone().rsample_with_kl(&eps);
        assert_eq!(z.as_vec(), q.clone().rsample_with(&eps).as_vec());
        let log_q = post.log_prob(z.clone()).as_vec();
        let log_p = standard_normal_log_prob(&z.as_vec(), 2);
        let ratios: Vec<f64> = log_q
            .iter()
            .zip(&log_p)
            .map(|(&a, b)| f64::from(a) - b)
            .collect();
        let mean = ratios.iter().sum::<f64>() / n as f64;
        let sd = (ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
        let exact = f64::from(kl.as_vec()[0]);
        assert!(
            (mean - exact).abs() < 5.0 * sd / (n as f64).sqrt(),
            "{mean} vs {exact}"
        );
        assert_eq!(post.kl_to_prior().unwrap().as_vec(), kl.as_vec());
    }

    /// `repeat_each` repeats each sample's row `k` times in a row.
    #[test]
    fn repeat_each_repeats_rows_in_place() {
        let dev = Cpu::default();
        let q = Posterior::Gaussian(g(&dev, &[1.0, 2.0, 3.0, 4.0], &[0.1, 0.2, 0.3, 0.4]));
        let r = q.repeat_each(3);
        assert_eq!(r.batch(), 6);
        assert_eq!(
            r.mean().as_vec(),
            vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0]
        );
    }

    #[test]
    fn kl_matches_closed_form() {
        let dev = Cpu::default();
        let q = g(&dev, &[0.5, -1.0], &[0.3, -2.0]);
        let kl = q.kl_to_standard_normal().as_vec();
        let f = |m: f32, lv: f32| 0.5 * (lv.exp() + m * m - 1.0 - lv);
        close(&kl, &[f(0.5, 0.3) + f(-1.0, -2.0)], 1e-6);
        // KL of the prior to itself is 0.
        let p = standard_normal::<2, Cpu>(3, &dev);
        close(&p.kl_to_standard_normal().as_vec(), &[0.0; 3], 0.0);
    }

    #[test]
    fn rsample_has_the_right_moments_and_is_seeded() {
        use rand::SeedableRng;
        let dev = Cpu::default();
        let n = 20_000;
        let q = Gaussian::<2, Cpu> {
            mean: dev.tensor_from_vec([1.0f32, -2.0].repeat(n), (n, Const::<2>)),
            logvar: dev.tensor_from_vec([0.0f32, (0.25f32).ln()].repeat(n), (n, Const::<2>)),
        };
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let z = q.clone().rsample(&mut r1).as_vec();
        assert_eq!(z, q.rsample(&mut r2).as_vec());
        for (d, (m, sd)) in [(1.0f64, 1.0f64), (-2.0, 0.5)].into_iter().enumerate() {
            let xs: Vec<f64> = z.iter().skip(d).step_by(2).map(|&x| f64::from(x)).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // standard error of the mean is sd / sqrt(n) ~ 0.007; allow 5 of them
            assert!((mean - m).abs() < 5.0 * sd / (n as f64).sqrt(), "{mean}");
            assert!((var.sqrt() - sd).abs() < 0.03 * sd, "{}", var.sqrt());
        }
    }
}
