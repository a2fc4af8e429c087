//! The imputation benchmark on real tables: hide cells completely at random, fill them, and
//! score the hidden cells, as HyperImpute and others report it.
//!
//! ```text
//! MVAE_DATA=../shared/data cargo run --release --example tabular_impute
//! MVAE_DATA=../shared/data cargo run --release --example tabular_impute -- --tables wine --rates 0.3 --json
//! ```
//!
//! For each table of `DIR/tabular` (`breast_cancer`, `diabetes`, `wine`; their numeric columns,
//! a word column such as the class is left out), each missing rate and each seeded mask:
//!
//! 1. every column is min-max scaled to `[0, 1]` over the whole table;
//! 2. each cell is hidden with the rate's probability (a row never loses every cell: where the
//!    draws would hide all of them, one chosen at random stays);
//! 3. the hidden cells are filled by the column means ([`baseline::mean`]), by the `k = 5`
//!    nearest rows ([`baseline::knn`], scikit-learn's `KNNImputer`), and by a multimodal VAE
//!    with one modality per column (a Gaussian of learned variance per column, standardised
//!    on its visible cells; the product of experts leaves a hidden cell out), trained on the
//!    masked table and imputing from the posterior mean of each row's visible cells;
//! 4. each method's score is the root mean squared error of the hidden cells, on the `[0, 1]`
//!    scale.
//!
//! Prints a table of RMSE (mean over the masks) and seconds per method, or with `--json` one
//! JSON line per table and rate: `table`, `rows`, `columns`, `rate`, `masks`, and per method
//! (`mean`, `knn`, `mvae`) its `rmse` (mean), `rmse_per_mask` and `seconds`.
//!
//! Data: `--data DIR` or `MVAE_DATA`, a folder with `tabular/` (the repository's sample has
//! none; see `../shared/data/README`).

mod common;
use common::{at_least_one, OnDevice, RunArgs};

use anyhow::{bail, ensure, Context, Result};
use clap::Parser;
use mvae::data::DatasetBuilder;
use mvae::impute::baseline::{self, Cells};
use mvae::likelihood::Variance;
use mvae::{Backend, Continuous, ModalitySpec, ModelConfig, Mvae, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Imputation of hidden cells of real tables: mean, kNN and the multimodal VAE.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    run: RunArgs,
    /// Tables of DIR/tabular to use (file names without .csv), comma-separated
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "breast_cancer,diabetes,wine"
    )]
    tables: Vec<String>,
    /// Shares of cells hidden, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5,0.7")]
    rates: Vec<f64>,
    /// Seeded masks per table and rate (seeds --seed, --seed + 1, ...)
    #[arg(long, default_value_t = 3, value_parser = at_least_one)]
    masks: usize,
    /// Neighbours of the kNN baseline
    #[arg(long, default_value_t = 5, value_parser = at_least_one)]
    k: usize,
    /// Training epochs of the VAE per mask
    #[arg(long, default_value_t = 200, value_parser = at_least_one)]
    epochs: usize,
    /// Hidden layer sizes of each column's encoder and decoder, comma-separated
    #[arg(long, value_delimiter = ',', default_value = "32")]
    hidden: Vec<usize>,
    /// Latent samples per data point and term in training (IWAE bound above 1)
    #[arg(long, default_value_t = 1, value_parser = at_least_one)]
    samples: usize,
    /// Also write each scaled table (<table>.csv) and mask (<table>_<rate>_<seed>.csv, 1 =
    /// visible) into this folder, for outside references on the same masks
    /// (benches/reference/iterative_impute.py)
    #[arg(long, value_name = "DIR")]
    masks_out: Option<std::path::PathBuf>,
}

