//! [`Batch`]: one batch of images as `f32`, and its conversion to typed
//! dfdx tensors on any device.

use dfdx::shapes::{Const, ConstDim, Rank1, Rank2, Rank4, Shape};
use dfdx::tensor::Tensor;
use dfdx::tensor_ops::Device;

use super::error::DataError;
use crate::error::TypedErrors;
use crate::shapes::ImageShape;

/// Number of classes of the MNIST-format data sets.
pub const NUM_CLASSES: usize = 10;

/// A batch of `C×H×W` images with a batch size known at run time:
/// `(batch, C, H, W)`.
pub type ImagesTensor<const C: usize, const H: usize, const W: usize, D> =
    Tensor<(usize, Const<C>, Const<H>, Const<W>), f32, D>;
/// The labels of a batch with a batch size known at run time.
pub type LabelsTensor<D> = Tensor<(usize,), usize, D>;
/// One-hot targets of `N` classes with a batch size known at run time.
pub type OneHotTensor<const N: usize, D> = Tensor<(usize, Const<N>), f32, D>;

/// One batch: images as `f32` (in `[0, 1]`, or normalised), and their labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `len() * channels * rows * cols` values: image after image, each one
    /// plane per channel, row-major (CHW).
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<usize>,
    /// Channels of each image (1 grey, 3 RGB).
    pub channels: usize,
    /// Rows of each image.
    pub rows: usize,
    /// Columns of each image.
    pub cols: usize,
}

/// Wraps a device's failure to hold a batch.
fn device_err<D: TypedErrors>(e: D::Err) -> DataError {
    D::device_error("copying a batch to the device", e).into()
}

/// `values` (as many as `shape` holds) as a tensor on `dev`, in memory
/// that `dev`'s allocation cache hands out. A tensor made from a `Vec` of
/// ours would go into an enabled cache when dropped and never come out of
/// it again (dfdx 0.13 takes a `Vec` as it is): every training step's batch
/// would stay allocated.
fn upload<S: Shape, D: Device<f32> + TypedErrors>(
    dev: &D,
    values: &[f32],
    shape: S,
) -> Result<Tensor<S, f32, D>, DataError> {
    let mut t = dev.try_zeros_like(&shape).map_err(device_err::<D>)?;
    t.copy_from(values);
    Ok(t)
}

