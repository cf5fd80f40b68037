//! 2-D convolution (cross-correlation, as PyTorch's `F.conv2d`).
use super::Workspace;
use dfdx::prelude::*;

pub(crate) mod cpu;
pub(crate) mod direct;
mod direct_grad;
mod direct_input;
pub mod generic;
mod plan;
mod transpose;
mod winograd;

/// The runtime sizes of one 2-D convolution, checked against each other:
/// build it with [`Conv2DOp::new`], read it with the `*_shape` methods.
///
/// Input `(batch, chan_in, h_in, w_in)`, weight `(chan_out, chan_in, kh, kw)`,
/// bias `(chan_out,)`, output `(batch, chan_out, h_out, w_out)`, all
/// contiguous and row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2DOp {
    /// Batch size.
    pub(crate) batch: usize,
    /// Input channels.
    pub(crate) chan_in: usize,
    /// Output channels.
    pub(crate) chan_out: usize,
    /// Input height.
    pub(crate) h_in: usize,
    /// Input width.
    pub(crate) w_in: usize,
    /// Kernel height.
    pub(crate) kh: usize,
    /// Kernel width.
    pub(crate) kw: usize,
    /// Stride (both directions).
    pub(crate) stride: usize,
    /// Zero padding (all four sides).
    pub(crate) padding: usize,
    /// Output height.
    pub(crate) h_out: usize,
    /// Output width.
    pub(crate) w_out: usize,
}

impl Conv2DOp {
    /// Whether the sizes are consistent with each other (the output size
    /// follows the formula, nothing is zero) and with tensors of `x`, `w`,
    /// `b` (if there is a bias) and `out` elements.
    pub(crate) fn fits(&self, x: usize, w: usize, b: Option<usize>, out: usize) -> bool {
        let same = Self::new(
            self.batch,
            self.chan_in,
            self.chan_out,
            (self.h_in, self.w_in),
            (self.kh, self.kw),
            self.stride,
            self.padding,
        ) == Some(*self);
        same && x == self.batch * self.chan_in * self.h_in * self.w_in
            && w == self.chan_out * self.patch_len()
            && b.is_none_or(|b| b == self.chan_out)
            && out == self.batch * self.chan_out * self.out_plane()
    }

    /// Sizes for the given input and kernel; the output size follows
    /// [`conv_output_size`](crate::shapes::conv_output_size).
    /// `None` if the kernel does not fit or the stride is 0.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        chan_in: usize,
        chan_out: usize,
        (h_in, w_in): (usize, usize),
        (kh, kw): (usize, usize),
        stride: usize,
        padding: usize,
    ) -> Option<Self> {
        let h_out = crate::shapes::try_conv_output_size(h_in, kh, stride, padding)?;
        let w_out = crate::shapes::try_conv_output_size(w_in, kw, stride, padding)?;
        Some(Self {
            batch,
            chan_in,
            chan_out,
            h_in,
            w_in,
            kh,
            kw,
            stride,
            padding,
            h_out,
            w_out,
        })
    }

    /// Rows of the im2col matrix: `chan_in · kh · kw`.
    pub(crate) fn patch_len(&self) -> usize {
        self.chan_in * self.kh * self.kw
    }

    /// Output positions per channel: `h_out · w_out`.
    pub(crate) fn out_plane(&self) -> usize {
        self.h_out * self.w_out
    }

    /// Elements of the output: `batch · chan_out · h_out · w_out`.
    pub(crate) fn output_len(&self) -> usize {
        self.batch * self.chan_out * self.out_plane()
    }

    /// The input's shape `(batch, chan_in, h_in, w_in)`.
    pub fn input_shape(&self) -> (usize, usize, usize, usize) {
        (self.batch, self.chan_in, self.h_in, self.w_in)
    }

    /// The weight's shape `(chan_out, chan_in, kh, kw)`.
    pub fn weight_shape(&self) -> (usize, usize, usize, usize) {
        (self.chan_out, self.chan_in, self.kh, self.kw)
    }

    /// The bias's shape `(chan_out,)`.
    pub fn bias_shape(&self) -> (usize,) {
        (self.chan_out,)
    }

    /// The kernel's size `(kh, kw)`.
    pub fn kernel_size(&self) -> (usize, usize) {
        (self.kh, self.kw)
    }

    /// The stride (both directions).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The zero padding (all four sides).
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// The output's shape `(batch, chan_out, h_out, w_out)`.
    pub fn output_shape(&self) -> (usize, usize, usize, usize) {
        (self.batch, self.chan_out, self.h_out, self.w_out)
    }

    /// The input position `(y, x)` read by output `(oy, ox)` at kernel offset
    /// `(ky, kx)`, or `None` when it falls in the padding.
    #[inline(always)]
    pub(crate) fn source(
        &self,
        oy: usize,
        ox: usize,
        ky: usize,
        kx: usize,
    ) -> Option<(usize, usize)> {
        let y = (oy * self.stride + ky).checked_sub(self.padding)?;
        let x = (ox * self.stride + kx).checked_sub(self.padding)?;
        (y < self.h_in && x < self.w_in).then_some((y, x))
    }
}

