//! CIFAR-10 (binary version) made small in the test: 20 records per batch,
//! in a `.tar.gz` served by the loopback server (good, truncated, corrupt),
//! or laid out on disk in each form `--data DIR` accepts. Checks the planes,
//! labels and class names, the checksum and `--no-verify`, the offline error
//! and that every bad file is named.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use static_nn::data::{md5_hex, DataError, DataSource, LoadOptions, CIFAR10};

use crate::common::cifar::{archive, batch, batches, label, pixel, spec_for, tar_gz, RECORDS};
use crate::common::{temporaries, write, Reply, Server};

const ARCHIVE: &str = "cifar-10-binary.tar.gz";

fn download_opts(cache: &Path, mirrors: Vec<String>) -> LoadOptions {
    LoadOptions {
        cache_base: Some(cache.to_path_buf()),
        download: true,
        mirrors: Some(mirrors),
        timeout: Duration::from_secs(2),
        ..LoadOptions::default()
    }
}

fn dir_opts(dir: &Path) -> LoadOptions {
    LoadOptions {
        dir: Some(dir.to_path_buf()),
        ..LoadOptions::default()
    }
}

/// The six batches in `dir`.
fn write_batches(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in batches() {
        write(dir, &name, &bytes);
    }
}

/// Labels, planes and class names are those of `common::cifar`.
fn check_content(d: &static_nn::data::ImageDataset) {
    assert_eq!(d.name, "CIFAR-10");
    assert_eq!((d.train.len(), d.test.len()), (5 * RECORDS, RECORDS));
    assert_eq!(d.train.image_shape(), (3, 32, 32));
    assert_eq!(d.train.classes, 10);
    for b in 0..5 {
        for i in [0, 7, RECORDS - 1] {
            let n = b * RECORDS + i;
            assert_eq!(d.train.label(n), label(b, i), "batch {b} record {i}");
            let img = d.train.image(n);
            for c in 0..3 {
                for k in [0, 33, 1023] {
                    assert_eq!(img[c * 1024 + k], pixel(b, i, c, k), "plane {c}");
                }
            }
        }
    }
    assert_eq!(d.test.label(3), label(5, 3));
    assert_eq!(d.test.image(3)[2048 + 5], pixel(5, 3, 2, 5));
    assert_eq!(
        d.class_names,
        [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck"
        ]
    );
}

