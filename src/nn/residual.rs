//! Residual connections, typed: `y = f(x) + x` and `y = f(x) + g(x)`.
use super::build::BuildOnDevice;
use super::infer::{join_name, push, InferShape, LayerRow};
use crate::ops::ReluKernel;
use crate::shapes::checks::ResidualShapes;
use dfdx::nn::tensor_collection::ModuleVisitor;
use dfdx::nn::{Module, ModuleMut, NonMutableModule, TensorCollection, ZeroSizedModule};
use dfdx::prelude::*;

/// The identity: `y = x`. The shortcut of a [`Residual`] that keeps the
/// shape.
///
/// PyTorch: `nn.Identity()` (or an empty `nn.Sequential()`); no parameters.
///
/// # Shapes
/// any → the same.
#[derive(Clone, Copy, Debug, Default)]
pub struct Identity;

super::build::zero_sized_build!(Identity);
super::no_input_grad::no_input_grad_untraced!([] Identity);
impl ZeroSizedModule for Identity {}
impl NonMutableModule for Identity {}

impl<S: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>> Module<Tensor<S, E, D, T>> for Identity {
    type Output = Tensor<S, E, D, T>;
    type Error = D::Err;
    fn try_forward(&self, x: Tensor<S, E, D, T>) -> Result<Self::Output, D::Err> {
        Ok(x)
    }
}

impl<In: ConstShape> InferShape<In> for Identity {
    type Concrete = Self;
    type Out = In;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        push::<In>(prefix, "Identity()".into(), 0, rows);
    }
}

/// A residual connection: `y = block(x) + shortcut(x)`.
///
/// - `Residual<F>` is the identity shortcut `y = f(x) + x`; it compiles only
///   when `f` keeps the shape.
/// - `Residual<F, G>` is a projection shortcut `y = f(x) + g(x)` (for
///   example a strided 1×1 convolution and a batch norm); it compiles only
///   when `f` and `g` give the same shape.
///
/// A mismatch is a compile error that names both shapes, for example
/// `Residual: the block gives (32, 14, 14) but the shortcut gives (16, 28, 28)`.
/// Both branches run in the mode of the call: `forward` (inference) or
/// `forward_mut` (training).
///
/// PyTorch has no such module; it is the `forward` of ResNet's blocks,
/// `out = self.block(x) + self.shortcut(x)`. Tensors are named `block.*`
/// and `shortcut.*`.
///
/// # Shapes
/// `(B, C, H, W)` → `(B, C', H', W')`, the block's output shape.
///
/// ```
/// use static_nn::prelude::*;
/// type Block = Residual<(Conv2D<8, 8, 3, 1, 1>, ReLU, Conv2D<8, 8, 3, 1, 1>)>;
/// type Down = Residual<(Conv2D<8, 16, 3, 2, 1>, ReLU), Conv2D<8, 16, 1, 2, 0, false>>;
/// let dev = Cpu::default();
/// let net = dev.build_module::<(Block, Down), f32>();
/// let y: Tensor<Rank4<2, 16, 4, 4>, f32, _> = net.forward(dev.zeros::<Rank4<2, 8, 8, 8>>());
/// # let _ = y;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Residual<F, G = Identity> {
    /// The block `f`.
    pub block: F,
    /// The shortcut `g` ([`Identity`] for `y = f(x) + x`).
    pub shortcut: G,
}

impl<F: BuildOnDevice<D, E>, G: BuildOnDevice<D, E>, D: Device<E>, E: Dtype> BuildOnDevice<D, E>
    for Residual<F, G>
{
    type Built = Residual<F::Built, G::Built>;
}

impl<F: TensorCollection<E, D>, G: TensorCollection<E, D>, E: Dtype, D: Device<E>>
    TensorCollection<E, D> for Residual<F, G>
{
    type To<E2: Dtype, D2: Device<E2>> = Residual<F::To<E2, D2>, G::To<E2, D2>>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("block", |s| &s.block, |s| &mut s.block),
                Self::module("shortcut", |s| &s.shortcut, |s| &mut s.shortcut),
            ),
            |(block, shortcut)| Residual { block, shortcut },
        )
    }
}

/// `a + b` for two `(B, C, H, W)` tensors whose sizes the caller has
/// checked to be equal (`ResidualShapes`), with `a`'s type.
fn add_same<S1: Shape, S2: Shape, E: Dtype, D: Device<E>, T: Tape<E, D>>(
    a: Tensor<S1, E, D, T>,
    b: Tensor<S2, E, D>,
) -> Result<Tensor<S1, E, D, T>, D::Err> {
    let shape = *a.shape();
    a.try_add(b.try_reshape_like(&shape)?)
}

