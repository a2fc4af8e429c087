//! A paired multimodal data set: named columns of equal length, each with a presence mask.

use super::DataError;

/// One modality's values for every sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Modality name.
    pub name: String,
    /// Values per sample.
    pub dim: usize,
    /// `len * dim` values, row-major (anything where absent).
    pub values: Vec<f32>,
    /// Whether each sample has this modality.
    pub present: Vec<bool>,
}

/// Samples with several modalities, any of which may be missing per sample.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MultimodalDataset {
    len: usize,
    columns: Vec<Column>,
}

impl MultimodalDataset {
    /// Builds a data set from columns.
    ///
    /// # Errors
    /// No columns, differing lengths, a zero `dim`, or a sample with no modality.
    pub fn new(columns: Vec<Column>) -> Result<Self, DataError> {
        let invalid = |reason: String| DataError::Invalid {
            what: "data set".into(),
            reason,
        };
        let first = columns
            .first()
            .ok_or_else(|| invalid("has no columns".into()))?;
        let len = first.present.len();
        for c in &columns {
            if c.dim == 0 || c.values.len() != c.present.len() * c.dim || c.present.len() != len {
                return Err(invalid(format!(
                    "column {} has {} values and {} masks for dim {}, expected {len} samples",
                    c.name,
                    c.values.len(),
                    c.present.len(),
                    c.dim
                )));
            }
        }
        if let Some(i) = (0..len).find(|&i| columns.iter().all(|c| !c.present[i])) {
            return Err(invalid(format!("sample {i} has no modality")));
        }
        Ok(Self { len, columns })
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The columns.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The samples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Self {
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                dim: c.dim,
                values: indices
                    .iter()
                    .flat_map(|&i| &c.values[i * c.dim..(i + 1) * c.dim])
                    .copied()
                    .collect(),
                present: indices.iter().map(|&i| c.present[i]).collect(),
            })
            .collect();
        Self {
            len: indices.len(),
            columns,
        }
    }
}
