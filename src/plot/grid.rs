//! Grey or RGB images tiled into one picture: reconstructions, samples per conditioning label,
//! cross-modal generations.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::plot::canvas::{check_finite, drawing, invalid, text_size, Canvas, FONT};
use crate::{Error, Result};

/// Layout of a tiled picture ([`image_grid`], [`spectrogram_grid`](crate::plot::spectrogram_grid)).
#[derive(Clone, Debug, PartialEq)]
pub struct GridOptions {
    /// Screen pixels per image pixel (28x28 digits are tiny at 1).
    pub scale: u32,
    /// Pixels between tiles and around the edge.
    pub gap: u32,
    /// One label per row drawn left of it (e.g. the digit that conditioned the row); empty:
    /// no label column.
    pub row_labels: Vec<String>,
    /// Caption above the tiles (none when empty).
    pub title: String,
    /// Draw 1 as black and 0 as white (ink on paper) instead of 1 as white.
    pub invert: bool,
}

impl Default for GridOptions {
    fn default() -> Self {
        GridOptions {
            scale: 3,
            gap: 2,
            row_labels: Vec::new(),
            title: String::new(),
            invert: false,
        }
    }
}

/// Tiles greyscale images with values in [0, 1] into one PNG at `path`, `cols` per row.
///
/// `images` holds the images one after another, each `width * height` values row-major (the
/// layout of a batch of decoded image means); the last row may be partly empty.
pub fn image_grid(
    path: &Path,
    images: &[f32],
    width: usize,
    height: usize,
    cols: usize,
    options: &GridOptions,
) -> Result<()> {
    image_grid_channels(path, images, 1, width, height, cols, options)
}

/// Tiles grey (`channels` 1) or RGB (`channels` 3) images with values in [0, 1] into one PNG
/// at `path`, `cols` per row.
///
/// Each image is `channels * width * height` values, channel-planar (all red values row-major,
/// then green, then blue); with one channel this is [`image_grid`]. `options.invert` inverts
/// every channel.
pub fn image_grid_channels(
    path: &Path,
    images: &[f32],
    channels: usize,
    width: usize,
    height: usize,
    cols: usize,
    options: &GridOptions,
) -> Result<()> {
    if !matches!(channels, 1 | 3) {
        return Err(Error::shape("image grid channels", "1 or 3", channels));
    }
    // Each image is `channels` stacked planes: count them as tiles `channels` times as high.
    let count = count_tiles("image grid", images, width, height.saturating_mul(channels))?;
    if let Some(i) = images.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(invalid(
            "image grid",
            format!("value {i} is {} (expected [0, 1])", images[i]),
        ));
    }
    let invert = options.invert;
    let plane = width * height;
    mosaic(
        path,
        "image grid",
        count,
        (width, height),
        cols,
        options,
        |tile, x, y| {
            let at = |c: usize| {
                let v = images[(tile * channels + c) * plane + y * width + x];
                let v = if invert { 1.0 - v } else { v };
                (v * 255.0).round() as u8
            };
            if channels == 1 {
                let g = at(0);
                [g, g, g]
            } else {
                [at(0), at(1), at(2)]
            }
        },
    )
}

/// Checks that `values` is a non-empty, finite stack of `width x height` tiles and counts them.
pub(crate) fn count_tiles(
    what: &str,
    values: &[f32],
    width: usize,
    height: usize,
) -> Result<usize> {
    if width == 0 || height == 0 {
        return Err(Error::shape(
            format!("{what} tile size"),
            "both sides positive",
            format!("{width}x{height}"),
        ));
    }
    check_finite(what, values)?;
    let per = width.saturating_mul(height);
    if !values.len().is_multiple_of(per) {
        return Err(Error::shape(
            what,
            format!("a multiple of {width}x{height} = {per} values"),
            values.len(),
        ));
    }
    Ok(values.len() / per)
}

