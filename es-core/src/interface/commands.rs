//! Operator commands for a program's followers, as the Python library's
//! Django integration has them: `sync-followers`, `reset-follower`, and
//! `status`. A program embeds them as a clap subcommand set:
//!
//! ```
//! use clap::Parser;
//! use es_core::interface::commands::{Command, Operations};
//! # use es_core::prelude::*;
//! # use es_core::system::{Policies, ProcessApplication, System};
//! # #[aggregate] pub struct Lead { hot: bool }
//! # #[aggregate] impl Lead { #[event("Found")] pub fn find() -> Self { Lead { hot: true } } }
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(subcommand)]
//!     command: Command,
//! }
//!
//! # fn system() -> Result<System, Box<dyn std::error::Error>> {
//! #     let app = |name: &str| Application::builder().name(name).in_memory().build();
//! #     let sales = Policies::new().on(|_: DomainEvent<LeadEvent>, _| Ok(()));
//! #     Ok(System::builder().application(app("leads")?)
//! #         .process(ProcessApplication::new(app("sales")?, sales)?)
//! #         .pipe(["leads", "sales"]).build()?)
//! # }
//! let system = system()?;
//! system.application("leads").unwrap().save(&mut Lead::find())?;
//! let cli = Cli::parse_from(["app", "sync-followers", "-v", "2"]);
//! let mut out = Vec::new();
//! cli.command.run(&Operations::new().system(&system), &mut out)?;
//! assert_eq!(String::from_utf8(out)?, "sales: 1 event processed\n  leads: 1\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;

use crate::system::{Follower, Leader, System, SystemError};

/// The operator commands.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
#[non_exhaustive]
pub enum Command {
    /// Processes every pending event of the named followers' leaders (of
    /// every follower when none is named). A follower that fails is
    /// reported and the others carry on; the command then fails.
    SyncFollowers {
        /// Process everything, then record nothing: every table is left as
        /// it was.
        #[arg(long)]
        dry_run: bool,
        /// 0: nothing but failures; 1: a line per follower; 2: and its
        /// count per leader.
        #[arg(short = 'v', long = "verbosity", default_value_t = 1)]
        verbosity: u8,
        /// The followers to catch up.
        followers: Vec<String>,
    },
    /// Forgets a follower's positions (in the named leaders' logs, or in
    /// all), after undoing what it derived, so that the next sync derives
    /// it again from the start. Lists the followers that can be reset when
    /// none is named.
    ResetFollower {
        /// Say what would be reset, and reset nothing.
        #[arg(long)]
        dry_run: bool,
        /// Only the position in this leader's log (repeatable).
        #[arg(short = 'u', long = "leader")]
        leaders: Vec<String>,
        /// The follower to reset.
        follower: Option<String>,
    },
    /// Prints each follower's position and lag in each of its leaders' logs.
    Status,
}

/// The followers the commands act on, each with its leaders: a system's
/// process applications, and projections with the applications they follow.
///
/// ```
/// use es_core::interface::commands::{Command, Operations};
/// use es_core::persistence::{SqliteDatabase, SqliteView};
/// use es_core::prelude::*;
/// use es_core::system::{Follower, Leader, Projection};
/// # #[aggregate] pub struct Cart { items: u32 }
/// # #[aggregate] impl Cart { #[event("Filled")] pub fn fill(items: u32) -> Self { Cart { items } } }
/// let shop = Application::builder().name("shop").in_memory().build()?;
/// shop.save(&mut Cart::fill(3))?;
/// let view = SqliteView::new(SqliteDatabase::open_in_memory()?)?;
/// let carts = Projection::new("carts", view).on(|_: DomainEvent<CartEvent>, _| Ok(()));
/// let operations = Operations::new().follower(&carts as &dyn Follower, [&shop as &dyn Leader]);
/// let mut out = Vec::new();
/// Command::Status.run(&operations, &mut out)?;
/// assert_eq!(String::from_utf8(out)?, "carts <- shop: at 0 of 1, 1 behind\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct Operations<'a> {
    followers: Vec<Followed<'a>>,
}

/// A follower and the leaders it follows.
type Followed<'a> = (&'a dyn Follower, Vec<&'a dyn Leader>);

impl std::fmt::Debug for Operations<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .followers
            .iter()
            .map(|(f, _)| f.follower_name())
            .collect();
        f.debug_struct("Operations")
            .field("followers", &names)
            .finish()
    }
}

