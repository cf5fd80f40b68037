//! Choosing the device like the notebook's `cuda if available else cpu`.
use dfdx::prelude::Cpu;
#[cfg(feature = "cuda")]
use dfdx::prelude::Cuda;
use std::fmt;

/// The device [`default_device`] chose.
pub enum DeviceChoice {
    /// The CPU, with the reason CUDA was not used.
    Cpu(Cpu, CpuFallback),
    /// The first CUDA GPU.
    #[cfg(feature = "cuda")]
    Cuda(Cuda),
}

/// Why [`default_device`] chose the CPU. Its `Display` is a one-line notice.
#[derive(Debug)]
#[non_exhaustive]
pub enum CpuFallback {
    /// static-nn was built without its `cuda` feature.
    NoCudaFeature,
    /// CUDA was built in, but no device could be opened; the driver's error
    /// is the typed source.
    CudaUnavailable(crate::DeviceError),
}

impl fmt::Display for CpuFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCudaFeature => f.write_str("static-nn was built without the `cuda` feature"),
            Self::CudaUnavailable(e) => write!(f, "no usable CUDA device ({e})"),
        }
    }
}

/// CUDA when static-nn is built with `--features cuda` and a GPU is present,
/// otherwise the CPU with the reason (for a notice). Both are seeded with
/// `seed`, so parameter initialisation is reproducible.
pub fn default_device(seed: u64) -> DeviceChoice {
    #[cfg(feature = "cuda")]
    {
        match Cuda::try_seed_from_u64(seed) {
            Ok(dev) => return DeviceChoice::Cuda(dev),
            Err(e) => {
                let e =
                    <Cuda as crate::TypedErrors>::device_error("opening the first CUDA device", e);
                return DeviceChoice::Cpu(
                    Cpu::seed_from_u64(seed),
                    CpuFallback::CudaUnavailable(e),
                );
            }
        }
    }
    #[allow(unreachable_code)]
    DeviceChoice::Cpu(Cpu::seed_from_u64(seed), CpuFallback::NoCudaFeature)
}
