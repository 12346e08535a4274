//! The contracts of the replication example: the master's `Contract`, an
//! event-sourced aggregate replicated as `contract`, and the replica's
//! `ContractCopy`, the plain struct its copies are read into.

use es_core::interface::replication::Reference;
use es_core::prelude::*;
use serde::{Deserialize, Serialize};

/// A contract, as the master service keeps it. Its internal notes stay at
/// the master; terminating it deletes it at the replicas.
#[replicating("contract", exclude(internal_notes), deleted_by("Terminated"))]
#[aggregate]
pub struct Contract {
    pub number: String,
    /// The customer, an entity of another service: sent as `{"_uid", "_type"}`.
    pub customer: Reference,
    /// In cents.
    pub amount: u64,
    pub internal_notes: String,
    pub terminated: bool,
}

#[aggregate]
impl Contract {
    #[event("Signed")]
    pub fn sign(number: String, customer: Reference, amount: u64) -> Self {
        Contract {
            number,
            customer,
            amount,
            internal_notes: String::new(),
            terminated: false,
        }
    }

    #[event("Amended")]
    pub fn amend(&mut self, amount: u64) {
        self.amount = amount;
    }

    #[event("Renumbered")]
    pub fn renumber(&mut self, number: String) {
        self.number = number;
    }

    #[event("Noted")]
    pub fn note(&mut self, internal_notes: String) {
        self.internal_notes = internal_notes;
    }

    #[event("Terminated")]
    pub fn terminate(&mut self) {
        self.terminated = true;
    }
}

/// A contract as a replica keeps it: the fields it needs of the master's.
#[replicated("contract")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractCopy {
    pub number: String,
    pub customer: Reference,
    pub amount: u64,
}
