//! Projections into views of the user's own tables: each event changes the
//! view once, with the position in the same transaction, across restarts;
//! a failing handler changes nothing; a reset rebuilds the same view.

use std::sync::Arc;
use std::time::Duration;

use es_core::persistence::{PostgresDatabase, PostgresView, SqliteDatabase, SqliteView, View};
use es_core::prelude::*;
use es_core::system::{Projection, ProjectionRunner, SystemError};

#[path = "pg_support/mod.rs"]
mod pg_support;

#[aggregate]
pub struct Account {
    balance: i64,
}

#[aggregate]
impl Account {
    #[event("Opened")]
    pub fn open() -> Self {
        Account { balance: 0 }
    }

    #[event("Credited")]
    pub fn credit(&mut self, amount: i64) {
        self.balance += amount;
    }
}

const SQLITE_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS balances (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)";

/// Balances by account, in a SQLite table; an amount of 13 fails.
fn sqlite_balances(view: SqliteView) -> Projection<SqliteView> {
    view.execute_batch(SQLITE_TABLE).expect("the view's table");
    balances_in(view)
}

/// Balances by account, in the `balances` table of any view whose
/// transactions are SQLite's; an amount of 13 fails.
fn balances_in<V>(view: V) -> Projection<V>
where
    V: for<'t> View<Transaction<'t> = es_core::rusqlite::Transaction<'t>>,
{
    Projection::new("balances", view).on(|event: DomainEvent<AccountEvent>, transaction| {
        let id = event.originator_id.to_string();
        match event.payload {
            AccountEvent::Opened {} => {
                transaction.execute("INSERT INTO balances VALUES (?1, 0)", [&id])?;
            }
            AccountEvent::Credited { amount } => {
                if amount == 13 {
                    return Err("13 is unlucky".into());
                }
                transaction.execute(
                    "UPDATE balances SET balance = balance + ?1 WHERE id = ?2",
                    es_core::rusqlite::params![amount, id],
                )?;
            }
        }
        Ok(())
    })
}

fn sqlite_contents(view: &SqliteView) -> Vec<(String, i64)> {
    view.read(|connection| {
        let mut select = connection.prepare("SELECT id, balance FROM balances ORDER BY id")?;
        let rows = select.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
        rows.collect()
    })
    .expect("read the view")
}

fn bank(path: &std::path::Path) -> Application {
    Application::builder()
        .name("bank")
        .sqlite(path)
        .build()
        .expect("bank")
}

/// Opens `n` accounts, each credited 1, 2 and 3.
fn open_accounts(bank: &Application, n: usize) -> Vec<OriginatorId> {
    (0..n)
        .map(|_| {
            let mut account = Account::open();
            for amount in 1..=3 {
                account.credit(amount);
            }
            bank.save(&mut account).expect("save");
            account.id()
        })
        .collect()
}

#[test]
fn a_view_in_the_applications_own_database_changes_once_per_event_across_restarts() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("bank.sqlite3");
    let bank = bank(&path);
    open_accounts(&bank, 5);
    let view = || {
        SqliteView::new(SqliteDatabase::open(&path, Duration::from_secs(5)).expect("db"))
            .expect("view")
    };
    {
        let balances = sqlite_balances(view());
        assert_eq!(balances.pull_and_process(&bank, Some(9)).expect("pull"), 9);
    }
    open_accounts(&bank, 2);
    // Another process, later: it resumes after the 9th event.
    let balances = sqlite_balances(view()).with_batch_size(4);
    assert_eq!(
        balances.pull_and_process(&bank, None).expect("pull"),
        28 - 9
    );
    assert_eq!(balances.position("bank").expect("position"), Some(28));
    let contents = sqlite_contents(balances.view());
    assert_eq!(contents.len(), 7);
    assert!(
        contents.iter().all(|(_, balance)| *balance == 6),
        "{contents:?}"
    );
}