#[test]
fn download_verifies_extracts_caches_and_loads() {
    let bytes = archive();
    let routes = HashMap::from([(format!("/good/{ARCHIVE}"), Reply::Ok(bytes.clone()))]);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec_for(&bytes);
    let d = spec
        .load(&download_opts(cache.path(), vec![server.url("good")]))
        .unwrap();
    check_content(&d);
    let folder = cache.path().join("cifar10");
    assert_eq!(d.dir, folder.join("cifar-10-batches-bin"));
    assert!(d.unverified.is_empty() && d.warnings().is_empty());
    assert!(folder.join(ARCHIVE).is_file());
    assert!(
        temporaries(&folder).is_empty(),
        "{:?}",
        temporaries(&folder)
    );
    // From the cache now, offline: no second request.
    let offline = LoadOptions {
        cache_base: Some(cache.path().to_path_buf()),
        ..LoadOptions::default()
    };
    check_content(&spec.load(&offline).unwrap());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn truncated_download_moves_on_and_leaves_nothing() {
    let bytes = archive();
    let routes = HashMap::from([
        (
            format!("/cut/{ARCHIVE}"),
            Reply::CutShort(bytes.clone(), bytes.len() / 2),
        ),
        (
            format!("/nolen/{ARCHIVE}"),
            Reply::NoLength(bytes[..bytes.len() - 9].to_vec()),
        ),
        (format!("/good/{ARCHIVE}"), Reply::Ok(bytes.clone())),
    ]);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec_for(&bytes);

    let e = spec
        .load(&download_opts(
            cache.path(),
            vec![server.url("cut"), server.url("nolen")],
        ))
        .unwrap_err();
    assert!(matches!(e, DataError::Unavailable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("/cut/cifar-10-binary.tar.gz: download interrupted"),
        "{msg}"
    );
    assert!(
        msg.contains("/nolen/cifar-10-binary.tar.gz: checksum mismatch"),
        "{msg}"
    );
    // nothing left: no partial file, and not even the folder the download made
    let folder = cache.path().join("cifar10");
    assert!(!folder.exists(), "{folder:?} was left behind");
    assert!(cache.path().exists());

    // Without the checksum (--no-verify), the archive's own structure catches it.
    let mut o = download_opts(cache.path(), vec![server.url("nolen")]);
    o.verify = false;
    let msg = spec.load(&o).unwrap_err().to_string();
    assert!(msg.contains("corrupt or truncated archive"), "{msg}");
    assert!(!folder.exists(), "{folder:?} was left behind");

    let o = download_opts(cache.path(), vec![server.url("cut"), server.url("good")]);
    check_content(&spec.load(&o).unwrap());
}

#[test]
fn corrupt_download_is_a_checksum_mismatch_and_no_verify_takes_it() {
    let bytes = archive();
    // Another archive of the same layout: a valid .tar.gz with other content.
    let mut other = batches();
    other[0].1 = batch(9, RECORDS);
    let other = tar_gz(&other);
    let routes = HashMap::from([(format!("/m/{ARCHIVE}"), Reply::Ok(other.clone()))]);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec_for(&bytes);
    let o = download_opts(cache.path(), vec![server.url("m")]);
    let msg = spec.load(&o).unwrap_err().to_string();
    assert!(
        msg.contains(&format!(
            "checksum mismatch: md5 of the file is {}, expected {}",
            md5_hex(&other),
            md5_hex(&bytes)
        )),
        "{msg}"
    );
    let o = LoadOptions { verify: false, ..o };
    let d = spec.load(&o).unwrap();
    let archive_path = cache.path().join("cifar10").join(ARCHIVE);
    assert_eq!(d.unverified, std::slice::from_ref(&archive_path));
    assert_eq!(
        d.warnings(),
        [format!(
            "{}: checksum not checked (verification is off)",
            archive_path.display()
        )]
    );
    assert_eq!(d.train.label(0), label(9, 0));
}

#[test]
fn offline_error_lists_places() {
    let empty = tempfile::tempdir().unwrap();
    let o = LoadOptions {
        dir: Some(empty.path().to_path_buf()),
        cache_base: Some(empty.path().join("cache")),
        ..LoadOptions::default()
    };
    let e = CIFAR10.load(&o).unwrap_err();
    assert!(matches!(e, DataError::Unavailable { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("CIFAR-10 data not found"), "{msg}");
    assert!(
        msg.contains("missing cifar-10-binary.tar.gz, cifar-10-batches-bin/ and data_batch_1.bin"),
        "{msg}"
    );
    assert!(msg.contains("$CIFAR10_DIR: not set"), "{msg}");
    assert!(msg.contains("download: disabled by the caller"), "{msg}");
    assert!(
        msg.contains("set CIFAR10_DIR=DIR or pass --data DIR"),
        "{msg}"
    );
}

#[test]
fn data_dir_holding_the_folder_or_being_it_or_holding_the_archive() {
    let root = tempfile::tempdir().unwrap();
    let folder = root.path().join("cifar-10-batches-bin");
    write_batches(&folder);
    let a = CIFAR10.load(&dir_opts(root.path())).unwrap();
    check_content(&a);
    assert_eq!(a.dir, folder);
    let b = CIFAR10.load(&dir_opts(&folder)).unwrap();
    assert_eq!((a.train, a.test), (b.train, b.test));
    // batches.meta.txt, when present, names the classes.
    let names: String = (0..10).map(|i| format!("class {i}\n")).collect();
    write(&folder, "batches.meta.txt", names.as_bytes());
    assert_eq!(
        CIFAR10.load(&dir_opts(&folder)).unwrap().class_names[7],
        "class 7"
    );

    // The archive alone: checked, then extracted beside itself.
    let bytes = archive();
    let only = tempfile::tempdir().unwrap();
    write(only.path(), ARCHIVE, &bytes);
    let c = spec_for(&bytes).load(&dir_opts(only.path())).unwrap();
    check_content(&c);
    assert_eq!(c.dir, only.path().join("cifar-10-batches-bin"));
    assert!(temporaries(only.path()).is_empty());
    // The published md5 is not our archive's: named, with both digests and the way out.
    let fresh = tempfile::tempdir().unwrap();
    write(fresh.path(), ARCHIVE, &bytes);
    let e = CIFAR10.load(&dir_opts(fresh.path())).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DataError::ChecksumMismatch { .. }), "{e:?}");
    assert!(
        msg.contains(&format!(
            "md5 of the file is {}, expected c32a1d4ab5d03f1284b67883e8d87530",
            md5_hex(&bytes)
        )),
        "{msg}"
    );
    assert!(msg.contains("--no-verify"), "{msg}");
    assert!(!fresh.path().join("cifar-10-batches-bin").exists());
}

#[test]
fn bad_batches_and_archives_are_named() {
    let root = tempfile::tempdir().unwrap();
    write_batches(root.path());
    let p = root.path().join("data_batch_3.bin");
    let mut b = batch(2, RECORDS);
    b.truncate(b.len() - 100);
    std::fs::write(&p, &b).unwrap();
    let e = CIFAR10.load(&dir_opts(root.path())).unwrap_err();
    assert!(
        matches!(e, DataError::RecordSize { record: 3073, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "{}: {} bytes is not a whole number of 3073-byte records \
             (1 label byte, then 3×32×32 pixel bytes)",
            p.display(),
            b.len()
        )
    );

    let mut b = batch(2, RECORDS);
    b[5 * 3073] = 10;
    std::fs::write(&p, &b).unwrap();
    let e = CIFAR10.load(&dir_opts(root.path())).unwrap_err();
    assert!(
        matches!(
            e,
            DataError::BadLabel {
                index: 5,
                label: 10,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().starts_with(&p.display().to_string()), "{e}");

    std::fs::write(&p, batch(2, RECORDS)).unwrap();
    let t = root.path().join("test_batch.bin");
    std::fs::remove_file(&t).unwrap();
    let e = CIFAR10.load(&dir_opts(root.path())).unwrap_err();
    assert!(
        matches!(e, DataError::NotFound { ref path } if *path == t),
        "{e:?}"
    );

    // A truncated archive on disk, without its checksum: named as corrupt.
    let bytes = archive();
    let d = tempfile::tempdir().unwrap();
    let a = write(d.path(), ARCHIVE, &bytes[..bytes.len() * 3 / 4]);
    let o = LoadOptions {
        verify: false,
        ..dir_opts(d.path())
    };
    let e = CIFAR10.load(&o).unwrap_err();
    assert!(
        matches!(e, DataError::CorruptArchive { ref path, .. } if *path == a),
        "{e:?}"
    );
    assert!(!d.path().join("cifar-10-batches-bin").exists());
    assert!(temporaries(d.path()).is_empty());
}
