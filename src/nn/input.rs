//! Declaring the image a tuple network takes.
use crate::shapes::ImageInput;
use dfdx::nn::{Module, NonMutableModule, ZeroSizedModule};
use dfdx::prelude::*;

/// Declares the image a network takes, `C×H×W`, as its first layer: a
/// tuple `(Input<3, 32, 32>, Conv2D<3, 16, 3>, ..)` then implements
/// [`ImageInput`], so a [`Classifier`](crate::train::Classifier) and the data
/// loaders know its image without being told. It passes its input on
/// unchanged and has no parameters, but holds a tuple index, so the layers
/// after it are keyed from `1.*`.
///
/// PyTorch has no such layer (Keras: `keras.Input(shape=(H, W, C))`).
///
/// # Shapes
/// - input: `(B, C, H, W)` or `(C, H, W)`, exactly these `C`, `H`, `W`
///   (anything else does not compile);
/// - output: the same.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::shapes::{ImageInput, ImageShape};
/// type Net = (Input<3, 8, 8>, Conv2D<3, 4, 3>, ReLU, Flatten, Linear<144, 5>);
/// type Built = <Net as BuildOnDevice<Cpu, f32>>::Built;
/// assert_eq!(<<Built as ImageInput>::Image as ImageShape>::DIMS, (3, 8, 8));
/// let dev = Cpu::default();
/// let net = dev.build_module::<Net, f32>();
/// let y = net.forward(dev.zeros::<Rank4<2, 3, 8, 8>>());
/// assert_eq!(y.shape().concrete(), [2, 5]);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Input<const C: usize, const H: usize, const W: usize>;

impl<const C: usize, const H: usize, const W: usize> ZeroSizedModule for Input<C, H, W> {}
impl<const C: usize, const H: usize, const W: usize> NonMutableModule for Input<C, H, W> {}

super::no_input_grad::no_input_grad_untraced!([const C: usize, const H: usize, const W: usize,] Input<C, H, W>);

impl<const C: usize, const H: usize, const W: usize> ImageInput for Input<C, H, W> {
    type Image = Rank3<C, H, W>;
}

impl<const C: usize, const H: usize, const W: usize, D: Device<E>, E: Dtype>
    crate::nn::BuildOnDevice<D, E> for Input<C, H, W>
{
    type Built = Self;
}

super::infer::infer_via_module!(
    [const C: usize, const H: usize, const W: usize,]
    Input<C, H, W>,
    Input<C, H, W>,
    format!("Input({C}, {H}, {W})"),
    0
);

impl<B: Dim, const C: usize, const H: usize, const W: usize, E: Dtype, D: Device<E>, T>
    Module<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for Input<C, H, W>
where
    T: Tape<E, D>,
{
    type Output = Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Self::Output) -> Result<Self::Output, D::Err> {
        Ok(x)
    }
}

impl<const C: usize, const H: usize, const W: usize, E: Dtype, D: Device<E>, T: Tape<E, D>>
    Module<Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>> for Input<C, H, W>
{
    type Output = Tensor<(Const<C>, Const<H>, Const<W>), E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Self::Output) -> Result<Self::Output, D::Err> {
        Ok(x)
    }
}
