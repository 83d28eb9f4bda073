//! The stacked LSTM encoder written out by hand on contiguous f32 buffers,
//! forward and backward through time, for the CPU. Same equations and
//! parameters as candle-nn's `LSTM` (PyTorch's gate order i, f, g, o; two
//! bias vectors), but each layer's input projection for all time steps is
//! one matrix product over `[T·B, F]`, each step is one product with the
//! four gates side by side plus one fused element-wise pass, and the
//! backward pass reuses the activations kept by the forward pass instead of
//! an autograd graph of ~20 small tensors per step.
//!
//! The batch is cut into blocks of [`BLOCK_ROWS`] rows that run on rayon's
//! pool, each over its whole sequence with no synchronisation between
//! steps; gradients are summed over blocks in block order, so results do
//! not depend on the number of threads. Owns the arithmetic only: the
//! parameters live in the network's candle `VarMap` (`network.rs`).

use rayon::prelude::*;

use super::kernels::{self, Mat};

/// Batch rows per block (the unit of parallel work).
pub const BLOCK_ROWS: usize = 32;

/// One layer's parameters, copied out of the candle tensors for a call.
#[derive(Debug, Clone)]
pub struct LayerWeights {
    /// `4h × input`, row-major.
    w_ih: Vec<f32>,
    /// `4h × h`, row-major.
    w_hh: Vec<f32>,
    /// The transposes, `input × 4h` and `h × 4h`: the forward products read
    /// them in the order gemm's kernel wants, so it does not repack the
    /// weights at every step.
    w_ih_t: Vec<f32>,
    w_hh_t: Vec<f32>,
    /// `bias_ih + bias_hh`, `4h`.
    bias: Vec<f32>,
    input: usize,
    hidden: usize,
}

/// `rows × cols` row-major → `cols × rows` row-major.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

impl LayerWeights {
    /// PyTorch's layout: `w_ih` is `4h × input`, `w_hh` is `4h × h`, the
    /// two bias vectors `4h` each.
    ///
    /// # Panics
    /// When the lengths do not match `input` and `hidden`.
    pub fn new(
        w_ih: Vec<f32>,
        w_hh: Vec<f32>,
        b_ih: &[f32],
        b_hh: &[f32],
        input: usize,
        hidden: usize,
    ) -> Self {
        let g4 = 4 * hidden;
        assert!(
            w_ih.len() == g4 * input
                && w_hh.len() == g4 * hidden
                && b_ih.len() == g4
                && b_hh.len() == g4,
            "LSTM weights do not match input {input} and hidden {hidden}"
        );
        Self {
            w_ih_t: transpose(&w_ih, g4, input),
            w_hh_t: transpose(&w_hh, g4, hidden),
            w_ih,
            w_hh,
            bias: b_ih.iter().zip(b_hh).map(|(a, b)| a + b).collect(),
            input,
            hidden,
        }
    }

    pub fn input(&self) -> usize {
        self.input
    }

    pub fn hidden(&self) -> usize {
        self.hidden
    }
}

/// Gradients of one layer's parameters (`bias` is the gradient of both
/// bias vectors: they enter the gates as a sum).
#[derive(Debug, Clone, PartialEq)]
pub struct LayerGrads {
    pub w_ih: Vec<f32>,
    pub w_hh: Vec<f32>,
    pub bias: Vec<f32>,
}

impl LayerGrads {
    fn zeros(w: &LayerWeights) -> Self {
        Self {
            w_ih: vec![0.0; w.w_ih.len()],
            w_hh: vec![0.0; w.w_hh.len()],
            bias: vec![0.0; w.bias.len()],
        }
    }

    fn add(&mut self, other: &Self) {
        for (a, b) in [
            (&mut self.w_ih, &other.w_ih),
            (&mut self.w_hh, &other.w_hh),
            (&mut self.bias, &other.bias),
        ] {
            a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        }
    }
}

/// What one layer kept of one block's forward pass, all time-major.
struct LayerTape {
    /// The layer's input, `T × rows × input` (layer 0 only; the layers above
    /// read the hidden states of the layer below).
    x: Option<Vec<f32>>,
    /// Gate activations, `T × rows × 4h`.
    gates: Vec<f32>,
    /// Cell states and their tanh, `T × rows × h`.
    c: Vec<f32>,
    tc: Vec<f32>,
    /// Hidden states with the zero initial state first, `(T + 1) × rows × h`.
    hs: Vec<f32>,
}

struct BlockTape {
    rows: usize,
    layers: Vec<LayerTape>,
}

/// The forward pass of a batch, kept for [`Tape::backward`].
pub struct Tape {
    steps: usize,
    blocks: Vec<BlockTape>,
}

