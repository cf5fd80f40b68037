//! Loading: strict, checked before any tensor of the model is touched.
use super::keymap::{LoadOptions, LoadReport};
use super::visit;
use super::WeightsError;
use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::Device;
use safetensors::tensor::{Dtype, SafeTensorError, TensorView};
use safetensors::SafeTensors;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Loads the safetensors file at `path` into `model`, strictly: the file
/// must hold exactly the model's tensors, under the model's names, with the
/// model's shapes, as `F32`.
///
/// Files written by [`save`](super::save) load, and so do files written by
/// `safetensors.torch.save_file(model.state_dict(), path)` for the matching
/// PyTorch model (see the [module docs](super)).
///
/// Everything is checked before any tensor is written: on error the model is
/// unchanged.
///
/// # Errors
/// [`Io`](WeightsError::Io) if the file cannot be read,
/// [`Corrupt`](WeightsError::Corrupt) if it is not valid safetensors
/// (truncated, garbage), [`Missing`](WeightsError::Missing),
/// [`Unexpected`](WeightsError::Unexpected), [`Shape`](WeightsError::Shape)
/// and [`Dtype`](WeightsError::Dtype) for a tensor that does not fit. Nothing
/// panics.
pub fn load<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    path: &Path,
) -> Result<(), WeightsError> {
    load_with(model, path, &LoadOptions::default()).map(|_| ())
}

/// [`load`] with options: non-strict loading ignores the file's extra
/// tensors, and a key map renames the file's tensors to the model's names.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::weights::{self, LoadOptions};
/// let dev = Cpu::default();
/// // Save a LeNet, then load only its two convolutions into a smaller net.
/// let lenet = dev.build_module::<LeNetClass, f32>();
/// let bytes = weights::to_bytes(&lenet).unwrap();
/// type Convs = (Conv2D<1, 6, 5, 1, 2>, ReLU, MaxPool2D<2>, Conv2D<6, 16, 5>);
/// let mut convs = dev.build_module::<Convs, f32>();
/// let opts = LoadOptions::default()
///     .non_strict()
///     .map("conv1.", "0.")
///     .map("conv2.", "3.");
/// let report = weights::load_from_bytes(&mut convs, &bytes, &opts).unwrap();
/// assert_eq!(report.loaded, ["0.weight", "0.bias", "3.weight", "3.bias"]);
/// assert_eq!(report.ignored.len(), 4); // fc1.*, fc2.*
/// assert_eq!(convs.0 .3.weight.array(), lenet.conv2.weight.array());
/// ```
pub fn load_with<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let bytes = std::fs::read(path).map_err(|source| WeightsError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    load_checked(model, &bytes, path, opts)
}

/// [`load_with`] from the bytes of a safetensors file, such as
/// `include_bytes!("model.safetensors")`. Errors name the file `<memory>`.
pub fn load_from_bytes<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    bytes: &[u8],
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    load_checked(model, bytes, Path::new("<memory>"), opts)
}

