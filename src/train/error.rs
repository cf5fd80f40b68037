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
}
