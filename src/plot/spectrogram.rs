//! Log-magnitude spectrograms as heat maps: time to the right, frequency upwards.

use std::path::Path;

use plotters::prelude::*;

use crate::plot::canvas::{check_finite, drawing, tick, Canvas, FONT};
use crate::plot::colour::Colormap;
use crate::plot::grid::{count_tiles, mosaic, GridOptions};
use crate::{Error, Result};

/// How values map to colours.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ColourScale {
    /// The colour map.
    pub map: Colormap,
    /// Values drawn at the two ends of the map (others are clamped); `None`: the data's
    /// minimum and maximum (over all tiles of a grid, so that they compare).
    pub range: Option<(f32, f32)>,
}

impl ColourScale {
    /// The range to draw `values` with: the fixed one, or the data's extent.
    fn resolve(&self, values: &[f32]) -> Result<(f32, f32)> {
        let (lo, hi) = match self.range {
            Some((lo, hi)) => {
                if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                    return Err(Error::config(
                        "colour range",
                        format!("{lo}..{hi}"),
                        "finite and increasing",
                    ));
                }
                (lo, hi)
            }
            None => values
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                }),
        };
        Ok(if hi > lo {
            (lo, hi)
        } else {
            (lo - 0.5, lo + 0.5)
        })
    }

    fn colour(&self, (lo, hi): (f32, f32), v: f32) -> [u8; 3] {
        self.map.rgb((v - lo) / (hi - lo))
    }
}

/// How [`spectrogram_image`] draws.
#[derive(Clone, Debug, PartialEq)]
pub struct SpectrogramOptions {
    /// Colour map and value range.
    pub colours: ColourScale,
    /// Caption above the plot (none when empty).
    pub title: String,
    /// Horizontal axis description.
    pub x_label: String,
    /// Vertical axis description.
    pub y_label: String,
    /// Picture width and height in pixels.
    pub size: (u32, u32),
}

impl Default for SpectrogramOptions {
    fn default() -> Self {
        SpectrogramOptions {
            colours: ColourScale::default(),
            title: String::new(),
            x_label: "frame".into(),
            y_label: "frequency bin".into(),
            size: (800, 450),
        }
    }
}

/// Draws one spectrogram, `frames x bins` values row-major (a frame's bins together, lowest
/// frequency first: the layout of [`Stft`](crate::data::Stft)'s output), as a heat map with
/// axes and a colour bar to the PNG at `path`.
pub fn spectrogram_image(
    path: &Path,
    values: &[f32],
    frames: usize,
    bins: usize,
    options: &SpectrogramOptions,
) -> Result<()> {
    if frames == 0 || bins == 0 {
        return Err(Error::shape(
            "spectrogram size",
            "frames and bins positive",
            format!("{frames}x{bins}"),
        ));
    }
    if values.len() != frames.saturating_mul(bins) {
        return Err(Error::shape(
            "spectrogram values",
            format!("{frames} frames x {bins} bins = {}", frames * bins),
            values.len(),
        ));
    }
    check_finite("spectrogram", values)?;
    let range = options.colours.resolve(values)?;
    let mut canvas = Canvas::new("spectrogram", options.size.0, options.size.1)?;
    let err = drawing("spectrogram");
    let bar_w = 95.min(options.size.0 / 3);
    let (heat, bar) = {
        let root = canvas.titled_area("spectrogram", &options.title, 22)?;
        let (left, right) = root.split_horizontally(options.size.0 - bar_w);
        let mut chart = ChartBuilder::on(&left)
            .margin(10)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..frames as f64, 0.0..bins as f64)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&options.x_label)
            .y_desc(&options.y_label)
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(&err)?;
        let heat = chart.plotting_area().get_pixel_range();
        let mut bar_chart = ChartBuilder::on(&right)
            .margin(10)
            .margin_left(8)
            .x_label_area_size(45)
            .right_y_label_area_size(55)
            .build_cartesian_2d(0.0..1.0, range.0 as f64..range.1 as f64)
            .map_err(&err)?;
        bar_chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_label_formatter(&tick)
            .label_style((FONT, 14))
            .draw()
            .map_err(&err)?;
        let bar = bar_chart.plotting_area().get_pixel_range();
        root.present().map_err(&err)?;
        (heat, bar)
    };
    // Fill the plotting areas pixel by pixel, each pixel showing the cell under its centre.
    let (xs, ys) = heat;
    let (w, h) = (
        (xs.end - xs.start).max(1) as usize,
        (ys.end - ys.start).max(1) as usize,
    );
    for py in ys.clone() {
        let bin = ((ys.end - 1 - py) as usize * bins / h).min(bins - 1);
        for px in xs.clone() {
            let frame = ((px - xs.start) as usize * frames / w).min(frames - 1);
            let c = options.colours.colour(range, values[frame * bins + bin]);
            canvas.put(px as i64, py as i64, c);
        }
    }
    let (xs, ys) = bar;
    let h = (ys.end - ys.start).max(2) as f32;
    for py in ys.clone() {
        let c = options
            .colours
            .map
            .rgb((ys.end - 1 - py) as f32 / (h - 1.0));
        for px in xs.clone() {
            canvas.put(px as i64, py as i64, c);
        }
    }
    canvas.save(path)
}

