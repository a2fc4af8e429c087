//! Labelled image folders: `root/{class}/{image}.png|jpg|jpeg`, decoded,
//! converted to grey or RGB, resized and scaled to `[0, 1]`.
//!
//! Classes are the sub-folder names in sorted order (label = position in that
//! list). Files directly in the root and files with other extensions are
//! ignored. Images are resized to exactly `width x height` with a triangle
//! (bilinear) filter, without keeping the aspect ratio. Layout is
//! channel-major: `channel * height * width + row * width + col`.

use std::path::{Path, PathBuf};

use crate::data::error::{show, DataError, Result};

/// Channels to convert every image to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channels {
    /// One luminance channel.
    Gray,
    /// Red, green and blue channels.
    Rgb,
}

impl Channels {
    /// Number of channels.
    pub fn count(self) -> usize {
        match self {
            Channels::Gray => 1,
            Channels::Rgb => 3,
        }
    }
}

/// Images of a labelled folder with their classes.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// `len() * channels * height * width` intensities in `[0, 1]`.
    pub images: Vec<f32>,
    /// Class index of each image.
    pub labels: Vec<u32>,
    /// Class names (sub-folder names), sorted.
    pub classes: Vec<String>,
    /// File of each image.
    pub paths: Vec<PathBuf>,
    /// Width of every image.
    pub width: usize,
    /// Height of every image.
    pub height: usize,
    /// Channels of every image.
    pub channels: Channels,
}

