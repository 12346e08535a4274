use es_core::prelude::*;

#[event("Barked")]
pub fn bark(loudness: u8) -> u8 {
    loudness + 1
}

fn main() {
    let _ = bark(3);
}
