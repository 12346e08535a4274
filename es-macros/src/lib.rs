#![warn(missing_docs, unreachable_pub)]
//! The `#[aggregate]`, `#[event]`, `#[replicating]` and `#[replicated]`
//! attribute macros of `es-core`. Use them through `es_core::prelude`; this
//! crate is not meant to be a direct dependency.
//!
//! Each macro parses its input into a checked model (`internals`), collecting
//! every mistake with its span, and only then generates code (`expand`).

mod expand;
mod internals;

use proc_macro::TokenStream;
use quote::quote;

use internals::ast::{AggregateImpl, AggregateStruct, EventFn, EventStruct};
use internals::attr::AggregateArgs;
use internals::ctxt::{Ctxt, to_compile_errors};
use internals::replication::{Replicated, Replicating};

/// Makes a struct and its `impl` block an event-sourced aggregate.
///
/// See the `es_core` crate documentation for the full guide.
#[proc_macro_attribute]
pub fn aggregate(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error().into(),
    };
    let cx = Ctxt::new();
    let output = match item {
        syn::Item::Struct(item) => {
            if !args.is_empty() {
                cx.error_spanned_by(
                    &args,
                    "#[aggregate] on a struct takes no arguments; put `name = \"...\"` on its \
                     impl block",
                );
            }
            let model = AggregateStruct::from_item(&cx, item);
            match cx.check() {
                Ok(()) => expand::aggregate_struct::expand(model),
                Err(error) if model.can_expand() => {
                    with_errors(&expand::aggregate_struct::expand(model), &error)
                }
                Err(error) => with_errors(&expand::aggregate_struct::rejected(&model.item), &error),
            }
        }
        syn::Item::Impl(item) => {
            let fallback = item.clone();
            let args = AggregateArgs::parse(&cx, args);
            let model = AggregateImpl::from_item(&cx, args, item);
            // With errors, what is valid is still expanded, so the user sees the
            // errors about their mistake and not a cascade of missing items.
            match (cx.check(), model) {
                (Ok(()), Some(model)) => expand::aggregate_impl::expand(model),
                (Err(error), Some(model)) => {
                    with_errors(&expand::aggregate_impl::expand(model), &error)
                }
                (Err(error), None) => with_errors(&strip_event_attrs(fallback), &error),
                // `impl<T> Dog<T>`: the generic struct's own #[aggregate] reports it.
                (Ok(()), None) => {
                    expand::aggregate_impl::generic_fallback(strip_event_attrs(fallback))
                }
            }
        }
        other => {
            cx.error_spanned_by(
                &other,
                "#[aggregate] goes on a struct and on its impl block",
            );
            let error = cx.check().err();
            with_errors(
                &other,
                &error.unwrap_or_else(|| syn::Error::new_spanned(&other, "unexpected item")),
            )
        }
    };
    output.into()
}

/// Declares an event struct, or, on a method of an `#[aggregate]` impl block,
/// makes the method trigger an event.
///
/// On a method, `#[event]` is read by `#[aggregate]`; used anywhere else on a
/// function it is an error.
#[proc_macro_attribute]
pub fn event(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error().into(),
    };
    let cx = Ctxt::new();
    let output = match item {
        syn::Item::Struct(item) => {
            if !args.is_empty() {
                cx.error_spanned_by(
                    &args,
                    "#[event] on a struct takes no arguments; its topic is set where an \
                     aggregate uses it: `#[event(Renamed, topic = \"...\")]`",
                );
            }
            let model = EventStruct::from_item(&cx, item);
            match cx.check() {
                Ok(()) => expand::event_struct::expand(model),
                Err(error) => with_errors(&model.item, &error),
            }
        }
        syn::Item::Fn(item) => {
            let model = EventFn::from_item(&cx, item, enclosing_impl());
            match cx.check() {
                // Another #[event] method of the same impl block reports the mistake.
                Ok(()) => expand::event_fn::expand(model),
                Err(error) => with_errors(&expand::event_fn::expand(model), &error),
            }
        }
        other => {
            cx.error_spanned_by(
                &other,
                "#[event] goes on a struct, or on a method of an `#[aggregate] impl` block",
            );
            let error = cx.check().err();
            with_errors(
                &other,
                &error.unwrap_or_else(|| syn::Error::new_spanned(&other, "unexpected item")),
            )
        }
    };
    output.into()
}

/// Makes an aggregate's changes replicated to other services: on the
/// aggregate's struct, above or below its `#[aggregate]`, written
/// `#[replicating("contract", exclude(field, ..), deleted_by("Event", ..))]`.
///
/// Implements `es_core::interface::replication::Replicating`, which is behind
/// es-core's `replication` feature: the generated code compiles only with that
/// feature on. `exclude` names fields of the struct left out of the records;
/// `deleted_by` names events as written in `#[event("...")]`, whose records
/// delete the entity. Both are optional, in any order.
///
/// See the `es_core` crate documentation for the full guide.
#[proc_macro_attribute]
pub fn replicating(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error().into(),
    };
    let cx = Ctxt::new();
    let model = Replicating::from_item(&cx, args.into(), item);
    let output = match cx.check() {
        Ok(()) => expand::replication::replicating(model),
        // What was valid is still expanded, so only the errors show.
        Err(error) => with_errors(&expand::replication::replicating(model), &error),
    };
    output.into()
}

/// Makes a struct the copy a replica keeps of another service's replicating
/// aggregate: `#[replicated("contract")]`, beside `#[derive(serde::Deserialize)]`.
///
/// Implements `es_core::interface::replication::Replicated`, which is behind
/// es-core's `replication` feature: the generated code compiles only with that
/// feature on.
///
/// See the `es_core` crate documentation for the full guide.
#[proc_macro_attribute]
pub fn replicated(args: TokenStream, input: TokenStream) -> TokenStream {
    let item = match syn::parse::<syn::Item>(input) {
        Ok(item) => item,
        Err(error) => return error.to_compile_error().into(),
    };
    let cx = Ctxt::new();
    let model = Replicated::from_item(&cx, args.into(), item);
    let output = match cx.check() {
        Ok(()) => expand::replication::replicated(model),
        Err(error) => with_errors(&expand::replication::replicated(model), &error),
    };
    output.into()
}

/// The impl block around the `#[event]` attribute being expanded, read from its
/// source file; `None` where there is no such file or it cannot be read.
fn enclosing_impl() -> Option<internals::source::EnclosingImpl> {
    let span = proc_macro::Span::call_site();
    let text = std::fs::read_to_string(span.local_file()?).ok()?;
    internals::source::enclosing_impl(&text, span.line())
}

/// The item as written, with the errors beside it, so the compiler reports
/// those errors and not a cascade of missing items.
fn with_errors(item: &impl quote::ToTokens, error: &syn::Error) -> proc_macro2::TokenStream {
    let errors = to_compile_errors(error);
    quote!(#item #errors)
}

/// An impl block whose `#[event]` attributes are removed, to emit as it was
/// beside the errors without each method raising an error of its own.
fn strip_event_attrs(mut item: syn::ItemImpl) -> syn::ItemImpl {
    for impl_item in &mut item.items {
        if let syn::ImplItem::Fn(method) = impl_item {
            method.attrs.retain(|attr| !attr.path().is_ident("event"));
        }
    }
    item
}
