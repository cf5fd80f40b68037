//! [`DataLoader`]: batches of one epoch, shuffled reproducibly, optionally
//! prepared ahead on a background thread (the analogue of PyTorch's
//! `num_workers`).

use std::borrow::Cow;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use super::augment::Augment;
use super::batch::Batch;
use super::dataset::LabelledImages;
use super::error::DataError;

/// Normalisation like torchvision's `transforms.Normalize`: pixels are first
/// mapped to `[0, 1]` (like `ToTensor`), then `x → (x - mean[c]) / std[c]`
/// for channel `c`. One value applies to every channel.
///
/// ```
/// use static_nn::data::Normalize;
/// let n = Normalize::new(&[0.5, 0.25], &[0.5, 0.25]);
/// assert_eq!(n.apply(0, 1.0), 1.0);
/// assert_eq!(n.apply(1, 0.5), 1.0);
/// assert_eq!(Normalize::MNIST.apply(2, 0.1307), 0.0); // one value for all channels
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Normalize {
    /// Mean subtracted from each channel's values in `[0, 1]` (one value, or one per channel).
    pub mean: Cow<'static, [f32]>,
    /// Standard deviation each channel's difference is divided by.
    pub std: Cow<'static, [f32]>,
}

impl Normalize {
    /// MNIST's training-set statistics: mean 0.1307, std 0.3081.
    pub const MNIST: Normalize = Normalize {
        mean: Cow::Borrowed(&[0.1307]),
        std: Cow::Borrowed(&[0.3081]),
    };
    /// Fashion-MNIST's training-set statistics: mean 0.2860, std 0.3530.
    pub const FASHION_MNIST: Normalize = Normalize {
        mean: Cow::Borrowed(&[0.2860]),
        std: Cow::Borrowed(&[0.3530]),
    };
    /// CIFAR-10's training-set statistics per channel (R, G, B): means
    /// 0.4914, 0.4822, 0.4465, standard deviations 0.2470, 0.2435, 0.2616.
    pub const CIFAR10: Normalize = Normalize {
        mean: Cow::Borrowed(&[0.4914, 0.4822, 0.4465]),
        std: Cow::Borrowed(&[0.2470, 0.2435, 0.2616]),
    };

    /// Per-channel statistics (or one value each for all channels).
    pub fn new(mean: &[f32], std: &[f32]) -> Normalize {
        Normalize {
            mean: Cow::Owned(mean.to_vec()),
            std: Cow::Owned(std.to_vec()),
        }
    }

    /// The statistics of a data set, per channel (from
    /// [`LabelledImages::channel_mean_std`]).
    pub fn of(data: &LabelledImages) -> Normalize {
        let (mean, std): (Vec<f32>, Vec<f32>) = data
            .channel_mean_std()
            .into_iter()
            .map(|(m, s)| (m as f32, if s > 0.0 { s as f32 } else { 1.0 }))
            .unzip();
        Normalize {
            mean: Cow::Owned(mean),
            std: Cow::Owned(std),
        }
    }

    /// Normalises one value in `[0, 1]` of channel `channel` (the last
    /// statistic serves channels beyond the list).
    pub fn apply(&self, channel: usize, x: f32) -> f32 {
        let pick = |v: &[f32], d: f32| v.get(channel).or(v.last()).copied().unwrap_or(d);
        (x - pick(&self.mean, 0.0)) / pick(&self.std, 1.0)
    }
}

/// The `f32` value of each of the 256 pixel values, for each channel.
fn pixel_tables(normalize: Option<&Normalize>, channels: usize) -> Vec<[f32; 256]> {
    (0..channels.max(1))
        .map(|c| {
            let mut t = [0.0f32; 256];
            for (p, v) in t.iter_mut().enumerate() {
                let x = p as f32 / 255.0;
                *v = normalize.map_or(x, |n| n.apply(c, x));
            }
            t
        })
        .collect()
}

