//! Scatter plots of 2-D points (e.g. latent means after [`pca2`](crate::plot::pca2)) coloured
//! by class, with the legend beside the plot.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::canvas::{drawing, invalid, padded, rgb, text_size, tick, Canvas, FONT};
use crate::plot::colour::class_colour;
use crate::{Error, Result};

/// How [`latent_scatter_with`] draws.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterOptions {
    /// Caption above the plot (none when empty).
    pub title: String,
    /// Legend entry of each class, indexed by label; empty: the class numbers.
    pub class_names: Vec<String>,
    /// Horizontal axis description.
    pub x_label: String,
    /// Vertical axis description.
    pub y_label: String,
    /// Picture width and height in pixels.
    pub size: (u32, u32),
    /// Radius of each point in pixels.
    pub point_radius: u32,
}

impl Default for ScatterOptions {
    fn default() -> Self {
        ScatterOptions {
            title: String::new(),
            class_names: Vec::new(),
            x_label: "component 1".into(),
            y_label: "component 2".into(),
            size: (800, 700),
            point_radius: 2,
        }
    }
}

/// Draws `points` coloured by their class `labels` (one per point) to the PNG at `path`, with
/// a legend of class numbers and `title` as caption.
pub fn latent_scatter(
    path: &Path,
    points: &[[f32; 2]],
    labels: &[usize],
    title: &str,
) -> Result<()> {
    let options = ScatterOptions {
        title: title.to_string(),
        ..Default::default()
    };
    latent_scatter_with(path, points, labels, &options)
}

/// [`latent_scatter`] with class names, axis descriptions and size from `options`.
pub fn latent_scatter_with(
    path: &Path,
    points: &[[f32; 2]],
    labels: &[usize],
    options: &ScatterOptions,
) -> Result<()> {
    grouped_scatter(path, points, labels, &vec![0; points.len()], &[], options)
}

/// The marker shapes of [`grouped_scatter`]'s groups, in order.
pub const MARKERS: [&str; 3] = ["filled circle", "cross", "hollow circle"];

