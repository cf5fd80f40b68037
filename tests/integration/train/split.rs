//! `SplitStep`: a batch cut into chunks that run side by side gives the
//! whole batch's step, whatever the thread count.
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorRef,
};
use static_nn::data::Batch;
use static_nn::prelude::*;
use static_nn::train::{
    cross_entropy, Classifier, ImageClassifier, Optim, OptimizerConfig, SplitStep, TrainError,
};

type SmallConv = (
    Input<1, 8, 8>,
    Conv2D<1, 4, 3>,
    ReLU,
    MaxPool2D<2, 2>,
    Flatten,
    Linear<36, 5>,
);
type SmallDropout = (
    Input<1, 8, 8>,
    Conv2D<1, 4, 3>,
    ReLU,
    Dropout<50>,
    Flatten,
    Linear<144, 5>,
);
type SmallNorm = (
    Input<1, 8, 8>,
    Conv2D<1, 4, 3>,
    BatchNorm2D<4>,
    ReLU,
    Flatten,
    Linear<144, 5>,
);
/// Two residual blocks, a projection and the identity: their training
/// pass runs as one op each on the CPU.
type SmallBlocks = (
    Input<1, 8, 8>,
    Conv2D<1, 4, 3, 1, 1, false>,
    BatchNormReLU2D<4>,
    static_nn::models::BasicBlock<4, 8, 2, static_nn::models::Projection<4, 8, 2>>,
    static_nn::models::BasicBlock<8, 8, 1>,
    GlobalAvgPool2D,
    Linear<8, 5>,
);

/// `n` 8×8 images of deterministic noise, labels cycling through 5 classes.
fn batch(n: usize, seed: u32) -> Batch {
    let mut state = seed;
    let images = (0..n * 64)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect();
    Batch {
        images,
        labels: (0..n).map(|i| (i * 3) % 5).collect(),
        channels: 1,
        rows: 8,
        cols: 8,
    }
}

/// Every tensor of a model, end to end, with the names of the buffers'.
struct Values {
    all: Vec<f32>,
    buffers: Vec<f32>,
}

impl TensorVisitor<f32, Cpu> for Values {
    type Viewer = ViewTensorRef;
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Cpu;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Cpu>,
        t: &Tensor<S, f32, Cpu>,
    ) -> Result<Option<Tensor<S, f32, Cpu>>, Self::Err> {
        self.all.extend(t.as_vec());
        if !opts.do_gradient_update {
            self.buffers.extend(t.as_vec());
        }
        Ok(None)
    }
}

fn values<M: TensorCollection<f32, Cpu>>(m: &M) -> Values {
    let mut v = Values {
        all: Vec::new(),
        buffers: Vec::new(),
    };
    M::iter_tensors(&mut RecursiveWalker { m, f: &mut v }).unwrap();
    v
}

/// `steps` SGD steps (learning rate 1, so that a step's change is its
/// gradient) of a fresh model seeded 7, on `chunks` chunks, on a pool of
/// `threads`; the model's values after.
fn trained<T>(chunks: usize, threads: usize, steps: usize, n: usize) -> Values
where
    T: BuildOnDevice<Cpu, f32>,
    T::Built: ImageClassifier<Cpu>,
{
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let dev = Cpu::seed_from_u64(7);
        dev.enable_cache();
        let mut model = dev.build_module::<T, f32>();
        let mut opt = Optim::new(&model, OptimizerConfig::sgd(1.0)).unwrap();
        let mut step = SplitStep::new(chunks).unwrap();
        for s in 0..steps {
            let loss = step
                .step(
                    &mut model,
                    &dev,
                    &mut opt,
                    batch(n, s as u32),
                    &cross_entropy,
                )
                .unwrap();
            assert!(loss.is_finite());
        }
        values(&model)
    })
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}: value {i} is {x}, the whole batch's {y}"
        );
    }
}

/// The chunks' gradients, weighted by their sizes, are the whole batch's:
/// two chunks of 32, and three uneven ones (3, 2, 2) of a batch of 7.
#[test]
fn chunks_give_the_whole_batchs_step() {
    let whole = trained::<SmallConv>(1, 2, 1, 64);
    let split = trained::<SmallConv>(2, 2, 1, 64);
    assert_close(&split.all, &whole.all, 1e-5, "2 chunks of 32");
    let whole = trained::<SmallConv>(1, 2, 1, 7);
    let split = trained::<SmallConv>(3, 2, 1, 7);
    assert_close(&split.all, &whole.all, 1e-5, "3 chunks of a batch of 7");
    // and the step does change the model: the comparison is not of two
    // untouched models
    let dev = Cpu::seed_from_u64(7);
    let fresh = values(&dev.build_module::<SmallConv, f32>());
    let moved = fresh
        .all
        .iter()
        .zip(&whole.all)
        .filter(|(a, b)| a != b)
        .count();
    assert!(moved > whole.all.len() / 2, "only {moved} values changed");
}

