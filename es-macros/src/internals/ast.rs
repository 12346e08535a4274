//! The validated model of what the user wrote: aggregate structs, aggregate impl
//! blocks with their event methods, and event structs. The model is built here
//! and checked through `check.rs`; the expanders only generate code from a model
//! that passed.

use syn::{
    Attribute, Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, Pat, ReturnType,
    Type,
};

use super::attr::{AggregateArgs, EventArgs, EventKind, SchemaArgs, upper_camel};
use super::check;
use super::ctxt::Ctxt;
use super::source::EnclosingImpl;

/// The hidden field that `#[aggregate]` adds to a struct for the aggregate's id,
/// version and pending events. Named as advice: a struct literal of the
/// aggregate outside its impl block lacks it, and rustc's "missing field" error
/// then reads as what to do instead.
pub(crate) const META_FIELD: &str = "create_it_with_its_creation_event";

/// Traits the user may already derive, which the macros would otherwise add.
#[derive(Default)]
pub(crate) struct Derived {
    pub(crate) clone: bool,
    pub(crate) debug: bool,
    pub(crate) serialize: bool,
    pub(crate) deserialize: bool,
    /// `Default` as written, which an aggregate must not derive.
    pub(crate) default: Option<syn::Path>,
}

impl Derived {
    fn of(attrs: &[Attribute]) -> Self {
        let mut derived = Derived::default();
        for attr in attrs.iter().filter(|attr| attr.path().is_ident("derive")) {
            let _ = attr.parse_nested_meta(|meta| {
                if let Some(last) = meta.path.segments.last() {
                    match last.ident.to_string().as_str() {
                        "Clone" => derived.clone = true,
                        "Debug" => derived.debug = true,
                        "Serialize" => derived.serialize = true,
                        "Deserialize" => derived.deserialize = true,
                        "Default" => derived.default = Some(meta.path.clone()),
                        _ => {}
                    }
                }
                Ok(())
            });
        }
        derived
    }
}

/// `#[aggregate] struct Dog { .. }`.
pub(crate) struct AggregateStruct {
    pub(crate) item: ItemStruct,
    pub(crate) derived: Derived,
}

impl AggregateStruct {
    pub(crate) fn from_item(cx: &Ctxt, item: ItemStruct) -> Self {
        check::struct_not_generic(cx, &item.generics);
        check::named_fields(cx, &item);
        let derived = Derived::of(&item.attrs);
        // The derive stays beside the error, so that callers of `default()`
        // raise no errors of their own.
        if let Some(default) = &derived.default {
            check::no_default_aggregate(cx, default);
        }
        AggregateStruct { item, derived }
    }

    /// Whether the struct can still get its metadata field despite errors, so
    /// that its impl block and callers compile and only the error shows.
    pub(crate) fn can_expand(&self) -> bool {
        let syn::Fields::Named(fields) = &self.item.fields else {
            return false;
        };
        reserved_field(fields).is_none() && self.item.generics.params.is_empty()
    }
}

/// The user's field that has the hidden field's name, if any.
pub(crate) fn reserved_field(fields: &syn::FieldsNamed) -> Option<&syn::Field> {
    fields.named.iter().find(|field| {
        field
            .ident
            .as_ref()
            .is_some_and(|ident| ident == META_FIELD)
    })
}

/// Whether an event creates the aggregate or changes an existing one.
// One per event method, read once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Role {
    /// `fn register(..) -> Self`, with the expression that makes the new id, if
    /// given, and the parameter that expression names, if it is only that
    /// (`id = &id`): that parameter is the aggregate's id, so it is not stored
    /// among the event's fields but given back from the stored event's id.
    Creation {
        id: Option<Expr>,
        id_param: Option<(Ident, Type)>,
    },
    /// `fn add_trick(&mut self, ..)`.
    Mutation,
}

/// What an event carries.
pub(crate) enum Payload {
    /// The method's parameters.
    Fields(Vec<(Ident, Type)>),
    /// One struct declared with `#[event]`, bound to this parameter.
    Struct(Ident, Box<Type>),
}

