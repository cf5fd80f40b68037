//! ResNet-20 for CIFAR-10 (He et al., 2016, section 4.2).
use super::resnet::{BasicBlock, Projection};
use crate::nn::{BatchNormReLU2D, Conv2D, GlobalAvgPool2D, Linear};
use crate::Network;

/// ResNet-20, the CIFAR design of He et al. (2016, "Deep Residual Learning
/// for Image Recognition", section 4.2): a 3×3 convolution to 16 channels,
/// three stages of three [`BasicBlock`]s with 16, 32 and 64 channels (the
/// first block of the second and third stage halves the feature map),
/// global average pooling and a linear layer to the 10 classes: 6·3 + 2 = 20
/// layers with weights. The paper reports 8.75% test error on CIFAR-10.
///
/// The shortcuts that change the shape are 1×1 projections with batch norm
/// ([`Projection`], the paper's option B), as in most PyTorch
/// implementations; the paper's own CIFAR model pads with zeros (option A,
/// no parameters), so this one has 272,474 trainable parameters where the
/// paper's has 269,722 (the two projections hold 2,752).
///
/// PyTorch keys: `stem.0.weight`, `stem.1.*`, `layer1.0.conv1.weight`,
/// `layer1.0.bn1.*`, …, `layer2.0.shortcut.0.weight`, …, `fc.weight`,
/// `fc.bias`.
///
/// # Shapes
/// `(B, 3, 32, 32)` → `(B, 10)` logits; it declares its image
/// (`#[network(input = (3, 32, 32))]`), so a
/// [`Classifier`](crate::train::Classifier) needs no sizes.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::models::CifarResNet20;
/// let dev = Cpu::seed_from_u64(0);
/// let net = dev.build_module::<CifarResNet20, f32>();
/// assert_eq!(net.num_trainable_params(), 272_474);
/// let y: Tensor<Rank2<2, 10>, f32, _> = net.forward(dev.zeros::<Rank4<2, 3, 32, 32>>());
/// # let _ = y;
/// ```
#[derive(Network, Clone, Debug, Default)]
#[network(sequential, input = (3, 32, 32))]
pub struct CifarResNet20<
    Stem = (Conv2D<3, 16, 3, 1, 1, false>, BatchNormReLU2D<16>),
    L1 = (
        BasicBlock<16, 16, 1>,
        BasicBlock<16, 16, 1>,
        BasicBlock<16, 16, 1>,
    ),
    L2 = (
        BasicBlock<16, 32, 2, Projection<16, 32, 2>>,
        BasicBlock<32, 32, 1>,
        BasicBlock<32, 32, 1>,
    ),
    L3 = (
        BasicBlock<32, 64, 2, Projection<32, 64, 2>>,
        BasicBlock<64, 64, 1>,
        BasicBlock<64, 64, 1>,
    ),
    Pool = GlobalAvgPool2D,
    Fc = Linear<64, 10>,
> {
    /// Convolution, then batch norm and ReLU in one op ([`BatchNormReLU2D`]): 16 channels at 32×32.
    pub stem: Stem,
    /// Three blocks, 16 channels at 32×32.
    pub layer1: L1,
    /// Three blocks, 16 → 32 channels, 32×32 → 16×16.
    pub layer2: L2,
    /// Three blocks, 32 → 64 channels, 16×16 → 8×8.
    pub layer3: L3,
    /// The mean of each channel (no tensors).
    pub pool: Pool,
    /// The linear head, 64 → 10.
    pub fc: Fc,
}
