//! PostgreSQL configuration from the environment, with the Python library's
//! variable names, and the application's PostgreSQL recorders.

use std::sync::Arc;

use super::environment::Environment;
use crate::error::{Error, Result};
use crate::persistence::{
    AggregateRecorder, OriginatorIdType, PostgresConfig, PostgresDatabase, PostgresRecorder,
    ProcessRecorder, SslMode, checked_schema, table_prefix_from_name,
};

/// The most connections `POSTGRES_POOL_SIZE` may ask for.
const MAX_POOL_SIZE: u32 = 1000;

/// The configuration the `POSTGRES_*` variables give.
///
/// `POSTGRES_URL`, when set, gives the host, port, database, user and password,
/// and `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_DBNAME`, `POSTGRES_USER` and
/// `POSTGRES_PASSWORD` are then not read. Otherwise `POSTGRES_DBNAME`,
/// `POSTGRES_HOST` and `POSTGRES_USER` must be set, as the Python library requires.
pub(super) fn config_from_env(env: &Environment) -> Result<PostgresConfig> {
    let mut config = match env.get("POSTGRES_URL") {
        Some((variable, url)) => PostgresConfig::from_url(url).map_err(|error| match error {
            Error::Config {
                value, expected, ..
            } => Error::Config {
                variable,
                value,
                expected,
            },
            other => other,
        })?,
        None => {
            let dbname = required(env, "POSTGRES_DBNAME", "a database name")?;
            let host = required(
                env,
                "POSTGRES_HOST",
                "a host name, an IP address or a Unix socket directory",
            )?;
            let user = required(env, "POSTGRES_USER", "a user name")?;
            let mut config = PostgresConfig::new(host, dbname, user);
            if let Some(port) = env.get_u32("POSTGRES_PORT", 1..=u32::from(u16::MAX))? {
                config.port = u16::try_from(port).unwrap_or(PostgresConfig::DEFAULT_PORT);
            }
            match env.get("POSTGRES_PASSWORD") {
                Some((_, password)) => config.with_password(password),
                None => config,
            }
        }
    };
    if let Some(size) = env.get_u32("POSTGRES_POOL_SIZE", 1..=MAX_POOL_SIZE)? {
        config.pool_size = size;
    }
    if let Some(timeout) = env.get_positive_seconds("POSTGRES_CONNECT_TIMEOUT")? {
        config.connect_timeout = timeout;
    }
    if let Some(timeout) = env.get_seconds("POSTGRES_LOCK_TIMEOUT")? {
        config.lock_timeout = timeout;
    }
    if let Some((variable, schema)) = env.get("POSTGRES_SCHEMA") {
        config.schema = checked_schema(&variable, schema.trim())?;
    }
    if let Some((variable, value)) = env.get("ORIGINATOR_ID_TYPE") {
        config.originator_id_type = Some(OriginatorIdType::parse(value).ok_or_else(|| {
            Error::Config {
                variable,
                value: value.to_owned(),
                expected: "uuid or text (to keep text ids as well as UUIDs); unset, an existing \
                           table's type is used, and uuid for a new one"
                    .into(),
            }
        })?);
    }
    read_tls(env, &mut config)?;
    read_session_and_pool(env, &mut config)?;
    Ok(config)
}

/// `POSTGRES_SSLMODE` and `POSTGRES_SSLROOTCERT`, which win over the URL's.
fn read_tls(env: &Environment, config: &mut PostgresConfig) -> Result<()> {
    if let Some(mode) = env.get_choice("POSTGRES_SSLMODE", SslMode::ACCEPTED)? {
        config.ssl_mode = SslMode::parse(mode).unwrap_or_default();
    }
    if let Some((variable, path)) = env.get("POSTGRES_SSLROOTCERT") {
        if path.trim().is_empty() {
            return Err(Error::Config {
                variable,
                value: path.to_owned(),
                expected: "the path of a PEM file of certificate authorities".into(),
            });
        }
        config.ssl_root_cert = Some(path.trim().into());
    }
    Ok(())
}

