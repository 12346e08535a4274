use es_core::prelude::*;

#[aggregate]
pub struct Lease {
    number: String,
}

#[replicating("lease")]
#[aggregate]
impl Lease {
    #[event("Signed")]
    pub fn sign(number: String) -> Self {
        Lease { number }
    }
}

fn main() {
    let lease = Lease::sign("N14".into());
    let _ = lease.number;
}
