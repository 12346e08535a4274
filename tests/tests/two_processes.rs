//! An aggregate saved by one process is read back by another from the same
//! SQLite file, and the other way round.
//!
//! The second process is this test binary run again with only the helper test
//! selected and the database path in the environment.

use std::path::Path;
use std::process::Command;

use es_core::prelude::*;

#[aggregate]
#[derive(Debug)]
pub struct Kennel {
    dogs: Vec<String>,
}

#[aggregate]
impl Kennel {
    #[event("Built")]
    pub fn build() -> Self {
        Kennel { dogs: Vec::new() }
    }

    #[event("DogAdmitted")]
    pub fn admit(&mut self, dog: String) {
        self.dogs.push(dog);
    }
}

const DB_VAR: &str = "ES_TEST_SECOND_PROCESS_DB";
const ID_VAR: &str = "ES_TEST_SECOND_PROCESS_ID";

fn open(path: &Path) -> Application {
    Application::builder()
        .sqlite(path)
        .build()
        .expect("application")
}

#[test]
fn an_aggregate_saved_by_one_process_is_read_back_by_another() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("shared.sqlite3");
    let app = open(&path);
    let mut kennel = Kennel::build();
    kennel.admit("Fido".into());
    app.save(&mut kennel).expect("save");

    let output = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "second_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_VAR, &path)
        .env(ID_VAR, kennel.id().to_string())
        .output()
        .expect("second process");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "second process failed:\n{printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        printed.contains("1 passed"),
        "the second process ran its test:\n{printed}"
    );

    // What the second process saved, this one reads back.
    let kennel: Kennel = app.repository().get(kennel.id()).expect("get");
    assert_eq!(kennel.dogs, ["Fido", "Rex"]);
    assert_eq!(kennel.version(), 3);
}

/// The second process's side: runs only when the test above starts it.
#[test]
fn second_process() {
    let (Some(path), Some(id)) = (std::env::var_os(DB_VAR), std::env::var_os(ID_VAR)) else {
        return;
    };
    let id: Uuid = id.to_str().and_then(|id| id.parse().ok()).expect("an id");
    let app = open(Path::new(&path));
    let mut kennel: Kennel = app
        .repository()
        .get(id)
        .expect("saved by the first process");
    assert_eq!(kennel.dogs, ["Fido"]);
    assert_eq!(kennel.version(), 2);
    kennel.admit("Rex".into());
    app.save(&mut kennel).expect("save");
}
