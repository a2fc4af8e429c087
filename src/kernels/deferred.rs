//! Deferred weight gradients: during a training part's backward pass the CPU dense kernel keeps
//! the factors of its weight gradient, `dW = dz^T x`, instead of forming it, and the optimizer
//! forms it once for the whole batch, right before Adam reads it.
//!
//! Why: a batch trained in parts on several threads ([`super::Kernels::training_parts`]) would
//! otherwise form each weight's gradient once per part, each in a freshly zeroed buffer of the
//! weight's size, then blend the parts' buffers in a pass of its own. From the factors, the
//! products of all parts are summed straight into one buffer kept between steps, inside the
//! parameter's Adam job: on whichever core is free, and read by Adam from that core's cache.
//!
//! Deferral is on only inside [`collect`], which the trainer wraps around each part: every
//! other backward pass (a user's own, the tests against dfdx's ops) puts weight gradients into
//! dfdx's gradient store as usual. Inside it, a weight's gradient must come from dense layers
//! only (true of every model this library builds: a weight matrix is read by one dense layer,
//! an embedding's by one gather), since the part's store then holds none for it.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::gemm::{scaled_matmul_rows, Operand};
use crate::profile::{self, Phase};

/// The factors of one dense layer's weight gradient over the rows of one part:
/// `dW = dz^T x`.
#[derive(Clone, Debug)]
pub struct WeightFactors {
    /// The weight's key ([`super::Kernels::param_key`]).
    pub(crate) weight: usize,
    /// Rows of the part (the product's inner dimension).
    pub(crate) rows: usize,
    /// `dz`, `rows x outputs`, row-major: the gradient of the layer's pre-activation.
    pub(crate) dz: Vec<f32>,
    /// `x`, `rows x inputs`, row-major: the layer's input.
    pub(crate) x: Vec<f32>,
}

/// Where the dense layers recorded inside [`collect`] leave their factors.
pub(crate) type Sink = Arc<Mutex<Vec<WeightFactors>>>;

