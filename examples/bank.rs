//! Bank accounts: business rules, atomic saves of two aggregates, conflicts and
//! an account's history.
//!
//! Shows commands that validate first and record an event only when the rule
//! holds (a withdrawal that would overdraw an account is refused with an error
//! and records nothing), a transfer that changes two accounts and saves them in
//! one transaction, how two writers of one account are kept from both
//! succeeding, and an account's history read back event by event.
//!
//! Run it with:
//!
//! ```text
//! cargo run -p examples --example bank
//! ```
//!
//! Events go to the SQLite file `events.sqlite3` in the working directory, so
//! each run adds to what the runs before it stored. The application is named
//! "bank", so its settings can be given as `BANK_<KEY>` as well as `<KEY>`:
//! e.g. `BANK_SQLITE_DBNAME=bank.sqlite3` to keep it apart from other
//! examples, or `PERSISTENCE_MODULE=memory` to keep everything in memory.

use es_core::Error;
use es_core::prelude::*;

#[path = "bank/account.rs"]
mod account;

use account::{Account, AccountEvent, Money, dollars};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::builder().name("bank").build()?;
    println!("Events are kept in {:?}.\n", app.persistence());

    let mut alice = Account::open("Alice".into(), dollars(100, 0));
    let mut bob = Account::open("Bob".into(), dollars(20, 0));
    app.save(&mut [&mut alice, &mut bob])?;
    for account in [&alice, &bob] {
        println!(
            "Opened {}'s account {} with {}",
            account.owner(),
            account.id(),
            Money(account.balance())
        );
    }

    alice.deposit(dollars(25, 50))?;
    alice.withdraw(dollars(10, 0))?;
    app.save(&mut alice)?;
    println!(
        "Alice deposited $25.50 and withdrew $10.00: her balance is {}",
        Money(alice.balance())
    );

    // A refusal is an ordinary error: report it and carry on. The account is
    // unchanged and has no new event to save.
    if let Err(refusal) = bob.withdraw(dollars(50, 0)) {
        println!("\nBob cannot withdraw $50.00: {refusal}");
    }
    println!(
        "Bob's balance is still {}, with {} unsaved events",
        Money(bob.balance()),
        bob.pending_events().len()
    );

    // Both accounts' events are committed together, or not at all.
    alice.transfer_to(&mut bob, dollars(40, 0))?;
    let recordings = app.save(&mut [&mut alice, &mut bob])?;
    println!("\nAlice transferred $40.00 to Bob, saved in one transaction:");
    for recording in &recordings {
        println!(
            "  notification {:<4} {}",
            recording.notification_id,
            recording.event.topic()
        );
    }
    if let Err(refusal) = bob.transfer_to(&mut alice, dollars(1000, 0)) {
        println!("Bob cannot transfer $1000.00 to Alice: {refusal}");
    }

    // Two tellers load the same account and each pays out from their copy.
    // Both new events would be the same version of the account, so only the
    // first save stands; the second is a conflict and writes nothing. This is
    // what keeps two withdrawals from both spending one balance.
    let mut teller_1: Account = app.repository().get(alice.id())?;
    let mut teller_2: Account = app.repository().get(alice.id())?;
    teller_1.withdraw(dollars(70, 0))?;
    teller_2.withdraw(dollars(70, 0))?;
    app.save(&mut teller_1)?;
    println!("\nTwo tellers each paid out $70.00 from Alice's account at once.");
    match app.save(&mut teller_2) {
        Err(error) if error.is_conflict() => {
            println!("The second payment was not saved: {error}");
            // Reload and retry the command: on the fresh balance it is refused.
            let mut fresh: Account = app.repository().get(alice.id())?;
            if let Err(refusal) = fresh.withdraw(dollars(70, 0)) {
                println!("Retried on the fresh balance, it is refused: {refusal}");
            }
        }
        Err(error) => return Err(error.into()),
        Ok(_) => return Err("two payments from one version of an account were both saved".into()),
    }

    // Accounts are rebuilt from their events, so these are the stored balances.
    let alice: Account = app.repository().get(alice.id())?;
    let bob: Account = app.repository().get(bob.id())?;
    println!("\nBalances in the store:");
    for account in [&alice, &bob] {
        println!(
            "  {:<6} {:>9}  (version {})",
            account.owner(),
            Money(account.balance()),
            account.version()
        );
    }

    for account in [&alice, &bob] {
        println!("\nHistory of {}'s account:", account.owner());
        print_history(&app, account.id())?;
    }
    Ok(())
}

