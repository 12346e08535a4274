//! `#[replicating]` above and below `#[aggregate]`, an event struct in
//! `deleted_by`, an impl block in another module, and `#[replicated]`.

use es_core::interface::replication::{Replicated, Replicating};
use es_core::prelude::*;

#[replicating("lease", exclude(notes), deleted_by("Ended", "Voided"))]
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

    #[event("Noted")]
    pub fn note(&mut self, notes: String) {
        self.notes = notes;
    }

    #[event("Ended")]
    pub fn end(&mut self) {}

    #[event(Voided)]
    pub fn void(&mut self, voided: Voided) {
        self.notes = voided.reason;
    }
}

#[event]
pub struct Voided {
    reason: String,
}

// Below #[aggregate], and with its impl block in another module, whose event
// enum `deleted_by` needs in scope.
use tenants::TenantEvent;

#[aggregate]
#[replicating("tenant", deleted_by("Left"), exclude(phone))]
pub struct Tenant {
    name: String,
    phone: String,
}

mod tenants {
    use super::*;

    #[aggregate]
    impl Tenant {
        #[event("MovedIn")]
        pub fn move_in(name: String) -> Self {
            Tenant {
                name,
                phone: String::new(),
            }
        }

        #[event("Left")]
        pub fn leave(&mut self) {}
    }
}

#[aggregate]
#[replicating("unit")]
pub struct Unit {
    floor: u8,
}

#[aggregate]
impl Unit {
    #[event("Built")]
    pub fn build(floor: u8) -> Self {
        Unit { floor }
    }
}

#[replicated("lease")]
#[derive(serde::Deserialize)]
pub struct LeaseCopy {
    number: String,
}

fn main() {
    assert_eq!(Lease::CONTRACT, "lease");
    assert_eq!(Lease::EXCLUDED, ["notes"]);
    assert!(Lease::deletes(&LeaseEvent::Ended {}));
    assert!(Lease::deletes(&LeaseEvent::Voided(Voided { reason: "x".into() })));
    assert!(!Lease::deletes(&LeaseEvent::Noted { notes: "x".into() }));
    let mut lease = Lease::sign("N14".into());
    lease.note("first floor".into());
    assert_eq!((lease.number.as_str(), lease.notes.as_str()), ("N14", "first floor"));

    assert_eq!(Tenant::CONTRACT, "tenant");
    assert_eq!(Tenant::EXCLUDED, ["phone"]);
    assert!(Tenant::deletes(&TenantEvent::Left {}));
    assert!(!Tenant::deletes(&TenantEvent::MovedIn { name: "Ada".into() }));
    let tenant = Tenant::move_in("Ada".into());
    assert_eq!((tenant.name.as_str(), tenant.phone.as_str()), ("Ada", ""));

    assert!(!Unit::deletes(&UnitEvent::Built { floor: 1 }));
    assert_eq!(Unit::build(2).floor, 2);

    assert_eq!(LeaseCopy::TYPE, "lease");
    let copy: LeaseCopy = serde_json::from_str(r#"{"number": "N14", "_type": "lease"}"#)
        .expect("a record's fields");
    assert_eq!(copy.number, "N14");
}
