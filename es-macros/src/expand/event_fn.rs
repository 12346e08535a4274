//! `#[event]` on a function outside an `#[aggregate]` impl block: only an error,
//! emitted beside the function so that its callers still compile.

use proc_macro2::TokenStream;
use quote::quote;

use crate::internals::ast::EventFn;

pub(crate) fn expand(model: EventFn) -> TokenStream {
    let EventFn { mut item, stub_for } = model;
    let stubs = stub_for.map(|self_ident| stub_impls(&self_ident));
    // The body was written for an aggregate: its struct literals lack the field
    // that `#[aggregate]` adds, and would each raise an error about that field.
    *item.block = syn::parse_quote!({
        #stubs
        ::core::unreachable!()
    });
    item.attrs.push(syn::parse_quote!(#[allow(unused)]));
    quote!(#item)
}

/// `Aggregate` and `Save` for a type whose impl block lacks `#[aggregate]`, so
/// that its struct's `#[aggregate]` and every use of it as an aggregate compile,
/// and the one error about the impl block is all the user sees. They sit in the
/// method's body because the attribute's output is an item of the impl block.
fn stub_impls(self_ident: &syn::Ident) -> TokenStream {
    let name = self_ident.to_string();
    let snapshot_topic = format!("{name}.Snapshot");
    quote! {
        #[allow(non_local_definitions)]
        impl ::es_core::__private::Aggregate for #self_ident {
            type Event = ::es_core::__private::NoEvents;
            const NAME: &'static str = #name;
            const SNAPSHOT_TOPIC: &'static str = #snapshot_topic;

            fn replay_creation(
                _: &::es_core::__private::OriginatorId,
                payload: ::es_core::__private::NoEvents,
            ) -> ::es_core::__private::Result<Self, ::es_core::__private::NoEvents> {
                ::es_core::__private::Result::Err(payload)
            }

            fn replay_event(
                &mut self,
                payload: ::es_core::__private::NoEvents,
            ) -> ::es_core::__private::Result<(), ::es_core::__private::NoEvents> {
                ::es_core::__private::Result::Err(payload)
            }
        }

        #[allow(non_local_definitions)]
        impl ::es_core::__private::Save for #self_ident {
            fn for_each_aggregate(
                &mut self,
                visit: &mut dyn ::core::ops::FnMut(&mut dyn ::es_core::__private::Unsaved),
            ) {
                visit(self);
            }
        }
    }
}
