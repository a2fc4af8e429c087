//! Baselines that imputation by the model is measured against, on a table of numbers with
//! missing cells: each missing cell filled with its column's mean ([`mean`]) or with the mean
//! of its `k` nearest rows' values ([`knn`], as scikit-learn's `KNNImputer`). They work on the
//! values as given; the imputation benchmark scales each column to `[0, 1]` first.

use crate::{Error, Result};

/// A table of `rows x cols` numbers, row after row, and which cells are observed.
#[derive(Clone, Debug, PartialEq)]
pub struct Cells {
    /// Columns per row.
    pub cols: usize,
    /// `rows x cols` values; a missing cell's value is ignored.
    pub values: Vec<f64>,
    /// Whether each cell is observed.
    pub observed: Vec<bool>,
}

impl Cells {
    /// A table of `cols` columns.
    ///
    /// # Errors
    /// [`Error::InvalidData`] where the values and flags differ in length, are not whole rows,
    /// or an observed value is not finite.
    pub fn new(cols: usize, values: Vec<f64>, observed: Vec<bool>) -> Result<Self> {
        let bad = |reason: String| Error::InvalidData {
            what: "table".into(),
            reason,
        };
        if cols == 0 || values.len() != observed.len() || !values.len().is_multiple_of(cols) {
            return Err(bad(format!(
                "{} values and {} flags are not whole rows of {cols} columns",
                values.len(),
                observed.len()
            )));
        }
        if let Some(i) = (0..values.len()).find(|&i| observed[i] && !values[i].is_finite()) {
            return Err(bad(format!(
                "row {} column {} is observed but {}",
                i / cols + 1,
                i % cols + 1,
                values[i]
            )));
        }
        Ok(Self {
            cols,
            values,
            observed,
        })
    }

    /// Rows in the table.
    pub fn rows(&self) -> usize {
        self.values.len() / self.cols
    }

    /// The mean of each column's observed cells (0 where a column has none).
    pub fn column_means(&self) -> Vec<f64> {
        (0..self.cols)
            .map(|c| {
                let (s, n) = (0..self.rows())
                    .map(|r| r * self.cols + c)
                    .filter(|&i| self.observed[i])
                    .fold((0.0, 0usize), |(s, n), i| (s + self.values[i], n + 1));
                if n == 0 {
                    0.0
                } else {
                    s / n as f64
                }
            })
            .collect()
    }
}

/// The table with every missing cell set to its column's observed mean; observed cells pass
/// through unchanged.
pub fn mean(cells: &Cells) -> Vec<f64> {
    let means = cells.column_means();
    fill(cells, |_, c| means[c])
}

/// The table with every missing cell `(r, c)` set to the mean of column `c` over the `k` rows
/// nearest to `r` among those that observe `c` ([`neighbours`]); a cell without any
/// neighbour gets its column's mean (as scikit-learn's `KNNImputer` does). Observed cells pass
/// through.
pub fn knn(cells: &Cells, k: usize) -> Vec<f64> {
    let means = cells.column_means();
    let cols = cells.cols;
    let mut out = cells.values.clone();
    for r in 0..cells.rows() {
        let missing: Vec<usize> = (0..cols)
            .filter(|&c| !cells.observed[r * cols + c])
            .collect();
        if missing.is_empty() {
            continue;
        }
        let dist = distances(cells, r);
        for c in missing {
            let near = nearest(&dist, k, |o| cells.observed[o * cols + c]);
            out[r * cols + c] = if near.is_empty() {
                means[c]
            } else {
                near.iter()
                    .map(|&o| cells.values[o * cols + c])
                    .sum::<f64>()
                    / near.len() as f64
            };
        }
    }
    out
}

/// The `k` rows nearest to row `r` among those `donor` accepts, nearest first (ties to the
/// earlier row), by scikit-learn's `nan_euclidean` distance: the Euclidean distance over the
/// columns both rows observe, scaled by `sqrt(cols / shared)`. Rows that share no observed
/// column with `r` are not neighbours.
pub fn neighbours(cells: &Cells, r: usize, k: usize, donor: impl Fn(usize) -> bool) -> Vec<usize> {
    nearest(&distances(cells, r), k, donor)
}

/// Row `r`'s distance to every other row (`None` to itself and to rows sharing no column).
fn distances(cells: &Cells, r: usize) -> Vec<Option<f64>> {
    (0..cells.rows())
        .map(|o| (o != r).then(|| nan_euclidean(cells, r, o)).flatten())
        .collect()
}

/// The `k` nearest of the rows with a distance that `donor` accepts.
fn nearest(dist: &[Option<f64>], k: usize, donor: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut order: Vec<(f64, usize)> = dist
        .iter()
        .enumerate()
        .filter_map(|(o, d)| Some((((*d)?), o)))
        .filter(|&(_, o)| donor(o))
        .collect();
    order.sort_by(|a, b| a.0.partial_cmp(&b.0).expect("finite").then(a.1.cmp(&b.1)));
    order.into_iter().take(k).map(|(_, o)| o).collect()
}