/// A schema version with the steps that bring each older version up to it.
pub(crate) struct Schema {
    /// The current version, from 1.
    pub(crate) version: u32,
    /// `steps[i]` upcasts from version `i + 1` to `i + 2`.
    pub(crate) steps: Vec<syn::Path>,
}

impl Schema {
    fn from_args(cx: &Ctxt, args: SchemaArgs) -> Self {
        let version = match &args.version {
            None => 1,
            Some(lit) => match lit.base10_parse::<u32>() {
                Ok(version) if version >= 1 => version,
                _ => {
                    cx.error_spanned_by(
                        lit,
                        "`version` counts from 1: the first schema is version 1",
                    );
                    1
                }
            },
        };
        let steps = match args.upcast {
            None if version > 1 => {
                if let Some(lit) = &args.version {
                    cx.error_spanned_by(
                        lit,
                        format!(
                            "version {version} needs {} upcast step(s) for data stored at older \
                             versions: add `upcast = [..]` with one \
                             `fn(&mut es_core::serde_json::Value)` per step",
                            version - 1
                        ),
                    );
                }
                Vec::new()
            }
            None => Vec::new(),
            Some((written, steps)) => {
                if steps.len() as u64 + 1 != u64::from(version) {
                    cx.error_spanned_by(
                        written,
                        format!(
                            "version {version} needs {} upcast step(s), one from each older \
                             version to the next, but {} {} given",
                            version - 1,
                            steps.len(),
                            if steps.len() == 1 { "is" } else { "are" }
                        ),
                    );
                }
                steps
            }
        };
        Schema { version, steps }
    }
}

/// One `#[event]` method.
pub(crate) struct EventMethod {
    /// The variant of the event enum.
    pub(crate) variant: Ident,
    /// The stored topic.
    pub(crate) topic: String,
    /// Former topics, still read as this event.
    pub(crate) aliases: Vec<String>,
    /// The schema of the event's fields.
    pub(crate) schema: Schema,
    pub(crate) role: Role,
    pub(crate) payload: Payload,
    /// The method as written, without its `#[event]` attribute.
    pub(crate) method: ImplItemFn,
}

/// `#[aggregate] impl Dog { .. }`.
pub(crate) struct AggregateImpl {
    pub(crate) self_ident: Ident,
    /// The aggregate's name in topics.
    pub(crate) name: String,
    /// Former names: their snapshot topics are still read.
    pub(crate) name_aliases: Vec<String>,
    /// The schema of the aggregate's state in snapshots.
    pub(crate) snapshot_schema: Schema,
    pub(crate) events: Vec<EventMethod>,
    /// Everything in the impl block that is not an event method, unchanged.
    pub(crate) other_items: Vec<ImplItem>,
    pub(crate) attrs: Vec<Attribute>,
}

/// What an event method needs to know of its aggregate.
pub(crate) struct AggregateNames<'a> {
    pub(crate) self_ident: &'a Ident,
    /// The aggregate's name in topics.
    pub(crate) name: &'a str,
    /// Its former names.
    pub(crate) aliases: &'a [String],
}

impl AggregateImpl {
    /// The model of an impl block; `None` if the block cannot be an aggregate's:
    /// then either an error is recorded, or (for a generic struct) the struct's
    /// own `#[aggregate]` reports it. Invalid event methods are reported and kept
    /// as plain methods.
    pub(crate) fn from_item(cx: &Ctxt, args: AggregateArgs, item: ItemImpl) -> Option<Self> {
        let self_ident = aggregate_ident(cx, &item)?;
        let name = args
            .name
            .map_or_else(|| self_ident.to_string(), |lit| lit.value());
        let name_aliases: Vec<String> = args.aliases.iter().map(syn::LitStr::value).collect();
        let snapshot_schema = Schema::from_args(cx, args.schema);
        let names = AggregateNames {
            self_ident: &self_ident,
            name: &name,
            aliases: &name_aliases,
        };
        let SplitItems {
            events,
            mut other_items,
            rejected_creation,
        } = split_items(cx, &names, item.items);
        let events = check::unique_events(cx, events, &mut other_items);
        // An invalid method meant to create the aggregate has an error that says
        // what to fix; "no creation event" would not.
        if !rejected_creation {
            check::has_creation_event(cx, &item.self_ty, &self_ident, &events);
        }
        Some(AggregateImpl {
            self_ident,
            name,
            name_aliases,
            snapshot_schema,
            events,
            other_items,
            attrs: item.attrs,
        })
    }
}

