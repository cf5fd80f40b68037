//! The notebook's learned 1×2 kernel: a single `LazyConv2DRect<1, 1, 2>`
//! trained by SGD (lr 0.01, 100 steps, sum of squared errors) on the 6×8
//! edge image reaches the edge kernel [1, −1] with bias 0.
use static_nn::tutorial::learn_edge_kernel;

#[test]
fn learns_the_edge_kernel_with_the_notebooks_settings() {
    for seed in 0..8 {
        let l = learn_edge_kernel(100, 0.01, seed).unwrap();
        println!(
            "seed {seed}: kernel {:?}, bias {:.5}, loss {:.3} -> {:.6}",
            l.kernel, l.bias, l.losses[0], l.losses[99]
        );
        assert_eq!(l.losses.len(), 100);
        assert!((l.kernel[0] - 1.0).abs() < 1e-2, "seed {seed}: {l:?}");
        assert!((l.kernel[1] + 1.0).abs() < 1e-2, "seed {seed}: {l:?}");
        assert!(l.bias.abs() < 1e-2, "seed {seed}: {l:?}");
        // the notebook prints `Loss: 0.0000` at step 100
        assert!(
            l.losses[99] < 5e-5,
            "seed {seed}: final loss {}",
            l.losses[99]
        );
        assert!(l.losses.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn same_seed_same_result() {
    assert_eq!(
        learn_edge_kernel(20, 0.01, 3).unwrap(),
        learn_edge_kernel(20, 0.01, 3).unwrap()
    );
}

#[test]
fn zero_steps_keeps_the_init() {
    let l = learn_edge_kernel(0, 0.01, 0).unwrap();
    assert!(l.losses.is_empty());
    // PyTorch's default init for fan-in 2: uniform in ±1/√2
    assert!(l.kernel.iter().all(|w| w.abs() <= 1.0 / 2f32.sqrt()));
}
