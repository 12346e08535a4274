//! Checks of the model that are about what the user meant rather than how the
//! input parses: each reports one error that says what to do instead.

use quote::ToTokens;
use syn::{Ident, ReturnType, Type};

use super::ast::returns_self;
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
