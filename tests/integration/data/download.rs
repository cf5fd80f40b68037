//! The download path against an HTTP server on loopback that the test starts:
//! good files, corrupt bodies, truncated bodies (short of their
//! Content-Length, or without one), 403/404, a server that never answers and
//! a server that sends the content decompressed. Checks the checksum and
//! retry logic and that nothing bad is ever left in the cache.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use flate2::write::GzEncoder;
use flate2::Compression;
use static_nn::data::{
    encode_idx, locate_with, md5_hex, sha256_of_content, DataError, DatasetSpec, FileSpec,
    LabelledImages, LocateOptions, Mnist, Split, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};

// ---------------------------------------------------------------- tiny data set

const NAMES: [&str; 4] = [
    "tiny-train-images-idx3-ubyte.gz",
    "tiny-train-labels-idx1-ubyte.gz",
    "tiny-test-images-idx3-ubyte.gz",
    "tiny-test-labels-idx1-ubyte.gz",
];

fn gz(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// The raw IDX content of the four files: 50 training and 20 test images of 5×4.
fn raw_files() -> [Vec<u8>; 4] {
    let split = |n: u32, salt: u32| {
        let px: Vec<u8> = (0..n * 20)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(salt) >> 11) as u8)
            .collect();
        let lb: Vec<u8> = (0..n).map(|i| ((i * 7 + salt) % 10) as u8).collect();
        (
            encode_idx(IDX_IMAGES_MAGIC, &[n, 5, 4], &px),
            encode_idx(IDX_LABELS_MAGIC, &[n], &lb),
        )
    };
    let (a, b) = split(50, 1);
    let (c, d) = split(20, 2);
    [a, b, c, d]
}

/// The `.gz` files as "the mirrors" serve them.
fn gz_files() -> [Vec<u8>; 4] {
    raw_files().map(|r| gz(&r, 6))
}

/// A spec whose checksums are those of `gz_files` (md5) and `raw_files` (sha256).
fn spec(with_checksums: bool) -> DatasetSpec {
    let raw = raw_files();
    let gzs = gz_files();
    let files: [FileSpec; 4] = std::array::from_fn(|i| {
        if with_checksums {
            FileSpec::new(
                NAMES[i],
                sha256_of_content(Path::new("x"), &raw[i]).unwrap(),
                vec![md5_hex(&gzs[i])],
            )
        } else {
            FileSpec::new(NAMES[i], "", vec![])
        }
    });
    DatasetSpec::new("Tiny", "tiny", vec![], files)
}

// ---------------------------------------------------------------- the server

/// What the server answers for one path.
#[derive(Clone)]
enum Reply {
    /// 200 with a correct Content-Length.
    Ok(Vec<u8>),
    /// 200 with a `Content-Encoding: gzip` header (the client decompresses).
    OkGzipEncoded(Vec<u8>),
    /// An error status with a small HTML body.
    Status(u16, &'static str),
    /// 200, Content-Length of the whole body, but only the first `n` bytes
    /// are sent before the connection is closed.
    CutShort(Vec<u8>, usize),
    /// 200 without Content-Length; the body is whatever is given.
    NoLength(Vec<u8>),
    /// Accept the connection and never answer.
    Hang,
}

struct Server {
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts a server on 127.0.0.1 (an ephemeral port) serving `routes`
    /// (path → reply); any other path gets a 404.
    fn start(routes: HashMap<String, Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let routes = Arc::clone(&routes);
                let log = Arc::clone(&log2);
                std::thread::spawn(move || serve(stream, &routes, &log));
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

fn serve(mut stream: TcpStream, routes: &HashMap<String, Reply>, log: &Mutex<Vec<String>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    loop {
        let mut h = String::new();
        match reader.read_line(&mut h) {
            Ok(0) | Err(_) => break,
            Ok(_) if h == "\r\n" || h == "\n" => break,
            Ok(_) => {}
        }
    }
    log.lock().unwrap().push(path.clone());
    let reply = routes
        .get(&path)
        .cloned()
        .unwrap_or(Reply::Status(404, "Not Found"));
    let head = |status: &str, extra: &str| {
        format!("HTTP/1.1 {status}\r\nConnection: close\r\nContent-Type: application/octet-stream\r\n{extra}\r\n")
    };
    let _ = match reply {
        Reply::Ok(body) => stream
            .write_all(head("200 OK", &format!("Content-Length: {}\r\n", body.len())).as_bytes())
            .and_then(|_| stream.write_all(&body)),
        Reply::OkGzipEncoded(body) => stream
            .write_all(
                head(
                    "200 OK",
                    &format!(
                        "Content-Length: {}\r\nContent-Encoding: gzip\r\n",
                        body.len()
                    ),
                )
                .as_bytes(),
            )
            .and_then(|_| stream.write_all(&body)),
        Reply::Status(code, text) => {
            let body = format!("<html><body>{code} {text}</body></html>");
            stream
                .write_all(
                    head(
                        &format!("{code} {text}"),
                        &format!("Content-Length: {}\r\n", body.len()),
                    )
                    .as_bytes(),
                )
                .and_then(|_| stream.write_all(body.as_bytes()))
        }
        Reply::CutShort(body, n) => stream
            .write_all(head("200 OK", &format!("Content-Length: {}\r\n", body.len())).as_bytes())
            .and_then(|_| stream.write_all(&body[..n])),
        Reply::NoLength(body) => stream
            .write_all(head("200 OK", "").as_bytes())
            .and_then(|_| stream.write_all(&body)),
        Reply::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            Ok(())
        }
    };
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Both);
}

/// Routes serving `files[i]` under `/{mirror}/{NAMES[i]}` with `make`.
fn mirror(
    routes: &mut HashMap<String, Reply>,
    mirror: &str,
    files: &[Vec<u8>; 4],
    make: impl Fn(Vec<u8>) -> Reply,
) {
    for (name, f) in NAMES.iter().zip(files) {
        routes.insert(format!("/{mirror}/{name}"), make(f.clone()));
    }
}

fn corrupt(mut b: Vec<u8>) -> Vec<u8> {
    let m = b.len() / 2;
    b[m] ^= 0xff;
    b[m + 1] ^= 0x55;
    b
}

fn opts(cache: &Path, mirrors: Vec<String>) -> LocateOptions {
    LocateOptions {
        cache_dir: Some(cache.to_path_buf()),
        download: true,
        mirrors: Some(mirrors),
        timeout: Duration::from_secs(2),
        progress: false,
        ..LocateOptions::default()
    }
}

/// The names in a directory, sorted (hidden temporary files included).
fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => vec![],
    };
    v.sort();
    v
}

