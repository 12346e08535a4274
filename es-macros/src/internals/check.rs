//! Every check on the macros' input, kept apart from parsing as serde_derive
//! keeps its own: each reports one error, on the user's code, that says what to
//! do instead.

use std::collections::HashMap;

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ReturnType, Type};

use super::ast::{EventMethod, META_FIELD, Role, reserved_field, returns_self};
use super::ctxt::Ctxt;

/// The two shapes of an #[event] method, appended to every error about a shape.
const SHAPES: &str = "an #[event] method is either `fn name(fields..) -> Self` (creates the \
                      aggregate) or `fn name(&mut self, fields..)` (changes it)";

/// A creation event (no `self`) builds the aggregate, so it returns it.
pub(crate) fn creation_returns_self(cx: &Ctxt, sig: &syn::Signature, self_ident: &Ident) {
    if returns_self(&sig.output, self_ident) {
        return;
    }
    let span: &dyn ToTokens = match &sig.output {
        ReturnType::Default => sig,
        ReturnType::Type(_, ty) => ty,
    };
    cx.error_spanned_by(
        span.to_token_stream(),
        format!(
            "a creation event method must return `Self`: its body builds the aggregate from \
             the event's fields; {SHAPES}"
        ),
    );
}

/// `fn register(&self, ..) -> Self`: returning `Self` makes it a creation event,
/// and there is no aggregate yet to take as `self`.
pub(crate) fn creation_takes_no_self(cx: &Ctxt, receiver: &syn::Receiver) {
    let written = if receiver.mutability.is_some() {
        "&mut self"
    } else {
        "&self"
    };
    cx.error_spanned_by(
        receiver,
        format!(
            "a creation event builds the aggregate, so there is no aggregate yet to take: \
             remove `{written}` from the parameters (`fn name(fields..) -> Self`)"
        ),
    );
}

/// An event on an existing aggregate takes `&mut self` and returns nothing.
pub(crate) fn mutation_shape(cx: &Ctxt, receiver: &syn::Receiver, output: &ReturnType) {
    let by_ref = receiver.reference.is_some() && receiver.colon_token.is_none();
    if by_ref && receiver.mutability.is_none() {
        cx.error_spanned_by(
            receiver,
            "an #[event] method changes the aggregate, so it takes `&mut self`; \
             a method that only reads the aggregate is a plain method: remove its #[event]",
        );
    } else if !by_ref {
        // One error for the whole shape: `fn f(self) -> Self` is one mistake,
        // not a wrong receiver and a wrong return type.
        cx.error_spanned_by(
            receiver,
            format!(
                "an #[event] method that changes the aggregate takes `&mut self` and returns \
                 nothing; {SHAPES}"
            ),
        );
    } else if let ReturnType::Type(_, ty) = output
        && !matches!(&**ty, Type::Tuple(t) if t.elems.is_empty())
    {
        cx.error_spanned_by(
            ty,
            "an #[event] method that changes the aggregate returns nothing: its body applies \
             the event, also when it is replayed, so it cannot fail or answer; validate and \
             return values in a plain method that then calls this one",
        );
    }
}

/// The id is chosen when the aggregate is created, and never again.
pub(crate) fn no_id_on_mutation(cx: &Ctxt, id: &syn::Expr) {
    cx.error_spanned_by(
        id,
        "`id = ...` is for creation events only: the id is fixed once the aggregate exists",
    );
}

/// An aggregate made by `Default` was never created: it has no id and its first
/// event would not be a creation event, so no `get` could rebuild it.
pub(crate) fn no_default_aggregate(cx: &Ctxt, default: &impl ToTokens) {
    cx.error_spanned_by(
        default,
        "an aggregate cannot derive `Default`: a default value was never created, so it has \
         no id and its history could not be replayed; create it with its creation event, \
         the #[event] method that returns `Self`",
    );
}

/// `impl<T> Dog { .. }`: events are decoded without knowing type parameters.
pub(crate) fn impl_not_generic(cx: &Ctxt, generics: &syn::Generics) {
    if generics.lt_token.is_some() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "an aggregate cannot be generic: its events are stored under fixed topics and \
             decoded without knowing type parameters",
        );
    }
}

