//! The in-memory RGB canvas every picture is drawn on, the bundled font, and input checks.

use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::data::DataError;
use crate::{Error, Result};

/// The family name the bundled font is registered under (`plotters`' default family).
pub(crate) const FONT: &str = "sans-serif";

/// DejaVu Sans 2.37 (Bitstream Vera licence, `assets/fonts/LICENSE`).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Longest side, and largest area, a picture may have (a guard against size typos).
const MAX_SIDE: u32 = 16_384;
const MAX_PIXELS: u64 = 64 << 20;

/// Registers the bundled font with `plotters` once per process.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(invalid("plot font", "the bundled font could not be parsed"))
    }
}

/// An RGB picture in memory, white until drawn on.
pub(crate) struct Canvas {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) buf: Vec<u8>,
}

impl Canvas {
    /// A white `width x height` canvas; zero or huge sizes are an error.
    pub(crate) fn new(what: &str, width: u32, height: u32) -> Result<Self> {
        ensure_font()?;
        if width == 0 || height == 0 {
            return Err(Error::shape(
                format!("{what} picture size"),
                "both sides positive",
                format!("{width}x{height}"),
            ));
        }
        if width > MAX_SIDE || height > MAX_SIDE || width as u64 * height as u64 > MAX_PIXELS {
            return Err(Error::shape(
                format!("{what} picture size"),
                format!("at most {MAX_SIDE} pixels a side and {MAX_PIXELS} pixels in all"),
                format!("{width}x{height}"),
            ));
        }
        let len = width as usize * height as usize * 3;
        Ok(Canvas {
            width,
            height,
            buf: vec![255; len],
        })
    }

    /// A `plotters` drawing area over the whole canvas.
    pub(crate) fn area(&mut self) -> DrawingArea<BitMapBackend<'_>, plotters::coord::Shift> {
        BitMapBackend::with_buffer(&mut self.buf, (self.width, self.height)).into_drawing_area()
    }

    /// The drawing area with `title` above it (none when empty) in `FONT` at `size` points. The
    /// canvas starts white, so there is nothing to fill first.
    ///
    /// # Errors
    /// A drawing error, named after `what`.
    pub(crate) fn titled_area(
        &mut self,
        what: &str,
        title: &str,
        size: u32,
    ) -> Result<DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>> {
        let root = self.area();
        if title.is_empty() {
            return Ok(root);
        }
        root.titled(title, (FONT, size)).map_err(drawing(what))
    }

    /// Sets one pixel; coordinates outside the canvas are ignored.
    pub(crate) fn put(&mut self, x: i64, y: i64, rgb: [u8; 3]) {
        if x < 0 || y < 0 || x >= self.width as i64 || y >= self.height as i64 {
            return;
        }
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.buf[i..i + 3].copy_from_slice(&rgb);
    }

    /// Encodes the canvas as PNG and writes it to `path` atomically.
    pub(crate) fn save(self, path: &Path) -> Result<()> {
        let (width, height) = (self.width, self.height);
        let img = image::RgbImage::from_raw(width, height, self.buf)
            .ok_or_else(|| invalid("plot canvas", "buffer does not match its size"))?;
        let mut png = Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| {
                invalid(
                    &path.display().to_string(),
                    format!("png encoding failed: {e}"),
                )
            })?;
        let png = png.into_inner();
        crate::data::atomic::write_atomically(path, |tmp| {
            std::fs::write(tmp, &png).map_err(|e| DataError::io(tmp, e))
        })?;
        Ok(())
    }
}

/// [`Error::InvalidData`] with `what` and `reason`.
pub(crate) fn invalid(what: &str, reason: impl Into<String>) -> Error {
    Error::InvalidData {
        what: what.to_string(),
        reason: reason.into(),
    }
}

/// Turns a `plotters` drawing error into the crate's error.
pub(crate) fn drawing<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| invalid(what, format!("drawing failed: {e}"))
}

/// A padded axis range around `lo..hi` (a constant gets a unit-wide range).
pub(crate) fn padded(lo: f64, hi: f64) -> std::ops::Range<f64> {
    let span = hi - lo;
    if span > 0.0 {
        lo - 0.05 * span..hi + 0.05 * span
    } else {
        let pad = 0.5 * lo.abs().max(1.0);
        lo - pad..hi + pad
    }
}

