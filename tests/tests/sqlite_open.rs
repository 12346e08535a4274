//! Opening the SQLite store from the environment: a path that cannot be a
//! database is an error that names the variable or the path and says what is
//! wrong, never SQLite's bare "unable to open database file".

use es_core::persistence::SqliteOpenError;
use es_core::{Application, Environment, Error};

fn build(dbname: &str) -> Error {
    let env = Environment::from_vars([("PERSISTENCE_MODULE", "sqlite"), ("SQLITE_DBNAME", dbname)]);
    Application::builder()
        .environment(env)
        .build()
        .expect_err("no database there")
}

#[test]
fn an_empty_sqlite_dbname_is_a_config_error_naming_it() {
    let error = build("");
    assert!(
        matches!(&error, Error::Config { variable, .. } if variable == "SQLITE_DBNAME"),
        "{error:?}"
    );
    let error = Application::builder()
        .sqlite("")
        .build()
        .expect_err("an empty path in code");
    assert!(
        matches!(&error, Error::Config { variable, .. } if variable == "SQLITE_DBNAME"),
        "{error:?}"
    );
}

#[test]
fn an_empty_prefixed_sqlite_dbname_is_named_as_the_user_set_it() {
    let env = Environment::from_vars([
        ("PERSISTENCE_MODULE", "sqlite"),
        ("DOGS_SQLITE_DBNAME", " "),
    ]);
    let error = Application::builder()
        .name("dogs")
        .environment(env)
        .build()
        .expect_err("no database there");
    assert!(
        matches!(&error, Error::Config { variable, .. } if variable == "DOGS_SQLITE_DBNAME"),
        "{error:?}"
    );
}

#[test]
fn a_directory_or_a_file_of_other_content_is_named_with_its_path() {
    let dir = tempfile::tempdir().expect("directory");
    let error = build(&dir.path().display().to_string());
    let message = error.to_string();
    assert!(
        message.contains(&dir.path().display().to_string()) && message.contains("is a directory"),
        "{message}"
    );

    let notes = dir.path().join("notes.txt");
    std::fs::write(
        &notes,
        "not a database, just some words that are long enough",
    )
    .expect("write");
    let error = build(&notes.display().to_string());
    let message = error.to_string();
    assert!(
        message.contains(&notes.display().to_string())
            && message.contains("is not a SQLite database"),
        "{message}"
    );
    let cause = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<SqliteOpenError>());
    assert!(
        matches!(cause, Some(SqliteOpenError::NotADatabase { path, .. }) if *path == notes),
        "{error:?}"
    );
}