/// Tiles several spectrograms (`frames x bins` values each, one after another) into one PNG
/// at `path`, `cols` per row, all on one colour scale so that they compare.
pub fn spectrogram_grid(
    path: &Path,
    values: &[f32],
    frames: usize,
    bins: usize,
    cols: usize,
    colours: &ColourScale,
    layout: &GridOptions,
) -> Result<()> {
    let count = count_tiles("spectrogram grid", values, bins, frames)?;
    let range = colours.resolve(values)?;
    let per = frames * bins;
    mosaic(
        path,
        "spectrogram grid",
        count,
        (frames, bins),
        cols,
        layout,
        |tile, x, y| colours.colour(range, values[tile * per + x * bins + (bins - 1 - y)]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::canvas::testing::{colours, decode, out_dir, variance};

    /// A rising chirp: in frame `f` the energy sits at bin `f`, elsewhere it is low.
    fn chirp(frames: usize, bins: usize) -> Vec<f32> {
        (0..frames)
            .flat_map(|f| (0..bins).map(move |b| if b == f % bins { 0.0 } else { -8.0 }))
            .collect()
    }

    #[test]
    fn heat_map_puts_low_frequencies_at_the_bottom() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("spec.png");
        let options = SpectrogramOptions {
            title: "log |STFT|".into(),
            ..Default::default()
        };
        spectrogram_image(&path, &chirp(40, 40), 40, 40, &options).unwrap();
        let img = decode(&path, Some((800, 450)));
        assert!(variance(&img) > 100.0);
        assert!(colours(&img) > 50);
        // The brightest colour (top of the map) lies along a rising diagonal: find it in
        // the left and right quarters and compare heights.
        let top = Colormap::Viridis.rgb(1.0);
        let ys_in = |x0: u32, x1: u32| -> Vec<u32> {
            (x0..x1)
                .flat_map(|x| (0..img.height()).map(move |y| (x, y)))
                .filter(|&(x, y)| img.get_pixel(x, y).0 == top)
                .map(|(_, y)| y)
                .collect()
        };
        let left = ys_in(100, 250);
        let right = ys_in(450, 600);
        assert!(!left.is_empty() && !right.is_empty());
        let mean = |v: &[u32]| v.iter().sum::<u32>() as f64 / v.len() as f64;
        assert!(
            mean(&left) > mean(&right) + 50.0,
            "{} {}",
            mean(&left),
            mean(&right)
        );
    }

    #[test]
    fn grid_tiles_with_one_scale() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("specs.png");
        let mut values = chirp(10, 8);
        values.extend(chirp(10, 8).iter().map(|v| v - 4.0));
        let layout = GridOptions {
            scale: 2,
            gap: 2,
            ..Default::default()
        };
        let scale = ColourScale {
            map: Colormap::Magma,
            range: None,
        };
        spectrogram_grid(&path, &values, 10, 8, 2, &scale, &layout).unwrap();
        // 2 + 2 * (20 + 2) = 46 wide, 2 + 16 + 2 = 20 high.
        let img = decode(&path, Some((46, 20)));
        assert!(variance(&img) > 100.0);
        // Frame 0's energy is at bin 0: the bottom-left cell of tile 0 has the top colour,
        // the same cell of tile 1 (4 lower) does not; tile 1's background is the map's bottom.
        assert_eq!(img.get_pixel(2, 17).0, Colormap::Magma.rgb(1.0));
        assert_ne!(img.get_pixel(24, 17).0, Colormap::Magma.rgb(1.0));
        assert_eq!(img.get_pixel(26, 3).0, Colormap::Magma.rgb(0.0));
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("bad.png");
        let o = SpectrogramOptions::default();
        assert!(matches!(
            spectrogram_image(&path, &[], 2, 2, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            spectrogram_image(&path, &[0.0; 5], 2, 2, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            spectrogram_image(&path, &[0.0; 8], 2, 2, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            spectrogram_image(&path, &[0.0; 4], 0, 2, &o),
            Err(Error::Shape { .. })
        ));
        let inf = [0.0, f32::NEG_INFINITY, 0.0, 0.0];
        assert!(matches!(
            spectrogram_image(&path, &inf, 2, 2, &o),
            Err(Error::InvalidData { .. })
        ));
        let reversed = SpectrogramOptions {
            colours: ColourScale {
                range: Some((1.0, 0.0)),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(
            spectrogram_image(&path, &[0.0; 4], 2, 2, &reversed),
            Err(Error::InvalidConfig { .. })
        ));
        let tiny = SpectrogramOptions {
            size: (0, 0),
            ..Default::default()
        };
        assert!(matches!(
            spectrogram_image(&path, &[0.0; 4], 2, 2, &tiny),
            Err(Error::Shape { .. })
        ));
        let g = GridOptions::default();
        let s = ColourScale::default();
        assert!(matches!(
            spectrogram_grid(&path, &[0.0; 6], 2, 2, 1, &s, &g),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            spectrogram_grid(&path, &[0.0; 8], 2, 2, 0, &s, &g),
            Err(Error::Shape { .. })
        ));
        assert!(!path.exists());
    }
}
