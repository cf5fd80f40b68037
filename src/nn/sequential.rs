//! Tuples of layers, run one after the other.
//!
//! A tuple of up to 16 layer types is a network type: it builds into a
//! [`Sequential`] of the built layers, visits their tensors under the names
//! `0`, `1`, … (as PyTorch's `nn.Sequential`), chains their forward passes
//! and threads the per-sample shape through them ([`InferShape`]). All four
//! impls come from one `macro_rules!`, once per tuple length.
use super::infer::{join_name, InferShape, LayerRow};
use super::BuildOnDevice;
use crate::shapes::ImageInput;
use dfdx::nn::tensor_collection::ModuleVisitor;
use dfdx::nn::{Module, ModuleMut, TensorCollection};
use dfdx::prelude::{Device, Dtype, Shape};

/// The built form of a tuple of up to 16 layers: `dev.build_module::<(A, B, C), f32>()`
/// returns `Sequential<(A::Built, B::Built, C::Built)>`.
///
/// PyTorch: `nn.Sequential(a, b, c)`; parameters are named by position
/// (`0.weight`, `3.bias`), as in PyTorch.
///
/// # Shapes
/// Each layer's output is the next layer's input; a mismatch anywhere is a
/// compile error naming the layer.
#[derive(Clone, Debug, Default)]
pub struct Sequential<T>(pub T);

/// The fields of a `Sequential` for dfdx's `visit_fields`, nested in pairs
/// (`(f0, (f1, (f2,)))`), since dfdx implements its field lists for tuples of
/// at most 6 but accepts them nested to any depth.
macro_rules! nested_fields {
    ($idx:tt) => {
        (Self::module(stringify!($idx), |s| &s.0 .$idx, |s| &mut s.0 .$idx),)
    };
    ($idx:tt, $($rest:tt),+) => {
        (
            Self::module(stringify!($idx), |s| &s.0 .$idx, |s| &mut s.0 .$idx),
            nested_fields!($($rest),+),
        )
    };
}

/// The pattern that takes `nested_fields!`'s built fields apart.
macro_rules! nested_pattern {
    ($m:ident) => { ($m,) };
    ($m:ident, $($rest:ident),+) => { ($m, nested_pattern!($($rest),+)) };
}

/// A network whose first layer declares the image it takes (a model with
/// [`ImageInput`], such as a derived struct) takes the same image: so
/// `(LeNetClass, Softmax)` still declares `1×28×28`.
macro_rules! image_input_impl {
    ($first:ident $(, $rest:ident)*) => {
        impl<$first: ImageInput, $($rest),*> ImageInput for Sequential<($first, $($rest,)*)> {
            type Image = $first::Image;
        }
    };
}

/// The impls for one tuple length (`forward` chains the layers' `forward`,
/// inference mode; `forward_mut` chains their `forward_mut`, training mode): `[types] [indices] [bindings], last type,
/// [the other types, last first]`. The reversed list lets each layer's bound
/// name the layer before it: `M2: Module<M1::Output>, M1: Module<M0::Output>,
/// M0: Module<Input>`.
macro_rules! tuple_impls {
    ([$($m:ident),+] [$($idx:tt),+] [$($b:ident),+], $last:ident, [$($rev:ident),*]) => {
        impl<D: Device<E>, E: Dtype, $($m: BuildOnDevice<D, E>),+> BuildOnDevice<D, E> for ($($m,)+) {
            type Built = Sequential<($($m::Built,)+)>;
        }

        image_input_impl!($($m),+);

        impl<E: Dtype, D: Device<E>, $($m: TensorCollection<E, D>),+> TensorCollection<E, D>
            for Sequential<($($m,)+)>
        {
            type To<E2: Dtype, D2: Device<E2>> = Sequential<($($m::To<E2, D2>,)+)>;

            fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
                visitor: &mut V,
            ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
                visitor.visit_fields(
                    nested_fields!($($idx),+),
                    |nested_pattern!($($b),+)| Sequential(($($b,)+)),
                )
            }
        }

        impl<
            Input,
            $last: $(Module<$rev::Output, Error = $rev::Error>, $rev:)* Module<Input>
        > Module<Input> for Sequential<($($m,)+)> {
            type Output = $last::Output;
            type Error = $last::Error;

            fn try_forward(&self, x: Input) -> Result<Self::Output, Self::Error> {
                $(let x = self.0 .$idx.try_forward(x)?;)+
                Ok(x)
            }
        }

        impl<
            Input,
            $last: $(ModuleMut<$rev::Output, Error = $rev::Error>, $rev:)* ModuleMut<Input>
        > ModuleMut<Input> for Sequential<($($m,)+)> {
            type Output = $last::Output;
            type Error = $last::Error;

            fn try_forward_mut(&mut self, x: Input) -> Result<Self::Output, Self::Error> {
                $(let x = self.0 .$idx.try_forward_mut(x)?;)+
                Ok(x)
            }
        }

        impl<In: Shape, $last: $(InferShape<$rev::Out>, $rev:)* InferShape<In>> InferShape<In>
            for ($($m,)+)
        {
            type Concrete = ($($m::Concrete,)+);
            type Out = $last::Out;

            fn describe(prefix: &str, rows: &mut Vec<LayerRow>) {
                $($m::describe(&join_name(prefix, stringify!($idx)), rows);)+
            }
        }
    };
}

tuple_impls!([M0][0][m0], M0, []);
tuple_impls!([M0, M1] [0, 1] [m0, m1], M1, [M0]);
tuple_impls!([M0, M1, M2] [0, 1, 2] [m0, m1, m2], M2, [M1, M0]);
tuple_impls!([M0, M1, M2, M3] [0, 1, 2, 3] [m0, m1, m2, m3], M3, [M2, M1, M0]);
tuple_impls!([M0, M1, M2, M3, M4] [0, 1, 2, 3, 4] [m0, m1, m2, m3, m4], M4, [M3, M2, M1, M0]);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5] [0, 1, 2, 3, 4, 5] [m0, m1, m2, m3, m4, m5],
    M5, [M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6] [0, 1, 2, 3, 4, 5, 6] [m0, m1, m2, m3, m4, m5, m6],
    M6, [M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7] [0, 1, 2, 3, 4, 5, 6, 7] [m0, m1, m2, m3, m4, m5, m6, m7],
    M7, [M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8] [0, 1, 2, 3, 4, 5, 6, 7, 8]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8],
    M8, [M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9],
    M9, [M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10],
    M10, [M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10, M11] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11],
    M11, [M10, M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10, M11, M12]
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12],
    M12, [M11, M10, M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10, M11, M12, M13]
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13],
    M13, [M12, M11, M10, M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10, M11, M12, M13, M14]
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14],
    M14, [M13, M12, M11, M10, M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
tuple_impls!(
    [M0, M1, M2, M3, M4, M5, M6, M7, M8, M9, M10, M11, M12, M13, M14, M15]
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]
    [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15],
    M15, [M14, M13, M12, M11, M10, M9, M8, M7, M6, M5, M4, M3, M2, M1, M0]
);
