//! Parsing IDX files (raw or gzip-compressed), with every check the format allows.
//!
//! IDX layout: a big-endian `u32` magic number `0x0000TTNN` (`TT` the element
//! type, `0x08` for unsigned bytes; `NN` the number of dimensions), one
//! big-endian `u32` per dimension, then the elements, row-major.

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;

use super::error::{hex_bytes, io_err, DataError};

/// Magic number of an IDX file of unsigned-byte images: 3 dimensions (count, rows, cols).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels: 1 dimension (count).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// The two leading bytes of every gzip stream.
pub(crate) const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Upper bound of deflate's compression ratio, to size buffers from a file's length.
const MAX_DEFLATE_RATIO: usize = 1032;

/// What an IDX magic number means, in words (for error messages).
pub(crate) fn describe_magic(magic: u32) -> String {
    if magic >> 16 != 0 {
        let b = magic.to_be_bytes();
        if b[..2] == GZIP_MAGIC {
            return "gzip data, not IDX: is this a .gz file without the .gz name?".to_string();
        }
        return "not an IDX file: the first two bytes must be zero".to_string();
    }
    let ty = match (magic >> 8) & 0xff {
        0x08 => "unsigned bytes",
        0x09 => "signed bytes",
        0x0b => "i16",
        0x0c => "i32",
        0x0d => "f32",
        0x0e => "f64",
        _ => "unknown element type",
    };
    let n = magic & 0xff;
    format!("IDX {ty}, {n} dimension{}", if n == 1 { "" } else { "s" })
}

fn expected_meaning(magic: u32) -> &'static str {
    match magic {
        IDX_IMAGES_MAGIC => "IDX images: unsigned bytes, 3 dimensions (count, rows, cols)",
        IDX_LABELS_MAGIC => "IDX labels: unsigned bytes, 1 dimension (count)",
        _ => "IDX",
    }
}

/// Reads as many bytes as fit in `buf`, stopping early only at end of input.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An IDX file's dimensions and elements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Idx {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Whether a path names a gzip file (`*.gz`).
fn has_gz_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gz"))
}

/// Checks that bytes which should be gzip are gzip: an empty file or one that
/// does not start with the gzip magic is an error.
pub(crate) fn check_gzip_start(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    if bytes.is_empty() {
        return Err(DataError::EmptyFile { path: path.into() });
    }
    if !bytes.starts_with(&GZIP_MAGIC) {
        return Err(DataError::NotGzip {
            path: path.into(),
            found: hex_bytes(&bytes[..bytes.len().min(4)]),
        });
    }
    Ok(())
}

/// Whether `bytes` are to be decompressed: always for a `*.gz` name (after
/// checking they are gzip), and for any file that starts with the gzip magic.
pub(crate) fn is_gzip(path: &Path, bytes: &[u8]) -> Result<bool, DataError> {
    if has_gz_name(path) {
        check_gzip_start(path, bytes)?;
        Ok(true)
    } else {
        Ok(bytes.starts_with(&GZIP_MAGIC))
    }
}

/// Maps a read error of the decompressor (or of a raw slice) while reading `path`.
fn map_read_err(path: &Path, gz: bool, e: io::Error) -> DataError {
    if gz {
        DataError::CorruptGzip {
            path: path.into(),
            source: e,
        }
    } else {
        DataError::Io {
            path: path.into(),
            source: e,
        }
    }
}

/// Parses a whole IDX file, compressed or not, that is already in memory.
/// `path` is only used in error messages and to decide by name whether the
/// content must be gzip.
pub(crate) fn parse_idx(path: &Path, bytes: &[u8], magic: u32) -> Result<Idx, DataError> {
    if is_gzip(path, bytes)? {
        let cap = bytes.len().saturating_mul(MAX_DEFLATE_RATIO);
        parse_stream(path, MultiGzDecoder::new(bytes), true, magic, cap)
    } else {
        parse_stream(path, bytes, false, magic, bytes.len())
    }
}

/// Reads and parses an IDX file from disk.
pub(crate) fn read_idx(path: &Path, magic: u32) -> Result<Idx, DataError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    parse_idx(path, &bytes, magic)
}

