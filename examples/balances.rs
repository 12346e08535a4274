//! A projection: account balances kept in a SQLite table of the program's
//! own, beside the events, from the bank's notification log. Each event
//! changes the table once, with the projection's position in the same
//! transaction, so a crash or a restart never counts an event twice.
//!
//! ```text
//! cargo run -p examples --example balances
//! ```
//!
//! Everything goes to a temporary directory, so each run starts afresh.

use std::sync::Arc;
use std::time::Duration;

use es_core::persistence::{SqliteDatabase, SqliteView};
use es_core::prelude::*;
use es_core::system::{Projection, ProjectionRunner};

/// A bank account; its balance is in cents.
#[aggregate]
pub struct Account {
    owner: String,
    balance: i64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open(owner: String) -> Self {
        Account { owner, balance: 0 }
    }

    #[event("Deposited")]
    pub fn deposit(&mut self, cents: i64) {
        self.balance += cents;
    }

    #[event("Withdrawn")]
    pub fn withdraw(&mut self, cents: i64) {
        self.balance -= cents;
    }
}

/// The balances table, kept from the bank's events.
fn balances(view: SqliteView) -> Result<Projection<SqliteView>, es_core::Error> {
    view.execute_batch(
        "CREATE TABLE IF NOT EXISTS balances (
            account TEXT PRIMARY KEY, owner TEXT NOT NULL, cents INTEGER NOT NULL
        )",
    )?;
    Ok(
        Projection::new("balances", view).on(|event: DomainEvent<AccountEvent>, transaction| {
            let account = event.originator_id.to_string();
            match event.payload {
                AccountEvent::Opened { owner } => {
                    transaction.execute(
                        "INSERT INTO balances (account, owner, cents) VALUES (?1, ?2, 0)",
                        [&account, &owner],
                    )?;
                }
                AccountEvent::Deposited { cents } => {
                    transaction.execute(
                        "UPDATE balances SET cents = cents + ?1 WHERE account = ?2",
                        es_core::rusqlite::params![cents, account],
                    )?;
                }
                AccountEvent::Withdrawn { cents } => {
                    transaction.execute(
                        "UPDATE balances SET cents = cents - ?1 WHERE account = ?2",
                        es_core::rusqlite::params![cents, account],
                    )?;
                }
            }
            Ok(())
        }),
    )
}

/// Every row of the table, by owner.
fn rows(view: &SqliteView) -> Result<Vec<(String, i64)>, es_core::Error> {
    view.read(|connection| {
        let mut select = connection.prepare("SELECT owner, cents FROM balances ORDER BY owner")?;
        let rows = select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile_dir()?;
    let path = dir.join("bank.sqlite3");
    let bank = Arc::new(Application::builder().name("bank").sqlite(&path).build()?);
    // The view's table goes in the same database file as the events.
    let view = SqliteView::new(SqliteDatabase::open(&path, Duration::from_secs(5))?)?;
    let runner = ProjectionRunner::start(Arc::clone(&bank), balances(view)?)?;

    let mut ada = Account::open("Ada".into());
    ada.deposit(10_000);
    let mut grace = Account::open("Grace".into());
    grace.deposit(2_500);
    grace.withdraw(500);
    let saved = bank.save(&mut (&mut ada, &mut grace))?;
    // Read your writes: wait until the table has taken the save in.
    let last = saved
        .last()
        .map_or(0, |recording| recording.notification_id);
    runner.wait(last, Duration::from_secs(10))?;
    for (owner, cents) in rows(runner.projection().view())? {
        println!("{owner}: {}.{:02}", cents / 100, cents % 100);
    }
    runner.stop()?;
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("es-balances-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_holds_every_balance_after_the_runner_waits() {
        let dir = tempfile_dir().expect("dir");
        let path = dir.join("bank.sqlite3");
        let bank = Arc::new(
            Application::builder()
                .name("bank")
                .sqlite(&path)
                .build()
                .expect("bank"),
        );
        let view =
            SqliteView::new(SqliteDatabase::open(&path, Duration::from_secs(5)).expect("db"))
                .expect("view");
        let runner =
            ProjectionRunner::start(Arc::clone(&bank), balances(view).expect("projection"))
                .expect("runner");
        let mut account = Account::open("Lin".into());
        account.deposit(700);
        account.withdraw(200);
        let saved = bank.save(&mut account).expect("save");
        runner
            .wait(saved[2].notification_id, Duration::from_secs(10))
            .expect("wait");
        assert_eq!(
            rows(runner.projection().view()).expect("rows"),
            [("Lin".to_owned(), 500)]
        );
        runner.stop().expect("stop");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
