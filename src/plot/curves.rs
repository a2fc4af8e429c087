//! Training curves: losses, KL terms and the KL weight over epochs.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::plot::canvas::{drawing, invalid, padded, rgb, tick, Canvas, FONT};
use crate::plot::colour::class_colour;
use crate::train::EpochMetrics;
use crate::Result;

/// Picture size of [`training_curves`].
const SIZE: (u32, u32) = (1000, 900);

/// One line of a panel.
struct Line {
    name: String,
    colour: RGBColor,
    width: u32,
    points: Vec<(f64, f64)>,
}

/// Draws the training curves of `metrics` (one entry per epoch, as [`Trainer::fit_epoch`]
/// returns them) to the PNG at `path`: the total loss per sample and each term's loss (joint,
/// each modality, `subsets`) on top; each term's KL to the prior and the KL weight beta below.
///
/// Terms are matched by name across epochs; each keeps its colour in every panel.
///
/// [`Trainer::fit_epoch`]: crate::Trainer::fit_epoch
pub fn training_curves(path: &Path, metrics: &[EpochMetrics]) -> Result<()> {
    if metrics.is_empty() {
        return Err(invalid("training curves", "no epochs"));
    }
    for m in metrics {
        let bad = |what: &str, v: f64| {
            invalid(
                "training curves",
                format!("epoch {}: {what} is {v}", m.epoch),
            )
        };
        if !m.loss.is_finite() {
            return Err(bad("loss", m.loss));
        }
        if !m.beta.is_finite() {
            return Err(bad("beta", m.beta as f64));
        }
        for t in &m.terms {
            if !t.loss.is_finite() {
                return Err(bad(&format!("term {} loss", t.name), t.loss));
            }
            if !t.kl.is_finite() {
                return Err(bad(&format!("term {} kl", t.name), t.kl));
            }
        }
    }
    // Term names in order of first appearance.
    let mut names: Vec<&str> = Vec::new();
    for t in metrics.iter().flat_map(|m| &m.terms) {
        if !names.contains(&t.name.as_str()) {
            names.push(&t.name);
        }
    }
    let epoch = |m: &EpochMetrics| m.epoch as f64;
    let term_lines = |value: fn(&crate::train::TermMetrics) -> f64| -> Vec<Line> {
        names
            .iter()
            .enumerate()
            .map(|(i, name)| Line {
                name: name.to_string(),
                colour: rgb(class_colour(i)),
                width: 2,
                points: metrics
                    .iter()
                    .filter_map(|m| {
                        m.terms
                            .iter()
                            .find(|t| t.name == *name)
                            .map(|t| (epoch(m), value(t)))
                    })
                    .collect(),
            })
            .collect()
    };
    let mut losses = vec![Line {
        name: "total".into(),
        colour: BLACK,
        width: 3,
        points: metrics.iter().map(|m| (epoch(m), m.loss)).collect(),
    }];
    losses.extend(term_lines(|t| t.loss));
    let kls = term_lines(|t| t.kl);
    let beta = vec![Line {
        name: "beta".into(),
        colour: rgb([0x55, 0x55, 0x55]),
        width: 2,
        points: metrics.iter().map(|m| (epoch(m), m.beta as f64)).collect(),
    }];

    let mut canvas = Canvas::new("training curves", SIZE.0, SIZE.1)?;
    let err = drawing("training curves");
    {
        let root = canvas.titled_area("training curves", "training curves", 24)?;
        let (top, bottom) = root.split_vertically(SIZE.1 * 52 / 100);
        let (left, right) = bottom.split_horizontally(SIZE.0 * 62 / 100);
        panel(
            &top,
            "loss per sample (negative ELBO)",
            "epoch",
            "loss",
            &losses,
            true,
        )?;
        panel(
            &left,
            "KL to the prior, per term",
            "epoch",
            "KL",
            &kls,
            true,
        )?;
        panel(&right, "KL weight", "epoch", "beta", &beta, false)?;
        root.present().map_err(&err)?;
    }
    canvas.save(path)
}

/// A line chart of named series of `(x, y)` points (each with point markers and its own
/// colour, in order) to the PNG at `path`, `title` above, the axes described by `x_desc` and
/// `y_desc`: for results such as an accuracy against a share of paired samples, with a
/// published curve beside a measured one.
///
/// # Errors
/// No series, a series without points, or a value that is not finite.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    if series.is_empty() {
        return Err(invalid("line chart", "no series"));
    }
    for (name, points) in series {
        if points.is_empty() {
            return Err(invalid(
                "line chart",
                format!("series {name:?} has no points"),
            ));
        }
        if let Some((x, y)) = points
            .iter()
            .find(|(x, y)| !x.is_finite() || !y.is_finite())
        {
            return Err(invalid(
                "line chart",
                format!("series {name:?}: the point ({x}, {y}) is not finite"),
            ));
        }
    }
    let lines: Vec<Line> = series
        .iter()
        .enumerate()
        .map(|(i, (name, points))| Line {
            name: name.clone(),
            colour: rgb(class_colour(i)),
            width: 2,
            points: points.clone(),
        })
        .collect();
    let mut canvas = Canvas::new("line chart", 900, 600)?;
    {
        let root = canvas.titled_area("line chart", title, 22)?;
        panel(&root, "", x_desc, y_desc, &lines, true)?;
        root.present().map_err(drawing("line chart"))?;
    }
    canvas.save(path)
}

