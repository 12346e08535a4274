use es_core::prelude::*;

#[replicated("lease")]
pub struct LeaseCopy {
    number: String,
}

fn main() {
    let copy = LeaseCopy { number: "N14".into() };
    let _ = copy.number;
}