/// The server-side timeouts, the network timeout and the pool's checks.
fn read_session_and_pool(env: &Environment, config: &mut PostgresConfig) -> Result<()> {
    if let Some(timeout) = env.get_seconds("POSTGRES_STATEMENT_TIMEOUT")? {
        config.statement_timeout = timeout;
    }
    if let Some(timeout) = env.get_seconds("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT")? {
        config.idle_in_transaction_session_timeout = timeout;
    }
    if let Some(timeout) = env.get_seconds("POSTGRES_NETWORK_TIMEOUT")? {
        config.network_timeout = timeout;
    }
    if let Some(pre_ping) = env.get_bool("POSTGRES_PRE_PING")? {
        config.pre_ping = pre_ping;
    }
    if let Some(age) = env.get_seconds("POSTGRES_CONN_MAX_AGE")? {
        if age.is_zero() {
            let (variable, value) = env
                .get("POSTGRES_CONN_MAX_AGE")
                .map(|(variable, value)| (variable, value.to_owned()))
                .unwrap_or_else(|| ("POSTGRES_CONN_MAX_AGE".into(), "0".into()));
            return Err(Error::Config {
                variable,
                value,
                expected: "a positive number of seconds, such as 3600".into(),
            });
        }
        config.conn_max_age = Some(age);
    }
    Ok(())
}

fn required(env: &Environment, key: &str, what: &str) -> Result<String> {
    match env.get(key) {
        Some((_, value)) if !value.trim().is_empty() => Ok(value.trim().to_owned()),
        Some((variable, value)) => Err(missing(variable, value, key, what)),
        None => Err(missing(key.to_owned(), "", key, what)),
    }
}

fn missing(variable: String, value: &str, key: &str, what: &str) -> Error {
    Error::Config {
        variable,
        value: value.to_owned(),
        expected: format!(
            "{what}: PERSISTENCE_MODULE=postgres needs {key}, or POSTGRES_URL instead of the \
             separate POSTGRES_* connection variables"
        ),
    }
}

/// Names the tables after the application when the configuration names no prefix.
pub(super) fn with_table_prefix(mut config: PostgresConfig, name: Option<&str>) -> PostgresConfig {
    if config.table_prefix.is_none() {
        config.table_prefix = name.map(table_prefix_from_name);
    }
    config
}

type Recorders = (Arc<dyn ProcessRecorder>, Option<Arc<dyn AggregateRecorder>>);

