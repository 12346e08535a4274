use es_core::prelude::*;

#[aggregate]
pub struct Dog {
    name: String,
}

#[aggregate]
impl Dog {
    #[event("Registered", version = 2, upcast = [add_breed])]
    pub fn register(name: String) -> Self {
        Dog { name }
    }
}

fn add_breed(fields: &es_core::serde_json::Value) -> bool {
    fields.is_object()
}

fn main() {}
