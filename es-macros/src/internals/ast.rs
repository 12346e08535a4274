//! The validated model of what the user wrote: aggregate structs, aggregate impl
//! blocks with their event methods, and event structs. Every check on the input
//! happens here; the expanders only generate code from a model that passed.

use std::collections::HashMap;

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, FnArg, Ident, ImplItem, ImplItemFn, ItemImpl, ItemStruct, Pat, ReturnType,
    Type,
};

use super::attr::{AggregateArgs, EventArgs, EventKind, SchemaArgs, upper_camel};
use super::check;
use super::ctxt::Ctxt;

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
        if item.generics.lt_token.is_some() || item.generics.where_clause.is_some() {
            cx.error_spanned_by(
                &item.generics,
                "an aggregate cannot be generic: its events are stored under fixed topics and \
                 decoded without knowing type parameters; use concrete field types",
            );
        }
        match &item.fields {
            syn::Fields::Named(fields) => {
                let reserved = fields
                    .named
                    .iter()
                    .find(|f| f.ident.as_ref().is_some_and(|i| i == META_FIELD));
                if let Some(field) = reserved {
                    cx.error_spanned_by(
                        field,
                        format!("the field name `{META_FIELD}` is reserved for the aggregate's metadata"),
                    );
                }
            }
            _ => cx.error_spanned_by(
                &item.ident,
                "#[aggregate] needs a struct with named fields, such as `struct Dog { name: String }`",
            ),
        }
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
        let reserved = fields
            .named
            .iter()
            .any(|f| f.ident.as_ref().is_some_and(|i| i == META_FIELD));
        !reserved && self.item.generics.params.is_empty()
    }
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
                            "version {version} needs {} upcast step(s) for data stored at older versions: \
                             add `upcast = [..]` with one `fn(&mut es_core::serde_json::Value)` per step",
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
                            "version {version} needs {} upcast step(s), one from each older version to the next, but {} {} given",
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

impl AggregateImpl {
    /// The model of an impl block; `None` if the block cannot be an aggregate's:
    /// then either an error is recorded, or (for a generic struct) the struct's
    /// own `#[aggregate]` reports it. Invalid event methods are reported and kept
    /// as plain methods.
    pub(crate) fn from_item(cx: &Ctxt, args: AggregateArgs, item: ItemImpl) -> Option<Self> {
        if let Some((_, path, _)) = &item.trait_ {
            cx.error_spanned_by(path, "#[aggregate] goes on the inherent impl block (`impl Dog { .. }`), not on a trait impl");
            return None;
        }
        if check::has_type_arguments(&item.self_ty) {
            // `impl<T> Dog<T>`: the struct is generic, and its own #[aggregate] says
            // so; the expansion asserts that it did (see `generic_fallback`).
            return None;
        }
        check::impl_not_generic(cx, &item.generics);
        let self_ident = match &*item.self_ty {
            Type::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                path.path.get_ident().cloned()
            }
            other => {
                cx.error_spanned_by(
                    other,
                    "#[aggregate] expects `impl Name { .. }` with the struct's plain name",
                );
                None
            }
        }?;
        let name = args
            .name
            .map_or_else(|| self_ident.to_string(), |lit| lit.value());
        let name_aliases: Vec<String> = args.aliases.iter().map(syn::LitStr::value).collect();
        let snapshot_schema = Schema::from_args(cx, args.schema);

