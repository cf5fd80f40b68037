//! Dropout layers: active in training mode only.
use super::build::BuildOnDevice;
use super::infer::{push, InferShape, LayerRow};
use super::NoInputGrad;
use dfdx::nn::tensor_collection::{ModuleVisitor, ScalarOptions};
use dfdx::nn::{Module, ModuleMut, TensorCollection};
use dfdx::prelude::*;
use num_traits::Float;
use rand::{Rng, SeedableRng};

/// Dropout: in training mode each element is zeroed with probability
/// `p = PERCENT / 100` (default 50, PyTorch's 0.5) and the others are
/// scaled by `1 / (1 − p)`; in inference mode it is the identity.
///
/// The mask of each training step comes from a generator seeded by the
/// device's own random numbers (`Cpu::seed_from_u64`), so a seeded run is
/// bit-identical. `forward` (inference, `&self`) never applies dropout.
///
/// PyTorch: `nn.Dropout(p=PERCENT / 100)`; no parameters.
///
/// # Shapes
/// any → the same.
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::seed_from_u64(0);
/// let mut drop = dev.build_module::<Dropout<20>, f32>();
/// let x: Tensor<Rank2<4, 256>, f32, _> = dev.ones();
/// assert_eq!(drop.forward(x.clone()).array(), x.array()); // inference: identity
/// let y: Vec<f32> = drop.forward_mut(x).as_vec(); // training: 0 or 1/0.8
/// assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6));
/// assert!(y.iter().any(|v| *v == 0.0));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Dropout<const PERCENT: usize = 50>;

/// Channel dropout: in training mode each whole channel of each sample is
/// zeroed with probability `p = PERCENT / 100` and the others scaled by
/// `1 / (1 − p)`; in inference mode it is the identity.
///
/// PyTorch: `nn.Dropout2d(p=PERCENT / 100)`; no parameters.
///
/// # Shapes
/// `(B, C, H, W)` → the same (and `(C, H, W)` → the same).
#[derive(Clone, Copy, Debug, Default)]
pub struct Dropout2D<const PERCENT: usize = 50>;

/// A built [`Dropout<PERCENT>`](Dropout) or, with `CHANNELS`,
/// [`Dropout2D<PERCENT>`](Dropout2D): its probability, which starts at
/// `PERCENT / 100` and can be changed after building.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutModule<const PERCENT: usize, const CHANNELS: bool> {
    /// The probability of zeroing an element (a channel), in `[0, 1)`.
    pub p: f64,
}

impl<const PERCENT: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for Dropout<PERCENT> {
    type Built = DropoutModule<PERCENT, false>;
}

impl<const PERCENT: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for Dropout2D<PERCENT> {
    type Built = DropoutModule<PERCENT, true>;
}

impl<const PERCENT: usize, const CHANNELS: bool> Default for DropoutModule<PERCENT, CHANNELS> {
    fn default() -> Self {
        Self { p: Self::P }
    }
}

/// The probability of `Dropout<PERCENT>`. Read through the `P` constants,
/// so that a `PERCENT` of 100 or more is an error at compile time.
const fn probability<const PERCENT: usize>() -> f64 {
    assert!(PERCENT < 100, "Dropout's PERCENT must be below 100");
    PERCENT as f64 / 100.0
}

impl<const PERCENT: usize, const CHANNELS: bool, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for DropoutModule<PERCENT, CHANNELS>
{
    type To<E2: Dtype, D2: Device<E2>> = Self;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let p = ScalarOptions::from_default(Self::P);
        visitor.visit_fields(
            <Self as TensorCollection<E, D>>::scalar("p", |s| &s.p, |s| &mut s.p, p),
            |p| DropoutModule { p },
        )
    }
}

impl<const PERCENT: usize, const CHANNELS: bool> DropoutModule<PERCENT, CHANNELS> {
    /// The probability the module starts with: `PERCENT / 100`.
    pub const P: f64 = probability::<PERCENT>();
}

