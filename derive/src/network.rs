//! `#[derive(Network)]`.
use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Error, Fields, GenericParam, Ident, Result, Token, Type};

/// The parsed struct: its generic parameters and fields.
struct Model<'a> {
    name: &'a Ident,
    /// The generic parameters in declaration order.
    params: Vec<Param<'a>>,
    /// Each field and the index (in `params`) of its type parameter.
    fields: Vec<(&'a Ident, usize)>,
}

enum Param<'a> {
    Const { ident: &'a Ident, ty: &'a Type },
    Type(&'a Ident),
}

/// How the struct's forward is made.
enum Mode {
    /// The user writes `Module` (and `#[forward]`).
    Custom,
    /// The fields, by index, run in this order.
    Sequential(Vec<usize>),
}

pub(crate) fn expand(input: &DeriveInput) -> Result<TokenStream> {
    let model = Model::parse(input)?;
    let (mode, image) = parse_mode(input, &model)?;
    let mut out = TokenStream::new();
    out.extend(model.build_on_device());
    if let Some(image) = image {
        out.extend(model.image_input(&image));
    }
    out.extend(model.tensor_collection());
    match &mode {
        Mode::Custom => out.extend(model.infer_custom()),
        Mode::Sequential(order) => {
            out.extend(model.infer_sequential(order));
            out.extend(model.module_sequential(order, false));
            out.extend(model.module_sequential(order, true));
        }
    }
    Ok(out)
}

/// The field's name as a tensor-name segment (`r#type` → `type`).
fn field_name(field: &Ident) -> String {
    field.unraw().to_string()
}

impl<'a> Model<'a> {
    fn parse(input: &'a DeriveInput) -> Result<Self> {
        let name = &input.ident;
        let named = match &input.data {
            Data::Struct(s) => match &s.fields {
                Fields::Named(named) if !named.named.is_empty() => &named.named,
                _ => {
                    return Err(Error::new(
                        name.span(),
                        "#[derive(Network)] needs a struct with named fields, one per layer \
                         (`struct Net<A, B> { conv: A, fc: B }`)",
                    ))
                }
            },
            _ => {
                return Err(Error::new(
                    name.span(),
                    "#[derive(Network)] works on structs only",
                ))
            }
        };
        let mut params = Vec::new();
        for param in &input.generics.params {
            match param {
                GenericParam::Lifetime(l) => {
                    return Err(Error::new(
                        l.span(),
                        "#[derive(Network)] does not support lifetime parameters",
                    ))
                }
                GenericParam::Type(t) => {
                    if !t.bounds.is_empty() {
                        return Err(Error::new(
                            t.bounds.span(),
                            format!(
                                "#[derive(Network)] needs type parameters without bounds: \
                                 `{0}` holds a layer type and, once built, its module, so \
                                 remove the bounds on `{0}`",
                                t.ident
                            ),
                        ));
                    }
                    params.push(Param::Type(&t.ident));
                }
                GenericParam::Const(c) => params.push(Param::Const {
                    ident: &c.ident,
                    ty: &c.ty,
                }),
            }
        }
        if let Some(w) = &input.generics.where_clause {
            if !w.predicates.is_empty() {
                return Err(Error::new(
                    w.span(),
                    "#[derive(Network)] does not support `where` clauses on the struct: \
                     the parameters hold layer types and, once built, their modules",
                ));
            }
        }
        let mut fields = Vec::new();
        for field in named {
            let ident = field.ident.as_ref().expect("named field");
            let index = type_param_of(&field.ty, &params).ok_or_else(|| {
                let ty = type_text(&field.ty);
                Error::new(
                    field.ty.span(),
                    format!(
                        "#[derive(Network)]: field `{ident}` has type `{ty}`, but every field's \
                         type must be one of the struct's type parameters (the struct holds \
                         layer types, and once built their modules); add a parameter and use \
                         it: `struct {name}<.., T = {ty}> {{ {ident}: T, .. }}`"
                    ),
                )
            })?;
            fields.push((ident, index));
        }
        Ok(Self {
            name,
            params,
            fields,
        })
    }

    /// The type parameters, in declaration order.
    fn type_params(&self) -> impl Iterator<Item = &'a Ident> + '_ {
        self.params.iter().filter_map(|p| match p {
            Param::Type(t) => Some(*t),
            Param::Const { .. } => None,
        })
    }

