//! A seeded validation split of a training set.
use super::dataset::LabelledImages;
use super::error::DataError;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

impl LabelledImages {
    /// Splits off a validation set: `fraction` of the images (rounded to the
    /// nearest count), drawn by a permutation seeded by `seed`; the rest, in
    /// their original order, stay for training. The same seed gives the same
    /// split. PyTorch: `torch.utils.data.random_split(ds, [1 - f, f],
    /// generator=torch.Generator().manual_seed(seed))` (another generator,
    /// so not the same images).
    ///
    /// `fraction` must lie in `[0, 1)`; 0 gives an empty validation set.
    ///
    /// ```
    /// use static_nn::data::LabelledImages;
    /// let d = LabelledImages::new(1, 1, (0..10).collect(), vec![0; 10])?;
    /// let (train, val) = d.split_validation(0.2, 7)?;
    /// assert_eq!((train.len(), val.len()), (8, 2));
    /// let mut all: Vec<u8> = train.pixels.iter().chain(&val.pixels).copied().collect();
    /// all.sort();
    /// assert_eq!(all, (0..10).collect::<Vec<u8>>());
    /// assert_eq!(d.split_validation(0.2, 7)?, (train, val));
    /// assert!(d.split_validation(1.0, 7).is_err());
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    pub fn split_validation(
        &self,
        fraction: f64,
        seed: u64,
    ) -> Result<(LabelledImages, LabelledImages), DataError> {
        if !(0.0..1.0).contains(&fraction) {
            return Err(DataError::Inconsistent(format!(
                "a validation fraction must lie in [0, 1), got {fraction}"
            )));
        }
        let n = self.len();
        let n_val = ((n as f64) * fraction).round() as usize;
        if fraction > 0.0 && (n_val == 0 || n_val >= n) {
            return Err(DataError::Inconsistent(format!(
                "a validation fraction of {fraction} of {n} images leaves {n_val} for validation \
                 and {} for training: both need at least one",
                n - n_val.min(n)
            )));
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed ^ VALIDATION_SALT));
        let mut val: Vec<usize> = order[..n_val].to_vec();
        let mut train: Vec<usize> = order[n_val..].to_vec();
        val.sort_unstable();
        train.sort_unstable();
        Ok((self.subset(train), self.subset(val)))
    }
}

/// Mixed into the seed so that the split does not follow the shuffle order
/// of the same seed.
const VALIDATION_SALT: u64 = 0x7661_6c69_6461_7465;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_is_a_partition_and_seeded() {
        let d = LabelledImages::with_channels(
            (3, 1, 2),
            4,
            (0..100 * 6).map(|i| (i / 6) as u8).collect(),
            (0..100).map(|i| (i % 4) as u8).collect(),
        )
        .unwrap();
        let (t, v) = d.split_validation(0.1, 1).unwrap();
        assert_eq!((t.len(), v.len()), (90, 10));
        assert_eq!((t.channels, t.classes, v.channels, v.classes), (3, 4, 3, 4));
        let mut ids: Vec<u8> = t
            .pixels
            .iter()
            .step_by(6)
            .chain(v.pixels.iter().step_by(6))
            .copied()
            .collect();
        ids.sort_unstable();
        assert_eq!(ids, (0..100).map(|i| i as u8).collect::<Vec<_>>());
        let (_, v2) = d.split_validation(0.1, 2).unwrap();
        assert_ne!(v, v2, "another seed, another split");
        let (t0, v0) = d.split_validation(0.0, 1).unwrap();
        assert_eq!((t0.len(), v0.len()), (100, 0));
        assert!(d.split_validation(0.001, 1).is_err());
        assert!(d.split_validation(-0.1, 1).is_err());
    }
}
