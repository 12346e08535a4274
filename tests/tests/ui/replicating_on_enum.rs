use es_core::prelude::*;

#[replicating("light")]
pub enum Light {
    On,
    Off,
}

fn main() {
    let _light = Light::On;
}
