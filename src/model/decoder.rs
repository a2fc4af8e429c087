//! One modality's decoder: a latent `z` to the parameters of `p(x_m | z)`, the hidden stack
//! followed by a linear output layer (logits or means), plus a learned per-dimension
//! log-variance for a Gaussian likelihood with learned variance (a parameter of its own,
//! not a function of `z`).

use dfdx::prelude::*;
use rand::Rng;

use crate::backend::{realize, Backend, Latent, Matrix, Vector};
use crate::likelihood::{DecoderOutput, Likelihood, Variance};
use crate::modality::{Modality, ModalitySpec};
use crate::nn::{Activation, Linear, Mlp, ParamMut, ParamVisitor, Parameters};

/// Maps a latent to one modality's likelihood parameters.
#[derive(Clone, Debug)]
pub struct Decoder<D: Backend> {
    /// Hidden layers from the latent.
    pub hidden: Mlp<D>,
    /// Output layer: logits or means.
    pub out: Linear<D>,
    /// Per-dimension log-variance of a Gaussian likelihood with learned variance.
    pub logvar: Option<Vector<D>>,
}

impl<D: Backend> Decoder<D> {
    /// The decoder of `spec`'s modality from latents of size `latent`, its weights drawn from
    /// `rng` in the order hidden layers, output layer (a learned log-variance starts at 0).
    ///
    /// # Panics
    /// If `spec` has no decoder hidden layer (a validated spec has one).
    pub fn new(
        spec: &ModalitySpec,
        latent: usize,
        activation: Activation,
        rng: &mut impl Rng,
        dev: &D,
    ) -> Self {
        let hd = &spec.decoder_hidden;
        let like = spec.kind.likelihood();
        let last = *hd.last().expect("validated: decoder has a hidden layer");
        let logvar = matches!(
            like,
            Likelihood::Gaussian {
                variance: Variance::Learned,
                ..
            }
        )
        .then(|| dev.zeros_like(&(like.params(),)));
        let hidden = Mlp::new(latent, hd, activation, rng, dev);
        let out = Linear::new(last, like.params(), true, rng, dev);
        Self {
            hidden,
            out,
            logvar,
        }
    }

    /// The likelihood parameters at latents `z`; the log-variance, if any, on a fresh tape.
    pub fn forward<const L: usize, T: Tape<f32, D>>(
        &self,
        z: Latent<L, D, T>,
    ) -> DecoderOutput<D, T> {
        self.forward_features(realize(z))
    }

    /// The likelihood parameters at the decoder's input features `(batch, width)` (the
    /// latent, or the part of it that the decoder reads).
    pub fn forward_features<T: Tape<f32, D>>(&self, z: Matrix<D, T>) -> DecoderOutput<D, T> {
        let params = self.out.forward(self.hidden.forward(z));
        let logvar = self
            .logvar
            .as_ref()
            .map(|lv| lv.clone().put_tape(T::default()));
        DecoderOutput { params, logvar }
    }
}

/// Visits `hidden` and `out` in scopes of those names, then the parameter `logvar` if any.
impl<D: Backend> Parameters<D> for Decoder<D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        v.scope("hidden", |v| self.hidden.visit_params(v));
        v.scope("out", |v| self.out.visit_params(v));
        if let Some(lv) = &mut self.logvar {
            v.visit("logvar", ParamMut::Vector(lv));
        }
    }
}
