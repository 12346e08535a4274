//! `#[event] struct Renamed { .. }`: an event payload shared by methods or aggregates.

use proc_macro2::TokenStream;
use quote::quote;

use super::missing_derives;
use crate::internals::ast::EventStruct;

pub(crate) fn expand(model: EventStruct) -> TokenStream {
    let EventStruct { item, derived } = model;
    let ident = &item.ident;
    let derives = missing_derives(&derived, true);
    quote! {
        #derives
        #item

        impl ::es_core::__private::EventStruct for #ident {}
    }
}
