//! Inference on a large batch in cache-sized chunks, one chunk per worker.
//!
//! `Module::forward` runs each layer on the whole batch before the next one
//! starts. At LeNet's batch 1000 the first convolution's output alone is
//! 18.8 MB, larger than any cache, so every layer streams its input from
//! memory and its output back; and every layer splits its work over the
//! threads and joins them again. [`ChunkedForward`] instead cuts the batch
//! into chunks of at most [`MAX_CHUNK`] samples and runs each chunk through
//! the whole network on one rayon worker, so that a chunk's activations stay
//! in that core's cache and the threads meet only at the end.
use crate::ops::cpu_util::{output_vec, tensor_from_vec};
use dfdx::nn::Module;
use dfdx::prelude::*;
use rayon::prelude::*;

/// The most samples in one chunk. LeNet's widest activation for 32 samples
/// (conv1's output, 0.6 MB) and MnistResNet's (16 channels at 28×28,
/// 1.6 MB) fit a core's L2 cache. Measured on 2 threads at batch 1000
/// (LeNet) and 256 (MnistResNet), chunks of 16 to 64 samples ran LeNet
/// equally fast and 128 slower; MnistResNet ran fastest at 32.
pub const MAX_CHUNK: usize = 32;

/// A shape whose first dim is the batch: `(B, ..)` of rank 2 to 5.
pub trait BatchFirst: Shape {
    /// The batch dim, `Const<N>` or `usize`.
    type Batch: Dim;
    /// The same shape with the batch dim `N`.
    type WithBatch<N: Dim>: BatchFirst<Batch = N>;
    /// The batch size.
    fn batch(&self) -> usize;
    /// The batch dim.
    fn batch_dim(&self) -> Self::Batch;
    /// The same per-sample dims with the batch `n`.
    fn with_batch<N: Dim>(&self, n: N) -> Self::WithBatch<N>;
}

macro_rules! batch_first {
    ($($d:ident $i:tt),*) => {
        impl<B: Dim, $($d: Dim),*> BatchFirst for (B, $($d),*) {
            type Batch = B;
            type WithBatch<N: Dim> = (N, $($d),*);
            fn batch(&self) -> usize {
                self.0.size()
            }
            fn batch_dim(&self) -> B {
                self.0
            }
            fn with_batch<N: Dim>(&self, n: N) -> Self::WithBatch<N> {
                (n, $(self.$i),*)
            }
        }
    };
}
batch_first!(D1 1);
batch_first!(D1 1, D2 2);
batch_first!(D1 1, D2 2, D3 3);
batch_first!(D1 1, D2 2, D3 3, D4 4);

/// How many chunks a batch of `n` samples is cut into on `threads` workers:
/// at most [`MAX_CHUNK`] samples each, a multiple of `threads` so that every
/// worker gets as many, and never more than `n`.
pub fn chunk_count(n: usize, threads: usize) -> usize {
    let threads = threads.max(1);
    let chunks = n.div_ceil(MAX_CHUNK).div_ceil(threads) * threads;
    chunks.min(n)
}

/// Inference (no tape) on a batch cut into cache-sized chunks, each run
/// through the whole network on one rayon worker (see the module docs).
///
/// The result is that of `forward`: every static-nn layer treats the samples
/// of a batch independently in `forward` (batch norms use their running
/// statistics). A network whose `forward` mixes samples must not use it. The
/// chunks' sums may differ from `forward`'s in the last bits where a kernel
/// blocks its work by the batch size (the linear layers' matrix products).
///
/// It runs on the CPU device, for a network that accepts the batch dim
/// `usize` (every static-nn layer does). A batch that makes a single chunk
/// (one sample, or at most [`MAX_CHUNK`] on one worker) is simply
/// `forward`; from two chunks on, every worker gets the same number of
/// chunks. Call it inside `ThreadPool::install` to choose the workers.
///
/// PyTorch has no counterpart: its `model(x)` under `torch.inference_mode()`
/// runs each layer on the whole batch, like `forward`.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::nn::ChunkedForward;
/// let dev = Cpu::default();
/// let net = dev.build_module::<LeNetClass, f32>();
/// let x: Tensor<Rank4<300, 1, 28, 28>, f32, _> = dev.sample_normal();
/// let logits: Tensor<Rank2<300, 10>, f32, _> = net.forward_chunked(x.clone());
/// let whole = net.forward(x);
/// for (a, b) in logits.as_vec().iter().zip(whole.as_vec()) {
///     assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()));
/// }
/// ```
pub trait ChunkedForward<S: BatchFirst, E: Dtype> {
    /// The network's output for the whole batch.
    type Output;
    /// Fallible version of [`ChunkedForward::forward_chunked`].
    fn try_forward_chunked(&self, x: Tensor<S, E, Cpu>) -> Result<Self::Output, CpuError>;
    /// The network's output for `x`, computed chunk by chunk.
    fn forward_chunked(&self, x: Tensor<S, E, Cpu>) -> Self::Output {
        self.try_forward_chunked(x)
            .expect("the chunked forward pass failed")
    }
}