impl<'a> Operations<'a> {
    /// Nothing to act on yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every process application of `system`, with the leaders its pipes give it.
    pub fn system(mut self, system: &'a System) -> Self {
        for name in system.names() {
            let Some(process) = system.process(name) else {
                continue;
            };
            let leaders: Vec<&'a dyn Leader> = system
                .leaders_of(name)
                .into_iter()
                .filter_map(|leader| system.application(leader))
                .map(|app| app as &dyn Leader)
                .collect();
            if !leaders.is_empty() {
                self.followers.push((process, leaders));
            }
        }
        self
    }

    /// `follower` (a projection, say), following `leaders`.
    pub fn follower(
        mut self,
        follower: &'a dyn Follower,
        leaders: impl IntoIterator<Item = &'a dyn Leader>,
    ) -> Self {
        self.followers
            .push((follower, leaders.into_iter().collect()));
        self
    }

    fn find(&self, name: &str) -> Result<&Followed<'a>, CommandError> {
        self.followers
            .iter()
            .find(|(follower, _)| follower.follower_name() == name)
            .ok_or_else(|| CommandError::Unknown {
                what: "follower",
                name: name.to_owned(),
                known: self.names(),
            })
    }

    fn names(&self) -> Vec<String> {
        self.followers
            .iter()
            .map(|(f, _)| f.follower_name().to_owned())
            .collect()
    }
}

/// Why a command failed; the command wrote what it did before failing.
///
/// ```
/// use es_core::interface::commands::{Command, CommandError, Operations};
/// let reset = Command::ResetFollower { dry_run: false, leaders: vec![], follower: Some("nobody".into()) };
/// let error = reset.run(&Operations::new(), &mut Vec::new()).unwrap_err();
/// assert!(matches!(error, CommandError::Unknown { what: "follower", .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// A name that is not one of the program's followers or leaders.
    #[error("no {what} {name:?}; the {what}s are: {}", known.join(", "))]
    Unknown {
        /// `"follower"` or `"leader"`.
        what: &'static str,
        /// The name given.
        name: String,
        /// The names there are.
        known: Vec<String>,
    },
    /// Some followers failed (the others were carried on).
    #[error("{} follower(s) failed: {}", failures.len(), failures.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Failed {
        /// Each failure.
        failures: Vec<SystemError>,
    },
    /// The output could not be written.
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

impl Command {
    /// Runs the command on `operations`, writing what it did to `out`.
    pub fn run(
        &self,
        operations: &Operations<'_>,
        out: &mut dyn Write,
    ) -> Result<(), CommandError> {
        match self {
            Command::SyncFollowers {
                dry_run,
                verbosity,
                followers,
            } => sync(operations, followers, *dry_run, *verbosity, out),
            Command::ResetFollower {
                dry_run,
                leaders,
                follower,
            } => reset(operations, follower.as_deref(), leaders, *dry_run, out),
            Command::Status => status(operations, out),
        }
    }
}

fn chosen<'o, 'a>(
    operations: &'o Operations<'a>,
    names: &[String],
) -> Result<Vec<&'o Followed<'a>>, CommandError> {
    if names.is_empty() {
        return Ok(operations.followers.iter().collect());
    }
    names.iter().map(|name| operations.find(name)).collect()
}

