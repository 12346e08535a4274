//! What can be wrong with the path of a SQLite database, said with the path.
//!
//! SQLite reports most of these as "unable to open database file" or "file is
//! not a database", without the path; a user who set `SQLITE_DBNAME` needs
//! to know which file, and what is wrong with it.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

use crate::error::{BoxError, Error, Result};

/// What the application builder calls the database path.
const VARIABLE: &str = "SQLITE_DBNAME";

/// Why a SQLite database file could not be opened, with its path. It is the
/// [`source`](std::error::Error::source) of the [`Error::Database`] that
/// [`SqliteDatabase::open`](super::SqliteDatabase::open) returns.
///
/// ```
/// use es_core::persistence::{SqliteDatabase, SqliteOpenError};
/// let dir = tempfile::tempdir().unwrap();
/// let error = SqliteDatabase::open(dir.path(), std::time::Duration::from_secs(1)).unwrap_err();
/// assert!(error.to_string().contains("is a directory"));
/// let cause = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<SqliteOpenError>());
/// assert!(matches!(cause, Some(SqliteOpenError::IsADirectory { path }) if path == dir.path()));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteOpenError {
    /// The path names a directory.
    #[error(
        "{} is a directory, not a database file; set SQLITE_DBNAME to a file path, such as {}",
        path.display(),
        path.join("events.sqlite3").display()
    )]
    IsADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but holds something other than a SQLite database.
    #[error(
        "{} is not a SQLite database: the file has other content (SQLite: {source}); set \
         SQLITE_DBNAME to the database file, or to a new path",
        path.display()
    )]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: BoxError,
    },
    /// This process may not read and write the file, or create it in its directory.
    #[error(
        "{}: permission denied ({source}); give this program's user read and write access \
         to the file and to its directory (SQLite writes its journal beside it)",
        path.display()
    )]
    PermissionDenied {
        /// The path given.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// SQLite cannot open the file, for a reason the file system does not show
    /// (such as a file it may read but not write, on a read-only mount).
    #[error("cannot open {} as a SQLite database: {source}", path.display())]
    CannotOpen {
        /// The path given.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: BoxError,
    },
    /// The directory the file would go in does not exist (or is a file).
    #[error(
        "{}: {} is not an existing directory; create it, or set SQLITE_DBNAME to a path in \
         an existing directory",
        path.display(),
        directory.display()
    )]
    NoDirectory {
        /// The path given.
        path: PathBuf,
        /// The directory that is missing.
        directory: PathBuf,
    },
}

/// The error for a database path that is empty or blank, set in `variable`.
pub(crate) fn empty_path(variable: String, value: String) -> Error {
    Error::Config {
        variable,
        value,
        expected: "the path of a database file, such as events.sqlite3, or :memory:".to_owned(),
    }
}

/// Refuses an empty path before SQLite sees it: SQLite would open a private
/// temporary database instead, and the events would vanish with the process.
pub(super) fn check_path(path: &Path) -> Result<()> {
    let shown = path.to_string_lossy();
    if shown.trim().is_empty() {
        return Err(empty_path(VARIABLE.to_owned(), shown.into_owned()));
    }
    if path.is_dir() {
        return Err(opening(SqliteOpenError::IsADirectory {
            path: path.to_owned(),
        }));
    }
    Ok(())
}

/// The error for `error`, which SQLite returned while `operation` on the
/// database at `path`: what is wrong with the file if it is the file, with
/// the path; the driver's error as it is otherwise (a lock, a full disk).
pub(super) fn failed(path: &Path, operation: &'static str, error: rusqlite::Error) -> Error {
    let problem = match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => {
            return opening(SqliteOpenError::NotADatabase {
                path: path.to_owned(),
                source: error.into(),
            });
        }
        Some(ErrorCode::CannotOpen | ErrorCode::ReadOnly | ErrorCode::PermissionDenied) => {
            file_problem(path).unwrap_or_else(|| SqliteOpenError::CannotOpen {
                path: path.to_owned(),
                source: error.into(),
            })
        }
        _ => return Error::database(operation, error),
    };
    opening(problem)
}

fn opening(problem: SqliteOpenError) -> Error {
    Error::database("opening the SQLite database", problem)
}

/// Asks the file system what SQLite would not say.
fn file_problem(path: &Path) -> Option<SqliteOpenError> {
    let path_buf = path.to_owned();
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Some(SqliteOpenError::IsADirectory { path: path_buf }),
        Ok(_) => match OpenOptions::new().read(true).write(true).open(path) {
            Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
                Some(SqliteOpenError::PermissionDenied {
                    path: path_buf,
                    source,
                })
            }
            _ => None,
        },
        Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
            Some(SqliteOpenError::PermissionDenied {
                path: path_buf,
                source,
            })
        }
        Err(_) => directory_problem(path),
    }
}

