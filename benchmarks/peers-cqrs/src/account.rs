//! The benchmark's bank account, written the way cqrs-es wants an aggregate:
//! a command enum, a `DomainEvent` enum, and an `Aggregate` impl with `handle`
//! (business rules, emits events through the sink) and `apply` (state only).

use std::fmt;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

/// Opening balance of every account (benchmarks/README.md).
pub const OPENING_BALANCE: i64 = 100;

#[derive(Debug, Serialize, Deserialize)]
pub enum AccountCommand {
    Open { owner: String, balance: i64 },
    Deposit { amount: i64, note: String },
}

/// cqrs-es events carry no timestamp of their own (the envelope has only id,
/// sequence, payload and metadata), so `Deposited` carries one as a field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    Opened {
        owner: String,
        balance: i64,
    },
    Deposited {
        amount: i64,
        note: String,
        timestamp: DateTime<Utc>,
    },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Opened { .. } => "Opened".to_string(),
            Self::Deposited { .. } => "Deposited".to_string(),
        }
    }

    fn event_version(&self) -> String {
        "1.0".to_string()
    }
}

#[derive(Debug)]
pub enum AccountError {
    AlreadyOpen,
    NotOpen,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyOpen => f.write_str("the account is already open"),
            Self::NotOpen => f.write_str("the account is not open"),
        }
    }
}

impl std::error::Error for AccountError {}

/// `Serialize`/`Deserialize` are required by cqrs-es (snapshots store the aggregate as JSON);
/// `Clone` only because `MemStore`'s derived `Clone` asks for it.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BankAccount {
    pub opened: bool,
    pub owner: String,
    pub balance: i64,
}

impl Aggregate for BankAccount {
    const TYPE: &'static str = "bank_account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            AccountCommand::Open { owner, balance } => {
                if self.opened {
                    return Err(AccountError::AlreadyOpen);
                }
                sink.write(AccountEvent::Opened { owner, balance }, self)
                    .await;
            }
            AccountCommand::Deposit { amount, note } => {
                if !self.opened {
                    return Err(AccountError::NotOpen);
                }
                let timestamp = Utc::now();
                sink.write(
                    AccountEvent::Deposited {
                        amount,
                        note,
                        timestamp,
                    },
                    self,
                )
                .await;
            }
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::Opened { owner, balance } => {
                self.opened = true;
                self.owner = owner;
                self.balance = balance;
            }
            AccountEvent::Deposited { amount, .. } => self.balance += amount,
        }
    }
}

/// The command that opens account `i`.
pub fn open(i: usize) -> AccountCommand {
    AccountCommand::Open {
        owner: format!("owner-{i}"),
        balance: OPENING_BALANCE,
    }
}

/// The amount of command number `k` on an account (counting from 0).
pub fn amount(k: usize) -> i64 {
    10 + (k % 90) as i64
}

/// Command number `k` on an account.
pub fn deposit(k: usize) -> AccountCommand {
    AccountCommand::Deposit {
        amount: amount(k),
        note: format!("note {k}"),
    }
}

/// The event command number `k` records; for filling a store without commands (W3).
pub fn deposited(k: usize) -> AccountEvent {
    AccountEvent::Deposited {
        amount: amount(k),
        note: format!("note {k}"),
        timestamp: Utc::now(),
    }
}

/// The balance of an account opened and then given commands `0..commands`.
pub fn expected_balance(commands: usize) -> i64 {
    OPENING_BALANCE + (0..commands).map(amount).sum::<i64>()
}