/// The aggregate's type name, if the impl block can be an aggregate's.
fn aggregate_ident(cx: &Ctxt, item: &ItemImpl) -> Option<Ident> {
    if let Some((_, path, _)) = &item.trait_ {
        check::not_trait_impl(cx, path);
        return None;
    }
    if check::has_type_arguments(&item.self_ty) {
        // `impl<T> Dog<T>`: the struct is generic, and its own #[aggregate] says
        // so; the expansion asserts that it did (see `generic_fallback`).
        return None;
    }
    check::impl_not_generic(cx, &item.generics);
    let ident = match &*item.self_ty {
        Type::Path(path) if path.qself.is_none() => path.path.get_ident().cloned(),
        _ => None,
    };
    if ident.is_none() {
        check::plain_self_type(cx, &item.self_ty);
    }
    ident
}

/// An impl block's items: its valid event methods, and everything else.
struct SplitItems {
    events: Vec<EventMethod>,
    other_items: Vec<ImplItem>,
    /// Whether an invalid #[event] method was meant to create the aggregate.
    rejected_creation: bool,
}

fn split_items(cx: &Ctxt, names: &AggregateNames<'_>, items: Vec<ImplItem>) -> SplitItems {
    let mut split = SplitItems {
        events: Vec::new(),
        other_items: Vec::new(),
        rejected_creation: false,
    };
    for impl_item in items {
        let ImplItem::Fn(mut method) = impl_item else {
            split.other_items.push(impl_item);
            continue;
        };
        let Some(attr) = take_event_attr(cx, &mut method) else {
            split.other_items.push(ImplItem::Fn(method));
            continue;
        };
        // A method whose event is invalid stays as a plain method, so that its
        // callers still compile and the user sees only the error about it.
        let errors_before = cx.error_count();
        let plain = method.clone();
        match EventMethod::from_method(cx, &attr, names, method) {
            Some(event) if cx.error_count() == errors_before => split.events.push(event),
            _ => {
                split.rejected_creation |= meant_creation(&plain.sig, names.self_ident);
                split.other_items.push(ImplItem::Fn(plain));
            }
        }
    }
    split
}

fn is_event_attr(attr: &Attribute) -> bool {
    attr.path().is_ident("event")
}

/// Removes a method's #[event] attributes, giving back the first, if any.
fn take_event_attr(cx: &Ctxt, method: &mut ImplItemFn) -> Option<Attribute> {
    let index = method.attrs.iter().position(is_event_attr)?;
    let attr = method.attrs.remove(index);
    if let Some(again) = method.attrs.iter().find(|attr| is_event_attr(attr)) {
        check::one_event_attr(cx, again);
    }
    // Left on the method, the others would expand as #[event] on a function,
    // each with an error of its own.
    method.attrs.retain(|attr| !is_event_attr(attr));
    Some(attr)
}

/// Whether an #[event] method looks meant to create the aggregate: it takes no
/// `self`, or it returns `Self`.
fn meant_creation(sig: &syn::Signature, self_ident: &Ident) -> bool {
    sig.receiver().is_none() || returns_self(&sig.output, self_ident)
}

