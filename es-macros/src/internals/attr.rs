//! The arguments of the attributes: `#[aggregate(name = "...", aliases = [..],
//! version = N, upcast = [..])]` and `#[event("Name", topic = "...", id = expr,
//! aliases = [..], version = N, upcast = [..])]` / `#[event(Struct)]`.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitInt, LitStr, Path, Token};

use super::ctxt::Ctxt;

/// Arguments of `#[aggregate]` on an impl block.
#[derive(Default)]
pub(crate) struct AggregateArgs {
    /// The aggregate's name in topics, if not the type's.
    pub(crate) name: Option<LitStr>,
    /// Former names, whose topics are still read.
    pub(crate) aliases: Vec<LitStr>,
    /// The schema version of the aggregate's state in snapshots, and its upcast steps.
    pub(crate) schema: SchemaArgs,
}

/// `version = N, upcast = [step, ..]` as written.
#[derive(Default)]
pub(crate) struct SchemaArgs {
    pub(crate) version: Option<LitInt>,
    pub(crate) upcast: Option<(Expr, Vec<Path>)>,
}

impl SchemaArgs {
    /// Takes `version` or `upcast`; false for any other key.
    fn accept(&mut self, cx: &Ctxt, pair: &KeyValue) -> bool {
        if pair.key == "version" {
            match &pair.value {
                Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(lit),
                    ..
                }) => self.version = Some(lit.clone()),
                other => cx.error_spanned_by(
                    other,
                    "`version` must be an integer literal, such as `version = 2`",
                ),
            }
            true
        } else if pair.key == "upcast" {
            let steps = match &pair.value {
                Expr::Array(array) => array
                    .elems
                    .iter()
                    .filter_map(|elem| match elem {
                        Expr::Path(path) if path.qself.is_none() => Some(path.path.clone()),
                        other => {
                            cx.error_spanned_by(
                                other,
                                "an upcast step is the path of a function \
                                 `fn(&mut es_core::serde_json::Value)`",
                            );
                            None
                        }
                    })
                    .collect(),
                other => {
                    cx.error_spanned_by(
                        other,
                        "`upcast` takes a list of functions: `upcast = [v1_to_v2, v2_to_v3]`",
                    );
                    Vec::new()
                }
            };
            self.upcast = Some((pair.value.clone(), steps));
            true
        } else {
            false
        }
    }
}

/// The longest name, alias or topic accepted in an attribute.
const MAX_TOPIC_PART_BYTES: usize = 255;

/// `aliases = ["..", ..]` as written.
fn string_list(cx: &Ctxt, value: &Expr) -> Vec<LitStr> {
    match value {
        Expr::Array(array) => array
            .elems
            .iter()
            .filter_map(|elem| string_literal(cx, elem, "an alias"))
            .collect(),
        other => {
            cx.error_spanned_by(
                other,
                "`aliases` takes a list of strings: `aliases = [\"OldName\"]`",
            );
            Vec::new()
        }
    }
}

/// One `key = value` argument.
struct KeyValue {
    key: Ident,
    value: Expr,
}

impl Parse for KeyValue {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.parse()?;
        input.parse::<Token![=]>()?;
        Ok(KeyValue {
            key,
            value: input.parse()?,
        })
    }
}

fn string_literal(cx: &Ctxt, value: &Expr, what: &str) -> Option<LitStr> {
    match value {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => {
            // Each of these is written into stored topics: a topic another store
            // (PostgreSQL's text refuses NUL) or a reader could not take back
            // must fail here, not at the first save.
            let text = lit.value();
            let plain = !text.is_empty()
                && text.len() <= MAX_TOPIC_PART_BYTES
                && text.trim() == text
                && !text.chars().any(char::is_control);
            if !plain {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "{what} must be 1 to {MAX_TOPIC_PART_BYTES} bytes, with no control \
                         characters (such as NUL) and no leading or trailing spaces: it is \
                         stored in event topics"
                    ),
                );
            }
            Some(lit.clone())
        }
        other => {
            cx.error_spanned_by(other, format!("{what} must be a string literal"));
            None
        }
    }
}

