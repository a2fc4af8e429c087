//! MMVAE+ (Palumbo et al. 2023): a shared latent combined as the mixture of experts, plus a
//! private latent per modality with a learned prior.
//!
//! The latent of size `L` is laid out by [`PrivateLayout`]: `u`, the shared part, then one
//! private slice `w_m` of size `P` per modality. Expert `m` gives `q(u | x_m)` and
//! `q(w_m | x_m)` (its other private slices are not read). For a subset `S`, component `j`
//! (each present modality of `S`) is the Gaussian whose shared part is `q(u | x_j)` and whose
//! private slice `n` is `q(w_n | x_n)` where the sample has `n` in `S`, else the learned prior
//! `r_n(w) = N(0, diag(exp(logvar_n)))`. The components differ only in `u`, so the mixture is
//! `q(u | x_S) = (1/k) sum_j q(u | x_j)` times the private factors. Decoder `n` reads `u` and
//! `w_n`: decoding into a modality the posterior lacks draws its private part from `r_n`
//! ("cross-modal decoding draws the private part from that prior").
//!
//! The densities and the KL count the dimensions drawn from experts only
//! ([`Mixture::with_scored_dims`]): `r_n` is an auxiliary distribution of the decoders, no
//! part of the variational posterior. So MMVAE's stratum of modality `m` scores
//! `log p(u, w_m) - log q(u | X) - log q(w_m | x_m)`, as the MMVAE+ code does, and an
//! importance-sampled `log p(X)` integrates over `u` and the present modalities' `w`.

use dfdx::prelude::*;

use super::{Aggregation, Experts, MixtureOfExperts};
use crate::backend::{Backend, Latent, Matrix, Vector};
use crate::posterior::{Gaussian, Mixture, MixtureKl, Posterior};
use crate::subset::Subset;

/// Where the shared and the private parts of a latent with private slices lie: dimensions
/// `0..shared` are shared by every modality, `shared + m P .. shared + (m + 1) P` are modality
/// `m`'s own (MMVAE+). Decoder `m` reads the shared part and its own slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateLayout {
    /// Shared dimensions, first.
    pub shared: usize,
    /// Dimensions of each modality's private slice.
    pub private: usize,
}

impl PrivateLayout {
    /// The dimensions of modality `m`'s private slice.
    pub fn slice(&self, m: usize) -> std::ops::Range<usize> {
        let start = self.shared + m * self.private;
        start..start + self.private
    }

    /// The width a decoder reads: shared and one private slice.
    pub fn decoder_input(&self) -> usize {
        self.shared + self.private
    }

    /// The 0/1 matrix `(latent, shared + private)` whose product with latents gives the
    /// columns decoder `m` reads: the shared part, then `m`'s slice; `None` where that is the
    /// whole latent (one modality). The model builds these once.
    ///
    /// A product, not `slice`: dfdx 0.13's slice backward on the CPU assigns the gradient
    /// instead of adding it, so the shared part, which every decoder reads, would keep only one
    /// decoder's gradient.
    pub fn decoder_selection<D: Backend>(
        &self,
        latent: usize,
        m: usize,
        dev: &D,
    ) -> Option<Matrix<D>> {
        let width = self.decoder_input();
        if width == latent {
            return None;
        }
        let columns = (0..self.shared).chain(self.slice(m));
        Some(selection(latent, width, columns, dev))
    }

    /// The 0/1 matrix `(latent, shared)` whose product with latents gives their shared part
    /// (what the contrastive term aligns). A product, as [`PrivateLayout::decoder_selection`].
    pub fn shared_selection<D: Backend>(&self, latent: usize, dev: &D) -> Matrix<D> {
        selection(latent, self.shared, 0..self.shared, dev)
    }
}

/// The 0/1 matrix `(latent, width)` whose product with latents gives the `width` `columns`,
/// in order.
fn selection<D: Backend>(
    latent: usize,
    width: usize,
    columns: impl Iterator<Item = usize>,
    dev: &D,
) -> Matrix<D> {
    let mut select = vec![0.0f32; latent * width];
    for (to, from) in columns.enumerate() {
        select[from * width + to] = 1.0;
    }
    dev.tensor_from_vec(select, (latent, width))
}

/// The shared mixture of experts with private latents; see the module doc.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmvaePlus;