        let mut events: Vec<EventMethod> = Vec::new();
        let mut other_items = Vec::new();
        // Whether an invalid #[event] method was meant to create the aggregate: then
        // that method's error already says what to fix, and "no creation event" would not.
        let mut rejected_creation = false;
        for impl_item in item.items {
            match impl_item {
                ImplItem::Fn(mut method) => {
                    let Some(index) = method
                        .attrs
                        .iter()
                        .position(|attr| attr.path().is_ident("event"))
                    else {
                        other_items.push(ImplItem::Fn(method));
                        continue;
                    };
                    let attr = method.attrs.remove(index);
                    if let Some(again) = method
                        .attrs
                        .iter()
                        .find(|attr| attr.path().is_ident("event"))
                    {
                        cx.error_spanned_by(
                            again,
                            "a method can trigger only one event: remove this second #[event]",
                        );
                    }
                    // Left on the method, the others would expand as #[event] on a
                    // function, each with an error of its own.
                    method.attrs.retain(|attr| !attr.path().is_ident("event"));
                    // A method whose event is invalid stays as a plain method, so that its
                    // callers still compile and the user sees only the error about it.
                    let errors_before = cx.error_count();
                    let plain = method.clone();
                    let meant_creation = plain.sig.receiver().is_none()
                        || returns_self(&plain.sig.output, &self_ident);
                    match EventMethod::from_method(
                        cx,
                        &attr,
                        &self_ident,
                        &name,
                        &name_aliases,
                        method,
                    ) {
                        Some(event) if cx.error_count() == errors_before => events.push(event),
                        _ => {
                            rejected_creation |= meant_creation;
                            other_items.push(ImplItem::Fn(plain));
                        }
                    }
                }
                other => other_items.push(other),
            }
        }

