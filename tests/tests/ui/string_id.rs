use es_core::prelude::*;

#[aggregate]
pub struct User {
    name: String,
}

#[aggregate]
impl User {
    // A string may be an invalid id, so it is not accepted as one: the id must
    // be built (and checked) with `OriginatorId::text(..)?` before the command.
    #[event("Registered", id = format!("user-{name}"))]
    pub fn register(name: String) -> Self {
        User { name }
    }
}

fn main() {
    let _ = User::register("ada".into());
}
