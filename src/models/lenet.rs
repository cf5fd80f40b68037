//! LeNet and the notebook's other networks.
use crate::nn::{
    AvgPool2D, AvgPool2DModule, Conv2D, Conv2DModule, Flatten, LazyConv2D, LazyLinear, Linear,
    LinearModule, MaxPool2D, MaxPool2DModule, ReLU, Sequential, Sigmoid,
};
use crate::shapes::ImageInput;
use crate::Network;
use dfdx::prelude::{Const, Device, Dtype, Rank3};

/// The notebook's class `LeNet`, generic over its four parameterised layers,
/// with PyTorch's field names:
///
/// `conv1 → act → pool → conv2 → act → pool → flatten → fc1 → act → fc2`,
///
/// where `act` is `ReLU`, `pool` is `MaxPool2D<2>` and `flatten` is
/// `Flatten` (the trailing type parameters, which have these defaults), each
/// one module used several times, as in the notebook.
///
/// The same struct is the network type (holding layer types such as
/// `Conv2D<1, 6, 5, 1, 2>`) and, after `build_module`, the built model
/// (holding their modules). Lazy layers work too: see [`LeNetLazy`]. Its
/// building, parameter names, summary and forward passes are derived
/// ([`Network`](crate::Network), `#[network(sequential = [..])]`).
///
/// PyTorch: the notebook's `class LeNet(nn.Module)` without its final
/// softmax. Parameters are named `conv1.weight`, `conv1.bias`, ..., `fc2.bias`
/// (`act`, `pool` and `flatten` hold none).
///
/// # Shapes
/// `(B, C, H, W)` → `(B, classes)`, all sizes checked at compile time.
///
/// ```
/// use static_nn::prelude::*;
/// type Net = LeNet<Conv2D<1, 6, 5, 1, 2>, Conv2D<6, 16, 5>, Linear<400, 84>, Linear<84, 10>>;
/// let dev = Cpu::default();
/// let net = dev.build_module::<Net, f32>();
/// let x: Tensor<Rank4<64, 1, 28, 28>, f32, _> = dev.sample_normal();
/// let logits: Tensor<Rank2<64, 10>, f32, _> = net.forward(x);
/// assert_eq!(net.num_trainable_params(), 37_106);
/// # let _ = logits;
/// ```
#[derive(Network, Clone, Debug, Default)]
#[network(
    sequential = [conv1, act, pool, conv2, act, pool, flatten, fc1, act, fc2],
    input = (1, 28, 28)
)]
pub struct LeNet<C1, C2, F1, F2, A = ReLU, P = MaxPool2D<2, 2>, Fl = Flatten> {
    /// First convolution.
    pub conv1: C1,
    /// Second convolution.
    pub conv2: C2,
    /// First fully connected layer.
    pub fc1: F1,
    /// Output layer.
    pub fc2: F2,
    /// The activation after `conv1`, `conv2` and `fc1`.
    pub act: A,
    /// The pooling after each convolution.
    pub pool: P,
    /// Flattens the feature maps for `fc1`.
    pub flatten: Fl,
}

/// The class LeNet of the notebook: ReLU, max pool twice, 400 → 84 → 10.
pub type LeNetClass =
    LeNet<Conv2D<1, 6, 5, 1, 2>, Conv2D<6, 16, 5>, Linear<400, 84>, Linear<84, 10>>;

/// The class LeNet written with lazy layers, as the notebook does
/// (`nn.LazyConv2d`, `nn.LazyLinear`); build it as
/// `Inferred<LeNetLazy, Rank3<1, 28, 28>>`.
pub type LeNetLazy =
    LeNet<LazyConv2D<6, 5, 1, 2>, LazyConv2D<16, 5>, LazyLinear<84>, LazyLinear<10>>;

/// The notebook's `nn.Sequential` LeNet: max pool after the first block,
/// average pool after the second. PyTorch keys `0.*`, `3.*`, `7.*`, `9.*`.
pub type LeNetSeq = (
    Conv2D<1, 6, 5, 1, 2>,
    ReLU,
    MaxPool2D<2, 2>,
    Conv2D<6, 16, 5>,
    ReLU,
    AvgPool2D<2, 2>,
    Flatten,
    Linear<400, 84>,
    ReLU,
    Linear<84, 10>,
);

/// LeNet-5 (LeCun et al., 1998) as the notebook describes it: sigmoid,
/// average pooling, 400 → 120 → 84 → 10. PyTorch keys `0.*`, `3.*`, `7.*`,
/// `9.*`, `11.*`.
pub type LeNet5 = (
    Conv2D<1, 6, 5, 1, 2>,
    Sigmoid,
    AvgPool2D<2, 2>,
    Conv2D<6, 16, 5>,
    Sigmoid,
    AvgPool2D<2, 2>,
    Flatten,
    Linear<400, 120>,
    Sigmoid,
    Linear<120, 84>,
    Sigmoid,
    Linear<84, 10>,
);

/// The notebook's MLP, 784 → 128 → 10 with ReLU, as `nn.Sequential(Flatten,
/// Linear, ReLU, Linear)`: PyTorch keys `1.*` and `3.*`.
pub type Mlp = (Flatten, Linear<784, 128>, ReLU, Linear<128, 10>);

/// Declares that the built tuple networks take MNIST's `1×28×28` images: a
/// tuple's first layer does not fix the image's height and width, so each
/// one is named here, built (`E`, `D` are the impl's dtype and device).
macro_rules! mnist_input {
    ($($built:ty),* $(,)?) => {
        $(impl<E: Dtype, D: Device<E>> ImageInput for $built {
            type Image = Rank3<1, 28, 28>;
        })*
    };
}

type Conv1<E, D> = Conv2DModule<1, 6, 5, 5, 1, 2, E, D>;
type Conv2<E, D> = Conv2DModule<6, 16, 5, 5, 1, 0, E, D>;
type Fc<const I: usize, const O: usize, E, D> = LinearModule<Const<I>, O, E, D>;

mnist_input!(
    // LeNetSeq
    Sequential<(
        Conv1<E, D>,
        ReLU,
        MaxPool2DModule<2, 2>,
        Conv2<E, D>,
        ReLU,
        AvgPool2DModule<2, 2>,
        Flatten,
        Fc<400, 84, E, D>,
        ReLU,
        Fc<84, 10, E, D>,
    )>,
    // LeNet5
    Sequential<(
        Conv1<E, D>,
        Sigmoid,
        AvgPool2DModule<2, 2>,
        Conv2<E, D>,
        Sigmoid,
        AvgPool2DModule<2, 2>,
        Flatten,
        Fc<400, 120, E, D>,
        Sigmoid,
        Fc<120, 84, E, D>,
        Sigmoid,
        Fc<84, 10, E, D>,
    )>,
    // Mlp
    Sequential<(Flatten, Fc<784, 128, E, D>, ReLU, Fc<128, 10, E, D>)>,
);
