//! `#[aggregate] struct Dog { .. }`: adds the metadata field and the serde derives
//! that snapshots need.

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse_quote;

use super::missing_derives;
use crate::internals::ast::AggregateStruct;

pub(crate) fn expand(model: AggregateStruct) -> TokenStream {
    let AggregateStruct { mut item, derived } = model;
    let ident = item.ident.clone();
    if let syn::Fields::Named(fields) = &mut item.fields {
        fields.named.push(parse_quote! {
            #[doc(hidden)]
            #[serde(skip)]
            __es_meta: ::es_core::__private::MetaOf<#ident>
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
                &self.__es_meta
            }
            fn meta_mut(&mut self) -> &mut ::es_core::__private::MetaOf<Self>
            where
                Self: ::es_core::__private::Aggregate,
            {
                &mut self.__es_meta
            }
        }
    }
}