impl EventMethod {
    fn from_method(
        cx: &Ctxt,
        attr: &Attribute,
        names: &AggregateNames<'_>,
        method: ImplItemFn,
    ) -> Option<Self> {
        let sig = &method.sig;
        let args = EventArgs::parse(cx, attr, upper_camel(&sig.ident));
        check::plain_signature(cx, sig);
        let (receiver, mut params) = parameters(cx, sig);
        let role = role(
            cx,
            sig,
            receiver,
            args.id.as_ref(),
            names.self_ident,
            &mut params,
        );
        let (variant, payload) = payload(cx, sig, args.kind?, args.name.as_ref(), params)?;
        let (topic, aliases) = topics(names, &variant, args.topic.as_ref(), &args.aliases);
        let schema = Schema::from_args(cx, args.schema);
        Some(EventMethod {
            variant,
            topic,
            aliases,
            schema,
            role,
            payload,
            method,
        })
    }
}

/// The method's receiver, and its other parameters: the event's fields.
fn parameters<'a>(
    cx: &Ctxt,
    sig: &'a syn::Signature,
) -> (Option<&'a syn::Receiver>, Vec<(Ident, Type)>) {
    let mut receiver = None;
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(r) => receiver = Some(r),
            FnArg::Typed(typed) => {
                check::field_type(cx, &typed.ty);
                match &*typed.pat {
                    Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => {
                        params.push((pat.ident.clone(), (*typed.ty).clone()));
                    }
                    other => check::plain_field_name(cx, other),
                }
            }
        }
    }
    (receiver, params)
}

/// Whether the method creates the aggregate or changes it, by its receiver.
fn role(
    cx: &Ctxt,
    sig: &syn::Signature,
    receiver: Option<&syn::Receiver>,
    id: Option<&Expr>,
    self_ident: &Ident,
    params: &mut Vec<(Ident, Type)>,
) -> Role {
    match receiver {
        None => {
            check::creation_returns_self(cx, sig, self_ident);
            creation_role(id, params)
        }
        Some(r) if is_reference(r) && returns_self(&sig.output, self_ident) => {
            check::creation_takes_no_self(cx, r);
            creation_role(id, params)
        }
        Some(r) => {
            check::mutation_shape(cx, r, &sig.output);
            if let Some(id) = id {
                check::no_id_on_mutation(cx, id);
            }
            Role::Mutation
        }
    }
}

/// The variant's name and what it carries: the parameters, or one event struct.
fn payload(
    cx: &Ctxt,
    sig: &syn::Signature,
    kind: EventKind,
    name: Option<&syn::LitStr>,
    mut params: Vec<(Ident, Type)>,
) -> Option<(Ident, Payload)> {
    let path = match kind {
        EventKind::Fields(variant) => return Some((variant, Payload::Fields(params))),
        EventKind::Struct(path) => path,
    };
    let variant = match name {
        Some(name) => match super::attr::event_ident(name) {
            Ok(ident) => ident,
            Err(error) => {
                cx.syn_error(error);
                return None;
            }
        },
        None => path.segments.last()?.ident.clone(),
    };
    if params.len() != 1 {
        check::one_struct_parameter(cx, &sig.inputs, &variant);
        return None;
    }
    let (ident, ty) = params.pop()?;
    Some((variant, Payload::Struct(ident, Box::new(ty))))
}

/// The event's topic, and the former topics it is still read under. Every
/// literal part was checked where it was parsed (attr.rs); the rest are Rust
/// identifiers.
fn topics(
    names: &AggregateNames<'_>,
    variant: &Ident,
    topic: Option<&syn::LitStr>,
    aliases: &[syn::LitStr],
) -> (String, Vec<String>) {
    let mut read_as: Vec<String> = aliases.iter().map(syn::LitStr::value).collect();
    // A renamed aggregate still reads its events' old default topics; a topic
    // given explicitly was never derived from the name.
    if topic.is_none() {
        read_as.extend(
            names
                .aliases
                .iter()
                .map(|alias| format!("{alias}.{variant}")),
        );
    }
    let topic = topic.map_or_else(|| format!("{}.{variant}", names.name), syn::LitStr::value);
    (topic, read_as)
}