impl AggregateArgs {
    pub(crate) fn parse(cx: &Ctxt, tokens: proc_macro2::TokenStream) -> Self {
        let mut args = AggregateArgs::default();
        let parsed =
            syn::parse::Parser::parse2(Punctuated::<KeyValue, Token![,]>::parse_terminated, tokens);
        let pairs = match parsed {
            Ok(pairs) => pairs,
            Err(error) => {
                cx.syn_error(error);
                return args;
            }
        };
        for pair in pairs {
            if pair.key == "name" {
                if args.name.is_some() {
                    cx.error_spanned_by(&pair.key, "`name` is given twice");
                }
                args.name = string_literal(cx, &pair.value, "`name`");
            } else if pair.key == "aliases" {
                args.aliases = string_list(cx, &pair.value);
            } else if !args.schema.accept(cx, &pair) {
                unknown_key(
                    cx,
                    &pair.key,
                    &["name", "aliases", "version", "upcast"],
                    "#[aggregate] on an impl block accepts `name = \"...\"`, \
                     `aliases = [\"...\"]`, `version = N` and `upcast = [..]`",
                );
            }
        }
        args
    }
}

/// What an `#[event(...)]` on a method names.
pub(crate) enum EventKind {
    /// `#[event("Name")]` or bare `#[event]`: the method's parameters are the fields.
    Fields(Ident),
    /// `#[event(SomeStruct)]`: a struct declared with `#[event]`, the method's one parameter.
    Struct(Path),
}

/// Arguments of `#[event]` on a method.
pub(crate) struct EventArgs {
    pub(crate) kind: Option<EventKind>,
    /// `name = "..."` on a struct event: the variant's name, if not the struct's.
    pub(crate) name: Option<LitStr>,
    pub(crate) topic: Option<LitStr>,
    pub(crate) id: Option<Expr>,
    /// Former topics, still read.
    pub(crate) aliases: Vec<LitStr>,
    /// The schema version of the event's fields, and its upcast steps.
    pub(crate) schema: SchemaArgs,
}

impl EventArgs {
    /// Parses `#[event]`, `#[event("Name", ..)]` or `#[event(Struct, ..)]`.
    /// `default_name` is used for a bare `#[event]`.
    pub(crate) fn parse(cx: &Ctxt, attr: &syn::Attribute, default_name: Ident) -> Self {
        let mut args = EventArgs {
            kind: None,
            name: None,
            topic: None,
            id: None,
            aliases: Vec::new(),
            schema: SchemaArgs::default(),
        };
        let tokens = match &attr.meta {
            syn::Meta::Path(_) => {
                args.kind = Some(EventKind::Fields(default_name));
                return args;
            }
            syn::Meta::List(list) => list.tokens.clone(),
            syn::Meta::NameValue(nv) => {
                cx.error_spanned_by(nv, "write `#[event(\"Name\")]`, not `#[event = ...]`");
                return args;
            }
        };
        let parsed = syn::parse::Parser::parse2(
            |input: ParseStream<'_>| {
                let kind = if input.peek(LitStr) {
                    let name: LitStr = input.parse()?;
                    Some(EventKind::Fields(event_ident(&name)?))
                } else if input.peek(Ident) && !input.peek2(Token![=]) {
                    Some(EventKind::Struct(input.parse()?))
                } else {
                    None
                };
                if kind.is_some() && !input.is_empty() {
                    input.parse::<Token![,]>()?;
                }
                let rest = Punctuated::<KeyValue, Token![,]>::parse_terminated(input)?;
                Ok((kind, rest))
            },
            tokens,
        );
        let (kind, pairs) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                cx.syn_error(error);
                return args;
            }
        };
        args.kind = Some(kind.unwrap_or(EventKind::Fields(default_name)));
        for pair in pairs {
            if pair.key == "topic" {
                args.topic = string_literal(cx, &pair.value, "`topic`");
            } else if pair.key == "id" {
                args.id = Some(pair.value);
            } else if pair.key == "name" && matches!(args.kind, Some(EventKind::Struct(_))) {
                args.name = string_literal(cx, &pair.value, "`name`");
            } else if pair.key == "aliases" {
                args.aliases = string_list(cx, &pair.value);
            } else if !args.schema.accept(cx, &pair) {
                unknown_key(
                    cx,
                    &pair.key,
                    &["topic", "id", "aliases", "version", "upcast", "name"],
                    "#[event] accepts a name (\"Name\") or an event struct (then \
                     `name = \"...\"` to name its variant), then `topic = \"...\"`, \
                     `aliases = [\"...\"]`, `version = N`, `upcast = [..]` and, on a creation \
                     event, `id = <expression>`",
                );
            }
        }
        args
    }
}

