//! A small CIFAR-10 in its binary format, made in the test: batches of a
//! few records, the `.tar.gz` that holds them, and a spec whose checksum is
//! that archive's.
use std::borrow::Cow;

use static_nn::data::{md5_hex, CifarSpec, FileSpec, CIFAR10, CIFAR_IMAGE_BYTES};

/// Records per batch file.
pub const RECORDS: usize = 20;

/// The label of record `i` of batch `b` (0..=5, 5 = test).
pub fn label(b: usize, i: usize) -> u8 {
    ((b * 3 + i * 7) % 10) as u8
}

/// The pixel of channel `c` (0 R, 1 G, 2 B) at `k` (row-major in its
/// plane) of record `i` of batch `b`: each plane gets values of its own,
/// so a mix-up of planes shows.
pub fn pixel(b: usize, i: usize, c: usize, k: usize) -> u8 {
    (c * 80 + (b * 31 + i * 13 + k) % 61) as u8
}

/// Batch `b`: `n` records of one label byte then the R, G and B planes.
pub fn batch(b: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n * (1 + CIFAR_IMAGE_BYTES));
    for i in 0..n {
        out.push(label(b, i));
        for c in 0..3 {
            out.extend((0..1024).map(|k| pixel(b, i, c, k)));
        }
    }
    out
}

/// The six batch files' names and contents (`data_batch_1..5`, `test_batch`).
pub fn batches() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = (1..=5)
        .map(|k| (format!("data_batch_{k}.bin"), batch(k - 1, RECORDS)))
        .collect();
    v.push(("test_batch.bin".into(), batch(5, RECORDS)));
    v
}

/// A `.tar.gz` of `files` below `cifar-10-batches-bin/`, as the real archive lays them out.
pub fn tar_gz(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(
            &mut h,
            format!("cifar-10-batches-bin/{name}"),
            data.as_slice(),
        )
        .unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// The archive of [`batches`] with a `batches.meta.txt` of the standard names.
pub fn archive() -> Vec<u8> {
    let mut files = batches();
    let meta: String = CIFAR10.classes.iter().map(|c| format!("{c}\n")).collect();
    files.push(("batches.meta.txt".into(), meta.into_bytes()));
    tar_gz(&files)
}

/// CIFAR-10's spec with the MD5 of `archive_bytes` instead of the published one.
pub fn spec_for(archive_bytes: &[u8]) -> CifarSpec {
    CifarSpec {
        archive: FileSpec::new("cifar-10-binary.tar.gz", "", vec![md5_hex(archive_bytes)]),
        mirrors: Cow::Owned(vec![]),
        ..CIFAR10
    }
}
