#![allow(dead_code)] // The crash follower and the test each use their own part.

//! The leader and follower of the follower crash test: tickets sold, and a
//! receipt issued for each, naming the ticket's notification id. A receipt
//! gets a fresh id, so an event processed twice would leave two receipts.

use es_core::prelude::*;
use es_core::system::Policies;

#[aggregate]
pub struct Ticket {
    seat: u64,
}

#[aggregate]
impl Ticket {
    #[event("Sold")]
    pub fn sell(seat: u64) -> Self {
        Ticket { seat }
    }
}

#[aggregate]
pub struct Receipt {
    /// The notification id of the ticket's sale in the box office's log.
    pub sale: u64,
}

#[aggregate]
impl Receipt {
    #[event("Issued")]
    pub fn issue(sale: u64) -> Self {
        Receipt { sale }
    }
}

/// A receipt per ticket sold.
pub fn receipts() -> Policies {
    Policies::new().on(|_: DomainEvent<TicketEvent>, context| {
        let sale = context.notification_id();
        context.collect(Receipt::issue(sale));
        Ok(())
    })
}

pub const LEADER: &str = "box_office";
pub const FOLLOWER: &str = "receipts";
