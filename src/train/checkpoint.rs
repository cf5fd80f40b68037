//! Checkpoints that resume a run exactly: one safetensors file holding the
//! model, the optimizer's state and the run's position.
use super::classifier::EpochStats;
use super::optim::{OptimizerState, StateBuffer};
use super::TrainError;
use crate::weights::{self, LoadOptions};
use dfdx::nn::TensorCollection;
use dfdx::prelude::Device;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The file name of a checkpoint inside `--checkpoint-dir`.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

const FORMAT: &str = "static-nn-checkpoint";
const VERSION: &str = "1";
const MODEL: &str = "model.";
const OPTIMIZER: &str = "optimizer.";

/// Where a run stands after a finished epoch: everything that
/// [`Classifier::train`](super::Classifier::train) needs, besides the model
/// and the optimizer's state, to carry on as if it had never stopped. The
/// data order and augmentation of an epoch, and its dropout masks in a
/// seeded run, are pure functions of the seed and the epoch, so the seed and
/// the epoch are their generators' state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunState {
    /// Epochs finished.
    pub epoch: usize,
    /// The run's seed ([`Classifier::seed`](super::Classifier::seed)).
    pub seed: Option<u64>,
    /// The finished epochs' figures.
    pub history: Vec<EpochStats>,
    /// Validation accuracy (percent) after each finished epoch, when there
    /// is a validation set.
    pub val_accuracy: Vec<f64>,
    /// The best validation accuracy so far and its 1-based epoch.
    pub best: Option<(usize, f64)>,
    /// The number of data-parallel ranks of the run (1 for a run in one
    /// process; 0, in a state never trained, counts as 1). A run resumes
    /// only with as many ranks as it had.
    pub world_size: usize,
}

/// The checkpoint file in `dir`.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join(CHECKPOINT_FILE)
}

fn corrupt(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `model`, `optimizer` and `run` to `dir/checkpoint.safetensors`
/// atomically: a crash leaves the previous checkpoint whole.
pub(crate) fn save<M: TensorCollection<f32, D>, D: Device<f32>>(
    dir: &Path,
    model: &M,
    optimizer: &OptimizerState,
    run: &RunState,
) -> Result<(), TrainError> {
    let path = checkpoint_path(dir);
    std::fs::create_dir_all(dir)
        .map_err(|e| corrupt(&path, format!("cannot create the directory: {e}")))?;
    let model_bytes = weights::to_bytes(model).map_err(|e| corrupt(&path, e.to_string()))?;
    let model_file =
        SafeTensors::deserialize(&model_bytes).map_err(|e| corrupt(&path, format!("{e:?}")))?;
    let opt_bytes: Vec<(String, Vec<usize>, Vec<u8>)> = optimizer
        .buffers
        .iter()
        .map(|b| {
            let bytes = b.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (format!("{OPTIMIZER}{}", b.key()), b.shape.clone(), bytes)
        })
        .collect();
    let mut views: Vec<(String, TensorView)> = Vec::new();
    for (name, view) in model_file.tensors() {
        let v = TensorView::new(view.dtype(), view.shape().to_vec(), view.data())
            .map_err(|e| corrupt(&path, format!("{e:?}")))?;
        views.push((format!("{MODEL}{name}"), v));
    }
    for (name, shape, bytes) in &opt_bytes {
        let v = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| corrupt(&path, format!("{e:?}")))?;
        views.push((name.clone(), v));
    }
    let metadata = Some(encode_meta(optimizer, run));
    let bytes =
        safetensors::tensor::serialize(views.iter().map(|(n, v)| (n.as_str(), v)), &metadata)
            .map_err(|e| corrupt(&path, format!("{e:?}")))?;
    crate::atomic_file::write_atomic(&path, |f| f.write_all(&bytes))
        .map_err(|(_, e)| corrupt(&path, format!("cannot write it: {e}")))
}