/// The extent of one block: time steps and batch rows.
#[derive(Clone, Copy)]
struct Dims {
    steps: usize,
    rows: usize,
}

/// Runs one layer over a block. `x`: `steps × rows × input`, time-major.
fn layer_forward(w: &LayerWeights, x: &[f32], d: Dims) -> LayerTape {
    let (h, g4) = (w.hidden, 4 * w.hidden);
    let Dims { steps, rows } = d;
    let n = steps * rows;
    // All steps' input projections at once, then the bias.
    let mut gates = vec![0.0f32; n * g4];
    kernels::matmul(
        &mut gates,
        Mat::new(x, n, w.input),
        Mat::new(&w.w_ih_t, w.input, g4),
        false,
    );
    for row in gates.chunks_exact_mut(g4) {
        row.iter_mut().zip(&w.bias).for_each(|(a, b)| *a += b);
    }
    let mut c = vec![0.0f32; n * h];
    let mut tc = vec![0.0f32; n * h];
    let mut hs = vec![0.0f32; (steps + 1) * rows * h];
    let step_len = rows * h;
    for t in 0..steps {
        let gt = &mut gates[t * rows * g4..(t + 1) * rows * g4];
        let (h_prev, h_next) = hs.split_at_mut((t + 1) * step_len);
        let h_prev = &h_prev[t * step_len..];
        if t > 0 {
            kernels::matmul(
                gt,
                Mat::new(h_prev, rows, h),
                Mat::new(&w.w_hh_t, h, g4),
                true,
            );
        }
        let (c_prev, c_rest) = c.split_at_mut(t * step_len);
        let c_prev = (t > 0).then(|| &c_prev[(t - 1) * step_len..]);
        kernels::cell_forward(
            gt,
            c_prev,
            &mut c_rest[..step_len],
            &mut tc[t * step_len..(t + 1) * step_len],
            &mut h_next[..step_len],
            h,
        );
    }
    LayerTape {
        x: None,
        gates,
        c,
        tc,
        hs,
    }
}

/// Gradient reaching a layer's hidden states from above.
enum Upstream<'a> {
    /// Only the last step's state feeds the head: `rows × h`.
    Last(&'a [f32]),
    /// Every step's state feeds the next layer: `T × rows × h`.
    All(Vec<f32>),
}

/// Backward through one layer of a block: adds the parameter gradients to
/// `grads` and returns the gradient with respect to the layer's input when
/// `want_dx` (`T × rows × input`).
fn layer_backward(
    w: &LayerWeights,
    tape: &mut LayerTape,
    x: &[f32],
    upstream: &Upstream<'_>,
    d: Dims,
    grads: &mut LayerGrads,
    want_dx: bool,
) -> Option<Vec<f32>> {
    let (h, g4) = (w.hidden, 4 * w.hidden);
    let Dims { steps, rows } = d;
    let step_len = rows * h;
    let mut dh = vec![0.0f32; step_len];
    let mut dc = vec![0.0f32; step_len];
    for t in (0..steps).rev() {
        match upstream {
            Upstream::Last(d) if t + 1 == steps => {
                dh.iter_mut().zip(&d[..step_len]).for_each(|(a, b)| *a += b)
            }
            Upstream::All(d) => dh
                .iter_mut()
                .zip(&d[t * step_len..(t + 1) * step_len])
                .for_each(|(a, b)| *a += b),
            Upstream::Last(_) => {}
        }
        let gt = &mut tape.gates[t * rows * g4..(t + 1) * rows * g4];
        let c_prev = (t > 0).then(|| &tape.c[(t - 1) * step_len..t * step_len]);
        kernels::cell_backward(
            gt,
            c_prev,
            &tape.tc[t * step_len..(t + 1) * step_len],
            &dh,
            &mut dc,
            h,
        );
        if t > 0 {
            kernels::matmul(
                &mut dh,
                Mat::new(gt, rows, g4),
                Mat::new(&w.w_hh, g4, h),
                false,
            );
        }
    }
    // `gates` now holds the pre-activation gradients of every step.
    let n = steps * rows;
    let dg = Mat::new(&tape.gates, n, g4);
    let mut part = vec![0.0f32; g4 * h.max(w.input)];
    kernels::matmul(&mut part[..g4 * h], dg.t(), Mat::new(&tape.hs, n, h), false);
    grads.w_hh.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    kernels::matmul(
        &mut part[..g4 * w.input],
        dg.t(),
        Mat::new(x, n, w.input),
        false,
    );
    grads.w_ih.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    for row in tape.gates.chunks_exact(g4) {
        grads.bias.iter_mut().zip(row).for_each(|(a, b)| *a += b);
    }
    want_dx.then(|| {
        let mut dx = vec![0.0f32; n * w.input];
        kernels::matmul(&mut dx, dg, Mat::new(&w.w_ih, g4, w.input), false);
        dx
    })
}

