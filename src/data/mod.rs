//! Data layer of mvae: readers for MNIST (IDX), WAV audio, spectrograms, the
//! Free Spoken Digit Dataset, image folders and CSV tables, the paired sets built
//! from them (audio-visual digits, PolyMNIST), plus the generic paired
//! [`MultimodalDataset`] with its batch iterator.
//!
//! Nothing here panics on user input; every failure is a [`DataError`].

pub mod atomic;
pub mod av_digits;
pub mod batch;
pub mod binarize;
pub mod dataset;
pub mod error;
#[cfg(test)]
mod fixtures;
pub mod fsdd;
pub mod griffin_lim;
pub mod idx;
pub mod image_folder;
pub mod normalizer;
pub mod polymnist;
pub mod spectrogram;
pub mod split;
pub mod tabular;
pub mod wav;

pub use av_digits::{AvDigits, AvDigitsConfig};
pub use batch::{BatchOptions, Batches, HostBatch, HostColumn};
pub use binarize::binarize;
pub use dataset::{Column, DatasetBuilder, MultimodalDataset};
pub use error::{DataError, Result};
pub use fsdd::{ClipName, Fsdd, FsddOptions};
pub use griffin_lim::{griffin_lim, GriffinLimConfig};
pub use idx::{read_images, read_labels, write_idx_gz, IdxImages, Mnist};
pub use image_folder::{Channels, ImageFolder};
pub use normalizer::Normalizer;
pub use polymnist::{PolyMnist, PolyMnistConfig};
pub use spectrogram::{SpectrogramConfig, Stft};
pub use split::Split;
pub use tabular::{cell_value, read_csv, write_csv, Table, MAX_MAGNITUDE};
pub use wav::{read_wav, read_wav_at, write_wav, Audio, Resample};