/// How a [`DataLoader`] batches.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    /// Images per batch (the last batch may be smaller unless `drop_last`).
    pub batch_size: usize,
    /// `Some(seed)`: a new order every epoch, the same for the same seed and
    /// epoch; `None`: the file's order.
    pub shuffle: Option<u64>,
    /// Drop the last batch if it is smaller than `batch_size`.
    pub drop_last: bool,
    /// Batches prepared ahead on a background thread; `0` prepares each batch
    /// on the calling thread when it is asked for.
    pub prefetch: usize,
    /// Normalisation after mapping pixels to `[0, 1]` (per channel); `None`
    /// leaves them in `[0, 1]`.
    pub normalize: Option<Normalize>,
    /// Random changes to each image, on the batching thread, seeded by the
    /// shuffle seed (0 without one), the epoch and the batch; `None` for
    /// none (evaluation).
    pub augment: Option<Augment>,
}

impl Default for LoaderConfig {
    /// Batches of 64, in order, last batch kept, 2 batches prefetched, no normalisation.
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: None,
            drop_last: false,
            prefetch: 2,
            normalize: None,
            augment: None,
        }
    }
}

/// Batches a [`LabelledImages`] epoch after epoch.
///
/// ```
/// use std::sync::Arc;
/// use static_nn::data::{DataLoader, LabelledImages, LoaderConfig};
/// let data = LabelledImages::new(1, 1, (0..10).collect(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9])?;
/// let loader = DataLoader::new(Arc::new(data), LoaderConfig { batch_size: 4, shuffle: Some(7), ..Default::default() });
/// assert_eq!(loader.len(), 3); // 4 + 4 + 2
/// let mut seen: Vec<usize> = loader.epoch(0).flat_map(|b| b.labels).collect();
/// seen.sort();
/// assert_eq!(seen, (0..10).collect::<Vec<_>>());
/// # Ok::<(), static_nn::data::DataError>(())
/// ```
#[derive(Clone, Debug)]
pub struct DataLoader {
    data: Arc<LabelledImages>,
    cfg: LoaderConfig,
    /// Samples that are actually usable (guards against hand-built data
    /// whose pixel buffer is too short).
    n: usize,
    tables: Arc<Vec<[f32; 256]>>,
    /// `(rank, world)`: each batch is this rank's slice of the global batch.
    shard: Option<(usize, usize)>,
}

impl DataLoader {
    /// A loader over `data`.
    ///
    /// # Panics
    /// If `cfg.batch_size` is 0 (like `slice::chunks(0)`).
    pub fn new(data: Arc<LabelledImages>, cfg: LoaderConfig) -> DataLoader {
        assert!(
            cfg.batch_size > 0,
            "DataLoader: batch_size must be at least 1"
        );
        let per = data.image_len();
        let n = data
            .pixels
            .len()
            .checked_div(per)
            .map_or(data.labels.len(), |m| m.min(data.labels.len()));
        let tables = Arc::new(pixel_tables(cfg.normalize.as_ref(), data.channels));
        DataLoader {
            data,
            cfg,
            n,
            tables,
            shard: None,
        }
    }