/// Adds a residual shortcut to a block's output, checking at compile time
/// that both have the same per-sample shape `(C, H, W)`: the `+` of a
/// hand-written residual `forward` (see [`Residual`] for the message of a
/// mismatch).
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::nn::add_residual;
/// let dev = Cpu::default();
/// let (a, b) = (dev.ones::<Rank4<1, 2, 3, 3>>(), dev.ones::<Rank4<1, 2, 3, 3>>());
/// let y: Tensor<Rank4<1, 2, 3, 3>, f32, _> = add_residual(a, b).unwrap();
/// assert_eq!(y.array()[0][1][2][2], 2.0);
/// ```
pub fn add_residual<
    B: Dim,
    const C: usize,
    const H: usize,
    const W: usize,
    const C2: usize,
    const H2: usize,
    const W2: usize,
    E: Dtype,
    D: Device<E>,
    T: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
>(
    y: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    shortcut: Tensor<(B, Const<C2>, Const<H2>, Const<W2>), E, D, T2>,
) -> Result<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>, D::Err>
where
    (): ResidualShapes<C, H, W, C2, H2, W2>,
{
    // reshaped with its tape, so that a strided shortcut's copy is recorded
    let (s, tape) = shortcut.try_reshape_like(y.shape())?.split_tape();
    let (y, y_tape) = y.split_tape();
    add_same(y.put_tape(y_tape.merge(tape)), s)
}

/// [`add_residual`] and then ReLU, `relu(y + shortcut)`: the end of
/// ResNet's basic block, with the same compile-time check of the shapes.
/// On the CPU, the sum and the rectifier are one op
/// ([`ReluKernel::try_add_relu`]); the values and gradients are those of
/// `ReLU` after `add_residual`.
///
/// PyTorch: `F.relu(out + self.shortcut(x))`.
///
/// ```
/// use static_nn::prelude::*;
/// use static_nn::nn::add_residual_relu;
/// let dev = Cpu::default();
/// let a = dev.tensor([[[[1.0f32, -3.0]]]]);
/// let b = dev.tensor([[[[1.0f32, 1.0]]]]);
/// let y: Tensor<Rank4<1, 1, 1, 2>, f32, _> = add_residual_relu(a, b).unwrap();
/// assert_eq!(y.array(), [[[[2.0, 0.0]]]]);
/// ```
pub fn add_residual_relu<
    B: Dim,
    const C: usize,
    const H: usize,
    const W: usize,
    const C2: usize,
    const H2: usize,
    const W2: usize,
    E: Dtype,
    D: ReluKernel<E>,
    T: Tape<E, D> + Merge<T2>,
    T2: Tape<E, D>,
>(
    y: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
    shortcut: Tensor<(B, Const<C2>, Const<H2>, Const<W2>), E, D, T2>,
) -> Result<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>, D::Err>
where
    (): ResidualShapes<C, H, W, C2, H2, W2>,
{
    // reshaped with its tape, so that a strided shortcut's copy is recorded
    let shape = *y.shape();
    D::try_add_relu(y, shortcut.try_reshape_like(&shape)?)
}

/// `Module` or `ModuleMut` of `Residual` for `(B, C, H, W)` inputs.
macro_rules! residual_impl {
    ($trait:ident, $method:ident, $($mutability:tt)*) => {
        impl<
                F,
                G,
                B: Dim,
                const C: usize,
                const H: usize,
                const W: usize,
                const C1: usize,
                const H1: usize,
                const W1: usize,
                const C2: usize,
                const H2: usize,
                const W2: usize,
                E: Dtype,
                D: Device<E>,
                T: Tape<E, D>,
            > $trait<Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>> for Residual<F, G>
        where
            F: $trait<
                Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
                Output = Tensor<(B, Const<C1>, Const<H1>, Const<W1>), E, D, T>,
                Error = D::Err,
            >,
            G: $trait<
                Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
                Output = Tensor<(B, Const<C2>, Const<H2>, Const<W2>), E, D, T>,
                Error = D::Err,
            >,
            (): ResidualShapes<C1, H1, W1, C2, H2, W2>,
        {
            type Output = Tensor<(B, Const<C1>, Const<H1>, Const<W1>), E, D, T>;
            type Error = D::Err;

            fn $method(
                $($mutability)* self,
                x: Tensor<(B, Const<C>, Const<H>, Const<W>), E, D, T>,
            ) -> Result<Self::Output, Self::Error> {
                let (x, tape) = x.split_tape();
                let (a, tape) = self.block.$method(x.clone().put_tape(tape))?.split_tape();
                let b = self.shortcut.$method(x.put_tape(tape))?;
                // reshaped with its tape (see `add_residual`)
                let (b, tape) = b.try_reshape_like(a.shape())?.split_tape();
                add_same(a.put_tape(tape), b)
            }
        }
    };
}
residual_impl!(Module, try_forward, &);
residual_impl!(ModuleMut, try_forward_mut, &mut);
// a block first: the input's gradient is computed (and dropped)
super::no_input_grad::no_input_grad_traced!([F, G,] Residual<F, G>);

impl<In: Shape, F: InferShape<In>, G: InferShape<In>> InferShape<In> for Residual<F, G> {
    type Concrete = Residual<F::Concrete, G::Concrete>;
    type Out = F::Out;
    fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
        F::describe(&join_name(prefix, "block"), rows);
        G::describe(&join_name(prefix, "shortcut"), rows);
    }
}
