//! Aggregate ids.

use uuid::Uuid;

/// The namespace of ids made by [`create_id`]; fixed forever, since changing it
/// would change every id ever derived from a name.
const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_5b7d_4e0a_9c3b_8d2f_1e6a_7b90);

/// A deterministic id derived from a name (UUID version 5), so that an aggregate
/// can be found again from a natural key such as a user name or a page slug.
/// Use it in a creation event with `#[event("Name", id = create_id(..))]`.
///
/// ```
/// use es_core::create_id;
/// assert_eq!(create_id("fido"), create_id("fido"));
/// assert_ne!(create_id("fido"), create_id("rex"));
/// assert_eq!(create_id("fido").get_version_num(), 5);
/// ```
pub fn create_id(name: &str) -> Uuid {
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}
