//! Data: readers for real files, paired multimodal data sets with presence masks, and
//! seeded batches.

mod dataset;
mod error;
pub mod idx;

pub use dataset::{Column, MultimodalDataset};
pub use error::DataError;
