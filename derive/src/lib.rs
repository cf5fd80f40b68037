//! The macros of [static-nn](https://docs.rs/static-nn): struct models.
//!
//! Use them through static-nn (`use static_nn::prelude::*;` or
//! `static_nn::{Network, forward}`); the generated code names only
//! `::static_nn` paths, so a crate that uses them depends on static-nn alone.
//!
//! # `#[derive(Network)]`
//!
//! On a struct with named fields whose every field type is one of the
//! struct's type parameters. The same struct is then the *network type*
//! (its parameters are layer types such as `Conv2D<1, 6, 5>`) and, after
//! `build_module`, the *built model* (its parameters are their modules):
//!
//! ```ignore
//! #[derive(Network, Clone, Debug, Default)]
//! pub struct Block<const IN: usize, const OUT: usize,
//!                  C = Conv2D<IN, OUT, 3, 1, 1>, A = ReLU> {
//!     pub conv: C,
//!     pub act: A,
//! }
//! ```
//!
//! Const parameters that no field uses are allowed (they feed the defaults
//! of the type parameters); lifetimes, bounds and `where` clauses are not.
//! The derive implements, for the struct with each type parameter `T`
//! replaced as shown:
//!
//! - static-nn's `BuildOnDevice<D, E>`: `Built` has `T::Built`;
//! - dfdx's `TensorCollection<E, D>`: `To<E2, D2>` has `T::To<E2, D2>`, and
//!   each field is visited as a module named after the field, so tensors
//!   are named as in PyTorch's `state_dict` (`conv.weight`,
//!   `shortcut.0.weight`);
//! - static-nn's `InferShape<In>` (lazy layers and summaries), in one of two
//!   ways:
//!   - by default (you write the forward, see [`macro@forward`]): the network
//!     is taken as it is (`Concrete = Self`, so it holds no lazy layer), its
//!     per-sample output shape is that of its built module's `Module` impl on
//!     a CPU `f32` sample, and its summary is one row named after the struct
//!     with its trainable parameter count;
//!   - with `#[network(sequential)]`: the fields run one after the other in
//!     declaration order, like a tuple. Lazy fields are made concrete, the
//!     summary has one row per field (`prefix.field`), and the derive also
//!     writes dfdx's `Module<X>` and `ModuleMut<X>` (chained `try_forward` /
//!     `try_forward_mut`; the error type is the first field's).
//!     `#[network(sequential = [a, b, a, c])]` gives the order explicitly; a
//!     field may appear more than once (a shared activation or pooling
//!     layer), and every field must appear.
//!
//! A field whose type is not a bare type parameter is a compile error that
//! names the field and shows the fix.
//!
//! # `#[forward]`
//!
//! On an `impl Module<X> for YourStruct<..>` block. It emits the impl
//! unchanged and its training-mode twin, `impl ModuleMut<X> for
//! YourStruct<..>`, by rewriting the impl: the trait `Module` becomes
//! `ModuleMut` everywhere (the implemented trait, bounds in `where` clauses,
//! `<T as Module<..>>::Output` projections, `Module::try_forward(..)` paths),
//! `try_forward` / `forward` become `try_forward_mut` / `forward_mut` (the
//! method defined and every call), a path call's leading `&arg` becomes
//! `&mut arg`, and `&self` becomes `&mut self`. So one forward serves both
//! modes, and `forward_mut` (dropout active, batch-norm statistics updated)
//! reaches every child:
//!
//! ```ignore
//! #[forward]
//! impl<X, C: Module<X, Output = X>, A: Module<X, Output = X, Error = C::Error>>
//!     Module<X> for Block<IN, OUT, C, A>
//! where X: Clone + TryAdd<X, Output = X> { .. }
//! ```
//!
//! The rewrite is syntactic: a forward that borrows a child immutably other
//! than through these calls (`let c = &self.conv; c.forward(x)`) does not
//! get a `ModuleMut` twin that compiles; write that call on `self.conv`.
use proc_macro::TokenStream;

mod forward;
mod network;

/// Derives building, parameter visiting and shape inference for a struct
/// model whose fields' types are its type parameters; with
/// `#[network(sequential)]` also its forward passes. See the
/// [crate documentation](crate).
#[proc_macro_derive(Network, attributes(network))]
pub fn derive_network(input: TokenStream) -> TokenStream {
    let input = syn::parse_macro_input!(input as syn::DeriveInput);
    network::expand(&input)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// On an `impl Module<X> for YourStruct<..>` block: also emits the
/// `ModuleMut<X>` impl, the training-mode forward, by rewriting it. See the
/// [crate documentation](crate).
#[proc_macro_attribute]
pub fn forward(attr: TokenStream, item: TokenStream) -> TokenStream {
    forward::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
