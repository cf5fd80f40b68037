//! The generator of the fuzz seed corpora (`fuzz/seeds/`), built from small
//! valid files of each format. What fuzzing (`scripts/fuzz.sh`) found is
//! tested with its subject (`pictures`, `nn`), each test saying so.
//!
//! Regenerate the seeds with
//! `cargo test --test integration -- --ignored write_fuzz_seeds`.

use std::path::{Path, PathBuf};

use static_nn::data::{encode_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use static_nn::prelude::*;
use static_nn::weights;

use crate::common::gz;

/// `n` images of `r`×`c` with varied pixels, as raw IDX.
fn idx_images(n: u32, r: u32, c: u32) -> Vec<u8> {
    let px: Vec<u8> = (0..n * r * c).map(|i| (i * 37 % 256) as u8).collect();
    encode_idx(IDX_IMAGES_MAGIC, &[n, r, c], &px)
}

/// `n` labels in `0..=9`, as raw IDX.
fn idx_labels(n: u32) -> Vec<u8> {
    let lb: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
    encode_idx(IDX_LABELS_MAGIC, &[n], &lb)
}

/// The fuzz weights target's small model.
type Small = (Conv2D<1, 2, 3>, Linear<4, 3>);

/// A small PNG or JPEG of a dark stroke on light paper.
fn picture(w: u32, h: u32, format: image::ImageFormat, color: bool) -> Vec<u8> {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        let ink = x.abs_diff(w / 2) <= w / 8 && y > h / 8 && y < h - h / 8;
        let v = if ink { 20 } else { 230 };
        image::Rgba([v, if color { 255 - v } else { v }, v, 255])
    });
    let dynamic = if format == image::ImageFormat::Jpeg {
        image::DynamicImage::ImageRgb8(image::DynamicImage::ImageRgba8(img).to_rgb8())
    } else if color {
        image::DynamicImage::ImageRgba8(img)
    } else {
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgba8(img).to_luma8())
    };
    let mut out = std::io::Cursor::new(Vec::new());
    dynamic.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn seeds_dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Writes the seed corpora of the four fuzz targets into `fuzz/seeds/`.
#[test]
#[ignore = "writes fuzz/seeds; run by hand when the file formats change"]
fn write_fuzz_seeds() {
    let put = |target: &str, name: &str, bytes: &[u8]| {
        std::fs::write(seeds_dir(target).join(name), bytes).unwrap();
    };
    let images = idx_images(3, 4, 5);
    let labels = idx_labels(3);
    // idx_raw: whole files; then pairs, whose first byte says where to cut.
    put("idx_raw", "images", &images);
    put("idx_raw", "labels", &labels);
    put("idx_raw", "empty-set", &idx_images(0, 28, 28));
    put("idx_raw", "mnist-shaped", &idx_images(2, 28, 28));
    put("idx_raw", "truncated", &images[..images.len() - 3]);
    put("idx_raw", "gzip-without-gz-name", &gz(&images));
    let mut pair = Vec::new();
    let body: Vec<u8> = [images.clone(), labels.clone()].concat();
    let k = (images.len() * 255).div_ceil(body.len());
    pair.push(k as u8);
    pair.extend_from_slice(&body);
    put("idx_raw", "pair", &pair);
    // idx_gz: even first byte = the .gz file; odd = IDX content to compress.
    put("idx_gz", "gz-images", &[&[0u8][..], &gz(&images)].concat());
    put("idx_gz", "gz-labels", &[&[0u8][..], &gz(&labels)].concat());
    put(
        "idx_gz",
        "gz-empty-set",
        &[&[2u8][..], &gz(&idx_images(0, 28, 28))].concat(),
    );
    put("idx_gz", "raw-images", &[&[1u8][..], &images].concat());
    put("idx_gz", "raw-labels", &[&[3u8][..], &labels].concat());
    put(
        "idx_gz",
        "raw-mnist-shaped",
        &[&[9u8][..], &idx_images(2, 28, 28)].concat(),
    );
    // weights: the small model's file (what `save` writes), a renamed one,
    // one with an extra tensor and one with an f64 tensor.
    let dev = Cpu::seed_from_u64(1);
    let small = dev.build_module::<Small, f32>();
    let bytes = weights::to_bytes(&small).unwrap();
    put("weights", "small", &bytes);
    // the same with `0.*` renamed `conv1.*` (as the target's key map expects)
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n])
        .unwrap()
        .replace("\"0.", "\"conv1.");
    let mut renamed = (header.len() as u64).to_le_bytes().to_vec();
    renamed.extend_from_slice(header.as_bytes());
    renamed.extend_from_slice(&bytes[8 + n..]);
    put("weights", "small-renamed", &renamed);
    let tiny = dev.build_module::<(Linear<2, 2>, Linear<2, 1>), f32>();
    put("weights", "other-model", &weights::to_bytes(&tiny).unwrap());
    {
        use ::safetensors::tensor::{Dtype, TensorView};
        let data: Vec<u8> = (0..8).flat_map(|i| f64::from(i).to_le_bytes()).collect();
        let f64s = TensorView::new(Dtype::F64, vec![2, 4], &data).unwrap();
        let f32data: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let f32s = TensorView::new(Dtype::F32, vec![3, 4], &f32data).unwrap();
        let file = ::safetensors::tensor::serialize([("1.weight", &f64s), ("extra", &f32s)], &None)
            .unwrap();
        put("weights", "dtype-and-extra", &file);
    }
    // image: PNGs (grey, RGBA), a JPEG, and an MNIST-sized grey PNG.
    use image::ImageFormat::{Jpeg, Png};
    put("image", "grey.png", &picture(12, 16, Png, false));
    put("image", "rgba.png", &picture(9, 7, Png, true));
    put("image", "digit.jpg", &picture(16, 16, Jpeg, true));
    put("image", "mnist.png", &picture(28, 28, Png, false));
}
