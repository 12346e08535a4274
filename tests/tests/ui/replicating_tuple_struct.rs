use es_core::prelude::*;

#[replicating("counter")]
pub struct Counter(u64);

fn main() {
    let _counter = Counter(0);
}
