//! A residual network for MNIST: ResNet's basic block with batch norms,
//! three stages, global average pooling, dropout and a linear head.
use crate::nn::{
    add_residual_relu, BatchNorm2D, BatchNormReLU2D, Conv2D, Dropout, GlobalAvgPool2D, Identity,
    Linear,
};
use crate::ops::ReluKernel;
use crate::shapes::checks::ResidualShapes;
use crate::Network;
use dfdx::nn::{Module, ModuleMut};
use dfdx::prelude::*;

/// ResNet's basic block (He et al., 2016), with PyTorch's field names:
///
/// `y = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`
///
/// with 3×3 convolutions without bias, the first one of stride `S`. `bn1`
/// is a [`BatchNormReLU2D`]: the batch norm and the ReLU after it in one op
/// (a replacement for it must rectify too), and the sum and the last ReLU
/// are one op as well ([`add_residual_relu`]). The
/// shortcut is [`Identity`] when the block keeps the shape, or a
/// [`Projection`] (1×1 convolution of stride `S` and a batch norm) when it
/// does not; a shortcut whose shape differs from the block's does not
/// compile.
///
/// In training (`forward_mut`) on the CPU in f32, a block with these
/// default layers runs as one op: the values between its layers never
/// become tensors, which saves their copies and zero-filled buffers
/// (ResNet's training step ran about 20% faster). The result is the same,
/// bit for bit. A block with any other layer runs layer by layer. The
/// training pass asks `'static` of the layers and the tape, for that
/// run-time check of their types.
///
/// PyTorch: the `BasicBlock(cin, cout, stride)` of the issue tracker's
/// reference model; parameters `conv1.weight`, `bn1.{weight, bias,
/// running_mean, running_var, num_batches_tracked}`, `conv2.weight`,
/// `bn2.*`, and for a projection `shortcut.0.weight`, `shortcut.1.*`.
///
/// # Shapes
/// `(B, IN, H, W)` → `(B, OUT, H', W')` with `H' = (H − 1) / S + 1`.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::models::{BasicBlock, Projection};
/// let dev = Cpu::seed_from_u64(0);
/// let block = dev.build_module::<BasicBlock<16, 32, 2, Projection<16, 32, 2>>, f32>();
/// let y: Tensor<Rank4<2, 32, 14, 14>, f32, _> = block.forward(dev.zeros::<Rank4<2, 16, 28, 28>>());
/// # let _ = y;
/// ```
#[derive(Network, Clone, Debug, Default)]
pub struct BasicBlock<
    const IN: usize,
    const OUT: usize,
    const S: usize,
    SC = Identity,
    C1 = Conv2D<IN, OUT, 3, S, 1, false>,
    B1 = BatchNormReLU2D<OUT>,
    C2 = Conv2D<OUT, OUT, 3, 1, 1, false>,
    B2 = BatchNorm2D<OUT>,
> {
    /// The first 3×3 convolution, of stride `S`.
    pub conv1: C1,
    /// Its batch norm, and the ReLU after it.
    pub bn1: B1,
    /// The second 3×3 convolution.
    pub conv2: C2,
    /// Its batch norm.
    pub bn2: B2,
    /// The shortcut: [`Identity`] or a [`Projection`].
    pub shortcut: SC,
}

/// The projection shortcut of a [`BasicBlock`] that changes the shape: a
/// 1×1 convolution of stride `S` without bias, then a batch norm.
///
/// PyTorch: `nn.Sequential(nn.Conv2d(IN, OUT, 1, S, bias=False),
/// nn.BatchNorm2d(OUT))`.
pub type Projection<const IN: usize, const OUT: usize, const S: usize> =
    (Conv2D<IN, OUT, 1, S, 0, false>, BatchNorm2D<OUT>);

/// `Module` (inference) or `ModuleMut` (training) of [`BasicBlock`]: the
/// trait, its method, the receiver, how the pass starts (the training pass
/// first tries the fused block, see [`resnet_fused`](super::resnet_fused)),
/// and the extra bound that needs on the layers and the tape (`'static`,
/// for its run-time type check).
macro_rules! basic_block_forward {
    ($trait:ident, $method:ident, [$($mut:tt)?], $start:ident, [$($extra:tt)*]) => {
        impl<
                const IN: usize,
                const OUT: usize,
                const S: usize,
                SC,
                C1,
                B1,
                C2,
                B2,
                B: Dim,
                const C: usize,
                const H: usize,
                const W: usize,
                const C3: usize,
                const H3: usize,
                const W3: usize,
                const C4: usize,
                const H4: usize,
                const W4: usize,
                E: Dtype,
                D: Device<E>,
                T: Tape<E, D> + Merge<T> + Default $($extra)*,
            > $trait<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>>
            for BasicBlock<IN, OUT, S, SC, C1, B1, C2, B2>
        where
            C1: $trait<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>, Error = D::Err> $($extra)*,
            B1: $trait<C1::Output, Output = C1::Output, Error = D::Err> $($extra)*,
            C2: $trait<
                    C1::Output,
                    Output = Tensor<(B, Const<C3>, Const<H3>, Const<W3>), E, D, T>,
                    Error = D::Err,
                > $($extra)*,
            B2: $trait<C2::Output, Output = C2::Output, Error = D::Err> $($extra)*,
            SC: $trait<
                    Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
                    Output = Tensor<(B, Const<C4>, Const<H4>, Const<W4>), E, D, T>,
                    Error = D::Err,
                > $($extra)*,
            D: ReluKernel<E>,
            (): ResidualShapes<C3, H3, W3, C4, H4, W4>,
        {
            type Output = Tensor<(B, Const<C3>, Const<H3>, Const<W3>), E, D, T>;
            type Error = D::Err;

            fn $method(
                &$($mut)? self,
                x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
            ) -> Result<Self::Output, D::Err> {
                let x = $start!(self, x);
                let y = self.conv1.$method(x.with_empty_tape())?;
                let y = self.bn1.$method(y)?;
                let y = self.bn2.$method(self.conv2.$method(y)?)?;
                let shortcut = self.shortcut.$method(x)?;
                add_residual_relu(y, shortcut)
            }
        }
    };
}

