//! The mixture of products of experts (MoPoE, Sutter et al. 2021).
//!
//! Every non-empty subset `A` of `S` is a component: the product of the experts of `A`,
//! `T_A = sum_{m in A} T_m`, `mean_A = sum_{m in A} T_m mean_m / T_A`, with the N(0, I) prior
//! expert added (`T_A + 1`) only when `A` holds every modality of the model, as the MoPoE code
//! and MultiVae do. A component exists for a sample only where every modality of `A` is
//! present; `q(z | x_S)` is each sample's uniform mixture of its components (the prior where
//! it has none). The training loss takes the mean of the components' closed-form KLs
//! ([`MixtureKl::ComponentMean`], an upper bound on the mixture's KL). With `M` modalities in
//! `S` there are `2^M - 1` components.

use dfdx::prelude::*;

use super::poe::PriorPrecision;
use super::{Aggregation, Experts};
use crate::backend::{Backend, Vector};
use crate::posterior::{Gaussian, Mixture, MixtureKl, Posterior};
use crate::subset::Subset;

/// The uniform mixture of the products of experts of every non-empty subset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixtureOfProductsOfExperts;

impl Aggregation for MixtureOfProductsOfExperts {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        let n = experts.batch();
        let present: Vec<usize> = experts.available(given).collect();
        let everything = Subset::all(experts.len());
        let mut components = Vec::new();
        let mut available = Vec::new();
        for bits in 1u64..(1u64 << present.len()) {
            let members: Vec<usize> = present
                .iter()
                .enumerate()
                .filter(|(j, _)| bits & (1 << j) != 0)
                .map(|(_, &m)| m)
                .collect();
            let has: Vec<bool> = (0..n)
                .map(|i| {
                    members
                        .iter()
                        .all(|&m| experts.get(m).expect("available").present_host[i])
                })
                .collect();
            let with_prior = Subset::of(&members) == everything;
            components.push(product(experts, &members, &has, with_prior));
            available.push(has);
        }
        Posterior::Mixture(Mixture::with_prior_fallback(
            components,
            available,
            n,
            experts.device(),
            MixtureKl::ComponentMean,
        ))
    }
}

/// The product of the experts `members` (in precision form, masked by presence), with the
/// prior expert if `with_prior`; where the component does not exist (`has` false) the prior's
/// precision is added too, so that its values stay finite (they are never used there).
fn product<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: &Experts<L, D, T>,
    members: &[usize],
    has: &[bool],
    with_prior: bool,
) -> Gaussian<L, D, T> {
    let n = experts.batch();
    let prior: Vec<f32> = has
        .iter()
        .map(|&h| f32::from(u8::from(with_prior || !h)))
        .collect();
    let prior: Vector<D> = experts.device().tensor_from_vec(prior, (n,));
    let members = members.iter().map(|&m| {
        experts
            .get(m)
            .expect("members have experts")
            .precision_form
            .reuse()
    });
    super::poe::product(members, PriorPrecision::PerSample(prior))
        .expect("a component has a member")
}
