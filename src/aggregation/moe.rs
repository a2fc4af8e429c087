//! The mixture of experts (MMVAE, Shi et al. 2019).
//!
//! `q(z | x_S) = (1/k) sum_{m in S, present} q(z | x_m)`: each sample's uniform mixture of the
//! unimodal posteriors of the modalities of `S` it has (`k` of them); the prior where it has
//! none. The KL to the prior has no closed form: the training loss takes the single-sample
//! estimate `log q(z) - log p(z)` ([`MixtureKl::MonteCarlo`]).

use dfdx::prelude::*;

use super::{Aggregation, Experts};
use crate::backend::Backend;
use crate::posterior::{Mixture, MixtureKl, Posterior};
use crate::subset::Subset;

/// The uniform mixture of the present experts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MixtureOfExperts;

impl Aggregation for MixtureOfExperts {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        let (components, available) = experts
            .available(given)
            .map(|m| {
                let e = experts.get(m).expect("available");
                (e.gaussian.retaped(), e.present_host.clone())
            })
            .unzip();
        Posterior::Mixture(Mixture::with_prior_fallback(
            components,
            available,
            experts.batch(),
            experts.device(),
            MixtureKl::MonteCarlo,
        ))
    }
}