impl<const PERCENT: usize> Dropout<PERCENT> {
    /// The probability `PERCENT / 100`.
    pub const P: f64 = probability::<PERCENT>();
}

impl<const PERCENT: usize> Dropout2D<PERCENT> {
    /// The probability `PERCENT / 100`.
    pub const P: f64 = probability::<PERCENT>();
}

impl<
        const PERCENT: usize,
        const CHANNELS: bool,
        S: Shape,
        E: Dtype,
        D: Device<E>,
        T: Tape<E, D>,
    > Module<Tensor<S, E, D, T>> for DropoutModule<PERCENT, CHANNELS>
{
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;

    /// Inference mode: the identity.
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        Ok(x)
    }
}

impl<
        const PERCENT: usize,
        const CHANNELS: bool,
        S: Shape,
        E: Dtype + Float,
        D: Device<E>,
        T: Tape<E, D>,
    > ModuleMut<Tensor<S, E, D, T>> for DropoutModule<PERCENT, CHANNELS>
{
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;

    /// Training mode: zero and rescale, with a mask drawn from a generator
    /// seeded by the device.
    fn try_forward_mut(&mut self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        if self.p <= 0.0 {
            return Ok(x);
        }
        let shape = *x.shape();
        let dims = shape.concrete();
        let len = shape.num_elements();
        // Dropout2D: one draw per (sample, channel) of `(B, C, H, W)` (or
        // per channel of `(C, H, W)`); Dropout: one per element.
        let group = if CHANNELS && S::NUM_DIMS >= 3 {
            dims.into_iter()
                .skip(S::NUM_DIMS - 2)
                .product::<usize>()
                .max(1)
        } else {
            1
        };
        let keep = E::from(1.0 / (1.0 - self.p)).unwrap_or_else(E::one);
        let mut rng = rand::rngs::StdRng::seed_from_u64(x.device().random_u64());
        let mut mask = Vec::with_capacity(len);
        for _ in 0..len.div_ceil(group) {
            let v = if rng.gen::<f64>() < self.p {
                E::zero()
            } else {
                keep
            };
            mask.extend(std::iter::repeat_n(v, group));
        }
        mask.truncate(len);
        let mask = x.device().try_tensor_from_vec(mask, shape)?;
        x.try_mul(mask)
    }
}

super::no_input_grad::no_input_grad_untraced!([const PERCENT: usize, const CHANNELS: bool,] DropoutModule<PERCENT, CHANNELS>);

/// Training mode on a batch whose own gradient is not wanted: the mask is
/// applied without a tape, and the output needs no gradient either.
impl<const PERCENT: usize, const CHANNELS: bool, S: Shape, E: Dtype + Float, D: Device<E>>
    ModuleMut<NoInputGrad<Tensor<S, E, D, OwnedTape<E, D>>>> for DropoutModule<PERCENT, CHANNELS>
{
    type Output = NoInputGrad<Tensor<S, E, D, OwnedTape<E, D>>>;
    type Error = D::Err;

    fn try_forward_mut(
        &mut self,
        x: NoInputGrad<Tensor<S, E, D, OwnedTape<E, D>>>,
    ) -> Result<Self::Output, D::Err> {
        let (x, tape) = x.0.split_tape();
        Ok(NoInputGrad(self.try_forward_mut(x)?.put_tape(tape)))
    }
}

macro_rules! dropout_infer {
    ($spec:ident, $torch:literal) => {
        impl<const PERCENT: usize, In: ConstShape> InferShape<In> for $spec<PERCENT> {
            type Concrete = Self;
            type Out = In;
            fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
                let p = $spec::<PERCENT>::P;
                push::<In>(
                    prefix,
                    format!(concat!($torch, "(p={}, inplace=False)"), p),
                    0,
                    rows,
                );
            }
        }
    };
}
dropout_infer!(Dropout, "Dropout");
dropout_infer!(Dropout2D, "Dropout2d");