impl Aggregation for MmvaePlus {
    fn aggregate<const L: usize, D: Backend, T: Tape<f32, D>>(
        &self,
        experts: &Experts<L, D, T>,
        given: Subset,
    ) -> Posterior<L, D, T> {
        let Some(private) = experts.private() else {
            // Without private latents MMVAE+ combines like MMVAE.
            return MixtureOfExperts.aggregate(experts, given);
        };
        let lay = private.layout;
        let (n, dev) = (experts.batch(), experts.device().clone());
        let mods = experts.len();
        // own[m][i]: sample i's private slice m comes from its expert.
        let own: Vec<Vec<bool>> = (0..mods)
            .map(|m| match experts.get(m) {
                Some(e) if given.contains(m) => e.present_host.clone(),
                _ => vec![false; n],
            })
            .collect();
        // 0/1 masks over (row, dimension). Parts are picked by masks, not `slice` (see
        // `PrivateLayout::decoder_selection`).
        let mask = |f: &dyn Fn(usize, usize) -> bool| -> Latent<L, D> {
            let v = (0..n)
                .flat_map(|i| (0..L).map(move |d| (i, d)))
                .map(|(i, d)| f32::from(u8::from(f(i, d))))
                .collect();
            dev.tensor_from_vec(v, (n, Const::<L>))
        };
        let owner = |d: usize| (d >= lay.shared).then(|| (d - lay.shared) / lay.private);
        let shared_mask = mask(&|_, d| owner(d).is_none());
        let from_prior = mask(&|i, d| owner(d).is_some_and(|m| !own[m][i]));
        // The private part (zero on the shared dimensions): each slice from its expert where
        // the sample has it, else mean 0 and the prior's log-variance.
        let mut private_mean: Option<Latent<L, D, T>> = None;
        let mut private_logvar: Latent<L, D, T> =
            prior_logvars::<L, D, T>(&private.logvar, lay, n, &dev) * from_prior.clone();
        for m in (0..mods).filter(|&m| own[m].contains(&true)) {
            let g = &experts.get(m).expect("own slices have experts").gaussian;
            let slice = mask(&|i, d| owner(d) == Some(m) && own[m][i]);
            let mean = g.mean.with_empty_tape() * slice.clone();
            private_mean = Some(match private_mean {
                None => mean,
                Some(p) => p + mean,
            });
            private_logvar = private_logvar + g.logvar.with_empty_tape() * slice;
        }
        let private_mean =
            private_mean.unwrap_or_else(|| dev.zeros_like(&(n, Const::<L>)).put_tape(T::default()));
        // One component per present modality of `given` (its shared part), and the prior's
        // where a sample has none (shared part N(0, I)).
        let members: Vec<usize> = experts.available(given).collect();
        let none: Vec<bool> = (0..n).map(|i| own.iter().all(|o| !o[i])).collect();
        let mut shared: Vec<(Option<usize>, Vec<bool>)> =
            members.iter().map(|&j| (Some(j), own[j].clone())).collect();
        if none.iter().any(|&x| x) {
            shared.push((None, none));
        }
        let last = shared.len() - 1;
        let (mut pm, mut pl) = (Some(private_mean), Some(private_logvar));
        let mut components = Vec::with_capacity(shared.len());
        let mut available = Vec::with_capacity(shared.len());
        for (c, (j, has)) in shared.into_iter().enumerate() {
            // The last component carries the private part's tape; the others read copies.
            let (mean, logvar) = if c == last {
                (pm.take().expect("once"), pl.take().expect("once"))
            } else {
                let m = pm.as_ref().expect("still here").with_empty_tape();
                let l = pl.as_ref().expect("still here").with_empty_tape();
                (m, l)
            };
            let (mean, logvar) = match j {
                Some(j) => {
                    let g = &experts.get(j).expect("available").gaussian;
                    (
                        g.mean.with_empty_tape() * shared_mask.clone() + mean,
                        g.logvar.with_empty_tape() * shared_mask.clone() + logvar,
                    )
                }
                None => (mean, logvar),
            };
            components.push(Gaussian { mean, logvar });
            available.push(has);
        }
        let dims = mask(&|i, d| owner(d).is_none_or(|m| own[m][i]));
        Posterior::Mixture(
            Mixture::with_prior_fallback(components, available, n, &dev, MixtureKl::MonteCarlo)
                .with_scored_dims(dims),
        )
    }
}

/// The priors' log-variances in their slices (0 on the shared part), for each of `n` rows:
/// the `(P,)` vectors concatenated after `shared` zeros and broadcast over the rows.
fn prior_logvars<const L: usize, D: Backend, T: Tape<f32, D>>(
    logvars: &[Vector<D, T>],
    lay: PrivateLayout,
    n: usize,
    dev: &D,
) -> Latent<L, D, T> {
    let shared: Vector<D, T> = dev.zeros_like(&(lay.shared,)).put_tape(T::default());
    let row = logvars.iter().fold(shared, |row, lv| {
        (row, lv.with_empty_tape()).concat_along(Axis::<0>)
    });
    let width = row.shape().0;
    let Ok(row) = row.try_realize::<(Const<L>,)>() else {
        panic!("a private layout of {width} dimensions in a latent of {L}");
    };
    row.broadcast_like(&(n, Const::<L>))
}
