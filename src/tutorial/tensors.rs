//! Images as tensors: random grey and RGB images in `(C, H, W)`, the
//! notebook's toy images, and flattening with the shapes in the types.
//!
//! PyTorch stores an image as `(C, H, W)`: one `H×W` matrix per channel, one
//! channel for grey, three for RGB. So does static-nn, with the sizes in the
//! tensor's type: `Tensor<Rank3<3, 32, 32>, f32, _>` is a 32×32 RGB image.
use crate::shapes::Flat;
use dfdx::shapes::{Const, Rank3};
use dfdx::tensor::{Tape, Tensor};
use dfdx::tensor_ops::{Device, ReshapeTo};

/// A random `(C, H, W)` image with values uniform in `[0, 1)`.
///
/// PyTorch: `torch.rand((C, H, W))`. The values come from the device's
/// random generator; seed it with `Cpu::seed_from_u64` for repeatable
/// pictures.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let img: Tensor<Rank3<3, 6, 6>, f32, _> = static_nn::tutorial::tensors::random_image(&dev);
/// assert!(img.as_vec().iter().all(|v| (0.0..1.0).contains(v)));
/// ```
pub fn random_image<const C: usize, const H: usize, const W: usize, D: Device<f32>>(
    dev: &D,
) -> Tensor<Rank3<C, H, W>, f32, D> {
    dev.sample_uniform()
}

/// A random grey image, `(1, H, W)` (the notebook's `color = 'gray'`).
pub fn random_gray<const H: usize, const W: usize, D: Device<f32>>(
    dev: &D,
) -> Tensor<Rank3<1, H, W>, f32, D> {
    random_image(dev)
}

/// A random RGB image, `(3, H, W)` (the notebook's `color = 'rgb'`).
pub fn random_rgb<const H: usize, const W: usize, D: Device<f32>>(
    dev: &D,
) -> Tensor<Rank3<3, H, W>, f32, D> {
    random_image(dev)
}

/// The 6×6 grey image the notebook's `torch.rand((1, 6, 6))` drew (its
/// printed values, to 4 decimals), so the flattening can be compared with
/// the notebook's output value by value.
pub const NOTEBOOK_RANDOM_6X6: [[[f32; 6]; 6]; 1] = [[
    [0.3080, 0.0262, 0.5574, 0.4494, 0.2400, 0.8864],
    [0.2101, 0.3828, 0.2922, 0.1948, 0.1911, 0.4098],
    [0.5587, 0.7565, 0.3989, 0.3920, 0.1915, 0.2599],
    [0.1623, 0.2396, 0.0493, 0.6253, 0.5448, 0.6362],
    [0.2075, 0.0440, 0.0468, 0.0656, 0.8846, 0.8893],
    [0.9567, 0.7053, 0.4556, 0.0996, 0.2754, 0.6344],
]];

/// `start, start + 1, …` in an `H×W` grid, one channel (PyTorch:
/// `torch.arange(start, start + H*W).reshape((1, H, W))`). The notebook's
/// cross-correlation input is `arange::<3, 3>(0.0)`, its padding input
/// `arange::<3, 3>(1.0)`.
///
/// ```
/// let a = static_nn::tutorial::tensors::arange::<2, 3>(1.0);
/// assert_eq!(a, [[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]);
/// ```
pub fn arange<const H: usize, const W: usize>(start: f32) -> [[[f32; W]; H]; 1] {
    let mut a = [[[0.0; W]; H]; 1];
    for (i, v) in a.iter_mut().flatten().flatten().enumerate() {
        *v = start + i as f32;
    }
    a
}

/// The notebook's edge image: a 6×8 grey image, 0 except columns 2..6
/// which are 1 (PyTorch: `img = torch.zeros((1, 6, 8)); img[:, :, 2:6] = 1.0`).
///
/// ```
/// let img = static_nn::tutorial::tensors::edge_image();
/// assert_eq!(img[0][0], [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0]);
/// ```
pub fn edge_image() -> [[[f32; 8]; 6]; 1] {
    let mut img = [[[0.0; 8]; 6]; 1];
    for row in img[0].iter_mut() {
        row[2..6].fill(1.0);
    }
    img
}

