//! How two embeddings are compared: by the cosine of their angle or by their Euclidean
//! distance. Retrieval ranks by it ([`crate::embed::retrieval`]) and the contrastive term
//! trains with it ([`crate::objective::contrastive`]).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How two embeddings are compared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Similarity {
    /// The cosine of the angle between the means (a zero vector is at cosine 0 to all).
    #[default]
    Cosine,
    /// Minus the Euclidean distance between the means.
    Euclidean,
}

impl std::fmt::Display for Similarity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Similarity {
    /// The similarity of `a` and `b` (larger is closer).
    pub fn of(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Similarity::Cosine => {
                let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
                for (&x, &y) in a.iter().zip(b) {
                    let (x, y) = (f64::from(x), f64::from(y));
                    ab += x * y;
                    aa += x * x;
                    bb += y * y;
                }
                if aa == 0.0 || bb == 0.0 {
                    0.0
                } else {
                    ab / (aa.sqrt() * bb.sqrt())
                }
            }
            Similarity::Euclidean => -a
                .iter()
                .zip(b)
                .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                .sum::<f64>()
                .sqrt(),
        }
    }
}

impl Similarity {
    /// Both, in the order `--help` lists them.
    pub const ALL: [Similarity; 2] = [Similarity::Cosine, Similarity::Euclidean];

    /// The name used by the CLI, configs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Similarity::Cosine => "cosine",
            Similarity::Euclidean => "euclidean",
        }
    }
}

impl std::str::FromStr for Similarity {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Similarity::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| Error::config("similarity", s, "cosine or euclidean"))
    }
}