/// The events recorder, and the snapshots recorder if `snapshotting`, sharing one pool.
pub(super) fn open_recorders(
    config: &PostgresConfig,
    snapshotting: bool,
    create_table: bool,
) -> Result<Recorders> {
    let db = PostgresDatabase::open(config)?;
    let prefix = config.table_prefix.as_deref();
    let events = PostgresRecorder::events(db.clone(), prefix, create_table)?;
    let snapshots = if snapshotting {
        Some(
            Arc::new(PostgresRecorder::snapshots(db, prefix, create_table)?)
                as Arc<dyn AggregateRecorder>,
        )
    } else {
        None
    };
    Ok((Arc::new(events), snapshots))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().copied())
    }

    #[test]
    fn separate_variables_give_the_connection_and_defaults_fill_the_rest() {
        let config = config_from_env(&env(&[
            ("POSTGRES_DBNAME", "test"),
            ("POSTGRES_HOST", "127.0.0.1"),
            ("POSTGRES_USER", "postgres"),
        ]))
        .expect("valid");
        assert_eq!(config, PostgresConfig::new("127.0.0.1", "test", "postgres"));
        assert_eq!(config.port, 5432);
        assert_eq!(config.pool_size, 5);
        assert_eq!(config.connect_timeout, Duration::from_secs(30));
        assert_eq!(config.lock_timeout, Duration::ZERO);
        assert_eq!(config.schema, "public");
        assert!(!config.has_password());

        let config = config_from_env(
            &env(&[
                ("POSTGRES_DBNAME", "test"),
                ("POSTGRES_HOST", "db"),
                ("POSTGRES_USER", "u"),
                ("SHOP_POSTGRES_PORT", "6543"),
                ("POSTGRES_PASSWORD", "pw"),
                ("POSTGRES_POOL_SIZE", "2"),
                ("POSTGRES_CONNECT_TIMEOUT", "1.5"),
                ("POSTGRES_LOCK_TIMEOUT", "2"),
                ("POSTGRES_SCHEMA", "Sales"),
            ])
            .with_name("shop"),
        )
        .expect("valid");
        assert_eq!(config.port, 6543);
        assert!(config.has_password());
        assert_eq!(config.pool_size, 2);
        assert_eq!(config.connect_timeout, Duration::from_millis(1500));
        assert_eq!(config.lock_timeout, Duration::from_secs(2));
        assert_eq!(config.schema, "sales");
    }

    #[test]
    fn originator_id_type_is_unset_unless_set_with_the_prefix_first() {
        let url = ("POSTGRES_URL", "postgres://u@h/d");
        let config = config_from_env(&env(&[url])).expect("valid");
        assert_eq!(
            config.originator_id_type, None,
            "the existing table's, else uuid"
        );
        let config = config_from_env(&env(&[url, ("ORIGINATOR_ID_TYPE", "Text")])).expect("valid");
        assert_eq!(config.originator_id_type, Some(OriginatorIdType::Text));
        let config = config_from_env(
            &env(&[
                url,
                ("ORIGINATOR_ID_TYPE", "uuid"),
                ("SHOP_ORIGINATOR_ID_TYPE", "text"),
            ])
            .with_name("shop"),
        )
        .expect("valid");
        assert_eq!(config.originator_id_type, Some(OriginatorIdType::Text));
        let error = config_from_env(&env(&[url, ("ORIGINATOR_ID_TYPE", "varchar")]))
            .expect_err("not a type");
        let message = error.to_string();
        assert!(
            message.contains("ORIGINATOR_ID_TYPE") && message.contains("text"),
            "{message}"
        );
    }

    #[test]
    fn the_url_wins_over_the_separate_connection_variables() {
        let config = config_from_env(&env(&[
            ("POSTGRES_URL", "postgres://root:pw@10.0.0.1:5433/events"),
            ("POSTGRES_HOST", "ignored"),
            ("POSTGRES_DBNAME", "ignored"),
            ("POSTGRES_POOL_SIZE", "3"),
        ]))
        .expect("valid");
        assert_eq!(
            (config.host.as_str(), config.port, config.dbname.as_str()),
            ("10.0.0.1", 5433, "events")
        );
        assert!(config.has_password());
        assert_eq!(config.pool_size, 3, "the other variables still apply");
    }

    #[test]
    fn bad_values_name_the_variable_and_what_is_accepted_never_the_password() {
        type Vars<'a> = &'a [(&'a str, &'a str)];
        let cases: &[(Vars<'_>, &str, &str)] = &[
            (
                &[("POSTGRES_HOST", "h"), ("POSTGRES_USER", "u")],
                "POSTGRES_DBNAME",
                "database name",
            ),
            (
                &[("POSTGRES_DBNAME", "d"), ("POSTGRES_USER", "u")],
                "POSTGRES_HOST",
                "host",
            ),
            (
                &[("POSTGRES_DBNAME", "d"), ("POSTGRES_HOST", "h")],
                "POSTGRES_USER",
                "user",
            ),
            (
                &[
                    ("POSTGRES_URL", "postgres://u:secret@h/d"),
                    ("POSTGRES_PORT", "x"),
                ],
                "POSTGRES_POOL_SIZE",
                "",
            ),
            (
                &[("SHOP_POSTGRES_URL", "postgres://u:secret@/d")],
                "SHOP_POSTGRES_URL",
                "postgres://user@",
            ),
            (
                &[
                    ("POSTGRES_URL", "postgres://u@h/d"),
                    ("POSTGRES_POOL_SIZE", "0"),
                ],
                "POSTGRES_POOL_SIZE",
                "from 1 to 1000",
            ),
            (
                &[
                    ("POSTGRES_URL", "postgres://u@h/d"),
                    ("POSTGRES_CONNECT_TIMEOUT", "0"),
                ],
                "POSTGRES_CONNECT_TIMEOUT",
                "positive",
            ),
            (
                &[
                    ("POSTGRES_URL", "postgres://u@h/d"),
                    ("POSTGRES_LOCK_TIMEOUT", "-1"),
                ],
                "POSTGRES_LOCK_TIMEOUT",
                "seconds",
            ),
            (
                &[
                    ("POSTGRES_URL", "postgres://u@h/d"),
                    ("SHOP_POSTGRES_SCHEMA", "x; drop table y"),
                ],
                "SHOP_POSTGRES_SCHEMA",
                "letters, digits",
            ),
            (
                &[
                    ("POSTGRES_DBNAME", "d"),
                    ("POSTGRES_HOST", "h"),
                    ("POSTGRES_USER", "u"),
                    ("POSTGRES_PASSWORD", "secret"),
                    ("POSTGRES_PORT", "99999"),
                ],
                "POSTGRES_PORT",
                "from 1 to 65535",
            ),
        ];
        for (vars, variable, accepted) in cases {
            let result = config_from_env(&env(vars).with_name("shop"));
            if accepted.is_empty() {
                // The URL wins: a bad POSTGRES_PORT beside it is not read.
                assert!(result.is_ok(), "{result:?}");
                continue;
            }
            let error = result.expect_err(variable);
            let message = error.to_string();
            assert!(
                matches!(&error, Error::Config { variable: v, .. } if v == variable),
                "{message}"
            );
            assert!(message.contains(accepted), "{message}");
            assert!(!message.contains("secret"), "{message}");
            assert!(!format!("{error:?}").contains("secret"), "{error:?}");
        }
    }

    #[test]
    fn tables_are_named_after_the_application_unless_a_prefix_is_set() {
        let config = PostgresConfig::new("h", "d", "u");
        assert_eq!(
            with_table_prefix(config.clone(), Some("Dog_School"))
                .table_prefix
                .as_deref(),
            Some("dog_school")
        );
        assert_eq!(with_table_prefix(config.clone(), None).table_prefix, None);
        let mut chosen = config;
        chosen.table_prefix = Some("mine".into());
        assert_eq!(
            with_table_prefix(chosen, Some("dog-school"))
                .table_prefix
                .as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn a_bad_prefix_is_refused_before_any_connection() {
        let mut config = PostgresConfig::new("127.0.0.1", "test", "postgres");
        // Port 9 on loopback: were a connection attempted, this would fail otherwise.
        config.port = 9;
        config.connect_timeout = Duration::from_millis(200);
        config.table_prefix = Some("x; drop table stored_events".into());
        let error = open_recorders(&config, true, true).err().expect("refused");
        let message = error.to_string();
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "table prefix"),
            "{message}"
        );
        assert!(message.contains("letters, digits"), "{message}");
    }

    #[test]
    fn session_pool_and_tls_variables_reach_the_configuration() {
        let url = ("POSTGRES_URL", "postgres://u@h/d?sslmode=require");
        let config = config_from_env(&env(&[url])).expect("valid");
        assert_eq!(config.ssl_mode, SslMode::Require, "from the URL");
        assert_eq!(config.statement_timeout, Duration::ZERO);
        assert_eq!(
            config.idle_in_transaction_session_timeout,
            Duration::from_secs(5)
        );
        assert_eq!(config.network_timeout, Duration::from_secs(60));
        assert!(!config.pre_ping);
        assert_eq!(config.conn_max_age, Some(Duration::from_secs(3600)));
        let config = config_from_env(&env(&[
            url,
            ("POSTGRES_SSLMODE", "Verify-CA"),
            ("POSTGRES_SSLROOTCERT", "/etc/ca.pem"),
            ("POSTGRES_STATEMENT_TIMEOUT", "2.5"),
            ("POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT", "0"),
            ("POSTGRES_NETWORK_TIMEOUT", "10"),
            ("POSTGRES_PRE_PING", "yes"),
            ("POSTGRES_CONN_MAX_AGE", "60"),
        ]))
        .expect("valid");
        assert_eq!(config.ssl_mode, SslMode::VerifyCa, "the variable wins");
        assert_eq!(
            config.ssl_root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        assert_eq!(config.statement_timeout, Duration::from_millis(2500));
        assert_eq!(config.idle_in_transaction_session_timeout, Duration::ZERO);
        assert_eq!(config.network_timeout, Duration::from_secs(10));
        assert!(config.pre_ping);
        assert_eq!(config.conn_max_age, Some(Duration::from_secs(60)));
        for (variable, value, expected) in [
            ("POSTGRES_SSLMODE", "allow", "verify-full"),
            ("POSTGRES_SSLROOTCERT", " ", "PEM"),
            ("POSTGRES_CONN_MAX_AGE", "0", "positive"),
            ("POSTGRES_PRE_PING", "maybe", "yes"),
            ("POSTGRES_STATEMENT_TIMEOUT", "-1", "seconds"),
        ] {
            let error = config_from_env(&env(&[url, (variable, value)])).expect_err(variable);
            let message = error.to_string();
            assert!(
                matches!(&error, Error::Config { variable: v, .. } if v == variable)
                    && message.contains(expected),
                "{message}"
            );
        }
    }

    #[test]
    fn system_schemas_are_refused() {
        for schema in ["information_schema", "pg_catalog", "PG_toast", "pg_mine"] {
            let error = config_from_env(&env(&[
                ("POSTGRES_URL", "postgres://u@h/d"),
                ("POSTGRES_SCHEMA", schema),
            ]))
            .expect_err(schema);
            assert!(
                error.to_string().contains("belong to PostgreSQL"),
                "{error}"
            );
        }
        let config = config_from_env(&env(&[
            ("POSTGRES_URL", "postgres://u@h/d"),
            ("POSTGRES_SCHEMA", "pgx"),
        ]))
        .expect("not a system name");
        assert_eq!(config.schema, "pgx");
    }
}
