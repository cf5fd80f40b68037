//! Inference of a fully connected layer on a batch of rows, f32, on the
//! convolution's channel tiles ([`crate::ops::conv2d::direct`]).
//!
//! `y = x·Wᵀ + b` is a 1×1 convolution whose input channels are the `k`
//! features of a row and whose positions are the rows: a channel tile holds
//! `P` rows × `L·V` outputs in registers, and for each feature loads `V`
//! weight vectors and broadcasts `P` inputs. `W` and `b` are packed once for
//! the tiles (`[group][feature][lane]`) and kept in the layer's memo while
//! they are unchanged. `gemm`, which dfdx's `matmul` calls, packs `Wᵀ` again
//! on every call: on LeNet's chunks of 32 samples its first fully connected
//! layer ran at a third of the convolutions' rate, 12% of batch-64
//! inference for 8% of its arithmetic.
//!
//! Each output is its bias plus the products in feature order, whatever the
//! batch, the tile or the thread count.
use crate::ops::conv2d::direct::{
    chan_tile_fn, pack_groups, ChanDst, ChanTileFn, Isa, Taps, MAX_P,
};
use rayon::prelude::*;

/// Rows per rayon task: a batch of at most this many (a chunk of
/// [`ChunkedForward`](crate::nn::ChunkedForward)) runs on the calling thread.
const BLOCK: usize = 64;

/// A fully connected layer's weights and bias packed for channel tiles.
pub(crate) struct Dense {
    /// Input features.
    k: usize,
    /// Outputs.
    o: usize,
    /// Outputs per group (`L·V`).
    lanes: usize,
    taps: Taps,
    /// The tile for `p` rows at index `p − 1`, `p` up to the most that the
    /// registers hold.
    tiles: Vec<ChanTileFn>,
    /// `W` as `[group][k][lanes]`, zero past `o`.
    w: Vec<f32>,
    /// `b` as `[group][lanes]`, zero past `o`.
    b: Vec<f32>,
}

impl Dense {
    /// Packs `w` (`o × k`, PyTorch's layout) and `b` (`o`) for the tiles of
    /// `isa`; `None` if `isa` has no channel tiles.
    pub(crate) fn new(isa: Isa, w: &[f32], b: &[f32], (o, k): (usize, usize)) -> Option<Self> {
        assert_eq!((w.len(), b.len()), (o * k, o), "weights of a {o}×{k} layer");
        let v = if o > isa.lanes() { 2 } else { 1 };
        let lanes = isa.lanes() * v;
        let most = (isa.max_acc() / v).min(MAX_P);
        let tiles = (1..=most)
            .map(|p| chan_tile_fn(isa, v, p))
            .collect::<Option<Vec<_>>>()?;
        let (wpk, bpk) = pack_groups(w, Some(b), (o, k), lanes);
        Some(Self {
            k,
            o,
            lanes,
            taps: Taps::dense(k),
            tiles,
            w: wpk,
            b: bpk,
        })
    }

    /// Whether this is a packing of an `o × k` layer.
    pub(crate) fn fits(&self, o: usize, k: usize) -> bool {
        (self.o, self.k) == (o, k)
    }

    /// `y (m×o) = x (m×k)·Wᵀ + b`, both row-major, for `m = x.len() / k`;
    /// blocks of [`BLOCK`] rows run on rayon.
    pub(crate) fn run(&self, x: &[f32], y: &mut [f32]) {
        let (k, o) = (self.k, self.o);
        assert!(
            k > 0 && x.len().is_multiple_of(k),
            "{} inputs for rows of {k}",
            x.len()
        );
        assert_eq!(
            y.len(),
            x.len() / k * o,
            "outputs for {} rows of {o}",
            x.len() / k
        );
        if o == 0 {
            return;
        }
        y.par_chunks_mut(BLOCK * o)
            .zip(x.par_chunks(BLOCK * k))
            .for_each(|(y, x)| self.rows(x, y));
    }

