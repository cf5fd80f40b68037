//! Choosing the device like the notebook's `cuda if available else cpu`.
use dfdx::prelude::Cpu;
#[cfg(feature = "cuda")]
use dfdx::prelude::Cuda;

/// The device [`default_device`] chose.
pub enum DeviceChoice {
    /// The CPU, with the reason CUDA was not used.
    Cpu(Cpu, String),
    /// The first CUDA GPU.
    #[cfg(feature = "cuda")]
    Cuda(Cuda),
}

/// CUDA when static-nn is built with `--features cuda` and a GPU is present,
/// otherwise the CPU with a one-line reason (for a notice). Both are seeded
/// with `seed`, so parameter initialisation is reproducible.
pub fn default_device(seed: u64) -> DeviceChoice {
    #[cfg(feature = "cuda")]
    {
        match Cuda::try_seed_from_u64(seed) {
            Ok(dev) => return DeviceChoice::Cuda(dev),
            Err(e) => {
                return DeviceChoice::Cpu(
                    Cpu::seed_from_u64(seed),
                    format!("no usable CUDA device ({e:?})"),
                );
            }
        }
    }
    #[allow(unreachable_code)]
    DeviceChoice::Cpu(
        Cpu::seed_from_u64(seed),
        "static-nn was built without the `cuda` feature".to_string(),
    )
}
