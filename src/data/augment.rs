//! Data augmentation applied while batching, seeded per batch.
use rand::rngs::StdRng;
use rand::Rng;

/// Random changes to each training image, drawn afresh every epoch, applied
/// by the [`DataLoader`](super::DataLoader) on its batching thread, in this
/// order: a random crop of the zero-padded image, a random shift, a
/// horizontal flip. Every channel of an image gets the same change.
///
/// The random numbers of each batch come from a generator seeded by the
/// loader's shuffle seed, the epoch and the batch's index, so a seeded run
/// is bit-identical whether batches are prepared ahead or not.
///
/// PyTorch: `transforms.RandomCrop(size, padding=crop_padding)` (the crop is
/// the image's own size, so it moves the image by up to `crop_padding`
/// pixels with zero fill), `transforms.RandomAffine(degrees=0,
/// translate=(s/W, s/H))` with integer shifts and zero fill, and
/// `transforms.RandomHorizontalFlip()` (probability 0.5).
///
/// ```
/// use static_nn::data::Augment;
/// let aug = Augment { max_shift: 2, ..Default::default() };
/// assert_eq!(aug, Augment::shifts(2));
/// let cifar = Augment::crop_flip(4); // RandomCrop(32, padding=4) + RandomHorizontalFlip
/// assert!(cifar.hflip && cifar.crop_padding == 4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Each image moves by `dy, dx` drawn uniformly from
    /// `-max_shift..=max_shift`, filled with background (pixel 0) where it
    /// moves away; 0 means no shifts.
    pub max_shift: usize,
    /// The image is padded with `crop_padding` zero pixels on every side and
    /// an image-sized window is cut out at a uniformly drawn offset; 0 means
    /// no crop.
    pub crop_padding: usize,
    /// Mirror left to right with probability 0.5.
    pub hflip: bool,
}

impl Augment {
    /// Random shifts of up to `max_shift` pixels in each direction.
    pub fn shifts(max_shift: usize) -> Self {
        Self {
            max_shift,
            ..Self::default()
        }
    }

    /// The usual CIFAR-10 augmentation: a random crop with `padding` pixels
    /// of zero padding, and a random horizontal flip.
    pub fn crop_flip(padding: usize) -> Self {
        Self {
            crop_padding: padding,
            hflip: true,
            ..Self::default()
        }
    }

    /// Whether it changes nothing.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }

    /// Draws one image's random numbers: the shift `(dy, dx)` (crop and
    /// shift together) and the flip. [`apply`](Self::apply) draws exactly
    /// these, so calling this alone moves `rng` past one image (a sharded
    /// loader skips the other ranks' images of a batch this way).
    pub(crate) fn draw(&self, rng: &mut StdRng) -> (isize, isize, bool) {
        // A crop at offset (oy, ox) of the padded image moves the image by
        // (p - oy, p - ox): the same arithmetic as a shift.
        let p = self.crop_padding as isize;
        let (cy, cx) = if p > 0 {
            (p - rng.gen_range(0..=2 * p), p - rng.gen_range(0..=2 * p))
        } else {
            (0, 0)
        };
        let s = self.max_shift as isize;
        let (sy, sx) = if s > 0 {
            (rng.gen_range(-s..=s), rng.gen_range(-s..=s))
        } else {
            (0, 0)
        };
        let flip = self.hflip && rng.gen_bool(0.5);
        (cy + sy, cx + sx, flip)
    }

