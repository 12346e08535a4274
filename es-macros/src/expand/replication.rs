//! `#[replicating(..)]` and `#[replicated(..)]`: the struct as written, and the
//! trait impl of `es_core::interface::replication` beside it. The traits live
//! behind es-core's `replication` feature, so this code compiles only with it.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::internals::replication::{Replicated, Replicating};

/// The struct unchanged (with `#[aggregate]`, if still on it, expanding after)
/// and `impl Replicating`. With errors, the same impl from what was valid: a
/// stub that keeps the struct's uses as a replicating aggregate compiling, so
/// the errors shown are the ones about the attribute.
pub(crate) fn replicating(model: Replicating) -> TokenStream {
    let Replicating {
        item,
        target,
        contract,
        excluded,
        deleted_by,
    } = model;
    let Some(target) = target else {
        return quote!(#item);
    };
    let ident = &target.ident;
    let deletes = deletes(ident, &deleted_by);
    quote! {
        #item

        impl ::es_core::__private::replication::Replicating for #ident {
            const CONTRACT: &'static str = #contract;
            const EXCLUDED: &'static [&'static str] = &[#(#excluded),*];
            #deletes
        }
    }
}

/// `fn deletes`: a match on the variants of the event enum that `#[aggregate]`
/// generates beside the impl block (`LeaseEvent`), named in `deleted_by`. Each
/// path has the span of its string, so that a name which is no event of the
/// aggregate fails to compile there ("no variant named ..."). The enum is
/// named, not reached through `Aggregate::Event`: through an alias of that
/// projection, rustc reports a wrong name as an "ambiguous associated type".
/// So the enum must be in scope beside the struct, as it is when the impl
/// block is in the same module.
fn deletes(ident: &syn::Ident, deleted_by: &[syn::Ident]) -> TokenStream {
    if deleted_by.is_empty() {
        return quote! {
            fn deletes(_: &<Self as ::es_core::__private::Aggregate>::Event) -> bool {
                false
            }
        };
    }
    // `{ .. }` matches struct variants (events of fields) and tuple variants
    // (events declared as structs) alike.
    let arms = deleted_by.iter().map(|variant| {
        let events = format_ident!("{}Event", ident, span = variant.span());
        quote_spanned!(variant.span()=> #events::#variant { .. })
    });
    quote! {
        fn deletes(event: &<Self as ::es_core::__private::Aggregate>::Event) -> bool {
            // When every event deletes, the last arm is never reached.
            #[allow(unreachable_patterns)]
            match event {
                #(#arms)|* => true,
                _ => false,
            }
        }
    }
}

/// The struct unchanged and `impl Replicated`. The impl holds only where the
/// struct can be deserialized; the assertion beside it says, at the struct's
/// name, what to add when it cannot, rather than naming serde's traits.
pub(crate) fn replicated(model: Replicated) -> TokenStream {
    let Replicated {
        item,
        target,
        contract,
    } = model;
    let Some(target) = target else {
        return quote!(#item);
    };
    let ident = &target.ident;
    let (impl_generics, ty_generics, where_clause) = target.generics.split_for_impl();
    let predicates = where_clause.map(|clause| &clause.predicates);
    // Generic parameters are not in scope in a `const _` item: a generic
    // struct's bound failure is reported where its `TYPE` is used.
    let assertion = target.generics.params.is_empty().then(|| {
        quote_spanned! {ident.span()=>
            const _: () = ::es_core::__private::replication::assert_replicated_struct::<#ident>();
        }
    });
    // `for<'__es>` keeps rustc from rejecting the bound as trivially false
    // when the struct lacks `Deserialize`: the impl then does not hold, and
    // the assertion's error is the only one.
    let bound = quote_spanned! {target.span()=>
        for<'__es> #ident #ty_generics: ::es_core::__private::replication::ReplicatedStruct
    };
    quote! {
        #item

        #assertion

        impl #impl_generics ::es_core::__private::replication::Replicated for #ident #ty_generics
        where
            #bound,
            #predicates
        {
            const TYPE: &'static str = #contract;
        }
    }
}