/// Whether `path` names an image this crate reads: `.png`, `.jpg` or `.jpeg`, in any case.
pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg"))
        .unwrap_or(false)
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        out.push(entry.map_err(|e| DataError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

/// Largest `width * height` accepted.
pub const MAX_PIXELS: usize = 1 << 24;

/// Decodes one image file into `channels` planes of `width x height` values in `[0, 1]`.
pub fn load_image(
    path: &Path,
    width: usize,
    height: usize,
    channels: Channels,
) -> Result<Vec<f32>> {
    let bad = |reason: String| DataError::Image {
        file: show(path),
        reason,
    };
    if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS {
        return Err(DataError::Config(format!(
            "image size {width}x{height} is empty or larger than {MAX_PIXELS} pixels"
        )));
    }
    let (w, h) = (
        u32::try_from(width).map_err(|_| bad(format!("width {width} is too large")))?,
        u32::try_from(height).map_err(|_| bad(format!("height {height} is too large")))?,
    );
    let img = image::ImageReader::open(path)
        .map_err(|e| DataError::io(path, e))?
        .with_guessed_format()
        .map_err(|e| DataError::io(path, e))?
        .decode()
        .map_err(|e| bad(format!("cannot decode image: {e}")))?;
    let filter = image::imageops::FilterType::Triangle;
    let plane = width * height;
    let mut out = vec![0.0; plane * channels.count()];
    match channels {
        Channels::Gray => {
            let g = image::imageops::resize(&img.to_luma8(), w, h, filter);
            for (o, p) in out.iter_mut().zip(g.pixels()) {
                *o = f32::from(p.0[0]) / 255.0;
            }
        }
        Channels::Rgb => {
            let c = image::imageops::resize(&img.to_rgb8(), w, h, filter);
            for (i, p) in c.pixels().enumerate() {
                for ch in 0..3 {
                    out[ch * plane + i] = f32::from(p.0[ch]) / 255.0;
                }
            }
        }
    }
    Ok(out)
}

impl ImageFolder {
    /// Loads every image under the class sub-folders of `root`.
    pub fn load(root: &Path, width: usize, height: usize, channels: Channels) -> Result<Self> {
        if width == 0 || height == 0 || width.saturating_mul(height) > MAX_PIXELS {
            return Err(DataError::Config(format!(
                "image size {width}x{height} is empty or larger than {MAX_PIXELS} pixels"
            )));
        }
        let mut folder = ImageFolder {
            images: Vec::new(),
            labels: Vec::new(),
            classes: Vec::new(),
            paths: Vec::new(),
            width,
            height,
            channels,
        };
        for class_dir in sorted_entries(root)?.into_iter().filter(|p| p.is_dir()) {
            let label = folder.classes.len() as u32;
            folder.classes.push(
                class_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            );
            let files: Vec<PathBuf> = sorted_entries(&class_dir)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if files.is_empty() {
                return Err(DataError::Empty {
                    path: show(&class_dir),
                    reason: "class folder holds no .png, .jpg or .jpeg images".into(),
                });
            }
            for file in files {
                folder
                    .images
                    .extend(load_image(&file, width, height, channels)?);
                folder.labels.push(label);
                folder.paths.push(file);
            }
        }
        if folder.classes.is_empty() {
            return Err(DataError::Empty {
                path: show(root),
                reason: "no class sub-folders".into(),
            });
        }
        Ok(folder)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image, `channels * height * width`.
    pub fn dim(&self) -> usize {
        self.channels.count() * self.height * self.width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let cats = dir.path().join("cat");
        let dogs = dir.path().join("dog");
        std::fs::create_dir_all(&cats).unwrap();
        std::fs::create_dir_all(&dogs).unwrap();
        image::GrayImage::from_pixel(8, 4, image::Luma([255]))
            .save(cats.join("a.png"))
            .unwrap();
        image::RgbImage::from_pixel(5, 5, image::Rgb([255, 0, 0]))
            .save(dogs.join("b.PNG"))
            .unwrap();
        image::RgbImage::from_pixel(16, 16, image::Rgb([0, 0, 255]))
            .save(dogs.join("c.jpg"))
            .unwrap();
        std::fs::write(dogs.join("notes.txt"), b"ignored").unwrap();
        std::fs::write(dir.path().join("stray.png"), b"ignored").unwrap();
        dir
    }

    #[test]
    fn loads_classes_resizes_and_converts() {
        let dir = fixture();
        let gray = ImageFolder::load(dir.path(), 4, 4, Channels::Gray).unwrap();
        assert_eq!(gray.classes, vec!["cat", "dog"]);
        assert_eq!(gray.labels, vec![0, 1, 1]);
        assert_eq!(gray.images.len(), 3 * 16);
        assert!(gray.images[..16].iter().all(|&v| v == 1.0));
        let red_luma = gray.images[16];
        // Rec. 709 luma of pure red.
        assert!((red_luma - 0.2126).abs() < 0.01, "{red_luma}");
        let rgb = ImageFolder::load(dir.path(), 2, 3, Channels::Rgb).unwrap();
        assert_eq!(rgb.dim(), 18);
        let red = &rgb.images[18..36];
        assert!(red[..6].iter().all(|&v| v == 1.0) && red[6..].iter().all(|&v| v == 0.0));
        let blue = &rgb.images[36..54];
        assert!(blue[12..].iter().all(|&v| v > 0.9) && blue[..6].iter().all(|&v| v < 0.1));
        assert!(rgb.images.iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn corrupt_png_and_empty_folders_are_errors() {
        let dir = fixture();
        let bad = dir.path().join("dog").join("d.png");
        let mut png = std::fs::read(dir.path().join("cat").join("a.png")).unwrap();
        png.truncate(png.len() / 2);
        std::fs::write(&bad, png).unwrap();
        let e = ImageFolder::load(dir.path(), 4, 4, Channels::Gray).unwrap_err();
        assert!(matches!(e, DataError::Image { .. }), "{e}");
        assert!(e.to_string().contains("d.png"), "{e}");
        std::fs::write(&bad, b"not a png at all").unwrap();
        let e = ImageFolder::load(dir.path(), 4, 4, Channels::Gray).unwrap_err();
        assert!(e.to_string().contains("d.png"), "{e}");
        let empty = tempfile::tempdir().unwrap();
        let e = ImageFolder::load(empty.path(), 4, 4, Channels::Gray).unwrap_err();
        assert!(matches!(e, DataError::Empty { .. }), "{e}");
        std::fs::create_dir(empty.path().join("none")).unwrap();
        let e = ImageFolder::load(empty.path(), 4, 4, Channels::Gray).unwrap_err();
        assert!(e.to_string().contains("none: class folder holds no"), "{e}");
        assert!(matches!(
            ImageFolder::load(dir.path(), 0, 4, Channels::Gray),
            Err(DataError::Config(_))
        ));
        assert!(matches!(
            ImageFolder::load(dir.path(), 1 << 20, 1 << 20, Channels::Rgb),
            Err(DataError::Config(_))
        ));
        assert!(matches!(
            ImageFolder::load(&dir.path().join("missing"), 4, 4, Channels::Gray),
            Err(DataError::Io { .. })
        ));
    }
}
