//! Image data: labelled images in memory and a typed batch loader (always
//! there), and with the `datasets` feature MNIST-format IDX files, CIFAR-10's
//! binary batches, checksums and the cache, with `download` verified
//! downloads, with `pictures` image folders — what torchvision's
//! `datasets.MNIST`, `datasets.CIFAR10` and `datasets.ImageFolder` and
//! PyTorch's `DataLoader` do in the notebook, with typed errors instead of panics.
//!
//! - **One trait** ([`DataSource`], [`LoadOptions`], [`ImageDataset`],
//!   [`DatasetName`]): every data set loads both splits and its class names
//!   the same way; `"cifar10".parse::<DatasetName>()?.source()?` picks one
//!   from a command line. [`LoadOptions::verify`] off (`--no-verify`) skips
//!   the checksums, for files you made or converted yourself; the loaded set
//!   lists what was not checked ([`ImageDataset::warnings`]).
//! - **Descriptors** ([`DatasetSpec`], [`FileSpec`], [`CifarSpec`]): [`MNIST`],
//!   [`FASHION_MNIST`] and [`KMNIST`] share the IDX format; other data sets
//!   in that format can be described at run time. [`CIFAR10`]: the binary
//!   version, one `.tar.gz` (MD5-checked, unpacked atomically beside itself)
//!   of `data_batch_1..5.bin` and `test_batch.bin`, records of a label byte
//!   and 3×32×32 pixels (R, G, B planes).
//! - **Image folders** ([`ImageFolder`]): `DIR/train/<class>/*` and
//!   `DIR/test/<class>/*` (PNG, JPEG), converted to 1 or 3 channels and
//!   resized, bad files named or skipped.
//! - **Reading** ([`read_idx_images`], [`read_idx_labels`]): raw or
//!   gzip-compressed, with the magic number, dimensions, exact length and
//!   labels (`0..=9`) checked.
//! - **Finding** ([`locate`], [`LocateOptions`]): an explicit directory, then
//!   `$MNIST_DIR`, then the per-user cache, then a download into the cache
//!   from the mirrors in turn, each file verified (the mirrors' MD5 of the
//!   `.gz`, or the SHA-256 of the decompressed content) and written atomically.
//! - **Loading** (`IdxDataset`, [`LabelledImages`]) and **batching**
//!   ([`DataLoader`], [`Batch`]): reproducible shuffling, `drop_last`,
//!   prefetching on a background thread, normalisation, seeded augmentation
//!   ([`Augment`]: random shifts), and typed tensors
//!   (`Tensor<Rank4<B, 1, 28, 28>>` or a run-time batch size) on any dfdx device.
//!
//! ```no_run
//! use std::sync::Arc;
//! use dfdx::prelude::*;
//! use static_nn::data::{DataLoader, LoaderConfig, IdxDataset, Normalize, MNIST};
//!
//! let mnist = IdxDataset::load(&MNIST, None)?; // --data DIR, $MNIST_DIR, cache or download
//! let loader = DataLoader::new(
//!     Arc::new(mnist.train),
//!     LoaderConfig { batch_size: 64, shuffle: Some(0), drop_last: true,
//!                    normalize: Some(Normalize::MNIST), ..Default::default() },
//! );
//! let dev = Cpu::default();
//! for epoch in 0..2 {
//!     for batch in loader.epoch(epoch) {
//!         let (x, y) = batch.to_const_tensors::<64, 1, 28, 28, _>(&dev)?;
//!         // x: Tensor<Rank4<64, 1, 28, 28>, f32, Cpu>, y: Tensor<Rank1<64>, usize, Cpu>
//!         # let _ = (x, y);
//!     }
//! }
//! # Ok::<(), static_nn::data::DataError>(())
//! ```
//!
//! Environment variables: `MNIST_DIR` (`FASHION_MNIST_DIR`, `KMNIST_DIR`,
//! `CIFAR10_DIR`) name a directory with the files; `STATIC_NN_CACHE_DIR`
//! moves the cache; `STATIC_NN_OFFLINE=1` forbids downloads;
//! `STATIC_NN_MNIST_MIRRORS` (`STATIC_NN_FASHION_MNIST_MIRRORS`,
//! `STATIC_NN_KMNIST_MIRRORS`, `STATIC_NN_CIFAR10_MIRRORS`) replaces the
//! mirror list.

#[cfg(feature = "datasets")]
mod archive;
mod augment;
mod batch;
#[cfg(feature = "datasets")]
mod cifar;
mod dataset;
#[cfg(feature = "download")]
mod download;
mod error;
#[cfg(feature = "pictures")]
mod folder;
#[cfg(feature = "datasets")]
mod idx;
#[cfg(feature = "datasets")]
mod idx_source;
mod loader;
#[cfg(feature = "datasets")]
mod locate;
mod source;
#[cfg(feature = "datasets")]
mod spec;
mod split;
#[cfg(feature = "datasets")]
mod verify;

pub use augment::Augment;
pub use batch::{Batch, ImagesTensor, LabelsTensor, OneHotTensor, NUM_CLASSES};
#[cfg(feature = "datasets")]
pub use cifar::{
    CifarSpec, CIFAR10, CIFAR10_TEST_BATCH, CIFAR10_TRAIN_BATCHES, CIFAR_IMAGE_BYTES,
    CIFAR_RECORD_BYTES,
};
#[cfg(feature = "datasets")]
pub use dataset::IdxDataset;
pub use dataset::LabelledImages;
#[cfg(feature = "download")]
pub use download::{DownloadEvent, DownloadObserver};
pub use error::DataError;
#[cfg(feature = "pictures")]
pub use folder::ImageFolder;
#[cfg(feature = "datasets")]
pub use idx::{encode_idx, read_idx_images, read_idx_labels, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
pub use loader::{shard_range, Batches, DataLoader, LoaderConfig, Normalize};
#[cfg(feature = "datasets")]
pub use locate::{
    default_cache_dir, download_urls, find_in_dir, locate, locate_with, verify_dir, LocateOptions,
    CACHE_ENV, OFFLINE_ENV,
};
pub use source::{DataSource, DatasetName, ImageDataset, LoadOptions, SkippedFile};
#[cfg(feature = "datasets")]
pub use spec::{DatasetSpec, FileSpec, Split, StrList, FASHION_MNIST, KMNIST, MNIST};
#[cfg(feature = "datasets")]
pub use verify::{md5_hex, sha256_of_content, verify_file, Verified};