    /// The same loader cut for data-parallel training: every batch of an
    /// epoch is rank `rank`'s contiguous slice of the global batch of
    /// `batch_size` samples (see [`shard_range`]), the global batches being
    /// those of the unsharded loader, in the same seeded order. The `world`
    /// ranks together see each global batch exactly once; [`len`](Self::len)
    /// still counts global batches, so every rank takes as many steps.
    ///
    /// A slice may be empty (a last batch smaller than the world) and the
    /// slices of an uneven split differ by one sample: the training driver
    /// weights each rank's gradient by its sample count, so the average is
    /// that of the global batch.
    ///
    /// Augmentation stays that of the global batch: the random numbers of
    /// the other ranks' samples are drawn and skipped, so a sample is
    /// augmented alike whatever the world size (the cost: drawing, not
    /// applying, a few numbers per skipped sample).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use static_nn::data::{DataLoader, LabelledImages, LoaderConfig};
    /// let data = Arc::new(LabelledImages::new(1, 1, (0..10).collect(), (0..10).collect())?);
    /// let cfg = LoaderConfig { batch_size: 4, shuffle: Some(3), ..Default::default() };
    /// let whole: Vec<usize> = DataLoader::new(data.clone(), cfg.clone()).epoch(0).flat_map(|b| b.labels).collect();
    /// let r0 = DataLoader::new(data.clone(), cfg.clone()).sharded(0, 2)?;
    /// let r1 = DataLoader::new(data, cfg).sharded(1, 2)?;
    /// let mut both = Vec::new();
    /// for (a, b) in r0.epoch(0).zip(r1.epoch(0)) {
    ///     both.extend(a.labels);
    ///     both.extend(b.labels);
    /// }
    /// assert_eq!(both, whole);
    /// # Ok::<(), static_nn::data::DataError>(())
    /// ```
    ///
    /// # Errors
    /// [`DataError::BadShard`] unless `rank < world`.
    pub fn sharded(mut self, rank: usize, world: usize) -> Result<DataLoader, DataError> {
        if rank >= world {
            return Err(DataError::BadShard { rank, world });
        }
        self.shard = Some((rank, world));
        Ok(self)
    }

    /// The `(rank, world)` of a [`sharded`](Self::sharded) loader.
    pub fn shard(&self) -> Option<(usize, usize)> {
        self.shard
    }

    /// Batches per epoch.
    pub fn len(&self) -> usize {
        if self.cfg.drop_last {
            self.n / self.cfg.batch_size
        } else {
            self.n.div_ceil(self.cfg.batch_size)
        }
    }

    /// Whether an epoch yields no batch at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples in the data set (an epoch visits `len() * batch_size` of them
    /// with `drop_last`, all of them without).
    pub fn num_samples(&self) -> usize {
        self.n
    }

    /// The data batched.
    pub fn data(&self) -> &Arc<LabelledImages> {
        &self.data
    }

    /// The order in which epoch `epoch` visits the samples: `0..n` without
    /// shuffling, else a permutation drawn from `StdRng` (rand 0.8) seeded by
    /// the seed and the epoch.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.n).collect();
        if let Some(seed) = self.cfg.shuffle {
            let mut rng = StdRng::seed_from_u64(epoch_seed(seed, epoch));
            order.shuffle(&mut rng);
        }
        order
    }

    /// The batches of epoch `epoch`. With shuffling, the order depends on
    /// (seed, epoch) only: the same seed and epoch give the same batches, a
    /// new epoch a new order. With `prefetch > 0` the batches are built on a
    /// background thread, at most `prefetch` ahead; dropping the iterator
    /// stops that thread.
    pub fn epoch(&self, epoch: usize) -> Batches {
        let augment = self.cfg.augment.as_ref().map(|a| {
            let seed = self.cfg.shuffle.unwrap_or(0) ^ AUGMENT_SALT;
            (*a, epoch_seed(seed, epoch))
        });
        let producer = Producer {
            data: Arc::clone(&self.data),
            order: Arc::new(self.order(epoch)),
            batch_size: self.cfg.batch_size,
            tables: Arc::clone(&self.tables),
            augment,
            shard: self.shard,
            next: 0,
            end: self.len(),
        };
        let remaining = producer.end;
        if self.cfg.prefetch == 0 || remaining <= 1 {
            return Batches {
                remaining,
                inner: Inner::Direct(producer),
            };
        }
        let (tx, rx) = mpsc::sync_channel(self.cfg.prefetch);
        let mut background = producer.clone();
        let spawned = std::thread::Builder::new()
            .name("static-nn-prefetch".into())
            .spawn(move || {
                while let Some(b) = background.next_batch() {
                    if tx.send(b).is_err() {
                        break; // the consumer is gone
                    }
                }
            });
        let inner = match spawned {
            Ok(handle) => Inner::Background {
                rx: Some(rx),
                handle: Some(handle),
            },
            // No thread to be had: build the batches on this thread instead.
            Err(_) => Inner::Direct(producer),
        };
        Batches { remaining, inner }
    }
}

