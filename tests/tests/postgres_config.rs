//! The PostgreSQL store as production runs it: connection strings that never
//! leak a secret, names that never share tables, failing fast and within
//! bounds when the server or the network does not answer, the session and
//! pool settings, and TLS.

#[path = "pg_support/mod.rs"]
mod pg_support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use es_core::persistence::{
    AggregateRecorder, ApplicationRecorder, OriginatorIdType, PostgresConfig, PostgresDatabase,
    PostgresRecorder, SslMode, StoredEvent,
};
use es_core::prelude::*;
use es_core::{Environment, Persistence};

use pg_support::{DropTables, DropTablesStartingWith, StallingProxy, server, unique_prefix, url};

/// A password no message has any other reason to contain.
const SECRET: &str = "Zq7xSekr1tVw";

/// Connection strings with the secret in every place it can hide, each of
/// them malformed in its own way.
fn malformed_with_secret() -> Vec<String> {
    let s = SECRET;
    let encoded = "Zq7x%53ekr1tVw"; // the secret with its S percent-encoded
    [
        format!("postgres//user:{s}@host/db"),
        format!("postgres:/user:{s}@host/db"),
        format!("postgresql//user:{s}@host/db"),
        format!("postgres://u:{s}@h/db?password={s}&port=x"),
        format!("postgres://u:{s}@h:notaport/db"),
        format!("postgres://u:{s}@h:99999/db"),
        format!("postgres://u:{s}@h:0/db"),
        format!("postgres://u:{s}@@h/db"),
        format!("postgres://u:{s}@h@other/db"),
        format!("postgres://:{s}@h/db"),
        format!("postgres://u:{s}@/db"),
        format!("postgres://u:{s}@h"),
        format!("postgres://u@h/db?sslmode=sometimes&password={s}"),
        format!("postgres://u:{s}@h/db?sslmode=allow"),
        format!("postgres://u:{s}@h/db?sslcert=x"),
        format!("postgres://u@h/db?passwd={s}"),
        format!("postgres://u@h/db?{s}=1"),
        format!("postgres://u@h/db?{s}"),
        format!("postgres://u@h/db?password={s}&{s}"),
        format!("postgres://u:{encoded}@h:x/db"),
        format!("postgres://u@h/db?password={encoded}&port=x"),
        format!("postgres://u:{s}%ff@h/db"),
        format!("postgres://u:{s}@[::1/db"),
        format!("postgres://u:{s}@h1,h2/db"),
        format!("postgres://u:pass?{s}@h/db"),
        format!("host=h user=u password={s} port=x dbname=d"),
        format!("host=h user=u password='{s} with spaces' port=0 dbname=d"),
        format!("host=h user=u password='{s}"),
        format!("host=h user=u password={s}\\ x bogus dbname=d"),
        format!("host=h user=u password = {s} sslmode=verify-none dbname=d"),
        format!("host=h user='' password={s} dbname=d"),
        format!("host=h user=u dbname=d {s}=x"),
        format!("host=h user=u dbname=d {s}"),
        format!("host=h user=u dbname=d passfile={s}"),
        format!("host=h user=u dbname=d password={s}@x options=-c"),
        format!("user=u password={s}"),
        s.to_owned(),
        format!("{s}@h"),
        format!("u:{s}@h/db"),
        format!(" postgres://u:{s}@h/db?connect_timeout=x "),
    ]
    .into()
}

fn assert_hidden(what: &str, shown: &str) {
    assert!(
        !shown.contains(SECRET) && !shown.contains("Zq7x%53ekr1tVw"),
        "{what} shows the secret: {shown}"
    );
}

#[test]
fn a_malformed_connection_string_never_shows_its_secret() {
    for input in malformed_with_secret() {
        let error = PostgresConfig::from_url(&input).expect_err(&input);
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "POSTGRES_URL"),
            "{input}: {error}"
        );
        assert_hidden(&input, &format!("{error} {error:?} {error:#?}"));

        let env = Environment::from_vars([
            ("PERSISTENCE_MODULE", "postgres"),
            ("SHOP_POSTGRES_URL", input.as_str()),
        ]);
        let error = es_core::Application::builder()
            .name("shop")
            .environment(env)
            .build()
            .map(|_| ())
            .expect_err(&input);
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "SHOP_POSTGRES_URL"),
            "{input}: {error}"
        );
        assert_hidden(&input, &format!("{error} {error:?}"));
    }
}