/// Flattens a `(C, H, W)` image into `C·H·W` values.
///
/// PyTorch: `img.reshape(-1)`; the shape is `(Flat<C, H, W>,)`, a 1-D
/// tensor of `C·H·W` values known at compile time. A 6×6 grey image
/// flattens to 36 (the notebook's exercise):
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::tutorial::tensors::{flatten_1d, random_gray};
/// let dev = Cpu::default();
/// let flat: Tensor<(Flat<1, 6, 6>,), f32, _> = flatten_1d(random_gray::<6, 6, _>(&dev));
/// assert_eq!(<(Flat<1, 6, 6>,) as ConstShape>::NUMEL, 36);
/// assert_eq!(flat.shape().0.size(), 36);
/// ```
pub fn flatten_1d<const C: usize, const H: usize, const W: usize, D, T>(
    img: Tensor<Rank3<C, H, W>, f32, D, T>,
) -> Tensor<(Flat<C, H, W>,), f32, D, T>
where
    D: Device<f32>,
    T: Tape<f32, D>,
{
    img.reshape()
}

/// Flattens a `(C, H, W)` image into one row of `C·H·W` values.
///
/// PyTorch: `img.reshape(1, -1)`; the shape is `(Const<1>, Flat<C, H, W>)`.
/// The values are those of [`flatten_1d`].
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::tutorial::tensors::flatten_2d;
/// let dev = Cpu::default();
/// let flat: Tensor<(Const<1>, Flat<1, 6, 6>), f32, _> = flatten_2d(dev.zeros::<Rank3<1, 6, 6>>());
/// assert_eq!(flat.shape().concrete(), [1, 36]);
/// ```
pub fn flatten_2d<const C: usize, const H: usize, const W: usize, D, T>(
    img: Tensor<Rank3<C, H, W>, f32, D, T>,
) -> Tensor<(Const<1>, Flat<C, H, W>), f32, D, T>
where
    D: Device<f32>,
    T: Tape<f32, D>,
{
    img.reshape()
}

/// Flattens a `(C, H, W)` image into a `(1, 1, C·H·W)` tensor.
///
/// PyTorch: `img.reshape(1, 1, -1)` (what the notebook prints); the shape is
/// `(Const<1>, Const<1>, Flat<C, H, W>)`. The values are those of
/// [`flatten_1d`].
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::tutorial::tensors::flatten_3d;
/// let dev = Cpu::default();
/// let flat: Tensor<(Const<1>, Const<1>, Flat<3, 32, 32>), f32, _> =
///     flatten_3d(dev.zeros::<Rank3<3, 32, 32>>());
/// assert_eq!(flat.shape().concrete(), [1, 1, 3072]);
/// ```
pub fn flatten_3d<const C: usize, const H: usize, const W: usize, D, T>(
    img: Tensor<Rank3<C, H, W>, f32, D, T>,
) -> Tensor<(Const<1>, Const<1>, Flat<C, H, W>), f32, D, T>
where
    D: Device<f32>,
    T: Tape<f32, D>,
{
    img.reshape()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    #[test]
    fn three_flattenings_keep_the_values() {
        let dev = Cpu::seed_from_u64(1);
        let img = random_rgb::<4, 5, _>(&dev);
        let v = img.as_vec();
        assert_eq!(flatten_1d(img.clone()).as_vec(), v);
        assert_eq!(flatten_2d(img.clone()).as_vec(), v);
        let f3 = flatten_3d(img);
        assert_eq!(f3.shape().concrete(), [1, 1, 60]);
        assert_eq!(f3.as_vec(), v);
    }

    #[test]
    fn seeded_images_repeat() {
        let a = random_gray::<6, 6, _>(&Cpu::seed_from_u64(7));
        let b = random_gray::<6, 6, _>(&Cpu::seed_from_u64(7));
        assert_eq!(a.array(), b.array());
    }
}
