//! Dense f32 kernels under the hand-written LSTM (`lstm.rs`): a matrix
//! product over strided views of slices, done by the `gemm` crate (what
//! candle's own CPU matmul calls), and the element-wise gate loops of one
//! LSTM step, forward and backward, compiled for AVX-512 or AVX2 when the
//! CPU has them (runtime detection; the build targets baseline x86-64).
//!
//! This is the one module allowed `unsafe`: `gemm` takes raw pointers, and
//! a function compiled for extra CPU features may only be called once the
//! CPU is known to have them. Every view is bounds-checked before the
//! pointer is taken. Owns no model logic.
#![allow(unsafe_code)]

/// A read-only matrix inside a slice: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Debug, Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major `rows × cols` matrix at the start of `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose, as a view of the same elements.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

/// Highest index a view touches, plus one (0 for an empty view).
fn span(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

/// `dst = a · b` (or `dst += a · b` when `accumulate`), `dst` row-major
/// `a.rows × b.cols`. Single-threaded: callers parallelise over batch rows.
///
/// # Panics
/// When the shapes disagree or a view reaches past its slice (a bug in the
/// caller, never a data condition).
pub fn matmul(dst: &mut [f32], a: Mat<'_>, b: Mat<'_>, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "matmul: inner dimensions differ");
    assert!(dst.len() >= m * n, "matmul: destination too small");
    assert!(
        span(a.rows, a.cols, a.rs, a.cs) <= a.data.len()
            && span(b.rows, b.cols, b.rs, b.cs) <= b.data.len(),
        "matmul: a view reaches past its slice"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    let stride = |s: usize| isize::try_from(s).unwrap_or(isize::MAX);
    // SAFETY: every element gemm reads or writes lies inside its slice:
    // `dst` holds at least m·n elements and is written row-major (row
    // stride n, column stride 1, so no two (r, c) share an element); the
    // spans of `a` and `b` were checked against their slices above, and the
    // strides fit in isize because they index inside a slice. `dst` is a
    // unique borrow, so it overlaps neither input. Parallelism::None keeps
    // gemm on this thread.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            stride(n),
            accumulate,
            a.data.as_ptr(),
            stride(a.cs),
            stride(a.rs),
            b.data.as_ptr(),
            stride(b.cs),
            stride(b.rs),
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// e^x for x in [-87, 88] (clamped outside) to about 2 ulp: Cephes' expf
/// polynomial, branch-free so the loops calling it vectorise.
#[inline(always)]
fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let p = p * r * r + r + 1.0;
    // 2^n from the bits of n + 127 placed in the exponent field.
    let pow2 = f32::from_bits((n + (127.0 + 8_388_608.0)).to_bits() << 23);
    p * pow2
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[inline(always)]
fn tanh(x: f32) -> f32 {
    2.0 / (1.0 + exp(-2.0 * x)) - 1.0
}

/// One LSTM step for `rows` batch rows, after the gate pre-activations
/// (order i, f, g, o, PyTorch's) are in `gates` (`rows × 4h`). Replaces them
/// by the activations, and writes the cell state `c`, `tanh(c)` and the
/// hidden state `h` (`rows × h` each). `c_prev` is `None` at the first step.
#[inline(always)]
fn cell_forward_generic(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
    hidden: usize,
) {
    for (r, g4) in gates.chunks_exact_mut(4 * hidden).enumerate() {
        let span = r * hidden..(r + 1) * hidden;
        let (gi, rest) = g4.split_at_mut(hidden);
        let (gf, rest) = rest.split_at_mut(hidden);
        let (gg, go) = rest.split_at_mut(hidden);
        let (c, tc, h_out) = (
            &mut c[span.clone()],
            &mut tc[span.clone()],
            &mut h_out[span.clone()],
        );
        for j in 0..hidden {
            let i = sigmoid(gi[j]);
            let f = sigmoid(gf[j]);
            let g = tanh(gg[j]);
            let o = sigmoid(go[j]);
            gi[j] = i;
            gf[j] = f;
            gg[j] = g;
            go[j] = o;
            c[j] = i * g;
        }
        if let Some(cp) = c_prev {
            let cp = &cp[span];
            for j in 0..hidden {
                c[j] += gf[j] * cp[j];
            }
        }
        for j in 0..hidden {
            let t = tanh(c[j]);
            tc[j] = t;
            h_out[j] = go[j] * t;
        }
    }
}

/// The backward of [`cell_forward_generic`] for one step. `gates` holds the
/// step's activations and is overwritten by the gradient of the loss with
/// respect to the pre-activations. `dh` is the gradient reaching `h` at this
/// step; `dc` comes in as the gradient reaching `c` from the next step and
/// leaves as the one passed on to the previous step.
#[inline(always)]
fn cell_backward_generic(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    hidden: usize,
) {
    for (r, g4) in gates.chunks_exact_mut(4 * hidden).enumerate() {
        let span = r * hidden..(r + 1) * hidden;
        let (gi, rest) = g4.split_at_mut(hidden);
        let (gf, rest) = rest.split_at_mut(hidden);
        let (gg, go) = rest.split_at_mut(hidden);
        let (tc, dh, dc) = (&tc[span.clone()], &dh[span.clone()], &mut dc[span.clone()]);
        for j in 0..hidden {
            let (i, f, g, o, t) = (gi[j], gf[j], gg[j], go[j], tc[j]);
            let dct = dc[j] + dh[j] * o * (1.0 - t * t);
            gi[j] = dct * g * i * (1.0 - i);
            // times c_prev, below
            gf[j] = dct * f * (1.0 - f);
            gg[j] = dct * i * (1.0 - g * g);
            go[j] = dh[j] * t * o * (1.0 - o);
            dc[j] = dct * f;
        }
        match c_prev {
            Some(cp) => {
                let cp = &cp[span];
                for j in 0..hidden {
                    gf[j] *= cp[j];
                }
            }
            None => gf.fill(0.0),
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn cell_forward_avx512(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
    hidden: usize,
) {
    cell_forward_generic(gates, c_prev, c, tc, h_out, hidden);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_forward_avx2(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
    hidden: usize,
) {
    cell_forward_generic(gates, c_prev, c, tc, h_out, hidden);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn cell_backward_avx512(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    hidden: usize,
) {
    cell_backward_generic(gates, c_prev, tc, dh, dc, hidden);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn cell_backward_avx2(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    hidden: usize,
) {
    cell_backward_generic(gates, c_prev, tc, dh, dc, hidden);
}

/// Checks the slice lengths the gate loops rely on.
fn check_cell(gates: usize, state: &[usize], c_prev: Option<&[f32]>, hidden: usize) -> usize {
    assert!(
        hidden > 0 && gates % (4 * hidden) == 0,
        "lstm cell: gates not rows × 4h"
    );
    let rows = gates / (4 * hidden);
    for &len in state {
        assert!(len >= rows * hidden, "lstm cell: state buffer too small");
    }
    if let Some(cp) = c_prev {
        assert!(
            cp.len() >= rows * hidden,
            "lstm cell: previous cell state too small"
        );
    }
    rows
}

/// One LSTM step forward; see [`cell_forward_generic`].
pub fn cell_forward(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    c: &mut [f32],
    tc: &mut [f32],
    h_out: &mut [f32],
    hidden: usize,
) {
    check_cell(
        gates.len(),
        &[c.len(), tc.len(), h_out.len()],
        c_prev,
        hidden,
    );
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { cell_forward_avx512(gates, c_prev, c, tc, h_out, hidden) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { cell_forward_avx2(gates, c_prev, c, tc, h_out, hidden) };
            return;
        }
    }
    cell_forward_generic(gates, c_prev, c, tc, h_out, hidden);
}

/// One LSTM step backward; see [`cell_backward_generic`].
pub fn cell_backward(
    gates: &mut [f32],
    c_prev: Option<&[f32]>,
    tc: &[f32],
    dh: &[f32],
    dc: &mut [f32],
    hidden: usize,
) {
    check_cell(gates.len(), &[tc.len(), dh.len(), dc.len()], c_prev, hidden);
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { cell_backward_avx512(gates, c_prev, tc, dh, dc, hidden) };
            return;
        }
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports AVX2 and FMA, checked just above.
            unsafe { cell_backward_avx2(gates, c_prev, tc, dh, dc, hidden) };
            return;
        }
    }
    cell_backward_generic(gates, c_prev, tc, dh, dc, hidden);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_sigmoid_tanh_match_std() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp(x));
            assert!(
                ((got - want) / want).abs() < 1e-6,
                "exp({x}): {got} vs {want}"
            );
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
            let s = 1.0 / (1.0 + (-x).exp());
            assert!((sigmoid(x) - s).abs() < 1e-6, "sigmoid({x})");
            x += 0.037;
        }
        assert!(exp(-200.0) >= 0.0 && exp(200.0).is_finite());
        assert_eq!(sigmoid(-200.0).max(0.0), sigmoid(-200.0));
    }

    #[test]
    fn matmul_matches_naive_with_transposes_and_accumulation() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut dst = vec![1.0f32; m * n];
        matmul(&mut dst, Mat::new(&a, m, k), Mat::new(&bt, n, k).t(), true);
        for r in 0..m {
            for c in 0..n {
                let want: f32 = 1.0 + (0..k).map(|i| a[r * k + i] * bt[c * k + i]).sum::<f32>();
                assert!((dst[r * n + c] - want).abs() < 1e-5);
            }
        }
    }
}
