use es_core::prelude::*;

#[replicated("light")]
#[derive(serde::Deserialize)]
pub enum LightCopy {
    On,
    Off,
}

fn main() {
    let _light = LightCopy::On;
}
