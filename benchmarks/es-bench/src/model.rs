//! The bank account of the workloads, as this crate's users write it, and the
//! same events as plain serde types for the raw baselines.

use es_core::prelude::*;
use serde::{Deserialize, Serialize};

#[aggregate]
pub struct BankAccount {
    owner: String,
    pub balance: i64,
}

#[aggregate]
impl BankAccount {
    #[event("Opened")]
    pub fn open(owner: String, balance: i64) -> Self {
        BankAccount { owner, balance }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, amount: i64, note: String) {
        self.balance += amount;
    }
}

/// Command number `k` on an account, as the workloads define it.
pub fn command(k: u64) -> (i64, String) {
    (10 + (k % 90) as i64, format!("note {k}"))
}

/// A log of `events` events: accounts of 100 events each (opened, then
/// deposits), one save per account.
pub fn fill_log(app: &Application, events: usize) -> es_core::Result<()> {
    let per_account = 100;
    for i in 0..events.div_ceil(per_account) {
        let mut account = BankAccount::open(owner(i), 100);
        for k in 1..per_account as u64 {
            let (amount, note) = command(k);
            account.deposit(amount, note);
        }
        app.save(&mut account)?;
    }
    Ok(())
}

pub fn owner(i: usize) -> String {
    format!("owner-{i}")
}

/// A stored event's body as the raw baselines write it: the shape es-core's
/// JSON transcoder gives the same event, so both store and decode the same bytes.
#[derive(Serialize, Deserialize)]
pub struct RawBody<T> {
    pub timestamp: chrono::DateTime<chrono::Utc>,
    pub data: T,
}

#[derive(Serialize, Deserialize)]
pub struct RawOpened {
    pub owner: String,
    pub balance: i64,
}

#[derive(Serialize, Deserialize)]
pub struct RawDeposited {
    pub amount: i64,
    pub note: String,
}

pub const OPENED: &str = "BankAccount.Opened";
pub const DEPOSITED: &str = "BankAccount.Deposited";

pub fn encode_opened(i: usize) -> Vec<u8> {
    encode(RawOpened {
        owner: owner(i),
        balance: 100,
    })
}

pub fn encode_deposited(k: u64) -> Vec<u8> {
    let (amount, note) = command(k);
    encode(RawDeposited { amount, note })
}

fn encode<T: Serialize>(data: T) -> Vec<u8> {
    let body = RawBody {
        timestamp: chrono::Utc::now(),
        data,
    };
    serde_json::to_vec(&body).expect("plain structs encode")
}

/// Rebuilds an account's balance and version from its stored bodies, as a
/// hand-written replay would.
pub fn replay_raw<'a>(
    rows: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> serde_json::Result<(i64, u64)> {
    let (mut balance, mut version) = (0, 0);
    for (topic, state) in rows {
        if topic == OPENED {
            balance = serde_json::from_slice::<RawBody<RawOpened>>(state)?
                .data
                .balance;
        } else {
            balance += serde_json::from_slice::<RawBody<RawDeposited>>(state)?
                .data
                .amount;
        }
        version += 1;
    }
    Ok((balance, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_raw_bodies_are_the_bytes_es_core_stores() {
        let app = Application::builder().in_memory().build().expect("app");
        let mut account = BankAccount::open(owner(1), 100);
        let (amount, note) = command(0);
        account.deposit(amount, note);
        app.save(&mut account).expect("save");
        let stored = app
            .recorder()
            .select_notifications(1, 10, None, &[])
            .expect("log");
        let rows: Vec<(&str, &[u8])> = stored
            .iter()
            .map(|n| (n.event.topic.as_str(), n.event.state.as_slice()))
            .collect();
        assert_eq!(rows[0].0, OPENED);
        assert_eq!(rows[1].0, DEPOSITED);
        assert_eq!(replay_raw(rows).expect("decode"), (110, 2));
    }
}
