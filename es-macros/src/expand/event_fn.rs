//! `#[event]` on a function outside an `#[aggregate]` impl block: only an error,
//! emitted beside the function so that its callers still compile.

use proc_macro2::TokenStream;
use quote::quote;

use crate::internals::ast::EventFn;

pub(crate) fn expand(model: EventFn) -> TokenStream {
    let EventFn { mut item } = model;
    // The body was written for an aggregate: its struct literals lack the field
    // that `#[aggregate]` adds, and would each raise an error about that field.
    *item.block = syn::parse_quote!({ ::core::unreachable!() });
    item.attrs.push(syn::parse_quote!(#[allow(unused)]));
    quote!(#item)
}
