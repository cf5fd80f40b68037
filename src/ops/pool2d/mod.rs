//! 2-D max and average pooling (PyTorch's `MaxPool2d` and `AvgPool2d`).
use super::Workspace;
use dfdx::prelude::*;

pub(crate) mod cpu;
pub mod generic;
mod max2x2;

/// Which reduction a pooling window applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolKind {
    /// The largest value in the window; padding counts as −∞.
    Max,
    /// The mean of the window; padding counts as 0 and is included in the
    /// divisor (PyTorch's default `count_include_pad=True`).
    Avg,
}

/// The runtime sizes of one 2-D pooling: `planes` independent `h_in × w_in`
/// planes (batch × channels), each reduced to `h_out × w_out`. Build it with
/// [`Pool2DOp::new`], read it with the `*_shape` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2DOp {
    /// Max or average.
    pub(crate) kind: PoolKind,
    /// Number of planes (`batch · channels`).
    pub(crate) planes: usize,
    /// Input height.
    pub(crate) h_in: usize,
    /// Input width.
    pub(crate) w_in: usize,
    /// Window size (square).
    pub(crate) kernel: usize,
    /// Stride.
    pub(crate) stride: usize,
    /// Padding on all four sides.
    pub(crate) padding: usize,
    /// Output height.
    pub(crate) h_out: usize,
    /// Output width.
    pub(crate) w_out: usize,
}

impl Pool2DOp {
    /// Whether the sizes are consistent with each other and with tensors of
    /// `x` and `out` elements.
    pub(crate) fn fits(&self, x: usize, out: usize) -> bool {
        let same = Self::new(
            self.kind,
            self.planes,
            (self.h_in, self.w_in),
            self.kernel,
            self.stride,
            self.padding,
        ) == Some(*self);
        same && x == self.planes * self.h_in * self.w_in
            && out == self.planes * self.h_out * self.w_out
    }

    /// Max or average.
    pub fn kind(&self) -> PoolKind {
        self.kind
    }

    /// The window's size (square).
    pub fn kernel_size(&self) -> usize {
        self.kernel
    }

    /// The stride (both directions).
    pub fn stride(&self) -> usize {
        self.stride
    }

    /// The padding (all four sides).
    pub fn padding(&self) -> usize {
        self.padding
    }

    /// The input's shape `(planes, h_in, w_in)`.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        (self.planes, self.h_in, self.w_in)
    }

    /// The output's shape `(planes, h_out, w_out)`.
    pub fn output_shape(&self) -> (usize, usize, usize) {
        (self.planes, self.h_out, self.w_out)
    }

    /// Sizes for the given planes and window; `None` if the window does not
    /// fit, the stride is 0, or the padding is more than half the window.
    pub fn new(
        kind: PoolKind,
        planes: usize,
        (h_in, w_in): (usize, usize),
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Option<Self> {
        if 2 * padding > kernel {
            return None;
        }
        let h_out = crate::shapes::try_conv_output_size(h_in, kernel, stride, padding)?;
        let w_out = crate::shapes::try_conv_output_size(w_in, kernel, stride, padding)?;
        Some(Self {
            kind,
            planes,
            h_in,
            w_in,
            kernel,
            stride,
            padding,
            h_out,
            w_out,
        })
    }

    /// The valid input rows (or columns) `lo..hi` of the window starting at
    /// output index `o` along an axis of length `len`.
    #[inline(always)]
    pub(crate) fn window(&self, o: usize, len: usize) -> (usize, usize) {
        let start = o * self.stride;
        let lo = start.saturating_sub(self.padding);
        let hi = (start + self.kernel).saturating_sub(self.padding).min(len);
        (lo, hi.max(lo))
    }
}

/// A device that can run [`Pool2DOp`] with autograd.
/// On [`Cpu`], sizes that do not match the tensors give
/// `Err(CpuError::WrongNumElements)`.
pub trait Pool2DKernel<E: Dtype>: Device<E> {
    /// Pools `x` (`op.planes · op.h_in · op.w_in` elements) into the shape
    /// `out`. The kernel takes its scratch memory from `workspace` (the
    /// layer's own), so that the next call reuses it.
    fn try_pool2d<S: Shape, So: Shape, T: Tape<E, Self>>(
        op: Pool2DOp,
        x: Tensor<S, E, Self, T>,
        out: So,
        workspace: &Workspace,
    ) -> Result<Tensor<So, E, Self, T>, Self::Err>;
}

/// The CPU kernels, for each dtype they support.
macro_rules! cpu_pool2d {
    ($($e:ty),*) => {$(
        impl Pool2DKernel<$e> for Cpu {
            fn try_pool2d<S: Shape, So: Shape, T: Tape<$e, Self>>(
                op: Pool2DOp,
                x: Tensor<S, $e, Self, T>,
                out: So,
                workspace: &Workspace,
            ) -> Result<Tensor<So, $e, Self, T>, Self::Err> {
                if !op.fits(x.shape().num_elements(), out.num_elements()) {
                    return Err(CpuError::WrongNumElements);
                }
                cpu::pool2d(op, x, out, workspace)
            }
        }
    )*};
}
cpu_pool2d!(f32, f64);

#[cfg(feature = "cuda")]
impl<E: Dtype> Pool2DKernel<E> for Cuda
where
    Cuda: Device<E>,
{
    fn try_pool2d<S: Shape, So: Shape, T: Tape<E, Self>>(
        op: Pool2DOp,
        x: Tensor<S, E, Self, T>,
        out: So,
        _workspace: &Workspace,
    ) -> Result<Tensor<So, E, Self, T>, Self::Err> {
        generic::pool2d(op, x, out)
    }
}
