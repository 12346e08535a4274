use es_core::interface::replication::Replicated;
use es_core::prelude::*;

#[replicated]
#[derive(serde::Deserialize)]
pub struct LeaseCopy {
    number: String,
}

fn main() {
    let copy: LeaseCopy = serde_json::from_str(r#"{"number": "N14"}"#).unwrap();
    let _ = (LeaseCopy::TYPE, copy.number);
}
