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
        if let Err(e) = probe_driver() {
            let e = crate::DeviceError::new("initialising the CUDA driver", e);
            return DeviceChoice::Cpu(Cpu::seed_from_u64(seed), CpuFallback::CudaUnavailable(e));
        }
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

/// The driver's answer when it cannot give a device: its `CUresult` name,
/// formatted without asking the driver (cudarc's `DriverError` asks it for
/// the message and panics when it cannot).
#[cfg(feature = "cuda")]
#[derive(Debug)]
struct DriverUnavailable(cudarc::driver::sys::CUresult);

#[cfg(feature = "cuda")]
impl fmt::Display for DriverUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(feature = "cuda")]
impl std::error::Error for DriverUnavailable {}

/// Asks the driver for a first device. dfdx 0.13's cudarc 0.9 unwraps the
/// answers to `cuInit` and `cuDeviceGet`, so `Cuda::try_seed_from_u64`
/// panics without a driver (or with the stub driver library) or without a
/// GPU instead of returning an error; this returns the error.
#[cfg(feature = "cuda")]
fn probe_driver() -> Result<(), DriverUnavailable> {
    use cudarc::driver::{result, sys::CUresult};
    result::init().map_err(|e| DriverUnavailable(e.0))?;
    match result::device::get_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err(DriverUnavailable(CUresult::CUDA_ERROR_NO_DEVICE)),
        Err(e) => Err(DriverUnavailable(e.0)),
    }
}
