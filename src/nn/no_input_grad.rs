//! Traced inputs whose own gradient nobody wants: a batch of data.
use dfdx::nn::Module;
use dfdx::prelude::{Device, Dtype, OwnedTape, PutTape, Shape, SplitTape, Tensor};

/// A traced input whose own gradient is not wanted, such as a batch of
/// training images: the first layer with parameters then computes only the
/// gradients of its parameters, not of its input.
///
/// `model.forward_mut(NoInputGrad(x.traced(grads)))` returns what
/// `model.forward_mut(x.traced(grads))` does and leads to the same
/// parameter gradients; only the input's own gradient may be left out of
/// `grads`. For a convolution first (LeNet) that saves the input-gradient
/// pass of its backward, about a tenth of a training step.
/// [`Classifier`](crate::train::Classifier) passes its batches this way.
///
/// PyTorch: an input with `requires_grad=False`, the default for data.
///
/// How each layer takes it:
/// - a layer without parameters (activations, pooling, [`Flatten`](super::Flatten),
///   [`Input`](super::Input), [`Dropout`](super::Dropout), [`Identity`](super::Identity))
///   runs without recording anything and passes `NoInputGrad` on: its
///   output needs no gradient either;
/// - [`Conv2D`](super::Conv2D) and [`Linear`](super::Linear) record the
///   gradients of their weight and bias only (on the CPU; CUDA computes and
///   drops the input's);
/// - any other layer (batch norm, [`BasicBlock`](crate::models::BasicBlock),
///   struct models written with [`#[forward]`](crate::forward)) runs as on a
///   traced tensor.
///
/// A layer of your own that should take it implements
/// `Module<NoInputGrad<Tensor<S, E, D, OwnedTape<E, D>>>>` (or `ModuleMut`).
///
/// ```
/// use static_nn::prelude::*;
/// let dev = Cpu::default();
/// let mut net = dev.build_module::<(Conv2D<1, 2, 3>, ReLU, Flatten, Linear<8, 3>), f32>();
/// let x: Tensor<Rank4<4, 1, 4, 4>, f32, _> = dev.sample_normal();
///
/// // `trace` traces a copy of `x` (it is used twice here); `traced` takes `x` itself
/// let grads = net.alloc_grads();
/// let loss = net.forward_mut(NoInputGrad(x.trace(grads))).square().mean();
/// let fast = loss.backward();
///
/// let grads = net.alloc_grads();
/// let loss = net.forward_mut(x.trace(grads)).square().mean();
/// let full = loss.backward();
///
/// // a tuple builds into a `Sequential`: its layers are `net.0 .0`, `net.0 .1`, …
/// let w = &net.0 .0.weight;
/// assert_eq!(fast.get(w).array(), full.get(w).array());
/// ```
#[derive(Debug)]
pub struct NoInputGrad<T>(pub T);

