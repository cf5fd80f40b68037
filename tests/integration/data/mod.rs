//! The data sets: IDX files, the real MNIST set, the loader, downloads,
//! CIFAR-10 and image folders.
mod cifar;
mod download;
mod folder;
mod idx;
mod mnist;
