//! Saving: the model's tensors as little-endian f32 safetensors, written
//! atomically.
use super::visit;
use super::WeightsError;
use crate::atomic_file::Stage;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::Device;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

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
        .map(|e| match super::dtype_of(&e.name) {
            // counters (`num_batches_tracked`) are int64, as in PyTorch
            Dtype::I64 => e
                .data
                .iter()
                .flat_map(|x| (x.round() as i64).to_le_bytes())
                .collect(),
            _ => e.data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        })
        .collect();
    let encode_err = |reason: String| WeightsError::Encode {
        path: path.to_path_buf(),
        reason,
    };
    let mut views = Vec::with_capacity(entries.len());
    for (e, b) in entries.iter().zip(&bytes) {
        let view = TensorView::new(super::dtype_of(&e.name), e.shape.clone(), b)
            .map_err(|err| encode_err(format!("tensor `{}`: {err:?}", e.name)))?;
        views.push((e.name.as_str(), view));
    }
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::tensor::serialize(views.iter().map(|(n, v)| (*n, v)), &metadata)
        .map_err(|err| encode_err(format!("{err:?}")))
}

/// Distinguishes temporary files of concurrent saves in one process.
/// [`atomic_file::write_atomic`](crate::atomic_file::write_atomic), with its
/// failures named as [`WeightsError::Io`] for the user's `path`.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut File) -> io::Result<()>,
) -> Result<(), WeightsError> {
    crate::atomic_file::write_atomic(path, write).map_err(|(stage, source)| WeightsError::Io {
        path: path.to_path_buf(),
        action: match stage {
            Stage::Create => "create a temporary file to save",
            Stage::Write => "write",
            Stage::Sync => "sync",
            Stage::Replace => "replace",
        },
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn tmp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "static-nn-save-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
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
