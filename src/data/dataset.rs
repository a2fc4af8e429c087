//! [`MultimodalDataset`]: paired samples in named columns (modalities), each
//! with a per-sample presence mask, plus its validating [`DatasetBuilder`].
//!
//! Labels are an ordinary column of dimension 1 holding class indices as f32.
//! Values of absent modalities are kept as given by the builder; operations
//! here that mark a modality absent ([`MultimodalDataset::make_partial`]) set
//! its values to 0.0.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::data::error::{DataError, Result};

/// One modality: `len * dim` values and a presence flag per sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    name: String,
    dim: usize,
    values: Vec<f32>,
    present: Vec<bool>,
}

impl Column {
    /// Name of the modality.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Values per sample.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// All values, sample after sample.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Presence flag of each sample.
    pub fn present(&self) -> &[bool] {
        &self.present
    }

    /// Values of sample `i`, or `None` past the end.
    pub fn sample(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.values.get(start..start.checked_add(self.dim)?)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.present.len()
    }

    /// Whether the column has no samples.
    pub fn is_empty(&self) -> bool {
        self.present.is_empty()
    }
}

/// Paired multimodal samples; every column has the same number of samples and
/// every sample has at least one modality present.
#[derive(Debug, Clone, PartialEq)]
pub struct MultimodalDataset {
    columns: Vec<Column>,
    len: usize,
}

/// Collects columns and checks them in [`DatasetBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct DatasetBuilder {
    columns: Vec<Column>,
}

impl DatasetBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a column whose samples are all present.
    pub fn column(self, name: &str, dim: usize, values: Vec<f32>) -> Self {
        let n = values.len().checked_div(dim).unwrap_or(0);
        self.column_with_mask(name, dim, values, vec![true; n])
    }

    /// Adds a column with an explicit presence mask (one flag per sample).
    pub fn column_with_mask(
        mut self,
        name: &str,
        dim: usize,
        values: Vec<f32>,
        present: Vec<bool>,
    ) -> Self {
        self.columns.push(Column {
            name: name.to_string(),
            dim,
            values,
            present,
        });
        self
    }

    /// Adds a dimension-1 column of class indices stored as f32.
    pub fn labels<L: Copy + Into<f64>>(self, name: &str, labels: &[L]) -> Self {
        let values = labels.iter().map(|&l| l.into() as f32).collect();
        self.column(name, 1, values)
    }

    /// Checks the columns and builds the data set.
    pub fn build(self) -> Result<MultimodalDataset> {
        let err = |m: String| Err(DataError::Dataset(m));
        let Some(first) = self.columns.first() else {
            return err("no columns".into());
        };
        let first_name = first.name.clone();
        let len = first.present.len();
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.is_empty() {
                return err(format!("column {i} has an empty name"));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return err(format!("column '{}' appears twice", c.name));
            }
            if c.dim == 0 {
                return err(format!("column '{}' has dimension 0", c.name));
            }
            if c.values.len() % c.dim != 0 {
                return err(format!(
                    "column '{}' holds {} values which is not a multiple of its dimension {}",
                    c.name,
                    c.values.len(),
                    c.dim
                ));
            }
            let n = c.values.len() / c.dim;
            if c.present.len() != n {
                return err(format!(
                    "column '{}' has {n} samples but {} presence flags",
                    c.name,
                    c.present.len()
                ));
            }
            if n != len {
                return err(format!(
                    "column '{}' has {n} samples but column '{first_name}' has {len}",
                    c.name
                ));
            }
            for (s, p) in c.present.iter().enumerate() {
                if *p {
                    if let Some(k) = c.values[s * c.dim..(s + 1) * c.dim]
                        .iter()
                        .position(|v| !v.is_finite())
                    {
                        return err(format!(
                            "column '{}' sample {s} value {k} is not finite",
                            c.name
                        ));
                    }
                }
            }
        }
        if let Some(s) = (0..len).find(|&s| self.columns.iter().all(|c| !c.present[s])) {
            return err(format!("sample {s} has every modality missing"));
        }
        Ok(MultimodalDataset {
            columns: self.columns,
            len,
        })
    }
}

