//! The download path against an HTTP server on loopback that the test starts:
//! good files, corrupt bodies, truncated bodies (short of their
//! Content-Length, or without one), a Content-Length shorter or longer than
//! the body, 403/404, a server that never answers and a server that sends
//! the content decompressed. Checks the checksum and retry logic and that
//! nothing bad is ever left in the cache.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use static_nn::data::{
    encode_idx, locate_with, md5_hex, sha256_of_content, DataError, DatasetSpec, FileSpec,
    IdxDataset, LabelledImages, LocateOptions, Split, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC,
};

use crate::common::tiny::{tiny_raw, tiny_routes, tiny_spec, NAMES};
use crate::common::{gz, gz_level, Reply, Server};

// ---------------------------------------------------------------- tiny data set

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
    raw_files().map(|r| gz(&r))
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
    let m = IdxDataset::load_with(&spec, &o).unwrap();
    assert_eq!(m.train, expected_train());
    assert_eq!(m.test.len(), 20);
    assert_eq!(server.requests().len(), 4);

    // cached now: no more requests
    let again = IdxDataset::load_with(&spec, &o).unwrap();
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

    let train = IdxDataset::load_split_with(&spec, &o, Split::Train).unwrap();
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

    let e = IdxDataset::load_with(&spec, &o).unwrap_err();
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
    mirror(
        &mut routes,
        "m",
        &raw_files().map(|r| gz_level(&r, 1)),
        Reply::Ok,
    );
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    assert_ne!(
        md5_hex(&gz_level(&raw_files()[0], 1)),
        spec.files[0].md5_gz[0]
    );
    let m = IdxDataset::load_with(&spec, &opts(cache.path(), vec![server.url("m")])).unwrap();
    assert_eq!(m.train, expected_train());
}

#[test]
fn content_sent_decompressed_is_cached_under_the_raw_name() {
    let mut routes = HashMap::new();
    mirror(&mut routes, "m", &gz_files(), Reply::OkGzipEncoded);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let m = IdxDataset::load_with(&spec, &opts(cache.path(), vec![server.url("m")])).unwrap();
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
    let test = IdxDataset::load_split_with(&spec, &o, Split::Test).unwrap();
    assert_eq!(test.len(), 20);
    // two files, each waiting once for the dead mirror
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    o.mirrors = Some(vec![server.url("hang")]);
    let e = IdxDataset::load_split_with(&spec, &o, Split::Train).unwrap_err();
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
    mirror(&mut routes, "bad", &bad.map(|r| gz(&r)), Reply::Ok);
    mirror(&mut routes, "good", &gz_files(), Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(false);

    let o = opts(cache.path(), vec![server.url("bad")]);
    let e = IdxDataset::load_split_with(&spec, &o, Split::Train).unwrap_err();
    assert!(e.to_string().contains("wrong magic number"), "{e}");
    assert!(listing(cache.path()).is_empty());

    let o = opts(cache.path(), vec![server.url("bad"), server.url("good")]);
    let train = IdxDataset::load_split_with(&spec, &o, Split::Train).unwrap();
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

/// A download that announces fewer bytes than it sends (so the client keeps
/// a cut-off file) is rejected, and the next mirror's good file is cached.
#[test]
fn a_download_with_a_short_content_length_is_rejected() {
    let mut routes = tiny_routes(50, "short", |b| {
        let n = b.len();
        Reply::Length(b, n - 7)
    });
    routes.extend(tiny_routes(50, "long", |b| {
        let n = b.len();
        Reply::Length(b, n + 7)
    }));
    routes.extend(tiny_routes(50, "good", Reply::Ok));
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
    let train = IdxDataset::load_split_with(&tiny_spec(50), &opts, Split::Train).unwrap();
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

/// The observer hears every attempt: a failed mirror, then the good one with
/// its size and progress, file after file; the library itself prints nothing.
#[test]
fn the_observer_hears_each_attempt_and_the_bytes() {
    use static_nn::data::DownloadEvent;
    use std::sync::Mutex;
    let files = gz_files();
    let mut routes = HashMap::new();
    mirror(&mut routes, "forbidden", &files, |_| {
        Reply::Status(403, "Forbidden")
    });
    mirror(&mut routes, "good", &files, Reply::Ok);
    let server = Server::start(routes);
    let cache = tempfile::tempdir().unwrap();
    let spec = spec(true);
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = log.clone();
    let mut o = opts(
        cache.path(),
        vec![server.url("forbidden"), server.url("good")],
    );
    o.observer = Some(Arc::new(move |e: DownloadEvent| {
        let line = match e {
            DownloadEvent::Started { url } => format!("start {}", url.rsplit('/').nth(1).unwrap()),
            DownloadEvent::Failed { why, .. } => format!("failed {}", why.contains("403")),
            DownloadEvent::Receiving { total, .. } => format!("receiving {}", total.is_some()),
            DownloadEvent::Progress { .. } => "progress".to_string(),
            DownloadEvent::Finished { bytes, .. } => format!("finished {bytes}"),
            _ => "other".to_string(),
        };
        let mut log = seen.lock().unwrap();
        if line != "progress" || log.last().map(String::as_str) != Some("progress") {
            log.push(line);
        }
    }));
    IdxDataset::load_split_with(&spec, &o, Split::Train).unwrap();
    let log = log.lock().unwrap().clone();
    let mut want = Vec::new();
    for bytes in &files[..2] {
        want.extend([
            "start forbidden".to_string(),
            "failed true".to_string(),
            "start good".to_string(),
            "receiving true".to_string(),
            "progress".to_string(),
            format!("finished {}", bytes.len()),
        ]);
    }
    assert_eq!(log, want);
}