fn sorted_names() -> Vec<String> {
    let mut v: Vec<String> = NAMES.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

fn expected_train() -> LabelledImages {
    let raw = raw_files();
    let px = raw[0][16..].to_vec();
    let lb = raw[1][8..].to_vec();
    LabelledImages::new(5, 4, px, lb).unwrap()
}

// ---------------------------------------------------------------- tests

#[test]
fn good_mirror_downloads_verifies_and_caches() {
    let mut routes = HashMap::new();
    mirror(&mut routes, "good", &gz_files(), Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let o = opts(cache.path(), vec![server.url("good")]);

    let dir = locate_with(&spec, &o).unwrap();
    assert_eq!(dir, cache.path());
    assert_eq!(listing(cache.path()), sorted_names());
    let m = Mnist::load_with(&spec, &o).unwrap();
    assert_eq!(m.train, expected_train());
    assert_eq!(m.test.len(), 20);
    assert_eq!(server.requests().len(), 4);

    // cached now: no more requests
    let again = Mnist::load_with(&spec, &o).unwrap();
    assert_eq!(again.train, m.train);
    assert_eq!(server.requests().len(), 4);
}

#[test]
fn bad_mirrors_are_skipped_in_order_and_nothing_bad_is_cached() {
    let files = gz_files();
    let mut routes = HashMap::new();
    mirror(&mut routes, "forbidden", &files, |_| {
        Reply::Status(403, "Forbidden")
    });
    // "missing" has no routes: 404
    mirror(&mut routes, "corrupt", &files, |b| Reply::Ok(corrupt(b)));
    mirror(&mut routes, "cut", &files, |b| {
        let n = b.len() / 2;
        Reply::CutShort(b, n)
    });
    mirror(&mut routes, "nolen", &files, |b| {
        let n = b.len() - 10;
        Reply::NoLength(b[..n].to_vec())
    });
    mirror(&mut routes, "good", &files, Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let order = ["forbidden", "missing", "corrupt", "cut", "nolen", "good"];
    let o = opts(cache.path(), order.iter().map(|m| server.url(m)).collect());

    let train = Mnist::load_split_with(&spec, &o, Split::Train).unwrap();
    assert_eq!(train, expected_train());
    // only the two training files, both good
    let mut want = vec![NAMES[0].to_string(), NAMES[1].to_string()];
    want.sort();
    assert_eq!(listing(cache.path()), want);
    // every mirror was tried, in order, for each file
    let reqs = server.requests();
    let want_reqs: Vec<String> = NAMES[..2]
        .iter()
        .flat_map(|n| order.iter().map(move |m| format!("/{m}/{n}")))
        .collect();
    assert_eq!(reqs, want_reqs);
}

#[test]
fn all_mirrors_bad_is_an_error_naming_each_failure() {
    let files = gz_files();
    let mut routes = HashMap::new();
    mirror(&mut routes, "corrupt", &files, |b| Reply::Ok(corrupt(b)));
    mirror(&mut routes, "cut", &files, |b| Reply::CutShort(b, 100));
    mirror(&mut routes, "html", &files, |_| {
        Reply::Ok(b"<html>please log in</html>".to_vec())
    });
    mirror(&mut routes, "forbidden", &files, |_| {
        Reply::Status(403, "Forbidden")
    });
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let order = ["corrupt", "cut", "html", "forbidden", "missing"];
    let o = opts(cache.path(), order.iter().map(|m| server.url(m)).collect());

    let e = Mnist::load_with(&spec, &o).unwrap_err();
    assert!(matches!(e, DataError::Unavailable { .. }), "{e:?}");
    let msg = e.to_string();
    let line = |m: &str| {
        let url = format!("{}{}", server.url(m), NAMES[0]);
        msg.lines()
            .find(|l| l.contains(&url))
            .unwrap_or_else(|| panic!("no line for {url} in:\n{msg}"))
            .to_string()
    };
    assert!(line("corrupt").contains("checksum mismatch"), "{msg}");
    assert!(line("cut").contains("interrupted after"), "{msg}");
    assert!(line("html").contains("checksum mismatch"), "{msg}");
    assert!(line("forbidden").contains("HTTP 403"), "{msg}");
    assert!(line("missing").contains("HTTP 404"), "{msg}");
    assert!(msg.contains("$TINY_DIR: not set"), "{msg}");
    assert!(msg.contains("set TINY_DIR=DIR"), "{msg}");
    // no file, and no temporary file, was left behind
    assert_eq!(listing(cache.path()), Vec::<String>::new());
}

#[test]
fn recompressed_file_passes_by_sha256_of_content() {
    // Like the shared MNIST training images: same content, other compression,
    // so the mirrors' md5 does not match but the content's sha256 does.
    let mut routes = HashMap::new();
    mirror(&mut routes, "m", &raw_files().map(|r| gz(&r, 1)), Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    assert_ne!(md5_hex(&gz(&raw_files()[0], 1)), spec.files[0].md5_gz[0]);
    let m = Mnist::load_with(&spec, &opts(cache.path(), vec![server.url("m")])).unwrap();
    assert_eq!(m.train, expected_train());
}

#[test]
fn content_sent_decompressed_is_cached_under_the_raw_name() {
    let mut routes = HashMap::new();
    mirror(&mut routes, "m", &gz_files(), Reply::OkGzipEncoded);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let m = Mnist::load_with(&spec, &opts(cache.path(), vec![server.url("m")])).unwrap();
    assert_eq!(m.train, expected_train());
    let mut want: Vec<String> = NAMES
        .iter()
        .map(|n| n.trim_end_matches(".gz").to_string())
        .collect();
    want.sort();
    assert_eq!(listing(cache.path()), want);
}

#[test]
fn a_server_that_never_answers_times_out() {
    let mut routes = HashMap::new();
    mirror(&mut routes, "hang", &gz_files(), |_| Reply::Hang);
    mirror(&mut routes, "good", &gz_files(), Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let mut o = opts(cache.path(), vec![server.url("hang"), server.url("good")]);
    o.timeout = Duration::from_millis(500);
    let t = Instant::now();
    let test = Mnist::load_split_with(&spec, &o, Split::Test).unwrap();
    assert_eq!(test.len(), 20);
    // two files, each waiting once for the dead mirror
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    o.mirrors = Some(vec![server.url("hang")]);
    let e = Mnist::load_split_with(&spec, &o, Split::Train).unwrap_err();
    assert!(e.to_string().to_lowercase().contains("timeout"), "{e}");
    assert_eq!(listing(cache.path()).len(), 2); // only the test files
}

#[test]
fn without_checksums_the_content_must_parse() {
    let raw = raw_files();
    let mut bad = raw.clone();
    bad[0] = encode_idx(IDX_LABELS_MAGIC, &[50], &[0; 50]); // labels, not images
    bad[1] = encode_idx(IDX_LABELS_MAGIC, &[50], &[11; 50]); // labels out of range
    let mut routes = HashMap::new();
    mirror(&mut routes, "bad", &bad.map(|r| gz(&r, 6)), Reply::Ok);
    mirror(&mut routes, "good", &gz_files(), Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(false);

    let o = opts(cache.path(), vec![server.url("bad")]);
    let e = Mnist::load_split_with(&spec, &o, Split::Train).unwrap_err();
    assert!(e.to_string().contains("wrong magic number"), "{e}");
    assert!(listing(cache.path()).is_empty());

    let o = opts(cache.path(), vec![server.url("bad"), server.url("good")]);
    let train = Mnist::load_split_with(&spec, &o, Split::Train).unwrap();
    assert_eq!(train, expected_train());
}

#[test]
fn download_disabled_or_no_mirrors() {
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let mut o = opts(cache.path(), vec![]);
    let e = locate_with(&spec, &o).unwrap_err();
    assert!(
        e.to_string().contains("download: no mirrors configured"),
        "{e}"
    );
    o.download = false;
    o.mirrors = Some(vec!["http://127.0.0.1:9/".into()]);
    let e = locate_with(&spec, &o).unwrap_err();
    assert!(e.to_string().contains("download: disabled"), "{e}");
}
