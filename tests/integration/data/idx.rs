//! IDX files: random bytes into every reader give `Err`, never a panic, and
//! the data must be as long as the header says.
use proptest::prelude::*;
use static_nn::data::{
    encode_idx, read_idx_images, read_idx_labels, DatasetSpec, FileSpec, IdxDataset,
    LabelledImages, LocateOptions, Split, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};

use crate::common::{gz, noise, write};

/// An independent check of an IDX file: gzip (by name or content) that
/// decompresses, the magic, the dimensions, the exact length, labels in 0..=9.
fn valid_idx(bytes: &[u8], magic: u32, gz_name: bool) -> bool {
    use std::io::Read;
    let content = if gz_name || bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let mut d = flate2::read::MultiGzDecoder::new(bytes);
        if bytes.is_empty() || d.read_to_end(&mut out).is_err() {
            return false;
        }
        out
    } else {
        bytes.to_vec()
    };
    let word = |i: usize| {
        content
            .get(4 * i..4 * i + 4)
            .map(|w| u32::from_be_bytes(w.try_into().unwrap()) as usize)
    };
    if word(0) != Some(magic as usize) {
        return false;
    }
    let ndims = (magic & 0xff) as usize;
    let Some(dims) = (1..=ndims).map(word).collect::<Option<Vec<usize>>>() else {
        return false;
    };
    let data = &content[4 + 4 * ndims..];
    dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(data.len())
        && (magic != IDX_LABELS_MAGIC || data.iter().all(|&l| l <= 9))
}

/// A spec for a data set of four files without checksums (so that the
/// content must parse to be accepted).
fn spec() -> DatasetSpec {
    let f = |n: &'static str| FileSpec::new(n, "", vec![]);
    DatasetSpec::new(
        "Fuzzy",
        "fuzzy",
        vec![],
        [
            f("a-images-idx3-ubyte.gz"),
            f("a-labels-idx1-ubyte.gz"),
            f("b-images-idx3-ubyte.gz"),
            f("b-labels-idx1-ubyte.gz"),
        ],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Random bytes into the IDX readers, raw and gzip-named, alone or as a
    /// pair, and through `IdxDataset::load_split_with`: `Err`, unless the bytes
    /// happen to form a valid file (which an independent check confirms).
    #[test]
    fn idx_readers_reject_random_bytes(a in noise(), b in noise(), zipped in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = if zipped { (gz(&a), gz(&b)) } else { (a, b) };
        for name in ["x-idx3-ubyte", "x-idx3-ubyte.gz"] {
            let p = write(dir.path(), name, &a);
            let gz_name = name.ends_with(".gz");
            if let Ok((n, r, c, px)) = read_idx_images(&p) {
                prop_assert!(valid_idx(&a, IDX_IMAGES_MAGIC, gz_name), "accepted {:?}", a);
                prop_assert_eq!(px.len(), n * r * c);
            }
            if read_idx_labels(&p).is_ok() {
                prop_assert!(valid_idx(&a, IDX_LABELS_MAGIC, gz_name), "accepted {:?}", a);
            }
        }
        let both_valid = valid_idx(&a, IDX_IMAGES_MAGIC, true) && valid_idx(&b, IDX_LABELS_MAGIC, true);
        let pi = write(dir.path(), "a-images-idx3-ubyte.gz", &a);
        let pl = write(dir.path(), "a-labels-idx1-ubyte.gz", &b);
        if LabelledImages::from_files(&pi, &pl).is_ok() {
            prop_assert!(both_valid);
        }
        let opts = LocateOptions { dir: Some(dir.path().to_path_buf()), ..LocateOptions::default() };
        match IdxDataset::load_split_with(&spec(), &opts, Split::Train) {
            Ok(_) => prop_assert!(both_valid),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// An IDX header with small dimensions and a body of random length: `Ok`
    /// exactly when the length matches the header, raw and gzip alike.
    #[test]
    fn idx_length_must_match_the_header(
        n in 0u32..5, r in 1u32..5, c in 1u32..5, len in 0usize..120, zipped in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let body: Vec<u8> = (0..len).map(|i| (i * 31) as u8).collect();
        let raw = encode_idx(IDX_IMAGES_MAGIC, &[n, r, c], &body);
        let name = if zipped { "i.gz" } else { "i" };
        let p = write(dir.path(), name, &if zipped { gz(&raw) } else { raw });
        let res = read_idx_images(&p);
        prop_assert_eq!(res.is_ok(), len == (n * r * c) as usize, "{:?}", res.err());

        let labels: Vec<u8> = (0..len).map(|i| (i % 12) as u8).collect();
        let p = write(dir.path(), name, &{
            let raw = encode_idx(IDX_LABELS_MAGIC, &[n], &labels);
            if zipped { gz(&raw) } else { raw }
        });
        let ok = len == n as usize && labels.iter().all(|&l| l <= 9);
        prop_assert_eq!(read_idx_labels(&p).is_ok(), ok);
    }
}
