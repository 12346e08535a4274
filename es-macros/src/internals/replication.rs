//! `#[replicating("contract", exclude(..), deleted_by(..))]` on an aggregate's
//! struct and `#[replicated("contract")]` on a replica's struct: their
//! arguments parsed, the model the expander reads, and the checks on both,
//! each reporting one spanned error that says what to write instead.
//!
//! The arguments are read as expressions (`"lease"`, `exclude(notes)`,
//! `deleted_by("Ended")`), so that every mistake has the span of what the
//! user wrote.

use syn::punctuated::Punctuated;
use syn::{Expr, Fields, Ident, Item, ItemStruct, LitStr, Token};

use super::ast::META_FIELD;
use super::attr::{closest, event_ident};
use super::ctxt::Ctxt;

/// The options `#[replicating]` takes after its contract.
const REPLICATING_OPTIONS: &[&str] = &["exclude", "deleted_by"];

/// How `#[replicating]` is written, appended to errors about its arguments.
const REPLICATING_USAGE: &str = "write `#[replicating(\"contract\")]`, optionally followed by \
                                 `exclude(field, ..)` and `deleted_by(\"Event\", ..)`";

/// The longest contract accepted, as for the names stored in topics.
const MAX_CONTRACT_BYTES: usize = 255;

/// `#[replicating(..)]` on an aggregate's struct.
pub(crate) struct Replicating {
    /// The item as written: emitted unchanged.
    pub(crate) item: Item,
    /// The struct the trait is implemented for; `None` when the item cannot
    /// take the impl (an enum, a tuple struct, an impl block) and only the
    /// error is emitted.
    pub(crate) target: Option<ItemStruct>,
    /// The contract; empty when it was missing or invalid (then an error says so).
    pub(crate) contract: String,
    /// The excluded fields that are fields of the struct.
    pub(crate) excluded: Vec<String>,
    /// The variants of the event enum named by `deleted_by`, spanned at the
    /// strings that named them, so that rustc's error about a variant that
    /// does not exist points at the string.
    pub(crate) deleted_by: Vec<Ident>,
}

/// `#[replicated("contract")]` on a replica's struct.
pub(crate) struct Replicated {
    /// The item as written: emitted unchanged.
    pub(crate) item: Item,
    /// The struct the trait is implemented for; `None` for any other item.
    pub(crate) target: Option<ItemStruct>,
    /// The contract; empty when it was missing or invalid.
    pub(crate) contract: String,
}

/// `#[replicating]`'s arguments as written, before they are checked against
/// the struct.
#[derive(Default)]
struct ReplicatingArgs {
    contract: Option<LitStr>,
    exclude: Option<Vec<Expr>>,
    deleted_by: Option<Vec<Expr>>,
}

impl Replicating {
    pub(crate) fn from_item(cx: &Ctxt, args: proc_macro2::TokenStream, item: Item) -> Self {
        let parsed = ReplicatingArgs::parse(cx, args);
        let target = replicating_target(cx, &item);
        let contract = parsed
            .contract
            .as_ref()
            .map(LitStr::value)
            .unwrap_or_default();
        let excluded = match (&target, &parsed.exclude) {
            (Some(target), Some(fields)) => excluded_fields(cx, target, fields),
            _ => Vec::new(),
        };
        let deleted_by = parsed
            .deleted_by
            .as_deref()
            .map(|names| deleting_events(cx, names))
            .unwrap_or_default();
        Replicating {
            item,
            target,
            contract,
            excluded,
            deleted_by,
        }
    }
}

impl Replicated {
    pub(crate) fn from_item(cx: &Ctxt, args: proc_macro2::TokenStream, item: Item) -> Self {
        let contract = replicated_contract(cx, args);
        let target = match &item {
            Item::Struct(item) => {
                named_fields(cx, item, "#[replicated]");
                Some(item.clone())
            }
            other => {
                not_a_struct(cx, other, "#[replicated]", "the replica's struct");
                None
            }
        };
        Replicated {
            item,
            target,
            contract: contract.as_ref().map(LitStr::value).unwrap_or_default(),
        }
    }
}

// Parsing.

/// The arguments as a list of expressions; a list that is not one is reported.
fn expressions(cx: &Ctxt, args: proc_macro2::TokenStream) -> Option<Vec<Expr>> {
    let parser = Punctuated::<Expr, Token![,]>::parse_terminated;
    match syn::parse::Parser::parse2(parser, args) {
        Ok(list) => Some(list.into_iter().collect()),
        Err(error) => {
            cx.syn_error(error);
            None
        }
    }
}

