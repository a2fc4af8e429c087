//! `mvae`: train, evaluate, generate across modalities, impute and sample multimodal VAEs.
//!
//! Every sub-command explains itself with `--help`, prints a readable summary by default and
//! one JSON document with `--json`. Errors are one line on stderr and a non-zero exit.

mod config;
mod data;
mod embed;
mod eval;
mod generate;
mod impute;
mod manifest;
mod output;
mod pictures;
mod search;
mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Latent sizes compiled into the tool (the latent size is a compile-time constant of the
/// library's model type).
pub const LATENT_SIZES: [usize; 7] = [2, 8, 16, 20, 32, 64, 128];

#[derive(Parser)]
#[command(
    name = "mvae",
    version,
    about = "Multimodal variational autoencoders: one latent space for images, sound, labels and tables",
    long_about = "Multimodal variational autoencoders: each modality has an encoder that emits a \
Gaussian expert; the experts of the modalities a sample has are combined into one posterior (by \
default the product of experts with a N(0, I) prior, as in MVAE, Wu & Goodman 2018; see `mvae \
train --aggregation`), so any subset of modalities can be encoded and every modality decoded \
from it.\n\n\
Typical use:\n  mvae train --dataset mnist --epochs 5 --out runs/mnist\n  \
mvae eval --checkpoint runs/mnist\n  mvae generate --checkpoint runs/mnist --label 3 --out gen\n  \
mvae impute --checkpoint runs/table --csv partial.csv --out completed.csv\n  \
mvae sample --checkpoint runs/mnist --out samples"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON document on stdout instead of the readable summary.
    #[arg(long, global = true)]
    json: bool,
    /// Where the model runs (`cuda` needs a build with `--features cuda`).
    #[arg(long, global = true, value_enum, default_value_t = DeviceKind::Cpu)]
    device: DeviceKind,
}

/// A compute device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceKind {
    /// The CPU.
    Cpu,
    /// An NVIDIA GPU.
    Cuda,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model and write a run directory (config, checkpoint, metrics, pictures).
    Train(Box<train::TrainArgs>),
    /// Run the evaluation suite on a checkpoint (likelihoods, coherence, probes, retrieval).
    Eval(eval::EvalArgs),
    /// Write the latent means of a run's data under any subset of modalities (CSV or
    /// safetensors).
    Embed(embed::EmbedArgs),
    /// Rank a folder of files by how close their embeddings lie to what is given.
    Search(search::SearchArgs),
    /// Generate the other modalities from given ones (image file, WAV file, label).
    Generate(generate::GenerateArgs),
    /// Fill the missing modalities of a CSV table or a folder of files.
    Impute(impute::ImputeArgs),
    /// Draw unconditional samples of every modality from the prior.
    Sample(generate::SampleArgs),
}

/// Options every command shares.
pub struct Common {
    pub json: bool,
    pub device: DeviceKind,
}

/// Calls `$f::<L, Device>(dev, args...)` for the runtime latent size and device.
#[macro_export]
macro_rules! dispatch {
    ($common:expr, $latent:expr, $f:ident ( $($arg:expr),* $(,)? )) => {{
        let latent: usize = $latent;
        match $common.device {
            $crate::DeviceKind::Cpu => $crate::dispatch!(@latent latent, dfdx::prelude::Cpu::default(), $f($($arg),*)),
            $crate::DeviceKind::Cuda => {
                #[cfg(feature = "cuda")]
                { $crate::dispatch!(@latent latent, mvae::backend::cuda_device(0)?, $f($($arg),*)) }
                #[cfg(not(feature = "cuda"))]
                { anyhow::bail!("--device cuda needs a build with `--features cuda`") }
            }
        }
    }};
    (@latent $latent:ident, $dev:expr, $f:ident ( $($arg:expr),* )) => {
        match $latent {
            2 => $f::<2, _>($dev, $($arg),*),
            8 => $f::<8, _>($dev, $($arg),*),
            16 => $f::<16, _>($dev, $($arg),*),
            20 => $f::<20, _>($dev, $($arg),*),
            32 => $f::<32, _>($dev, $($arg),*),
            64 => $f::<64, _>($dev, $($arg),*),
            128 => $f::<128, _>($dev, $($arg),*),
            other => anyhow::bail!(
                "latent size {other} is not built into this tool; choose one of {:?}",
                $crate::LATENT_SIZES
            ),
        }
    };
}

/// The checkpoint file of `path`: the path itself, or `checkpoint.safetensors` in a run folder.
pub fn checkpoint_file(path: &std::path::Path) -> PathBuf {
    if path.is_dir() {
        path.join(train::CHECKPOINT)
    } else {
        path.to_path_buf()
    }
}

fn main() {
    let cli = Cli::parse();
    let common = Common {
        json: cli.json,
        device: cli.device,
    };
    let result = match cli.command {
        Command::Train(a) => train::run(&common, *a),
        Command::Eval(a) => eval::run(&common, a),
        Command::Embed(a) => embed::run(&common, a),
        Command::Search(a) => search::run(&common, a),
        Command::Generate(a) => generate::run(&common, a),
        Command::Impute(a) => impute::run(&common, a),
        Command::Sample(a) => generate::sample(&common, a),
    };
    if let Err(e) = result {
        // One line: each cause once (library errors often repeat their source's text).
        let mut msg = String::new();
        for cause in e.chain() {
            let c = cause.to_string().replace('\n', " ");
            if !msg.contains(&c) {
                if !msg.is_empty() {
                    msg.push_str(": ");
                }
                msg.push_str(&c);
            }
        }
        eprintln!("error: {msg}");
        std::process::exit(1);
    }
}
