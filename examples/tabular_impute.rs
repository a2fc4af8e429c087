//! The imputation benchmark on real tables: hide cells completely at random, fill them, and
//! score the hidden cells, as HyperImpute and others report it.
//!
//! ```text
//! MVAE_DATA=../shared/data cargo run --release --example tabular_impute
//! MVAE_DATA=../shared/data cargo run --release --example tabular_impute -- --tables wine --rates 0.3 --json
//! ```
//!
//! For each table of `DIR/tabular` (`breast_cancer`, `diabetes`, `wine`: their numeric columns
//! and, where one has it, a class column of words such as `malignant`), each missing rate and
//! each seeded mask:
//!
//! 1. every numeric column is min-max scaled to `[0, 1]` over the whole table;
//! 2. each numeric cell is hidden with the rate's probability (a row never loses every one:
//!    where the draws would hide all of them, one chosen at random stays), and each class
//!    cell with the same probability, from a stream of its own;
//! 3. the hidden cells are filled by the column means and the most frequent visible class
//!    ([`baseline::mean`]), by the `k = 5` nearest rows ([`baseline::knn`], scikit-learn's
//!    `KNNImputer`; for the class, the vote of the nearest rows whose class is visible), and
//!    by a multimodal VAE with one modality per column (a Gaussian of learned variance per
//!    numeric column, standardised on its visible cells; a categorical one for the class; the
//!    product of experts leaves a hidden cell out), trained on the masked table and imputing
//!    from the posterior mean of each row's visible cells;
//! 4. each method's score is the root mean squared error of the hidden numeric cells, on the
//!    `[0, 1]` scale, and the accuracy of its hidden classes.
//!
//! Prints a table of RMSE and class accuracy (means over the masks) and seconds per method, or
//! with `--json` one JSON line per table and rate: `table`, `rows`, `columns`, `class`, `rate`,
//! `masks`, and per method (`mean`, `knn`, `mvae`) its `rmse` (mean), `rmse_per_mask`,
//! `class_accuracy` and `seconds`.
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
    /// How the columns' experts are combined: poe, moe, mopoe or mmvae-plus
    #[arg(long, default_value = "poe")]
    aggregation: mvae::AggregationKind,
    /// Rows per training step
    #[arg(long, default_value_t = 100, value_parser = at_least_one)]
    batch_size: usize,
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

/// A table's numeric columns, min-max scaled to [0, 1], and its class column, if any.
struct Scaled {
    name: String,
    header: Vec<String>,
    cells: Vec<f64>,
    class: Option<Class>,
}

/// A column of words with few distinct values: a class per row.
struct Class {
    name: String,
    /// The classes, in order of first appearance.
    names: Vec<String>,
    /// Each row's class.
    of_row: Vec<usize>,
}

/// The most distinct words a column may have to be taken as a class column.
const MAX_CLASSES: usize = 20;

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
    // The first other column with few distinct words is the class.
    let class = (0..header.len())
        .filter(|c| !numeric.contains(c))
        .find_map(|c| {
            let mut names: Vec<String> = Vec::new();
            let mut of_row = Vec::with_capacity(n);
            for r in &rows {
                let w = r.get(c)?.trim().to_string();
                let i = match names.iter().position(|x| *x == w) {
                    Some(i) => i,
                    None => {
                        names.push(w);
                        names.len() - 1
                    }
                };
                of_row.push(i);
            }
            (names.len() >= 2 && names.len() <= MAX_CLASSES).then(|| Class {
                name: header[c].clone(),
                names,
                of_row,
            })
        });
    Ok(Scaled {
        name: name.to_string(),
        header: numeric.iter().map(|&c| header[c].clone()).collect(),
        cells,
        class,
    })
}