/// A device that can run [`Conv2DOp`] with autograd.
///
/// [`Cpu`] runs hand-written kernels; other devices run the
/// [`generic`] composition of dfdx ops.
/// On [`Cpu`], sizes that do not match the tensors give
/// `Err(CpuError::WrongNumElements)`.
pub trait Conv2DKernel<E: Dtype>: Device<E> {
    /// `y = conv2d(x, weight) + bias`, recording the backward pass on `x`'s tape.
    /// Without a bias (`None`, PyTorch's `bias=False`) it is `conv2d(x, weight)`.
    ///
    /// `x`, `weight` and `bias` hold `op`'s sizes; `out` is the output's shape
    /// (`op.batch · op.chan_out · op.h_out · op.w_out` elements). The kernel
    /// takes its scratch memory from `workspace` (the layer's own), so a
    /// training step reuses the buffers of the step before.
    fn try_conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, T: Tape<E, Self>>(
        op: Conv2DOp,
        x: Tensor<S, E, Self, T>,
        weight: &Tensor<Sw, E, Self>,
        bias: Option<&Tensor<Sb, E, Self>>,
        out: So,
        workspace: &Workspace,
    ) -> Result<Tensor<So, E, Self, T>, Self::Err>;

    /// [`try_conv2d`](Self::try_conv2d) on a traced `x` whose own gradient
    /// nobody wants ([`NoInputGrad`](crate::nn::NoInputGrad), a batch of
    /// data): the backward pass records the gradients of `weight` and `bias`
    /// and need not compute `x`'s. [`Cpu`] skips it (`x`'s gradient is then
    /// absent from the gradients); the default computes it all the same.
    fn try_conv2d_no_input_grad<S: Shape, Sw: Shape, Sb: Shape, So: Shape>(
        op: Conv2DOp,
        x: Tensor<S, E, Self, OwnedTape<E, Self>>,
        weight: &Tensor<Sw, E, Self>,
        bias: Option<&Tensor<Sb, E, Self>>,
        out: So,
        workspace: &Workspace,
    ) -> Result<Tensor<So, E, Self, OwnedTape<E, Self>>, Self::Err> {
        Self::try_conv2d(op, x, weight, bias, out, workspace)
    }
}

/// [`cpu::conv2d`] after checking that `op` fits the tensors; with
/// `input_grad` false the backward pass leaves `x`'s gradient out.
fn cpu_checked<S: Shape, Sw: Shape, Sb: Shape, So: Shape, E: Dtype, T: Tape<E, Cpu>>(
    op: Conv2DOp,
    x: Tensor<S, E, Cpu, T>,
    (weight, bias): (&Tensor<Sw, E, Cpu>, Option<&Tensor<Sb, E, Cpu>>),
    out: So,
    workspace: &Workspace,
    input_grad: bool,
) -> Result<Tensor<So, E, Cpu, T>, CpuError> {
    let (x_len, w_len) = (x.shape().num_elements(), weight.shape().num_elements());
    let b_len = bias.map(|b| b.shape().num_elements());
    if !op.fits(x_len, w_len, b_len, out.num_elements()) {
        return Err(CpuError::WrongNumElements);
    }
    cpu::conv2d(op, x, (weight, bias), out, workspace, input_grad)
}

/// The CPU kernels, for each dtype they support.
macro_rules! cpu_conv2d {
    ($($e:ty),*) => {$(
        impl Conv2DKernel<$e> for Cpu {
            fn try_conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, T: Tape<$e, Self>>(
                op: Conv2DOp,
                x: Tensor<S, $e, Self, T>,
                weight: &Tensor<Sw, $e, Self>,
                bias: Option<&Tensor<Sb, $e, Self>>,
                out: So,
                workspace: &Workspace,
            ) -> Result<Tensor<So, $e, Self, T>, Self::Err> {
                cpu_checked(op, x, (weight, bias), out, workspace, true)
            }

            fn try_conv2d_no_input_grad<S: Shape, Sw: Shape, Sb: Shape, So: Shape>(
                op: Conv2DOp,
                x: Tensor<S, $e, Self, OwnedTape<$e, Self>>,
                weight: &Tensor<Sw, $e, Self>,
                bias: Option<&Tensor<Sb, $e, Self>>,
                out: So,
                workspace: &Workspace,
            ) -> Result<Tensor<So, $e, Self, OwnedTape<$e, Self>>, Self::Err> {
                cpu_checked(op, x, (weight, bias), out, workspace, false)
            }
        }
    )*};
}
cpu_conv2d!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype> Conv2DKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_conv2d<S: Shape, Sw: Shape, Sb: Shape, So: Shape, T: Tape<E, Self>>(
        op: Conv2DOp,
        x: Tensor<S, E, Self, T>,
        weight: &Tensor<Sw, E, Self>,
        bias: Option<&Tensor<Sb, E, Self>>,
        out: So,
        _workspace: &Workspace,
    ) -> Result<Tensor<So, E, Self, T>, Self::Err> {
        generic::conv2d(op, x, weight, bias, out)
    }
}