/// Writes `rows` of `cols` values as a CSV file with `header`.
fn write_rows<T: std::fmt::Display>(
    path: &std::path::Path,
    header: &[String],
    values: &[T],
) -> Result<()> {
    let mut text = header.join(",");
    text.push('\n');
    for row in values.chunks(header.len()) {
        let cells: Vec<String> = row.iter().map(|v| v.to_string()).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    mvae::data::atomic::write_bytes(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// A table's numeric columns, min-max scaled to [0, 1].
struct Scaled {
    name: String,
    header: Vec<String>,
    cells: Vec<f64>,
}

fn read_table(path: &std::path::Path, name: &str) -> Result<Scaled> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let header: Vec<String> = reader.headers()?.iter().map(String::from).collect();
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (i, r) in reader.records().enumerate() {
        let r = r.with_context(|| format!("{} row {}", path.display(), i + 1))?;
        rows.push(r.iter().map(String::from).collect());
    }
    ensure!(!rows.is_empty(), "{} has no rows", path.display());
    // Numeric columns: every cell parses as a finite number.
    let numeric: Vec<usize> = (0..header.len())
        .filter(|&c| {
            rows.iter().all(|r| {
                r.get(c)
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .is_some_and(f64::is_finite)
            })
        })
        .collect();
    ensure!(
        !numeric.is_empty(),
        "{} has no numeric column",
        path.display()
    );
    let n = rows.len();
    let mut cells = vec![0.0; n * numeric.len()];
    for (j, &c) in numeric.iter().enumerate() {
        let col: Vec<f64> = rows
            .iter()
            .map(|r| r[c].trim().parse().expect("checked"))
            .collect();
        let (lo, hi) = col
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
                (l.min(v), h.max(v))
            });
        let span = if hi > lo { hi - lo } else { 1.0 };
        for (i, v) in col.iter().enumerate() {
            cells[i * numeric.len() + j] = (v - lo) / span;
        }
    }
    Ok(Scaled {
        name: name.to_string(),
        header: numeric.iter().map(|&c| header[c].clone()).collect(),
        cells,
    })
}

/// Each cell hidden with probability `rate`, at least one cell of a row kept; `true` = visible.
fn mask(rows: usize, cols: usize, rate: f64, seed: u64) -> Vec<bool> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut visible = Vec::with_capacity(rows * cols);
    for _ in 0..rows {
        let start = visible.len();
        visible.extend((0..cols).map(|_| rng.gen::<f64>() >= rate));
        if visible[start..].iter().all(|v| !v) {
            let keep = rng.gen_range(0..cols);
            visible[start + keep] = true;
        }
    }
    visible
}

/// The VAE's imputation of `cells`: one modality per column, standardised on its visible
/// cells, trained for `epochs`, filled from each row's posterior mean.
struct Vae<'a> {
    header: &'a [String],
    cells: &'a Cells,
    epochs: usize,
    hidden: &'a [usize],
    samples: usize,
    seed: u64,
    out: &'a mut Vec<f64>,
}