#[test]
fn a_failing_handler_changes_nothing_and_names_the_event() {
    let dir = tempfile::tempdir().expect("dir");
    let bank = bank(&dir.path().join("bank.sqlite3"));
    let mut account = Account::open();
    account.credit(5);
    account.credit(13);
    bank.save(&mut account).expect("save");
    let balances = sqlite_balances(
        SqliteView::new(SqliteDatabase::open_in_memory().expect("db")).expect("view"),
    )
    .with_batch_size(10);
    let error = balances
        .pull_and_process(&bank, None)
        .expect_err("13 fails");
    assert!(
        matches!(&error, SystemError::Policy { follower, notification_id: 3, topic, .. }
            if follower == "balances" && topic == "Account.Credited"),
        "{error:?}"
    );
    assert!(error.to_string().contains("13 is unlucky"), "{error}");
    // The events before it, done again one at a time, are in.
    assert_eq!(balances.position("bank").expect("position"), Some(2));
    assert_eq!(
        sqlite_contents(balances.view()),
        [(account.id().to_string(), 5)]
    );
}

#[test]
fn a_reset_view_is_rebuilt_to_the_same_contents() {
    let dir = tempfile::tempdir().expect("dir");
    let bank = bank(&dir.path().join("bank.sqlite3"));
    open_accounts(&bank, 4);
    let balances = sqlite_balances(
        SqliteView::new(SqliteDatabase::open_in_memory().expect("db")).expect("view"),
    );
    balances.pull_and_process(&bank, None).expect("pull");
    let before = sqlite_contents(balances.view());
    balances
        .reset(None, |transaction| {
            transaction.execute_batch("DELETE FROM balances")?;
            Ok(())
        })
        .expect("reset");
    assert!(sqlite_contents(balances.view()).is_empty());
    assert_eq!(balances.position("bank").expect("position"), None);
    balances.pull_and_process(&bank, None).expect("rebuild");
    assert_eq!(sqlite_contents(balances.view()), before);
}

#[test]
fn the_runner_keeps_the_view_up_to_date_and_waits_for_a_save() {
    let dir = tempfile::tempdir().expect("dir");
    let bank = Arc::new(bank(&dir.path().join("bank.sqlite3")));
    open_accounts(&bank, 2);
    let balances = sqlite_balances(
        SqliteView::new(SqliteDatabase::open_in_memory().expect("db")).expect("view"),
    );
    let runner = ProjectionRunner::start(Arc::clone(&bank), balances).expect("runner");
    let mut account = Account::open();
    account.credit(40);
    let saved = bank.save(&mut account).expect("save");
    runner
        .wait(saved[1].notification_id, Duration::from_secs(10))
        .expect("the view takes in the save");
    let contents = sqlite_contents(runner.projection().view());
    assert!(
        contents.contains(&(account.id().to_string(), 40)),
        "{contents:?}"
    );
    // A failing event stops the projection; wait says so, and stop too.
    let mut unlucky = Account::open();
    unlucky.credit(13);
    let saved = bank.save(&mut unlucky).expect("save");
    let error = runner
        .wait(saved[1].notification_id, Duration::from_secs(10))
        .expect_err("stopped at 13");
    assert!(error.to_string().contains("13 is unlucky"), "{error}");
    assert!(runner.stop().is_err());
}

/// A PostgreSQL schema of the test's own, dropped with everything in it.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&pg_support::url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.0));
        }
    }
}

