//! Learning the edge kernel from an image and its edge map.
use super::error::TutorialError;
use super::kernels::EDGE;
use super::tensors::edge_image;
use crate::nn::{Conv2DModule, DeviceBuildExt, Inferred, LazyConv2DRect};
use dfdx::optim::{Optimizer, Sgd, SgdConfig};
use dfdx::prelude::*;

/// The one-layer network of the demo: a lazy 1×2 convolution with one output
/// channel whose input channel count (1) is inferred from the 6×8 grey
/// image at compile time. PyTorch: `nn.LazyConv2d(out_channels=1, kernel_size=(1, 2))`.
pub type EdgeNet = Inferred<LazyConv2DRect<1, 1, 2>, Rank3<1, 6, 8>>;

/// The outcome of [`learn_edge_kernel`].
#[derive(Clone, Debug, PartialEq)]
pub struct LearnedKernel {
    /// The learned 1×2 kernel (the layer's `weight[0][0][0]`); the target is
    /// [`EDGE`] `[1, −1]`.
    pub kernel: [f32; 2],
    /// The learned bias; the target is 0.
    pub bias: f32,
    /// The loss at each step, computed before that step's update (what the
    /// notebook prints as `Epoch: e/100, Loss: …`).
    pub losses: Vec<f32>,
}

/// The notebook's "learn a kernel" demo: given the 6×8 edge image
/// ([`edge_image`]) and its edge map (the image correlated with [`EDGE`]),
/// train a single [`EdgeNet`] convolution by plain SGD (no momentum) on the
/// sum of squared errors, `torch.sum((preds - y) ** 2)`, for `steps` steps
/// with learning rate `lr`. The initial weights are PyTorch's default init
/// drawn from a CPU generator seeded with `seed`.
///
/// With the notebook's settings (100 steps, lr 0.01) the kernel reaches
/// `[1, −1]` and the bias 0 to within 1e-2 (see the tests).
///
/// ```
/// let learned = static_nn::tutorial::learn_edge_kernel(100, 0.01, 0)?;
/// assert!((learned.kernel[0] - 1.0).abs() < 1e-2 && (learned.kernel[1] + 1.0).abs() < 1e-2);
/// assert!(learned.losses[99] < learned.losses[0]);
/// # Ok::<(), static_nn::tutorial::TutorialError>(())
/// ```
pub fn learn_edge_kernel(steps: usize, lr: f64, seed: u64) -> Result<LearnedKernel, TutorialError> {
    let dev = Cpu::seed_from_u64(seed);
    let mut model = dev.build_module::<EdgeNet, f32>();
    // the target: the edge map made by the known kernel
    let known = Conv2DModule::<1, 1, 1, 2, 1, 0, f32, Cpu>::from_kernel(&dev, [[EDGE]]);
    let x = dev.tensor(edge_image());
    let y = known.forward(x.clone());

    let mut opt = Sgd::new(
        &model,
        SgdConfig {
            lr,
            momentum: None,
            weight_decay: None,
        },
    );
    let mut grads = model.alloc_grads();
    let mut losses = Vec::with_capacity(steps);
    for _ in 0..steps {
        let preds = model.forward(x.clone().traced(grads));
        let loss = (preds - y.clone()).square().sum();
        losses.push(loss.array());
        grads = loss.backward();
        opt.update(&mut model, &grads)
            .map_err(|e| crate::DeviceError::new("the optimizer update", e))?;
        model.zero_grads(&mut grads);
    }
    let w = model.weight.array()[0][0][0];
    Ok(LearnedKernel {
        kernel: w,
        bias: model.bias.as_ref().map_or(0.0, |b| b.array()[0]),
        losses,
    })
}