/// Several steps give bit-identical models on one thread and on four: the
/// chunks are fixed by the count, not by the threads.
#[test]
fn the_thread_count_does_not_change_the_result() {
    let one = trained::<SmallConv>(2, 1, 3, 64);
    let four = trained::<SmallConv>(2, 4, 3, 64);
    assert_eq!(one.all, four.all);
    // with dropout, the replicas' masks come from devices seeded by the
    // model's: the same on every run
    let one = trained::<SmallDropout>(2, 1, 3, 64);
    let two = trained::<SmallDropout>(2, 2, 3, 64);
    assert_eq!(one.all, two.all);
    // chunks that share batch statistics: on a pool of the step's own with
    // one thread, on a pool of two and on one of four
    let one = trained::<SmallNorm>(2, 1, 3, 64);
    let two = trained::<SmallNorm>(2, 2, 3, 64);
    let four = trained::<SmallNorm>(2, 4, 3, 64);
    assert_eq!(one.all, two.all);
    assert_eq!(one.all, four.all);
    let one = trained::<SmallBlocks>(2, 1, 2, 64);
    let two = trained::<SmallBlocks>(2, 2, 2, 64);
    assert_eq!(one.all, two.all);
}

/// With BatchNorm the chunks share their batch statistics (each batch
/// norm gathers every chunk's): the split step normalizes by the whole
/// batch's, so it gives the whole batch's step and running statistics up to
/// rounding. With as many threads as chunks, with fewer (the step then runs
/// on a pool of its own), and with uneven chunks.
#[test]
fn batch_norm_shares_the_whole_batchs_statistics() {
    let whole = trained::<SmallNorm>(1, 2, 2, 64);
    for (chunks, threads) in [(2, 2), (2, 1), (4, 2)] {
        let split = trained::<SmallNorm>(chunks, threads, 2, 64);
        let what = format!("{chunks} chunks on {threads} threads");
        assert_close(&split.all, &whole.all, 2e-5, &what);
        assert_close(&split.buffers, &whole.buffers, 2e-5, &what);
    }
    let whole = trained::<SmallNorm>(1, 2, 2, 7);
    let split = trained::<SmallNorm>(3, 2, 2, 7);
    assert_close(&split.all, &whole.all, 2e-5, "3 chunks of a batch of 7");
    // residual blocks, each one op: its three batch norms share too
    let whole = trained::<SmallBlocks>(1, 2, 2, 64);
    for (chunks, threads, n) in [(2, 2, 64), (3, 1, 64)] {
        let split = trained::<SmallBlocks>(chunks, threads, 2, n);
        let what = format!("blocks: {chunks} chunks on {threads} threads");
        assert_close(&split.all, &whole.all, 5e-5, &what);
        assert_close(&split.buffers, &whole.buffers, 5e-5, &what);
    }
    // the steps moved the running statistics: not two untouched models
    let dev = Cpu::seed_from_u64(7);
    let fresh = values(&dev.build_module::<SmallNorm, f32>());
    assert_ne!(fresh.buffers, whole.buffers);
}

/// A chunk that panics ends the step with its panic: the other chunks,
/// waiting for its statistics in a batch norm, give up instead of waiting
/// forever.
#[test]
fn a_panicking_chunk_does_not_leave_the_others_waiting() {
    let dev = Cpu::seed_from_u64(0);
    let mut model = dev.build_module::<SmallNorm, f32>();
    let mut opt = Optim::new(&model, OptimizerConfig::sgd(0.1)).unwrap();
    let mut step = SplitStep::new(2).unwrap();
    // chunk 1 (3 of the 7 samples) panics after its forward pass, while
    // chunk 0 goes on to the backward pass's batch norm
    let loss = |logits: Tensor<(usize, Const<5>), f32, Cpu, OwnedTape<f32, Cpu>>,
                targets: Tensor<(usize, Const<5>), f32, Cpu>| {
        assert_ne!(logits.shape().0, 3, "chunk 1 fails");
        cross_entropy(logits, targets)
    };
    // on a thread of its own, so that a hang fails the test instead of
    // stopping the run
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            step.step(&mut model, &dev, &mut opt, batch(7, 1), &loss)
        }));
        let text = match caught {
            Ok(_) => "no panic".to_string(),
            Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        let _ = tx.send(text);
    });
    let text = rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("the step ends within two minutes");
    assert!(text.contains("chunk 1 fails"), "{text}");
}