/// The class counted most often (ties to the earlier class); `None` without classes.
fn most_frequent(counts: &[usize]) -> Option<usize> {
    (0..counts.len()).max_by_key(|&i| (counts[i], usize::MAX - i))
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
    /// The class column: its name, class count, each row's class and whether it is visible.
    class: Option<(&'a str, usize, &'a [usize], &'a [bool])>,
    /// Where the class of each row goes (the visible ones copied, the hidden ones filled).
    classes_out: &'a mut Vec<usize>,
    epochs: usize,
    hidden: &'a [usize],
    samples: usize,
    aggregation: mvae::AggregationKind,
    batch_size: usize,
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
        if let Some((name, k, of_row, visible)) = self.class {
            let values: Vec<f32> = of_row
                .iter()
                .zip(visible)
                .map(|(&c, &v)| if v { c as f32 } else { 0.0 })
                .collect();
            builder = builder.column_with_mask(name, 1, values, visible.to_vec());
            specs.push(
                ModalitySpec::new(mvae::Label::new(name, k))
                    .encoder_hidden(self.hidden)
                    .decoder_hidden(self.hidden),
            );
        }
        let data = builder.build()?;
        let mut mc = ModelConfig::new(specs);
        mc.aggregation = self.aggregation;
        let model = Mvae::<8, D>::new(&mc, &dev, self.seed)?;
        let mut cfg = TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
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
        if let Some((name, _, _, _)) = self.class {
            let col = filled.column(name).context("imputed class")?;
            *self.classes_out = col.values().iter().map(|&v| v as usize).collect();
        }
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
        println!(
            "| table | rate | mean RMSE | kNN RMSE | mvae RMSE | mode acc | kNN acc | mvae acc \
             | mean s | kNN s | mvae s |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
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
            // Per method: the class accuracy of each mask (tables with a class column).
            let mut accuracy: Vec<Vec<f64>> = vec![Vec::new(); 3];
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
                // The class hidden at the same rate, from a stream of its own (the numeric
                // masks stay those of the tables without a class).
                let class_visible: Vec<bool> = {
                    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x636c_6173);
                    (0..rows).map(|_| rng.gen::<f64>() >= rate).collect()
                };
                // Each method fills the numbers and, with a class column, the classes.
                type Filled = (Vec<f64>, Vec<usize>);
                let mut time = |i: usize, f: &mut dyn FnMut() -> Result<Filled>| -> Result<()> {
                    let t = std::time::Instant::now();
                    let (filled, classes) = f()?;
                    scores[i].1 += t.elapsed().as_secs_f64();
                    scores[i]
                        .0
                        .push(baseline::rmse(&filled, &table.cells, &hidden));
                    if let Some(c) = &table.class {
                        let hits: Vec<bool> = (0..rows)
                            .filter(|&r| !class_visible[r])
                            .map(|r| classes[r] == c.of_row[r])
                            .collect();
                        if !hits.is_empty() {
                            let right = hits.iter().filter(|&&h| h).count();
                            accuracy[i].push(right as f64 / hits.len() as f64);
                        }
                    }
                    Ok(())
                };
                // Baselines for the class: the most frequent visible class, and the vote of
                // the k nearest rows (by the numbers) whose class is visible.
                let visible_class = |r: usize| class_visible[r];
                let mode = || -> Vec<usize> {
                    let Some(c) = &table.class else {
                        return Vec::new();
                    };
                    let mut counts = vec![0usize; c.names.len()];
                    for r in (0..rows).filter(|&r| visible_class(r)) {
                        counts[c.of_row[r]] += 1;
                    }
                    let top = most_frequent(&counts).unwrap_or(0);
                    (0..rows)
                        .map(|r| if visible_class(r) { c.of_row[r] } else { top })
                        .collect()
                };
                let vote = || -> Vec<usize> {
                    let Some(c) = &table.class else {
                        return Vec::new();
                    };
                    let fallback = mode();
                    (0..rows)
                        .map(|r| {
                            if visible_class(r) {
                                return c.of_row[r];
                            }
                            let near = baseline::neighbours(&cells, r, args.k, visible_class);
                            let mut counts = vec![0usize; c.names.len()];
                            for o in &near {
                                counts[c.of_row[*o]] += 1;
                            }
                            most_frequent(&counts)
                                .filter(|_| !near.is_empty())
                                .unwrap_or(fallback[r])
                        })
                        .collect()
                };
                time(0, &mut || Ok((baseline::mean(&cells), mode())))?;
                time(1, &mut || Ok((baseline::knn(&cells, args.k), vote())))?;
                time(2, &mut || {
                    let mut out = cells.values.clone();
                    let mut classes = Vec::new();
                    args.run.on_device(Vae {
                        header: &table.header,
                        cells: &cells,
                        class: table.class.as_ref().map(|c| {
                            (
                                c.name.as_str(),
                                c.names.len(),
                                c.of_row.as_slice(),
                                class_visible.as_slice(),
                            )
                        }),
                        classes_out: &mut classes,
                        epochs: args.epochs,
                        hidden: &args.hidden,
                        samples: args.samples,
                        aggregation: args.aggregation,
                        batch_size: args.batch_size,
                        seed,
                        out: &mut out,
                    })?;
                    Ok((out, classes))
                })?;
            }
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            let acc = |i: usize| {
                if accuracy[i].is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.3}", mean(&accuracy[i]))
                }
            };
            if args.run.json {
                let method = |i: usize| {
                    serde_json::json!({
                        "rmse": mean(&scores[i].0),
                        "rmse_per_mask": scores[i].0,
                        "class_accuracy": (!accuracy[i].is_empty()).then(|| mean(&accuracy[i])),
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
                        "class": table.class.as_ref().map(|c| &c.name),
                        "epochs": args.epochs,
                        "mean": method(0),
                        "knn": method(1),
                        "mvae": method(2),
                    })
                );
            } else {
                println!(
                    "| {} | {rate} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {:.2} | {:.2} | {:.1} |",
                    table.name,
                    mean(&scores[0].0),
                    mean(&scores[1].0),
                    mean(&scores[2].0),
                    acc(0),
                    acc(1),
                    acc(2),
                    scores[0].1,
                    scores[1].1,
                    scores[2].1
                );
            }
        }
    }
    Ok(())
}
