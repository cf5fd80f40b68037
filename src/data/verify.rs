//! Checksums: the mirrors' MD5 of a `.gz` file, or the SHA-256 of the
//! decompressed IDX content (robust to re-compression).

use std::fs;
use std::io::Read;
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use md5::Md5;
use sha2::{Digest, Sha256};

use super::error::{io_err, DataError};
use super::idx::is_gzip;
use super::spec::FileSpec;

/// Lower-case hex of a digest.
fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(2 * b.len());
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// Lower-case hex MD5 of some bytes.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// Lower-case hex SHA-256 of a file's IDX content: decompressed first if it
/// is gzip data (or named `*.gz`), taken as is otherwise. `path` is only used
/// in error messages and to decide by name whether the content must be gzip.
pub fn sha256_of_content(path: &Path, bytes: &[u8]) -> Result<String, DataError> {
    let mut h = Sha256::new();
    if is_gzip(path, bytes)? {
        let mut dec = MultiGzDecoder::new(bytes);
        let mut buf = vec![0u8; 1 << 18];
        loop {
            match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(DataError::CorruptGzip {
                        path: path.into(),
                        source,
                    })
                }
            }
        }
    } else {
        h.update(bytes);
    }
    Ok(hex(&h.finalize()))
}

/// How a file passed its check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verified {
    /// The MD5 of the file matched one of [`FileSpec::md5_gz`].
    Md5Gz,
    /// The SHA-256 of the decompressed content matched [`FileSpec::sha256_raw`].
    Sha256Raw,
    /// No checksum is known for this file; it was not checked.
    Unchecked,
}

/// Checks bytes against a [`FileSpec`]'s checksums; `label` names the file
/// (a path or a URL) in the error.
pub(crate) fn verify_bytes(
    label: &str,
    path: &Path,
    bytes: &[u8],
    file: &FileSpec,
) -> Result<Verified, DataError> {
    if !file.has_checksum() {
        return Ok(Verified::Unchecked);
    }
    let md5 = if file.md5_gz.is_empty() {
        None
    } else {
        let m = md5_hex(bytes);
        if file.md5_gz.iter().any(|x| x.eq_ignore_ascii_case(&m)) {
            return Ok(Verified::Md5Gz);
        }
        Some(m)
    };
    let mut detail = String::new();
    if let Some(m) = md5 {
        let listed: Vec<&str> = file.md5_gz.iter().map(|x| x.as_ref()).collect();
        detail = format!(
            "md5 of the file is {m}, expected {}{}",
            if listed.len() > 1 { "one of " } else { "" },
            listed.join(", ")
        );
    }
    if !file.sha256_raw.is_empty() {
        let s = match sha256_of_content(path, bytes) {
            Ok(s) => s,
            Err(e) => {
                return Err(DataError::ChecksumMismatch {
                    file: label.to_string(),
                    detail: format!(
                        "{detail}{}cannot take the sha256 of the decompressed content: {e}",
                        if detail.is_empty() { "" } else { "; " }
                    ),
                })
            }
        };
        if s.eq_ignore_ascii_case(&file.sha256_raw) {
            return Ok(Verified::Sha256Raw);
        }
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&format!(
            "sha256 of the decompressed content is {s}, expected {}",
            file.sha256_raw
        ));
    }
    Err(DataError::ChecksumMismatch {
        file: label.to_string(),
        detail,
    })
}

/// Checks a file on disk against a [`FileSpec`]'s checksums: it passes if
/// the MD5 of the file is one of [`FileSpec::md5_gz`] or the SHA-256 of its
/// decompressed content is [`FileSpec::sha256_raw`]. A spec without any
/// checksum passes as [`Verified::Unchecked`].
///
/// ```no_run
/// use static_nn::data::{verify_file, MNIST};
/// let path = std::path::Path::new("data/mnist/train-labels-idx1-ubyte.gz");
/// verify_file(path, &MNIST.files[1]).expect("a genuine MNIST file");
/// ```
pub fn verify_file(path: &Path, file: &FileSpec) -> Result<Verified, DataError> {
    let bytes = fs::read(path).map_err(|e| io_err(path, e))?;
    verify_bytes(&path.display().to_string(), path, &bytes, file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{encode_idx, IDX_LABELS_MAGIC};
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn gz(bytes: &[u8], level: u32) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    #[test]
    fn known_digests() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            sha256_of_content(Path::new("x"), b"abc").unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn md5_or_sha256_passes() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode_idx(IDX_LABELS_MAGIC, &[3], &[1, 2, 3]);
        let z1 = gz(&raw, 1);
        let z9 = gz(&raw, 9);
        let p = dir.path().join("l.gz");
        fs::write(&p, &z9).unwrap();

        let by_md5 = FileSpec::new("l.gz", "", vec![md5_hex(&z9)]);
        assert_eq!(verify_file(&p, &by_md5).unwrap(), Verified::Md5Gz);
        // re-compressed differently: md5 no longer matches, sha256 of content does
        let both = FileSpec::new("l.gz", sha(&raw), vec![md5_hex(&z1)]);
        assert_eq!(verify_file(&p, &both).unwrap(), Verified::Sha256Raw);
        // a raw copy of the file passes the sha256 check as well
        let pr = dir.path().join("l");
        fs::write(&pr, &raw).unwrap();
        assert_eq!(verify_file(&pr, &both).unwrap(), Verified::Sha256Raw);
        let none = FileSpec::new("l.gz", "", vec![]);
        assert_eq!(verify_file(&p, &none).unwrap(), Verified::Unchecked);
    }

    #[test]
    fn checksum_mismatch_names_file_and_digests() {
        let dir = tempfile::tempdir().unwrap();
        let raw = encode_idx(IDX_LABELS_MAGIC, &[3], &[1, 2, 3]);
        let other = encode_idx(IDX_LABELS_MAGIC, &[3], &[1, 2, 4]);
        let p = dir.path().join("l.gz");
        fs::write(&p, gz(&other, 6)).unwrap();
        let spec = FileSpec::new("l.gz", sha(&raw), vec![md5_hex(&gz(&raw, 6))]);
        let e = verify_file(&p, &spec).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DataError::ChecksumMismatch { .. }), "{e:?}");
        assert!(
            msg.starts_with(&format!(
                "{}: checksum mismatch: md5 of the file is ",
                p.display()
            )),
            "{msg}"
        );
        assert!(
            msg.contains(&format!(
                "sha256 of the decompressed content is {}, expected {}",
                sha(&other),
                sha(&raw)
            )),
            "{msg}"
        );
    }

    #[test]
    fn checksum_of_non_gzip_gz_is_a_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.gz");
        fs::write(&p, b"<html>Forbidden</html>").unwrap();
        let spec = FileSpec::new("l.gz", "00".repeat(32), vec!["11".repeat(16)]);
        let e = verify_file(&p, &spec).unwrap_err();
        assert!(matches!(e, DataError::ChecksumMismatch { .. }), "{e:?}");
        assert!(e.to_string().contains("not a gzip file"), "{e}");
    }
}
