//! The operator commands on a program's followers: a dry run changes no
//! byte of any table, a reset then a sync rebuilds a projection to the same
//! contents, and bad names or failing followers are clear errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use es_core::interface::commands::{Command, CommandError, Operations};
use es_core::persistence::{SqliteDatabase, SqliteView, StoredEvent};
use es_core::prelude::*;
use es_core::system::{Follower, Leader, Policies, ProcessApplication, Projection, System};

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

#[aggregate]
pub struct Audit {
    account: OriginatorId,
}

#[aggregate]
impl Audit {
    #[event("Noted")]
    pub fn note(account: OriginatorId) -> Self {
        Audit { account }
    }
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn command(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("app").chain(args.iter().copied()))
        .expect("arguments")
        .command
}

struct Setup {
    dir: tempfile::TempDir,
    system: System,
    balances: Projection<SqliteView>,
}

impl Setup {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.sqlite3"))
    }

    fn operations(&self) -> Operations<'_> {
        let bank = self.system.application("bank").expect("bank") as &dyn Leader;
        Operations::new()
            .system(&self.system)
            .follower(&self.balances as &dyn Follower, [bank])
    }

    fn run(&self, args: &[&str]) -> (Result<(), CommandError>, String) {
        let mut out = Vec::new();
        let result = command(args).run(&self.operations(), &mut out);
        (result, String::from_utf8(out).expect("UTF-8"))
    }

    /// Every row of every table of every database file, in a stable order.
    fn dump(&self) -> Vec<String> {
        ["bank", "audit", "view"]
            .iter()
            .flat_map(|name| dump(&self.path(name)))
            .collect()
    }
}

fn dump(path: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(path).expect("open");
    let tables: Vec<String> = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut select| select.query_map([], |row| row.get(0))?.collect())
        .expect("tables");
    let mut rows = Vec::new();
    for table in tables {
        let mut select = connection
            .prepare(&format!("SELECT * FROM \"{table}\" ORDER BY 1, 2"))
            .expect("select");
        let columns = select.column_count();
        let found: Vec<String> = select
            .query_map([], |row| {
                let values: Vec<String> = (0..columns)
                    .map(|i| format!("{:?}", row.get_ref(i).expect("value")))
                    .collect();
                Ok(format!("{table}: {}", values.join(" | ")))
            })
            .and_then(Iterator::collect)
            .expect("rows");
        rows.extend(found);
    }
    rows
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let file = |name: &str| dir.path().join(format!("{name}.sqlite3"));
    let app = |name: &str| {
        Application::builder()
            .name(name)
            .sqlite(file(name))
            .build()
            .expect("app")
    };
    let audit = Policies::new().on(|event: DomainEvent<AccountEvent>, context| {
        if let AccountEvent::Opened {} = event.payload {
            context.collect(Audit::note(event.originator_id));
        }
        Ok(())
    });
    let system = System::builder()
        .application(app("bank"))
        .process(ProcessApplication::new(app("audit"), audit).expect("follower"))
        .pipe(["bank", "audit"])
        .build()
        .expect("system");
    let view =
        SqliteView::new(SqliteDatabase::open(file("view"), Duration::from_secs(5)).expect("db"))
            .expect("view");
    view.execute_batch("CREATE TABLE balances (id TEXT PRIMARY KEY, balance INTEGER NOT NULL)")
        .expect("table");
    let balances = Projection::new("balances", view)
        .on(|event: DomainEvent<AccountEvent>, transaction| {
            let id = event.originator_id.to_string();
            match event.payload {
                AccountEvent::Opened {} => {
                    transaction.execute("INSERT INTO balances VALUES (?1, 0)", [&id])?;
                }
                AccountEvent::Credited { amount } => {
                    transaction.execute(
                        "UPDATE balances SET balance = balance + ?1 WHERE id = ?2",
                        es_core::rusqlite::params![amount, id],
                    )?;
                }
            }
            Ok(())
        })
        .with_reset(|transaction| {
            transaction.execute_batch("DELETE FROM balances")?;
            Ok(())
        });
    let bank = system.application("bank").expect("bank");
    for amount in [5, 7, 11] {
        let mut account = Account::open();
        account.credit(amount);
        bank.save(&mut account).expect("save");
    }
    Setup {
        dir,
        system,
        balances,
    }
}

#[test]
fn a_dry_run_processes_everything_and_changes_no_byte() {
    let setup = setup();
    let before = setup.dump();
    let (result, out) = setup.run(&["sync-followers", "--dry-run", "-v", "2"]);
    result.expect("dry run");
    assert_eq!(
        out,
        "audit: 6 events would be processed (dry run: nothing recorded)\n  bank: 6\n\
         balances: 6 events would be processed (dry run: nothing recorded)\n  bank: 6\n"
    );
    assert_eq!(setup.dump(), before);
    let (result, out) = setup.run(&["sync-followers"]);
    result.expect("sync");
    assert_eq!(
        out,
        "audit: 6 events processed\nbalances: 6 events processed\n"
    );
    assert_ne!(setup.dump(), before);
    let (result, out) = setup.run(&["status"]);
    result.expect("status");
    assert_eq!(
        out,
        "audit <- bank: at 6 of 6, 0 behind\nbalances <- bank: at 6 of 6, 0 behind\n"
    );
}

