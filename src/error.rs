//! One error type for the whole library.
//!
//! Each module has its own error enum, with messages that name the file,
//! tensor, layer and sizes involved: [`DataError`], [`WeightsError`],
//! [`TrainError`] and, with their features, `PicturesError` and
//! `TutorialError`. Every one of them converts into [`Error`] with `?`, so an
//! application can use `static_nn::Result` throughout:
//!
//! ```
//! fn run() -> static_nn::Result<()> {
//!     use static_nn::prelude::*;
//!     let dev = Cpu::default();
//!     let mut net = dev.build_module::<Mlp, f32>();
//!     let missing = std::env::temp_dir().join("static-nn-no-such-file.safetensors");
//!     static_nn::weights::load(&mut net, &missing)?; // a WeightsError becomes an Error
//!     Ok(())
//! }
//! let err = run().unwrap_err();
//! assert!(err.to_string().contains("static-nn-no-such-file.safetensors"));
//! assert!(matches!(err, static_nn::Error::Weights(_)));
//! ```
//!
//! Failures of a dfdx device or optimizer are kept as typed sources in a
//! [`DeviceError`], never flattened into strings.
use crate::data::DataError;
use crate::train::TrainError;
use crate::weights::WeightsError;
use std::error::Error as StdError;
use std::fmt;

/// Any error of static-nn. The module errors are boxed, so that a
/// `Result<T, Error>` stays two words wide.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Data sets: reading, verifying, finding, downloading, batching.
    #[error(transparent)]
    Data(Box<DataError>),
    /// Saving and loading weights.
    #[error(transparent)]
    Weights(Box<WeightsError>),
    /// Training and evaluation.
    #[error(transparent)]
    Train(Box<TrainError>),
    /// A dfdx device or optimizer failed.
    #[error(transparent)]
    Device(Box<DeviceError>),
    /// Reading or writing pictures.
    #[cfg(feature = "pictures")]
    #[error(transparent)]
    Pictures(Box<crate::pictures::PicturesError>),
    /// The notebook's image operations.
    #[cfg(feature = "tutorial")]
    #[error(transparent)]
    Tutorial(Box<crate::tutorial::TutorialError>),
}

/// `From<ModuleError> for Error`, boxing it.
macro_rules! boxed_from {
    ($($(#[$cfg:meta])* $variant:ident($ty:ty)),* $(,)?) => {$(
        $(#[$cfg])*
        impl From<$ty> for Error {
            fn from(e: $ty) -> Self {
                Error::$variant(Box::new(e))
            }
        }
    )*};
}
boxed_from!(
    Data(DataError),
    Weights(WeightsError),
    Train(TrainError),
    Device(DeviceError),
    #[cfg(feature = "pictures")]
    Pictures(crate::pictures::PicturesError),
    #[cfg(feature = "tutorial")]
    Tutorial(crate::tutorial::TutorialError),
);

/// `Result` with static-nn's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure of a dfdx device (allocation, a kernel launch, a CUDA call) or
/// of a dfdx optimizer, with the original error kept as its typed source.
///
/// ```
/// use dfdx::tensor::CpuError;
/// use static_nn::DeviceError;
/// let e = DeviceError::new("the forward pass", CpuError::OutOfMemory);
/// assert_eq!(e.to_string(), "device error in the forward pass: CpuError::OutOfMemory");
/// assert!(matches!(e.downcast_ref::<CpuError>(), Some(CpuError::OutOfMemory)));
/// ```
pub struct DeviceError {
    during: &'static str,
    source: Box<dyn StdError + Send + Sync + 'static>,
}

impl DeviceError {
    /// Wraps `source`, a device's or optimizer's error, raised `during` the
    /// named step ("the forward pass", "the optimizer update", …).
    pub fn new<E: StdError + Send + Sync + 'static>(during: &'static str, source: E) -> Self {
        Self {
            during,
            source: Box::new(source),
        }
    }

    /// The step that failed.
    pub fn during(&self) -> &'static str {
        self.during
    }

    /// The original error, if it is a `T` (e.g. dfdx's `CpuError`).
    pub fn downcast_ref<T: StdError + 'static>(&self) -> Option<&T> {
        self.source.downcast_ref::<T>()
    }
}

