//! `#[forward]`: an `impl Module<X>` and its `ModuleMut<X>` twin.
use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Error, Expr, ExprCall, ExprMethodCall, ExprPath, FnArg, Ident, ImplItemFn, ItemImpl, Path,
    PathSegment, QSelf, Result, TraitBound, Type, TypePath,
};

/// The segments of the path to `ModuleMut`, through static-nn.
const MODULE_MUT: [&str; 4] = ["static_nn", "__private", "dfdx", "nn"];

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> Result<TokenStream> {
    if !attr.is_empty() {
        return Err(Error::new(attr.span(), "#[forward] takes no arguments"));
    }
    let imp: ItemImpl = syn::parse2(item).map_err(|e| {
        Error::new(
            e.span(),
            "#[forward] goes on an `impl Module<X> for YourStruct<..> { .. }` block",
        )
    })?;
    let Some((None, trait_path, _)) = &imp.trait_ else {
        return Err(Error::new(
            imp.self_ty.span(),
            "#[forward] goes on an `impl Module<X> for YourStruct<..>` block, not an inherent \
             or negative impl",
        ));
    };
    if trait_path
        .segments
        .last()
        .map_or(true, |s| s.ident != "Module")
    {
        return Err(Error::new(
            trait_path.span(),
            "#[forward] goes on an `impl Module<X> for ..` block: it writes the `ModuleMut<X>` \
             impl from it",
        ));
    }
    let mut twin = imp.clone();
    ToModuleMut.visit_item_impl_mut(&mut twin);
    let no_input_grad = no_input_grad_twin(&twin);
    Ok(quote!(#imp #twin #no_input_grad))
}

/// `ModuleMut<NoInputGrad<X>>` beside `ModuleMut<X>` (the `twin`), running
/// the block as on the traced `X`: a block first in a network then takes a
/// batch whose gradient is not wanted (its input's gradient is computed and
/// dropped). None where `X` is a type parameter of the impl: that impl
/// already covers `NoInputGrad<..>`, passing it to the block's layers.
fn no_input_grad_twin(twin: &ItemImpl) -> Option<TokenStream> {
    let (_, path, _) = twin.trait_.as_ref()?;
    let syn::PathArguments::AngleBracketed(args) = &path.segments.last()?.arguments else {
        return None;
    };
    let input = args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(t),
        _ => None,
    })?;
    if let Type::Path(TypePath { qself: None, path }) = input {
        let is_param = |id: &Ident| {
            twin.generics
                .params
                .iter()
                .any(|p| matches!(p, syn::GenericParam::Type(t) if &t.ident == id))
        };
        if path.get_ident().is_some_and(is_param) {
            return None;
        }
    }
    let (impl_generics, _, where_clause) = twin.generics.split_for_impl();
    let self_ty = &twin.self_ty;
    let module_mut = quote!(::static_nn::__private::dfdx::nn::ModuleMut);
    let wrapped = quote!(::static_nn::nn::NoInputGrad<#input>);
    Some(quote! {
        impl #impl_generics #module_mut<#wrapped> for #self_ty #where_clause {
            type Output = <Self as #module_mut<#input>>::Output;
            type Error = <Self as #module_mut<#input>>::Error;

            fn try_forward_mut(
                &mut self,
                x: #wrapped,
            ) -> ::core::result::Result<Self::Output, Self::Error> {
                <Self as #module_mut<#input>>::try_forward_mut(self, x.0)
            }
        }
    })
}

/// The rewrite of an `impl Module<X>` into an `impl ModuleMut<X>`.
struct ToModuleMut;

/// `try_forward` → `try_forward_mut`, `forward` → `forward_mut`.
fn mut_method(ident: &Ident) -> Option<Ident> {
    (ident == "try_forward" || ident == "forward")
        .then(|| Ident::new(&format!("{ident}_mut"), ident.span()))
}