/// A creation event's role; the parameter its `id = ..` names, if it is only a
/// parameter, is taken out of the stored fields.
fn creation_role(id: Option<&Expr>, params: &mut Vec<(Ident, Type)>) -> Role {
    let id_param = id
        .and_then(named_parameter)
        .and_then(|name| params.iter().position(|(ident, _)| *ident == name))
        .map(|index| params.remove(index));
    Role::Creation {
        id: id.cloned(),
        id_param,
    }
}

/// The parameter that `id`, `&id` or `id.clone()` names.
fn named_parameter(expr: &Expr) -> Option<Ident> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => path.path.get_ident().cloned(),
        Expr::Reference(reference) if reference.mutability.is_none() => {
            named_parameter(&reference.expr)
        }
        Expr::MethodCall(call) if call.method == "clone" && call.args.is_empty() => {
            named_parameter(&call.receiver)
        }
        Expr::Paren(paren) => named_parameter(&paren.expr),
        _ => None,
    }
}

/// `&self` or `&mut self`, as opposed to `self` or `self: Type`.
fn is_reference(receiver: &syn::Receiver) -> bool {
    receiver.reference.is_some() && receiver.colon_token.is_none()
}

/// Whether an #[event] method returns the aggregate, as a creation event does.
pub(crate) fn returns_self(output: &ReturnType, self_ident: &Ident) -> bool {
    match output {
        ReturnType::Type(_, ty) => matches!(
            &**ty,
            Type::Path(path) if path.qself.is_none()
                && path.path.get_ident().is_some_and(|ident| ident == "Self" || ident == self_ident)
        ),
        ReturnType::Default => false,
    }
}

/// `#[event] struct Renamed { .. }`.
pub(crate) struct EventStruct {
    pub(crate) item: ItemStruct,
    pub(crate) derived: Derived,
}

impl EventStruct {
    pub(crate) fn from_item(cx: &Ctxt, item: ItemStruct) -> Self {
        if item.generics.lt_token.is_some() || item.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &item.generics,
                "an event struct cannot be generic: it is stored under a fixed topic and decoded \
                 without type parameters",
            );
        }
        let derived = Derived::of(&item.attrs);
        EventStruct { item, derived }
    }
}

/// `#[event]` on a function that no `#[aggregate]` impl block took in: always a
/// mistake, reported here.
pub(crate) struct EventFn {
    pub(crate) item: syn::ItemFn,
    /// The aggregate to give stub impls, so that its other uses compile: set on
    /// the first `#[event]` method of an impl block, which reports for them all.
    pub(crate) stub_for: Option<Ident>,
}

impl EventFn {
    /// `enclosing` is the impl block around the method, if its source shows it.
    pub(crate) fn from_item(
        cx: &Ctxt,
        item: syn::ItemFn,
        enclosing: Option<EnclosingImpl>,
    ) -> Self {
        // `#[aggregate]` on an impl block removes the #[event]s of its methods before
        // they expand, so a method that gets here is in an impl block without it.
        let in_impl = item.sig.receiver().is_some() || names_self(&item.sig);
        let Some(enclosing) = enclosing.filter(|_| in_impl) else {
            check::event_outside_aggregate(cx, &item.sig.ident, in_impl);
            return EventFn {
                item,
                stub_for: None,
            };
        };
        if enclosing.earlier_event {
            // The block's first #[event] method reports the mistake.
            return EventFn {
                item,
                stub_for: None,
            };
        }
        check::impl_without_aggregate(cx, &item.sig.ident, &enclosing.self_ident);
        EventFn {
            item,
            stub_for: Some(enclosing.self_ident),
        }
    }
}

/// Whether `Self` appears in the signature, which only a method's can contain.
fn names_self(sig: &syn::Signature) -> bool {
    fn walk(tokens: proc_macro2::TokenStream) -> bool {
        tokens.into_iter().any(|token| match token {
            proc_macro2::TokenTree::Ident(ident) => ident == "Self",
            proc_macro2::TokenTree::Group(group) => walk(group.stream()),
            _ => false,
        })
    }
    walk(quote::ToTokens::to_token_stream(sig))
}
