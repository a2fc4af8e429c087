//! Colours: a palette that tells classes apart and heat-map colour maps.

use std::sync::OnceLock;

/// Ten well-separated hues for the first ten classes (the "category10" set of colours).
const CLASSES: [[u8; 3]; 10] = [
    [0x1f, 0x77, 0xb4],
    [0xff, 0x7f, 0x0e],
    [0x2c, 0xa0, 0x2c],
    [0xd6, 0x27, 0x28],
    [0x94, 0x67, 0xbd],
    [0x8c, 0x56, 0x4b],
    [0xe3, 0x77, 0xc2],
    [0x7f, 0x7f, 0x7f],
    [0xbc, 0xbd, 0x22],
    [0x17, 0xbe, 0xcf],
];

/// Distinct class colours before they repeat.
pub const CLASS_COLOURS: usize = 64;

/// The colour of class `i`: ten familiar distinct colours, then colours picked one by one to
/// be as far as possible (in RGB) from all earlier ones and from the white background; they
/// repeat after [`CLASS_COLOURS`].
pub fn class_colour(i: usize) -> [u8; 3] {
    static PALETTE: OnceLock<Vec<[u8; 3]>> = OnceLock::new();
    PALETTE.get_or_init(palette)[i % CLASS_COLOURS]
}

/// Greedy farthest-point choice among saturated mid-lightness colours.
fn palette() -> Vec<[u8; 3]> {
    let mut candidates = Vec::new();
    for h in 0..72 {
        for s in [0.55, 0.9] {
            for l in [0.3, 0.45, 0.6, 0.72] {
                candidates.push(hsl(h as f64 * 5.0, s, l));
            }
        }
    }
    let dist =
        |a: [u8; 3], b: [u8; 3]| -> i32 { (0..3).map(|c| (a[c] as i32 - b[c] as i32).abs()).sum() };
    let mut chosen: Vec<[u8; 3]> = CLASSES.to_vec();
    let mut nearest: Vec<i32> = candidates
        .iter()
        .map(|&c| {
            chosen
                .iter()
                .chain(&[[255; 3]])
                .map(|&p| dist(c, p))
                .min()
                .unwrap_or(i32::MAX)
        })
        .collect();
    while chosen.len() < CLASS_COLOURS {
        let (best, _) = nearest
            .iter()
            .enumerate()
            .max_by_key(|&(i, d)| (*d, std::cmp::Reverse(i)))
            .unwrap_or((0, &0));
        let pick = candidates[best];
        chosen.push(pick);
        for (n, &c) in nearest.iter_mut().zip(&candidates) {
            *n = (*n).min(dist(c, pick));
        }
    }
    chosen
}

/// HSL (hue in degrees, saturation and lightness in [0, 1]) to RGB.
fn hsl(hue: f64, s: f64, l: f64) -> [u8; 3] {
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let h = hue / 60.0;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    let q = |v: f64| ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [q(r), q(g), q(b)]
}

/// A colour map from [0, 1] to colours, for heat maps.
///
/// `Viridis` and `Magma` rise steadily in lightness (so they read correctly in grey and for
/// most colour-blind readers); they are interpolated linearly between ten stops of the
/// published maps, which is close to the full 256-entry tables.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Colormap {
    /// Dark blue through green to yellow.
    #[default]
    Viridis,
    /// Black through purple and orange to pale yellow.
    Magma,
    /// Black to white.
    Grey,
}

const VIRIDIS: [[u8; 3]; 10] = [
    [0x44, 0x01, 0x54],
    [0x48, 0x28, 0x78],
    [0x3e, 0x49, 0x89],
    [0x31, 0x68, 0x8e],
    [0x26, 0x82, 0x8e],
    [0x1f, 0x9e, 0x89],
    [0x35, 0xb7, 0x79],
    [0x6e, 0xce, 0x58],
    [0xb5, 0xde, 0x2b],
    [0xfd, 0xe7, 0x25],
];

const MAGMA: [[u8; 3]; 10] = [
    [0x00, 0x00, 0x04],
    [0x18, 0x0f, 0x3d],
    [0x44, 0x0f, 0x76],
    [0x72, 0x1f, 0x81],
    [0x9e, 0x2f, 0x7f],
    [0xcd, 0x40, 0x71],
    [0xf1, 0x60, 0x5d],
    [0xfd, 0x96, 0x68],
    [0xfe, 0xca, 0x8d],
    [0xfc, 0xfd, 0xbf],
];

impl Colormap {
    /// The colour of `t` in [0, 1] (values outside are clamped, NaN maps to 0).
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let stops = match self {
            Colormap::Viridis => &VIRIDIS,
            Colormap::Magma => &MAGMA,
            Colormap::Grey => {
                let g = (t * 255.0).round() as u8;
                return [g, g, g];
            }
        };
        let x = t * (stops.len() - 1) as f32;
        let i = (x.floor() as usize).min(stops.len() - 2);
        let f = x - i as f32;
        let (a, b) = (stops[i], stops[i + 1]);
        std::array::from_fn(|c| (a[c] as f32 + f * (b[c] as f32 - a[c] as f32)).round() as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative luminance (Rec. 709 weights on linearised sRGB).
    fn luminance(c: [u8; 3]) -> f64 {
        let lin = |v: u8| {
            let v = v as f64 / 255.0;
            if v <= 0.04045 {
                v / 12.92
            } else {
                ((v + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2])
    }

    #[test]
    fn colour_maps_end_at_their_stops_and_grow_lighter() {
        for (map, first, last) in [
            (Colormap::Viridis, VIRIDIS[0], VIRIDIS[9]),
            (Colormap::Magma, MAGMA[0], MAGMA[9]),
            (Colormap::Grey, [0; 3], [255; 3]),
        ] {
            assert_eq!(map.rgb(0.0), first);
            assert_eq!(map.rgb(1.0), last);
            assert_eq!(map.rgb(-3.0), first);
            assert_eq!(map.rgb(f32::NAN), first);
            let lum: Vec<f64> = (0..=100)
                .map(|i| luminance(map.rgb(i as f32 / 100.0)))
                .collect();
            assert!(
                lum.windows(2).all(|w| w[1] >= w[0] - 1e-3),
                "{map:?}: {lum:?}"
            );
        }
    }

    #[test]
    fn class_colours_are_distinct() {
        let colours: Vec<[u8; 3]> = (0..CLASS_COLOURS).map(class_colour).collect();
        assert_eq!(class_colour(CLASS_COLOURS + 3), class_colour(3));
        for i in 0..colours.len() {
            for j in 0..i {
                let d: i32 = (0..3)
                    .map(|c| (colours[i][c] as i32 - colours[j][c] as i32).abs())
                    .sum();
                assert!(
                    d > 40,
                    "classes {i} and {j}: {:?} {:?}",
                    colours[i],
                    colours[j]
                );
            }
        }
    }
}
