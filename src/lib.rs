//! Multimodal variational autoencoders on dfdx: one shared latent space for images, labels,
//! sound and tables, trained so that any subset of modalities can be encoded and any modality
//! generated from it.
//!
//! | type | what it is for |
//! |---|---|
//! | [`ModelConfig`], [`ModalitySpec`] | the modalities ([`Image`], [`Label`], [`Continuous`]), their networks and weights, how experts are combined |
//! | [`Mvae`] | the model: [`Mvae::encode`] any subset, [`Mvae::decode_mean`], [`Mvae::sample_prior`], by name or index |
//! | [`AggregationKind`] | how the experts of the present modalities become one posterior ([`Aggregation`]) |
//! | [`Posterior`] | `q(z \| x_S)`: its mean (an embedding), samples, log-density, KL to the prior |
//! | [`Subset`] | a set of modalities ([`Mvae::subset`] builds one from names) |
//! | [`MultimodalDataset`] | columns of values with per-sample presence; [`data`] reads MNIST, spoken digits, image folders, CSV |
//! | [`Batch`], [`HostValues`] | host values checked and put on the device |
//! | [`TrainConfig`], [`ObjectiveConfig`], [`Trainer`] | training: settings, the sub-sampled ELBO ([`Objective`]), the seeded loop |
//! | [`checkpoint`] | [`Mvae::save`]/[`Mvae::load`], [`Trainer::save`]/[`Trainer::resume`] (exact) |
//! | [`eval::evaluate`] | test ELBOs, IWAE log-likelihoods, cross-modal coherence, probes |
//! | [`impute::impute`], [`impute::generate`] | fill missing values, generate modalities from given ones |
//! | [`Error`] | the one error type: every failure names what and why |
//!
//! Modules are layered (lowest first: `subset`, `data`, `error`, `codec`, the tensor and kernel
//! layers, `nn`, `optim`, `posterior`, `likelihood`, `modality`, `batch`, `aggregation`,
//! `model`, `objective`, `train`, ...); `docs/architecture.md` has the order and what each holds.
//!
#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod aggregation;
pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod codec;
pub mod data;
pub mod embed;
pub mod eval;
pub mod impute;
pub mod kernels;
pub mod likelihood;
pub mod modality;
pub mod model;
pub mod nn;
pub mod objective;
pub mod optim;
pub mod plot;
pub mod posterior;
// Opt-in timers of a training step: a bench hook (`benches/step_loop.rs` prints them), not
// part of the documented API.
#[doc(hidden)]
pub mod profile;
pub mod similarity;
pub mod subset;
pub mod train;

mod error;
mod tensor;

pub use aggregation::{Aggregation, AggregationKind, Experts};
pub use backend::Backend;
pub use batch::{Batch, HostValues};
pub use codec::{Codec, Codecs};
pub use data::MultimodalDataset;
pub use error::{Error, Result};
pub use modality::{Continuous, Image, Label, Modality, ModalitySpec};
pub use model::{ModelConfig, Mvae};
pub use nn::Activation;
pub use objective::{Objective, ObjectiveConfig};
pub use optim::AdamSettings;
pub use posterior::{Gaussian, Posterior};
pub use subset::Subset;
pub use train::{TrainConfig, Trainer};

/// Sets flush-to-zero and denormals-are-zero on this thread and on every rayon worker.
///
/// Subnormal floats make x86 arithmetic many times slower; a VAE never needs them.
pub fn flush_denormals() {
    fn set() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: reading and writing MXCSR only changes this thread's float rounding of
        // subnormals (FTZ = bit 15, DAZ = bit 6); no memory is touched.
        #[allow(deprecated)]
        unsafe {
            use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
            _mm_setcsr(_mm_getcsr() | 0x8040);
        }
    }
    set();
    rayon::broadcast(|_| set());
}
