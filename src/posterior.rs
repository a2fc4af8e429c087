//! Gaussian experts, their product with the N(0, I) prior, sampling and KL.
//!
//! Product of experts (Wu & Goodman 2018, eq. 4): with precisions `T_m = exp(-logvar_m)`,
//! `T = 1 + sum_m p_m T_m` and `mean = sum_m p_m T_m mean_m / T`, where `p_m` in {0, 1} marks
//! whether sample `i` has modality `m` (a missing expert contributes nothing) and the `1` is the
//! prior expert. `KL(N(mean, var) || N(0, I)) = 0.5 sum(var + mean^2 - 1 - logvar)`.

use dfdx::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::{Backend, Latent, Vector};

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
}

/// `len` draws from N(0, 1), from `rng` on the host: the noise of every latent sample.
pub fn normal_draws(len: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..len).map(|_| StandardNormal.sample(rng)).collect()
}

/// The product of the N(0, I) prior with the given experts (in precision form).
///
/// With no experts this is the prior itself. The experts must share one batch size.
pub fn combine<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: impl IntoIterator<Item = WeightedExpert<L, D, T>>,
) -> Option<Gaussian<L, D, T>> {
    let mut it = experts.into_iter();
    let first = it.next()?;
    let (mut precision, mut weighted) = (first.precision + 1.0, first.weighted_mean);
    for e in it {
        precision = precision + e.precision;
        weighted = weighted + e.weighted_mean;
    }
    let mean = weighted / precision.with_empty_tape();
    let logvar = precision.ln() * -1.0;
    Some(Gaussian { mean, logvar })
}

/// An expert with its presence mask (`None` = present in every sample).
pub type MaskedExpert<'a, const L: usize, D, T> = (Gaussian<L, D, T>, Option<&'a Vector<D>>);

/// The posterior `N(0, I) x prod_m q_m` of a subset of experts, each masked per sample by its
/// presence vector (`None` = present in every sample).
///
/// # Shapes
/// Every expert is `(batch, L)`, every mask `(batch,)`; returns `(batch, L)`.
pub fn product_of_experts<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: Vec<MaskedExpert<'_, L, D, T>>,
) -> Option<Gaussian<L, D, T>> {
    combine(experts.into_iter().map(|(g, p)| g.weighted(p)))
}

/// The standard normal prior for a batch of `n`.
pub fn standard_normal<const L: usize, D: Backend>(n: usize, dev: &D) -> Gaussian<L, D> {
    Gaussian {
        mean: dev.zeros_like(&(n, Const::<L>)),
        logvar: dev.zeros_like(&(n, Const::<L>)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Latent;

    fn t2(dev: &Cpu, v: &[f32]) -> Latent<2, Cpu> {
        dev.tensor_from_vec(v.to_vec(), (v.len() / 2, Const::<2>))
    }

    fn g(dev: &Cpu, mean: &[f32], logvar: &[f32]) -> Gaussian<2, Cpu> {
        Gaussian {
            mean: t2(dev, mean),
            logvar: t2(dev, logvar),
        }
    }

    /// Closed form: T = 1 + sum T_m, mean = sum T_m mu_m / T, for each latent dimension.
    fn closed_form(experts: &[(f32, f32)]) -> (f32, f32) {
        let t: f32 = 1.0 + experts.iter().map(|&(_, lv)| (-lv).exp()).sum::<f32>();
        let m: f32 = experts
            .iter()
            .map(|&(mu, lv)| mu * (-lv).exp())
            .sum::<f32>()
            / t;
        (m, -t.ln())
    }

    fn close(a: &[f32], b: &[f32], tol: f32) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn product_matches_closed_form_for_one_two_three_experts() {
        let dev = Cpu::default();
        let params = [(0.5f32, 0.2f32), (-1.5, -0.7), (2.0, 1.3)];
        for k in 1..=3 {
            let experts: Vec<_> = params[..k]
                .iter()
                .map(|&(m, lv)| (g(&dev, &[m, -m], &[lv, lv * 0.5]), None))
                .collect();
            let q = product_of_experts(experts).unwrap();
            let d0 = closed_form(&params[..k]);
            let half: Vec<_> = params[..k].iter().map(|&(m, lv)| (-m, lv * 0.5)).collect();
            let d1 = closed_form(&half);
            close(&q.mean.as_vec(), &[d0.0, d1.0], 1e-5);
            close(&q.logvar.as_vec(), &[d0.1, d1.1], 1e-5);
        }
    }

    #[test]
    fn masked_out_expert_equals_product_without_it() {
        let dev = Cpu::default();
        // Two samples; expert b is present in sample 0 only.
        let a = || g(&dev, &[0.3, -0.2, 1.0, 0.5], &[0.1, 0.4, -0.3, 0.0]);
        let b = || g(&dev, &[5.0, 5.0, 5.0, 5.0], &[-1.0, -1.0, -1.0, -1.0]);
        let mask: Vector<Cpu> = dev.tensor_from_vec(vec![1.0, 0.0], (2,));
        let q = product_of_experts(vec![(a(), None), (b(), Some(&mask))]).unwrap();
        let only_a = product_of_experts(vec![(a(), None)]).unwrap();
        let both = product_of_experts(vec![(a(), None), (b(), None)]).unwrap();
        close(&q.mean.as_vec()[2..], &only_a.mean.as_vec()[2..], 1e-6);
        close(&q.logvar.as_vec()[2..], &only_a.logvar.as_vec()[2..], 1e-6);
        close(&q.mean.as_vec()[..2], &both.mean.as_vec()[..2], 1e-6);
        // Everything masked out: the prior.
        let zero: Vector<Cpu> = dev.tensor_from_vec(vec![0.0, 0.0], (2,));
        let p = product_of_experts(vec![(a(), Some(&zero))]).unwrap();
        close(&p.mean.as_vec(), &[0.0; 4], 0.0);
        close(&p.logvar.as_vec(), &[0.0; 4], 0.0);
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
    fn extreme_logvars_stay_finite() {
        let dev = Cpu::default();
        let e = || g(&dev, &[1e3, -1e3], &[-500.0, 500.0]);
        let q = product_of_experts(vec![(e(), None), (e(), None)]).unwrap();
        let all: Vec<f32> = q
            .mean
            .as_vec()
            .into_iter()
            .chain(q.logvar.as_vec())
            .chain(q.kl_to_standard_normal().as_vec())
            .collect();
        assert!(all.iter().all(|x| x.is_finite()), "{all:?}");
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