#[test]
fn a_postgres_view_changes_once_per_event_and_rebuilds_the_same() {
    let Some(mut config) =
        pg_support::server("a_postgres_view_changes_once_per_event_and_rebuilds_the_same")
    else {
        return;
    };
    config.schema = pg_support::unique_prefix();
    let _drop = DropSchema(config.schema.clone());
    let bank = Application::builder()
        .name("bank")
        .postgres(config.clone())
        .build()
        .expect("bank");
    open_accounts(&bank, 3);
    let view = PostgresView::new(PostgresDatabase::open(&config).expect("db")).expect("view");
    // In the view's schema: unqualified, it would go to the session's search path.
    let table = format!("\"{}\".balances", view.schema());
    view.batch_execute(&format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, balance bigint NOT NULL)"
    ))
    .expect("the view's table");
    let make = |view: PostgresView| {
        let (insert, update) = (
            format!("INSERT INTO {table} VALUES ($1, 0)"),
            format!("UPDATE {table} SET balance = balance + $1 WHERE id = $2"),
        );
        Projection::new("balances", view).on(
            move |event: DomainEvent<AccountEvent>, transaction| {
                let id = event.originator_id.as_uuid().ok_or("a uuid")?;
                match event.payload {
                    AccountEvent::Opened {} => {
                        transaction.execute(&insert, &[&id])?;
                    }
                    AccountEvent::Credited { amount } => {
                        transaction.execute(&update, &[&amount, &id])?;
                    }
                }
                Ok(())
            },
        )
    };
    let select = format!("SELECT id, balance FROM {table} ORDER BY id");
    let contents = |view: &PostgresView| -> Vec<(Uuid, i64)> {
        view.read(|client| client.query(&select, &[]))
            .expect("read")
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    };
    let balances = make(view.clone()).with_batch_size(5);
    assert_eq!(balances.pull_and_process(&bank, Some(6)).expect("pull"), 6);
    let balances = make(view.clone());
    assert_eq!(balances.pull_and_process(&bank, None).expect("pull"), 6);
    assert_eq!(balances.pull_and_process(&bank, None).expect("pull"), 0);
    let before = contents(&view);
    assert_eq!(before.len(), 3);
    assert!(
        before.iter().all(|(_, balance)| *balance == 6),
        "{before:?}"
    );
    balances
        .reset(Some("bank"), |transaction| {
            transaction.batch_execute(&format!("DELETE FROM {table}"))?;
            Ok(())
        })
        .expect("reset");
    assert_eq!(view.position("balances", "bank").expect("position"), None);
    balances.pull_and_process(&bank, None).expect("rebuild");
    assert_eq!(contents(&view), before);
}

/// A view whose transactions meet the two faults a commit can: every third
/// write fails before anything is committed, every fifth commits and then
/// reports the store's failure (a reply lost after COMMIT was sent).
struct FaultyCommits<V> {
    inner: V,
    writes: std::sync::atomic::AtomicUsize,
}

impl<V: View> View for FaultyCommits<V> {
    type Transaction<'t> = V::Transaction<'t>;

    fn position(&self, projection: &str, leader: &str) -> es_core::Result<Option<u64>> {
        self.inner.position(projection, leader)
    }

    fn write(
        &self,
        projection: &str,
        tracking: &es_core::persistence::Tracking,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), es_core::BoxError>,
    ) -> Result<(), es_core::persistence::ViewError> {
        let lost = |when: &str| {
            es_core::persistence::ViewError::Store(es_core::Error::Database {
                operation: "ending a view's transaction",
                source: format!("the connection went away {when}").into(),
            })
        };
        let n = self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if n.is_multiple_of(3) {
            return Err(lost("before COMMIT"));
        }
        self.inner.write(projection, tracking, work)?;
        if n.is_multiple_of(5) {
            return Err(lost("after COMMIT was sent"));
        }
        Ok(())
    }

    fn rehearse(
        &self,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), es_core::BoxError>,
    ) -> Result<(), es_core::persistence::ViewError> {
        self.inner.rehearse(work)
    }

    fn reset(
        &self,
        projection: &str,
        leader: Option<&str>,
        work: &mut dyn FnMut(&mut Self::Transaction<'_>) -> Result<(), es_core::BoxError>,
    ) -> Result<(), es_core::persistence::ViewError> {
        self.inner.reset(projection, leader, work)
    }
}

