//! Building a network type into a module on a device.
use dfdx::nn::BuildModule;
use dfdx::prelude::{Cpu, Device, Dtype};

/// A network description that can be built into modules on device `D` with
/// dtype `E`: static-nn's counterpart of dfdx's `BuildOnDevice`.
///
/// Implemented for every static-nn layer, for dfdx's activations, for
/// tuples of up to 16 layers, and for [`LeNet`](crate::models::LeNet).
/// Lazy layers ([`LazyConv2D`](super::LazyConv2D),
/// [`LazyLinear`](super::LazyLinear)) need their input shape first: build
/// [`Inferred<Net, InputShape>`](super::Inferred) instead.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be built as a network",
    label = "not a static-nn layer or network of layers",
    note = "lazy layers need the input shape first: build `Inferred<Net, Rank3<C, H, W>>`; tuples hold at most 16 layers"
)]
pub trait BuildOnDevice<D: Device<E>, E: Dtype> {
    /// The built module, holding its tensors on `D`.
    type Built: BuildModule<D, E>;

    /// Builds the module with freshly initialised parameters.
    ///
    /// # Panics
    /// If the device cannot allocate the parameters; see
    /// [`try_build_on_device`](Self::try_build_on_device).
    fn build_on_device(device: &D) -> Self::Built {
        Self::try_build_on_device(device).expect("failed to allocate the module's tensors")
    }

    /// Builds the module with freshly initialised parameters.
    fn try_build_on_device(device: &D) -> Result<Self::Built, D::Err> {
        Self::Built::try_build(device)
    }
}

/// `device.build_module::<Net, f32>()`, as in dfdx, for static-nn's network
/// types (which may be tuples of up to 16 layers).
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let net = dev.build_module::<(Linear<4, 8>, ReLU, Linear<8, 2>), f32>();
/// let y: Tensor<Rank1<2>, f32, _> = net.forward(dev.zeros::<Rank1<4>>());
/// # let _ = y;
/// ```
pub trait DeviceBuildExt {
    /// Builds `M` on this device with dtype `E`.
    fn build_module<M: BuildOnDevice<Self, E>, E: Dtype>(&self) -> M::Built
    where
        Self: Device<E>,
    {
        M::build_on_device(self)
    }

    /// Builds `M` on this device with dtype `E`, returning allocation errors.
    fn try_build_module<M: BuildOnDevice<Self, E>, E: Dtype>(&self) -> Result<M::Built, Self::Err>
    where
        Self: Device<E>,
    {
        M::try_build_on_device(self)
    }
}

impl DeviceBuildExt for Cpu {}
#[cfg(feature = "cuda")]
impl DeviceBuildExt for dfdx::prelude::Cuda {}

/// Implements [`BuildOnDevice`] for a zero-sized module that is its own built form.
macro_rules! zero_sized_build {
    ($($ty:ty),* $(,)?) => {$(
        impl<D: ::dfdx::prelude::Device<E>, E: ::dfdx::prelude::Dtype> $crate::nn::BuildOnDevice<D, E> for $ty {
            type Built = $ty;
        }
    )*};
}
pub(crate) use zero_sized_build;
