//! A tiny data set in MNIST's format, for download and cache tests: the
//! four files, their spec and the routes that serve them.
use std::collections::HashMap;
use std::path::Path;

use static_nn::data::{
    encode_idx, md5_hex, sha256_of_content, DatasetSpec, FileSpec, IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
};

use super::{gz, Reply};

/// The four files of the tiny data sets (`DatasetSpec` "Tiny").
pub const NAMES: [&str; 4] = [
    "tiny-train-images-idx3-ubyte.gz",
    "tiny-train-labels-idx1-ubyte.gz",
    "tiny-test-images-idx3-ubyte.gz",
    "tiny-test-labels-idx1-ubyte.gz",
];

/// `n` 28×28 images of noise (incompressible: their `.gz` is as large as
/// they are) and their labels, raw IDX.
pub fn tiny_raw(n: u32) -> (Vec<u8>, Vec<u8>) {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let px: Vec<u8> = (0..n * 784)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect();
    let lb: Vec<u8> = (0..n).map(|i| (i * 7 % 10) as u8).collect();
    (
        encode_idx(IDX_IMAGES_MAGIC, &[n, 28, 28], &px),
        encode_idx(IDX_LABELS_MAGIC, &[n], &lb),
    )
}

/// The four files' raw content: both splits alike.
pub fn tiny_files(n: u32) -> [Vec<u8>; 4] {
    let (i, l) = tiny_raw(n);
    [i.clone(), l.clone(), i, l]
}

/// The spec of `tiny_files(n)`, with their checksums.
pub fn tiny_spec(n: u32) -> DatasetSpec {
    let raw = tiny_files(n);
    let files: [FileSpec; 4] = std::array::from_fn(|i| {
        FileSpec::new(
            NAMES[i],
            sha256_of_content(Path::new("x"), &raw[i]).unwrap(),
            vec![md5_hex(&gz(&raw[i]))],
        )
    });
    DatasetSpec::new("Tiny", "tiny", vec![], files)
}

/// Routes `/{mirror}/{name}` for the four `.gz` files, each made by `make`.
pub fn tiny_routes(
    n: u32,
    mirror: &str,
    make: impl Fn(Vec<u8>) -> Reply,
) -> HashMap<String, Reply> {
    NAMES
        .iter()
        .zip(tiny_files(n))
        .map(|(name, raw)| (format!("/{mirror}/{name}"), make(gz(&raw))))
        .collect()
}
