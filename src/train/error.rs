//! Errors of the training drivers.
use crate::data::DataError;

/// What can stop training or evaluation.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss became NaN or infinite.
    #[error("training diverged: the loss is {loss} at epoch {epoch}, batch {batch} (try a lower learning rate)")]
    NonFiniteLoss {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The loss value.
        loss: f32,
    },
    /// A batch could not be turned into tensors.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The device or the optimizer failed (allocation, kernel launch,
    /// parameters without gradients); the dfdx error is the typed source.
    #[error(transparent)]
    Device(#[from] crate::DeviceError),
    /// The loader yields no batches.
    #[error("the data loader is empty: nothing to train or evaluate on")]
    EmptyLoader,
    /// An optimizer's or schedule's hyper-parameter is out of range, or its
    /// name is unknown; the message names it and its value.
    #[error("invalid hyper-parameter: {0}")]
    InvalidHyperparameter(String),
    /// An optimizer was given another model than the one it was built for,
    /// or a state (from a checkpoint) of another model, optimizer or
    /// configuration; the message names the tensor or buffer.
    #[error("optimizer mismatch: {0}")]
    OptimizerMismatch(String),
    /// Gradient clipping found a NaN or infinite gradient (PyTorch's
    /// `clip_grad_norm_(error_if_nonfinite=True)`); nothing was updated.
    #[error("the gradient norm is {norm}: the gradient of {param} is not finite (try a lower learning rate)")]
    NonFiniteGradient {
        /// The first tensor, in the model's order, with a non-finite gradient.
        param: String,
        /// The total norm.
        norm: f64,
    },
    /// A checkpoint that cannot be written or read, or that does not fit the model.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Data-parallel training cannot go on: a communication failed, or the
    /// ranks disagree (a loader sharded for another rank, a checkpoint of
    /// another world size); the message names the ranks and sizes.
    #[error("data-parallel training: {0}")]
    Distributed(String),
    /// The replicas' parameters differ after an optimizer step: their hashes,
    /// in rank order, are not all equal.
    #[error("the replicas diverged: after step {step} the parameter hashes of ranks 0..{} are {}", hashes.len(), hex_list(hashes))]
    ReplicasDiverged {
        /// The optimizer step (1-based, over the run) after which they differ.
        step: u64,
        /// Each rank's hash of its trainable parameters.
        hashes: Vec<u64>,
    },
}

fn hex_list(hashes: &[u64]) -> String {
    let all: Vec<String> = hashes.iter().map(|h| format!("{h:016x}")).collect();
    all.join(", ")
}