/// Prints every stored event of one account, oldest first: each is a fact,
/// with the version it gave the account and when it happened.
fn print_history(app: &Application, id: OriginatorId) -> Result<(), Error> {
    for event in app.repository().history::<Account>(id)? {
        let what = match event.payload {
            AccountEvent::Opened {
                owner,
                opening_balance,
            } => format!("opened by {owner} with {}", Money(opening_balance)),
            AccountEvent::Deposited { amount } => format!("deposit of {}", Money(amount)),
            AccountEvent::Withdrawn { amount } => format!("withdrawal of {}", Money(amount)),
            AccountEvent::TransferSent { to, amount } => {
                format!("sent {} to account {to}", Money(amount))
            }
            AccountEvent::TransferReceived { from, amount } => {
                format!("received {} from account {from}", Money(amount))
            }
        };
        println!(
            "  version {}  {}  {what}",
            event.originator_version,
            event.timestamp.format("%Y-%m-%d %H:%M:%S%.3f UTC")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::account::AccountError;
    use super::*;

    #[test]
    fn an_overdraft_is_refused_and_records_nothing() {
        let mut account = Account::open("Alice".into(), dollars(10, 0));
        let refusal = account.withdraw(dollars(10, 1));
        assert_eq!(
            refusal,
            Err(AccountError::InsufficientFunds {
                balance: 1000,
                requested: 1001
            })
        );
        assert_eq!(account.balance(), 1000);
        assert_eq!(account.pending_events().len(), 1);
        assert_eq!(account.withdraw(0), Err(AccountError::ZeroAmount));
        assert_eq!(
            account.deposit(u64::MAX),
            Err(AccountError::BalanceOverflow)
        );
    }

    #[test]
    fn a_transfer_saves_both_accounts_together() -> Result<(), Box<dyn std::error::Error>> {
        let app = Application::builder().in_memory().build()?;
        let mut alice = Account::open("Alice".into(), dollars(50, 0));
        let mut bob = Account::open("Bob".into(), 0);
        app.save(&mut [&mut alice, &mut bob])?;

        alice.transfer_to(&mut bob, dollars(20, 0))?;
        let recordings = app.save(&mut [&mut alice, &mut bob])?;
        assert_eq!(recordings.len(), 2);
        let alice: Account = app.repository().get(alice.id())?;
        let mut bob: Account = app.repository().get(bob.id())?;
        assert_eq!(
            (alice.balance(), bob.balance()),
            (dollars(30, 0), dollars(20, 0))
        );

        let mut same = app.repository().get::<Account>(bob.id())?;
        assert_eq!(
            bob.transfer_to(&mut same, 1),
            Err(AccountError::SameAccount)
        );
        Ok(())
    }

    #[test]
    fn an_account_history_lists_its_events_oldest_first() -> Result<(), Box<dyn std::error::Error>>
    {
        let app = Application::builder().in_memory().build()?;
        let mut alice = Account::open("Alice".into(), dollars(50, 0));
        let mut bob = Account::open("Bob".into(), 0);
        alice.deposit(dollars(5, 0))?;
        alice.transfer_to(&mut bob, dollars(20, 0))?;
        app.save(&mut [&mut alice, &mut bob])?;
        let history = app.repository().history::<Account>(alice.id())?;
        let versions: Vec<u64> = history.iter().map(|e| e.originator_version).collect();
        assert_eq!(versions, [1, 2, 3]);
        assert!(matches!(
            &history[2].payload,
            AccountEvent::TransferSent { to, amount: 2000 } if *to == bob.id()
        ));
        print_history(&app, alice.id())?;
        Ok(())
    }

    #[test]
    fn a_second_writer_of_one_version_conflicts() -> Result<(), Box<dyn std::error::Error>> {
        let app = Application::builder().in_memory().build()?;
        let mut account = Account::open("Alice".into(), dollars(100, 0));
        app.save(&mut account)?;
        let mut first: Account = app.repository().get(account.id())?;
        let mut second: Account = app.repository().get(account.id())?;
        first.withdraw(dollars(60, 0))?;
        second.withdraw(dollars(60, 0))?;
        app.save(&mut first)?;
        assert!(
            app.save(&mut second)
                .is_err_and(|error| error.is_conflict())
        );
        assert_eq!(
            app.repository().get::<Account>(account.id())?.balance(),
            dollars(40, 0)
        );
        Ok(())
    }
}