/// Replaces the first segment named `Module` in `path`, and every segment
/// before it, by `::static_nn::__private::dfdx::nn::ModuleMut` with the
/// same arguments; `qself`'s position follows. Returns whether it did.
fn rewrite_module_path(qself: Option<&mut QSelf>, path: &mut Path) -> bool {
    let limit = qself.as_ref().map_or(path.segments.len(), |q| q.position);
    let Some(at) = path
        .segments
        .iter()
        .take(limit)
        .position(|s| s.ident == "Module")
    else {
        return false;
    };
    let old = std::mem::take(&mut path.segments);
    let mut segments: Punctuated<PathSegment, syn::Token![::]> = Punctuated::new();
    let mut rest = old.into_iter().skip(at);
    let module = rest.next().expect("found above");
    let span = module.ident.span();
    for s in MODULE_MUT {
        segments.push(PathSegment::from(Ident::new(s, span)));
    }
    segments.push(PathSegment {
        ident: Ident::new("ModuleMut", span),
        arguments: module.arguments,
    });
    segments.extend(rest);
    path.segments = segments;
    path.leading_colon = Some(syn::Token![::](span));
    if let Some(q) = qself {
        q.position = q.position - (at + 1) + MODULE_MUT.len() + 1;
    }
    true
}

impl VisitMut for ToModuleMut {
    fn visit_item_impl_mut(&mut self, imp: &mut ItemImpl) {
        if let Some((_, path, _)) = &mut imp.trait_ {
            rewrite_module_path(None, path);
        }
        visit_mut::visit_item_impl_mut(self, imp);
    }

    fn visit_trait_bound_mut(&mut self, bound: &mut TraitBound) {
        rewrite_module_path(None, &mut bound.path);
        visit_mut::visit_trait_bound_mut(self, bound);
    }

    fn visit_type_path_mut(&mut self, ty: &mut TypePath) {
        if ty.qself.is_some() {
            rewrite_module_path(ty.qself.as_mut(), &mut ty.path);
        }
        visit_mut::visit_type_path_mut(self, ty);
    }

    fn visit_expr_path_mut(&mut self, expr: &mut ExprPath) {
        rewrite_module_path(expr.qself.as_mut(), &mut expr.path);
        visit_mut::visit_expr_path_mut(self, expr);
    }

    fn visit_impl_item_fn_mut(&mut self, f: &mut ImplItemFn) {
        if let Some(ident) = mut_method(&f.sig.ident) {
            f.sig.ident = ident;
        }
        if let Some(FnArg::Receiver(receiver)) = f.sig.inputs.first_mut() {
            if receiver.colon_token.is_none() && receiver.reference.is_some() {
                receiver.mutability = Some(syn::Token![mut](receiver.self_token.span));
            }
            if let Type::Reference(r) = &mut *receiver.ty {
                r.mutability = Some(syn::Token![mut](receiver.self_token.span));
            }
        }
        visit_mut::visit_impl_item_fn_mut(self, f);
    }

    fn visit_expr_method_call_mut(&mut self, call: &mut ExprMethodCall) {
        if let Some(ident) = mut_method(&call.method) {
            call.method = ident;
        }
        visit_mut::visit_expr_method_call_mut(self, call);
    }

