//! Output folders that cannot be written, for everything that writes files
//! (weights, PNGs, the data cache): a file where the folder should be, a
//! read-only file system, a full disk. And, for now, a download whose
//! Content-Length is shorter than its body.
//!
//! The full disk is this test binary run again as a child process (an
//! `#[ignore]`d test selected with `--exact`, told what to do by an
//! environment variable) under a small file-size limit (`ulimit -f`, with
//! `SIGXFSZ` ignored) so that writes fail as on a full disk without filling
//! the real one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use flate2::write::GzEncoder;
use flate2::Compression;
use static_nn::data::{
    encode_idx, md5_hex, sha256_of_content, DataError, DatasetSpec, FileSpec, LocateOptions, Mnist,
    Split, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};
use static_nn::prelude::*;
use static_nn::vis::{save_gray_png, save_line_plot, VisError};
use static_nn::weights::{self, WeightsError};

use crate::common::{child, temporaries, test_path};

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
    assert!(matches!(e, VisError::Write { .. }), "{e:?}");
    assert!(
        e.to_string().contains(&blocker.display().to_string()),
        "{e}"
    );
    let e =
        save_line_plot(&blocker.join("loss.png"), "loss", &[("train", &[1.0, 0.5])]).unwrap_err();
    assert!(matches!(e, VisError::Write { .. }), "{e:?}");

    // The data cache: downloads cannot be stored, and the error says why.
    let server = Server::start(tiny_routes(50, "m", |b| (b, None)));
    let opts = LocateOptions {
        cache_dir: Some(blocker.join("cache")),
        download: true,
        mirrors: Some(vec![server.url("m")]),
        timeout: Duration::from_secs(5),
        ..LocateOptions::default()
    };
    let e = Mnist::load_split_with(&tiny_spec(50), &opts, Split::Train).unwrap_err();
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
    assert!(matches!(e, VisError::Write { .. }), "{e:?}");
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
    assert!(matches!(e, VisError::Write { .. }), "{e:?}");
    assert!(!png.exists());
    assert_eq!(temporaries(&dir), Vec::<String>::new());

    // A download into a cache on the full disk.
    let server = Server::start(tiny_routes(400, "m", |b| (b, None)));
    let cache = dir.join("cache");
    let opts = LocateOptions {
        cache_dir: Some(cache.clone()),
        download: true,
        mirrors: Some(vec![server.url("m")]),
        timeout: Duration::from_secs(5),
        ..LocateOptions::default()
    };
    let e = Mnist::load_split_with(&tiny_spec(400), &opts, Split::Train).unwrap_err();
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
    let out = child(
        &test_path(module_path!(), "child_writes_on_a_full_disk"),
        &[(FULL_ENV, dir.path())],
        Some("trap '' XFSZ; ulimit -f 64"),
    )
    .output()
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    println!("{text}");
    assert!(
        text.contains("child: all full-disk checks passed"),
        "{text}"
    );
}

// ------------------------------------------------------------ downloads

/// A download that announces fewer bytes than it sends (so the client keeps
/// a cut-off file) is rejected, and the next mirror's good file is cached.
#[test]
fn a_download_with_a_short_content_length_is_rejected() {
    let mut routes = tiny_routes(50, "short", |b| {
        let n = b.len();
        (b, Some(n - 7))
    });
    routes.extend(tiny_routes(50, "long", |b| {
        let n = b.len();
        (b, Some(n + 7))
    }));
    routes.extend(tiny_routes(50, "good", |b| (b, None)));
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let opts = LocateOptions {
        cache_dir: Some(cache.path().to_path_buf()),
        download: true,
        mirrors: Some(vec![
            server.url("short"),
            server.url("long"),
            server.url("good"),
        ]),
        timeout: Duration::from_secs(2),
        ..LocateOptions::default()
    };
    let train = Mnist::load_split_with(&tiny_spec(50), &opts, Split::Train).unwrap();
    assert_eq!(train.len(), 50);
    let (images, labels) = tiny_raw(50);
    assert_eq!(train.pixels, images[16..]);
    assert_eq!(train.labels, labels[8..]);
    let mut cached: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cached.sort();
    assert_eq!(
        cached,
        [
            "tiny-train-images-idx3-ubyte.gz",
            "tiny-train-labels-idx1-ubyte.gz"
        ]
    );
    assert_eq!(
        std::fs::read(cache.path().join("tiny-train-images-idx3-ubyte.gz")).unwrap(),
        gz(&images)
    );
    let reqs = server.requests();
    for m in ["short", "long", "good"] {
        assert!(
            reqs.iter().any(|r| r.starts_with(&format!("/{m}/"))),
            "{reqs:?}"
        );
    }
}

// ------------------------------------------------------------ tiny data set and server

const NAMES: [&str; 4] = [
    "tiny-train-images-idx3-ubyte.gz",
    "tiny-train-labels-idx1-ubyte.gz",
    "tiny-test-images-idx3-ubyte.gz",
    "tiny-test-labels-idx1-ubyte.gz",
];

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(6));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// `n` 28×28 images of noise (incompressible: their `.gz` is as large as
/// they are) and their labels, raw IDX.
fn tiny_raw(n: u32) -> (Vec<u8>, Vec<u8>) {
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
fn tiny_files(n: u32) -> [Vec<u8>; 4] {
    let (i, l) = tiny_raw(n);
    [i.clone(), l.clone(), i, l]
}

fn tiny_spec(n: u32) -> DatasetSpec {
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

/// Body and announced Content-Length (`None`: the body's length).
type Reply = (Vec<u8>, Option<usize>);

/// Routes `/{mirror}/{name}` for the four `.gz` files, each made by `make`.
fn tiny_routes(n: u32, mirror: &str, make: impl Fn(Vec<u8>) -> Reply) -> HashMap<String, Reply> {
    NAMES
        .iter()
        .zip(tiny_files(n))
        .map(|(name, raw)| (format!("/{mirror}/{name}"), make(gz(&raw))))
        .collect()
}

/// A minimal HTTP/1.1 server on loopback: 200 with the route's body and
/// Content-Length, or 404.
struct Server {
    base: String,
    log: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Server {
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (routes, log2) = (Arc::new(routes), Arc::clone(&log));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let (routes, log) = (Arc::clone(&routes), Arc::clone(&log2));
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    let _ = reader.read_line(&mut line);
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut h = String::new();
                        match reader.read_line(&mut h) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if h.trim().is_empty() => break,
                            Ok(_) => {}
                        }
                    }
                    log.lock().unwrap().push(path.clone());
                    let _ = match routes.get(&path) {
                        Some((body, len)) => stream
                            .write_all(
                                format!(
                                    "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
                                    len.unwrap_or(body.len())
                                )
                                .as_bytes(),
                            )
                            .and_then(|_| stream.write_all(body)),
                        None => stream.write_all(
                            b"HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
                        ),
                    };
                    let _ = stream.flush();
                    let _ = stream.shutdown(Shutdown::Both);
                });
            }
        });
        Server { base, log }
    }

    fn url(&self, mirror: &str) -> String {
        format!("{}/{mirror}/", self.base)
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}
