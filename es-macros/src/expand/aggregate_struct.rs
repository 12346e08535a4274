//! `#[aggregate] struct Dog { .. }`: adds the metadata field and the serde derives
//! that snapshots need.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse_quote;

use super::{meta_field, missing_derives};
use crate::internals::ast::AggregateStruct;

pub(crate) fn expand(model: AggregateStruct) -> TokenStream {
    let AggregateStruct { mut item, derived } = model;
    let ident = item.ident.clone();
    let meta = meta_field();
    if let syn::Fields::Named(fields) = &mut item.fields {
        fields.named.push(parse_quote! {
            #[doc(hidden)]
            #[serde(skip)]
            #meta: ::es_core::__private::MetaOf<#ident>
        });
    }
    let derives = missing_derives(&derived, false);
    quote! {
        #derives
        #item

        impl ::es_core::__private::AggregateStruct for #ident {
            fn meta(&self) -> &::es_core::__private::MetaOf<Self>
            where
                Self: ::es_core::__private::Aggregate,
            {
                &self.#meta
            }
            fn meta_mut(&mut self) -> &mut ::es_core::__private::MetaOf<Self>
            where
                Self: ::es_core::__private::Aggregate,
            {
                &mut self.#meta
            }
        }
    }
}

/// A struct whose `#[aggregate]` was refused, as written, marked so that its
/// generic impl block (which reports nothing of its own) can tell it was.
pub(crate) fn rejected(item: &syn::ItemStruct) -> TokenStream {
    let ident = &item.ident;
    let (impl_generics, ty_generics, where_clause) = item.generics.split_for_impl();
    quote! {
        #item
        impl #impl_generics ::es_core::__private::RejectedAggregate
            for #ident #ty_generics #where_clause {}
    }
}
