//! The data sets: IDX files, the real MNIST set, the loader, and downloads.
mod download;
mod idx;
mod mnist;
