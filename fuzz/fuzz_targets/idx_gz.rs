//! The IDX reader on gzip files. The first input byte picks the mode:
//! even — the rest of the input is the `.gz` file itself (gzip framing,
//! deflate stream, CRC and the IDX parser behind them); odd — the rest is
//! IDX content that the target compresses, so that the fuzzer explores the
//! parser's gzip path (buffer sizing from the compressed length, early
//! ends, trailing data) with valid streams.
#![no_main]
use flate2::write::GzEncoder;
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use static_nn::data::{read_idx_images, read_idx_labels};
use static_nn_fuzz::scratch;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 0 {
        rest.to_vec()
    } else {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(u32::from(mode % 10)));
        e.write_all(rest).expect("in memory");
        e.finish().expect("in memory")
    };
    let path = scratch("images-idx3-ubyte.gz");
    std::fs::write(&path, &bytes).expect("scratch file");
    if let Ok((n, r, c, px)) = read_idx_images(&path) {
        assert_eq!(px.len(), n * r * c);
    }
    if let Ok(labels) = read_idx_labels(&path) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
});