#[test]
fn a_valid_connection_string_shows_its_secret_nowhere() {
    for input in [
        format!("postgres://u:{SECRET}@h/db"),
        format!("postgres://u@h/db?password={SECRET}"),
        "postgres://u:Zq7x%53ekr1tVw@h/db".to_owned(),
        format!("postgres://u:pass/{SECRET}@h/db"),
        format!("host=h user=u dbname=db password='{SECRET}'"),
        format!(
            "host=h user=u dbname=db password={SECRET} sslmode=verify-full sslrootcert=/ca.pem"
        ),
    ] {
        let config = PostgresConfig::from_url(&input).expect(&input);
        assert!(config.has_password(), "{input}");
        let persistence = Persistence::Postgres(config.clone());
        assert_hidden(
            &input,
            &format!("{config} {config:?} {config:#?} {persistence} {persistence:?}"),
        );
    }
}

#[test]
fn both_forms_give_the_same_configuration() {
    let url = PostgresConfig::from_url(
        "postgres://app:p%40ss@db.internal:6543/events?sslmode=verify-ca&sslrootcert=%2Fca.pem&connect_timeout=7",
    )
    .expect("url");
    let pairs = PostgresConfig::from_url(
        "host=db.internal port=6543 dbname=events user=app password='p@ss' sslmode=verify-ca \
         sslrootcert=/ca.pem connect_timeout=7",
    )
    .expect("pairs");
    assert_eq!(url, pairs);
    assert_eq!(url.ssl_mode, SslMode::VerifyCa);
    assert_eq!(
        url.ssl_root_cert.as_deref(),
        Some(std::path::Path::new("/ca.pem"))
    );
    assert_eq!(url.connect_timeout, std::time::Duration::from_secs(7));
    assert_eq!(url.to_string(), "postgres://app@db.internal:6543/events");
}

#[test]
fn port_zero_an_empty_user_and_a_doubled_at_are_refused_clearly() {
    for (input, why) in [
        ("postgres://u@h:0/d", "port is 0"),
        ("postgres://:pw@h/d", "user is empty"),
        ("postgres://@h/d", "user is empty"),
        ("host=h user='' dbname=d", "user is empty"),
        ("host=h port=0 user=u dbname=d", "port is 0"),
        ("postgres://u:pw@@h/d", "more than one @"),
        ("postgres://u:p@ss@h/d", "%40"),
    ] {
        let error = PostgresConfig::from_url(input).expect_err(input);
        let message = error.to_string();
        assert!(
            matches!(&error, Error::Config { .. }) && message.contains(why),
            "{input}: {message}"
        );
    }
}

#[aggregate]
#[derive(Debug, Clone, PartialEq)]
pub struct Badge {
    holder: String,
}

#[aggregate]
impl Badge {
    #[event("Issued")]
    pub fn issue(holder: String) -> Self {
        Badge { holder }
    }
}

fn app_named(name: &str, config: &PostgresConfig) -> Application {
    Application::builder()
        .name(name)
        .postgres(config.clone())
        .build()
        .expect("application")
}

#[test]
fn names_that_read_alike_keep_their_own_tables() {
    let Some(config) = server("names_that_read_alike_keep_their_own_tables") else {
        return;
    };
    // Short, so that the readable part of the longest name fits whole.
    let start = format!("es_n{}", &Uuid::new_v4().simple().to_string()[..10]);
    let _drop = DropTablesStartingWith {
        schema: "public".into(),
        start: start.clone(),
    };
    // Each pair gave the same tables when every other character became `_`.
    let names = [
        format!("{start}_dog_school"),
        format!("{start}_dog-school"),
        format!("{start}_dog school"),
        format!("{start}_café"),
        format!("{start}_cafè"),
    ];
    let digit_first = format!("2nd-{start}");
    for (index, name) in names.iter().enumerate() {
        let app = app_named(name, &config);
        app.save(&mut Badge::issue(name.clone())).expect("save");
        let log = app.notification_log().select(1, 10).expect("log");
        assert_eq!(log.len(), 1, "{name} sees only its own event, #{index}");
    }
    let mut client = postgres::Client::connect(&url(), postgres::NoTls).expect("connect");
    let tables: Vec<String> = client
        .query(
            "SELECT tablename FROM pg_tables WHERE starts_with(tablename, $1) ORDER BY 1",
            &[&start],
        )
        .expect("tables")
        .iter()
        .map(|row| row.get(0))
        .collect();
    for kind in ["_events", "_tracking"] {
        let of_kind = tables.iter().filter(|t| t.ends_with(kind)).count();
        assert_eq!(of_kind, names.len(), "{kind}: {tables:?}");
    }
    assert_eq!(tables.len(), 2 * names.len(), "{tables:?}");
    assert!(
        tables.contains(&format!("{start}_dog_school_events")),
        "a plain name is its own prefix: {tables:?}"
    );
    assert!(
        tables
            .iter()
            .any(|t| t.starts_with(&format!("{start}_dog_school$")) && t.ends_with("_events")),
        "another name stays readable: {tables:?}"
    );
    let _drop_digit_first = DropTablesStartingWith {
        schema: "public".into(),
        start: format!("_2nd_{start}"),
    };
    let app = app_named(&digit_first, &config);
    app.save(&mut Badge::issue("second".into()))
        .expect("any name gives valid tables");
    // Case aside, a plain name maps to itself: the same application.
    let upper = app_named(&format!("{start}_DOG_SCHOOL"), &config);
    assert_eq!(
        upper.notification_log().select(1, 10).expect("log").len(),
        1
    );
}