/// An unknown key: the known key it is closest to, if it looks like a typo of
/// one, else the list of what is accepted.
fn unknown_key(cx: &Ctxt, key: &Ident, known: &[&str], accepted: &str) {
    let written = key.to_string();
    let message = match closest(&written, known) {
        Some(meant) => format!("unknown key `{written}`; did you mean `{meant}`?"),
        None => format!("unknown key `{written}`; {accepted}"),
    };
    cx.error_spanned_by(key, message);
}

/// The known word within two edits of `written` (one for short words), if any.
pub(crate) fn closest<'a>(written: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = if written.chars().count() <= 3 { 1 } else { 2 };
    known
        .iter()
        .map(|candidate| (edit_distance(written, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance: insertions, deletions and substitutions of one character.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// The event name as an identifier: it becomes a variant of the event enum.
pub(crate) fn event_ident(name: &LitStr) -> syn::Result<Ident> {
    let value = name.value();
    match syn::parse_str::<Ident>(&value) {
        Ok(_) if value.chars().next().is_some_and(|c| c.is_ascii_uppercase()) => {
            Ok(Ident::new(&value, name.span()))
        }
        _ => Err(syn::Error::new(
            name.span(),
            format!(
                "event name {:?} must be an UpperCamelCase identifier, such as \"TrickAdded\": \
                 it becomes a variant of the event enum (use `topic = \"...\"` for any other \
                 stored name)",
                name.value()
            ),
        )),
    }
}

/// `add_trick` as `AddTrick`, the name of a bare `#[event]` on `fn add_trick`.
pub(crate) fn upper_camel(ident: &Ident) -> Ident {
    let raw = ident.to_string();
    let raw = raw.trim_start_matches("r#");
    let mut out = String::with_capacity(raw.len());
    let mut upper = true;
    for c in raw.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    Ident::new(&out, ident.span())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_become_upper_camel_event_names() {
        let name =
            |raw: &str| upper_camel(&Ident::new(raw, proc_macro2::Span::call_site())).to_string();
        assert_eq!(name("add_trick"), "AddTrick");
        assert_eq!(name("register"), "Register");
        assert_eq!(name("set_2_values"), "Set2Values");
        assert_eq!(name("_private"), "Private");
    }

    #[test]
    fn a_misspelled_key_is_matched_to_the_key_it_is_closest_to() {
        let keys = ["topic", "id", "aliases", "version", "upcast", "name"];
        assert_eq!(closest("topc", &keys), Some("topic"));
        assert_eq!(closest("verison", &keys), Some("version"));
        assert_eq!(closest("alias", &keys), Some("aliases"));
        assert_eq!(closest("ids", &keys), Some("id"));
        assert_eq!(closest("retries", &keys), None);
        assert_eq!(closest("x", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }

    #[test]
    fn event_names_must_be_upper_camel_identifiers() {
        let parse = |name: &str| event_ident(&LitStr::new(name, proc_macro2::Span::call_site()));
        assert_eq!(
            parse("TrickAdded").map(|i| i.to_string()).ok().as_deref(),
            Some("TrickAdded")
        );
        for bad in [
            "trick_added",
            "Trick Added",
            "Dog.Registered",
            "",
            "Self",
            "1st",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