/// The inference pass starts with the layers.
macro_rules! layer_by_layer {
    ($block:ident, $x:ident) => {
        $x
    };
}

/// The training pass runs the fused block where it can.
macro_rules! fused_where_possible {
    ($block:ident, $x:ident) => {{
        let batch = $x.shape().0;
        let out = (batch, Const::<C3>, Const::<H3>, Const::<W3>);
        use super::resnet_fused::{train, Fused};
        match train($block, $x, (batch.size(), H, W), out) {
            Fused::Ran(result) => return result,
            Fused::Declined(x) => x,
        }
    }};
}

basic_block_forward!(Module, try_forward, [], layer_by_layer, []);
basic_block_forward!(ModuleMut, try_forward_mut, [mut], fused_where_possible, [+ 'static]);
// first in a model: the input's gradient is computed (and dropped)
crate::nn::no_input_grad::no_input_grad_traced!(
    [const IN: usize, const OUT: usize, const S: usize, SC, C1, B1, C2, B2,]
    BasicBlock<IN, OUT, S, SC, C1, B1, C2, B2>
);

/// The residual network for MNIST, matching this PyTorch model key for
/// key (so PyTorch-trained weights load and predict the same):
///
/// ```python
/// class MnistResNet(nn.Module):
///     def __init__(self):
///         super().__init__()
///         self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
///         self.layer1 = BasicBlock(16, 16, 1)
///         self.layer2 = BasicBlock(16, 32, 2)
///         self.layer3 = BasicBlock(32, 64, 2)
///         self.dropout = nn.Dropout(0.2)
///         self.fc = nn.Linear(64, 10)
///     def forward(self, x):
///         x = self.layer3(self.layer2(self.layer1(self.stem(x))))
///         x = F.adaptive_avg_pool2d(x, 1).flatten(1)
///         return self.fc(self.dropout(x))
/// ```
///
/// 77,754 trainable parameters; keys `stem.0.weight`, `stem.1.*`,
/// `layer1.conv1.weight`, `layer1.bn1.*`, …, `layer2.shortcut.0.weight`,
/// `layer2.shortcut.1.*`, …, `fc.weight`, `fc.bias`.
///
/// # Shapes
/// `(B, 1, 28, 28)` → `(B, 10)`: 16 channels at 28×28, 32 at 14×14, 64 at
/// 7×7, then the mean of each channel.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let net = dev.build_module::<MnistResNet, f32>();
/// assert_eq!(net.num_trainable_params(), 77_754);
/// let y: Tensor<Rank2<2, 10>, f32, _> = net.forward(dev.zeros::<Rank4<2, 1, 28, 28>>());
/// # let _ = y;
/// ```
#[derive(Network, Clone, Debug, Default)]
#[network(sequential, input = (1, 28, 28))]
pub struct MnistResNet<
    Stem = (Conv2D<1, 16, 3, 1, 1, false>, BatchNormReLU2D<16>),
    L1 = BasicBlock<16, 16, 1>,
    L2 = BasicBlock<16, 32, 2, Projection<16, 32, 2>>,
    L3 = BasicBlock<32, 64, 2, Projection<32, 64, 2>>,
    Pool = GlobalAvgPool2D,
    Drop = Dropout<20>,
    Fc = Linear<64, 10>,
> {
    /// Convolution, then batch norm and ReLU in one op ([`BatchNormReLU2D`]): 16 channels at 28×28.
    pub stem: Stem,
    /// 16 → 16 channels at 28×28.
    pub layer1: L1,
    /// 16 → 32 channels, 28×28 → 14×14.
    pub layer2: L2,
    /// 32 → 64 channels, 14×14 → 7×7.
    pub layer3: L3,
    /// The mean of each channel (no tensors).
    pub pool: Pool,
    /// Dropout with p = 0.2 (training only).
    pub dropout: Drop,
    /// The linear head, 64 → 10.
    pub fc: Fc,
}
