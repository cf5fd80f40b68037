//! A runtime-sized `(C, H, W)` image buffer for the reference loops.
use super::error::TutorialError;
use super::show::format_values;
use dfdx::shapes::{Const, Rank3};
use dfdx::tensor::{Storage, Tensor, TensorFromVec};
use std::fmt;

/// A `(C, H, W)` image whose sizes are known only at run time: a photo of
/// any size, or the result of a reference loop. Values are stored
/// channel-major, row-major (`data[(c·H + i)·W + j]`), as in a PyTorch
/// tensor of shape `(C, H, W)`.
///
/// Typed tensors convert with [`Chw::from_tensor`] and [`Chw::to_tensor`];
/// `Display` prints the values in PyTorch's nested-bracket form.
///
/// ```
/// use static_nn::tutorial::Chw;
/// let img = Chw::from_array([[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]]);
/// assert_eq!(img.shape(), (1, 2, 3));
/// assert_eq!(img.at(0, 1, 2), 5.0);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Chw {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f32>,
}

impl Chw {
    /// An image from its sizes and `C·H·W` values (channel-major); an error
    /// if the length does not match.
    pub fn new(c: usize, h: usize, w: usize, data: Vec<f32>) -> Result<Self, TutorialError> {
        match c.checked_mul(h).and_then(|n| n.checked_mul(w)) {
            Some(n) if n == data.len() => Ok(Chw { c, h, w, data }),
            _ => Err(TutorialError::Shape(format!(
                "{} values do not fill a ({c}, {h}, {w}) image",
                data.len()
            ))),
        }
    }

    /// A `(C, H, W)` image of zeros (PyTorch: `torch.zeros((C, H, W))`).
    pub fn zeros(c: usize, h: usize, w: usize) -> Self {
        Chw {
            c,
            h,
            w,
            data: vec![0.0; c * h * w],
        }
    }

    /// An image from a nested array `[[[f32; W]; H]; C]`.
    pub fn from_array<const C: usize, const H: usize, const W: usize>(
        a: [[[f32; W]; H]; C],
    ) -> Self {
        Chw {
            c: C,
            h: H,
            w: W,
            data: a.iter().flatten().flatten().copied().collect(),
        }
    }

    /// The values of a typed `(C, H, W)` tensor.
    pub fn from_tensor<const C: usize, const H: usize, const W: usize, D: Storage<f32>, T>(
        t: &Tensor<Rank3<C, H, W>, f32, D, T>,
    ) -> Self {
        Chw {
            c: C,
            h: H,
            w: W,
            data: t.as_vec(),
        }
    }

    /// A typed `(C, H, W)` tensor on `dev`; an error if this image is not
    /// `C×H×W`.
    pub fn to_tensor<const C: usize, const H: usize, const W: usize, D>(
        &self,
        dev: &D,
    ) -> Result<Tensor<Rank3<C, H, W>, f32, D>, TutorialError>
    where
        D: Storage<f32> + TensorFromVec<f32> + crate::error::TypedErrors,
    {
        if self.shape() != (C, H, W) {
            return Err(TutorialError::Shape(format!(
                "a {:?} image is not ({C}, {H}, {W})",
                self.shape()
            )));
        }
        dev.try_tensor_from_vec(self.data.clone(), (Const, Const, Const))
            .map_err(|e| D::device_error("copying a picture to the device", e).into())
    }

    /// `(C, H, W)`.
    pub fn shape(&self) -> (usize, usize, usize) {
        (self.c, self.h, self.w)
    }

    /// The values, channel-major and row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The values, to change them in place.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The value at channel `c`, row `i`, column `j`.
    ///
    /// # Panics
    /// If the index is outside the image (as slice indexing does).
    pub fn at(&self, c: usize, i: usize, j: usize) -> f32 {
        assert!(c < self.c && i < self.h && j < self.w, "index out of range");
        self.data[(c * self.h + i) * self.w + j]
    }

    /// The value at `(c, i, j)`, or `None` outside the image.
    pub fn get(&self, c: usize, i: usize, j: usize) -> Option<f32> {
        (c < self.c && i < self.h && j < self.w).then(|| self.data[(c * self.h + i) * self.w + j])
    }