impl<M, S, O, E> ChunkedForward<S, E> for M
where
    S: BatchFirst,
    O: BatchFirst<Batch = usize>,
    E: Dtype,
    M: Module<Tensor<S::WithBatch<usize>, E, Cpu>, Output = Tensor<O, E, Cpu>, Error = CpuError>
        + Sync,
{
    type Output = Tensor<O::WithBatch<S::Batch>, E, Cpu>;

    fn try_forward_chunked(&self, x: Tensor<S, E, Cpu>) -> Result<Self::Output, CpuError> {
        let shape = *x.shape();
        let n = shape.batch();
        let chunks = chunk_count(n, rayon::current_num_threads());
        if chunks <= 1 {
            let x = x.try_reshape_like(&shape.with_batch(n))?;
            let y = self.try_forward(x)?;
            let out_shape = y.shape().with_batch(shape.batch_dim());
            return y.try_reshape_like(&out_shape);
        }
        let dev = x.device().clone();
        let x = x.try_contiguous()?;
        let mut data = output_vec::<E>(&dev, shape.num_elements())?;
        x.copy_into(&mut data);
        drop(x);
        let per_in = shape.num_elements() / n;
        let base = n / chunks;
        let extra = n % chunks;
        // chunk c holds `base + 1` samples if c < extra, else `base`
        let start = |c: usize| c * base + c.min(extra);
        let outputs: Vec<Tensor<O, E, Cpu>> = (0..chunks)
            .into_par_iter()
            .map(|c| {
                let (a, b) = (start(c), start(c + 1));
                let mut buf = output_vec::<E>(&dev, (b - a) * per_in)?;
                buf.copy_from_slice(&data[a * per_in..b * per_in]);
                let xc = tensor_from_vec(&dev, buf, shape.with_batch(b - a))?;
                self.try_forward(xc)
            })
            .collect::<Result<_, _>>()?;
        drop(tensor_from_vec(&dev, data, shape)?);
        let first = *outputs[0].shape();
        let per_out = first.num_elements() / first.batch().max(1);
        let mut out = output_vec::<E>(&dev, n * per_out)?;
        let mut at = 0;
        for y in &outputs {
            let len = y.shape().num_elements();
            y.copy_into(&mut out[at..at + len]);
            at += len;
        }
        drop(outputs);
        tensor_from_vec(&dev, out, first.with_batch(shape.batch_dim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{LeNetClass, MnistResNet};
    use crate::nn::{Conv2D, DeviceBuildExt, Linear, ReLU};

    fn assert_close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-5 * (1.0 + y.abs()), "{i}: {x} vs {y}");
        }
    }

    fn on_threads<R: Send>(threads: usize, f: impl FnOnce() -> R + Send) -> R {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    #[test]
    fn chunks_are_at_most_max_chunk_and_a_multiple_of_the_threads() {
        assert_eq!(chunk_count(0, 2), 0);
        assert_eq!(chunk_count(1, 2), 1);
        assert_eq!(chunk_count(3, 2), 2);
        assert_eq!(chunk_count(64, 2), 2);
        assert_eq!(chunk_count(1000, 2), 32);
        assert_eq!(chunk_count(1000, 3), 33);
        assert_eq!(chunk_count(1000, 0), 32);
        for n in 0..300 {
            for t in 1..5 {
                let c = chunk_count(n, t);
                assert!(c <= n);
                if n > 0 {
                    assert!(n.div_ceil(c) <= MAX_CHUNK, "{n} on {t}");
                    assert!(c.is_multiple_of(t) || c == n, "{n} on {t}: {c}");
                }
            }
        }
    }

    #[test]
    fn lenet_in_uneven_chunks_matches_forward() {
        let dev = Cpu::seed_from_u64(1);
        let net = dev.build_module::<LeNetClass, f32>();
        // 101 samples on 3 workers: 6 chunks of 16 and 17 samples
        let x: Tensor<Rank4<101, 1, 28, 28>, f32, _> = dev.sample_normal();
        let want = net.forward(x.clone()).as_vec();
        let got = on_threads(3, || net.forward_chunked(x.clone()));
        assert_close(&got.as_vec(), &want);
        // a runtime batch, and a batch of one chunk
        let xs = x
            .clone()
            .reshape_like(&(101usize, Const::<1>, Const::<28>, Const::<28>));
        let got: Tensor<(usize, Const<10>), f32, _> = on_threads(2, || net.forward_chunked(xs));
        assert_eq!(got.shape().0, 101);
        assert_close(&got.as_vec(), &want);
        let one = dev.sample_normal::<Rank4<5, 1, 28, 28>>();
        assert_close(
            &on_threads(1, || net.forward_chunked(one.clone())).as_vec(),
            &net.forward(one).as_vec(),
        );
        let none = dev.zeros_like(&(0usize, Const::<1>, Const::<28>, Const::<28>));
        assert_eq!(net.forward_chunked(none).shape().0, 0);
    }

    #[test]
    fn batch_norm_networks_and_other_ranks_match_forward() {
        let dev = Cpu::seed_from_u64(2);
        let resnet = dev.build_module::<MnistResNet, f32>();
        let x: Tensor<Rank4<70, 1, 28, 28>, f32, _> = dev.sample_normal();
        let got = on_threads(2, || resnet.forward_chunked(x.clone()));
        assert_close(&got.as_vec(), &resnet.forward(x).as_vec());

        // feature maps out: rank 4
        let convs = dev.build_module::<(Conv2D<3, 4, 3, 1, 1>, ReLU), f32>();
        let x: Tensor<Rank4<40, 3, 9, 9>, f32, _> = dev.sample_normal();
        let got: Tensor<Rank4<40, 4, 9, 9>, f32, _> =
            on_threads(2, || convs.forward_chunked(x.clone()));
        assert_close(&got.as_vec(), &convs.forward(x).as_vec());

        // features in: rank 2
        let fc = dev.build_module::<(Linear<8, 5>, ReLU, Linear<5, 3>), f32>();
        let x: Tensor<Rank2<200, 8>, f32, _> = dev.sample_normal();
        let got = on_threads(2, || fc.forward_chunked(x.clone()));
        assert_close(&got.as_vec(), &fc.forward(x).as_vec());
    }
}
