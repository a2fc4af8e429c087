//! Matrix products on the CPU through gemm 0.19, whose AVX-512 kernels (chosen at run time, on
//! stable Rust) run about twice as fast as the AVX2 ones dfdx 0.13's gemm 0.15 is limited to.
//!
//! At the sizes of an MVAE step (batch 100, widths 64 to 784) gemm's own thread split does not
//! pay, so a large product is cut here into two column halves, one per rayon thread, each run
//! by gemm single-threaded (measured: 113-164 GFLOP/s against 67-144 with gemm's split).

use gemm::{gemm, Parallelism};

/// An operand of a product: a row-major matrix, or the transpose of one.
#[derive(Clone, Copy, Debug)]
pub struct Operand<'a> {
    /// The stored values, row-major.
    pub data: &'a [f32],
    /// `true`: the logical `(r, c)` matrix is stored as `(c, r)` row-major.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// A row-major matrix used as it is.
    pub fn plain(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: false,
        }
    }

    /// A row-major matrix used transposed.
    pub fn transposed(data: &'a [f32]) -> Self {
        Self {
            data,
            transposed: true,
        }
    }

    /// (column stride, row stride) of the logical `rows x cols` matrix.
    fn strides(&self, rows: usize, cols: usize) -> (isize, isize) {
        if self.transposed {
            (rows as isize, 1)
        } else {
            (1, cols as isize)
        }
    }
}

/// Products with fewer multiply-adds than this run on one thread: below it the hand-off costs
/// more than the second core gains (a 100 x 64 x 512 product ran at 88 GFLOP/s alone, 58 split).
const SPLIT_MIN_MACS: usize = 8 << 20;

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the two halves of a split product write disjoint columns of `dst` and only read the
// operands; the pointer is only used inside `rayon::join`, while the borrows it came from live.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `dst (m x n) = a (m x k) b (k x n)`, or `dst += a b` when `accumulate`; `dst` row-major.
///
/// # Panics
/// If a slice is shorter than its shape says (a bug in the caller: shapes are checked where
/// tensors come in).
pub fn matmul(
    dst: &mut [f32],
    shape: (usize, usize, usize),
    a: Operand<'_>,
    b: Operand<'_>,
    accumulate: bool,
) {
    scaled_matmul(dst, shape, a, b, 1.0, accumulate, true);
}

/// `dst (m x n) = s a b`, or `dst += s a b` when `accumulate`: [`matmul`] with the product
/// scaled by `s` on the way; `split`: whether a large product may be cut in two halves for
/// two threads (not where every thread already has a job of its own, as in Adam's).
///
/// # Panics
/// As [`matmul`].
pub fn scaled_matmul(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    a: Operand<'_>,
    b: Operand<'_>,
    s: f32,
    accumulate: bool,
    split: bool,
) {
    product(dst, (m, n, k), 0..m, a, b, s, accumulate, split);
}

/// Rows `rows` of the `m x n` product `s a b` into `dst` (`rows.len() x n`, row-major), or
/// added to it when `accumulate`; on this thread. For forming a large product block by block,
/// each block used while it is in the cache.
///
/// # Panics
/// As [`matmul`], and if `rows` reaches past `m`.
pub fn scaled_matmul_rows(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    rows: std::ops::Range<usize>,
    a: Operand<'_>,
    b: Operand<'_>,
    s: f32,
    accumulate: bool,
) {
    product(dst, (m, n, k), rows, a, b, s, accumulate, false);
}

