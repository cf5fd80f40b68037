//! Data augmentation applied while batching, seeded per batch.
use rand::rngs::StdRng;
use rand::Rng;

/// Random changes to each training image, drawn afresh every epoch, applied
/// by the [`DataLoader`](super::DataLoader) on its batching thread.
///
/// The random numbers of each batch come from a generator seeded by the
/// loader's shuffle seed, the epoch and the batch's index, so a seeded run
/// is bit-identical whether batches are prepared ahead or not.
///
/// PyTorch: `transforms.RandomAffine(degrees=0, translate=(s/W, s/H))` with
/// integer shifts and zero fill.
///
/// ```
/// use static_nn::data::Augment;
/// let aug = Augment { max_shift: 2 };
/// assert_eq!(aug, Augment::shifts(2));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Augment {
    /// Each image moves by `dy, dx` drawn uniformly from
    /// `-max_shift..=max_shift`, filled with background (pixel 0) where it
    /// moves away; 0 means no shifts.
    pub max_shift: usize,
}

impl Augment {
    /// Random shifts of up to `max_shift` pixels in each direction.
    pub fn shifts(max_shift: usize) -> Self {
        Self { max_shift }
    }

    /// Writes the augmented `rows × cols` image `img` into `out` (same
    /// length) through `table` (pixel value → `f32`).
    pub(crate) fn apply(
        &self,
        img: &[u8],
        (rows, cols): (usize, usize),
        rng: &mut StdRng,
        table: &[f32; 256],
        out: &mut [f32],
    ) {
        let s = self.max_shift as isize;
        let (dy, dx) = if s > 0 {
            (rng.gen_range(-s..=s), rng.gen_range(-s..=s))
        } else {
            (0, 0)
        };
        let planes = img.len() / (rows * cols).max(1);
        for p in 0..planes {
            let (src, dst) = (p * rows * cols, p * rows * cols);
            for y in 0..rows {
                let sy = y as isize - dy;
                for x in 0..cols {
                    let sx = x as isize - dx;
                    let inside = sy >= 0 && sx >= 0 && (sy as usize) < rows && (sx as usize) < cols;
                    let v = if inside {
                        img[src + sy as usize * cols + sx as usize]
                    } else {
                        0
                    };
                    out[dst + y * cols + x] = table[v as usize];
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
        Augment::shifts(0).apply(&img, (3, 4), &mut rng, &identity(), &mut out);
        assert_eq!(out, img.iter().map(|&v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn shifts_move_the_image_and_fill_with_background() {
        let img: Vec<u8> = (1..=25).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let mut out = vec![-1.0; 25];
            Augment::shifts(1).apply(&img, (5, 5), &mut rng, &identity(), &mut out);
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
}
