//! Code generation from a checked model. Generated code names only absolute
//! paths through `::es_core::__private`, so users need no other dependency and
//! their own items (a type called `Result`, say) change nothing.

pub(crate) mod aggregate_impl;
pub(crate) mod aggregate_struct;
pub(crate) mod event_fn;
pub(crate) mod event_struct;
pub(crate) mod replication;

use proc_macro2::TokenStream;
use quote::quote;

use crate::internals::ast::{Derived, META_FIELD};

/// The hidden metadata field of an aggregate struct.
pub(crate) fn meta_field() -> syn::Ident {
    syn::Ident::new(META_FIELD, proc_macro2::Span::call_site())
}

/// The derives to add to a struct, skipping those the user already wrote.
pub(crate) fn missing_derives(derived: &Derived, clone_and_debug: bool) -> TokenStream {
    let mut derives = Vec::new();
    if clone_and_debug && !derived.clone {
        derives.push(quote!(::es_core::__private::Clone));
    }
    if clone_and_debug && !derived.debug {
        derives.push(quote!(::es_core::__private::Debug));
    }
    if !derived.serialize {
        derives.push(quote!(::es_core::__private::serde::Serialize));
    }
    if !derived.deserialize {
        derives.push(quote!(::es_core::__private::serde::Deserialize));
    }
    if derives.is_empty() {
        return TokenStream::new();
    }
    let serde_path = (!derived.serialize || !derived.deserialize)
        .then(|| quote!(#[serde(crate = "::es_core::__private::serde")]));
    quote! {
        #[derive(#(#derives),*)]
        #serde_path
    }
}