/// Under the runner, a view's commits that fail before or after COMMIT
/// (outcome unknown) still change the view once per event: the runner tries
/// again from the recorded position, which says what was committed.
#[test]
fn commits_that_fail_before_or_after_commit_still_change_the_view_once_per_event() {
    let dir = tempfile::tempdir().expect("dir");
    let bank = Arc::new(bank(&dir.path().join("bank.sqlite3")));
    let db =
        SqliteDatabase::open(dir.path().join("view.sqlite3"), Duration::from_secs(5)).expect("db");
    let view = SqliteView::new(db).expect("view");
    view.execute_batch(SQLITE_TABLE).expect("table");
    let faulty = FaultyCommits {
        inner: view.clone(),
        writes: Default::default(),
    };
    let projection = balances_in(faulty).with_batch_size(3);
    let runner = ProjectionRunner::start_with_poll_interval(
        Arc::clone(&bank),
        projection,
        Duration::from_millis(20),
    )
    .expect("runner");
    open_accounts(&bank, 10);
    let last = bank
        .notification_log()
        .max_id()
        .expect("max")
        .expect("events");
    runner
        .wait(last, Duration::from_secs(30))
        .expect("the view caught up despite the faults");
    assert!(runner.failure().is_none());
    runner.stop().expect("stop");
    let contents = sqlite_contents(&view);
    assert_eq!(contents.len(), 10);
    assert!(
        contents.iter().all(|(_, balance)| *balance == 6),
        "each credit applied once: {contents:?}"
    );
}

/// Two copies of one projection on PostgreSQL, racing from an empty view with
/// different batch sizes: between them every event changes the view once,
/// and neither fails (the loser of each race goes on after the winner's
/// position), the very first write included.
#[test]
fn two_copies_of_a_postgres_projection_never_apply_an_event_twice() {
    let Some(mut config) =
        pg_support::server("two_copies_of_a_postgres_projection_never_apply_an_event_twice")
    else {
        return;
    };
    config.schema = pg_support::unique_prefix();
    let _drop = DropSchema(config.schema.clone());
    let bank = Arc::new(
        Application::builder()
            .name("bank")
            .postgres(config.clone())
            .build()
            .expect("bank"),
    );
    open_accounts(&bank, 20);
    let view = PostgresView::new(PostgresDatabase::open(&config).expect("db")).expect("view");
    let table = format!("\"{}\".balances", view.schema());
    view.batch_execute(&format!(
        "CREATE TABLE {table} (id uuid PRIMARY KEY, balance bigint NOT NULL)"
    ))
    .expect("the view's table");
    let copies: Vec<_> = [1, 7]
        .into_iter()
        .map(|batch_size| {
            let (bank, view, table) = (Arc::clone(&bank), view.clone(), table.clone());
            std::thread::spawn(move || {
                let (insert, update) = (
                    format!("INSERT INTO {table} VALUES ($1, 0)"),
                    format!("UPDATE {table} SET balance = balance + $1 WHERE id = $2"),
                );
                Projection::new("balances", view)
                    .with_batch_size(batch_size)
                    .on(move |event: DomainEvent<AccountEvent>, transaction| {
                        let id = event.originator_id.as_uuid().ok_or("a uuid")?;
                        match event.payload {
                            AccountEvent::Opened {} => transaction.execute(&insert, &[&id])?,
                            AccountEvent::Credited { amount } => {
                                transaction.execute(&update, &[&amount, &id])?
                            }
                        };
                        Ok(())
                    })
                    .pull_and_process(&*bank, None)
            })
        })
        .collect();
    let mut processed = 0;
    for copy in copies {
        processed += copy
            .join()
            .expect("copy")
            .expect("caught up without a failure");
    }
    assert!(processed <= 80, "{processed} events processed for 80");
    let balances: Vec<i64> = view
        .read(|client| client.query(&format!("SELECT balance FROM {table}"), &[]))
        .expect("read")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(balances.len(), 20);
    assert!(balances.iter().all(|&balance| balance == 6), "{balances:?}");
    assert_eq!(
        view.position("balances", "bank").expect("position"),
        Some(80)
    );
}
