use es_core::interface::replication::Replicating;
use es_core::prelude::*;

#[replicating("lease", exclude(note))]
#[aggregate]
pub struct Lease {
    number: String,
    notes: String,
}

#[aggregate]
impl Lease {
    #[event("Signed")]
    pub fn sign(number: String) -> Self {
        Lease { number, notes: String::new() }
    }

    #[event("Ended")]
    pub fn end(&mut self) {}
}

fn main() {
    let mut lease = Lease::sign("N14".into());
    lease.end();
    let _ = (Lease::CONTRACT, Lease::EXCLUDED, lease.number, lease.notes);
}
