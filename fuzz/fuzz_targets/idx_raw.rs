//! The IDX reader on raw (uncompressed) files: arbitrary bytes written to a
//! file with no `.gz` name, read as images, as labels, and as a pair with
//! `LabelledImages::from_files`. Any outcome but a panic, a hang or an
//! allocation out of proportion to the input is fine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use static_nn::data::{read_idx_images, read_idx_labels, LabelledImages};
use static_nn_fuzz::scratch;

fuzz_target!(|data: &[u8]| {
    let img = scratch("images-idx3-ubyte");
    std::fs::write(&img, data).expect("scratch file");
    if let Ok((n, r, c, px)) = read_idx_images(&img) {
        assert_eq!(px.len(), n * r * c);
    }
    if let Ok(labels) = read_idx_labels(&img) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
    // A pair: the first byte says where the input splits into images and labels.
    if let Some((&k, rest)) = data.split_first() {
        let cut = (usize::from(k) * rest.len()) / 255;
        let (a, b) = rest.split_at(cut.min(rest.len()));
        let lab = scratch("labels-idx1-ubyte");
        std::fs::write(&img, a).expect("scratch file");
        std::fs::write(&lab, b).expect("scratch file");
        if let Ok(set) = LabelledImages::from_files(&img, &lab) {
            assert_eq!(set.pixels.len(), set.len() * set.image_len());
        }
    }
});