    /// Writes the augmented `channels × rows × cols` image `img` into `out`
    /// (same length) through `tables` (pixel value → `f32`, one table per
    /// channel; the last one serves channels beyond).
    pub(crate) fn apply(
        &self,
        img: &[u8],
        (channels, rows, cols): (usize, usize, usize),
        rng: &mut StdRng,
        tables: &[[f32; 256]],
        out: &mut [f32],
    ) {
        let (dy, dx, flip) = self.draw(rng);
        let plane = rows * cols;
        for c in 0..channels {
            let t = &tables[c.min(tables.len().saturating_sub(1))];
            let (src, dst) = (&img[c * plane..(c + 1) * plane], c * plane);
            for y in 0..rows {
                let from_y = y as isize - dy;
                for x in 0..cols {
                    // the flip mirrors the shifted image
                    let xs = if flip { cols - 1 - x } else { x };
                    let from_x = xs as isize - dx;
                    let inside = from_y >= 0
                        && from_x >= 0
                        && (from_y as usize) < rows
                        && (from_x as usize) < cols;
                    let v = if inside {
                        src[from_y as usize * cols + from_x as usize]
                    } else {
                        0
                    };
                    out[dst + y * cols + x] = t[v as usize];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn identity() -> [f32; 256] {
        std::array::from_fn(|i| i as f32)
    }

    #[test]
    fn no_shift_copies_the_image() {
        let img: Vec<u8> = (0..12).collect();
        let mut out = vec![0.0; 12];
        let mut rng = StdRng::seed_from_u64(0);
        Augment::shifts(0).apply(&img, (1, 3, 4), &mut rng, &[identity()], &mut out);
        assert_eq!(out, img.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn shifts_move_the_image_and_fill_with_background() {
        let img: Vec<u8> = (1..=25).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut out = vec![-1.0; 25];
            Augment::shifts(1).apply(&img, (1, 5, 5), &mut rng, &[identity()], &mut out);
            // the centre pixel (13) lands within one pixel of the centre
            let at = out.iter().position(|v| *v == 13.0).expect("centre kept");
            let (y, x) = (at / 5, at % 5);
            assert!(y.abs_diff(2) <= 1 && x.abs_diff(2) <= 1);
            let zeros = out.iter().filter(|v| **v == 0.0).count();
            let moved = usize::from(y != 2) * 5 + usize::from(x != 2) * 5;
            assert_eq!(zeros, moved - usize::from(y != 2 && x != 2));
            seen.insert((y, x));
        }
        assert_eq!(seen.len(), 9, "all nine shifts occur");
    }

    #[test]
    fn flip_mirrors_every_channel_and_crop_stays_within_its_padding() {
        // two channels of 2×3: the second is the first plus 10
        let img: Vec<u8> = vec![1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16];
        let mut rng = StdRng::seed_from_u64(1);
        let flip = Augment {
            hflip: true,
            ..Default::default()
        };
        let mut outs = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut out = vec![0.0; 12];
            flip.apply(&img, (2, 2, 3), &mut rng, &[identity()], &mut out);
            let v: Vec<u8> = out.iter().map(|&x| x as u8).collect();
            outs.insert(v);
        }
        let mirrored = vec![3, 2, 1, 6, 5, 4, 13, 12, 11, 16, 15, 14];
        assert_eq!(outs, [img.clone(), mirrored].into_iter().collect());

        let crop = Augment {
            crop_padding: 1,
            ..Default::default()
        };
        let img: Vec<u8> = (1..=9).collect();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let mut out = vec![-1.0; 9];
            crop.apply(&img, (1, 3, 3), &mut rng, &[identity()], &mut out);
            let at = out.iter().position(|v| *v == 5.0).expect("centre kept");
            seen.insert(at);
            assert!(out.iter().filter(|v| **v > 0.0).count() >= 4);
        }
        assert_eq!(seen.len(), 9, "every offset of the padded window occurs");
    }

    #[test]
    fn per_channel_tables() {
        let img = vec![255u8, 255];
        let tables = [identity(), std::array::from_fn(|i| -(i as f32))];
        let mut out = vec![0.0; 2];
        let mut rng = StdRng::seed_from_u64(0);
        Augment::default().apply(&img, (2, 1, 1), &mut rng, &tables, &mut out);
        assert_eq!(out, [255.0, -255.0]);
    }
}