#[test]
fn a_long_name_is_shortened_to_fit_and_stays_its_own() {
    let Some(config) = server("a_long_name_is_shortened_to_fit_and_stays_its_own") else {
        return;
    };
    let start = unique_prefix();
    let _drop = DropTablesStartingWith {
        schema: "public".into(),
        start: start.clone(),
    };
    let long = format!("{start}_{}", "x".repeat(60));
    let longer = format!("{long}y");
    for name in [&long, &longer] {
        let app = app_named(name, &config);
        app.save(&mut Badge::issue(name.clone())).expect("save");
        assert_eq!(app.notification_log().select(1, 10).expect("log").len(), 1);
    }
}

#[test]
fn a_system_schema_is_refused_before_any_connection() {
    for schema in ["information_schema", "pg_catalog", "pg_temp_1", "Pg_Toast"] {
        let mut config = PostgresConfig::new("127.0.0.1", "test", "postgres");
        config.schema = schema.into();
        let error = PostgresDatabase::open(&config).expect_err(schema);
        let message = error.to_string();
        assert!(
            matches!(&error, Error::Config { variable, .. } if variable == "POSTGRES_SCHEMA")
                && message.contains("belong to PostgreSQL"),
            "{message}"
        );
    }
}

/// A port on loopback where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn a_refused_connection_fails_at_once_naming_the_server_not_the_password() {
    let port = closed_port();
    let mut config = PostgresConfig::new("127.0.0.1", "test", "postgres").with_password(SECRET);
    config.port = port;
    assert_eq!(config.connect_timeout, Duration::from_secs(30));
    let started = Instant::now();
    let error = PostgresRecorder::events(
        PostgresDatabase::open(&config).expect("pool"),
        Some(&unique_prefix()),
        true,
    )
    .expect_err("nothing listens");
    let elapsed = started.elapsed();
    let message = error.to_string();
    assert!(
        elapsed < Duration::from_secs(2),
        "took {elapsed:?}: {message}"
    );
    assert!(matches!(error, Error::Database { .. }), "{message}");
    assert!(
        message.contains(&format!("127.0.0.1:{port}")) && message.contains("refused"),
        "{message}"
    );
    assert_hidden("the refusal", &format!("{message} {error:?}"));

    let started = Instant::now();
    let error = Application::builder()
        .name("refused")
        .postgres(config)
        .build()
        .map(|_| ())
        .expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2) && matches!(error, Error::Database { .. }),
        "{error}"
    );
}

#[test]
fn a_wrong_password_fails_at_once_without_showing_it() {
    let Some(mut config) = server("a_wrong_password_fails_at_once_without_showing_it") else {
        return;
    };
    // Trust authentication accepts any password, so a user that does not
    // exist stands for a rejected login.
    config.user = format!("es_nobody_{}", Uuid::new_v4().simple());
    let config = config.with_password(SECRET);
    let started = Instant::now();
    let error = PostgresRecorder::events(
        PostgresDatabase::open(&config).expect("pool"),
        Some(&unique_prefix()),
        true,
    )
    .expect_err("no such role");
    let message = error.to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "{message}");
    assert!(
        matches!(error, Error::Database { .. }) && message.contains("es_nobody_"),
        "{message}"
    );
    assert_hidden("the refusal", &format!("{message} {error:?}"));
}

#[test]
fn an_unset_originator_id_type_takes_the_existing_tables() {
    let Some(mut config) = server("an_unset_originator_id_type_takes_the_existing_tables") else {
        return;
    };
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    config.table_prefix = Some(prefix.clone());
    config.originator_id_type = Some(OriginatorIdType::Text);
    drop(
        Application::builder()
            .postgres(config.clone())
            .snapshotting(true)
            .build()
            .expect("text tables"),
    );

    config.originator_id_type = None;
    let app = Application::builder()
        .postgres(config.clone())
        .snapshotting(true)
        .build()
        .expect("the existing type is taken");
    let id = OriginatorId::text("badge-ada").expect("valid");
    let mut badge = Member::join(id.clone(), "Ada".into());
    app.save(&mut badge).expect("a text id in the text table");
    app.take_snapshot::<Member>(&id)
        .expect("and in the snapshots table");
    let copy: Member = app.repository().get(&id).expect("read back");
    assert_eq!(copy.name, "Ada");

    config.originator_id_type = Some(OriginatorIdType::Uuid);
    let error = Application::builder()
        .postgres(config)
        .build()
        .map(|_| ())
        .expect_err("an explicit setting that differs");
    let message = error.to_string();
    assert!(
        matches!(error, Error::Config { .. })
            && message.contains("ORIGINATOR_ID_TYPE")
            && message.contains("leave it unset"),
        "{message}"
    );
}