fn parse_stream<R: Read>(
    path: &Path,
    mut r: R,
    gz: bool,
    magic: u32,
    max_plausible: usize,
) -> Result<Idx, DataError> {
    let truncated_header = |need: usize, found: usize| DataError::Truncated {
        path: path.into(),
        expected: need as u64,
        found: found as u64,
        detail: format!("the IDX header needs {need} bytes, found {found}"),
    };

    let mut head = [0u8; 4];
    let got = read_full(&mut r, &mut head).map_err(|e| map_read_err(path, gz, e))?;
    if got < 4 {
        return Err(truncated_header(4, got));
    }
    let found_magic = u32::from_be_bytes(head);
    if found_magic != magic {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: found_magic,
            expected: magic,
            found_meaning: describe_magic(found_magic),
            expected_meaning: expected_meaning(magic),
        });
    }
    let ndims = (magic & 0xff) as usize;
    let mut dim_bytes = vec![0u8; 4 * ndims];
    let got = read_full(&mut r, &mut dim_bytes).map_err(|e| map_read_err(path, gz, e))?;
    if got < dim_bytes.len() {
        return Err(truncated_header(4 + dim_bytes.len(), 4 + got));
    }
    let dims: Vec<usize> = dim_bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let layout = dims
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×");
    if dims.len() == 3 && (dims[1] == 0 || dims[2] == 0) {
        return Err(DataError::BadHeader {
            path: path.into(),
            detail: format!("images of {}×{} pixels", dims[1], dims[2]),
        });
    }
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| usize::try_from(n).is_ok())
        .ok_or_else(|| DataError::BadHeader {
            path: path.into(),
            detail: format!("dimensions {layout} overflow the address space"),
        })?;

    let truncated = |found: u64| DataError::Truncated {
        path: path.into(),
        expected,
        found,
        detail: format!(
            "header says {layout} = {expected} data bytes, found {found}{}",
            if gz { " after decompression" } else { "" }
        ),
    };

    // Never trust the header for the allocation: a corrupt header must not
    // make us reserve gigabytes for a small file.
    let cap = (expected as usize).min(max_plausible);
    let mut data = Vec::with_capacity(cap);
    match (&mut r).take(expected).read_to_end(&mut data) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            // A gzip stream cut short: report what was decompressed before the cut.
            let found = data.len() as u64;
            return Err(DataError::Truncated {
                path: path.into(),
                expected,
                found,
                detail: format!(
                    "header says {layout} = {expected} data bytes, found {found}: the gzip data ends early ({e})"
                ),
            });
        }
        Err(e) => return Err(map_read_err(path, gz, e)),
    }
    if (data.len() as u64) < expected {
        return Err(truncated(data.len() as u64));
    }
    // Anything after the announced data is an error too; for gzip, this read
    // also reaches the trailer and so checks the CRC.
    let mut probe = [0u8; 1];
    let extra = read_full(&mut r, &mut probe).map_err(|e| map_read_err(path, gz, e))?;
    if extra > 0 {
        let rest = io::copy(&mut r, &mut io::sink()).map_err(|e| map_read_err(path, gz, e))?;
        return Err(DataError::TrailingData {
            path: path.into(),
            layout,
            expected,
            found: expected + 1 + rest,
        });
    }
    Ok(Idx { dims, data })
}

/// Reads an IDX file of unsigned-byte images, gzip-compressed or raw.
///
/// Returns `(count, rows, cols, pixels)`, pixels row-major, image after image.
/// Checks the magic number (`0x00000803`: unsigned bytes, 3 dimensions), that
/// the file is neither shorter nor longer than the header says, and, for
/// `*.gz` names, that the file is non-empty, valid gzip data.
///
/// ```no_run
/// # fn main() -> Result<(), static_nn::data::DataError> {
/// let (n, rows, cols, pixels) = static_nn::data::read_idx_images(
///     std::path::Path::new("data/mnist/train-images-idx3-ubyte.gz"))?;
/// assert_eq!((n, rows, cols), (60_000, 28, 28));
/// assert_eq!(pixels.len(), n * rows * cols);
/// # Ok(()) }
/// ```
pub fn read_idx_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let idx = read_idx(path, IDX_IMAGES_MAGIC)?;
    Ok((idx.dims[0], idx.dims[1], idx.dims[2], idx.data))
}

