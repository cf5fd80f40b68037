//! The notebook: every value it prints for images, convolution and pooling
//! (`values`, each asserted once), and its learned 1×2 kernel.
mod learned_kernel;
mod values;