        let mut by_variant: HashMap<String, Ident> = HashMap::new();
        let mut by_topic: HashMap<String, Ident> = HashMap::new();
        let mut unique = Vec::with_capacity(events.len());
        for event in events {
            let method = event.method.sig.ident.clone();
            if let Some(first) = by_variant.get(&event.variant.to_string()) {
                cx.error_spanned_by(
                    &event.variant,
                    format!(
                        "duplicate event name `{}`: method `{first}` already triggers it; give each event its own name",
                        event.variant
                    ),
                );
                other_items.push(ImplItem::Fn(event.method));
            } else if let Some((topic, first)) = std::iter::once(&event.topic)
                .chain(&event.aliases)
                .find_map(|topic| by_topic.get(topic).map(|first| (topic, first)))
            {
                cx.error_spanned_by(
                    &event.variant,
                    format!(
                        "duplicate topic {topic:?}: method `{first}` is already stored or read under it; \
                         give each event its own topic"
                    ),
                );
                other_items.push(ImplItem::Fn(event.method));
            } else {
                by_variant.insert(event.variant.to_string(), method.clone());
                for topic in std::iter::once(&event.topic).chain(&event.aliases) {
                    by_topic.insert(topic.clone(), method.clone());
                }
                unique.push(event);
            }
        }
        let events = unique;
        if !rejected_creation
            && !events
                .iter()
                .any(|event| matches!(event.role, Role::Creation { .. }))
        {
            cx.error_spanned_by(
                &item.self_ty,
                format!(
                    "`{self_ident}` has no creation event: add an #[event] method that takes no `self` \
                     and returns `Self`, such as `#[event(\"Created\")] pub fn create(..) -> Self {{ .. }}`"
                ),
            );
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

impl EventMethod {
    fn from_method(
        cx: &Ctxt,
        attr: &Attribute,
        self_ident: &Ident,
        aggregate: &str,
        aggregate_aliases: &[String],
        method: ImplItemFn,
    ) -> Option<Self> {
        let sig = &method.sig;
        let args = EventArgs::parse(cx, attr, upper_camel(&sig.ident));
        let bad_shape = |tokens: &dyn quote::ToTokens, what: &str| {
            cx.error_spanned_by(
                tokens.to_token_stream(),
                format!("{what}; an #[event] method is either `fn name(fields..) -> Self` (creates the aggregate) or `fn name(&mut self, fields..)` (changes it)"),
            );
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

        let mut receiver = None;
        let mut params = Vec::new();
        for input in &sig.inputs {
            match input {
                FnArg::Receiver(r) => receiver = Some(r),
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(pat) if pat.subpat.is_none() && pat.by_ref.is_none() => {
                            Some(pat.ident.clone())
                        }
                        other => {
                            cx.error_spanned_by(other, "an event field needs a plain name, such as `amount: u64`: it is stored under that name");
                            None
                        }
                    };
                    check_field_type(cx, &typed.ty);
                    if let Some(ident) = ident {
                        params.push((ident, (*typed.ty).clone()));
                    }
                }
            }
        }
        let role = match receiver {
            None => {
                check::creation_returns_self(cx, sig, self_ident);
                creation_role(args.id.as_ref(), &mut params)
            }
            Some(r) if is_reference(r) && returns_self(&sig.output, self_ident) => {
                check::creation_takes_no_self(cx, r);
                creation_role(args.id.as_ref(), &mut params)
            }
            Some(r) => {
                check::mutation_shape(cx, r, &sig.output);
                if let Some(id) = &args.id {
                    check::no_id_on_mutation(cx, id);
                }
                Role::Mutation
            }
        };
        let kind = args.kind?;
        let (variant, payload) = match kind {
            EventKind::Fields(variant) => (variant, Payload::Fields(params)),
            EventKind::Struct(path) => {
                let variant = match &args.name {
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
                    cx.error_spanned_by(
                        &sig.inputs,
                        format!("a method for the event struct `{variant}` takes exactly one parameter of that type, such as `event: {variant}`"),
                    );
                    return None;
                }
                let (ident, ty) = params.pop()?;
                (variant, Payload::Struct(ident, Box::new(ty)))
            }
        };
        let mut aliases: Vec<String> = args.aliases.iter().map(syn::LitStr::value).collect();
        // A renamed aggregate still reads its events' old default topics; a topic
        // given explicitly was never derived from the name.
        if args.topic.is_none() {
            aliases.extend(
                aggregate_aliases
                    .iter()
                    .map(|alias| format!("{alias}.{variant}")),
            );
        }
        let topic = args
            .topic
            .map_or_else(|| format!("{aggregate}.{variant}"), |lit| lit.value());
        // Every literal part of these topics was checked where it was parsed
        // (attr.rs); the rest are Rust identifiers.
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

/// Rejects field types that cannot be stored as they are: borrowed, `impl Trait`,
/// `dyn Trait` without a box, or with lifetimes.
fn check_field_type(cx: &Ctxt, ty: &Type) {
    match ty {
        Type::Reference(reference) => cx.error_spanned_by(
            reference,
            "event fields are stored, so they must be owned: take `String` instead of `&str`, `Vec<T>` instead of `&[T]`",
        ),
        Type::ImplTrait(it) => cx.error_spanned_by(it, "event fields need a concrete type, not `impl Trait`"),
        Type::TraitObject(it) => cx.error_spanned_by(it, "event fields need a concrete type, not `dyn Trait`"),
        _ => {
            let mut found = None;
            find_lifetime(ty, &mut found);
            if let Some(span) = found {
                cx.syn_error(syn::Error::new(span, "event fields are stored, so they must be owned: remove the lifetime"));
            }
        }
    }
}

fn find_lifetime(ty: &Type, found: &mut Option<Span>) {
    use syn::visit::Visit;
    struct Finder<'a>(&'a mut Option<Span>);
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_lifetime(&mut self, lifetime: &'ast syn::Lifetime) {
            self.0.get_or_insert(lifetime.span());
        }
        fn visit_type_reference(&mut self, reference: &'ast syn::TypeReference) {
            self.0.get_or_insert(reference.span());
        }
    }
    Finder(found).visit_type(ty);
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
                "an event struct cannot be generic: it is stored under a fixed topic and decoded without type parameters",
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
}

impl EventFn {
    pub(crate) fn from_item(cx: &Ctxt, item: syn::ItemFn) -> Self {
        // `#[aggregate]` on an impl block removes the #[event]s of its methods before
        // they expand, so a method that gets here is in an impl block without it.
        let in_impl = item.sig.receiver().is_some() || names_self(&item.sig);
        let message = if in_impl {
            "#[event] on a method needs `#[aggregate]` on its impl block: write `#[aggregate] impl Name { .. }`"
        } else {
            "#[event] on a function only works on a method inside an `#[aggregate] impl` block"
        };
        cx.error_spanned_by(&item.sig.ident, message);
        EventFn { item }
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