    /// [`Dense::run`] on one thread: the rows split evenly into tiles of at
    /// most the registers' rows, each tile over every group of outputs.
    fn rows(&self, x: &[f32], y: &mut [f32]) {
        let (k, o, lanes) = (self.k, self.o, self.lanes);
        let m = x.len() / k;
        let count = m.div_ceil(self.tiles.len());
        let mut i0 = 0;
        for t in 0..count {
            // what is left, over the tiles left: p ≤ tiles.len()
            let p = (m - i0).div_ceil(count - t);
            let tile = self.tiles[p - 1];
            for g in 0..o.div_ceil(lanes) {
                let nc = lanes.min(o - g * lanes);
                let first = i0 * o + g * lanes;
                // the tile's last store ends at row i0 + p − 1's output g·lanes + nc
                assert!(first + (p - 1) * o + nc <= y.len());
                let dst = ChanDst {
                    y: y[first..].as_mut_ptr(),
                    row_stride: o,
                    np: p,
                    nc,
                };
                // SAFETY: `tiles` holds `isa`'s kernels, checked to run here
                // by `Isa::best`. The tile reads x[(i0 + q)·k + j] for q < p,
                // j < k: below m·k because i0 + p ≤ m; the group's k·lanes
                // weights from g·k·lanes, and `lanes` bias values from
                // g·lanes, within the packing of o.div_ceil(lanes) groups.
                // It writes nc values at each of p rows o apart from
                // `first` (asserted above).
                unsafe {
                    tile(
                        &self.taps,
                        x[i0 * k..].as_ptr(),
                        self.w[g * k * lanes..].as_ptr(),
                        self.b[g * lanes..].as_ptr(),
                        &dst,
                    )
                };
            }
            i0 += p;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [−0.5, 0.5).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) as f32 / 65536.0
                    - 0.5
            })
            .collect()
    }

    /// Every row count (all tile sizes and splits, blocks over rayon) and
    /// output counts around the groups' widths, on every `Isa` this CPU
    /// runs, against a plain loop in f64.
    #[test]
    fn dense_matches_a_plain_loop() {
        for isa in Isa::all() {
            for (o, k) in [
                (1, 1),
                (10, 84),
                (84, 400),
                (16, 3),
                (17, 5),
                (33, 7),
                (8, 9),
            ] {
                let (w, b) = (values(o * k, 1), values(o, 2));
                let plan = Dense::new(isa, &w, &b, (o, k)).unwrap();
                assert!(plan.fits(o, k) && !plan.fits(o + 1, k));
                for m in (0..=30).chain([31, 32, 64, 65, 200]) {
                    let x = values(m * k, 3 + m as u32);
                    // a canary past the end, which the tiles' stores must miss
                    let mut buf = vec![f32::NAN; m * o + 64];
                    let (y, canary) = buf.split_at_mut(m * o);
                    plan.run(&x, y);
                    assert!(
                        canary.iter().all(|c| c.is_nan()),
                        "{isa:?} o={o} k={k} m={m}"
                    );
                    for i in 0..m {
                        for c in 0..o {
                            let want = b[c] as f64
                                + (0..k)
                                    .map(|j| x[i * k + j] as f64 * w[c * k + j] as f64)
                                    .sum::<f64>();
                            let got = y[i * o + c] as f64;
                            assert!(
                                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                "{isa:?} o={o} k={k} m={m} row {i} out {c}: {got} vs {want}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A row's outputs do not depend on the batch it comes in (tile sizes
    /// differ with the row count): the same bits alone and in a batch.
    #[test]
    fn a_row_gets_the_same_bits_in_any_batch() {
        let Some(isa) = Isa::best() else { return };
        let (o, k) = (84, 400);
        let plan = Dense::new(isa, &values(o * k, 5), &values(o, 6), (o, k)).unwrap();
        let x = values(37 * k, 7);
        let mut all = vec![0.0; 37 * o];
        plan.run(&x, &mut all);
        for i in [0, 5, 36] {
            let mut one = vec![0.0; o];
            plan.run(&x[i * k..(i + 1) * k], &mut one);
            assert_eq!(one, all[i * o..(i + 1) * o], "row {i}");
        }
    }
}