impl fmt::Debug for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceError")
            .field("during", &self.during)
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device error in {}: {}", self.during, self.source)
    }
}

impl StdError for DeviceError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.source)
    }
}

/// A dfdx device whose errors static-nn keeps as typed sources in a
/// [`DeviceError`]: `Cpu` (its `CpuError`), and `Cuda` with the `cuda`
/// feature (its `CudaError`, inside a `CudaFailure`, since dfdx 0.13's
/// `CudaError` is not a `std::error::Error`). Implemented for both; sealed.
pub trait TypedErrors: dfdx::tensor::HasErr + sealed::Sealed {
    /// Whether a training step gains from cutting its batch into chunks
    /// that run side by side on replicas of the model
    /// ([`SplitStep::auto`](crate::train::SplitStep::auto)): on the CPU,
    /// yes; on CUDA, where one device runs the whole batch at once, no.
    const SPLITS_BATCHES: bool;

    /// `e`, raised `during` the named step, as a [`DeviceError`].
    fn device_error(during: &'static str, e: Self::Err) -> DeviceError;

    /// A new device of the same kind whose random numbers start from `seed`
    /// (for the CPU with dfdx's allocation cache enabled; for CUDA on the
    /// first GPU, the one `default_device` picks).
    fn reseeded(&self, seed: u64) -> Result<Self, DeviceError>
    where
        Self: Sized;

    /// Frees the allocations this device's cache holds (dfdx 0.13 frees
    /// them only when asked, not when the device is dropped): for a device
    /// that is being replaced by [`TypedErrors::reseeded`].
    fn release_cache(&self) -> Result<(), DeviceError>;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for dfdx::tensor::Cpu {}
    #[cfg(feature = "cuda")]
    impl Sealed for dfdx::tensor::Cuda {}
}

impl TypedErrors for dfdx::tensor::Cpu {
    const SPLITS_BATCHES: bool = true;

    fn device_error(during: &'static str, e: dfdx::tensor::CpuError) -> DeviceError {
        DeviceError::new(during, e)
    }

    fn reseeded(&self, seed: u64) -> Result<Self, DeviceError> {
        use dfdx::tensor::Cache;
        let dev = dfdx::tensor::Cpu::seed_from_u64(seed);
        dev.enable_cache();
        Ok(dev)
    }

    fn release_cache(&self) -> Result<(), DeviceError> {
        use dfdx::tensor::Cache;
        self.try_empty_cache()
            .map_err(|e| DeviceError::new("freeing the previous epoch's tensor cache", e))
    }
}

/// dfdx's `CudaError` as a `std::error::Error` (its `Display` is its
/// `Debug`): the source of a [`DeviceError`] from the CUDA device.
#[cfg(feature = "cuda")]
#[derive(Debug)]
pub struct CudaFailure(pub dfdx::tensor::CudaError);

#[cfg(feature = "cuda")]
impl fmt::Display for CudaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(feature = "cuda")]
impl StdError for CudaFailure {}

#[cfg(feature = "cuda")]
impl TypedErrors for dfdx::tensor::Cuda {
    const SPLITS_BATCHES: bool = false;

    fn device_error(during: &'static str, e: dfdx::tensor::CudaError) -> DeviceError {
        DeviceError::new(during, CudaFailure(e))
    }

    fn reseeded(&self, seed: u64) -> Result<Self, DeviceError> {
        // dfdx 0.13 does not say which GPU a `Cuda` runs on; static-nn's
        // `default_device` always takes the first one
        dfdx::tensor::Cuda::try_build(0, seed)
            .map_err(|e| DeviceError::new("building the epoch's CUDA device", CudaFailure(e)))
    }

    fn release_cache(&self) -> Result<(), DeviceError> {
        use dfdx::tensor::Cache;
        self.try_empty_cache().map_err(|e| {
            DeviceError::new("freeing the previous epoch's tensor cache", CudaFailure(e))
        })
    }
}

/// `map_err(device::<D>("the forward pass"))`: wraps device `D`'s error as a
/// [`DeviceError`].
pub(crate) fn device<D: TypedErrors>(during: &'static str) -> impl FnOnce(D::Err) -> DeviceError {
    move |e| D::device_error(during, e)
}