fn sync(
    operations: &Operations<'_>,
    names: &[String],
    dry_run: bool,
    verbosity: u8,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let mut failures = Vec::new();
    for (follower, leaders) in chosen(operations, names)? {
        let mut counts = Vec::with_capacity(leaders.len());
        let mut failed = None;
        for leader in leaders {
            let done = if dry_run {
                follower.dry_run(*leader)
            } else {
                catch_up_in_steps(*follower, *leader)
            };
            match done {
                Ok(count) => counts.push((leader.leader_name(), count)),
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        let total: usize = counts.iter().map(|(_, count)| count).sum();
        let name = follower.follower_name();
        match failed {
            Some(error) => {
                writeln!(out, "{name}: failed after {total} event(s): {error}")?;
                failures.push(error);
            }
            None if verbosity >= 1 => {
                let what = if dry_run {
                    "would be processed (dry run: nothing recorded)"
                } else {
                    "processed"
                };
                let events = if total == 1 { "event" } else { "events" };
                writeln!(out, "{name}: {total} {events} {what}")?;
            }
            None => {}
        }
        if verbosity >= 2 {
            for (leader, count) in counts {
                writeln!(out, "  {leader}: {count}")?;
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Failed { failures })
    }
}

/// How many notification ids a sync processes between two looks at its
/// progress: small enough for the bar to move, large enough not to cost.
const PROGRESS_STEP: u64 = 1_000;

/// Catches `follower` up with `leader` in steps of [`PROGRESS_STEP`] ids,
/// with a progress bar on stderr when it is a terminal (indicatif draws
/// nothing otherwise, so redirected output stays plain lines). The outcome
/// is that of one catch-up: every step records what it processed.
fn catch_up_in_steps(follower: &dyn Follower, leader: &dyn Leader) -> Result<usize, SystemError> {
    let name = leader.leader_name();
    let store_error = |source| SystemError::Store {
        follower: follower.follower_name().to_owned(),
        leader: name.to_owned(),
        source: Box::new(source),
    };
    let start = follower.position(name)?.unwrap_or(0);
    let last = leader.last_id().map_err(store_error)?.unwrap_or(0);
    let bar = indicatif::ProgressBar::new(last.saturating_sub(start)).with_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} {wide_bar} {pos}/{len} notifications, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_prefix(format!("{} <- {name}", follower.follower_name()));
    let mut processed = 0;
    let mut reached = start;
    while reached < last {
        reached = reached.saturating_add(PROGRESS_STEP).min(last);
        processed += follower.pull_and_process(leader, Some(reached))?;
        bar.set_position(reached - start);
    }
    // What was saved since `last` was read.
    processed += follower.pull_and_process(leader, None)?;
    bar.finish_and_clear();
    Ok(processed)
}

fn reset(
    operations: &Operations<'_>,
    name: Option<&str>,
    leaders: &[String],
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), CommandError> {
    let Some(name) = name else {
        for (follower, _) in &operations.followers {
            if follower.resettable() {
                writeln!(out, "{}", follower.follower_name())?;
            }
        }
        return Ok(());
    };
    let (follower, its_leaders) = operations.find(name)?;
    let known: Vec<String> = its_leaders
        .iter()
        .map(|l| l.leader_name().to_owned())
        .collect();
    if let Some(unknown) = leaders.iter().find(|leader| !known.contains(leader)) {
        return Err(CommandError::Unknown {
            what: "leader",
            name: unknown.clone(),
            known,
        });
    }
    if !follower.resettable() {
        return Err(CommandError::Failed {
            failures: vec![
                follower
                    .reset(None)
                    .err()
                    .unwrap_or_else(|| SystemError::Runner(format!("{name} cannot be reset"))),
            ],
        });
    }
    // A follower's reset empties its whole view, which holds what it took
    // from every leader: forgetting only some positions would leave the
    // other leaders' events out of the view for good.
    if let Some(kept) = known
        .iter()
        .find(|leader| !leaders.is_empty() && !leaders.contains(leader))
    {
        return Err(CommandError::Failed {
            failures: vec![SystemError::Runner(format!(
                "{name}: a reset empties its whole view, which also holds what it took from \
                 {kept}; reset it in every leader's log (leave out -u)"
            ))],
        });
    }
    let scope = if leaders.is_empty() {
        known.clone()
    } else {
        leaders.to_vec()
    };
    if dry_run {
        writeln!(
            out,
            "{name}: would be reset in {} (dry run: nothing changed)",
            scope.join(", ")
        )?;
        return Ok(());
    }
    let result = if leaders.is_empty() {
        follower.reset(None)
    } else {
        leaders
            .iter()
            .try_for_each(|leader| follower.reset(Some(leader)))
    };
    result.map_err(|error| CommandError::Failed {
        failures: vec![error],
    })?;
    writeln!(
        out,
        "{name}: reset in {}; the next sync-followers rebuilds it",
        scope.join(", ")
    )?;
    Ok(())
}

fn status(operations: &Operations<'_>, out: &mut dyn Write) -> Result<(), CommandError> {
    let mut failures = Vec::new();
    for (follower, leaders) in &operations.followers {
        for leader in leaders {
            let name = follower.follower_name();
            let position = follower.position(leader.leader_name());
            let last = leader.last_id().map_err(|source| SystemError::Store {
                follower: name.to_owned(),
                leader: leader.leader_name().to_owned(),
                source: Box::new(source),
            });
            match (position, last) {
                (Ok(position), Ok(last)) => {
                    let (position, last) = (position.unwrap_or(0), last.unwrap_or(0));
                    writeln!(
                        out,
                        "{name} <- {}: at {position} of {last}, {} behind",
                        leader.leader_name(),
                        last.saturating_sub(position)
                    )?;
                }
                (Err(error), _) | (_, Err(error)) => {
                    writeln!(out, "{name} <- {}: {error}", leader.leader_name())?;
                    failures.push(error);
                }
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Failed { failures })
    }
}
