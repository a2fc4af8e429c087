//! The weak-supervision curve of `docs/results.md` as a picture: the label read from the image
//! (image → label coherence from the posterior mean, as `mvae eval --coherence-from-mean`
//! reports it) against the share of paired training samples, beside the MVAE paper's figure.
//!
//! ```text
//! cargo run --release --example weak_supervision_plot -- \
//!     --series "MMVAE+=runs/weak/mmvae-plus_p{}.eval.json" \
//!     --series "product of experts=runs/weak/poe_p{}.eval.json" \
//!     --out docs/gallery/weak_supervision.png
//! ```
//!
//! Each `--series NAME=PATTERN` reads, for every share of `--shares`, the `eval --json` report
//! whose path is `PATTERN` with `{}` replaced by the share as written (`0.01`); a share
//! without a report is left out of that series (and named on stderr). The x axis is
//! `log10` of the percentage paired (0 is 1 %, 1 is 10 %, 2 is 100 %).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;

/// The MVAE paper's early figure: accuracy of the label read from the image at 1, 2, 5, 10,
/// 25, 50 and 100 % paired (issue 22).
const PAPER: [(f64, f64); 7] = [
    (0.01, 0.33),
    (0.02, 0.38),
    (0.05, 0.59),
    (0.10, 0.68),
    (0.25, 0.78),
    (0.50, 0.85),
    (1.00, 0.92),
];

/// Draws the weak-supervision curve from `mvae eval` reports.
#[derive(Parser, Debug)]
struct Args {
    /// A measured series, `NAME=PATTERN` (`{}` in PATTERN is the share), repeatable
    #[arg(long, value_name = "NAME=PATTERN", required = true)]
    series: Vec<String>,
    /// Shares of paired samples, as written in the file names
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.01,0.02,0.05,0.1,0.25,0.5,1.0"
    )]
    shares: Vec<String>,
    /// The picture to write (PNG)
    #[arg(long)]
    out: PathBuf,
}

/// The image → label coherence of one `mvae eval --json` report.
fn image_to_label(report: &serde_json::Value) -> Option<f64> {
    report["coherence"]["conditional"]
        .as_array()?
        .iter()
        .find(|c| c["given"] == serde_json::json!(["image"]) && c["target"] == "label")?
        ["coherence"]
        .as_f64()
}

fn main() -> Result<()> {
    let args = Args::parse();
    let x = |share: f64| (share * 100.0).log10();
    let mut series = vec![(
        "MVAE paper".to_string(),
        PAPER.iter().map(|&(s, a)| (x(s), a)).collect::<Vec<_>>(),
    )];
    for spec in &args.series {
        let Some((name, pattern)) = spec.split_once('=') else {
            bail!("--series {spec:?}: expected NAME=PATTERN");
        };
        let mut points = Vec::new();
        for share in &args.shares {
            let value: f64 = share
                .parse()
                .with_context(|| format!("share {share:?} is not a number"))?;
            let path = PathBuf::from(pattern.replace("{}", share));
            let Ok(text) = std::fs::read_to_string(&path) else {
                eprintln!("{name}: no report {} (share left out)", path.display());
                continue;
            };
            let report: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let acc = image_to_label(&report)
                .with_context(|| format!("{} has no image -> label coherence", path.display()))?;
            points.push((x(value), acc));
        }
        if points.is_empty() {
            bail!("--series {name}: no report found");
        }
        series.push((name.to_string(), points));
    }
    mvae::plot::line_chart(
        &args.out,
        "label read from the image, against the share of paired samples",
        "log10(% of training samples paired)",
        "accuracy (image -> label)",
        &series,
    )?;
    println!("wrote {}", args.out.display());
    Ok(())
}
