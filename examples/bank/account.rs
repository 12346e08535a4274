//! The bank's domain: accounts whose balances change only through events,
//! and the rules every command checks before it records one. Shared by the
//! `bank` example (the application on its own) and `bank_api` (the same
//! accounts behind a JSON API).

use std::fmt;

use es_core::prelude::*;

/// Money in whole cents: integers add up exactly, where floats would not.
pub type Cents = u64;

/// A bank account. Its balance is only ever changed by events.
#[aggregate]
pub struct Account {
    owner: String,
    balance: Cents,
}

#[aggregate]
impl Account {
    /// Opens an account: the creation event.
    #[event("Opened")]
    pub fn open(owner: String, opening_balance: Cents) -> Self {
        Account {
            owner,
            balance: opening_balance,
        }
    }

    // The event methods below are private: their bodies are replayed every time
    // an account is loaded, so they cannot fail and must not check rules that
    // may change. The public commands check, then trigger them.

    #[event("Deposited")]
    fn credit(&mut self, amount: Cents) {
        self.balance += amount;
    }

    #[event("Withdrawn")]
    fn debit(&mut self, amount: Cents) {
        self.balance -= amount;
    }

    // The other account is recorded for the history; the balance does not need it.
    #[event("TransferSent")]
    fn send(&mut self, to: OriginatorId, amount: Cents) {
        self.balance -= amount;
    }

    #[event("TransferReceived")]
    fn receive(&mut self, from: OriginatorId, amount: Cents) {
        self.balance += amount;
    }

    /// Pays `amount` into the account.
    pub fn deposit(&mut self, amount: Cents) -> Result<(), AccountError> {
        self.check_credit(amount)?;
        self.credit(amount);
        Ok(())
    }

    /// Takes `amount` out of the account, unless that would overdraw it.
    pub fn withdraw(&mut self, amount: Cents) -> Result<(), AccountError> {
        self.check_debit(amount)?;
        self.debit(amount);
        Ok(())
    }

    /// Moves `amount` from this account to `to`. Both accounts are checked
    /// before either changes, so a refused transfer leaves both as they were.
    /// Save both in one `save` so that the store never holds half a transfer.
    pub fn transfer_to(&mut self, to: &mut Account, amount: Cents) -> Result<(), AccountError> {
        if self.id() == to.id() {
            return Err(AccountError::SameAccount);
        }
        self.check_debit(amount)?;
        to.check_credit(amount)?;
        self.send(to.id(), amount);
        to.receive(self.id(), amount);
        Ok(())
    }

    fn check_credit(&self, amount: Cents) -> Result<(), AccountError> {
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        match self.balance.checked_add(amount) {
            Some(_) => Ok(()),
            None => Err(AccountError::BalanceOverflow),
        }
    }

    fn check_debit(&self, amount: Cents) -> Result<(), AccountError> {
        if amount == 0 {
            return Err(AccountError::ZeroAmount);
        }
        if amount > self.balance {
            return Err(AccountError::InsufficientFunds {
                balance: self.balance,
                requested: amount,
            });
        }
        Ok(())
    }

    /// Who the account belongs to.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The balance, in cents.
    pub fn balance(&self) -> Cents {
        self.balance
    }
}

/// Why a command on an account was refused. A refused command records no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountError {
    /// Moving nothing would record an event that changes nothing.
    ZeroAmount,
    /// The withdrawal or transfer would take the balance below zero.
    InsufficientFunds {
        /// The balance at the time.
        balance: Cents,
        /// The amount asked for.
        requested: Cents,
    },
    /// The balance would no longer fit in a `u64` of cents.
    BalanceOverflow,
    /// A transfer from an account to itself.
    SameAccount,
}

impl fmt::Display for AccountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountError::ZeroAmount => write!(f, "the amount must be more than zero"),
            AccountError::InsufficientFunds { balance, requested } => write!(
                f,
                "insufficient funds: taking {} would overdraw a balance of {}",
                Money(*requested),
                Money(*balance)
            ),
            AccountError::BalanceOverflow => write!(f, "the balance would be too large"),
            AccountError::SameAccount => write!(f, "cannot transfer from an account to itself"),
        }
    }
}

impl std::error::Error for AccountError {}

/// An amount given as dollars and cents, such as `dollars(25, 50)` for $25.50.
pub const fn dollars(dollars: u64, cents: u64) -> Cents {
    dollars * 100 + cents
}

/// Formats cents as dollars, for people to read.
pub struct Money(pub Cents);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment, so amounts line up in columns.
        f.pad(&format!("${}.{:02}", self.0 / 100, self.0 % 100))
    }
}
