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
//!
//! **Many modalities.** Where the modalities of `S` that the batch has make more non-empty
//! subsets than the limit [`SubsetDraw::limit`] (the model's
//! [`ModelConfig::components`](crate::ModelConfig::components), 1,023 by default: every
//! subset of up to 10 modalities), each sample's mixture is over a seeded uniform sample of
//! `limit` distinct non-empty subsets of the modalities *it* has (all of them where it has
//! few enough). The sample depends only on the seed and on which modalities the sample has,
//! so the parts of a batch form the same components as the whole. Component `j` is then a
//! slot: per sample, the product of the experts of that sample's `j`-th subset. A uniform
//! draw of subsets keeps the objective unbiased: the component picked for a sample's latent
//! is uniform over all its subsets, and the mean of the sampled components' KLs is an
//! unbiased estimate of the mean over all of them. Training draws a new seed every step
//! ([`TermPlan::subset_seed`](crate::objective::TermPlan::subset_seed)); encoding and
//! evaluation use seed 0, so their proposal is one fixed mixture, whose density is exact.

use std::collections::HashSet;

use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::poe::PriorPrecision;
use super::{Aggregation, Experts};
use crate::backend::{Backend, Vector};
use crate::posterior::{Gaussian, Mixture, MixtureKl, Posterior};
use crate::subset::Subset;

/// The uniform mixture of the products of experts of every non-empty subset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixtureOfProductsOfExperts;

/// How many of a sample's subsets the mixture of products of experts forms, and the seed of
/// the sample of subsets where it has more (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubsetDraw {
    /// The most components per sample (at least 1).
    pub limit: usize,
    /// Seed of the sample of subsets.
    pub seed: u64,
}

impl SubsetDraw {
    /// The default limit: every subset of up to 10 modalities (`2^10 - 1`).
    pub const DEFAULT_LIMIT: usize = 1023;
}

impl Default for SubsetDraw {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
            seed: 0,
        }
    }
}

impl Aggregation for MixtureOfProductsOfExperts {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        let n = experts.batch();
        let present: Vec<usize> = experts.available(given).collect();
        let draw = experts.subsets();
        if subset_count(present.len()) > draw.limit as u128 {
            return sampled(experts, &present, draw);
        }
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

/// Non-empty subsets of `m` things.
fn subset_count(m: usize) -> u128 {
    (1u128 << m) - 1
}

/// The mixture over a seeded sample of each sample's subsets: component `j` holds, per
/// sample, the product of the experts of that sample's `j`-th subset (module docs).
fn sampled<const L: usize, D: Backend, T: Tape<f32, D>>(
    experts: &Experts<L, D, T>,
    present: &[usize],
    draw: SubsetDraw,
) -> Posterior<L, D, T> {
    let n = experts.batch();
    let everything = Subset::all(experts.len());
    // Per sample, the modalities it has (a bit per entry of `present`), then each distinct
    // pattern's subsets, drawn once.
    let has = |m: usize, i: usize| experts.get(m).expect("available").present_host[i];
    let patterns: Vec<u64> = (0..n)
        .map(|i| {
            present
                .iter()
                .enumerate()
                .filter(|&(_, &m)| has(m, i))
                .fold(0u64, |acc, (j, _)| acc | (1 << j))
        })
        .collect();
    let mut drawn: Vec<(u64, Vec<u64>)> = Vec::new();
    for &p in &patterns {
        if !drawn.iter().any(|(q, _)| *q == p) {
            drawn.push((p, subsets_of(p, draw)));
        }
    }
    let per_sample: Vec<&[u64]> = patterns
        .iter()
        .map(|p| {
            let (_, s) = drawn.iter().find(|(q, _)| q == p).expect("drawn");
            s.as_slice()
        })
        .collect();
    let slots = per_sample.iter().map(|s| s.len()).max().unwrap_or(0);
    let dev = experts.device();
    let mut components = Vec::with_capacity(slots);
    let mut available = Vec::with_capacity(slots);
    for j in 0..slots {
        let exists: Vec<bool> = per_sample.iter().map(|s| j < s.len()).collect();
        // Where the slot does not exist, or its subset is every modality of the model, the
        // prior expert's precision is added (finite values where unused; MoPoE's prior in
        // the joint component).
        let prior: Vec<f32> = per_sample
            .iter()
            .map(|s| {
                let joint = s
                    .get(j)
                    .is_some_and(|&bits| Subset::of(&members(present, bits)) == everything);
                f32::from(u8::from(joint || j >= s.len()))
            })
            .collect();
        let mut terms = Vec::new();
        for (b, &m) in present.iter().enumerate() {
            let mask: Vec<f32> = per_sample
                .iter()
                .map(|s| f32::from(u8::from(s.get(j).is_some_and(|&bits| bits & (1 << b) != 0))))
                .collect();
            if mask.iter().any(|&x| x != 0.0) {
                let mask: Vector<D> = dev.tensor_from_vec(mask, (n,));
                let e = experts.get(m).expect("available").precision_form.reuse();
                terms.push(e.masked(&mask));
            }
        }
        let prior: Vector<D> = dev.tensor_from_vec(prior, (n,));
        components.push(
            super::poe::product(terms, PriorPrecision::PerSample(prior))
                .expect("a slot has a member in some sample"),
        );
        available.push(exists);
    }
    Posterior::Mixture(Mixture::with_prior_fallback(
        components,
        available,
        n,
        dev,
        MixtureKl::ComponentMean,
    ))
}

/// The entries of `present` whose bits are set in `bits`.
fn members(present: &[usize], bits: u64) -> Vec<usize> {
    present
        .iter()
        .enumerate()
        .filter(|&(j, _)| bits & (1 << j) != 0)
        .map(|(_, &m)| m)
        .collect()
}

/// The non-empty subsets (bit masks within `pattern`) a sample with `pattern` mixes: every
/// one in increasing order where there are at most `draw.limit`, otherwise `draw.limit`
/// distinct ones drawn uniformly from a generator seeded by the seed and the pattern.
fn subsets_of(pattern: u64, draw: SubsetDraw) -> Vec<u64> {
    let count = subset_count(pattern.count_ones() as usize);
    if count <= draw.limit as u128 {
        // Every non-empty submask, in increasing order.
        let mut out = Vec::new();
        let mut s = pattern;
        while s != 0 {
            out.push(s);
            s = (s - 1) & pattern;
        }
        out.reverse();
        return out;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(mix(draw.seed) ^ mix(pattern.wrapping_add(1)));
    let mut seen = HashSet::with_capacity(draw.limit);
    let mut out = Vec::with_capacity(draw.limit);
    while out.len() < draw.limit {
        // Each bit of the pattern kept with probability 1/2: a uniform submask.
        let s = rng.gen::<u64>() & pattern;
        if s != 0 && seen.insert(s) {
            out.push(s);
        }
    }
    out
}

/// A 64-bit mixing function (SplitMix64's finaliser), so that nearby seeds and patterns
/// seed unrelated generators.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
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