impl ReplicatingArgs {
    fn parse(cx: &Ctxt, tokens: proc_macro2::TokenStream) -> Self {
        let mut args = ReplicatingArgs::default();
        let Some(list) = expressions(cx, tokens) else {
            return args;
        };
        let mut list = list.into_iter();
        match list.next() {
            None => missing_contract(cx, "replicating"),
            // `exclude(..)` first: the contract was left out, the option is read.
            Some(first @ Expr::Call(_)) => {
                missing_contract(cx, "replicating");
                args.accept(cx, first);
            }
            Some(first) => args.contract = contract(cx, &first, "replicating"),
        }
        for option in list {
            args.accept(cx, option);
        }
        args
    }

    /// Takes one `name(..)` option after the contract.
    fn accept(&mut self, cx: &Ctxt, option: Expr) {
        let Some((key, values)) = option_call(&option) else {
            unknown_option(cx, &option);
            return;
        };
        let slot = if key == "exclude" {
            &mut self.exclude
        } else if key == "deleted_by" {
            &mut self.deleted_by
        } else {
            unknown_option(cx, &option);
            return;
        };
        if slot.is_some() {
            cx.error_spanned_by(
                key,
                format!("`{key}` is given twice: name everything in one `{key}(..)`"),
            );
            return;
        }
        if values.is_empty() {
            cx.error_spanned_by(
                &option,
                format!("`{key}()` names nothing: remove it, or name what it is for"),
            );
        }
        *slot = Some(values);
    }
}

/// `name(a, b)` as its name and its arguments; `None` for any other expression.
fn option_call(option: &Expr) -> Option<(&Ident, Vec<Expr>)> {
    let Expr::Call(call) = option else {
        return None;
    };
    let Expr::Path(path) = &*call.func else {
        return None;
    };
    if path.qself.is_some() || !path.attrs.is_empty() {
        return None;
    }
    let key = path.path.get_ident()?;
    Some((key, call.args.iter().cloned().collect()))
}

/// The contract of `#[replicated]`: one string, nothing else.
fn replicated_contract(cx: &Ctxt, args: proc_macro2::TokenStream) -> Option<LitStr> {
    let list = expressions(cx, args)?;
    let mut list = list.into_iter();
    let Some(first) = list.next() else {
        missing_contract(cx, "replicated");
        return None;
    };
    let contract = contract(cx, &first, "replicated");
    if let Some(extra) = list.next() {
        cx.error_spanned_by(
            extra,
            "#[replicated] takes only the contract, such as `#[replicated(\"lease\")]`: which \
             fields are sent is the master's `#[replicating]` to say",
        );
    }
    contract
}

// Checks.

fn missing_contract(cx: &Ctxt, attr: &str) {
    cx.syn_error(syn::Error::new(
        proc_macro2::Span::call_site(),
        format!(
            "#[{attr}] needs the contract, the type name the master and its replicas agree \
             on, first: `#[{attr}(\"lease\")]`"
        ),
    ));
}

/// The contract, if it is a plain string; else an error on what was written.
fn contract(cx: &Ctxt, value: &Expr, attr: &str) -> Option<LitStr> {
    let Expr::Lit(syn::ExprLit {
        lit: syn::Lit::Str(lit),
        ..
    }) = value
    else {
        cx.error_spanned_by(
            value,
            format!("the contract must be a string literal, such as `#[{attr}(\"lease\")]`"),
        );
        return None;
    };
    let text = lit.value();
    if text.is_empty() {
        cx.error_spanned_by(
            lit,
            "the contract cannot be empty: it is the `_type` of every record, by which replicas \
             tell entities apart",
        );
        return None;
    }
    let plain = text.len() <= MAX_CONTRACT_BYTES
        && text.trim() == text
        && !text.chars().any(char::is_control);
    if !plain {
        cx.error_spanned_by(
            lit,
            format!(
                "the contract must be at most {MAX_CONTRACT_BYTES} bytes, with no control \
                 characters and no leading or trailing spaces: it is the `_type` of every record"
            ),
        );
        return None;
    }
    Some(lit.clone())
}

