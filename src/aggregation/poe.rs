//! The product of experts (MVAE, Wu & Goodman 2018, eq. 4).
//!
//! With precisions `T_m = exp(-logvar_m)` and presence `p_m` in {0, 1} per sample,
//! `q(z | x_S) = N(0, I) x prod_{m in S} q(z | x_m)^{p_m}` is the Gaussian with precision
//! `T = 1 + sum_m p_m T_m` and mean `sum_m p_m T_m mean_m / T`: a missing expert contributes
//! nothing and the `1` is the prior expert, so a sample with no modality of `S` gets N(0, I).
//! The KL to the prior has a closed form.

use dfdx::prelude::*;

use super::{Aggregation, Experts};
use crate::backend::{Backend, Vector};
use crate::posterior::{standard_normal, Gaussian, Posterior, WeightedExpert};
use crate::subset::Subset;

/// The product of the present experts with the N(0, I) prior.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProductOfExperts;

impl Aggregation for ProductOfExperts {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        let present = experts
            .available(given)
            .map(|m| experts.get(m).expect("available").precision_form.reuse());
        let q = combine(present).unwrap_or_else(|| {
            let p = standard_normal(experts.batch(), experts.device());
            Gaussian {
                mean: p.mean.put_tape(T::default()),
                logvar: p.logvar.put_tape(T::default()),
            }
        });
        Posterior::Gaussian(q)
    }
}

/// The product of the N(0, I) prior with the given experts (in precision form).
///
/// With no experts this is the prior itself. The experts must share one batch size.
pub fn combine<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: impl IntoIterator<Item = WeightedExpert<L, D, T>>,
) -> Option<Gaussian<L, D, T>> {
    product(experts, PriorPrecision::One)
}

/// The precision the prior expert adds to a product.
pub(crate) enum PriorPrecision<D: Backend> {
    /// 1 for every sample (the prior expert is in the product).
    One,
    /// Per sample, `(batch,)`: 1 where the prior expert is in the product, 0 where not.
    PerSample(Vector<D>),
}

/// The product of the given experts (in precision form) with the prior expert weighted by
/// `prior`: `T = prior + sum_m T_m`, `mean = sum_m T_m mean_m / T`, `logvar = -ln T`.
/// `None` without experts.
pub(crate) fn product<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: impl IntoIterator<Item = WeightedExpert<L, D, T>>,
    prior: PriorPrecision<D>,
) -> Option<Gaussian<L, D, T>> {
    let mut it = experts.into_iter();
    let first = it.next()?;
    let mut precision = match prior {
        PriorPrecision::One => first.precision + 1.0,
        PriorPrecision::PerSample(p) => {
            let shape = *first.precision.shape();
            first.precision + p.broadcast_like(&shape)
        }
    };
    let mut weighted = first.weighted_mean;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posterior::tests::g;

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
}