/// Seed of epoch `epoch`'s shuffle: the user's seed and the epoch mixed by
/// SplitMix64, so that nearby seeds and epochs give unrelated orders.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    fn splitmix64(x: u64) -> u64 {
        let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    splitmix64(seed ^ splitmix64(epoch as u64))
}

/// Mixed into the shuffle seed for augmentation, so that the two streams
/// of random numbers differ.
const AUGMENT_SALT: u64 = 0x0061_7567_6d65_6e74;

/// Builds the batches of one epoch.
#[derive(Clone)]
struct Producer {
    data: Arc<LabelledImages>,
    order: Arc<Vec<usize>>,
    batch_size: usize,
    tables: Arc<Vec<[f32; 256]>>,
    /// The augmentation and the epoch's seed for it.
    augment: Option<(Augment, u64)>,
    shard: Option<(usize, usize)>,
    next: usize,
    end: usize,
}

/// The part of a global batch of `len` samples that rank `rank` of `world`
/// takes: contiguous slices in rank order, the first `len % world` ranks one
/// sample longer. An empty range for `world == 0` or `rank >= world`.
///
/// ```
/// use static_nn::data::shard_range;
/// assert_eq!(shard_range(64, 0, 2), 0..32);
/// assert_eq!(shard_range(64, 1, 2), 32..64);
/// assert_eq!(shard_range(5, 0, 3), 0..2);
/// assert_eq!(shard_range(5, 2, 3), 4..5);
/// assert_eq!(shard_range(1, 1, 2), 1..1); // an empty slice
/// ```
pub fn shard_range(len: usize, rank: usize, world: usize) -> std::ops::Range<usize> {
    if world == 0 || rank >= world {
        return 0..0;
    }
    let (base, extra) = (len / world, len % world);
    let start = rank * base + rank.min(extra);
    start..start + base + usize::from(rank < extra)
}

impl Producer {
    fn next_batch(&mut self) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let start = self.next * self.batch_size;
        let stop = (start + self.batch_size).min(self.order.len());
        self.next += 1;
        let global = &self.order[start..stop];
        let local = match self.shard {
            Some((rank, world)) => shard_range(global.len(), rank, world),
            None => 0..global.len(),
        };
        let idx = &global[local.clone()];
        let d = &*self.data;
        let per = d.image_len();
        prefetch_images(&d.pixels, idx, per);
        let mut images = Vec::with_capacity(idx.len() * per);
        let mut labels = Vec::with_capacity(idx.len());
        let t: &[[f32; 256]] = &self.tables;
        let plane = d.rows * d.cols;
        let mut rng = self
            .augment
            .map(|(_, seed)| StdRng::seed_from_u64(epoch_seed(seed, self.next)));
        // the other ranks' samples before this rank's: their random numbers
        if let (Some((aug, _)), Some(rng)) = (&self.augment, rng.as_mut()) {
            for _ in 0..local.start {
                aug.draw(rng);
            }
        }
        for &i in idx {
            // `order` only holds indices below the loader's `n`, which fits the buffers.
            let img = &d.pixels[i * per..(i + 1) * per];
            match (&self.augment, rng.as_mut()) {
                (Some((aug, _)), Some(rng)) => {
                    let at = images.len();
                    images.resize(at + per, 0.0);
                    aug.apply(img, d.image_shape(), rng, t, &mut images[at..]);
                }
                _ => {
                    for (c, px) in img.chunks_exact(plane.max(1)).enumerate() {
                        let t = &t[c.min(t.len() - 1)];
                        images.extend(px.iter().map(|&p| t[p as usize]));
                    }
                }
            }
            labels.push(d.labels[i] as usize);
        }
        Some(Batch {
            images,
            labels,
            channels: d.channels,
            rows: d.rows,
            cols: d.cols,
        })
    }
}

