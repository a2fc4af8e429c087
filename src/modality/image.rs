//! Images with intensities in `[0, 1]` and a Bernoulli likelihood per value: grey (one
//! channel) or colour (three channels, red, green, blue).

use serde::{Deserialize, Serialize};

use super::{EncoderInput, Modality};
use crate::likelihood::Likelihood;

/// An image modality of `height x width` pixels and `channels` channels. Values are
/// channel-planar: value `c * height * width + row * width + col` is channel `c` of that pixel
/// (for one channel, plain row-major pixels).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// Modality name.
    pub name: String,
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Channels: 1 (grey, the default, so configs written before colour read unchanged) or 3
    /// (RGB). Left out of the serialised form when 1, so grey models' configs stay as they were.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub channels: usize,
}

fn one() -> usize {
    1
}

fn is_one(c: &usize) -> bool {
    *c == 1
}

impl Image {
    /// A grey image modality named `name`.
    pub fn new(name: &str, width: usize, height: usize) -> Self {
        Self {
            name: name.into(),
            width,
            height,
            channels: 1,
        }
    }

    /// A colour (RGB, three channels) image modality named `name`.
    pub fn rgb(name: &str, width: usize, height: usize) -> Self {
        Self {
            channels: 3,
            ..Self::new(name, width, height)
        }
    }

    /// MNIST digits: `image`, 28 x 28, grey.
    pub fn mnist() -> Self {
        Self::new("image", 28, 28)
    }
}

impl Modality for Image {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        self.channels * self.width * self.height
    }
    fn encoder_input(&self) -> EncoderInput {
        EncoderInput::Dense { dim: self.dim() }
    }
    fn likelihood(&self) -> Likelihood {
        Likelihood::Bernoulli { dim: self.dim() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_serialises_as_before_and_colour_names_its_channels() {
        let grey = serde_json::to_string(&Image::mnist()).unwrap();
        assert_eq!(grey, r#"{"name":"image","width":28,"height":28}"#);
        let back: Image = serde_json::from_str(&grey).unwrap();
        assert_eq!(back, Image::mnist());
        let rgb = Image::rgb("m0", 28, 28);
        assert_eq!(rgb.dim(), 3 * 784);
        let text = serde_json::to_string(&rgb).unwrap();
        assert!(text.contains(r#""channels":3"#), "{text}");
        assert_eq!(serde_json::from_str::<Image>(&text).unwrap(), rgb);
    }
}
