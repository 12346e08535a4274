//! The bank example's rules as specifications: given an account's past
//! events, when a command is given, then these events, or this refusal.

// The examples are programs, not a library: the bank's domain is reached by
// compiling its file here as a module. Its formatting of money is not used.
#[allow(dead_code)]
#[path = "../bank/account.rs"]
mod account;

use account::{Account, AccountError, AccountEvent};
use es_core::prelude::*;
use es_core::testing::AggregateTest;

fn opened(opening_balance: u64) -> AccountEvent {
    AccountEvent::Opened {
        owner: "Alice".into(),
        opening_balance,
    }
}

#[test]
fn opening_an_account_records_its_owner_and_balance() {
    let account = AggregateTest::<Account>::when_created(|| Account::open("Alice".into(), 1000))
        .then_expect([opened(1000)]);
    assert_eq!(account.balance(), 1000);
}

#[test]
fn a_deposit_is_recorded() {
    AggregateTest::<Account>::given([opened(1000)])
        .when(|account| account.deposit(250))
        .then_expect([AccountEvent::Deposited { amount: 250 }]);
}

#[test]
fn a_withdrawal_within_the_balance_is_recorded() {
    let account =
        AggregateTest::<Account>::given([opened(1000), AccountEvent::Deposited { amount: 500 }])
            .when(|account| account.withdraw(1500))
            .then_expect([AccountEvent::Withdrawn { amount: 1500 }]);
    assert_eq!(account.balance(), 0);
}

#[test]
fn an_overdraft_is_refused_and_records_nothing() {
    AggregateTest::<Account>::given([opened(1000), AccountEvent::Withdrawn { amount: 400 }])
        .when(|account| account.withdraw(601))
        .then_expect_error(AccountError::InsufficientFunds {
            balance: 600,
            requested: 601,
        });
}

#[test]
fn nothing_moved_is_refused() {
    AggregateTest::<Account>::given([opened(1000)])
        .when(|account| account.withdraw(0))
        .then_expect_error(AccountError::ZeroAmount);
    AggregateTest::<Account>::given([opened(1000)])
        .when(|account| account.deposit(0))
        .then_expect_error(AccountError::ZeroAmount);
}

#[test]
fn a_deposit_past_the_largest_balance_is_refused() {
    AggregateTest::<Account>::given([opened(u64::MAX - 1)])
        .when(|account| account.deposit(2))
        .then_expect_error(AccountError::BalanceOverflow);
}

#[test]
fn a_transfer_records_the_sending_side_on_the_sender() {
    let mut bob = Account::open("Bob".into(), 0);
    let bob_id = bob.id();
    AggregateTest::<Account>::given([opened(1000)])
        .when(|alice| alice.transfer_to(&mut bob, 300))
        .then_expect([AccountEvent::TransferSent {
            to: bob_id,
            amount: 300,
        }]);
    assert_eq!(bob.balance(), 300);
}