/// `sqrt(cols / shared * sum over shared columns of (a - b)^2)`, `None` if no column is
/// observed in both rows.
fn nan_euclidean(cells: &Cells, a: usize, b: usize) -> Option<f64> {
    let cols = cells.cols;
    let (mut sum, mut shared) = (0.0, 0usize);
    for c in 0..cols {
        let (i, j) = (a * cols + c, b * cols + c);
        if cells.observed[i] && cells.observed[j] {
            let d = cells.values[i] - cells.values[j];
            sum += d * d;
            shared += 1;
        }
    }
    (shared > 0).then(|| (sum * cols as f64 / shared as f64).sqrt())
}

/// The table with each missing cell `(r, c)` set to `f(r, c)`.
fn fill(cells: &Cells, f: impl Fn(usize, usize) -> f64) -> Vec<f64> {
    let cols = cells.cols;
    cells
        .values
        .iter()
        .zip(&cells.observed)
        .enumerate()
        .map(|(i, (&v, &o))| if o { v } else { f(i / cols, i % cols) })
        .collect()
}

/// The root mean squared error over the cells `scored` marks, of `filled` against `truth`
/// (`NaN` where none is marked).
pub fn rmse(filled: &[f64], truth: &[f64], scored: &[bool]) -> f64 {
    let (s, n) = filled
        .iter()
        .zip(truth)
        .zip(scored)
        .filter(|(_, &m)| m)
        .fold((0.0, 0usize), |(s, n), ((a, b), _)| {
            (s + (a - b) * (a - b), n + 1)
        });
    (s / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four rows of two columns, by hand.
    fn small() -> Cells {
        Cells::new(
            2,
            vec![1.0, 10.0, 2.0, 0.0, 3.0, 30.0, 0.0, 40.0],
            vec![true, true, true, false, true, true, false, true],
        )
        .unwrap()
    }

    #[test]
    fn mean_fills_with_the_observed_column_mean() {
        let out = mean(&small());
        // column 0 observed: 1, 2, 3 -> 2; column 1: 10, 30, 40 -> 80 / 3
        assert_eq!(out, vec![1.0, 10.0, 2.0, 80.0 / 3.0, 3.0, 30.0, 2.0, 40.0]);
    }

    /// Row 1 (column 0 = 2) is nearest rows 0 and 2 (distance sqrt(2) each); with k = 1 the
    /// tie goes to the earlier row. Row 3 (column 1 = 40) is nearest row 2 (30), then row
    /// 0 (10): k = 2 averages 1 and 3.
    #[test]
    fn knn_averages_the_nearest_rows_by_nan_euclidean_distance() {
        let cells = small();
        assert_eq!(
            knn(&cells, 1),
            vec![1.0, 10.0, 2.0, 10.0, 3.0, 30.0, 3.0, 40.0]
        );
        assert_eq!(
            knn(&cells, 2),
            vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 2.0, 40.0]
        );
        // k beyond the donors: all of those sharing a column (row 3 shares none with row 1).
        assert_eq!(knn(&cells, 10)[3], 20.0);
        assert_eq!(knn(&cells, 10)[6], 2.0);
    }

    /// The distance scales the shared columns' sum to the whole row, as scikit-learn's.
    #[test]
    fn nan_euclidean_scales_by_the_shared_columns() {
        let cells = Cells::new(
            3,
            vec![0.0, 3.0, 9.0, 4.0, 0.0, 0.0],
            vec![true, true, false, true, false, true],
        )
        .unwrap();
        // shared: column 0 only: sqrt(3 / 1 * 16)
        assert!((nan_euclidean(&cells, 0, 1).unwrap() - 48f64.sqrt()).abs() < 1e-12);
        let none = Cells::new(2, vec![1.0, 0.0, 0.0, 1.0], vec![true, false, false, true]).unwrap();
        assert_eq!(nan_euclidean(&none, 0, 1), None);
        // no neighbour sharing a column: the column mean
        assert_eq!(knn(&none, 5), mean(&none));
    }

    /// Neighbours come nearest first, among the donors only.
    #[test]
    fn neighbours_are_ordered_and_filtered() {
        let cells = small();
        // From row 3: row 2 (sqrt(200)), row 0 (sqrt(1800)); row 1 shares no column.
        assert_eq!(neighbours(&cells, 3, 5, |_| true), vec![2, 0]);
        assert_eq!(neighbours(&cells, 3, 5, |o| o != 2), vec![0]);
        assert_eq!(neighbours(&cells, 3, 1, |_| true), vec![2]);
    }

    #[test]
    fn rmse_counts_only_the_scored_cells() {
        let got = rmse(&[1.0, 5.0, 3.0], &[0.0, 0.0, 0.0], &[true, false, true]);
        assert!((got - 5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert!(Cells::new(2, vec![1.0; 3], vec![true; 3]).is_err());
        assert!(Cells::new(2, vec![1.0; 4], vec![true; 2]).is_err());
        let e = Cells::new(2, vec![1.0, f64::NAN], vec![true, true]).unwrap_err();
        assert!(e.to_string().contains("column 2"), "{e}");
        assert!(Cells::new(2, vec![1.0, f64::NAN], vec![true, false]).is_ok());
    }
}