/// Reads `dir/checkpoint.safetensors` into `model` and returns the
/// optimizer's state and the run's position. The model is only changed when
/// the whole file fits it.
///
/// # Errors
/// [`TrainError::Checkpoint`], naming the file: unreadable, not a
/// checkpoint, corrupt, or from another model (the weights loader's message:
/// the missing, unexpected or mis-shaped tensor).
pub(crate) fn load<M: TensorCollection<f32, D>, D: Device<f32>>(
    dir: &Path,
    model: &mut M,
) -> Result<(OptimizerState, RunState), TrainError> {
    let path = checkpoint_path(dir);
    let bytes = std::fs::read(&path).map_err(|e| corrupt(&path, format!("cannot read it: {e}")))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| corrupt(&path, format!("not a safetensors file ({e:?})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(corrupt(
            &path,
            "not a static-nn checkpoint (its metadata has no `format: static-nn-checkpoint`)",
        ));
    }
    if meta.get("version").map(String::as_str) != Some(VERSION) {
        return Err(corrupt(
            &path,
            format!(
                "checkpoint version {:?}, this build reads {VERSION}",
                meta.get("version")
            ),
        ));
    }
    let file =
        SafeTensors::deserialize(&bytes).map_err(|e| corrupt(&path, format!("corrupt ({e:?})")))?;
    let (run, opt_name, opt_steps) = decode_meta(&meta).map_err(|r| corrupt(&path, r))?;

    let mut model_views = Vec::new();
    let mut buffers = Vec::new();
    let mut order: Vec<(String, TensorView)> = file.tensors();
    order.sort_by(|a, b| a.0.cmp(&b.0));
    let index: HashMap<String, String> = meta
        .get("optimizer_order")
        .map(|s| {
            s.split(',')
                .filter(|k| !k.is_empty())
                .enumerate()
                .map(|(i, k)| (k.to_string(), format!("{i:08}")))
                .collect()
        })
        .unwrap_or_default();
    for (name, view) in order {
        if let Some(model_name) = name.strip_prefix(MODEL) {
            let v = TensorView::new(view.dtype(), view.shape().to_vec(), view.data())
                .map_err(|e| corrupt(&path, format!("{e:?}")))?;
            model_views.push((model_name.to_string(), v));
        } else if let Some(key) = name.strip_prefix(OPTIMIZER) {
            if view.dtype() != Dtype::F32 {
                return Err(corrupt(
                    &path,
                    format!("optimizer buffer `{key}` is {:?}, not F32", view.dtype()),
                ));
            }
            let (param, buf) = key.rsplit_once('.').ok_or_else(|| {
                corrupt(
                    &path,
                    format!("optimizer buffer `{key}` names no parameter"),
                )
            })?;
            let data = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            buffers.push((
                index.get(key).cloned().unwrap_or_default(),
                StateBuffer {
                    param: param.to_string(),
                    name: buf.to_string(),
                    shape: view.shape().to_vec(),
                    data,
                },
            ));
        } else {
            return Err(corrupt(
                &path,
                format!("unexpected tensor `{name}` (neither model. nor optimizer.)"),
            ));
        }
    }
    // the optimizer's own order (the model's parameter order)
    buffers.sort_by(|a, b| a.0.cmp(&b.0));
    let model_meta = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    let model_bytes = safetensors::tensor::serialize(
        model_views.iter().map(|(n, v)| (n.as_str(), v)),
        &model_meta,
    )
    .map_err(|e| corrupt(&path, format!("{e:?}")))?;
    weights::load_from_bytes(model, &model_bytes, &LoadOptions::default())
        .map_err(|e| corrupt(&path, format!("it does not fit this model: {e}")))?;
    let state = OptimizerState {
        optimizer: opt_name,
        steps: opt_steps,
        buffers: buffers.into_iter().map(|(_, b)| b).collect(),
    };
    Ok((state, run))
}

fn encode_meta(optimizer: &OptimizerState, run: &RunState) -> HashMap<String, String> {
    let history: Vec<String> = run
        .history
        .iter()
        .map(|s| format!("{}:{:?}:{}:{:?}", s.epoch, s.loss, s.samples, s.seconds))
        .collect();
    let val: Vec<String> = run.val_accuracy.iter().map(|v| format!("{v:?}")).collect();
    let order: Vec<String> = optimizer.buffers.iter().map(StateBuffer::key).collect();
    let mut m = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        ("epoch".to_string(), run.epoch.to_string()),
        ("history".to_string(), history.join(";")),
        ("val_accuracy".to_string(), val.join(";")),
        ("optimizer".to_string(), optimizer.optimizer.clone()),
        ("optimizer_steps".to_string(), optimizer.steps.to_string()),
        ("optimizer_order".to_string(), order.join(",")),
        ("world_size".to_string(), run.world_size.max(1).to_string()),
    ]);
    if let Some(seed) = run.seed {
        m.insert("seed".to_string(), seed.to_string());
    }
    if let Some((epoch, acc)) = run.best {
        m.insert("best".to_string(), format!("{epoch}:{acc:?}"));
    }
    m
}

fn decode_meta(m: &HashMap<String, String>) -> Result<(RunState, String, u64), String> {
    fn num<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String> {
        s.parse()
            .map_err(|_| format!("metadata `{what}` is `{s}`, not a number"))
    }
    let get = |k: &str| m.get(k).ok_or_else(|| format!("metadata `{k}` is missing"));
    let epoch = num(get("epoch")?, "epoch")?;
    let mut history = Vec::new();
    for item in get("history")?.split(';').filter(|s| !s.is_empty()) {
        let f: Vec<&str> = item.split(':').collect();
        if f.len() != 4 {
            return Err(format!(
                "metadata `history` entry `{item}` is not epoch:loss:samples:seconds"
            ));
        }
        history.push(EpochStats {
            epoch: num(f[0], "history")?,
            loss: num(f[1], "history")?,
            samples: num(f[2], "history")?,
            seconds: num(f[3], "history")?,
        });
    }
    let val_accuracy = get("val_accuracy")?
        .split(';')
        .filter(|s| !s.is_empty())
        .map(|v| num(v, "val_accuracy"))
        .collect::<Result<_, _>>()?;
    let seed = m.get("seed").map(|s| num(s, "seed")).transpose()?;
    // checkpoints from before data-parallel training: one process
    let world_size = match m.get("world_size") {
        Some(w) => num(w, "world_size")?,
        None => 1,
    };
    let best = match m.get("best") {
        None => None,
        Some(b) => {
            let (e, a) = b
                .split_once(':')
                .ok_or_else(|| format!("metadata `best` is `{b}`"))?;
            Some((num(e, "best")?, num(a, "best")?))
        }
    };
    if history.len() != epoch {
        return Err(format!(
            "metadata says {epoch} epochs finished but holds {} in its history",
            history.len()
        ));
    }
    let run = RunState {
        epoch,
        seed,
        history,
        val_accuracy,
        best,
        world_size,
    };
    Ok((
        run,
        get("optimizer")?.clone(),
        num(get("optimizer_steps")?, "optimizer_steps")?,
    ))
}