    /// The struct's generic parameters for an `impl<..>`, without defaults.
    fn impl_params(&self) -> TokenStream {
        let params = self.params.iter().map(|p| match p {
            Param::Const { ident, ty } => quote!(const #ident: #ty),
            Param::Type(t) => quote!(#t),
        });
        quote!(#(#params,)*)
    }

    /// The struct's type with type parameter `i` replaced by `subst(i, T)`.
    fn ty_with(&self, mut subst: impl FnMut(usize, &Ident) -> TokenStream) -> TokenStream {
        let name = self.name;
        let args = self.params.iter().enumerate().map(|(i, p)| match p {
            Param::Const { ident, .. } => quote!(#ident),
            Param::Type(t) => subst(i, t),
        });
        quote!(#name<#(#args),*>)
    }

    /// The struct's own type, `Name<IN, OUT, C1, ..>`.
    fn self_ty(&self) -> TokenStream {
        self.ty_with(|_, t| quote!(#t))
    }

    fn type_param(&self, index: usize) -> &'a Ident {
        match &self.params[index] {
            Param::Type(t) => t,
            Param::Const { .. } => unreachable!("fields have type parameters"),
        }
    }

    fn build_on_device(&self) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        let tys = self.type_params();
        let built =
            self.ty_with(|_, t| quote!(<#t as ::static_nn::nn::BuildOnDevice<__D, __E>>::Built));
        quote! {
            impl<
                __D: ::static_nn::__private::dfdx::prelude::Device<__E>,
                __E: ::static_nn::__private::dfdx::prelude::Dtype,
                #params
            > ::static_nn::nn::BuildOnDevice<__D, __E> for #self_ty
            where
                #(#tys: ::static_nn::nn::BuildOnDevice<__D, __E>,)*
            {
                type Built = #built;
            }
        }
    }

    /// `impl ImageInput` from `#[network(input = (C, H, W))]`, for the
    /// struct with any parameters (so for its built form too).
    fn image_input(&self, (c, h, w): &(syn::Expr, syn::Expr, syn::Expr)) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        quote! {
            impl<#params> ::static_nn::shapes::ImageInput for #self_ty {
                type Image = ::static_nn::__private::dfdx::shapes::Rank3<{ #c }, { #h }, { #w }>;
            }
        }
    }

    fn tensor_collection(&self) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        let tys = self.type_params();
        let tc = quote!(::static_nn::__private::dfdx::nn::TensorCollection);
        let to = self.ty_with(|_, t| quote!(<#t as #tc<__E, __D>>::To<__E2, __D2>));
        // `(f0, (f1, (f2,)))`: dfdx implements field lists for tuples of at
        // most 6, and nested ones to any depth.
        let mut visits = TokenStream::new();
        let mut pattern = TokenStream::new();
        for (i, (field, _)) in self.fields.iter().enumerate().rev() {
            let key = field_name(field);
            let visit = quote! {
                <Self as #tc<__E, __D>>::module(#key, |s| &s.#field, |s| &mut s.#field)
            };
            if i + 1 == self.fields.len() {
                visits = quote!((#visit,));
                pattern = quote!((#field,));
            } else {
                visits = quote!((#visit, #visits));
                pattern = quote!((#field, #pattern));
            }
        }
        let name = self.name;
        let field_idents = self.fields.iter().map(|(f, _)| f);
        quote! {
            impl<
                __E: ::static_nn::__private::dfdx::prelude::Dtype,
                __D: ::static_nn::__private::dfdx::prelude::Device<__E>,
                #params
            > #tc<__E, __D> for #self_ty
            where
                #(#tys: #tc<__E, __D>,)*
            {
                type To<
                    __E2: ::static_nn::__private::dfdx::prelude::Dtype,
                    __D2: ::static_nn::__private::dfdx::prelude::Device<__E2>,
                > = #to;

                fn iter_tensors<__V: ::static_nn::__private::dfdx::nn::ModuleVisitor<Self, __E, __D>>(
                    visitor: &mut __V,
                ) -> ::core::result::Result<
                    ::core::option::Option<Self::To<__V::E2, __V::D2>>,
                    __V::Err,
                > {
                    <__V as ::static_nn::__private::dfdx::nn::ModuleVisitor<Self, __E, __D>>::visit_fields(
                        visitor,
                        #visits,
                        |#pattern| #name { #(#field_idents),* },
                    )
                }
            }
        }
    }

    /// `InferShape` when the user writes the forward: the built module's
    /// output on a CPU sample, one summary row.
    fn infer_custom(&self) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        let p = quote!(::static_nn::__private);
        let built = quote!(<#self_ty as ::static_nn::nn::BuildOnDevice<#p::dfdx::prelude::Cpu, f32>>::Built);
        // a batch of one: hand-written forwards are usually for batches only
        let sample = quote!(#p::dfdx::prelude::Tensor<<__In as #p::Batched>::Of, f32, #p::dfdx::prelude::Cpu>);
        let out = quote!(#p::BatchedModuleOut<#built, __In>);
        let desc = self.name.to_string();
        quote! {
            impl<__In: #p::dfdx::prelude::Shape + #p::Batched, #params> ::static_nn::nn::InferShape<__In> for #self_ty
            where
                #self_ty: ::static_nn::nn::BuildOnDevice<#p::dfdx::prelude::Cpu, f32>,
                #built: #p::dfdx::nn::Module<#sample>,
                <#built as #p::dfdx::nn::Module<#sample>>::Output: #p::dfdx::prelude::HasShape,
                <<#built as #p::dfdx::nn::Module<#sample>>::Output as #p::dfdx::prelude::HasShape>::Shape: #p::Unbatched,
                #out: #p::dfdx::prelude::ConstShape,
            {
                type Concrete = Self;
                type Out = #out;

                fn describe(
                    prefix: &str,
                    rows: &mut ::std::vec::Vec<::static_nn::nn::LayerRow>,
                ) {
                    #p::push::<#out>(
                        prefix,
                        ::std::string::String::from(#desc),
                        #p::trainable_params::<#built>(),
                        rows,
                    );
                }
            }
        }
    }

    /// `InferShape` for the fields chained in `order`.
    fn infer_sequential(&self, order: &[usize]) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        let p = quote!(::static_nn::__private);
        let infer = quote!(::static_nn::nn::InferShape);
        let mut shape = quote!(__In);
        let mut bounds = Vec::new();
        let mut describe = Vec::new();
        let mut concrete: Vec<Option<TokenStream>> = vec![None; self.params.len()];
        for &f in order {
            let (field, param) = self.fields[f];
            let t = self.type_param(param);
            let key = field_name(field);
            bounds.push(quote!(#t: #infer<#shape>));
            describe.push(quote! {
                <#t as #infer<#shape>>::describe(&#p::join_name(prefix, #key), rows);
            });
            concrete[param].get_or_insert_with(|| quote!(<#t as #infer<#shape>>::Concrete));
            shape = quote!(<#t as #infer<#shape>>::Out);
        }
        let concrete_ty = self.ty_with(|i, t| concrete[i].clone().unwrap_or_else(|| quote!(#t)));
        quote! {
            impl<__In: #p::dfdx::prelude::Shape, #params> #infer<__In> for #self_ty
            where
                #(#bounds,)*
            {
                type Concrete = #concrete_ty;
                type Out = #shape;

                fn describe(
                    prefix: &str,
                    rows: &mut ::std::vec::Vec<::static_nn::nn::LayerRow>,
                ) {
                    #(#describe)*
                }
            }
        }
    }

    /// dfdx's `Module<X>` (or `ModuleMut<X>`) for the fields chained in `order`.
    fn module_sequential(&self, order: &[usize], mutable: bool) -> TokenStream {
        let params = self.impl_params();
        let self_ty = self.self_ty();
        let span = Span::call_site();
        let (module, method, receiver, borrow) = if mutable {
            (
                quote!(::static_nn::__private::dfdx::nn::ModuleMut),
                Ident::new("try_forward_mut", span),
                quote!(&mut self),
                quote!(&mut),
            )
        } else {
            (
                quote!(::static_nn::__private::dfdx::nn::Module),
                Ident::new("try_forward", span),
                quote!(&self),
                quote!(&),
            )
        };
        let mut input = quote!(__X);
        let mut error = None;
        let mut bounds = Vec::new();
        let mut steps = Vec::new();
        for &f in order {
            let (field, param) = self.fields[f];
            let t = self.type_param(param);
            let this = quote!(<#t as #module<#input>>);
            match &error {
                None => {
                    bounds.push(quote!(#t: #module<#input>));
                    error = Some(quote!(#this::Error));
                }
                Some(e) => bounds.push(quote!(#t: #module<#input, Error = #e>)),
            }
            steps.push(quote_spanned! {span=>
                let x = #this::#method(#borrow self.#field, x)?;
            });
            input = quote!(#this::Output);
        }
        let error = error.expect("at least one field");
        quote! {
            impl<__X, #params> #module<__X> for #self_ty
            where
                #(#bounds,)*
            {
                type Output = #input;
                type Error = #error;

                fn #method(#receiver, x: __X) -> ::core::result::Result<Self::Output, Self::Error> {
                    #(#steps)*
                    ::core::result::Result::Ok(x)
                }
            }
        }
    }
}

/// `ty` as written in source, near enough: `Linear<784, 10>`, not the
/// token stream's `Linear < 784 , 10 >`.
fn type_text(ty: &Type) -> String {
    let mut text = ty.to_token_stream().to_string();
    for (from, to) in [
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        (" ,", ","),
        (" :: ", "::"),
        (":: ", "::"),
        ("& ", "&"),
    ] {
        text = text.replace(from, to);
    }
    text
}

/// The index of the type parameter that `ty` is, if it is a bare one.
fn type_param_of(ty: &Type, params: &[Param]) -> Option<usize> {
    let Type::Path(path) = ty else { return None };
    if path.qself.is_some() {
        return None;
    }
    let ident = path.path.get_ident()?;
    params
        .iter()
        .position(|p| matches!(p, Param::Type(t) if *t == ident))
}

/// The three expressions of `input = (C, H, W)`.
type ImageDims = (syn::Expr, syn::Expr, syn::Expr);

/// Reads `#[network(..)]` on the struct and rejects it on fields: the
/// forward's mode and the declared input image, if any.
fn parse_mode(input: &DeriveInput, model: &Model) -> Result<(Mode, Option<ImageDims>)> {
    if let Data::Struct(s) = &input.data {
        for field in &s.fields {
            if let Some(attr) = field.attrs.iter().find(|a| a.path().is_ident("network")) {
                return Err(Error::new(
                    attr.span(),
                    "#[network(..)] goes on the struct, not on a field",
                ));
            }
        }
    }
    let mut mode = Mode::Custom;
    let mut image = None;
    let mut seen = false;
    for attr in input.attrs.iter().filter(|a| a.path().is_ident("network")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("input") {
                if image.is_some() {
                    return Err(meta.error("`input` is given twice"));
                }
                let value = meta.value()?;
                let content;
                syn::parenthesized!(content in value);
                let dims = Punctuated::<syn::Expr, Token![,]>::parse_terminated(&content)?;
                let dims: Vec<syn::Expr> = dims.into_iter().collect();
                let [c, h, w] = <[syn::Expr; 3]>::try_from(dims).map_err(|_| {
                    meta.error("`input` takes the image as `(channels, height, width)`")
                })?;
                image = Some((c, h, w));
                return Ok(());
            }
            if !meta.path.is_ident("sequential") {
                return Err(meta.error(
                    "unknown #[network] option: expected `sequential`, `sequential = [field, ..]` \
                     or `input = (channels, height, width)`",
                ));
            }
            if seen {
                return Err(meta.error("`sequential` is given twice"));
            }
            seen = true;
            if meta.input.peek(Token![=]) {
                let value = meta.value()?;
                let content;
                syn::bracketed!(content in value);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                mode = Mode::Sequential(sequential_order(&names, model)?);
            } else {
                mode = Mode::Sequential((0..model.fields.len()).collect());
            }
            Ok(())
        })?;
    }
    Ok((mode, image))
}

/// The field indices of an explicit `sequential = [a, b, a, c]` list.
fn sequential_order(names: &Punctuated<Ident, Token![,]>, model: &Model) -> Result<Vec<usize>> {
    let mut order = Vec::new();
    for name in names {
        let index = model
            .fields
            .iter()
            .position(|(f, _)| f.unraw() == name.unraw())
            .ok_or_else(|| {
                Error::new(
                    name.span(),
                    format!(
                        "`sequential = [..]` names `{name}`, which is not a field of `{}`",
                        model.name
                    ),
                )
            })?;
        order.push(index);
    }
    if order.is_empty() {
        return Err(Error::new(
            names.span(),
            "`sequential = [..]` needs the fields in the order they run",
        ));
    }
    for (i, (field, _)) in model.fields.iter().enumerate() {
        if !order.contains(&i) {
            return Err(Error::new(
                field.span(),
                format!(
                    "field `{field}` is not in the `sequential = [..]` list: every field must run \
                     at least once"
                ),
            ));
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand_str(src: &str) -> std::result::Result<String, String> {
        let input: DeriveInput = syn::parse_str(src).expect("valid struct");
        expand(&input)
            .map(|t| t.to_string().replace(' ', ""))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_concrete_field_type_is_refused_with_the_fix() {
        let err = expand_str("struct Net<A> { conv: A, fc: Linear<4, 2> }").unwrap_err();
        assert!(err.contains("field `fc` has type `Linear<4, 2>`"), "{err}");
        assert!(
            err.contains("struct Net<.., T = Linear<4, 2>> { fc: T, .. }"),
            "{err}"
        );
        let err =
            expand_str("struct Net<A> { a: A, b: ::dfdx::Tensor<(A, B), f32, Cpu> }").unwrap_err();
        assert!(err.contains("`::dfdx::Tensor<(A, B), f32, Cpu>`"), "{err}");
    }

    #[test]
    fn unsupported_shapes_of_struct_are_refused() {
        for (src, msg) in [
            ("struct Net(A);", "named fields"),
            ("struct Net<A> { a: A, b: Vec<A> }", "field `b`"),
            ("struct Net<A: Clone> { a: A }", "without bounds"),
            ("struct Net<A> where A: Clone { a: A }", "`where` clauses"),
            ("struct Net<'a, A> { a: &'a A }", "lifetime"),
            ("enum Net { A }", "structs only"),
            (
                "#[network(chained)] struct Net<A> { a: A }",
                "unknown #[network] option",
            ),
            (
                "#[network(sequential = [a, c])] struct Net<A> { a: A }",
                "`c`, which is not a field",
            ),
            (
                "#[network(sequential = [a])] struct Net<A, B> { a: A, b: B }",
                "field `b` is not in",
            ),
            (
                "struct Net<A> { #[network(sequential)] a: A }",
                "not on a field",
            ),
        ] {
            let err = expand_str(src).unwrap_err();
            assert!(err.contains(msg), "{src}: {err}");
        }
    }

    #[test]
    fn built_type_replaces_each_type_parameter() {
        let out = expand_str(
            "struct Block<const IN: usize, S = Identity, C = Conv2D<IN, 8, 3>> { conv: C, shortcut: S }",
        )
        .unwrap();
        let built = "typeBuilt=Block<IN,<Sas::static_nn::nn::BuildOnDevice<__D,__E>>::Built,\
                     <Cas::static_nn::nn::BuildOnDevice<__D,__E>>::Built>";
        assert!(out.contains(built), "{out}");
        // tensors are named after the fields, in field order, nested in pairs
        assert!(out.contains("module(\"conv\""), "{out}");
        assert!(
            out.contains("|(conv,(shortcut,))|Block{conv,shortcut}"),
            "{out}"
        );
        // a custom forward: one summary row, no Module impl
        assert!(out.contains("typeConcrete=Self"), "{out}");
        assert!(!out.contains("fntry_forward"), "{out}");
    }

    #[test]
    fn sequential_chains_fields_and_writes_both_forwards() {
        let out = expand_str("#[network(sequential = [a, b, a])] struct Net<A, B> { a: A, b: B }")
            .unwrap();
        assert!(out.contains("fntry_forward(&self"), "{out}");
        assert!(out.contains("fntry_forward_mut(&mutself"), "{out}");
        // `a` runs twice: its concrete type comes from its first use
        assert!(
            out.contains("typeConcrete=Net<<Aas::static_nn::nn::InferShape<__In>>::Concrete,"),
            "{out}"
        );
        assert_eq!(out.matches("join_name(prefix,\"a\")").count(), 2, "{out}");
    }

    #[test]
    fn raw_field_names_are_unraw_in_tensor_names() {
        let out = expand_str("struct Net<A> { r#type: A }").unwrap();
        assert!(out.contains("module(\"type\""), "{out}");
    }
}
