//! Saving: the model's tensors as little-endian f32 safetensors, written
//! atomically.
use super::visit;
use super::WeightsError;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::Device;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Saves every tensor of `model` to `path` as a safetensors file.
///
/// Tensors are named as PyTorch names them (`conv1.weight`, `3.bias`) and
/// laid out as PyTorch lays them out, in `F32` little-endian, with the
/// metadata `{"format": "pt"}`, so that
/// `safetensors.torch.load_file(path)` gives a `state_dict` for the matching
/// PyTorch model.
///
/// The save is atomic: the bytes go to a temporary file in the same
/// directory, which is synced and then renamed over `path`. If anything
/// fails, the previous file at `path` is left as it was and the temporary
/// file is removed.
///
/// # Errors
/// [`WeightsError::Io`] if the temporary file cannot be created, written,
/// synced or renamed.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::weights;
/// let dev = Cpu::default();
/// let net = dev.build_module::<Mlp, f32>();
/// let dir = std::env::temp_dir().join(format!("static-nn-doc-save-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// weights::save(&net, &dir.join("mlp.safetensors")).unwrap();
/// let mut other = dev.build_module::<Mlp, f32>();
/// weights::load(&mut other, &dir.join("mlp.safetensors")).unwrap();
/// assert_eq!(other.0 .1.weight.array(), net.0 .1.weight.array());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn save<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    path: &Path,
) -> Result<(), WeightsError> {
    let bytes = encode(model, path)?;
    write_atomic(path, |f| f.write_all(&bytes))
}

/// The safetensors bytes that [`save`] would write for `model`.
///
/// Useful to embed weights with `include_bytes!` or to send them elsewhere;
/// [`load_from_bytes`](super::load_from_bytes) reads them back.
pub fn to_bytes<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
) -> Result<Vec<u8>, WeightsError> {
    encode(model, Path::new("<memory>"))
}

fn encode<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &M,
    path: &Path,
) -> Result<Vec<u8>, WeightsError> {
    let entries = visit::read(model, true);
    let bytes: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| e.data.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let encode_err = |reason: String| WeightsError::Encode {
        path: path.to_path_buf(),
        reason,
    };
    let mut views = Vec::with_capacity(entries.len());
    for (e, b) in entries.iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, e.shape.clone(), b)
            .map_err(|err| encode_err(format!("tensor `{}`: {err:?}", e.name)))?;
        views.push((e.name.as_str(), view));
    }
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::tensor::serialize(views.iter().map(|(n, v)| (*n, v)), &metadata)
        .map_err(|err| encode_err(format!("{err:?}")))
}

/// Distinguishes temporary files of concurrent saves in one process.
static SAVES: AtomicU64 = AtomicU64::new(0);

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> WeightsError {
    let path = path.to_path_buf();
    move |source| WeightsError::Io {
        path,
        action,
        source,
    }
}

/// Removes temporary files of earlier saves of `name` in `dir` that are over
/// a day old: what a killed process left behind (a live save's file is fresh).
fn remove_stale_temporaries(dir: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry.file_name().to_string_lossy().starts_with(&prefix)
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > std::time::Duration::from_secs(24 * 3600));
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Writes `path` atomically: `write` fills a new temporary file beside it,
/// which is synced and renamed over `path`. On any failure the temporary file
/// is removed and `path` is untouched.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WeightsError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| WeightsError::Io {
        path: path.to_path_buf(),
        action: "save to",
        source: io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"),
    })?;
    remove_stale_temporaries(dir, &name.to_string_lossy());
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        SAVES.fetch_add(1, Ordering::Relaxed)
    ));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io_err(path, "create a temporary file to save"))?;
    let result = write(&mut file)
        .map_err(io_err(path, "write"))
        .and_then(|()| file.sync_all().map_err(io_err(path, "sync")));
    drop(file);
    let result = result.and_then(|()| fs::rename(&tmp, path).map_err(io_err(path, "replace")));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable; a directory cannot be synced everywhere.
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "static-nn-save-{tag}-{}-{}",
            std::process::id(),
            SAVES.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failed_write_leaves_the_previous_file_and_no_temporary() {
        let dir = tmp_dir("fail");
        let path = dir.join("w.safetensors");
        fs::write(&path, b"previous checkpoint").unwrap();
        let err = write_atomic(&path, |f| {
            f.write_all(b"half of the new")?;
            Err(io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(
            matches!(
                err,
                WeightsError::Io {
                    action: "write",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("disk full"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), b"previous checkpoint");
        let left: Vec<_> = fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "the temporary file was not removed");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_successful_write_replaces_the_file() {
        let dir = tmp_dir("ok");
        let path = dir.join("w.safetensors");
        fs::write(&path, b"old").unwrap();
        write_atomic(&path, |f| f.write_all(b"new")).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_file() {
        let dir = tmp_dir("nodir");
        let path = dir.join("no/such/dir/w.safetensors");
        let err = write_atomic(&path, |f| f.write_all(b"x")).unwrap_err();
        assert!(matches!(
            err,
            WeightsError::Io {
                action: "create a temporary file to save",
                ..
            }
        ));
        assert!(err.to_string().contains("no/such/dir"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
