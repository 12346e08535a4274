//! Where an `#[event]` method that no `#[aggregate]` took in stands in its impl
//! block, read from the source text. The attribute sees only its own method,
//! yet one error per impl block (not one per method), and stub impls that keep
//! the aggregate's other uses from failing too, need the block's type and
//! whether this method is the block's first `#[event]` one.

/// The impl block around an `#[event]` attribute, as far as the text shows it.
pub(crate) struct EnclosingImpl {
    /// The block's type, as written: `Dog`.
    pub(crate) self_ident: syn::Ident,
    /// Whether an `#[event]` attribute comes before this one in the block.
    pub(crate) earlier_event: bool,
}

/// The impl block around the `#[event]` attribute on `line` (from 1) of `text`.
/// `None` when the text does not plainly show one, such as a header over several
/// lines or code written by another macro: the method is then reported alone.
pub(crate) fn enclosing_impl(text: &str, line: usize) -> Option<EnclosingImpl> {
    let lines: Vec<&str> = text.lines().collect();
    let attr_index = line.checked_sub(1)?;
    let attr = lines.get(attr_index)?;
    if !is_event_attr(attr) {
        return None;
    }
    let indent = indentation(attr);
    // Everything inside the block is indented further than its header.
    let (header_index, header) = lines[..attr_index]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, text)| !text.trim().is_empty() && indentation(text) < indent)?;
    let self_ident = impl_type(header)?;
    let earlier_event = lines[header_index + 1..attr_index]
        .iter()
        .any(|text| indentation(text) == indent && is_event_attr(text));
    Some(EnclosingImpl {
        self_ident,
        earlier_event,
    })
}

fn is_event_attr(line: &str) -> bool {
    let attr = line.trim_start();
    attr.starts_with("#[event]") || attr.starts_with("#[event(")
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `Dog` from `impl Dog {`; `None` for any other header.
fn impl_type(header: &str) -> Option<syn::Ident> {
    let name = header.trim().strip_prefix("impl ")?.strip_suffix('{')?;
    syn::parse_str(name.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = "\
use es_core::prelude::*;

impl Dog {
    #[event(\"Registered\")]
    pub fn register(name: String) -> Self {
        Dog { name }
    }

    /// Adds a trick.
    #[event]
    pub fn add_trick(&mut self, trick: String) {}
}

mod inner {
    impl<T> Cat<T> {
        #[event(\"Born\")]
        fn born() -> Self { todo!() }
    }
}
";

    fn around(line: usize) -> Option<(String, bool)> {
        enclosing_impl(SOURCE, line)
            .map(|found| (found.self_ident.to_string(), found.earlier_event))
    }

    #[test]
    fn the_first_event_method_of_an_impl_block_is_told_apart_from_the_others() {
        assert_eq!(around(4), Some(("Dog".to_owned(), false)));
        assert_eq!(around(10), Some(("Dog".to_owned(), true)));
    }

    #[test]
    fn anything_but_a_plain_impl_header_is_left_unread() {
        assert_eq!(around(16), None, "a generic impl block");
        assert_eq!(around(5), None, "not an #[event] line");
        assert_eq!(around(0), None);
        assert_eq!(around(99), None);
    }
}
