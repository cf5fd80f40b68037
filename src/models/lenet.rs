//! LeNet and the notebook's other networks.
use crate::nn::infer::join_name;
use crate::nn::{
    AvgPool2D, BuildOnDevice, Conv2D, Flatten, InferShape, LayerRow, LazyConv2D, LazyLinear,
    Linear, MaxPool2D, OutputShape, ReLU, Sigmoid,
};
use dfdx::nn::tensor_collection::ModuleVisitor;
use dfdx::nn::{Module, NonMutableModule, TensorCollection};
use dfdx::prelude::{Device, Dtype, Shape};

/// The notebook's class `LeNet`, generic over its four parameterised layers,
/// with PyTorch's field names:
///
/// `conv1 → ReLU → MaxPool2D<2> → conv2 → ReLU → MaxPool2D<2> → Flatten → fc1 → ReLU → fc2`.
///
/// The same struct is the network type (holding layer types such as
/// `Conv2D<1, 6, 5, 1, 2>`) and, after `build_module`, the built model
/// (holding their modules). Lazy layers work too: see [`LeNetLazy`].
///
/// PyTorch: the notebook's `class LeNet(nn.Module)` without its final
/// softmax. Parameters are named `conv1.weight`, `conv1.bias`, ..., `fc2.bias`.
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
#[derive(Clone, Debug, Default)]
pub struct LeNet<C1, C2, F1, F2> {
    /// First convolution.
    pub conv1: C1,
    /// Second convolution.
    pub conv2: C2,
    /// First fully connected layer.
    pub fc1: F1,
    /// Output layer.
    pub fc2: F2,
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

impl<C1, C2, F1, F2, D: Device<E>, E: Dtype> BuildOnDevice<D, E> for LeNet<C1, C2, F1, F2>
where
    C1: BuildOnDevice<D, E>,
    C2: BuildOnDevice<D, E>,
    F1: BuildOnDevice<D, E>,
    F2: BuildOnDevice<D, E>,
{
    type Built = LeNet<C1::Built, C2::Built, F1::Built, F2::Built>;
}

impl<C1, C2, F1, F2, E: Dtype, D: Device<E>> TensorCollection<E, D> for LeNet<C1, C2, F1, F2>
where
    C1: TensorCollection<E, D>,
    C2: TensorCollection<E, D>,
    F1: TensorCollection<E, D>,
    F2: TensorCollection<E, D>,
{
    type To<E2: Dtype, D2: Device<E2>> =
        LeNet<C1::To<E2, D2>, C2::To<E2, D2>, F1::To<E2, D2>, F2::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("fc1", |s| &s.fc1, |s| &mut s.fc1),
                Self::module("fc2", |s| &s.fc2, |s| &mut s.fc2),
            ),
            |(conv1, conv2, fc1, fc2)| LeNet {
                conv1,
                conv2,
                fc1,
                fc2,
            },
        )
    }
}

impl<C1, C2, F1, F2> NonMutableModule for LeNet<C1, C2, F1, F2> {}

type Pool = MaxPool2D<2, 2>;

impl<X, C1, C2, F1, F2> Module<X> for LeNet<C1, C2, F1, F2>
where
    C1: Module<X>,
    ReLU: Module<C1::Output, Output = C1::Output, Error = C1::Error>,
    Pool: Module<C1::Output, Error = C1::Error>,
    C2: Module<<Pool as Module<C1::Output>>::Output, Error = C1::Error>,
    ReLU: Module<C2::Output, Output = C2::Output, Error = C1::Error>,
    Pool: Module<C2::Output, Error = C1::Error>,
    Flatten: Module<<Pool as Module<C2::Output>>::Output, Error = C1::Error>,
    F1: Module<
        <Flatten as Module<<Pool as Module<C2::Output>>::Output>>::Output,
        Error = C1::Error,
    >,
    ReLU: Module<F1::Output, Output = F1::Output, Error = C1::Error>,
    F2: Module<F1::Output, Error = C1::Error>,
{
    type Output = F2::Output;
    type Error = C1::Error;

    fn try_forward(&self, x: X) -> Result<Self::Output, Self::Error> {
        let x = Pool::default().try_forward(ReLU.try_forward(self.conv1.try_forward(x)?)?)?;
        let x = Pool::default().try_forward(ReLU.try_forward(self.conv2.try_forward(x)?)?)?;
        let x = ReLU.try_forward(self.fc1.try_forward(Flatten.try_forward(x)?)?)?;
        self.fc2.try_forward(x)
    }
}

/// Shapes between LeNet's layers, for per-sample input `In`.
type AfterConv1<C1, In> = <C1 as InferShape<In>>::Out;
type AfterPool1<C1, In> = OutputShape<Pool, AfterConv1<C1, In>>;
type AfterConv2<C1, C2, In> = <C2 as InferShape<AfterPool1<C1, In>>>::Out;
type AfterFlatten<C1, C2, In> = OutputShape<Flatten, OutputShape<Pool, AfterConv2<C1, C2, In>>>;
type AfterFc1<C1, C2, F1, In> = <F1 as InferShape<AfterFlatten<C1, C2, In>>>::Out;

impl<In: Shape, C1, C2, F1, F2> InferShape<In> for LeNet<C1, C2, F1, F2>
where
    C1: InferShape<In>,
    Pool: InferShape<AfterConv1<C1, In>>,
    C2: InferShape<AfterPool1<C1, In>>,
    Pool: InferShape<AfterConv2<C1, C2, In>>,
    Flatten: InferShape<OutputShape<Pool, AfterConv2<C1, C2, In>>>,
    F1: InferShape<AfterFlatten<C1, C2, In>>,
    F2: InferShape<AfterFc1<C1, C2, F1, In>>,
    ReLU: InferShape<AfterConv1<C1, In>>
        + InferShape<AfterConv2<C1, C2, In>>
        + InferShape<AfterFc1<C1, C2, F1, In>>,
{
    type Concrete = LeNet<
        <C1 as InferShape<In>>::Concrete,
        <C2 as InferShape<AfterPool1<C1, In>>>::Concrete,
        <F1 as InferShape<AfterFlatten<C1, C2, In>>>::Concrete,
        <F2 as InferShape<AfterFc1<C1, C2, F1, In>>>::Concrete,
    >;
    type Out = <F2 as InferShape<AfterFc1<C1, C2, F1, In>>>::Out;

    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        let name = |n: &str| join_name(prefix, n);
        C1::describe(&name("conv1"), rows);
        <ReLU as InferShape<AfterConv1<C1, In>>>::describe(&name("act"), rows);
        <Pool as InferShape<AfterConv1<C1, In>>>::describe(&name("pool"), rows);
        C2::describe(&name("conv2"), rows);
        <ReLU as InferShape<AfterConv2<C1, C2, In>>>::describe(&name("act"), rows);
        <Pool as InferShape<AfterConv2<C1, C2, In>>>::describe(&name("pool"), rows);
        Flatten::describe(&name("flatten"), rows);
        F1::describe(&name("fc1"), rows);
        <ReLU as InferShape<AfterFc1<C1, C2, F1, In>>>::describe(&name("act"), rows);
        F2::describe(&name("fc2"), rows);
    }
}