impl<T> NoInputGrad<T> {
    /// The traced input itself (its gradient is then computed as usual).
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Runs `layer` on `x` without a tape and puts the tape back on its output,
/// which then needs no gradient either (it depends on no parameter).
pub(crate) fn untraced<M, S: Shape, E: Dtype, D: Device<E>>(
    layer: &M,
    x: NoInputGrad<Tensor<S, E, D, OwnedTape<E, D>>>,
) -> Result<NoInputGrad<<M::Output as PutTape<OwnedTape<E, D>>>::Output>, M::Error>
where
    M: Module<Tensor<S, E, D>>,
    M::Output: PutTape<OwnedTape<E, D>>,
{
    let (x, tape) = x.0.split_tape();
    Ok(NoInputGrad(layer.try_forward(x)?.put_tape(tape)))
}

/// `Module<NoInputGrad<..>>` for layers without parameters: they run
/// without a tape ([`untraced`]) and pass the marker on. Each entry is
/// `[generics,] Type`.
macro_rules! no_input_grad_untraced {
    ($([$($g:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($g)* Sx: ::dfdx::prelude::Shape, E: ::dfdx::prelude::Dtype, D: ::dfdx::prelude::Device<E>>
            ::dfdx::nn::Module<$crate::nn::NoInputGrad<::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>>>
            for $ty
        where
            $ty: ::dfdx::nn::Module<::dfdx::prelude::Tensor<Sx, E, D>>,
            <$ty as ::dfdx::nn::Module<::dfdx::prelude::Tensor<Sx, E, D>>>::Output:
                ::dfdx::prelude::PutTape<::dfdx::prelude::OwnedTape<E, D>>,
        {
            type Output = $crate::nn::NoInputGrad<
                <<$ty as ::dfdx::nn::Module<::dfdx::prelude::Tensor<Sx, E, D>>>::Output
                    as ::dfdx::prelude::PutTape<::dfdx::prelude::OwnedTape<E, D>>>::Output,
            >;
            type Error = <$ty as ::dfdx::nn::Module<::dfdx::prelude::Tensor<Sx, E, D>>>::Error;

            fn try_forward(
                &self,
                x: $crate::nn::NoInputGrad<::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>>,
            ) -> Result<Self::Output, Self::Error> {
                $crate::nn::no_input_grad::untraced(self, x)
            }
        }
    )*};
}
pub(crate) use no_input_grad_untraced;

/// `Module<NoInputGrad<..>>` and `ModuleMut<NoInputGrad<..>>` for layers
/// with a `ModuleMut` of their own (not dfdx's blanket one) that run as on
/// a traced tensor: the input's gradient is computed and dropped. Each entry
/// is `[generics,] Type`.
macro_rules! no_input_grad_traced {
    (@impl $trait:ident, $method:ident, ($($borrow:tt)*), [$($g:tt)*] $ty:ty) => {
        impl<$($g)* Sx: ::dfdx::prelude::Shape, E: ::dfdx::prelude::Dtype, D: ::dfdx::prelude::Device<E>>
            ::dfdx::nn::$trait<$crate::nn::NoInputGrad<::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>>>
            for $ty
        where
            $ty: ::dfdx::nn::$trait<::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>>,
        {
            type Output = <$ty as ::dfdx::nn::$trait<
                ::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>,
            >>::Output;
            type Error = <$ty as ::dfdx::nn::$trait<
                ::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>,
            >>::Error;

            fn $method(
                $($borrow)* self,
                x: $crate::nn::NoInputGrad<::dfdx::prelude::Tensor<Sx, E, D, ::dfdx::prelude::OwnedTape<E, D>>>,
            ) -> Result<Self::Output, Self::Error> {
                ::dfdx::nn::$trait::$method(self, x.0)
            }
        }
    };
    ($([$($g:tt)*] $ty:ty),* $(,)?) => {$(
        $crate::nn::no_input_grad::no_input_grad_traced!(@impl Module, try_forward, (&), [$($g)*] $ty);
        $crate::nn::no_input_grad::no_input_grad_traced!(@impl ModuleMut, try_forward_mut, (&mut), [$($g)*] $ty);
    )*};
}
pub(crate) use no_input_grad_traced;

#[cfg(test)]
mod tests {
    use super::NoInputGrad;
    use crate::prelude::*;
    use dfdx::nn::tensor_collection::{
        RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorName,
        ViewTensorRef,
    };
    use dfdx::tensor::Gradients;

    /// Collects `grads`' gradient of every tensor the model visits, by name
    /// (running statistics have none: they are skipped).
    struct GradsOf<'a>(&'a Gradients<f64, Cpu>, Vec<(String, Vec<f64>)>);

    impl TensorVisitor<f64, Cpu> for GradsOf<'_> {
        type Viewer = (ViewTensorName, ViewTensorRef);
        type Err = std::convert::Infallible;
        type E2 = f64;
        type D2 = Cpu;

        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f64, Cpu>,
            (name, t): (String, &Tensor<S, f64, Cpu>),
        ) -> Result<Option<Tensor<S, f64, Cpu>>, Self::Err> {
            if opts.do_gradient_update {
                self.1.push((name, self.0.get(t).as_vec()));
            }
            Ok(None)
        }
    }