/// An axis tick label: whole numbers without a decimal point, others with at most three
/// decimals, very large or small ones in scientific notation.
pub(crate) fn tick(x: &f64) -> String {
    let x = *x;
    let a = x.abs();
    if x == 0.0 || (x - x.round()).abs() < 1e-9 * a.max(1.0) && a < 1e6 {
        let r = x.round();
        return if r == 0.0 { "0".into() } else { format!("{r}") };
    }
    if !(1e-3..1e6).contains(&a) {
        return format!("{x:.1e}");
    }
    let s = format!("{x:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `plotters`' colour for an RGB triple.
pub(crate) fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Checks that `values` is not empty and that every value is finite.
pub(crate) fn check_finite(what: &str, values: &[f32]) -> Result<()> {
    if values.is_empty() {
        return Err(invalid(what, "no values"));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(invalid(what, format!("value {i} is {}", values[i])));
    }
    Ok(())
}

/// Width and height in pixels of `text` in the bundled font at `size` pixels.
pub(crate) fn text_size(text: &str, size: f64) -> (u32, u32) {
    (FONT, size)
        .into_font()
        .box_size(text)
        .unwrap_or((text.chars().count() as u32 * size as u32 / 2, size as u32))
}

#[cfg(test)]
mod tests {
    use super::tick;

    #[test]
    fn tick_labels_are_short() {
        let cases = [
            (0.0, "0"),
            (-0.0, "0"),
            (40.0, "40"),
            (-8.0, "-8"),
            (2.5, "2.5"),
            (0.125, "0.125"),
            (0.1 + 0.2, "0.3"),
            (1.5e7, "1.5e7"),
            (2e-5, "2.0e-5"),
        ];
        for (x, s) in cases {
            assert_eq!(tick(&x), s, "{x}");
        }
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers the picture tests share.

    use std::path::{Path, PathBuf};

    /// Where a test writes its pictures: a fresh temporary folder, or, to look at them,
    /// a folder named `name` under `$MVAE_PLOT_DIR` when that is set.
    pub(crate) struct OutDir {
        _tmp: Option<tempfile::TempDir>,
        path: PathBuf,
    }

    impl OutDir {
        pub(crate) fn path(&self) -> &Path {
            &self.path
        }
    }

    pub(crate) fn out_dir(name: &str) -> OutDir {
        match std::env::var_os("MVAE_PLOT_DIR") {
            Some(root) => {
                let path = PathBuf::from(root).join(name.replace("::", "."));
                let _ = std::fs::remove_dir_all(&path);
                std::fs::create_dir_all(&path).unwrap();
                OutDir { _tmp: None, path }
            }
            None => {
                let tmp = tempfile::tempdir().unwrap();
                let path = tmp.path().to_path_buf();
                OutDir {
                    _tmp: Some(tmp),
                    path,
                }
            }
        }
    }

    /// Decodes the PNG at `path`, checks its size when given, and returns it as RGB.
    pub(crate) fn decode(path: &Path, size: Option<(u32, u32)>) -> image::RgbImage {
        let img = image::open(path).expect("a decodable png").to_rgb8();
        if let Some((w, h)) = size {
            assert_eq!(img.dimensions(), (w, h), "{}", path.display());
        }
        img
    }

    /// Variance of the grey level over all pixels: zero for a blank picture.
    pub(crate) fn variance(img: &image::RgbImage) -> f64 {
        let n = (img.width() * img.height()) as f64;
        let grey: Vec<f64> = img
            .pixels()
            .map(|p| (p[0] as f64 + p[1] as f64 + p[2] as f64) / 3.0)
            .collect();
        let mean = grey.iter().sum::<f64>() / n;
        grey.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n
    }

    /// How many distinct colours the picture uses.
    pub(crate) fn colours(img: &image::RgbImage) -> usize {
        let mut set = std::collections::HashSet::new();
        for p in img.pixels() {
            set.insert(p.0);
        }
        set.len()
    }
}