/// The block's rows of `enc` (`batch × steps × features`, batch-major),
/// time-major.
fn block_input(enc: &[f32], first: usize, rows: usize, steps: usize, features: usize) -> Vec<f32> {
    let mut x = vec![0.0f32; steps * rows * features];
    for r in 0..rows {
        let src = &enc[(first + r) * steps * features..(first + r + 1) * steps * features];
        for t in 0..steps {
            let dst = (t * rows + r) * features;
            x[dst..dst + features].copy_from_slice(&src[t * features..(t + 1) * features]);
        }
    }
    x
}

fn block_forward(layers: &[LayerWeights], enc: &[f32], first: usize, d: Dims) -> BlockTape {
    let features = layers.first().map_or(0, |l| l.input);
    let x0 = block_input(enc, first, d.rows, d.steps, features);
    let mut tapes: Vec<LayerTape> = Vec::with_capacity(layers.len());
    for w in layers {
        let tape = match tapes.last() {
            None => layer_forward(w, &x0, d),
            // The layer below's states after the zero initial one.
            Some(below) => layer_forward(w, &below.hs[below.c.len() / d.steps.max(1)..], d),
        };
        tapes.push(tape);
    }
    if let Some(first) = tapes.first_mut() {
        first.x = Some(x0);
    }
    BlockTape {
        rows: d.rows,
        layers: tapes,
    }
}

/// Blocks of a batch of `batch` rows: (first row, rows).
fn blocks(batch: usize) -> Vec<(usize, usize)> {
    (0..batch.div_ceil(BLOCK_ROWS))
        .map(|k| {
            let first = k * BLOCK_ROWS;
            (first, BLOCK_ROWS.min(batch - first))
        })
        .collect()
}

/// Runs the stacked LSTM over `enc` (`batch × steps × features`,
/// row-major) and returns the last step's hidden state of the top layer
/// (`batch × h`) with the tape for the backward pass.
pub fn forward(
    layers: &[LayerWeights],
    enc: &[f32],
    batch: usize,
    steps: usize,
) -> (Vec<f32>, Tape) {
    let blocks: Vec<BlockTape> = blocks(batch)
        .into_par_iter()
        .map(|(first, rows)| block_forward(layers, enc, first, Dims { steps, rows }))
        .collect();
    let h = layers.last().map_or(0, |l| l.hidden);
    let mut last = Vec::with_capacity(batch * h);
    for b in &blocks {
        if let Some(top) = b.layers.last() {
            last.extend_from_slice(&top.hs[steps * b.rows * h..]);
        }
    }
    (last, Tape { steps, blocks })
}

impl Tape {
    /// Back-propagates `d_last` (the loss gradient with respect to the
    /// returned last hidden state, `batch × h`) through time and the layers;
    /// returns each layer's parameter gradients.
    pub fn backward(self, layers: &[LayerWeights], d_last: &[f32]) -> Vec<LayerGrads> {
        let steps = self.steps;
        let h = layers.last().map_or(0, |l| l.hidden);
        let mut offsets = Vec::with_capacity(self.blocks.len());
        let mut first = 0;
        for b in &self.blocks {
            offsets.push(first);
            first += b.rows;
        }
        let parts: Vec<Vec<LayerGrads>> = self
            .blocks
            .into_par_iter()
            .zip(offsets)
            .map(|(mut block, first)| {
                let rows = block.rows;
                let mut grads: Vec<LayerGrads> = layers.iter().map(LayerGrads::zeros).collect();
                let mut upstream = Upstream::Last(&d_last[first * h..(first + rows) * h]);
                for l in (0..layers.len()).rev() {
                    let (below, this) = block.layers.split_at_mut(l);
                    let tape = &mut this[0];
                    let x_own = tape.x.take();
                    let x: &[f32] = match (&x_own, below.last()) {
                        (Some(x), _) => x,
                        (None, Some(b)) => &b.hs[b.c.len() / steps.max(1)..],
                        (None, None) => &[],
                    };
                    let dx = layer_backward(
                        &layers[l],
                        tape,
                        x,
                        &upstream,
                        Dims { steps, rows },
                        &mut grads[l],
                        l > 0,
                    );
                    if let Some(dx) = dx {
                        upstream = Upstream::All(dx);
                    }
                }
                grads
            })
            .collect();
        let mut total: Vec<LayerGrads> = layers.iter().map(LayerGrads::zeros).collect();
        for part in &parts {
            for (t, p) in total.iter_mut().zip(part) {
                t.add(p);
            }
        }
        total
    }
}
