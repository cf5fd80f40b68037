//! Training and inference drivers: the notebook's `Classifier`, done properly.
//!
//! [`Classifier`] wraps a typed model, a device and an optimizer
//! ([`OptimizerConfig`]: SGD with momentum, Nesterov and weight decay, Adam,
//! AdamW or RMSprop, run by static-nn's [`Optim`], whose state checkpoints
//! keep). The model declares its image ([`ImageInput`](crate::shapes::ImageInput))
//! and its last layer the class count, so no call names a size. It trains a
//! whole run on a [`DataLoader`](crate::data::DataLoader)
//! ([`Classifier::train`]: a [`Schedule`] with warm-up, gradient clipping, a
//! validation set with early stopping, and checkpoints that
//! [`resume`](Classifier::resume) bit-identically), or epoch by epoch
//! ([`Classifier::fit`]), reporting progress to a [`TrainObserver`] of the
//! caller's choosing; evaluates accuracy, per-class accuracy and a confusion
//! matrix ([`Classifier::evaluate`]); and predicts labels and probabilities
//! without a tape ([`Classifier::predict`]).
//!
//! [`Classifier::distribute`] trains data-parallel over several processes
//! (a [`Collective`]; with the `distributed` feature, MPI's
//! `MpiCollective`): see [`DataParallel`] for what is shared and what,
//! like BatchNorm's statistics, stays per rank.
//!
//! [`default_device`] picks the device like the notebook's
//! `cuda if available else cpu`.

mod checkpoint;
mod classifier;
mod device;
mod distributed;
mod error;
mod metrics;
mod observer;
mod optim;
#[cfg(feature = "pictures")]
mod pictures;
mod run;
mod split;

pub use checkpoint::{checkpoint_path, RunState, CHECKPOINT_FILE};
pub use classifier::{
    classes_of, cross_entropy, Classifier, EpochStats, ImageClassifier, ImagesOf, Logits,
    Predictions,
};
pub use device::{default_device, CpuFallback, DeviceChoice};
#[cfg(feature = "distributed")]
pub use distributed::MpiCollective;
pub use distributed::{Collective, CommStats, DataParallel};
pub use error::TrainError;
pub use metrics::Evaluation;
pub use observer::{TrainEvent, TrainObserver};
pub use optim::{
    LrSchedule, Optim, OptimizerConfig, OptimizerState, Reducer, Schedule, StateBuffer,
};
#[cfg(feature = "pictures")]
pub use pictures::save_predictions_png;
pub use run::{TrainOptions, TrainReport};
pub use split::{ChunkLoss, SplitStep};
