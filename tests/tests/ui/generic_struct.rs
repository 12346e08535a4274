use es_core::prelude::*;

#[aggregate]
pub struct Dog<T> {
    name: String,
    tricks: Vec<T>,
}

fn main() {}