/// Rows `r0..r1` of `s a b` into `dst`, whose first row is the product's row `r0`.
#[allow(clippy::too_many_arguments)]
fn product(
    dst: &mut [f32],
    (m, n, k): (usize, usize, usize),
    std::ops::Range { start: r0, end: r1 }: std::ops::Range<usize>,
    a: Operand<'_>,
    b: Operand<'_>,
    s: f32,
    accumulate: bool,
    split: bool,
) {
    assert!(r0 <= r1 && r1 <= m, "matmul: rows {r0}..{r1} of {m}");
    assert!(
        dst.len() >= (r1 - r0) * n,
        "matmul: dst holds {} < {} x {n}",
        dst.len(),
        r1 - r0
    );
    assert!(
        a.data.len() >= m * k,
        "matmul: lhs holds {} < {m} x {k}",
        a.data.len()
    );
    assert!(
        b.data.len() >= k * n,
        "matmul: rhs holds {} < {k} x {n}",
        b.data.len()
    );
    if r0 >= r1 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..(r1 - r0) * n].fill(0.0);
        }
        return;
    }
    let (a_cs, a_rs) = a.strides(m, k);
    let (b_cs, b_rs) = b.strides(k, n);
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let a_ptr = SendPtr(a.data.as_ptr() as *mut f32);
    let b_ptr = SendPtr(b.data.as_ptr() as *mut f32);
    // The block rows [i0, i1) x columns [c0, c1) of the product (dst's row 0 is row r0).
    let run = move |(i0, i1): (usize, usize), (c0, c1): (usize, usize)| {
        let (dst_ptr, a_ptr, b_ptr) = (dst_ptr, a_ptr, b_ptr);
        // SAFETY: the asserts above keep every index of the (m, n, k) product inside the
        // slices; the block of dst is written by this call only.
        unsafe {
            gemm(
                i1 - i0,
                c1 - c0,
                k,
                dst_ptr.0.add((i0 - r0) * n + c0),
                1,
                n as isize,
                accumulate,
                a_ptr.0.offset(i0 as isize * a_rs),
                a_cs,
                a_rs,
                b_ptr.0.offset(c0 as isize * b_cs),
                b_cs,
                b_rs,
                1.0,
                s,
                false,
                false,
                false,
                Parallelism::None,
            )
        }
    };
    // Cut the longer side of dst at a multiple of 16 (one AVX-512 register) so both halves
    // keep whole vectors, and each thread reads half of the operand along that side.
    let long = m.max(n);
    let whole = (r0, r1) == (0, m);
    if split
        && whole
        && m * n * k >= SPLIT_MIN_MACS
        && long >= 32
        && rayon::current_num_threads() > 1
    {
        let half = (long / 2).div_ceil(16) * 16;
        if m >= n {
            rayon::join(|| run((0, half), (0, n)), || run((half, m), (0, n)));
        } else {
            rayon::join(|| run((0, m), (0, half)), || run((0, m), (half, n)));
        }
    } else {
        run((r0, r1), (0, n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook triple loop, in f64.
    fn reference(
        m: usize,
        n: usize,
        k: usize,
        a: &[f32],
        at: bool,
        b: &[f32],
        bt: bool,
    ) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0f64;
                for p in 0..k {
                    let x = if at { a[p * m + i] } else { a[i * k + p] };
                    let y = if bt { b[j * k + p] } else { b[p * n + j] };
                    s += f64::from(x) * f64::from(y);
                }
                out[i * n + j] = s as f32;
            }
        }
        out
    }

    fn op(data: &[f32], transposed: bool) -> Operand<'_> {
        Operand { data, transposed }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0)
            .collect()
    }

    #[test]
    fn every_layout_and_the_split_match_the_triple_loop() {
        // 100 x 200 x 512 (split by columns) and 200 x 100 x 512 (by rows) are over the
        // split threshold; 7 x 5 x 3 is not.
        for &(m, n, k) in &[(7, 5, 3), (100, 200, 512), (200, 100, 512), (3, 1, 9)] {
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = values(m * k, 1);
                let b = values(k * n, 2);
                let want = reference(m, n, k, &a, at, &b, bt);
                let mut got = vec![f32::NAN; m * n];
                matmul(&mut got, (m, n, k), op(&a, at), op(&b, bt), false);
                let tol = 1e-4 * k as f32;
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - w).abs() <= tol, "{m}x{n}x{k} {at} {bt}: {g} vs {w}");
                }
                // accumulating adds the same product again
                matmul(&mut got, (m, n, k), op(&a, at), op(&b, bt), true);
                for (g, w) in got.iter().zip(&want) {
                    assert!((g - 2.0 * w).abs() <= 2.0 * tol);
                }
            }
        }
    }

    /// A block of rows, scaled, for every layout: the reference's rows times the scale, and
    /// accumulating adds them again; an empty block writes nothing.
    #[test]
    fn a_block_of_rows_matches_the_triple_loop() {
        let (m, n, k, s) = (10, 7, 5, 0.25f32);
        for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
            let (a, b) = (values(m * k, 3), values(k * n, 4));
            let want = reference(m, n, k, &a, at, &b, bt);
            let mut got = vec![f32::NAN; 6 * n];
            scaled_matmul_rows(&mut got, (m, n, k), 3..9, op(&a, at), op(&b, bt), s, false);
            scaled_matmul_rows(&mut got, (m, n, k), 3..9, op(&a, at), op(&b, bt), s, true);
            for (g, w) in got.iter().zip(&want[3 * n..9 * n]) {
                assert!((g - 2.0 * s * w).abs() <= 1e-5, "{at} {bt}: {g} vs {w}");
            }
            let mut untouched = vec![1.5f32; n];
            scaled_matmul_rows(
                &mut untouched,
                (m, n, k),
                4..4,
                op(&a, at),
                op(&b, bt),
                s,
                false,
            );
            assert_eq!(untouched, vec![1.5; n]);
        }
    }

    #[test]
    fn an_empty_inner_dimension_gives_zeros_or_leaves_dst() {
        let mut d = vec![3.0f32; 6];
        matmul(
            &mut d,
            (2, 3, 0),
            Operand::plain(&[]),
            Operand::plain(&[]),
            true,
        );
        assert_eq!(d, vec![3.0; 6]);
        matmul(
            &mut d,
            (2, 3, 0),
            Operand::plain(&[]),
            Operand::plain(&[]),
            false,
        );
        assert_eq!(d, vec![0.0; 6]);
    }
}