#[aggregate]
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    name: String,
}

#[aggregate]
impl Member {
    #[event("Joined", id = &id)]
    pub fn join(id: OriginatorId, name: String) -> Self {
        Member { name }
    }
}

fn event(version: u64) -> StoredEvent {
    StoredEvent {
        originator_id: Uuid::new_v4().into(),
        originator_version: version,
        topic: "T".into(),
        state: vec![1],
    }
}

#[test]
fn a_server_gone_silent_fails_saves_and_reads_within_bounds() {
    let Some(server_config) = server("a_server_gone_silent_fails_saves_and_reads_within_bounds")
    else {
        return;
    };
    let proxy = StallingProxy::start(format!("{}:{}", server_config.host, server_config.port))
        .expect("proxy");
    let mut config = server_config.clone();
    config.host = "127.0.0.1".into();
    config.port = proxy.port;
    config.pool_size = 1;
    config.connect_timeout = Duration::from_secs(1);
    config.statement_timeout = Duration::from_secs(1);
    config.network_timeout = Duration::from_secs(1);
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let recorder = PostgresRecorder::events(
        PostgresDatabase::open(&config).expect("pool"),
        Some(&prefix),
        true,
    )
    .expect("recorder, through the proxy");
    recorder
        .insert_events(&[event(1)])
        .expect("a save while all is well");

    proxy.forward(false);
    let started = Instant::now();
    let error = recorder
        .insert_events(&[event(1)])
        .expect_err("nothing comes back");
    let took = started.elapsed();
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(
        took < Duration::from_secs(8),
        "the save took {took:?}: {error}"
    );

    let started = Instant::now();
    let error = recorder
        .select_notifications(1, 10, None, &[])
        .expect_err("nothing comes back");
    let took = started.elapsed();
    assert!(matches!(error, Error::Database { .. }), "{error}");
    assert!(
        took < Duration::from_secs(8),
        "the read took {took:?}: {error}"
    );

    proxy.forward(true);
    // The pool opens a fresh session within its one-second connect timeout;
    // on a machine busy with other tests one handshake can miss that, so the
    // recovery gets a few tries, each one bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match recorder.insert_events(&[event(1)]) {
            Ok(_) => break,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not yet recovered: {error}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(error) => panic!("a save once the path works again: {error}"),
        }
    }
    assert!(
        recorder
            .select_notifications(1, 10, None, &[])
            .expect("read")
            .len()
            >= 2
    );
}

#[test]
fn while_the_server_refuses_calls_fail_at_once_and_the_pool_recovers_by_itself() {
    let Some(server_config) =
        server("while_the_server_refuses_calls_fail_at_once_and_the_pool_recovers_by_itself")
    else {
        return;
    };
    let proxy = StallingProxy::start(format!("{}:{}", server_config.host, server_config.port))
        .expect("proxy");
    let mut config = server_config.clone();
    config.host = "127.0.0.1".into();
    config.port = proxy.port;
    config.pool_size = 3;
    config.connect_timeout = Duration::from_secs(2);
    let prefix = unique_prefix();
    let _drop = DropTables::new(&prefix);
    let recorder = PostgresRecorder::events(
        PostgresDatabase::open(&config).expect("pool"),
        Some(&prefix),
        true,
    )
    .expect("recorder");
    recorder.insert_events(&[event(1)]).expect("up");

    proxy.down();
    let down = Instant::now();
    let mut failures = 0;
    while down.elapsed() < Duration::from_millis(1500) {
        let started = Instant::now();
        let outcome = recorder.insert_events(&[event(1)]);
        let error = outcome.expect_err("the server is away");
        assert!(matches!(error, Error::Database { .. }), "{error}");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a refusal took {:?}: {error}",
            started.elapsed()
        );
        failures += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(failures > 3);

    proxy.up().expect("the same port again");
    let back = Instant::now();
    recorder
        .insert_events(&[event(1)])
        .expect("the pool recovered by itself");
    assert!(
        back.elapsed() < Duration::from_secs(3),
        "{:?}",
        back.elapsed()
    );
    assert_eq!(
        recorder
            .select_notifications(1, 100, None, &[])
            .expect("read")
            .len(),
        2
    );
}