thread_local! {
    /// The sink of the innermost [`collect`] running on this thread.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Runs `f` (one part's forward and backward pass) with deferral on for the dense layers it
/// records on this thread; returns `f`'s result and the factors their backward passes left.
///
/// Scoped: a part that rayon runs nested inside another on the same thread (while the outer
/// one waits in a split product) gets its own sink, and the outer one's is restored after.
pub(crate) fn collect<R>(f: impl FnOnce() -> R) -> (R, Vec<WeightFactors>) {
    /// Puts the enclosing sink back, also when `f` panics.
    struct Restore(Option<Sink>);
    impl Drop for Restore {
        fn drop(&mut self) {
            SINK.with(|s| *s.borrow_mut() = self.0.take());
        }
    }
    let sink = Sink::default();
    let _restore = Restore(SINK.with(|s| s.replace(Some(sink.clone()))));
    let out = f();
    let factors = std::mem::take(&mut *sink.lock().unwrap_or_else(PoisonError::into_inner));
    (out, factors)
}

/// The sink a dense layer recorded now on this thread leaves its weight's factors in, if
/// deferral is on.
pub(crate) fn sink() -> Option<Sink> {
    SINK.with(|s| s.borrow().clone())
}

/// The factors of a batch's parts, given as `(share, factors)` per part, grouped by weight key,
/// each with its part's share, in the parts' order: what [`weight_gradient`] takes per weight.
pub fn by_weight(
    parts: impl IntoIterator<Item = (f32, Vec<WeightFactors>)>,
) -> BTreeMap<usize, Vec<(f32, WeightFactors)>> {
    let mut grouped: BTreeMap<usize, Vec<(f32, WeightFactors)>> = BTreeMap::new();
    for (share, factors) in parts {
        for f in factors {
            grouped.entry(f.weight).or_default().push((share, f));
        }
    }
    grouped
}

/// `dw = sum_i share_i dz_i^T x_i` over `factors`, the `(share, factors)` of one weight
/// (`dw` is `outputs x inputs`, overwritten; zeros if no factor has rows): one product per
/// factor, each scaled by its share inside gemm and added to the one before.
///
/// # Panics
/// If the factors disagree with each other or with `dw` in shape.
#[cfg(test)] // what the tests check the blocked update against
pub(crate) fn weight_gradient(dw: &mut [f32], factors: &[(f32, WeightFactors)]) {
    let outputs = factors
        .iter()
        .find(|(_, f)| f.rows > 0)
        .map_or(0, |(_, f)| f.dz.len() / f.rows);
    if outputs == 0 {
        dw.fill(0.0);
        return;
    }
    assert_eq!(dw.len() % outputs, 0, "weight gradient: buffer size");
    weight_gradient_rows(dw, factors, 0..outputs, dw.len() / outputs);
}

/// Rows `rows` (outputs) of [`weight_gradient`] into `dw` (`rows.len() x inputs`): the
/// weight's gradient block by block, each block used (by Adam) while it is in the cache.
///
/// # Panics
/// If the factors disagree with each other, with `inputs` or with `dw` in shape.
pub fn weight_gradient_rows(
    dw: &mut [f32],
    factors: &[(f32, WeightFactors)],
    rows: std::ops::Range<usize>,
    inputs: usize,
) {
    assert_eq!(
        dw.len(),
        rows.len() * inputs,
        "weight gradient: buffer size"
    );
    let mut with_rows = factors.iter().filter(|(_, f)| f.rows > 0).peekable();
    let Some((_, first)) = with_rows.peek() else {
        dw.fill(0.0);
        return;
    };
    let outputs = first.dz.len() / first.rows;
    let timer = profile::start();
    for (i, (share, f)) in with_rows.enumerate() {
        assert_eq!(
            (f.dz.len(), f.x.len()),
            (f.rows * outputs, f.rows * inputs),
            "weight gradient: factors of different layers"
        );
        scaled_matmul_rows(
            dw,
            (outputs, inputs, f.rows),
            rows.clone(),
            Operand::transposed(&f.dz),
            Operand::plain(&f.x),
            *share,
            i > 0,
        );
    }
    timer.stop(Phase::WeightProduct);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn factors(
        weight: usize,
        rows: usize,
        outputs: usize,
        inputs: usize,
        seed: usize,
    ) -> WeightFactors {
        let value = |i: usize| ((i * 37 + seed * 11) % 19) as f32 / 7.0 - 1.3;
        WeightFactors {
            weight,
            rows,
            dz: (0..rows * outputs).map(value).collect(),
            x: (0..rows * inputs).map(|i| value(i + 5)).collect(),
        }
    }

    /// The gradient is the share-weighted sum of the parts' `dz^T x`, computed here as a
    /// triple loop in f64; a part without rows adds nothing.
    #[test]
    fn factors_give_the_weighted_sum_of_the_parts() {
        let id = 7;
        let (outputs, inputs) = (5, 3);
        let parts = vec![
            (0.2, factors(id, 0, outputs, inputs, 3)),
            (0.3, factors(id, 4, outputs, inputs, 1)),
            (0.7, factors(id, 6, outputs, inputs, 2)),
        ];
        let mut dw = vec![f32::NAN; outputs * inputs];
        weight_gradient(&mut dw, &parts);
        for o in 0..outputs {
            for i in 0..inputs {
                let want: f64 = parts
                    .iter()
                    .map(|(s, f)| {
                        (0..f.rows)
                            .map(|r| {
                                f64::from(f.dz[r * outputs + o]) * f64::from(f.x[r * inputs + i])
                            })
                            .sum::<f64>()
                            * f64::from(*s)
                    })
                    .sum();
                let got = f64::from(dw[o * inputs + i]);
                assert!(
                    (got - want).abs() < 1e-5,
                    "dW[{o}, {i}] = {got}, want {want}"
                );
            }
        }
    }

    /// Nested scopes each get their own factors; outside every scope there is no sink.
    #[test]
    fn scopes_nest_and_end() {
        assert!(sink().is_none());
        // what a dense layer's backward pass does: leave factors in the current sink
        let leave = |rows| {
            sink()
                .unwrap()
                .lock()
                .unwrap()
                .push(factors(7, rows, 1, 1, 0))
        };
        let ((inner, ()), outer) = collect(|| {
            leave(1);
            let inner = collect(|| leave(2));
            leave(3);
            (inner.1, inner.0)
        });
        assert_eq!(inner.iter().map(|f| f.rows).collect::<Vec<_>>(), [2]);
        assert_eq!(outer.iter().map(|f| f.rows).collect::<Vec<_>>(), [1, 3]);
        assert!(sink().is_none());
    }
}
