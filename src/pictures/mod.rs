//! Pictures: tensors ↔ PNG files, image grids with titles, loss curves,
//! colour maps, and reading photos of digits as MNIST-style inputs.
//!
//! This is the Rust side of the notebook's `plot` helper and of its
//! matplotlib figures. Everything draws into plain RGB PNGs with no plotting
//! or font dependency beyond the 8×8 bitmap font of `font8x8`.
//!
//! | function | picture |
//! |---|---|
//! | [`save_gray_png`], [`save_rgb_png`], [`save_tensor_png`] | one grey or RGB picture |
//! | [`save_signed_png`] | a signed map (edges, kernels): blue < 0 < red |
//! | [`save_grid_png`] | the notebook's `plot`: pictures with titles, mistakes in red |
//! | [`save_line_plot`] | loss / accuracy curves over epochs |
//! | [`read_image`], [`read_image_raw`] | a PNG or JPEG as a typed tensor or raw pixels |
//! | [`mnistify`], [`mnistify_image`] | any picture of a digit as a 28×28 MNIST input |
//!
//! Every function returns a [`PicturesError`] naming the file instead of
//! panicking on bad input. Every write is atomic: the PNG is written to a
//! hidden `.<name>.tmp-…` file in the same folder, synced and renamed over
//! `<name>`, so a reader never sees half a file.

mod canvas;
mod digit;
mod error;
mod font;
mod grid;
mod io;
mod plot;
mod png;

pub use digit::{mnistify, mnistify_image};
pub use error::PicturesError;
pub use grid::{save_grid_png, Panel};
pub use io::{read_image, read_image_raw};
pub use plot::save_line_plot;
pub use png::{
    diverging, grey_level, save_gray_png, save_rgb_png, save_signed_png, save_tensor_png,
};