/// Draws `count` tiles of `cell` (width, height) cells, `cols` per row, to the PNG at `path`;
/// `colour(tile, x, y)` gives the colour of a cell with `y = 0` at the top.
pub(crate) fn mosaic(
    path: &Path,
    what: &str,
    count: usize,
    cell: (usize, usize),
    cols: usize,
    options: &GridOptions,
    colour: impl Fn(usize, usize, usize) -> [u8; 3],
) -> Result<()> {
    if cols == 0 {
        return Err(Error::shape(format!("{what} columns"), "at least 1", cols));
    }
    if options.scale == 0 {
        return Err(Error::shape(format!("{what} scale"), "at least 1", 0));
    }
    let cols = cols.min(count);
    let rows = count.div_ceil(cols);
    if !options.row_labels.is_empty() && options.row_labels.len() != rows {
        return Err(Error::shape(
            format!("{what} row labels"),
            rows,
            options.row_labels.len(),
        ));
    }
    let (scale, gap) = (options.scale as u64, options.gap as u64);
    let tile_w = cell.0 as u64 * scale;
    let tile_h = cell.1 as u64 * scale;
    let label_px = (tile_h as f64 * 0.5).clamp(11.0, 28.0);
    let label_w = options
        .row_labels
        .iter()
        .map(|l| text_size(l, label_px).0 as u64 + 10)
        .max()
        .unwrap_or(0);
    let title_px = 20.0;
    let title_h = if options.title.is_empty() {
        0
    } else {
        text_size(&options.title, title_px).1 as u64 + 12
    };
    let title_w = if options.title.is_empty() {
        0
    } else {
        text_size(&options.title, title_px).0 as u64 + 2 * gap + 10
    };
    let too_big = |got: String| {
        Error::shape(
            format!("{what} picture size"),
            "at most 16384 pixels a side",
            got,
        )
    };
    let w = (label_w + gap + cols as u64 * (tile_w + gap)).max(title_w);
    let h = title_h + gap + rows as u64 * (tile_h + gap);
    let w32 = u32::try_from(w).map_err(|_| too_big(format!("{w} wide")))?;
    let h32 = u32::try_from(h).map_err(|_| too_big(format!("{h} high")))?;
    let mut canvas = Canvas::new(what, w32, h32)?;
    for tile in 0..count {
        let x0 = label_w + gap + (tile % cols) as u64 * (tile_w + gap);
        let y0 = title_h + gap + (tile / cols) as u64 * (tile_h + gap);
        for py in 0..tile_h {
            for px in 0..tile_w {
                let c = colour(tile, (px / scale) as usize, (py / scale) as usize);
                canvas.put((x0 + px) as i64, (y0 + py) as i64, c);
            }
        }
    }
    if !options.row_labels.is_empty() || !options.title.is_empty() {
        let err = drawing(what);
        let root = canvas.area();
        for (r, label) in options.row_labels.iter().enumerate() {
            let y = title_h + gap + r as u64 * (tile_h + gap) + tile_h / 2;
            let style = TextStyle::from((FONT, label_px))
                .color(&BLACK)
                .pos(Pos::new(HPos::Right, VPos::Center));
            root.draw_text(label, &style, ((label_w - 4) as i32, y as i32))
                .map_err(&err)?;
        }
        if !options.title.is_empty() {
            let style = TextStyle::from((FONT, title_px))
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Center));
            root.draw_text(
                &options.title,
                &style,
                ((w / 2) as i32, (title_h / 2 + 2) as i32),
            )
            .map_err(&err)?;
        }
        root.present().map_err(&err)?;
    }
    canvas.save(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::canvas::testing::{decode, out_dir, variance};

    /// `n` 6x4 test images: a bar whose position moves with the index.
    fn bars(n: usize) -> Vec<f32> {
        (0..n)
            .flat_map(|i| (0..24).map(move |p| if p % 6 == i % 6 { 1.0 } else { 0.1 }))
            .collect()
    }

    #[test]
    fn tiles_have_the_expected_size_and_pixels() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("grid.png");
        let options = GridOptions {
            scale: 2,
            gap: 1,
            ..Default::default()
        };
        image_grid(&path, &bars(5), 6, 4, 3, &options).unwrap();
        // 3 columns of 12 + gaps of 1: 1 + 3 * 13 = 40; 2 rows of 8: 1 + 2 * 9 = 19.
        let img = decode(&path, Some((40, 19)));
        assert!(variance(&img) > 100.0);
        // Image 0 has its bar in column 0: pixels (1..3, 1..9) are white, (3, 1) is dark.
        assert_eq!(img.get_pixel(1, 1).0, [255; 3]);
        assert_eq!(img.get_pixel(2, 8).0, [255; 3]);
        assert_eq!(img.get_pixel(3, 1).0, [26; 3]);
        // The sixth tile is missing and left as background.
        assert_eq!(img.get_pixel(35, 15).0, [255; 3]);
        let inverted = dir.path().join("inverted.png");
        let options = GridOptions {
            invert: true,
            ..options
        };
        image_grid(&inverted, &bars(5), 6, 4, 3, &options).unwrap();
        assert_eq!(decode(&inverted, None).get_pixel(1, 1).0, [0; 3]);
    }

    /// RGB tiles keep their channels: planar values become coloured pixels, and a channel
    /// count other than 1 or 3, or a length that is not a whole number of RGB tiles, is refused.
    #[test]
    fn rgb_tiles_show_their_colours() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("rgb.png");
        // Two 2x2 tiles: the first pure red, the second (0.2, 0.6, 1.0).
        let mut images = vec![0.0f32; 24];
        images[..4].fill(1.0);
        images[12..16].fill(0.2);
        images[16..20].fill(0.6);
        images[20..24].fill(1.0);
        let options = GridOptions {
            scale: 1,
            gap: 1,
            ..Default::default()
        };
        image_grid_channels(&path, &images, 3, 2, 2, 2, &options).unwrap();
        // 1 + 2 * 3 = 7 wide, 1 + 3 = 4 high.
        let img = decode(&path, Some((7, 4)));
        assert_eq!(img.get_pixel(1, 1).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(4, 2).0, [51, 153, 255]);
        assert!(image_grid_channels(&path, &images, 2, 2, 2, 2, &options).is_err());
        assert!(image_grid_channels(&path, &images[..20], 3, 2, 2, 2, &options).is_err());
        // One channel is the grey grid, pixel for pixel.
        let grey = dir.path().join("grey.png");
        let via = dir.path().join("via.png");
        image_grid(&grey, &bars(3), 6, 4, 3, &options).unwrap();
        image_grid_channels(&via, &bars(3), 1, 6, 4, 3, &options).unwrap();
        assert_eq!(std::fs::read(&grey).unwrap(), std::fs::read(&via).unwrap());
    }

    #[test]
    fn row_labels_and_title_add_text() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("labelled.png");
        let options = GridOptions {
            scale: 4,
            row_labels: vec!["0".into(), "1".into()],
            title: "image from label".into(),
            ..Default::default()
        };
        image_grid(&path, &bars(4), 6, 4, 2, &options).unwrap();
        let img = decode(&path, None);
        let plain = dir.path().join("plain.png");
        image_grid(
            &plain,
            &bars(4),
            6,
            4,
            2,
            &GridOptions {
                scale: 4,
                ..Default::default()
            },
        )
        .unwrap();
        let bare = decode(&plain, None);
        assert!(img.width() > bare.width() && img.height() > bare.height());
        // Text is drawn: the label column (left of the tiles) has dark pixels.
        let dark_in_labels = (0..img.height())
            .flat_map(|y| (0..img.width() - bare.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 128)
            .count();
        assert!(dark_in_labels > 5, "{dark_in_labels}");
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = out_dir(concat!(module_path!(), "-", line!()));
        let path = dir.path().join("bad.png");
        let o = GridOptions::default();
        assert!(matches!(
            image_grid(&path, &[], 2, 2, 1, &o),
            Err(Error::InvalidData { .. })
        ));
        assert!(matches!(
            image_grid(&path, &[0.5; 5], 2, 2, 1, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            image_grid(&path, &[0.5; 4], 0, 2, 1, &o),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            image_grid(&path, &[0.5; 4], 2, 2, 0, &o),
            Err(Error::Shape { .. })
        ));
        let nan = [0.5, f32::NAN, 0.5, 0.5];
        assert!(matches!(
            image_grid(&path, &nan, 2, 2, 1, &o),
            Err(Error::InvalidData { .. })
        ));
        let big = [0.5, 1.5, 0.5, 0.5];
        assert!(matches!(
            image_grid(&path, &big, 2, 2, 1, &o),
            Err(Error::InvalidData { .. })
        ));
        let labels = GridOptions {
            row_labels: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert!(matches!(
            image_grid(&path, &[0.5; 4], 2, 2, 1, &labels),
            Err(Error::Shape { .. })
        ));
        let zero = GridOptions {
            scale: 0,
            ..Default::default()
        };
        assert!(matches!(
            image_grid(&path, &[0.5; 4], 2, 2, 1, &zero),
            Err(Error::Shape { .. })
        ));
        let huge = GridOptions {
            scale: 10_000,
            ..Default::default()
        };
        assert!(matches!(
            image_grid(&path, &[0.5; 4], 2, 2, 1, &huge),
            Err(Error::Shape { .. })
        ));
        assert!(!path.exists());
    }
}