/// Whether the impl block's type is written with arguments, as `Dog<T>`: only a
/// generic struct takes them.
pub(crate) fn has_type_arguments(self_ty: &Type) -> bool {
    matches!(
        self_ty,
        Type::Path(path) if path.path.segments.iter().any(|segment| !segment.arguments.is_none())
    )
}

/// `struct Dog<T>`: events and snapshots are decoded without type parameters.
pub(crate) fn struct_not_generic(cx: &Ctxt, generics: &syn::Generics) {
    if generics.lt_token.is_some() || generics.where_clause.is_some() {
        cx.error_spanned_by(
            generics,
            "an aggregate cannot be generic: its events are stored under fixed topics and \
             decoded without knowing type parameters; use concrete field types",
        );
    }
}

/// The metadata field needs named fields beside it, and its name free.
pub(crate) fn named_fields(cx: &Ctxt, item: &syn::ItemStruct) {
    match &item.fields {
        syn::Fields::Named(fields) => {
            if let Some(field) = reserved_field(fields) {
                cx.error_spanned_by(
                    field,
                    format!(
                        "the field name `{META_FIELD}` is reserved for the aggregate's metadata"
                    ),
                );
            }
        }
        _ => cx.error_spanned_by(
            &item.ident,
            "#[aggregate] needs a struct with named fields, such as `struct Dog { name: String }`",
        ),
    }
}

pub(crate) fn not_trait_impl(cx: &Ctxt, trait_path: &syn::Path) {
    cx.error_spanned_by(
        trait_path,
        "#[aggregate] goes on the inherent impl block (`impl Dog { .. }`), not on a trait impl",
    );
}

pub(crate) fn plain_self_type(cx: &Ctxt, self_ty: &Type) {
    cx.error_spanned_by(
        self_ty,
        "#[aggregate] expects `impl Name { .. }` with the struct's plain name",
    );
}

pub(crate) fn one_event_attr(cx: &Ctxt, again: &syn::Attribute) {
    cx.error_spanned_by(
        again,
        "a method can trigger only one event: remove this second #[event]",
    );
}

/// Keeps the first event of each name and topic; a later one is reported and
/// kept as a plain method.
pub(crate) fn unique_events(
    cx: &Ctxt,
    events: Vec<EventMethod>,
    other_items: &mut Vec<ImplItem>,
) -> Vec<EventMethod> {
    let mut by_variant: HashMap<String, Ident> = HashMap::new();
    let mut by_topic: HashMap<String, Ident> = HashMap::new();
    let mut unique = Vec::with_capacity(events.len());
    for event in events {
        let method = event.method.sig.ident.clone();
        let read_as = || std::iter::once(&event.topic).chain(&event.aliases);
        if let Some(first) = by_variant.get(&event.variant.to_string()) {
            cx.error_spanned_by(
                &event.variant,
                format!(
                    "duplicate event name `{}`: method `{first}` already triggers it; give each \
                     event its own name",
                    event.variant
                ),
            );
        } else if let Some((topic, first)) =
            read_as().find_map(|topic| by_topic.get(topic).map(|first| (topic, first)))
        {
            cx.error_spanned_by(
                &event.variant,
                format!(
                    "duplicate topic {topic:?}: method `{first}` is already stored or read under \
                     it; give each event its own topic"
                ),
            );
        } else {
            by_variant.insert(event.variant.to_string(), method.clone());
            for topic in read_as() {
                by_topic.insert(topic.clone(), method.clone());
            }
            unique.push(event);
            continue;
        }
        other_items.push(ImplItem::Fn(event.method));
    }
    unique
}

pub(crate) fn has_creation_event(
    cx: &Ctxt,
    self_ty: &Type,
    self_ident: &Ident,
    events: &[EventMethod],
) {
    if events
        .iter()
        .any(|event| matches!(event.role, Role::Creation { .. }))
    {
        return;
    }
    cx.error_spanned_by(
        self_ty,
        format!(
            "`{self_ident}` has no creation event: add an #[event] method that takes no `self` \
             and returns `Self`, such as `#[event(\"Created\")] pub fn create(..) -> Self {{ .. }}`"
        ),
    );
}