/// One chart with a caption, axes, lines with point markers and, if `legend`, a legend; the x
/// axis is labelled `x_desc` ("epoch" labels whole numbers only).
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    lines: &[Line],
    legend: bool,
) -> Result<()> {
    let err = drawing("training curves");
    let all = || lines.iter().flat_map(|l| l.points.iter());
    let (x_lo, x_hi, y_lo, y_hi) = all().fold(
        (
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ),
        |(a, b, c, d), &(x, y)| (a.min(x), b.max(x), c.min(y), d.max(y)),
    );
    if x_lo > x_hi {
        return Err(invalid("training curves", format!("{caption}: no values")));
    }
    let x_range = if x_hi > x_lo {
        x_lo..x_hi
    } else {
        x_lo - 0.5..x_hi + 0.5
    };
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(65)
        .build_cartesian_2d(x_range, padded(y_lo, y_hi))
        .map_err(&err)?;
    // Epochs are whole numbers: label only whole ticks.
    let whole = |x: &f64| {
        if x_desc != "epoch" {
            tick(x)
        } else if (x - x.round()).abs() < 1e-6 {
            format!("{}", x.round())
        } else {
            String::new()
        }
    };
    chart
        .configure_mesh()
        .light_line_style(WHITE)
        .bold_line_style(BLACK.mix(0.08))
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_label_formatter(&whole)
        .y_label_formatter(&tick)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .draw()
        .map_err(&err)?;
    for line in lines {
        let style = line.colour.stroke_width(line.width);
        let colour = line.colour;
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style).point_size(3))
            .map_err(&err)?
            .label(line.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(3))
            });
    }
    if !legend {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font((FONT, 13))
        .draw()
        .map_err(&err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::canvas::testing::{decode, out_dir, variance};
    use crate::train::TermMetrics;
    use crate::Error;

    fn term(name: &str, loss: f64, kl: f64) -> TermMetrics {
        TermMetrics {
            name: name.into(),
            samples: 100,
            loss,
            nll: vec![(name.into(), loss - kl)],
            kl,
        }
    }

    fn run(epochs: usize) -> Vec<EpochMetrics> {
        (1..=epochs)
            .map(|e| {
                let decay = 1.0 / e as f64;
                let terms = vec![
                    term("joint", 130.0 + 60.0 * decay, 20.0 + 5.0 * decay),
                    term("image", 125.0 + 55.0 * decay, 18.0 + 4.0 * decay),
                    term("label", 8.0 + 2.0 * decay, 3.0 * decay),
                    term("subsets", 0.0, 0.0),
                ];
                EpochMetrics {
                    epoch: e,
                    step: e * 50,
                    loss: terms.iter().map(|t| t.loss).sum(),
                    beta: (e as f32 / 4.0).min(1.0),
                    terms,
                    seconds: 1.0,
                    samples_per_second: 1000.0,
                }
            })
            .collect()
    }

    #[test]
    fn draws_all_panels() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("curves.png");
        training_curves(&path, &run(8)).unwrap();
        let img = decode(&path, Some(SIZE));
        assert!(variance(&img) > 10.0);
        // Each term's colour shows up (its line and legend marker).
        for i in 0..4 {
            let c = class_colour(i);
            assert!(img.pixels().any(|p| p.0 == c), "term {i} colour missing");
        }
        // A single epoch is drawn too (points, no line segment).
        let one = dir.path().join("one.png");
        training_curves(&one, &run(1)).unwrap();
        assert!(variance(&decode(&one, Some(SIZE))) > 10.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("bad.png");
        assert!(matches!(
            training_curves(&path, &[]),
            Err(Error::InvalidData { .. })
        ));
        let mut m = run(3);
        m[1].terms[2].kl = f64::NAN;
        let e = training_curves(&path, &m).unwrap_err().to_string();
        assert!(e.contains("epoch 2") && e.contains("label"), "{e}");
        let mut m = run(3);
        m[0].loss = f64::INFINITY;
        assert!(matches!(
            training_curves(&path, &m),
            Err(Error::InvalidData { .. })
        ));
        assert!(!path.exists());
    }

    /// A line chart draws its series (the picture is not blank) and refuses bad input
    /// without writing anything.
    #[test]
    fn line_chart_draws_series_and_refuses_bad_input() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("line_chart.png");
        let ours = (
            "measured".to_string(),
            vec![(1.0, 0.68), (2.0, 0.7), (5.0, 0.8), (100.0, 0.95)],
        );
        let theirs = ("published".to_string(), vec![(1.0, 0.33), (100.0, 0.92)]);
        line_chart(
            &path,
            "accuracy",
            "% paired",
            "accuracy",
            &[ours.clone(), theirs],
        )
        .unwrap();
        let img = decode(&path, Some((900, 600)));
        assert!(variance(&img) > 10.0);
        for i in 0..2 {
            let c = class_colour(i);
            assert!(img.pixels().any(|p| p.0 == c), "series {i} colour missing");
        }
        let bad = dir.path().join("line_chart_bad.png");
        let nan = ("x".to_string(), vec![(1.0, f64::NAN)]);
        let empty = ("y".to_string(), vec![]);
        for series in [vec![], vec![nan], vec![ours, empty]] {
            assert!(matches!(
                line_chart(&bad, "t", "x", "y", &series),
                Err(Error::InvalidData { .. })
            ));
        }
        assert!(!bad.exists());
    }
}