impl MultimodalDataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// All columns in insertion order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Column names in insertion order.
    pub fn names(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.name.as_str()).collect()
    }

    /// The samples at `indices` (repeats allowed), in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<MultimodalDataset> {
        if let Some(&i) = indices.iter().find(|&&i| i >= self.len) {
            return Err(DataError::Dataset(format!(
                "index {i} is out of range for {} samples",
                self.len
            )));
        }
        let columns = self
            .columns
            .iter()
            .map(|c| {
                let mut values = Vec::with_capacity(indices.len() * c.dim);
                for &i in indices {
                    values.extend_from_slice(&c.values[i * c.dim..(i + 1) * c.dim]);
                }
                Column {
                    name: c.name.clone(),
                    dim: c.dim,
                    values,
                    present: indices.iter().map(|&i| c.present[i]).collect(),
                }
            })
            .collect();
        Ok(MultimodalDataset {
            columns,
            len: indices.len(),
        })
    }

    /// Shuffles the samples with `seed` and splits them into a first part of
    /// `round(len * fraction)` samples and the rest.
    pub fn split(
        &self,
        fraction: f64,
        seed: u64,
    ) -> Result<(MultimodalDataset, MultimodalDataset)> {
        let (first, rest) = split_rows(self.len, fraction, seed)?;
        Ok((self.subset(&first)?, self.subset(&rest)?))
    }

    /// A copy whose columns `names` are binarised once ([`crate::data::binarize`]): each
    /// value a Bernoulli draw with its grey level as the probability of a 1. Deterministic in
    /// `seed`; a fixed test set for models trained on dynamically binarised data.
    ///
    /// # Errors
    /// A name that is not a column, or a value outside `[0, 1]`.
    pub fn binarized(&self, names: &[&str], seed: u64) -> Result<MultimodalDataset> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut out = self.clone();
        for &name in names {
            let Some(c) = out.columns.iter_mut().find(|c| c.name == name) else {
                return Err(DataError::Dataset(format!("no column named '{name}'")));
            };
            crate::data::binarize(&mut c.values, &mut rng).map_err(|e| match e {
                DataError::Dataset(m) => DataError::Dataset(format!("column '{name}': {m}")),
                other => other,
            })?;
        }
        Ok(out)
    }

    /// A copy where a seeded `share` of the samples that have every modality keep them all
    /// (paired) and each of the others keeps one of its modalities, chosen uniformly (the
    /// others marked absent, values zeroed): weak supervision, as the MVAE paper measures it.
    /// Samples that already lack a modality keep one of those they have. The paired samples
    /// are `round(share * complete)` of the complete ones, the same for the same `seed`.
    ///
    /// # Errors
    /// A `share` outside `[0, 1]`.
    pub fn with_paired_share(&self, share: f64, seed: u64) -> Result<MultimodalDataset> {
        if !(0.0..=1.0).contains(&share) {
            return Err(DataError::Dataset(format!(
                "paired share {share} is not in [0, 1]"
            )));
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let complete: Vec<usize> = (0..self.len)
            .filter(|&s| self.columns.iter().all(|c| c.present[s]))
            .collect();
        let keep = ((complete.len() as f64) * share).round() as usize;
        let mut paired = vec![false; self.len];
        for &s in complete.choose_multiple(&mut rng, keep) {
            paired[s] = true;
        }
        let mut out = self.clone();
        for s in (0..self.len).filter(|&s| !paired[s]) {
            let have: Vec<usize> = (0..out.columns.len())
                .filter(|&c| out.columns[c].present[s])
                .collect();
            let Some(&kept) = have.choose(&mut rng) else {
                continue;
            };
            for (c, col) in out.columns.iter_mut().enumerate() {
                if c != kept {
                    col.present[s] = false;
                    col.values[s * col.dim..(s + 1) * col.dim].fill(0.0);
                }
            }
        }
        Ok(out)
    }

    /// A copy where each modality of each sample is dropped (marked absent,
    /// values zeroed) with the probability given for its column in `rates`
    /// (columns not named keep their presence). A sample never loses every
    /// modality: when the draws would drop all of its present modalities, one
    /// of them, chosen uniformly at random, is kept. Deterministic in `seed`.
    pub fn make_partial(&self, rates: &[(&str, f64)], seed: u64) -> Result<MultimodalDataset> {
        let mut per_column = vec![0.0; self.columns.len()];
        for &(name, rate) in rates {
            let Some(c) = self.columns.iter().position(|c| c.name == name) else {
                return Err(DataError::Dataset(format!("no column named '{name}'")));
            };
            if !(0.0..=1.0).contains(&rate) {
                return Err(DataError::Dataset(format!(
                    "drop rate {rate} for column '{name}' is not in [0, 1]"
                )));
            }
            per_column[c] = rate;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = self.clone();
        let mut was_present = Vec::with_capacity(self.columns.len());
        for s in 0..self.len {
            was_present.clear();
            for (c, col) in out.columns.iter_mut().enumerate() {
                let draw: f64 = rng.gen();
                if col.present[s] {
                    was_present.push(c);
                    if draw < per_column[c] {
                        col.present[s] = false;
                    }
                }
            }
            if out.columns.iter().all(|c| !c.present[s]) {
                if let Some(&keep) = was_present.choose(&mut rng) {
                    out.columns[keep].present[s] = true;
                }
            }
            for col in &mut out.columns {
                if !col.present[s] {
                    col.values[s * col.dim..(s + 1) * col.dim].fill(0.0);
                }
            }
        }
        Ok(out)
    }
}

/// The rows of [`MultimodalDataset::split`]: `0..len` shuffled with `seed`, cut into a first
/// part of `round(len * fraction)` rows and the rest (for callers that split before they
/// build a data set, such as a manifest whose normalisers are fitted on its training rows).
///
/// # Errors
/// A fraction outside `[0, 1]`.
pub fn split_rows(len: usize, fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
    if !(0.0..=1.0).contains(&fraction) {
        return Err(DataError::Dataset(format!(
            "split fraction {fraction} is not in [0, 1]"
        )));
    }
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let k = ((len as f64) * fraction).round() as usize;
    let rest = order.split_off(k);
    Ok((order, rest))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `with_paired_share`: the share of complete samples keeps every column, each other
    /// sample exactly one, its values untouched; seeded; 0 and 1 at the ends; a bad share is
    /// refused.
    #[test]
    fn paired_share_keeps_that_many_pairs_and_one_modality_elsewhere() {
        let data = toy(200);
        for share in [0.0, 0.1, 0.25, 1.0] {
            let out = data.with_paired_share(share, 4).unwrap();
            assert_eq!(out, data.with_paired_share(share, 4).unwrap(), "seeded");
            let kept = |s: usize| out.columns.iter().filter(|c| c.present[s]).count();
            let paired = (0..200).filter(|&s| kept(s) == 3).count();
            assert_eq!(paired, (200.0 * share).round() as usize, "share {share}");
            assert!((0..200).all(|s| kept(s) == 3 || kept(s) == 1));
            for (c, orig) in out.columns.iter().zip(&data.columns) {
                for s in 0..200 {
                    let v = &c.values[s * c.dim..(s + 1) * c.dim];
                    if c.present[s] {
                        assert_eq!(v, &orig.values[s * c.dim..(s + 1) * c.dim]);
                    } else {
                        assert!(v.iter().all(|&x| x == 0.0));
                    }
                }
            }
        }
        let other = data.with_paired_share(0.1, 5).unwrap();
        assert_ne!(other, data.with_paired_share(0.1, 4).unwrap());
        assert!(data.with_paired_share(1.5, 0).is_err());
    }

    pub(crate) fn toy(n: usize) -> MultimodalDataset {
        DatasetBuilder::new()
            .column("a", 2, (0..2 * n).map(|v| v as f32).collect())
            .column("b", 3, (0..3 * n).map(|v| -(v as f32)).collect())
            .labels("label", &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
            .build()
            .unwrap()
    }

    #[test]
    fn builder_accepts_and_reads_back() {
        let d = toy(5);
        assert_eq!(d.len(), 5);
        assert_eq!(d.names(), vec!["a", "b", "label"]);
        assert_eq!(d.column("a").unwrap().sample(2), Some(&[4.0, 5.0][..]));
        assert_eq!(d.column("label").unwrap().values()[3], 3.0);
        assert!(d.column("c").is_none());
        assert!(d.column("b").unwrap().sample(5).is_none());
    }

    #[test]
    fn builder_refuses_bad_columns() {
        let cases: Vec<(DatasetBuilder, &str)> = vec![
            (DatasetBuilder::new(), "no columns"),
            (
                DatasetBuilder::new()
                    .column("a", 1, vec![0.0; 3])
                    .column("b", 2, vec![0.0; 8]),
                "column 'b' has 4 samples but column 'a' has 3",
            ),
            (DatasetBuilder::new().column("a", 0, vec![]), "dimension 0"),
            (
                DatasetBuilder::new().column("a", 2, vec![0.0; 3]),
                "not a multiple",
            ),
            (DatasetBuilder::new().column("", 1, vec![0.0]), "empty name"),
            (
                DatasetBuilder::new()
                    .column("a", 1, vec![0.0])
                    .column("a", 1, vec![0.0]),
                "appears twice",
            ),
            (
                DatasetBuilder::new().column("a", 1, vec![f32::NAN]),
                "not finite",
            ),
            (
                DatasetBuilder::new().column_with_mask("a", 1, vec![0.0; 2], vec![true]),
                "presence flags",
            ),
            (
                DatasetBuilder::new()
                    .column_with_mask("a", 1, vec![0.0; 2], vec![true, false])
                    .column_with_mask("b", 1, vec![0.0; 2], vec![true, false]),
                "sample 1 has every modality missing",
            ),
        ];
        for (b, want) in cases {
            let e = b.build().unwrap_err();
            assert!(matches!(e, DataError::Dataset(_)));
            assert!(e.to_string().contains(want), "{e} / {want}");
        }
        // Non-finite values are fine where absent.
        DatasetBuilder::new()
            .column_with_mask("a", 1, vec![f32::NAN, 1.0], vec![false, true])
            .column("b", 1, vec![0.0; 2])
            .build()
            .unwrap();
    }

    #[test]
    fn subset_and_split() {
        let d = toy(10);
        let s = d.subset(&[3, 3, 0]).unwrap();
        assert_eq!(s.column("label").unwrap().values(), &[3.0, 3.0, 0.0]);
        assert!(d.subset(&[10]).is_err());
        let (a, b) = d.split(0.7, 1).unwrap();
        assert_eq!((a.len(), b.len()), (7, 3));
        let mut labels: Vec<f32> = a.column("label").unwrap().values().to_vec();
        labels.extend(b.column("label").unwrap().values());
        labels.sort_by(f32::total_cmp);
        assert_eq!(labels, (0..10).map(|v| v as f32).collect::<Vec<_>>());
        assert_eq!(d.split(0.7, 1).unwrap(), (a, b));
        assert!(d.split(1.5, 1).is_err());
    }

    #[test]
    fn make_partial_drops_at_rate_but_never_everything() {
        let d = toy(4000);
        let p = d
            .make_partial(&[("a", 0.5), ("b", 0.5), ("label", 1.0)], 7)
            .unwrap();
        let pa = p.column("a").unwrap().present();
        let pb = p.column("b").unwrap().present();
        let pl = p.column("label").unwrap().present();
        for s in 0..p.len() {
            assert!(pa[s] || pb[s] || pl[s]);
            if !pa[s] {
                assert_eq!(p.column("a").unwrap().sample(s).unwrap(), &[0.0, 0.0]);
            }
        }
        let kept_a = pa.iter().filter(|&&x| x).count() as f64 / 4000.0;
        // 0.5 dropped, plus back-fills for the quarter of samples losing both.
        assert!((kept_a - 0.5 - 0.25 / 3.0).abs() < 0.04, "{kept_a}");
        assert_eq!(
            p,
            d.make_partial(&[("a", 0.5), ("b", 0.5), ("label", 1.0)], 7)
                .unwrap()
        );
        assert_ne!(
            p,
            d.make_partial(&[("a", 0.5), ("b", 0.5), ("label", 1.0)], 8)
                .unwrap()
        );
        let all = d
            .make_partial(&[("a", 1.0), ("b", 1.0), ("label", 1.0)], 0)
            .unwrap();
        for s in 0..all.len() {
            let n = all.columns().iter().filter(|c| c.present()[s]).count();
            assert_eq!(n, 1);
        }
        assert!(d.make_partial(&[("zz", 0.5)], 0).is_err());
        assert!(d.make_partial(&[("a", -0.1)], 0).is_err());
        assert_eq!(d.make_partial(&[], 0).unwrap(), d);
    }
}