#[test]
fn a_reset_then_a_sync_rebuilds_the_projection_to_the_same_contents() {
    let setup = setup();
    setup.run(&["sync-followers"]).0.expect("sync");
    let synced = dump(&setup.path("view"));
    let (result, out) = setup.run(&["reset-follower"]);
    result.expect("list");
    assert_eq!(out, "balances\n");
    let (result, out) = setup.run(&["reset-follower", "--dry-run", "balances"]);
    result.expect("dry run");
    assert!(out.contains("dry run: nothing changed"), "{out}");
    assert_eq!(dump(&setup.path("view")), synced);
    let (result, _) = setup.run(&["reset-follower", "-u", "bank", "balances"]);
    result.expect("reset");
    assert!(
        dump(&setup.path("view"))
            .iter()
            .all(|row| !row.starts_with("balances:"))
    );
    setup
        .run(&["sync-followers", "balances"])
        .0
        .expect("rebuild");
    assert_eq!(dump(&setup.path("view")), synced);
}

#[test]
fn unknown_names_and_unresettable_followers_are_refused_with_nothing_changed() {
    let setup = setup();
    setup.run(&["sync-followers"]).0.expect("sync");
    let before = setup.dump();
    let refused = |args: &[&str], says: &str| {
        let (result, _) = setup.run(args);
        let error = result.expect_err("refused");
        assert!(
            error.to_string().contains(says),
            "{error} should say {says:?}"
        );
    };
    refused(
        &["sync-followers", "audti"],
        "no follower \"audti\"; the followers are: audit, balances",
    );
    refused(&["reset-follower", "balance"], "no follower \"balance\"");
    refused(
        &["reset-follower", "-u", "bnak", "balances"],
        "no leader \"bnak\"",
    );
    refused(&["reset-follower", "audit"], "cannot be reset");
    assert_eq!(setup.dump(), before);
}

#[test]
fn a_failing_follower_is_reported_and_the_others_carry_on() {
    let setup = setup();
    let bank = setup.system.application("bank").expect("bank");
    bank.recorder()
        .insert_events(&[StoredEvent {
            originator_id: Uuid::new_v4().into(),
            originator_version: 1,
            topic: "Account.Opened".into(),
            state: b"not JSON".to_vec(),
        }])
        .expect("a broken row");
    let (result, out) = setup.run(&["sync-followers"]);
    let Err(CommandError::Failed { failures }) = result else {
        panic!("{result:?}");
    };
    assert_eq!(failures.len(), 2, "both follow the broken event: {out}");
    assert!(out.contains("audit: failed after 0 event(s)"), "{out}");
    assert!(out.contains("notification 7 of bank"), "{out}");
    // Both carried on up to the broken event.
    let audit = setup.system.process("audit").expect("audit");
    assert_eq!(audit.position("bank").expect("position"), Some(6));
    assert_eq!(setup.balances.position("bank").expect("position"), Some(6));
}

#[test]
fn a_view_fed_by_several_leaders_is_not_reset_in_only_some_of_their_logs() {
    let setup = setup();
    let bank = setup.system.application("bank").expect("bank") as &dyn Leader;
    let audit = setup.system.application("audit").expect("audit") as &dyn Leader;
    let operations = Operations::new().follower(&setup.balances as &dyn Follower, [bank, audit]);
    let run = |args: &[&str]| {
        let mut out = Vec::new();
        let result = command(args).run(&operations, &mut out);
        (result, String::from_utf8(out).expect("UTF-8"))
    };
    run(&["sync-followers"]).0.expect("sync");
    let before = setup.dump();
    let error = run(&["reset-follower", "-u", "bank", "balances"])
        .0
        .expect_err("audit's part would be lost");
    assert!(
        error
            .to_string()
            .contains("also holds what it took from audit"),
        "{error}"
    );
    assert_eq!(setup.dump(), before);
    run(&["reset-follower", "-u", "bank", "-u", "audit", "balances"])
        .0
        .expect("every leader");
}

/// A sync of a log longer than a progress step goes in steps, and does what
/// one catch-up does: every event processed once, the positions at the end.
#[test]
fn a_long_sync_goes_in_steps_and_processes_each_event_once() {
    let setup = setup();
    let bank = setup.system.application("bank").expect("bank");
    let mut accounts: Vec<Account> = (0..1_250).map(|_| Account::open()).collect();
    bank.save(&mut accounts).expect("save");
    let (result, out) = setup.run(&["sync-followers", "-v", "2"]);
    result.expect("sync");
    // 3 accounts opened and credited by setup, then 1,250 opened: every
    // event of the account is the policy's (it notes the openings).
    assert!(out.contains("audit: 1256 events processed"), "{out}");
    assert!(out.contains("balances: 1256 events processed"), "{out}");
    let last = bank.notification_log().max_id().expect("max");
    assert_eq!(setup.balances.position("bank").expect("position"), last);
    let audit = setup.system.process("audit").expect("audit");
    assert_eq!(audit.position("bank").expect("position"), last);
    let (result, out) = setup.run(&["sync-followers"]);
    result.expect("sync again");
    assert!(out.contains("audit: 0 events processed"), "{out}");
}