    fn visit_expr_call_mut(&mut self, call: &mut ExprCall) {
        visit_mut::visit_expr_call_mut(self, call);
        // `Module::try_forward(&self.conv, x)`, `<C as Module<X>>::forward(..)`, `C::try_forward(..)`
        let Expr::Path(func) = &mut *call.func else {
            return;
        };
        if func.path.segments.len() < 2 && func.qself.is_none() {
            return; // a free function `forward(..)`, not a method path
        }
        let Some(last) = func.path.segments.last_mut() else {
            return;
        };
        let Some(ident) = mut_method(&last.ident) else {
            return;
        };
        last.ident = ident;
        if let Some(Expr::Reference(arg)) = call.args.first_mut() {
            arg.mutability = Some(syn::Token![mut](Span::call_site()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn twin(src: &str) -> String {
        let out = expand(TokenStream::new(), src.parse().expect("tokens")).expect("expands");
        let file: syn::File = syn::parse2(out).expect("two impls");
        // `X` is the impl's parameter: no `NoInputGrad` twin
        assert_eq!(file.items.len(), 2);
        let item = &file.items[1];
        quote!(#item).to_string().replace(' ', "")
    }

    const MUT: &str = "::static_nn::__private::dfdx::nn::ModuleMut";

    #[test]
    fn the_twin_is_module_mut_with_mutable_calls() {
        let src = "impl<X, C: Module<X>> Module<X> for Net<C>
            where <C as Module<X>>::Output: Clone, ReLU: Module<C::Output>
        {
            type Output = <C as Module<X>>::Output;
            type Error = C::Error;
            fn try_forward(&self, x: X) -> Result<Self::Output, Self::Error> {
                let y = self.conv.try_forward(x)?;
                let z = ReLU.forward(y.clone());
                let w = <C as Module<X>>::try_forward(&self.conv, x2);
                let v = C::forward(&self.conv, x3);
                Ok(y)
            }
        }";
        let out = twin(src);
        assert!(
            out.starts_with(&format!("impl<X,C:{MUT}<X>>{MUT}<X>forNet<C>")),
            "{out}"
        );
        assert!(
            out.contains(&format!("<Cas{MUT}<X>>::Output:Clone")),
            "{out}"
        );
        assert!(out.contains(&format!("ReLU:{MUT}<C::Output>")), "{out}");
        assert!(out.contains("fntry_forward_mut(&mutself,x:X)"), "{out}");
        assert!(out.contains("self.conv.try_forward_mut(x)"), "{out}");
        assert!(out.contains("ReLU.forward_mut(y.clone())"), "{out}");
        assert!(
            out.contains(&format!("<Cas{MUT}<X>>::try_forward_mut(&mutself.conv,x2)")),
            "{out}"
        );
        assert!(out.contains("C::forward_mut(&mutself.conv,x3)"), "{out}");
        assert!(!out.contains("try_forward("), "{out}");
    }

    #[test]
    fn qualified_module_paths_are_replaced_whole() {
        let out = twin(
            "impl<X, C: dfdx::nn::Module<X>> static_nn::prelude::Module<X> for Net<C> {
                type Output = C::Output; type Error = C::Error;
                fn try_forward(self: &Self, x: X) -> Result<C::Output, C::Error> { self.c.try_forward(x) }
            }",
        );
        assert!(
            out.starts_with(&format!("impl<X,C:{MUT}<X>>{MUT}<X>for")),
            "{out}"
        );
        assert!(out.contains("fntry_forward_mut(self:&mutSelf"), "{out}");
    }

    #[test]
    fn a_concrete_input_gets_a_no_input_grad_twin() {
        let src = "impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for Net {
            type Output = Tensor<S, f32, Cpu, T>;
            type Error = CpuError;
            fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
                self.relu.try_forward(x)
            }
        }";
        let out = expand(TokenStream::new(), src.parse().expect("tokens")).expect("expands");
        let file: syn::File = syn::parse2(out).expect("three impls");
        assert_eq!(file.items.len(), 3);
        let item = &file.items[2];
        let out = quote!(#item).to_string().replace(' ', "");
        let wrapped = "::static_nn::nn::NoInputGrad<Tensor<S,f32,Cpu,T>>";
        assert!(
            out.starts_with(&format!(
                "impl<S:Shape,T:Tape<f32,Cpu>>{MUT}<{wrapped}>forNet"
            )),
            "{out}"
        );
        assert!(
            out.contains(&format!(
                "<Selfas{MUT}<Tensor<S,f32,Cpu,T>>>::try_forward_mut(self,x.0)"
            )),
            "{out}"
        );
    }

    #[test]
    fn only_module_impls_are_accepted() {
        for (src, msg) in [
            ("impl Net { fn f(&self) {} }", "not an inherent"),
            (
                "impl Clone for Net { fn clone(&self) -> Self { Net } }",
                "impl Module<X> for ..",
            ),
            ("fn f() {}", "goes on an `impl Module<X>"),
        ] {
            let err = expand(TokenStream::new(), src.parse().unwrap()).unwrap_err();
            assert!(err.to_string().contains(msg), "{src}: {err}");
        }
        let err = expand(quote!(x), quote!(impl Module<X> for N {})).unwrap_err();
        assert!(err.to_string().contains("no arguments"));
    }
}