fn unknown_option(cx: &Ctxt, option: &Expr) {
    let key = match option {
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) => path.path.get_ident(),
            _ => None,
        },
        Expr::Path(path) => path.path.get_ident(),
        Expr::Assign(assign) => match &*assign.left {
            Expr::Path(path) => path.path.get_ident(),
            _ => None,
        },
        _ => None,
    };
    let message = match key.map(Ident::to_string) {
        // `exclude = ..` or a bare `exclude`: the right option, written otherwise.
        Some(key) if REPLICATING_OPTIONS.contains(&key.as_str()) => {
            format!("write `{key}(..)`, with what it names in parentheses; {REPLICATING_USAGE}")
        }
        Some(key) => match closest(&key, REPLICATING_OPTIONS) {
            Some(meant) => format!("unknown option `{key}`; did you mean `{meant}`?"),
            None => format!("unknown option `{key}`; {REPLICATING_USAGE}"),
        },
        None if matches!(option, Expr::Lit(_)) => {
            format!("the contract is given once, first; {REPLICATING_USAGE}")
        }
        None => format!("unknown option; {REPLICATING_USAGE}"),
    };
    cx.error_spanned_by(option, message);
}

/// The struct `#[replicating]` can implement its trait for, if the item is one.
fn replicating_target(cx: &Ctxt, item: &Item) -> Option<ItemStruct> {
    match item {
        Item::Struct(item) => {
            // `#[aggregate]` refuses a generic struct and says why; an impl
            // here would only add "not an aggregate" to that error.
            let generic = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
            (named_fields(cx, item, "#[replicating]") && !generic).then(|| item.clone())
        }
        Item::Impl(item) => {
            cx.error_spanned_by(
                &item.self_ty,
                "#[replicating] goes on the aggregate's struct, not on its impl block: \
                 `#[replicating(\"contract\")] #[aggregate] pub struct Name { .. }`",
            );
            None
        }
        other => {
            not_a_struct(cx, other, "#[replicating]", "an aggregate's struct");
            None
        }
    }
}

/// Whether the struct has named fields, the record's fields; else an error.
fn named_fields(cx: &Ctxt, item: &ItemStruct, attr: &str) -> bool {
    if matches!(item.fields, Fields::Named(_)) {
        return true;
    }
    cx.error_spanned_by(
        &item.ident,
        format!(
            "{attr} needs a struct with named fields, such as `struct Lease {{ number: String }}`: \
             a record carries the entity's fields by name"
        ),
    );
    false
}

fn not_a_struct(cx: &Ctxt, item: &Item, attr: &str, what: &str) {
    let span: &dyn quote::ToTokens = match item {
        Item::Enum(item) => &item.ident,
        Item::Union(item) => &item.ident,
        Item::Fn(item) => &item.sig.ident,
        Item::Type(item) => &item.ident,
        other => other,
    };
    cx.error_spanned_by(
        span.to_token_stream(),
        format!(
            "{attr} goes on {what}, a struct with named fields: a record carries the entity's \
             fields by name"
        ),
    );
}

/// The names in `exclude(..)` that are fields of the struct; each other one is
/// reported, with the field it looks like a typo of.
fn excluded_fields(cx: &Ctxt, item: &ItemStruct, written: &[Expr]) -> Vec<String> {
    let fields: Vec<String> = item
        .fields
        .iter()
        .filter_map(|field| field.ident.as_ref())
        .map(|ident| ident.to_string().trim_start_matches("r#").to_owned())
        // The field `#[aggregate]` adds when it expands first: never in a record.
        .filter(|name| name != META_FIELD)
        .collect();
    let mut excluded: Vec<String> = Vec::new();
    for value in written {
        let Some(ident) = field_ident(value) else {
            cx.error_spanned_by(
                value,
                "`exclude` takes field names, such as `exclude(notes, internal_code)`",
            );
            continue;
        };
        let name = ident.to_string().trim_start_matches("r#").to_owned();
        if excluded.contains(&name) {
            cx.error_spanned_by(ident, format!("`{name}` is excluded twice"));
        } else if fields.contains(&name) {
            excluded.push(name);
        } else {
            unknown_field(cx, ident, &name, &item.ident, &fields);
        }
    }
    excluded
}

fn field_ident(value: &Expr) -> Option<&Ident> {
    match value {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => path.path.get_ident(),
        _ => None,
    }
}

fn unknown_field(cx: &Ctxt, ident: &Ident, name: &str, struct_ident: &Ident, fields: &[String]) {
    let known: Vec<&str> = fields.iter().map(String::as_str).collect();
    let hint = match closest(name, &known) {
        Some(meant) => format!("did you mean `{meant}`?"),
        None if known.is_empty() => "it has no fields".to_owned(),
        None => format!("its fields are {}", quoted_list(&known)),
    };
    cx.error_spanned_by(
        ident,
        format!("`{name}` is not a field of `{struct_ident}`: {hint}"),
    );
}

fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The event enum's variants named in `deleted_by(..)`. Whether each exists
/// is left to rustc: the struct's attribute cannot see the impl block, and the
/// expansion matches on the variants, so a name that is no event fails to
/// compile at its string.
fn deleting_events(cx: &Ctxt, written: &[Expr]) -> Vec<Ident> {
    let mut variants: Vec<Ident> = Vec::new();
    for value in written {
        let Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) = value
        else {
            cx.error_spanned_by(
                value,
                "`deleted_by` takes event names as strings, as written in `#[event(\"..\")]`: \
                 `deleted_by(\"Ended\")`",
            );
            continue;
        };
        match event_ident(lit) {
            Ok(variant) if variants.contains(&variant) => {
                cx.error_spanned_by(lit, format!("`{}` is named twice", lit.value()));
            }
            Ok(variant) => variants.push(variant),
            Err(error) => cx.syn_error(error),
        }
    }
    variants
}

#[cfg(test)]
mod tests {
    use quote::quote;

    use super::*;

    fn replicating(args: proc_macro2::TokenStream) -> Result<Replicating, String> {
        let item: Item = syn::parse_quote!(
            pub struct Lease {
                number: String,
                notes: String,
                r#type: String,
            }
        );
        let cx = Ctxt::new();
        let model = Replicating::from_item(&cx, args, item);
        cx.check()
            .map(|()| model)
            .map_err(|error| error.to_string())
    }

    #[test]
    fn the_contract_and_options_come_in_any_order() {
        let model = replicating(quote!("lease", deleted_by("Ended"), exclude(notes, r#type)))
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(model.contract, "lease");
        assert_eq!(model.excluded, ["notes", "type"]);
        let deleted: Vec<String> = model.deleted_by.iter().map(Ident::to_string).collect();
        assert_eq!(deleted, ["Ended"]);
        let model = replicating(quote!("lease")).unwrap_or_else(|error| panic!("{error}"));
        assert!(model.excluded.is_empty() && model.deleted_by.is_empty());
    }

    #[test]
    fn each_mistake_in_the_arguments_is_reported() {
        let error = |args| replicating(args).err().unwrap_or_default();
        assert!(error(quote!()).contains("needs the contract"));
        assert!(error(quote!(exclude(notes))).contains("needs the contract"));
        assert!(error(quote!(lease)).contains("string literal"));
        assert!(error(quote!("")).contains("cannot be empty"));
        assert!(error(quote!(" lease")).contains("no leading or trailing spaces"));
        assert!(error(quote!("lease", exlude(notes))).contains("did you mean `exclude`?"));
        assert!(error(quote!("lease", retries(3))).contains("unknown option `retries`"));
        assert!(error(quote!("lease", exclude = notes)).contains("write `exclude(..)`"));
        assert!(error(quote!("lease", "other")).contains("given once"));
        assert!(error(quote!("lease", exclude(notes), exclude(number))).contains("given twice"));
        assert!(error(quote!("lease", exclude())).contains("names nothing"));
        assert!(error(quote!("lease", exclude(nots))).contains("did you mean `notes`?"));
        assert!(error(quote!("lease", exclude(rent))).contains("its fields are `number`"));
        assert!(error(quote!("lease", exclude(notes, notes))).contains("excluded twice"));
        assert!(error(quote!("lease", exclude("notes"))).contains("takes field names"));
        assert!(error(quote!("lease", deleted_by(Ended))).contains("as strings"));
        assert!(error(quote!("lease", deleted_by("ended"))).contains("UpperCamelCase"));
        assert!(error(quote!("lease", deleted_by("Ended", "Ended"))).contains("named twice"));
    }

    #[test]
    fn the_field_aggregate_adds_cannot_be_excluded() {
        let item: Item = syn::parse_str(&format!(
            "struct Lease {{ number: String, {META_FIELD}: u8 }}"
        ))
        .unwrap_or_else(|error| panic!("{error}"));
        let cx = Ctxt::new();
        let field = Ident::new(META_FIELD, proc_macro2::Span::call_site());
        let _ = Replicating::from_item(&cx, quote!("lease", exclude(#field)), item);
        let error = cx.check().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("is not a field"), "{error}");
    }

    #[test]
    fn replicated_takes_one_contract() {
        let parse = |args| {
            let cx = Ctxt::new();
            let item: Item = syn::parse_quote!(
                struct LeaseCopy {
                    number: String,
                }
            );
            let model = Replicated::from_item(&cx, args, item);
            cx.check()
                .map(|()| model.contract)
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse(quote!("lease")).ok().as_deref(), Some("lease"));
        let error = |args| parse(args).err().unwrap_or_default();
        assert!(error(quote!()).contains("needs the contract"));
        assert!(error(quote!(lease)).contains("string literal"));
        assert!(error(quote!("lease", exclude(x))).contains("takes only the contract"));
    }
}
