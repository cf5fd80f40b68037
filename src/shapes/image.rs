//! The image a model classifies: its channels, height and width as types.
use dfdx::shapes::{Const, Rank3, Shape};

/// An image shape `(C, H, W)` known at compile time: implemented for
/// [`Rank3<C, H, W>`](dfdx::shapes::Rank3).
///
/// ```
/// use dfdx::shapes::Rank3;
/// use static_nn::shapes::ImageShape;
/// assert_eq!(<Rank3<3, 32, 32> as ImageShape>::DIMS, (3, 32, 32));
/// ```
pub trait ImageShape: Shape + Default {
    /// Channels.
    const CHANNELS: usize;
    /// Rows.
    const HEIGHT: usize;
    /// Columns.
    const WIDTH: usize;
    /// `(CHANNELS, HEIGHT, WIDTH)`.
    const DIMS: (usize, usize, usize) = (Self::CHANNELS, Self::HEIGHT, Self::WIDTH);
    /// A batch of these images, its size known at run time: `(usize, C, H, W)`.
    type Batched: Shape;
    /// The batched shape for `n` images.
    fn batched(n: usize) -> Self::Batched;
}

impl<const C: usize, const H: usize, const W: usize> ImageShape for Rank3<C, H, W> {
    const CHANNELS: usize = C;
    const HEIGHT: usize = H;
    const WIDTH: usize = W;
    type Batched = (usize, Const<C>, Const<H>, Const<W>);
    fn batched(n: usize) -> Self::Batched {
        (n, Const, Const, Const)
    }
}

/// The image a model takes, declared by the model type itself, so that a
/// [`Classifier`](crate::train::Classifier) needs no image size at its call
/// sites and data loaders know what to resize and convert to.
///
/// Struct models declare it with the derive:
/// `#[network(input = (C, H, W))]`. The library's MNIST models take
/// `Rank3<1, 28, 28>`, its CIFAR ResNet-20 `Rank3<3, 32, 32>`.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::shapes::{ImageInput, ImageShape};
/// type Built = <LeNetClass as BuildOnDevice<Cpu, f32>>::Built;
/// assert_eq!(<<Built as ImageInput>::Image as ImageShape>::DIMS, (1, 28, 28));
/// ```
///
/// A network written as a tuple declares its input by a derived struct
/// wrapped around it (`#[network(sequential, input = (C, H, W))]`), since a
/// tuple's first layer does not fix the image's height and width.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not declare the image it takes",
    label = "a classifier needs the model's image (C×H×W) from its type",
    note = "derive a struct model with `#[network(input = (C, H, W))]`, or put `Input<C, H, W>` first in a tuple network"
)]
pub trait ImageInput {
    /// The image, as `Rank3<C, H, W>`.
    type Image: ImageShape;
}