/// The classifier splits convolutional networks by default; a count of 0 is refused; a batch that does not fit the model
/// is an error from any chunk, not a panic.
#[test]
fn chunk_counts_and_errors() {
    let dev = Cpu::seed_from_u64(0);
    let lenet = dev.build_module::<LeNetClass, f32>();
    let mut clf = Classifier::new(lenet, dev.clone(), OptimizerConfig::sgd(0.1));
    assert_eq!(clf.batch_chunks(), 2);
    assert!(matches!(
        clf.set_batch_chunks(0),
        Err(TrainError::InvalidHyperparameter(_))
    ));
    assert_eq!(clf.batch_chunks(), 2);
    clf.set_batch_chunks(3).unwrap();
    assert_eq!(clf.batch_chunks(), 3);
    let mlp = dev.build_module::<Mlp, f32>();
    assert_eq!(
        Classifier::new(mlp, dev.clone(), OptimizerConfig::sgd(0.1)).batch_chunks(),
        1
    );
    assert!(SplitStep::<SmallConv, Cpu>::new(0).is_err());
    let resnet = dev.build_module::<MnistResNet, f32>();
    assert_eq!(
        Classifier::new(resnet, dev.clone(), OptimizerConfig::sgd(0.1)).batch_chunks(),
        2
    );

    let mut model = dev.build_module::<SmallConv, f32>();
    let mut opt = Optim::new(&model, OptimizerConfig::sgd(0.1)).unwrap();
    let mut step = SplitStep::new(2).unwrap();
    let mut wrong = batch(6, 1);
    wrong.rows = 4;
    wrong.cols = 16;
    let e = step
        .step(&mut model, &dev, &mut opt, wrong.clone(), &cross_entropy)
        .unwrap_err();
    assert!(e.to_string().contains("1×4×16"), "{e}");
    // the same where the chunks share batch statistics: the chunk's own
    // error, not that of a gathering it broke
    let mut norm = dev.build_module::<SmallNorm, f32>();
    let mut norm_opt = Optim::new(&norm, OptimizerConfig::sgd(0.1)).unwrap();
    let mut norm_step = SplitStep::new(2).unwrap();
    let e = norm_step
        .step(&mut norm, &dev, &mut norm_opt, wrong, &cross_entropy)
        .unwrap_err();
    assert!(e.to_string().contains("1×4×16"), "{e}");
    let loss = norm_step
        .step(&mut norm, &dev, &mut norm_opt, batch(6, 2), &cross_entropy)
        .unwrap();
    assert!(loss.is_finite());
    // the step still works after the error
    let loss = step
        .step(&mut model, &dev, &mut opt, batch(6, 2), &cross_entropy)
        .unwrap();
    assert!(loss.is_finite());
}

/// `fit` gives the same model from a thread outside any pool (where it runs
/// the epoch on a worker of the global pool) and from a worker of a pool of
/// its own.
#[test]
fn fit_is_the_same_inside_and_outside_a_pool() {
    use static_nn::data::{DataLoader, LabelledImages, LoaderConfig};
    use std::sync::Arc;
    let images: Vec<u8> = (0..96 * 64).map(|i| (i * 37 % 251) as u8).collect();
    let labels: Vec<u8> = (0..96).map(|i| (i % 5) as u8).collect();
    let data = Arc::new(LabelledImages::new(8, 8, images, labels).unwrap());
    let loader = DataLoader::new(
        data,
        LoaderConfig {
            batch_size: 32,
            shuffle: Some(1),
            ..Default::default()
        },
    );
    fn run<T>(loader: &DataLoader) -> u64
    where
        T: BuildOnDevice<Cpu, f32>,
        T::Built: ImageClassifier<Cpu> + Send,
    {
        let dev = Cpu::seed_from_u64(5);
        let model = dev.build_module::<T, f32>();
        let mut clf = Classifier::new(model, dev, OptimizerConfig::adam(1e-2));
        assert_eq!(clf.batch_chunks(), 2);
        clf.fit(loader, 2).unwrap();
        clf.parameter_hash()
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(3)
        .build()
        .unwrap();
    let outside = run::<SmallDropout>(&loader);
    let inside = pool.install(|| run::<SmallDropout>(&loader));
    assert_eq!(outside, inside);
    // with batch norms, whose chunks run on threads of the step's own
    let outside = run::<SmallNorm>(&loader);
    let inside = pool.install(|| run::<SmallNorm>(&loader));
    assert_eq!(outside, inside);
}