impl Batch {
    /// Number of images in the batch.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the batch holds no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `(channels, rows, cols)` of each image.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        (self.channels, self.rows, self.cols)
    }

    /// Splits the batch in two at sample `at` (as [`Vec::split_off`]): this
    /// batch keeps samples `0..at`, the one returned holds the rest. An
    /// `at` past the end is taken as the end.
    ///
    /// ```
    /// use static_nn::data::Batch;
    /// let mut b = Batch { images: vec![0.0, 1.0, 2.0], labels: vec![7, 8, 9], channels: 1, rows: 1, cols: 1 };
    /// let tail = b.split_off(2);
    /// assert_eq!((b.images, b.labels), (vec![0.0, 1.0], vec![7, 8]));
    /// assert_eq!((tail.images, tail.labels), (vec![2.0], vec![9]));
    /// ```
    pub fn split_off(&mut self, at: usize) -> Batch {
        let at = at.min(self.len());
        let pixels = self.channels * self.rows * self.cols;
        let images = self.images.split_off((at * pixels).min(self.images.len()));
        Batch {
            images,
            labels: self.labels.split_off(at),
            channels: self.channels,
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// Checks the image shape against a tensor's `C`×`H`×`W` and the buffer length.
    fn check<const C: usize, const H: usize, const W: usize>(&self) -> Result<(), DataError> {
        self.check_dims((C, H, W))
    }

    /// Checks the image shape against `(c, h, w)` and the buffer length.
    fn check_dims(&self, (c, h, w): (usize, usize, usize)) -> Result<(), DataError> {
        if self.image_shape() != (c, h, w) {
            return Err(DataError::ShapeMismatch {
                channels: self.channels,
                rows: self.rows,
                cols: self.cols,
                want_channels: c,
                want_rows: h,
                want_cols: w,
            });
        }
        if self.images.len() != self.len() * c * h * w {
            return Err(DataError::Inconsistent(format!(
                "a batch of {} images of {c}×{h}×{w} needs {} values, it holds {}",
                self.len(),
                self.len() * c * h * w,
                self.images.len()
            )));
        }
        Ok(())
    }

    /// The batch as tensors on `dev`, with the batch size known at run time:
    /// images `(usize, Const<C>, Const<H>, Const<W>)` and labels `(usize,)`.
    ///
    /// Errors (no panic) if the images are not `C`×`H`×`W`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use static_nn::data::Batch;
    /// let dev = Cpu::default();
    /// let b = Batch { images: vec![0.5; 2 * 4], labels: vec![3, 1], channels: 1, rows: 2, cols: 2 };
    /// let (x, y) = b.to_tensors::<1, 2, 2, _>(&dev)?;
    /// assert_eq!(x.shape().0, 2);
    /// assert_eq!(y.as_vec(), [3, 1]);
    /// assert!(b.to_tensors::<1, 28, 28, _>(&dev).is_err());
    /// assert!(b.to_tensors::<3, 2, 2, _>(&dev).is_err());
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn to_tensors<
        const C: usize,
        const H: usize,
        const W: usize,
        D: Device<f32> + TypedErrors,
    >(
        &self,
        dev: &D,
    ) -> Result<(ImagesTensor<C, H, W, D>, LabelsTensor<D>), DataError> {
        self.clone().into_tensors::<C, H, W, D>(dev)
    }

    /// [`Batch::to_tensors`] that consumes the batch and so saves a copy.
    #[allow(clippy::type_complexity)]
    pub fn into_tensors<
        const C: usize,
        const H: usize,
        const W: usize,
        D: Device<f32> + TypedErrors,
    >(
        self,
        dev: &D,
    ) -> Result<(ImagesTensor<C, H, W, D>, LabelsTensor<D>), DataError> {
        self.check::<C, H, W>()?;
        let n = self.len();
        let x = dev
            .try_tensor_from_vec(self.images, (n, Const::<C>, Const::<H>, Const::<W>))
            .map_err(device_err::<D>)?;
        let y = dev
            .try_tensor_from_vec(self.labels, (n,))
            .map_err(device_err::<D>)?;
        Ok((x, y))
    }

    /// The images as a tensor of the image shape `I` (`Rank3<C, H, W>`) with
    /// the batch size known at run time: `(usize, Const<C>, Const<H>, Const<W>)`,
    /// what a model that declares its input
    /// ([`ImageInput`](crate::shapes::ImageInput)) takes.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use static_nn::data::Batch;
    /// let dev = Cpu::default();
    /// let b = Batch { images: vec![0.5; 2 * 12], labels: vec![3, 1], channels: 3, rows: 2, cols: 2 };
    /// let x = b.images_tensor::<Rank3<3, 2, 2>, _>(&dev)?;
    /// assert_eq!(x.shape().concrete(), [2, 3, 2, 2]);
    /// let e = b.images_tensor::<Rank3<1, 2, 2>, _>(&dev).unwrap_err();
    /// assert!(e.to_string().contains("3×2×2 images (C×H×W), the tensor wants 1×2×2"));
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn images_tensor<I: ImageShape, D: Device<f32> + TypedErrors>(
        &self,
        dev: &D,
    ) -> Result<Tensor<I::Batched, f32, D>, DataError> {
        self.check_dims(I::DIMS)?;
        upload(dev, &self.images, I::batched(self.len()))
    }

    /// One-hot targets `(usize, N)` for any const class dimension `N`.
    pub fn one_hot_dim<N: ConstDim, D: Device<f32> + TypedErrors>(
        &self,
        dev: &D,
    ) -> Result<Tensor<(usize, N), f32, D>, DataError> {
        upload(
            dev,
            &self.one_hot_values(N::SIZE),
            (self.len(), N::default()),
        )
    }

    /// The batch as tensors with a const batch size `B`:
    /// `Tensor<Rank4<B, C, H, W>>` and `Tensor<Rank1<B>, usize>`.
    ///
    /// Errors (no panic) if the batch does not hold exactly `B` images (the
    /// last batch of an epoch, unless `drop_last`) or the images are not `C`×`H`×`W`.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use static_nn::data::Batch;
    /// let dev = Cpu::default();
    /// let b = Batch { images: vec![0.0; 3 * 4], labels: vec![0, 1, 2], channels: 1, rows: 2, cols: 2 };
    /// let (x, _y): (Tensor<Rank4<3, 1, 2, 2>, f32, _>, _) = b.to_const_tensors(&dev)?;
    /// assert!(b.to_const_tensors::<4, 1, 2, 2, _>(&dev).is_err());
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    #[allow(clippy::type_complexity)]
    pub fn to_const_tensors<
        const B: usize,
        const C: usize,
        const H: usize,
        const W: usize,
        D: Device<f32> + TypedErrors,
    >(
        &self,
        dev: &D,
    ) -> Result<
        (
            Tensor<Rank4<B, C, H, W>, f32, D>,
            Tensor<Rank1<B>, usize, D>,
        ),
        DataError,
    > {
        if self.len() != B {
            return Err(DataError::BatchSize {
                expected: B,
                found: self.len(),
            });
        }
        self.check::<C, H, W>()?;
        let x = dev
            .try_tensor_from_vec(self.images.clone(), Default::default())
            .map_err(device_err::<D>)?;
        let y = dev
            .try_tensor_from_vec(self.labels.clone(), Default::default())
            .map_err(device_err::<D>)?;
        Ok((x, y))
    }

    /// The one-hot values of `n` classes, row after row (a label outside
    /// `0..n` gives a row of zeros).
    fn one_hot_values(&self, n: usize) -> Vec<f32> {
        let mut v = vec![0.0f32; self.len() * n];
        if n == 0 {
            return v;
        }
        for (row, &l) in v.chunks_exact_mut(n).zip(&self.labels) {
            if let Some(x) = row.get_mut(l) {
                *x = 1.0;
            }
        }
        v
    }

    /// One-hot targets `(usize, Const<N>)`, for losses that want probabilities.
    ///
    /// # Panics
    /// Only if the device cannot allocate the tensor (as dfdx's own
    /// constructors do); see [`Batch::try_one_hot`].
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use static_nn::data::Batch;
    /// let b = Batch { images: vec![], labels: vec![2], channels: 1, rows: 0, cols: 0 };
    /// let t = b.one_hot::<10, _>(&Cpu::default());
    /// assert_eq!(t.as_vec(), [0., 0., 1., 0., 0., 0., 0., 0., 0., 0.]);
    /// ```
    pub fn one_hot<const N: usize, D: Device<f32> + TypedErrors>(
        &self,
        dev: &D,
    ) -> OneHotTensor<N, D> {
        dev.tensor_from_vec(self.one_hot_values(N), (self.len(), Const::<N>))
    }

    /// [`Batch::one_hot`] that returns device errors.
    pub fn try_one_hot<const N: usize, D: Device<f32> + TypedErrors>(
        &self,
        dev: &D,
    ) -> Result<OneHotTensor<N, D>, DataError> {
        dev.try_tensor_from_vec(self.one_hot_values(N), (self.len(), Const::<N>))
            .map_err(device_err::<D>)
    }

    /// One-hot targets with a const batch size: `Tensor<Rank2<B, N>>`;
    /// errors if the batch does not hold exactly `B` images.
    pub fn one_hot_const<const B: usize, const N: usize, D: Device<f32> + TypedErrors>(
        &self,
        dev: &D,
    ) -> Result<Tensor<Rank2<B, N>, f32, D>, DataError> {
        if self.len() != B {
            return Err(DataError::BatchSize {
                expected: B,
                found: self.len(),
            });
        }
        dev.try_tensor_from_vec(self.one_hot_values(N), Default::default())
            .map_err(device_err::<D>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    fn batch(n: usize) -> Batch {
        Batch {
            images: (0..n * 6).map(|i| i as f32).collect(),
            labels: (0..n).map(|i| i % 10).collect(),
            channels: 1,
            rows: 2,
            cols: 3,
        }
    }

    #[test]
    fn runtime_tensors() {
        let dev = Cpu::default();
        let b = batch(5);
        let (x, y) = b.to_tensors::<1, 2, 3, _>(&dev).unwrap();
        assert_eq!(x.shape().concrete(), [5, 1, 2, 3]);
        assert_eq!(x.as_vec(), b.images);
        assert_eq!(y.as_vec(), b.labels);
        let (x2, _) = b.clone().into_tensors::<1, 2, 3, _>(&dev).unwrap();
        assert_eq!(x2.as_vec(), x.as_vec());
    }

    #[test]
    fn images_and_targets_upload_through_the_cache() {
        let dev = Cpu::default();
        dev.enable_cache();
        let mut b = batch(4);
        for _ in 0..3 {
            let x = b.images_tensor::<Rank3<1, 2, 3>, _>(&dev).unwrap();
            assert_eq!(x.as_vec(), b.images);
            let t = b.one_hot_dim::<Const<10>, _>(&dev).unwrap().as_vec();
            assert_eq!(t.len(), 40);
            for (row, &l) in t.chunks(10).zip(&b.labels) {
                assert_eq!(row.iter().sum::<f32>(), 1.0);
                assert_eq!(row[l], 1.0);
            }
        }
        // too few values for the batch: an error, not a panic
        b.images.pop();
        let e = b.images_tensor::<Rank3<1, 2, 3>, _>(&dev).unwrap_err();
        assert!(matches!(e, DataError::Inconsistent(_)), "{e:?}");
    }

    #[test]
    fn shape_errors_are_errors() {
        let dev = Cpu::default();
        let b = batch(5);
        let e = b.to_tensors::<1, 3, 2, _>(&dev).unwrap_err();
        assert!(matches!(
            e,
            DataError::ShapeMismatch {
                channels: 1,
                want_channels: 1,
                rows: 2,
                cols: 3,
                want_rows: 3,
                want_cols: 2
            }
        ));
        let e = b.to_const_tensors::<4, 1, 2, 3, _>(&dev).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BatchSize {
                    expected: 4,
                    found: 5
                }
            ),
            "{e:?}"
        );
        assert!(e
            .to_string()
            .contains("holds 5 samples, the tensor wants 4"));
        let mut bad = batch(2);
        bad.images.pop();
        assert!(matches!(
            bad.to_tensors::<1, 2, 3, _>(&dev).unwrap_err(),
            DataError::Inconsistent(_)
        ));
    }

    #[test]
    fn const_tensors() {
        let dev = Cpu::default();
        let b = batch(4);
        let (x, y): (
            Tensor<Rank4<4, 1, 2, 3>, f32, Cpu>,
            Tensor<Rank1<4>, usize, Cpu>,
        ) = b.to_const_tensors(&dev).unwrap();
        assert_eq!(x.as_vec(), b.images);
        assert_eq!(y.array(), [0, 1, 2, 3]);
    }

    #[test]
    fn one_hot_rows() {
        let dev = Cpu::default();
        let mut b = batch(3);
        b.labels = vec![9, 0, 12];
        let t = b.one_hot::<10, _>(&dev);
        let v = t.as_vec();
        assert_eq!(v[9], 1.0);
        assert_eq!(v[10], 1.0);
        assert_eq!(v[20..30].iter().sum::<f32>(), 0.0);
        assert_eq!(v.iter().sum::<f32>(), 2.0);
        let c = b.one_hot_const::<3, 10, _>(&dev).unwrap();
        assert_eq!(c.as_vec(), v);
        assert!(b.one_hot_const::<2, 10, _>(&dev).is_err());
        assert_eq!(b.try_one_hot::<10, _>(&dev).unwrap().as_vec(), v);
    }
}
