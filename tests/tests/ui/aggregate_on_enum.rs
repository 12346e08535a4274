use es_core::prelude::*;

#[aggregate]
pub enum Light {
    On,
    Off,
}

fn main() {
    let _light = Light::On;
}
