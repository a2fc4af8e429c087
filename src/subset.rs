//! Subsets of a model's modalities, as a bit set (modality `i` = bit `i`).

/// A set of modality indices (at most [`Subset::MAX_MODALITIES`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subset(pub u64);

impl Subset {
    /// The most modalities a model can have.
    pub const MAX_MODALITIES: usize = 64;

    /// All of the first `n` modalities.
    pub fn all(n: usize) -> Self {
        Subset(if n >= 64 { u64::MAX } else { (1u64 << n) - 1 })
    }

    /// Only modality `i`.
    pub fn single(i: usize) -> Self {
        Subset(1u64 << i)
    }

    /// The modalities in `indices`.
    pub fn of(indices: &[usize]) -> Self {
        Subset(indices.iter().fold(0, |s, &i| s | (1u64 << i)))
    }

    /// Whether modality `i` is in the set.
    pub fn contains(self, i: usize) -> bool {
        i < 64 && self.0 & (1u64 << i) != 0
    }

    /// Number of modalities in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The indices in increasing order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..64).filter(move |&i| self.contains(i))
    }
}
