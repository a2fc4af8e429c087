//! Pictures as PNG files: training curves, latent scatter plots, image grids and spectrograms.
//!
//! Every function checks its input first (empty data, NaN or infinite values, lengths that do
//! not match the stated sizes, zero sizes) and returns an [`Error`](crate::Error) rather than
//! panicking. Pictures are drawn into memory with `plotters`' bitmap backend, encoded with
//! `image` and written atomically, so a reader never sees half a file. Text uses the bundled
//! DejaVu Sans font (`assets/fonts/`), so no system font libraries are needed.
//!
//! | module | draws |
//! |---|---|
//! | [`curves`] | losses, KL and beta over epochs from [`EpochMetrics`](crate::train::EpochMetrics) |
//! | [`pca`] | (no picture) a two-component PCA, to flatten latents for [`scatter`] |
//! | [`scatter`] | 2-D points coloured by class, with a legend; several groups (modalities) by marker |
//! | [`grid`] | grey or RGB images tiled into one picture, with optional row labels |
//! | [`spectrogram`] | log-magnitude spectrograms as heat maps, alone or tiled |
//! | [`colour`] | the class palette and the heat-map colour maps |

mod canvas;
pub mod colour;
pub mod curves;
pub mod grid;
pub mod pca;
pub mod scatter;
pub mod spectrogram;

pub use colour::Colormap;
pub use curves::{line_chart, training_curves};
pub use grid::{image_grid, image_grid_channels, GridOptions};
pub use pca::{pca2, Pca2};
pub use scatter::{grouped_scatter, latent_scatter, latent_scatter_with, ScatterOptions};
pub use spectrogram::{spectrogram_grid, spectrogram_image, ColourScale, SpectrogramOptions};
