//! Output folders that cannot be written, for everything that writes files
//! (weights, PNGs, the data cache): a file where the folder should be, a
//! read-only file system, a full disk.
//!
//! The full disk is this test binary run again as a child process (an
//! `#[ignore]`d test selected with `--exact`, told what to do by an
//! environment variable) under a small file-size limit (`ulimit -f`, with
//! `SIGXFSZ` ignored) so that writes fail as on a full disk without filling
//! the real one.

use std::path::{Path, PathBuf};
use std::time::Duration;

use static_nn::data::{DataError, IdxDataset, LocateOptions, Split};
use static_nn::pictures::{save_gray_png, save_line_plot, PicturesError};
use static_nn::prelude::*;
use static_nn::weights::{self, WeightsError};

use crate::common::tiny::{tiny_routes, tiny_spec};
use crate::common::{run_child, temporaries, test_path, Reply, Server};

// ------------------------------------------------------------ unwritable folders

#[test]
fn a_file_where_the_output_folder_should_be_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("out");
    std::fs::write(&blocker, b"a file, not a folder").unwrap();
    let dev = Cpu::default();
    let net = dev.build_module::<LeNetClass, f32>();

    let target = blocker.join("lenet.safetensors");
    let e = weights::save(&net, &target).unwrap_err();
    assert!(matches!(e, WeightsError::Io { .. }), "{e:?}");
    let msg = e.to_string();
    println!("weights::save into a file: {msg}");
    assert!(msg.contains(&blocker.display().to_string()), "{msg}");
    assert!(msg.to_lowercase().contains("not a directory"), "{msg}");

    let png = blocker.join("x.png");
    let e = save_gray_png(&png, &[0.0, 1.0], 1, 2, None).unwrap_err();
    assert!(matches!(e, PicturesError::Write { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&blocker.display().to_string()),
        "{e}"
    );
    let e =
        save_line_plot(&blocker.join("loss.png"), "loss", &[("train", &[1.0, 0.5])]).unwrap_err();
    assert!(matches!(e, PicturesError::Write { .. }), "{e:?}");

    // The data cache: downloads cannot be stored, and the error says why.
    let server = Server::start(tiny_routes(50, "m", Reply::Ok));
    let opts = LocateOptions {
        cache_dir: Some(blocker.join("cache")),
        download: true,
        mirrors: Some(vec![server.url("m")]),
        timeout: Duration::from_secs(5),
        ..LocateOptions::default()
    };
    let e = IdxDataset::load_split_with(&tiny_spec(50), &opts, Split::Train).unwrap_err();
    assert!(matches!(e, DataError::Unavailable { .. }), "{e:?}");
    let msg = e.to_string();
    println!("download into a cache under a file: {msg}");
    assert!(msg.contains(&blocker.display().to_string()), "{msg}");
}

#[test]
fn a_read_only_file_system_is_a_clear_error() {
    // /proc is a file system where nothing can be created, even by root
    // (whom directory permissions do not stop).
    let dev = Cpu::default();
    let net = dev.build_module::<LeNetClass, f32>();
    for path in [
        "/proc/static-nn-test.safetensors",
        "/proc/self/static-nn-test.safetensors",
    ] {
        let e = weights::save(&net, Path::new(path)).unwrap_err();
        println!("weights::save on /proc: {e}");
        assert!(matches!(e, WeightsError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("/proc/"), "{e}");
    }
    let e = save_gray_png(Path::new("/proc/static-nn-test.png"), &[0.5], 1, 1, None).unwrap_err();
    assert!(matches!(e, PicturesError::Write { .. }), "{e:?}");
    assert!(e.to_string().contains("/proc/"), "{e}");
}

const FULL_ENV: &str = "STATIC_NN_HARDENING_FULL";

/// The child: run under `ulimit -f` (a few KB), every write past the limit
/// fails with EFBIG as on a full disk. Saves must fail cleanly and leave the
/// previous files and no temporary behind.
#[test]
#[ignore = "child process of a_full_disk_is_a_clear_error"]
fn child_writes_on_a_full_disk() {
    let Some(dir) = std::env::var_os(FULL_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let dev = Cpu::default();
    let net = dev.build_module::<LeNetClass, f32>(); // 148 KB of weights
    let ckpt = dir.join("lenet.safetensors");
    std::fs::write(&ckpt, b"previous checkpoint").unwrap();
    let e = weights::save(&net, &ckpt).unwrap_err();
    let msg = e.to_string();
    println!("weights::save on a full disk: {msg}");
    assert!(matches!(e, WeightsError::Io { .. }), "{e:?}");
    assert!(msg.contains("lenet.safetensors"), "{msg}");
    assert!(msg.to_lowercase().contains("too large"), "{msg}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), b"previous checkpoint");
    assert_eq!(temporaries(&dir), Vec::<String>::new());

    let png = dir.join("noise.png");
    let noise: Vec<f32> = (0..300 * 300u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 16) as f32 / 65536.0)
        .collect();
    let e = save_gray_png(&png, &noise, 300, 300, Some((0.0, 1.0))).unwrap_err();
    assert!(matches!(e, PicturesError::Write { .. }), "{e:?}");
    assert!(!png.exists());
    assert_eq!(temporaries(&dir), Vec::<String>::new());

    // A download into a cache on the full disk.
    let server = Server::start(tiny_routes(400, "m", Reply::Ok));
    let cache = dir.join("cache");
    let opts = LocateOptions {
        cache_dir: Some(cache.clone()),
        download: true,
        mirrors: Some(vec![server.url("m")]),
        timeout: Duration::from_secs(5),
        ..LocateOptions::default()
    };
    let e = IdxDataset::load_split_with(&tiny_spec(400), &opts, Split::Train).unwrap_err();
    let msg = e.to_string();
    println!("download on a full disk: {msg}");
    assert!(msg.to_lowercase().contains("too large"), "{msg}");
    let left = std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "files left in the cache");
    println!("child: all full-disk checks passed");
}

#[test]
fn a_full_disk_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // 64 blocks: 32 KB (512-byte blocks) or 64 KB; the files written are larger.
    let (out, text) = run_child(
        &test_path(module_path!(), "child_writes_on_a_full_disk"),
        &[(FULL_ENV, dir.path())],
        Some("trap '' XFSZ; ulimit -f 64"),
    );
    assert!(out.status.success(), "child failed:\n{text}");
    println!("{text}");
    assert!(
        text.contains("child: all full-disk checks passed"),
        "{text}"
    );
}