/// [`latent_scatter_with`] for points of several groups (say, the embeddings of two
/// modalities): point `i` is drawn with the marker of `groups[i]` ([`MARKERS`]: a filled
/// circle, a cross, a hollow circle), coloured by its class, and the legend names the groups
/// by `group_names` (none when empty) below the classes.
///
/// # Errors
/// No points, a non-finite point, `labels` or `groups` of another length than `points`, a
/// group beyond [`MARKERS`] or without a name (where names are given), or a failed write.
pub fn grouped_scatter(
    path: &Path,
    points: &[[f32; 2]],
    labels: &[usize],
    groups: &[usize],
    group_names: &[String],
    options: &ScatterOptions,
) -> Result<()> {
    if points.is_empty() {
        return Err(invalid("scatter points", "no points"));
    }
    if labels.len() != points.len() {
        return Err(Error::shape("scatter labels", points.len(), labels.len()));
    }
    if groups.len() != points.len() {
        return Err(Error::shape("scatter groups", points.len(), groups.len()));
    }
    let group_count = groups.iter().max().map_or(0, |g| g + 1);
    if group_count > MARKERS.len() {
        return Err(invalid(
            "scatter groups",
            format!("{group_count} groups, at most {}", MARKERS.len()),
        ));
    }
    if !group_names.is_empty() && group_names.len() < group_count {
        return Err(Error::shape(
            "scatter group names",
            group_count,
            group_names.len(),
        ));
    }
    if let Some(i) = points
        .iter()
        .position(|p| !p[0].is_finite() || !p[1].is_finite())
    {
        return Err(invalid(
            "scatter points",
            format!("point {i} is {:?}", points[i]),
        ));
    }
    let classes = labels.iter().max().map_or(0, |m| m + 1);
    if !options.class_names.is_empty() && options.class_names.len() < classes {
        return Err(Error::shape(
            "scatter class names",
            format!("at least {classes} (labels go up to {})", classes - 1),
            options.class_names.len(),
        ));
    }
    let mut present = vec![false; classes];
    labels.iter().for_each(|&l| present[l] = true);
    let (lo, hi) = points.iter().fold(
        ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]),
        |(lo, hi), p| {
            (
                [lo[0].min(p[0] as f64), lo[1].min(p[1] as f64)],
                [hi[0].max(p[0] as f64), hi[1].max(p[1] as f64)],
            )
        },
    );
    let names: Vec<(usize, String)> = (0..classes)
        .filter(|&c| present[c])
        .map(|c| {
            let name = options.class_names.get(c).cloned();
            (c, name.unwrap_or_else(|| c.to_string()))
        })
        .collect();
    let legend_px = 14.0;
    let legend_w = names
        .iter()
        .map(|(_, n)| n)
        .chain(group_names)
        .map(|n| text_size(n, legend_px).0 + 40)
        .max()
        .unwrap_or(0)
        .min(options.size.0 / 3);
    let mut canvas = Canvas::new("scatter", options.size.0, options.size.1)?;
    let err = drawing("scatter plot");
    {
        let root = canvas.titled_area("scatter plot", &options.title, 24)?;
        let (plot, legend) = root.split_horizontally(options.size.0 - legend_w);
        let mut chart = ChartBuilder::on(&plot)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(padded(lo[0], hi[0]), padded(lo[1], hi[1]))
            .map_err(&err)?;
        chart
            .configure_mesh()
            .light_line_style(WHITE)
            .bold_line_style(BLACK.mix(0.08))
            .x_desc(&options.x_label)
            .y_desc(&options.y_label)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(&err)?;
        // All points in data order, so that no class is hidden under the last one drawn.
        let r = options.point_radius.max(1);
        // Group by group (each marker is its own series), in data order within a group.
        for g in 0..group_count {
            let members = points
                .iter()
                .zip(labels)
                .zip(groups)
                .filter(move |(_, &pg)| pg == g)
                .map(|((p, &l), _)| ((p[0] as f64, p[1] as f64), rgb(class_colour(l)).mix(0.75)));
            match g {
                0 => chart.draw_series(members.map(|(at, c)| Circle::new(at, r, c.filled()))),
                1 => chart
                    .draw_series(members.map(|(at, c)| Cross::new(at, r + 1, c.stroke_width(2)))),
                _ => chart
                    .draw_series(members.map(|(at, c)| Circle::new(at, r + 1, c.stroke_width(1)))),
            }
            .map_err(&err)?;
        }
        // The legend in its own strip right of the plot, so that it hides no point.
        let (_, legend_h) = legend.dim_in_pixel();
        let lines = names.len()
            + if group_names.is_empty() {
                0
            } else {
                group_names.len() + 1
            };
        let row = ((legend_h as i32 - 30) / lines.max(1) as i32).clamp(8, 22);
        let style = TextStyle::from((FONT, legend_px))
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        for (i, (class, name)) in names.iter().enumerate() {
            let y = 25 + row * i as i32;
            legend
                .draw(&Circle::new((12, y), 5, rgb(class_colour(*class)).filled()))
                .map_err(&err)?;
            legend.draw_text(name, &style, (24, y)).map_err(&err)?;
        }
        for (g, name) in group_names.iter().enumerate().take(group_count) {
            let y = 25 + row * (names.len() + 1 + g) as i32;
            match g {
                0 => legend.draw(&Circle::new((12, y), 5, BLACK.filled())),
                1 => legend.draw(&Cross::new((12, y), 5, BLACK.stroke_width(2))),
                _ => legend.draw(&Circle::new((12, y), 5, BLACK.stroke_width(1))),
            }
            .map_err(&err)?;
            legend.draw_text(name, &style, (24, y)).map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::canvas::testing::{colours, decode, out_dir, variance};

    fn clusters() -> (Vec<[f32; 2]>, Vec<usize>) {
        let mut points = Vec::new();
        let mut labels = Vec::new();
        for class in 0..12 {
            let angle = class as f32 * 0.52;
            for i in 0..30 {
                let jitter = (i as f32 * 0.37).sin() * 0.3;
                points.push([
                    3.0 * angle.cos() + jitter,
                    3.0 * angle.sin() + (i as f32 * 0.71).cos() * 0.3,
                ]);
                labels.push(class);
            }
        }
        (points, labels)
    }

    #[test]
    fn writes_a_coloured_png() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("scatter.png");
        let (points, labels) = clusters();
        latent_scatter(&path, &points, &labels, "latent means (PCA)").unwrap();
        let img = decode(&path, Some((800, 700)));
        assert!(variance(&img) > 10.0);
        // Every class colour (first ten exactly, as legend markers) appears.
        for class in 0..10 {
            let c = class_colour(class);
            assert!(
                img.pixels().any(|p| p.0 == c),
                "class {class} colour missing"
            );
        }
        assert!(colours(&img) > 12);
        // No temporary file is left next to the picture.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn named_classes_and_a_single_point() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("one.png");
        let options = ScatterOptions {
            class_names: vec!["zero".into(), "one".into()],
            size: (300, 200),
            ..Default::default()
        };
        latent_scatter_with(&path, &[[1.0, 1.0]], &[1], &options).unwrap();
        let img = decode(&path, Some((300, 200)));
        assert!(variance(&img) > 1.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("bad.png");
        let p = [[0.0f32, 1.0], [2.0, 3.0]];
        assert!(matches!(
            latent_scatter(&path, &[], &[], "t"),
            Err(Error::InvalidData { .. })
        ));
        assert!(matches!(
            latent_scatter(&path, &p, &[0], "t"),
            Err(Error::Shape { .. })
        ));
        let nan = [[0.0f32, f32::NAN], [2.0, 3.0]];
        assert!(matches!(
            latent_scatter(&path, &nan, &[0, 1], "t"),
            Err(Error::InvalidData { .. })
        ));
        let options = ScatterOptions {
            class_names: vec!["a".into()],
            ..Default::default()
        };
        assert!(matches!(
            latent_scatter_with(&path, &p, &[0, 1], &options),
            Err(Error::Shape { .. })
        ));
        let options = ScatterOptions {
            size: (0, 10),
            ..Default::default()
        };
        assert!(matches!(
            latent_scatter_with(&path, &p, &[0, 1], &options),
            Err(Error::Shape { .. })
        ));
        assert!(!path.exists());
    }

    /// Two groups by marker: the cross group's pixels are there in its class colour and the
    /// picture differs from the one-group drawing of the same points; a third name-less group,
    /// a fourth group or groups of another length are errors.
    #[test]
    fn groups_are_drawn_with_their_own_markers() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let (points, labels) = clusters();
        let groups: Vec<usize> = (0..points.len()).map(|i| i % 2).collect();
        let names = vec!["image".to_string(), "audio".to_string()];
        let two = dir.path().join("two.png");
        let one = dir.path().join("one.png");
        let options = ScatterOptions::default();
        grouped_scatter(&two, &points, &labels, &groups, &names, &options).unwrap();
        latent_scatter_with(&one, &points, &labels, &options).unwrap();
        let (a, b) = (
            decode(&two, Some((800, 700))),
            decode(&one, Some((800, 700))),
        );
        let differ = a.pixels().zip(b.pixels()).filter(|(x, y)| x != y).count();
        assert!(differ > 1000, "only {differ} pixels differ");
        assert!(colours(&a) > 10);
        let three: Vec<usize> = (0..points.len()).map(|i| i % 3).collect();
        assert!(grouped_scatter(&two, &points, &labels, &three, &names, &options).is_err());
        let four: Vec<usize> = (0..points.len()).map(|i| i % 4).collect();
        assert!(grouped_scatter(&two, &points, &labels, &four, &[], &options).is_err());
        assert!(grouped_scatter(&two, &points, &labels, &groups[1..], &names, &options).is_err());
    }
}