    /// Channel `c` as a one-channel image (PyTorch: `img[c:c+1]`).
    pub fn channel(&self, c: usize) -> Result<Chw, TutorialError> {
        if c >= self.c {
            return Err(TutorialError::Shape(format!(
                "channel {c} of an image with {} channels",
                self.c
            )));
        }
        let n = self.h * self.w;
        Ok(Chw {
            c: 1,
            h: self.h,
            w: self.w,
            data: self.data[c * n..(c + 1) * n].to_vec(),
        })
    }

    /// The images stacked along the channel axis (PyTorch:
    /// `torch.cat(images, dim=0)`); they must all be `H×W`.
    pub fn concat(images: &[Chw]) -> Result<Chw, TutorialError> {
        let Some(first) = images.first() else {
            return Err(TutorialError::Shape("nothing to concatenate".into()));
        };
        let (h, w) = (first.h, first.w);
        if let Some(bad) = images.iter().find(|i| (i.h, i.w) != (h, w)) {
            return Err(TutorialError::Shape(format!(
                "cannot concatenate a {}×{} image with a {h}×{w} one",
                bad.h, bad.w
            )));
        }
        Ok(Chw {
            c: images.iter().map(|i| i.c).sum(),
            h,
            w,
            data: images.iter().flat_map(|i| i.data.iter().copied()).collect(),
        })
    }

    /// The sum of two images of the same shape (PyTorch: `a + b`).
    pub fn add(&self, other: &Chw) -> Result<Chw, TutorialError> {
        if self.shape() != other.shape() {
            return Err(TutorialError::Shape(format!(
                "cannot add a {:?} image to a {:?} one",
                other.shape(),
                self.shape()
            )));
        }
        Ok(self.map_with(other, |a, b| a + b))
    }

    /// The image with `f` applied to each value.
    pub fn map(&self, f: impl Fn(f32) -> f32) -> Chw {
        Chw {
            data: self.data.iter().map(|&v| f(v)).collect(),
            ..self.clone()
        }
    }

    fn map_with(&self, other: &Chw, f: impl Fn(f32, f32) -> f32) -> Chw {
        Chw {
            data: self
                .data
                .iter()
                .zip(&other.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
            ..self.clone()
        }
    }

    /// The values and shape as PyTorch prints a tensor (see
    /// [`show_values`](super::show_values)).
    pub fn show(&self) -> String {
        super::show::show_values(&[self.c, self.h, self.w], &self.data)
    }

    /// The smallest and largest finite value, if any.
    pub fn range(&self) -> Option<(f32, f32)> {
        self.data
            .iter()
            .filter(|v| v.is_finite())
            .fold(None, |acc, &v| match acc {
                None => Some((v, v)),
                Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
            })
    }
}

impl fmt::Display for Chw {
    /// The values as nested brackets, e.g. `[[[19., 25.],\n  [37., 43.]]]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_values(&[self.c, self.h, self.w], &self.data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    #[test]
    fn tensor_round_trip_and_checks() {
        let dev = Cpu::default();
        let t = dev.tensor([[[1.0f32, 2.0], [3.0, 4.0]], [[5.0, 6.0], [7.0, 8.0]]]);
        let c = Chw::from_tensor(&t);
        assert_eq!(c.shape(), (2, 2, 2));
        assert_eq!(c.at(1, 0, 1), 6.0);
        let back: Tensor<Rank3<2, 2, 2>, f32, _> = c.to_tensor(&dev).unwrap();
        assert_eq!(back.array(), t.array());
        assert!(c.to_tensor::<1, 2, 4, _>(&dev).is_err());
        assert!(Chw::new(1, 2, 2, vec![0.0; 3]).is_err());
        assert_eq!(c.get(2, 0, 0), None);
    }

    #[test]
    fn channels_concat_add() {
        let a = Chw::from_array([[[1.0, 2.0]], [[3.0, 4.0]]]);
        let c1 = a.channel(1).unwrap();
        assert_eq!(c1.data(), &[3.0, 4.0]);
        assert!(a.channel(2).is_err());
        let cat = Chw::concat(&[c1.clone(), a.clone()]).unwrap();
        assert_eq!(cat.shape(), (3, 1, 2));
        assert_eq!(c1.add(&c1).unwrap().data(), &[6.0, 8.0]);
        assert!(c1.add(&a).is_err());
        assert!(Chw::concat(&[]).is_err());
        assert!(Chw::concat(&[c1, Chw::zeros(1, 2, 2)]).is_err());
        assert_eq!(a.range(), Some((1.0, 4.0)));
    }
}