/// What a method must not be to be replayed: async, const, unsafe, extern,
/// generic or variadic.
pub(crate) fn plain_signature(cx: &Ctxt, sig: &syn::Signature) {
    let bad_shape = |tokens: &dyn ToTokens, what: &str| {
        cx.error_spanned_by(tokens.to_token_stream(), format!("{what}; {SHAPES}"));
    };
    if let Some(token) = &sig.asyncness {
        bad_shape(
            token,
            "an #[event] method cannot be async: its body is replayed from stored events",
        );
    }
    if let Some(token) = &sig.constness {
        bad_shape(token, "an #[event] method cannot be const");
    }
    if let Some(token) = &sig.unsafety {
        bad_shape(token, "an #[event] method cannot be unsafe");
    }
    if let Some(abi) = &sig.abi {
        bad_shape(abi, "an #[event] method cannot have an ABI");
    }
    if sig.generics.lt_token.is_some() || sig.generics.where_clause.is_some() {
        bad_shape(
            &sig.generics,
            "an #[event] method cannot be generic: its fields are stored with fixed types",
        );
    }
    if let Some(variadic) = &sig.variadic {
        bad_shape(variadic, "an #[event] method cannot be variadic");
    }
}

pub(crate) fn plain_field_name(cx: &Ctxt, pattern: &syn::Pat) {
    cx.error_spanned_by(
        pattern,
        "an event field needs a plain name, such as `amount: u64`: it is stored under that name",
    );
}

pub(crate) fn one_struct_parameter(
    cx: &Ctxt,
    inputs: &syn::punctuated::Punctuated<syn::FnArg, syn::Token![,]>,
    variant: &Ident,
) {
    cx.error_spanned_by(
        inputs,
        format!(
            "a method for the event struct `{variant}` takes exactly one parameter of that \
             type, such as `event: {variant}`"
        ),
    );
}

/// Rejects field types that cannot be stored as they are: borrowed, `impl Trait`,
/// `dyn Trait` without a box, or with lifetimes.
pub(crate) fn field_type(cx: &Ctxt, ty: &Type) {
    match ty {
        Type::Reference(reference) => cx.error_spanned_by(
            reference,
            "event fields are stored, so they must be owned: take `String` instead of `&str`, \
             `Vec<T>` instead of `&[T]`",
        ),
        Type::ImplTrait(it) => {
            cx.error_spanned_by(it, "event fields need a concrete type, not `impl Trait`");
        }
        Type::TraitObject(it) => {
            cx.error_spanned_by(it, "event fields need a concrete type, not `dyn Trait`");
        }
        _ => {
            if let Some(span) = first_lifetime(ty) {
                cx.syn_error(syn::Error::new(
                    span,
                    "event fields are stored, so they must be owned: remove the lifetime",
                ));
            }
        }
    }
}

fn first_lifetime(ty: &Type) -> Option<Span> {
    use syn::visit::Visit;
    struct Finder(Option<Span>);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            self.0.get_or_insert(lifetime.span());
        }
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            self.0.get_or_insert(reference.span());
        }
    }
    let mut finder = Finder(None);
    finder.visit_type(ty);
    finder.0
}

/// `#[event]` on a function that no `#[aggregate]` impl block took in.
pub(crate) fn event_outside_aggregate(cx: &Ctxt, function: &Ident, in_impl: bool) {
    let message = if in_impl {
        "#[event] on a method needs `#[aggregate]` on its impl block: write \
         `#[aggregate] impl Name { .. }`"
    } else {
        "#[event] on a function only works on a method inside an `#[aggregate] impl` block"
    };
    cx.error_spanned_by(function, message);
}

/// The `#[event]` methods of an impl block without `#[aggregate]`, reported
/// once, at the first of them.
pub(crate) fn impl_without_aggregate(cx: &Ctxt, method: &Ident, self_ident: &Ident) {
    cx.error_spanned_by(
        method,
        format!(
            "#[event] on a method needs `#[aggregate]` on its impl block: write \
             `#[aggregate] impl {self_ident} {{ .. }}`"
        ),
    );
}
