//! Helpers that several subjects share: one copy of each.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::collection::vec;
use proptest::prelude::*;

pub mod cifar;
mod examples;
mod mnist;
mod server;
pub mod tiny;

pub use examples::{example, image_folder};
pub use mnist::{mnist, mnist_dir, need};
pub use server::{Reply, Server};

/// `bytes` gzipped at the default level (6), as the MNIST mirrors serve them.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    gz_level(bytes, 6)
}

/// `bytes` gzipped at compression `level` (0–9).
pub fn gz_level(bytes: &[u8], level: u32) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A file of the test fixtures (`tests/fixtures/PATH`).
pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// Writes `bytes` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Random bytes, sometimes behind a plausible start (an IDX magic and
/// dimensions, the gzip magic, a PNG or JPEG signature, a safetensors header
/// length), so the readers get past their first check.
pub fn noise() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<Vec<u8>> = vec![
        vec![],
        vec![0, 0, 8, 3],
        vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3],
        vec![0, 0, 8, 1],
        vec![0, 0, 8, 1, 0, 0, 0, 4],
        vec![0x1f, 0x8b, 8, 0],
        b"\x89PNG\r\n\x1a\n".to_vec(),
        vec![0xff, 0xd8, 0xff, 0xe0],
        vec![16, 0, 0, 0, 0, 0, 0, 0, b'{'],
    ];
    (prop::sample::select(prefixes), vec(any::<u8>(), 0..400)).prop_map(|(mut p, tail)| {
        p.extend(tail);
        p
    })
}

// ------------------------------------------------------------ child processes

/// The name libtest gives the test `name` of the module `module` (its
/// `module_path!()`, which starts with this binary's crate name).
pub fn test_path(module: &str, name: &str) -> String {
    match module.split_once("::") {
        Some((_crate, path)) => format!("{path}::{name}"),
        None => name.to_string(),
    }
}

/// Runs the test `name` (see [`test_path`]; an ignored one too) of this
/// binary as a child process, with `env` set, under `sh -c PREFIX` (e.g. a
/// `ulimit`).
pub fn child(name: &str, env: &[(&str, &Path)], shell_prefix: Option<&str>) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix}; exec \"$0\" \"$@\""))
                .arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args([
        name,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs [`child`] to the end: its status and its stdout followed by stderr.
pub fn run_child(
    name: &str,
    env: &[(&str, &Path)],
    shell_prefix: Option<&str>,
) -> (std::process::Output, String) {
    let out = child(name, env, shell_prefix).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// Set in the child process of [`in_own_process`].
const ALONE_ENV: &str = "STATIC_NN_TEST_ALONE";

/// For a test that measures the whole process (its resident memory): in
/// the test binary, runs the test `name` of `module` (its `module_path!()`)
/// again alone, in a child process, fails if it fails there, and returns
/// `false`; in that child, returns `true`, and the test runs.
pub fn in_own_process(module: &str, name: &str) -> bool {
    if std::env::var_os(ALONE_ENV).is_some() {
        return true;
    }
    let (out, text) = run_child(
        &test_path(module, name),
        &[(ALONE_ENV, Path::new("1"))],
        None,
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "{name} failed in its own process:\n{text}"
    );
    assert!(
        text.contains("test result: ok. 1 passed"),
        "{name} did not run in its own process:\n{text}"
    );
    false
}

/// Hidden temporary files in `dir`.
pub fn temporaries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

// ------------------------------------------------------ the separate crates

/// This test binary's target directory (`<target>/<profile>/deps/<exe>`),
/// reused so that a separate crate under `tests/` does not rebuild dfdx.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().unwrap();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// `cargo run` of the separate crate `tests/CRATE` with `args`.
pub fn run_crate(krate: &str, args: &[&std::ffi::OsStr]) -> std::process::Output {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(krate)
        .join("Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args(["run", "--quiet", "--offline", "--manifest-path"])
        .arg(&manifest)
        .arg("--")
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir());
    // Drop what `cargo test` sets for this test's process: some build
    // scripts (ring's) watch these, and inheriting them would rebuild the
    // dependencies on every run.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo = ["CARGO_PKG_", "CARGO_BIN_", "CARGO_MANIFEST_"]
            .iter()
            .any(|p| key.starts_with(p))
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref());
        if set_by_cargo {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.output().expect("cannot start cargo")
}