    fn grads_of<M: TensorCollection<f64, Cpu>>(
        net: &M,
        g: &Gradients<f64, Cpu>,
    ) -> Vec<(String, Vec<f64>)> {
        let mut v = GradsOf(g, Vec::new());
        let _ = M::iter_tensors(&mut RecursiveWalker {
            m: (String::new(), net),
            f: &mut v,
        });
        v.1
    }

    /// Builds `$net` twice from one seed and takes one training step on
    /// each, with the batch as `NoInputGrad` and as a plain traced tensor,
    /// under leaky gradients (which keep every tensor's gradient). The
    /// losses and every parameter's gradient agree; the batch's own
    /// gradient exists only on the plain path.
    macro_rules! same_step {
        ($net:ty, $x:ty) => {{
            let run = |fast: bool| {
                let dev = Cpu::seed_from_u64(11);
                let mut net = dev.build_module::<$net, f64>();
                let x: Tensor<$x, f64, _> = dev.sample_normal();
                let y = if fast {
                    net.forward_mut(NoInputGrad(x.trace(Gradients::leaky())))
                } else {
                    net.forward_mut(x.trace(Gradients::leaky()))
                };
                let loss = y.square().mean();
                let value = loss.array();
                let mut g = loss.backward();
                let params = grads_of(&net, &g);
                let gx = g.get_or_alloc_mut(&x).expect("allocates").clone();
                (value, params, gx.iter().any(|v| *v != 0.0))
            };
            let (l_fast, g_fast, x_fast) = run(true);
            let (l_full, g_full, x_full) = run(false);
            assert!(
                (l_fast - l_full).abs() <= 1e-12 * l_full.abs(),
                "{l_fast} vs {l_full}"
            );
            assert_eq!(g_fast.len(), g_full.len());
            for ((name, a), (_, b)) in g_fast.iter().zip(&g_full) {
                assert!(a.iter().any(|v| *v != 0.0), "{name}: all zeros");
                for (p, q) in a.iter().zip(b) {
                    assert!(
                        (p - q).abs() <= 1e-10 * (1.0 + q.abs()),
                        "{name}: {p} vs {q}"
                    );
                }
            }
            assert!(x_full, "the plain path computes the batch's gradient");
            x_fast
        }};
    }

    #[test]
    fn a_convolution_first_skips_the_batch_gradient() {
        type Net = (
            Input<1, 6, 6>,
            Conv2D<1, 3, 3, 1, 1>,
            ReLU,
            MaxPool2D<2>,
            Conv2D<3, 4, 3>,
            Flatten,
            Linear<4, 2>,
        );
        assert!(!same_step!(Net, Rank4<3, 1, 6, 6>));
        // one image, unbatched
        assert!(!same_step!(Net, Rank3<1, 6, 6>));
    }

    #[test]
    fn a_linear_layer_after_flatten_skips_the_batch_gradient() {
        type Net = (Flatten, Linear<36, 5>, ReLU, Linear<5, 3>);
        assert!(!same_step!(Net, Rank4<7, 1, 6, 6>));
        type Vector = (Linear<9, 4>, Tanh, Linear<4, 2>);
        assert!(!same_step!(Vector, Rank1<9>));
    }

    #[test]
    fn parameter_free_layers_pass_the_marker_on() {
        type Net = (
            Dropout<30>,
            AvgPool2D<2>,
            Sigmoid,
            GlobalAvgPool2D,
            Identity,
            Linear<2, 3>,
        );
        assert!(!same_step!(Net, Rank4<5, 2, 4, 4>));
    }

    #[test]
    fn other_layers_first_still_give_the_same_gradients() {
        type Norm = (BatchNorm2D<2>, Conv2D<2, 3, 3>, Flatten, Linear<12, 2>);
        same_step!(Norm, Rank4<4, 2, 4, 4>);
        type Block = (
            Residual<(Conv2D<2, 2, 3, 1, 1>, ReLU)>,
            Flatten,
            Linear<32, 2>,
        );
        same_step!(Block, Rank4<4, 2, 4, 4>);
    }
}