impl OnDevice for Vae<'_> {
    fn run<D: Backend>(self, dev: D) -> Result<()> {
        let (rows, cols) = (self.cells.rows(), self.cells.cols);
        let means = self.cells.column_means();
        let sd: Vec<f64> = (0..cols)
            .map(|c| {
                let (s, n) = (0..rows)
                    .filter(|&r| self.cells.observed[r * cols + c])
                    .fold((0.0, 0usize), |(s, n), r| {
                        (
                            s + (self.cells.values[r * cols + c] - means[c]).powi(2),
                            n + 1,
                        )
                    });
                let v = if n > 1 { s / (n - 1) as f64 } else { 0.0 };
                if v > 0.0 {
                    v.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut builder = DatasetBuilder::new();
        let mut specs = Vec::new();
        for (c, name) in self.header.iter().enumerate() {
            let present: Vec<bool> = (0..rows)
                .map(|r| self.cells.observed[r * cols + c])
                .collect();
            let values: Vec<f32> = (0..rows)
                .map(|r| {
                    let i = r * cols + c;
                    if self.cells.observed[i] {
                        ((self.cells.values[i] - means[c]) / sd[c]) as f32
                    } else {
                        0.0
                    }
                })
                .collect();
            builder = builder.column_with_mask(name, 1, values, present);
            specs.push(
                ModalitySpec::new(Continuous::new(name, 1, Variance::Learned))
                    .encoder_hidden(self.hidden)
                    .decoder_hidden(self.hidden),
            );
        }
        let data = builder.build()?;
        let model = Mvae::<8, D>::new(&ModelConfig::new(specs), &dev, self.seed)?;
        let mut cfg = TrainConfig {
            epochs: self.epochs,
            seed: self.seed,
            ..TrainConfig::default()
        };
        cfg.anneal_over_epochs((self.epochs / 4) as f64, rows);
        if self.samples > 1 {
            cfg.objective.samples = self.samples;
            cfg.objective.estimator = mvae::objective::Estimator::Iwae;
        }
        let mut trainer = Trainer::new(model, cfg)?;
        for _ in 0..self.epochs {
            trainer.fit_epoch(&data, |_| {})?;
        }
        let (filled, _) = mvae::impute::impute(&trainer.model, &data)?;
        for (c, name) in self.header.iter().enumerate() {
            let col = filled.column(name).context("imputed column")?;
            for r in 0..rows {
                let i = r * cols + c;
                self.out[i] = if self.cells.observed[i] {
                    self.cells.values[i]
                } else {
                    f64::from(col.values()[r]) * sd[c] + means[c]
                };
            }
        }
        Ok(())
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(r) = args
        .rates
        .iter()
        .find(|r| !(0.0..1.0).contains(*r) || **r == 0.0)
    {
        bail!("--rates: {r} is not a share in (0, 1)");
    }
    let dir = args.run.data_root().join("tabular");
    if !args.run.json {
        println!("| table | rate | mean RMSE | kNN RMSE | mvae RMSE | mean s | kNN s | mvae s |");
        println!("|---|---|---|---|---|---|---|---|");
    }
    for name in &args.tables {
        let table = read_table(&dir.join(format!("{name}.csv")), name)?;
        let cols = table.header.len();
        let rows = table.cells.len() / cols;
        if let Some(out) = &args.masks_out {
            std::fs::create_dir_all(out)?;
            write_rows(
                &out.join(format!("{name}.csv")),
                &table.header,
                &table.cells,
            )?;
        }
        for &rate in &args.rates {
            // Per method: the RMSE of each mask and the seconds in all.
            let mut scores: Vec<(Vec<f64>, f64)> = vec![(Vec::new(), 0.0); 3];
            for m in 0..args.masks {
                let seed = args.run.seed + m as u64;
                let visible = mask(rows, cols, rate, seed);
                if let Some(out) = &args.masks_out {
                    let flags: Vec<u8> = visible.iter().map(|&v| u8::from(v)).collect();
                    let file = out.join(format!("{name}_{rate}_{seed}.csv"));
                    write_rows(&file, &table.header, &flags)?;
                }
                let hidden: Vec<bool> = visible.iter().map(|v| !v).collect();
                let cells = Cells::new(cols, table.cells.clone(), visible)?;
                let mut time = |i: usize, f: &mut dyn FnMut() -> Result<Vec<f64>>| -> Result<()> {
                    let t = std::time::Instant::now();
                    let filled = f()?;
                    scores[i].1 += t.elapsed().as_secs_f64();
                    scores[i]
                        .0
                        .push(baseline::rmse(&filled, &table.cells, &hidden));
                    Ok(())
                };
                time(0, &mut || Ok(baseline::mean(&cells)))?;
                time(1, &mut || Ok(baseline::knn(&cells, args.k)))?;
                time(2, &mut || {
                    let mut out = cells.values.clone();
                    args.run.on_device(Vae {
                        header: &table.header,
                        cells: &cells,
                        epochs: args.epochs,
                        hidden: &args.hidden,
                        samples: args.samples,
                        seed,
                        out: &mut out,
                    })?;
                    Ok(out)
                })?;
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            if args.run.json {
                let method = |i: usize| {
                    serde_json::json!({
                        "rmse": mean(&scores[i].0),
                        "rmse_per_mask": scores[i].0,
                        "seconds": scores[i].1,
                    })
                };
                println!(
                    "{}",
                    serde_json::json!({
                        "table": table.name,
                        "rows": rows,
                        "columns": cols,
                        "rate": rate,
                        "masks": args.masks,
                        "epochs": args.epochs,
                        "mean": method(0),
                        "knn": method(1),
                        "mvae": method(2),
                    })
                );
            } else {
                println!(
                    "| {} | {rate} | {:.4} | {:.4} | {:.4} | {:.2} | {:.2} | {:.1} |",
                    table.name,
                    mean(&scores[0].0),
                    mean(&scores[1].0),
                    mean(&scores[2].0),
                    scores[0].1,
                    scores[1].1,
                    scores[2].1
                );
            }
        }
    }
    Ok(())
}
