#![allow(dead_code)] // Each child process uses its own part.

//! What the child processes of the fault and listening tests share: how they
//! fail, how they speak to the test, and how they name their store on the
//! command line (`sqlite <path>` or `postgres <url> <table-prefix>`).

use std::fmt::Display;
use std::io::Write as _;
use std::process::exit;

use es_core::persistence::PostgresConfig;
use es_core::{Application, ApplicationBuilder};

/// A child process: its name and its usage line, for messages.
pub struct Child {
    pub name: &'static str,
    pub usage: &'static str,
}

impl Child {
    /// Prints `what: error` to stderr and ends the process with status 1.
    pub fn fail(&self, what: &str, error: impl Display) -> ! {
        let _ = writeln!(std::io::stderr(), "{}: {what}: {error}", self.name);
        exit(1)
    }

    /// Fails with the usage line.
    pub fn usage(&self) -> ! {
        self.fail("usage", self.usage)
    }

    /// Says `line` to the test at once (stdout, flushed).
    pub fn say(&self, line: &str) {
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
            self.fail("writing to stdout", error);
        }
    }

    /// `builder` with the store that `args` name, or the usage line.
    pub fn store(&self, builder: ApplicationBuilder, args: &[String]) -> ApplicationBuilder {
        match args {
            [kind, path] if kind == "sqlite" => builder.sqlite(path),
            [kind, url, prefix] if kind == "postgres" => {
                let mut config = PostgresConfig::from_url(url)
                    .unwrap_or_else(|error| self.fail("the PostgreSQL URL", error));
                config.table_prefix = Some(prefix.clone());
                builder.postgres(config)
            }
            _ => self.usage(),
        }
    }

    /// The application `builder` makes, or the error.
    pub fn open(&self, builder: ApplicationBuilder) -> Application {
        builder
            .build()
            .unwrap_or_else(|error| self.fail("opening the store", error))
    }
}
