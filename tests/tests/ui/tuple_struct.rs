use es_core::prelude::*;

#[aggregate]
pub struct Counter(u64);

fn main() {
    let _counter = Counter(0);
}
