//! Seedable shuffling batches over a [`MultimodalDataset`], as host buffers
//! ([`HostBatch`]) that the model code turns into tensors.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::dataset::MultimodalDataset;
use crate::data::error::{DataError, Result};

/// One modality of a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostColumn {
    /// Name of the modality.
    pub name: String,
    /// Values per sample.
    pub dim: usize,
    /// `batch * dim` values, sample after sample.
    pub values: Vec<f32>,
    /// Whether each sample has the modality.
    pub present: Vec<bool>,
}

/// A batch of samples with every modality.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HostBatch {
    /// Positions of the samples in the data set.
    pub indices: Vec<usize>,
    /// One entry per column, in the data set's column order.
    pub columns: Vec<HostColumn>,
}

impl HostBatch {
    /// Number of samples in the batch.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&HostColumn> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// How to cut a data set into batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOptions {
    /// Samples per batch (at least 1).
    pub batch_size: usize,
    /// Whether to shuffle (with `seed`) or keep data set order.
    pub shuffle: bool,
    /// Shuffle seed; use a different one per epoch.
    pub seed: u64,
    /// Whether to drop a last batch smaller than `batch_size`.
    pub drop_last: bool,
}

impl BatchOptions {
    /// Shuffled batches of `batch_size` with `seed`, keeping the last partial batch.
    pub fn new(batch_size: usize, seed: u64) -> Self {
        BatchOptions {
            batch_size,
            shuffle: true,
            seed,
            drop_last: false,
        }
    }
}

/// Iterator over the batches of one pass; also fills caller-owned batches
/// through [`Batches::next_into`] to reuse their buffers.
#[derive(Debug, Clone)]
pub struct Batches<'a> {
    data: &'a MultimodalDataset,
    order: Vec<usize>,
    position: usize,
    batch_size: usize,
    end: usize,
}

impl MultimodalDataset {
    /// Batches over one pass of the data set; same options, same batches.
    pub fn batches(&self, options: &BatchOptions) -> Result<Batches<'_>> {
        if options.batch_size == 0 {
            return Err(DataError::Dataset("batch size must be at least 1".into()));
        }
        let mut order: Vec<usize> = (0..self.len()).collect();
        if options.shuffle {
            order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(options.seed));
        }
        let end = if options.drop_last {
            self.len() - self.len() % options.batch_size
        } else {
            self.len()
        };
        Ok(Batches {
            data: self,
            order,
            position: 0,
            batch_size: options.batch_size,
            end,
        })
    }
}

impl Batches<'_> {
    /// Fills `batch` with the next batch, reusing its buffers; false when done.
    pub fn next_into(&mut self, batch: &mut HostBatch) -> bool {
        if self.position >= self.end {
            return false;
        }
        let stop = (self.position + self.batch_size).min(self.end);
        let picked = &self.order[self.position..stop];
        self.position = stop;
        batch.indices.clear();
        batch.indices.extend_from_slice(picked);
        let columns = self.data.columns();
        batch
            .columns
            .resize_with(columns.len(), HostColumn::default);
        for (out, col) in batch.columns.iter_mut().zip(columns) {
            if out.name != col.name() {
                out.name.clear();
                out.name.push_str(col.name());
            }
            out.dim = col.dim();
            out.values.clear();
            out.present.clear();
            for &i in picked {
                out.values
                    .extend_from_slice(&col.values()[i * col.dim()..(i + 1) * col.dim()]);
                out.present.push(col.present()[i]);
            }
        }
        true
    }
}

impl Iterator for Batches<'_> {
    type Item = HostBatch;

    fn next(&mut self) -> Option<HostBatch> {
        let mut b = HostBatch::default();
        self.next_into(&mut b).then_some(b)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self
            .end
            .saturating_sub(self.position)
            .div_ceil(self.batch_size);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Batches<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::dataset::tests::toy;

    #[test]
    fn covers_every_sample_once_and_is_seeded() {
        let d = toy(10);
        let it = d.batches(&BatchOptions::new(4, 3)).unwrap();
        assert_eq!(it.len(), 3);
        let batches: Vec<HostBatch> = it.collect();
        assert_eq!(
            batches.iter().map(HostBatch::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut seen: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
        assert_ne!(seen, (0..10).collect::<Vec<_>>());
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        let again: Vec<HostBatch> = d.batches(&BatchOptions::new(4, 3)).unwrap().collect();
        assert_eq!(again, batches);
        let other: Vec<HostBatch> = d.batches(&BatchOptions::new(4, 4)).unwrap().collect();
        assert_ne!(other, batches);
        let b = &batches[0];
        let i = b.indices[1];
        let a = b.column("a").unwrap();
        assert_eq!((a.dim, a.values.len(), a.present.len()), (2, 8, 4));
        assert_eq!(&a.values[2..4], d.column("a").unwrap().sample(i).unwrap());
        assert_eq!(b.column("label").unwrap().values[1], (i % 10) as f32);
    }

    #[test]
    fn drop_last_ordered_and_reuse() {
        let d = toy(10).make_partial(&[("a", 1.0)], 0).unwrap();
        let opts = BatchOptions {
            batch_size: 4,
            shuffle: false,
            seed: 0,
            drop_last: true,
        };
        let mut it = d.batches(&opts).unwrap();
        assert_eq!(it.len(), 2);
        let mut b = HostBatch::default();
        assert!(it.next_into(&mut b));
        assert_eq!(b.indices, vec![0, 1, 2, 3]);
        assert_eq!(b.column("a").unwrap().present, vec![false; 4]);
        assert_eq!(b.column("b").unwrap().present, vec![true; 4]);
        let ptr = b.columns[1].values.as_ptr();
        assert!(it.next_into(&mut b));
        assert_eq!(b.indices, vec![4, 5, 6, 7]);
        assert_eq!(b.columns[1].values.as_ptr(), ptr);
        assert!(!it.next_into(&mut b));
        assert!(d.batches(&BatchOptions::new(0, 0)).is_err());
        let big = d.batches(&BatchOptions::new(100, 0)).unwrap();
        assert_eq!(big.count(), 1);
    }
}
