//! Opt-in timers for the phases of a training step on the CPU (cargo feature `profile`), so
//! that where a step's time goes can be measured by anyone with one command:
//!
//! ```text
//! cargo bench --bench step_loop --features profile
//! ```
//!
//! Each phase's time is summed over all threads and calls until [`take`] reads and clears the
//! totals. Without the feature a [`Timer`] is an empty value, [`Timer::stop`] does nothing and
//! [`take`] returns zeros, so the calls in the kernels cost nothing in normal builds.

use std::time::Duration;

/// A phase of a training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// `Trainer::step`, start to end (wall time).
    Step,
    /// The parts' forward and backward passes, from handing them out until all are back
    /// (wall time).
    Parts,
    /// One part's forward pass (the loss), summed over the parts.
    PartForward,
    /// One part's backward pass, summed over the parts.
    PartBackward,
    /// The Adam update, with the batch's gradients formed from the parts' (wall time).
    Update,
    /// A dense layer's host copy of its weight (forward).
    WeightCopy,
    /// A dense layer's forward product.
    ForwardProduct,
    /// Laying the transposed forward product out row-major, bias added.
    Transpose,
    /// Bias and activation, and the stored derivative (forward).
    Activation,
    /// `dz = dy * act'(z)` and the bias gradient (backward).
    OutputGradient,
    /// The gradient buffers of a dense layer's input and weight, as dfdx allocates them
    /// (zeroed).
    GradientAlloc,
    /// `dx += dz W` (backward).
    InputProduct,
    /// `dW += dz^T x`: in the backward pass, or in the update where the weight gradients are
    /// deferred (training in parts on the CPU, `kernels::deferred`).
    WeightProduct,
    /// Adam's pass over a parameter's host mirror and moments (`kernels::adam`).
    AdamPass,
    /// Writing an updated parameter from its host mirror (`kernels::mirror`).
    ParamWrite,
}

impl Phase {
    /// Every phase, in the order of [`take`]'s result.
    pub const ALL: [Phase; 15] = [
        Phase::Step,
        Phase::Parts,
        Phase::PartForward,
        Phase::PartBackward,
        Phase::Update,
        Phase::WeightCopy,
        Phase::ForwardProduct,
        Phase::Transpose,
        Phase::Activation,
        Phase::OutputGradient,
        Phase::GradientAlloc,
        Phase::InputProduct,
        Phase::WeightProduct,
        Phase::AdamPass,
        Phase::ParamWrite,
    ];

    /// A short snake-case name (for JSON keys).
    pub fn name(self) -> &'static str {
        match self {
            Phase::Step => "step",
            Phase::Parts => "parts",
            Phase::PartForward => "part_forward",
            Phase::PartBackward => "part_backward",
            Phase::Update => "update",
            Phase::WeightCopy => "weight_copy",
            Phase::ForwardProduct => "forward_product",
            Phase::Transpose => "transpose",
            Phase::Activation => "activation",
            Phase::OutputGradient => "output_gradient",
            Phase::GradientAlloc => "gradient_alloc",
            Phase::InputProduct => "input_product",
            Phase::WeightProduct => "weight_product",
            Phase::AdamPass => "adam_pass",
            Phase::ParamWrite => "param_write",
        }
    }
}

/// Whether this build times phases (the `profile` feature).
pub const ENABLED: bool = cfg!(feature = "profile");

#[cfg(feature = "profile")]
static TOTALS: [std::sync::atomic::AtomicU64; Phase::ALL.len()] =
    [const { std::sync::atomic::AtomicU64::new(0) }; Phase::ALL.len()];

/// A running timer; [`Timer::stop`] adds its time to a phase.
#[must_use = "a timer only counts when stopped"]
pub struct Timer {
    #[cfg(feature = "profile")]
    start: std::time::Instant,
}

/// Starts a timer.
#[inline]
pub fn start() -> Timer {
    Timer {
        #[cfg(feature = "profile")]
        start: std::time::Instant::now(),
    }
}

impl Timer {
    /// Adds the time since [`start`] to `phase`'s total.
    #[inline]
    pub fn stop(self, phase: Phase) {
        #[cfg(feature = "profile")]
        {
            let ns = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
            TOTALS[phase as usize].fetch_add(ns, std::sync::atomic::Ordering::Relaxed);
        }
        #[cfg(not(feature = "profile"))]
        let _ = phase;
    }
}

/// The total time of every phase since the last call (all zero without the feature), and
/// the totals cleared.
pub fn take() -> Vec<(Phase, Duration)> {
    Phase::ALL
        .iter()
        .map(|&p| {
            #[cfg(feature = "profile")]
            let ns = TOTALS[p as usize].swap(0, std::sync::atomic::Ordering::Relaxed);
            #[cfg(not(feature = "profile"))]
            let ns = 0;
            (p, Duration::from_nanos(ns))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The totals are indexed by discriminant: `ALL` must list the phases in that order.
    #[test]
    fn all_lists_every_phase_in_discriminant_order() {
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i, "{p:?}");
        }
        let names: std::collections::HashSet<_> = Phase::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names.len(), Phase::ALL.len());
    }

    /// With the feature a stopped timer's time is in its phase's total; without it, nothing
    /// is counted. (Other tests may train at the same time, so only lower bounds hold.)
    #[test]
    fn a_stopped_timer_counts_only_with_the_feature() {
        let t = start();
        std::thread::sleep(Duration::from_millis(2));
        t.stop(Phase::Update);
        let got = take();
        assert_eq!(got.len(), Phase::ALL.len());
        let update = got.iter().find(|(p, _)| *p == Phase::Update).unwrap().1;
        if ENABLED {
            assert!(update >= Duration::from_millis(2), "{update:?}");
        } else {
            assert!(got.iter().all(|(_, d)| d.is_zero()));
        }
    }
}