/// Reads an IDX file of labels, gzip-compressed or raw, and checks that every
/// label is in `0..=9` (the first bad one is reported with its index).
///
/// ```no_run
/// # fn main() -> Result<(), static_nn::data::DataError> {
/// let labels = static_nn::data::read_idx_labels(
///     std::path::Path::new("data/mnist/train-labels-idx1-ubyte.gz"))?;
/// assert_eq!(labels[0], 5);
/// # Ok(()) }
/// ```
pub fn read_idx_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let idx = read_idx(path, IDX_LABELS_MAGIC)?;
    check_labels(path, &idx.data)?;
    Ok(idx.data)
}

/// Checks that all labels are in `0..=9`.
pub(crate) fn check_labels(path: &Path, labels: &[u8]) -> Result<(), DataError> {
    match labels.iter().position(|&l| l > 9) {
        Some(index) => Err(DataError::BadLabel {
            path: path.into(),
            index,
            label: labels[index],
        }),
        None => Ok(()),
    }
}

/// Builds the bytes of an IDX file (uncompressed) from dimensions and data:
/// the inverse of [`read_idx_images`] and [`read_idx_labels`], for writing a
/// data set of your own in MNIST's format (images `[n, rows, cols]` with
/// [`IDX_IMAGES_MAGIC`], labels `[n]` with [`IDX_LABELS_MAGIC`]).
///
/// The bytes are written as given: `data` should hold the product of `dims`
/// bytes. The readers check that and name any mismatch, which is how the
/// tests make damaged files on purpose.
///
/// ```
/// use static_nn::data::{encode_idx, IDX_LABELS_MAGIC};
/// let bytes = encode_idx(IDX_LABELS_MAGIC, &[3], &[1, 2, 3]);
/// assert_eq!(bytes, [0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]);
/// ```
pub fn encode_idx(magic: u32, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&magic.to_be_bytes());
    for d in dims {
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn images(n: u32, r: u32, c: u32) -> Vec<u8> {
        let data: Vec<u8> = (0..n * r * c).map(|i| (i * 7 % 256) as u8).collect();
        encode_idx(IDX_IMAGES_MAGIC, &[n, r, c], &data)
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn reads_raw_and_gz_images_alike() {
        let dir = tempfile::tempdir().unwrap();
        let raw = images(5, 3, 4);
        let a = read_idx_images(&write(dir.path(), "a-idx3-ubyte", &raw)).unwrap();
        let b = read_idx_images(&write(dir.path(), "a-idx3-ubyte.gz", &gz(&raw))).unwrap();
        // gzip content under a name without .gz is recognised by its magic
        let c = read_idx_images(&write(dir.path(), "c-idx3-ubyte", &gz(&raw))).unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!((a.0, a.1, a.2), (5, 3, 4));
        assert_eq!(a.3, raw[16..]);
    }

    #[test]
    fn reads_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "l.gz",
            &gz(&encode_idx(IDX_LABELS_MAGIC, &[4], &[0, 9, 5, 1])),
        );
        assert_eq!(read_idx_labels(&p).unwrap(), vec![0, 9, 5, 1]);
    }

    #[test]
    fn empty_data_set_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "e.gz", &gz(&images(0, 28, 28)));
        assert_eq!(read_idx_images(&p).unwrap(), (0, 28, 28, vec![]));
    }

    #[test]
    fn truncated_data_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = images(10, 28, 28);
        raw.truncate(16 + 1000);
        for (name, bytes) in [("t", raw.clone()), ("t.gz", gz(&raw))] {
            let p = write(dir.path(), name, &bytes);
            let e = read_idx_images(&p).unwrap_err();
            assert!(
                matches!(
                    e,
                    DataError::Truncated {
                        expected: 7840,
                        found: 1000,
                        ..
                    }
                ),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(msg.starts_with(&p.display().to_string()), "{msg}");
            assert!(
                msg.contains(
                    "truncated IDX file: header says 10×28×28 = 7840 data bytes, found 1000"
                ),
                "{msg}"
            );
        }
    }

    #[test]
    fn truncated_header() {
        let dir = tempfile::tempdir().unwrap();
        let raw = images(2, 2, 2);
        for cut in [0, 3, 4, 9, 15] {
            let p = write(dir.path(), "h", &raw[..cut]);
            let e = read_idx_images(&p).unwrap_err();
            assert!(matches!(e, DataError::Truncated { .. }), "cut {cut}: {e:?}");
            assert!(e.to_string().contains("header needs"), "{e}");
        }
    }

    #[test]
    fn truncated_gzip_stream() {
        // The .gz file itself cut in the middle: the deflate stream ends early.
        let dir = tempfile::tempdir().unwrap();
        let noisy: Vec<u8> = (0..200u32 * 28 * 28)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let z = gz(&encode_idx(IDX_IMAGES_MAGIC, &[200, 28, 28], &noisy));
        let p = write(dir.path(), "cut.gz", &z[..z.len() / 2]);
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated { .. } | DataError::CorruptGzip { .. }
            ),
            "{e:?}"
        );
        assert!(e.to_string().starts_with(&p.display().to_string()));
    }

    #[test]
    fn trailing_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut raw = images(2, 2, 2);
        raw.extend_from_slice(&[1, 2, 3]);
        for (name, bytes) in [("x", raw.clone()), ("x.gz", gz(&raw))] {
            let e = read_idx_images(&write(dir.path(), name, &bytes)).unwrap_err();
            assert!(
                matches!(
                    e,
                    DataError::TrailingData {
                        expected: 8,
                        found: 11,
                        ..
                    }
                ),
                "{e:?}"
            );
        }
    }

    #[test]
    fn wrong_magic() {
        let dir = tempfile::tempdir().unwrap();
        // labels where images are expected, and the reverse
        let p = write(dir.path(), "l", &encode_idx(IDX_LABELS_MAGIC, &[1], &[1]));
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("wrong magic number 0x00000801 (IDX unsigned bytes, 1 dimension), expected 0x00000803"), "{e}");
        let p = write(dir.path(), "i.gz", &gz(&images(1, 1, 1)));
        assert!(matches!(
            read_idx_labels(&p).unwrap_err(),
            DataError::BadMagic { .. }
        ));
        // something else entirely
        let p = write(dir.path(), "junk", b"PK\x03\x04 this is a zip");
        let e = read_idx_labels(&p).unwrap_err();
        assert!(e.to_string().contains("not an IDX file"), "{e}");
        // element type f32
        let p = write(
            dir.path(),
            "f",
            &encode_idx(0x0d03, &[1, 1, 1], &[0, 0, 0, 0]),
        );
        assert!(read_idx_images(&p)
            .unwrap_err()
            .to_string()
            .contains("IDX f32, 3 dimensions"));
    }

    #[test]
    fn bad_header_dimensions() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "z",
            &encode_idx(IDX_IMAGES_MAGIC, &[3, 0, 28], &[]),
        );
        assert!(matches!(
            read_idx_images(&p).unwrap_err(),
            DataError::BadHeader { .. }
        ));
        // a huge header on a small file must not allocate; it is just truncated
        let p = write(
            dir.path(),
            "huge",
            &encode_idx(IDX_IMAGES_MAGIC, &[u32::MAX, 65535, 65535], &[1; 10]),
        );
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::Truncated { found: 10, .. } | DataError::BadHeader { .. }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn label_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "l.gz",
            &gz(&encode_idx(IDX_LABELS_MAGIC, &[4], &[0, 9, 10, 200])),
        );
        let e = read_idx_labels(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::BadLabel {
                    index: 2,
                    label: 10,
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .ends_with("label 10 at index 2 is out of range 0..=9"),
            "{e}"
        );
    }

    #[test]
    fn empty_and_non_gzip_gz() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "empty.gz", b"");
        let e = read_idx_images(&p).unwrap_err();
        assert!(matches!(e, DataError::EmptyFile { .. }), "{e:?}");
        assert!(e.to_string().contains("empty.gz: empty file"), "{e}");

        let p = write(dir.path(), "raw.gz", &images(1, 2, 2));
        let e = read_idx_images(&p).unwrap_err();
        assert!(matches!(e, DataError::NotGzip { .. }), "{e:?}");
        assert!(
            e.to_string().contains("starts with bytes [00 00 08 03]"),
            "{e}"
        );

        let p = write(dir.path(), "html.gz", b"<html>403 Forbidden</html>");
        assert!(matches!(
            read_idx_labels(&p).unwrap_err(),
            DataError::NotGzip { .. }
        ));
    }

    #[test]
    fn corrupt_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let mut z = gz(&images(20, 28, 28));
        // flip bytes in the deflate stream
        let mid = z.len() / 2;
        for b in &mut z[mid..mid + 8] {
            *b ^= 0xa5;
        }
        let p = write(dir.path(), "bad.gz", &z);
        let e = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(
                e,
                DataError::CorruptGzip { .. }
                    | DataError::Truncated { .. }
                    | DataError::TrailingData { .. }
            ),
            "{e:?}"
        );

        // a bad CRC alone (deflate stream intact) is caught too
        let mut z = gz(&images(2, 2, 2));
        let n = z.len();
        z[n - 8] ^= 1;
        let p = write(dir.path(), "crc.gz", &z);
        let e = read_idx_images(&p).unwrap_err();
        assert!(matches!(e, DataError::CorruptGzip { .. }), "{e:?}");
    }

    #[test]
    fn missing_file() {
        let e =
            read_idx_images(Path::new("/nonexistent/dir/train-images-idx3-ubyte.gz")).unwrap_err();
        assert!(matches!(e, DataError::NotFound { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "/nonexistent/dir/train-images-idx3-ubyte.gz: file not found"
        );
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Whatever the bytes, parsing returns (never panics).
            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
                for name in ["x", "x.gz"] {
                    let _ = parse_idx(Path::new(name), &bytes, IDX_IMAGES_MAGIC);
                    let _ = parse_idx(Path::new(name), &bytes, IDX_LABELS_MAGIC);
                }
            }

            /// A valid file cut anywhere or with one byte changed is either
            /// still valid (same content) or an error, for raw and gzip files.
            #[test]
            fn damaged_files_are_errors(
                n in 0u32..6, r in 1u32..5, c in 1u32..5,
                cut in any::<prop::sample::Index>(),
                flip in any::<prop::sample::Index>(), mask in 1u8..,
                zip in any::<bool>(),
            ) {
                let raw = images(n, r, c);
                let good = if zip { gz(&raw) } else { raw.clone() };
                let name = Path::new(if zip { "f.gz" } else { "f" });
                let whole = parse_idx(name, &good, IDX_IMAGES_MAGIC).unwrap();
                prop_assert_eq!(whole.data.len(), (n * r * c) as usize);

                let k = cut.index(good.len());
                prop_assert!(parse_idx(name, &good[..k], IDX_IMAGES_MAGIC).is_err());

                let mut bad = good.clone();
                let i = flip.index(bad.len());
                bad[i] ^= mask;
                if let Ok(idx) = parse_idx(name, &bad, IDX_IMAGES_MAGIC) {
                    if zip {
                        // The CRC vouches for the content: only bits outside it
                        // (header mtime/OS, deflate padding) can change unnoticed.
                        prop_assert_eq!(idx, whole, "flip at {} changed the content", i);
                    } else {
                        // A raw file has no checksum: a changed pixel goes
                        // unnoticed, and so does any dimension of an empty set.
                        prop_assert!(i >= 16 || n == 0, "flip at {} accepted", i);
                    }
                }
            }
        }
    }

    #[test]
    fn describe_magic_words() {
        assert_eq!(describe_magic(0x0803), "IDX unsigned bytes, 3 dimensions");
        assert!(describe_magic(0x1f8b0800).contains("gzip"));
    }
}