/// Asks the CPU to start loading images `idx` (each `per` bytes of
/// `pixels`) into its caches. A shuffled batch's images lie at random places
/// in a set larger than the caches (MNIST's training images: 47 MB), so
/// each image's first bytes come from memory: converting them one after the
/// other waited for each image in turn (41 µs for a batch of 64 MNIST
/// images on an AMD EPYC).
/// Asked all at once, the loads overlap. Elsewhere than on x86-64 it does
/// nothing.
fn prefetch_images(pixels: &[u8], idx: &[usize], per: usize) {
    #[cfg(target_arch = "x86_64")]
    for &i in idx {
        let Some(image) = pixels.get(i * per..(i + 1) * per) else {
            continue;
        };
        // a byte every 64 from the first, and the last byte: every cache
        // line the image touches, wherever it starts
        let starts = image.chunks(64).map(<[u8]>::as_ptr);
        for at in starts.chain(image.last().map(std::ptr::from_ref)) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: a prefetch only hints the cache (it never faults),
            // and the address lies inside `pixels`; SSE, which it needs,
            // is part of every x86-64 CPU.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(at.cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (pixels, idx, per);
}

enum Inner {
    Direct(Producer),
    Background {
        rx: Option<Receiver<Batch>>,
        handle: Option<JoinHandle<()>>,
    },
}

/// The batches of one epoch (see [`DataLoader::epoch`]).
pub struct Batches {
    remaining: usize,
    inner: Inner,
}

impl Iterator for Batches {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        if self.remaining == 0 {
            return None;
        }
        let b = match &mut self.inner {
            Inner::Direct(p) => p.next_batch(),
            Inner::Background { rx, handle } => match rx.as_ref().map(Receiver::recv) {
                Some(Ok(b)) => Some(b),
                _ => {
                    // The producer stopped early: that is only possible if it panicked.
                    *rx = None;
                    if let Some(h) = handle.take() {
                        if let Err(p) = h.join() {
                            std::panic::resume_unwind(p);
                        }
                    }
                    None
                }
            },
        };
        match b {
            Some(_) => self.remaining -= 1,
            None => self.remaining = 0,
        }
        b
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Batches {}
impl std::iter::FusedIterator for Batches {}

impl Drop for Batches {
    fn drop(&mut self) {
        if let Inner::Background { rx, handle } = &mut self.inner {
            // Closing the channel first makes a blocked producer's send fail.
            drop(rx.take());
            if let Some(h) = handle.take() {
                let _ = h.join();
            }
        }
    }
}

impl std::fmt::Debug for Batches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batches")
            .field("remaining", &self.remaining)
            .field(
                "prefetching",
                &matches!(self.inner, Inner::Background { .. }),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Arc<LabelledImages> {
        // image i is filled with the value i % 256; label i % 10
        let pixels = (0..n).flat_map(|i| [(i % 256) as u8; 4]).collect();
        let labels = (0..n).map(|i| (i % 10) as u8).collect();
        Arc::new(LabelledImages::new(2, 2, pixels, labels).unwrap())
    }

    fn cfg(bs: usize, shuffle: Option<u64>, drop_last: bool, prefetch: usize) -> LoaderConfig {
        LoaderConfig {
            batch_size: bs,
            shuffle,
            drop_last,
            prefetch,
            normalize: None,
            augment: None,
        }
    }

    #[test]
    fn shards_cut_every_global_batch_and_keep_its_augmentation() {
        let pixels: Vec<u8> = (0..23 * 9).map(|i| (i % 11 + 1) as u8).collect();
        let d =
            Arc::new(LabelledImages::new(3, 3, pixels, (0..23).map(|i| i % 10).collect()).unwrap());
        let c = LoaderConfig {
            augment: Some(Augment::crop_flip(1)),
            ..cfg(8, Some(5), false, 2)
        };
        let whole: Vec<Batch> = DataLoader::new(d.clone(), c.clone()).epoch(1).collect();
        for world in 1..=5 {
            let shards: Vec<Vec<Batch>> = (0..world)
                .map(|r| {
                    let l = DataLoader::new(d.clone(), c.clone())
                        .sharded(r, world)
                        .unwrap();
                    assert_eq!(l.len(), 3);
                    l.epoch(1).collect()
                })
                .collect();
            for (b, global) in whole.iter().enumerate() {
                let (mut labels, mut images) = (Vec::new(), Vec::new());
                for (r, shard) in shards.iter().enumerate() {
                    let part = &shard[b];
                    assert_eq!(part.len(), shard_range(global.len(), r, world).len());
                    labels.extend_from_slice(&part.labels);
                    images.extend_from_slice(&part.images);
                }
                assert_eq!(labels, global.labels, "world {world}, batch {b}");
                assert_eq!(images, global.images, "world {world}, batch {b}");
            }
        }
        let bad = DataLoader::new(d, c).sharded(2, 2).unwrap_err();
        assert!(
            matches!(bad, DataError::BadShard { rank: 2, world: 2 }),
            "{bad}"
        );
    }

    #[test]
    fn lengths_and_last_batch() {
        let d = data(10);
        let keep = DataLoader::new(d.clone(), cfg(4, None, false, 0));
        assert_eq!((keep.len(), keep.num_samples()), (3, 10));
        let sizes: Vec<usize> = keep.epoch(0).map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        let drop = DataLoader::new(d.clone(), cfg(4, None, true, 2));
        assert_eq!(drop.len(), 2);
        let sizes: Vec<usize> = drop.epoch(0).map(|b| b.len()).collect();
        assert_eq!(sizes, [4, 4]);
        let big = DataLoader::new(d, cfg(11, None, true, 2));
        assert!(big.is_empty());
        assert_eq!(big.epoch(0).count(), 0);
    }

    #[test]
    fn in_order_without_shuffle_and_pixels_in_unit_range() {
        let l = DataLoader::new(data(300), cfg(7, None, false, 3));
        let mut it = l.epoch(0);
        assert_eq!(it.len(), 43);
        let b = it.next().unwrap();
        assert_eq!(b.labels, [0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(b.images[4..8], [1.0 / 255.0; 4]);
        assert_eq!((b.rows, b.cols), (2, 2));
        let all: Vec<Batch> = l.epoch(0).collect();
        let px: Vec<f32> = all.iter().flat_map(|b| b.images.iter().copied()).collect();
        assert_eq!(px.len(), 300 * 4);
        assert!(px.iter().all(|&x| (0.0..=1.0).contains(&x)));
        assert_eq!(px[255 * 4], 1.0);
    }

    #[test]
    fn shuffle_is_reproducible_and_changes_per_epoch() {
        let d = data(1000);
        let a = DataLoader::new(d.clone(), cfg(64, Some(42), false, 2));
        let b = DataLoader::new(d.clone(), cfg(64, Some(42), false, 0));
        let labels = |l: &DataLoader, e| l.epoch(e).flat_map(|b| b.labels).collect::<Vec<_>>();
        // same seed + epoch: same batches, with or without prefetch
        assert_eq!(labels(&a, 0), labels(&b, 0));
        assert_eq!(
            a.epoch(3).collect::<Vec<_>>(),
            b.epoch(3).collect::<Vec<_>>()
        );
        // new epoch: new order
        assert_ne!(a.order(0), a.order(1));
        // another seed: another order
        let c = DataLoader::new(d, cfg(64, Some(43), false, 2));
        assert_ne!(a.order(0), c.order(0));
        // always a permutation
        let mut o = a.order(5);
        assert_ne!(o, (0..1000).collect::<Vec<_>>());
        o.sort_unstable();
        assert_eq!(o, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn batches_match_the_order() {
        let l = DataLoader::new(data(100), cfg(16, Some(1), false, 2));
        let order = l.order(2);
        let got: Vec<f32> = l.epoch(2).flat_map(|b| b.images).step_by(4).collect();
        let want: Vec<f32> = order.iter().map(|&i| (i % 256) as f32 / 255.0).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn augmentation_is_seeded_and_independent_of_prefetching() {
        let aug = |shuffle, prefetch| LoaderConfig {
            augment: Some(Augment::shifts(1)),
            ..cfg(4, shuffle, false, prefetch)
        };
        let images = |c: LoaderConfig, epoch| -> Vec<f32> {
            let pixels = (0..40 * 9).map(|i| (i % 7 + 1) as u8).collect();
            let d = LabelledImages::new(3, 3, pixels, vec![0; 40]).unwrap();
            DataLoader::new(Arc::new(d), c)
                .epoch(epoch)
                .flat_map(|b| b.images)
                .collect()
        };
        let a = images(aug(Some(1), 0), 0);
        assert_eq!(a, images(aug(Some(1), 2), 0), "the same with prefetching");
        assert_ne!(a, images(aug(Some(1), 0), 1), "another epoch, other shifts");
        assert_ne!(a, images(aug(Some(2), 0), 0), "another seed, other shifts");
        assert_ne!(a, images(cfg(4, Some(1), false, 0), 0), "some images moved");
        assert!(a.contains(&0.0), "background fills in");
    }

    #[test]
    fn normalisation() {
        let mut c = cfg(10, None, false, 0);
        c.normalize = Some(Normalize::MNIST);
        let l = DataLoader::new(data(10), c);
        let b = l.epoch(0).next().unwrap();
        assert!((b.images[0] - (-0.1307 / 0.3081)).abs() < 1e-6);
        let x = 9.0 / 255.0;
        assert!((b.images[36] - (x - 0.1307) / 0.3081).abs() < 1e-6);
    }

    #[test]
    fn dropping_a_prefetching_epoch_early_stops_the_thread() {
        let l = DataLoader::new(data(10_000), cfg(8, Some(3), false, 1));
        for _ in 0..20 {
            let mut it = l.epoch(0);
            assert!(it.next().is_some());
            drop(it); // must not hang
        }
    }

    #[test]
    fn short_pixel_buffer_does_not_panic() {
        let mut d = (*data(10)).clone();
        d.pixels.truncate(4 * 6 + 3);
        let l = DataLoader::new(Arc::new(d), cfg(4, Some(0), false, 2));
        assert_eq!(l.num_samples(), 6);
        assert_eq!(l.epoch(0).map(|b| b.len()).sum::<usize>(), 6);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Every configuration yields `len()` batches of `batch_size` (the
        /// last one possibly smaller without `drop_last`) that follow `order`.
        #[test]
        fn batches_cover_the_order(
            n in 0usize..300, bs in 1usize..40, drop_last: bool,
            seed: Option<u64>, prefetch in 0usize..3, epoch in 0usize..4,
        ) {
            let l = DataLoader::new(data(n), cfg(bs, seed, drop_last, prefetch));
            let batches: Vec<Batch> = l.epoch(epoch).collect();
            proptest::prop_assert_eq!(batches.len(), l.len());
            let covered = if drop_last { n / bs * bs } else { n };
            let mut firsts = Vec::new();
            for (k, b) in batches.iter().enumerate() {
                let want = if k + 1 < batches.len() { bs } else { covered - k * bs };
                proptest::prop_assert_eq!(b.len(), want);
                proptest::prop_assert_eq!(b.images.len(), want * 4);
                firsts.extend(b.images.iter().step_by(4).map(|&x| (x * 255.0).round() as usize));
            }
            let order: Vec<usize> = l.order(epoch)[..covered].iter().map(|i| i % 256).collect();
            proptest::prop_assert_eq!(firsts, order);
        }
    }

    #[test]
    #[should_panic(expected = "batch_size")]
    fn zero_batch_size_panics() {
        let _ = DataLoader::new(data(1), cfg(0, None, false, 0));
    }
}
