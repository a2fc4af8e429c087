//! One modality's encoder: its data `x_m` to the Gaussian expert
//! `q(z | x_m) = N(mean(h), exp(logvar(h)))` with `h = hidden(act(input(x_m)))`, where `mean`
//! and `logvar` are linear heads and `input` is a linear map of dense values or an embedding of
//! class indices, by the modality's [`EncoderInput`].

use dfdx::prelude::*;
use rand::Rng;

use crate::backend::{realize, Backend};
use crate::likelihood::Input;
use crate::modality::{EncoderInput, Modality, ModalitySpec};
use crate::nn::{Activation, Embedding, Linear, Mlp, ParamVisitor, Parameters};
use crate::posterior::Gaussian;

/// Maps one modality's data to its Gaussian expert `q(z | x_m)`.
#[derive(Clone, Debug)]
pub struct Encoder<const L: usize, D: Backend> {
    /// First layer: a linear map of dense input or an embedding of class indices.
    pub input: InputLayer<D>,
    /// The remaining hidden layers.
    pub hidden: Mlp<D>,
    /// Head for the mean.
    pub mean: Linear<D>,
    /// Head for the log-variance.
    pub logvar: Linear<D>,
    /// Applied after the input layer (`hidden` applies its own after each of its layers).
    pub activation: Activation,
}

/// The first layer of an encoder, by [`EncoderInput`].
#[derive(Clone, Debug)]
pub enum InputLayer<D: Backend> {
    /// Dense values through a linear layer.
    Dense(Linear<D>),
    /// Class indices through an embedding table.
    Embedding(Embedding<D>),
}

impl<const L: usize, D: Backend> Encoder<L, D> {
    /// The encoder of `spec`'s modality, its weights drawn from `rng` in the order input layer,
    /// hidden layers, mean head, log-variance head.
    ///
    /// # Panics
    /// If `spec` has no encoder hidden layer (a validated spec has one).
    pub fn new(spec: &ModalitySpec, activation: Activation, rng: &mut impl Rng, dev: &D) -> Self {
        let h = &spec.encoder_hidden;
        let input = match spec.kind.encoder_input() {
            EncoderInput::Dense { dim } => {
                InputLayer::Dense(Linear::new(dim, h[0], true, rng, dev))
            }
            EncoderInput::Embedding { classes } => {
                InputLayer::Embedding(Embedding::new(classes, h[0], rng, dev))
            }
        };
        let hidden = Mlp::new(h[0], &h[1..], activation, rng, dev);
        let last = *h.last().expect("validated: encoder has a hidden layer");
        let mean = Linear::new(last, L, true, rng, dev);
        let logvar = Linear::new(last, L, true, rng, dev);
        Self {
            input,
            hidden,
            mean,
            logvar,
            activation,
        }
    }

    /// The expert `q(z | x_m)` of `input`, recording on `tape`.
    ///
    /// # Panics
    /// If `input` is not what the input layer reads (dense values for a linear layer, class
    /// indices for an embedding).
    pub fn forward<T: Tape<f32, D>>(&self, input: &Input<D>, tape: T) -> Gaussian<L, D, T> {
        let act = self.activation;
        let h = match (&self.input, input) {
            (InputLayer::Dense(l), Input::Dense(x)) => {
                l.forward_on_data(x.clone().put_tape(tape), act)
            }
            (InputLayer::Embedding(e), Input::Classes(ids)) => {
                act.apply(e.lookup(ids.clone().put_tape(tape)))
            }
            _ => panic!("input does not match the encoder's input layer"),
        };
        let h = self.hidden.forward(h);
        let mean = self.mean.forward(h.with_empty_tape());
        let logvar = self.logvar.forward(h);
        Gaussian {
            mean: realize(mean),
            logvar: realize(logvar),
        }
    }
}

impl<D: Backend> Parameters<D> for InputLayer<D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        match self {
            InputLayer::Dense(l) => l.visit_params(v),
            InputLayer::Embedding(e) => e.visit_params(v),
        }
    }
}

/// Visits `input`, `hidden`, `mean` and `logvar`, each in a scope of that name.
impl<const L: usize, D: Backend> Parameters<D> for Encoder<L, D> {
    fn visit_params<'p>(&'p mut self, v: &mut ParamVisitor<'_, 'p, D>) {
        v.scope("input", |v| self.input.visit_params(v));
        v.scope("hidden", |v| self.hidden.visit_params(v));
        v.scope("mean", |v| self.mean.visit_params(v));
        v.scope("logvar", |v| self.logvar.visit_params(v));
    }
}