fn load_checked<M: TensorCollection<f32, D>, D: Device<f32>>(
    model: &mut M,
    bytes: &[u8],
    path: &Path,
    opts: &LoadOptions,
) -> Result<LoadReport, WeightsError> {
    let path: PathBuf = path.to_path_buf();
    let file = SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt {
        path: path.clone(),
        reason: corrupt_reason(&e, bytes),
    })?;
    let expected = visit::read(model, false);

    // Match the file's tensors to the model's names.
    let model_names: HashMap<&str, usize> = expected
        .iter()
        .enumerate()
        .map(|(i, e)| (e.name.as_str(), i))
        .collect();
    let mut file_tensors = file.tensors();
    file_tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut matched: BTreeMap<usize, (String, TensorView<'_>)> = BTreeMap::new();
    let mut unused: Vec<(String, Vec<usize>)> = Vec::new();
    let mut renamed = Vec::new();
    for (key, view) in file_tensors {
        let target = opts.model_key(&key).into_owned();
        let Some(&i) = model_names.get(target.as_str()) else {
            unused.push((key, view.shape().to_vec()));
            continue;
        };
        if target != key {
            renamed.push((key.clone(), target.clone()));
        }
        if let Some((first, _)) = matched.get(&i) {
            return Err(WeightsError::Duplicate {
                path,
                name: target,
                first: first.clone(),
                second: key,
            });
        }
        matched.insert(i, (key, view));
    }

    // Check every model tensor, in the model's order, before touching any.
    for (i, e) in expected.iter().enumerate() {
        let Some((_, view)) = matched.get(&i) else {
            return Err(WeightsError::Missing {
                path,
                name: e.name.clone(),
                expected_shape: e.shape.clone(),
                unused: unused.iter().map(|(k, _)| k.clone()).collect(),
            });
        };
        let dtype = super::dtype_of(&e.name);
        // a counter may also come as F32 (it is held as f32 in the model)
        if view.dtype() != dtype && !(dtype == Dtype::I64 && view.dtype() == Dtype::F32) {
            return Err(WeightsError::Dtype {
                path,
                name: e.name.clone(),
                expected: format!("{dtype:?}"),
                found: format!("{:?}", view.dtype()),
            });
        }
        if view.shape() != e.shape.as_slice() {
            return Err(WeightsError::Shape {
                path,
                name: e.name.clone(),
                expected: e.shape.clone(),
                found: view.shape().to_vec(),
            });
        }
        let elements: usize = e.shape.iter().product();
        let width = view.dtype().size();
        if view.data().len() != elements * width {
            return Err(WeightsError::Corrupt {
                path,
                reason: format!(
                    "tensor `{}` holds {} bytes, not the {} of {elements} {:?} values",
                    e.name,
                    view.data().len(),
                    elements * width,
                    view.dtype()
                ),
            });
        }
    }
    if opts.strict {
        if let Some((name, shape)) = unused.first() {
            return Err(WeightsError::Unexpected {
                path,
                name: name.clone(),
                shape: shape.clone(),
            });
        }
    }

    let data: HashMap<String, Vec<f32>> = matched
        .iter()
        .map(|(&i, (_, view))| {
            let values = match view.dtype() {
                Dtype::I64 => view
                    .data()
                    .chunks_exact(8)
                    .map(|b| {
                        let b: [u8; 8] = std::array::from_fn(|i| b[i]);
                        i64::from_le_bytes(b) as f32
                    })
                    .collect(),
                _ => view
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            };
            (expected[i].name.clone(), values)
        })
        .collect();
    visit::write(model, &path, &data)?;
    Ok(LoadReport {
        loaded: expected.into_iter().map(|e| e.name).collect(),
        ignored: unused.into_iter().map(|(k, _)| k).collect(),
        renamed,
    })
}

/// A readable reason for a safetensors parse error.
fn corrupt_reason(e: &SafeTensorError, bytes: &[u8]) -> String {
    let header_len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes);
    let len = bytes.len();
    match e {
        SafeTensorError::HeaderTooSmall => {
            format!("the file has {len} bytes, fewer than the 8 of the header length")
        }
        SafeTensorError::HeaderTooLarge => format!(
            "the header length field reads {} bytes, over the 100 MB limit (not a safetensors file?)",
            header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeaderLength => format!(
            "the header length field reads {} bytes, past the end of the {len}-byte file (truncated?)",
            header_len.unwrap_or(0)
        ),
        SafeTensorError::InvalidHeader => "the header is not UTF-8 text".to_string(),
        SafeTensorError::InvalidHeaderStart => {
            "the header does not start with `{` (not a safetensors file?)".to_string()
        }
        SafeTensorError::InvalidHeaderDeserialization => {
            "the header is not a valid safetensors JSON table".to_string()
        }
        SafeTensorError::MetadataIncompleteBuffer => format!(
            "the tensors' data does not end where the {len}-byte file ends (truncated, or trailing bytes)"
        ),
        SafeTensorError::InvalidOffset(name) => {
            format!("tensor `{name}` has data offsets that do not follow the previous tensor's")
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's byte count does not match its dtype and shape".to_string()
        }
        SafeTensorError::ValidationOverflow => "a tensor's shape overflows".to_string(),
        other => format!("{other:?}"),
    }
}