/// The file does not exist: whether its directory does, and takes new files.
fn directory_problem(path: &Path) -> Option<SqliteOpenError> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    if !directory.is_dir() {
        return Some(SqliteOpenError::NoDirectory {
            path: path.to_owned(),
            directory,
        });
    }
    // SQLite was about to create the file: try, and take the attempt back.
    match OpenOptions::new().write(true).create_new(true).open(path) {
        Ok(_) => {
            let _ = std::fs::remove_file(path);
            None
        }
        Err(source) if source.kind() == io::ErrorKind::PermissionDenied => {
            Some(SqliteOpenError::PermissionDenied {
                path: path.to_owned(),
                source,
            })
        }
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::SqliteDatabase;
    use super::*;

    fn open(path: &Path) -> Error {
        SqliteDatabase::open(path, Duration::from_secs(1)).expect_err("cannot open")
    }

    fn cause(error: &Error) -> &SqliteOpenError {
        std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<SqliteOpenError>())
            .unwrap_or_else(|| panic!("no SqliteOpenError behind {error:?}"))
    }

    #[test]
    fn an_empty_path_is_a_config_error_naming_sqlite_dbname() {
        for empty in ["", "  "] {
            let error = open(Path::new(empty));
            assert!(
                matches!(&error, Error::Config { variable, .. } if variable == "SQLITE_DBNAME"),
                "{error:?}"
            );
            assert!(error.to_string().contains(":memory:"), "{error}");
        }
    }

    #[test]
    fn a_directory_is_named_as_one() {
        let dir = tempfile::tempdir().expect("directory");
        let error = open(dir.path());
        let message = error.to_string();
        assert!(
            message.contains(&dir.path().display().to_string())
                && message.contains("is a directory"),
            "{message}"
        );
        assert!(matches!(
            cause(&error),
            SqliteOpenError::IsADirectory { .. }
        ));
    }

    #[test]
    fn a_file_of_other_content_is_not_a_sqlite_database() {
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "shopping list: ".repeat(100)).expect("write");
        let error = open(&path);
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("is not a SQLite database"),
            "{message}"
        );
        assert!(matches!(
            cause(&error),
            SqliteOpenError::NotADatabase { .. }
        ));
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "shopping list: ".repeat(100),
            "the file is left as it was"
        );
    }

    #[test]
    fn a_missing_directory_is_named() {
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("no").join("such").join("events.sqlite3");
        let error = open(&path);
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string())
                && message.contains("is not an existing directory"),
            "{message}"
        );
        assert!(
            matches!(cause(&error), SqliteOpenError::NoDirectory { directory, .. }
                if *directory == dir.path().join("no").join("such"))
        );
    }

    #[test]
    fn a_file_in_place_of_a_directory_is_named() {
        let dir = tempfile::tempdir().expect("directory");
        let file = dir.path().join("notes.txt");
        std::fs::write(&file, "notes").expect("write");
        let error = open(&file.join("events.sqlite3"));
        assert!(
            matches!(cause(&error), SqliteOpenError::NoDirectory { directory, .. } if *directory == file),
            "{error}"
        );
    }

    #[test]
    fn any_other_reason_sqlite_cannot_open_the_file_still_names_it() {
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("x".repeat(300));
        let error = open(&path);
        assert!(
            matches!(cause(&error), SqliteOpenError::CannotOpen { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_file_this_user_may_not_write_is_a_permission_problem() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("directory");
        let path = dir.path().join("locked.sqlite3");
        std::fs::write(&path, "").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        if std::fs::File::open(&path).is_ok() {
            eprintln!("SKIPPED: this user (root?) reads files whatever their mode");
            return;
        }
        let error = open(&path);
        let message = error.to_string();
        assert!(
            message.contains(&path.display().to_string()) && message.contains("permission denied"),
            "{message}"
        );
        assert!(matches!(
            cause(&error),
            SqliteOpenError::PermissionDenied { .. }
        ));

        let read_only = dir.path().join("read-only");
        std::fs::create_dir(&read_only).expect("mkdir");
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o555))
            .expect("chmod");
        let path = read_only.join("events.sqlite3");
        let error = open(&path);
        assert!(
            matches!(cause(&error), SqliteOpenError::PermissionDenied { .. }),
            "{error}"
        );
        assert!(!path.exists());
    }
}
