#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod aggregation;
pub mod backend;
pub mod batch;
pub mod checkpoint;
pub mod codec;
pub mod data;
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
