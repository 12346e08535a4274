//! A save's metadata (who, why, headers) is stored with each of its events on
//! every backend, whatever the mapper's stages, and read back from the log:
//! locally and over HTTP.

mod http_support;
#[path = "pg_support/mod.rs"]
mod pg_support;

use std::sync::Arc;

use es_core::Metadata;
use es_core::interface::http::{RemoteLog, log_router};
use es_core::persistence::{Cipher, Compressor, Mapper, Notification, Transcoder};
use es_core::prelude::*;

#[aggregate]
pub struct Parcel {
    weight: u32,
    delivered: bool,
}

#[aggregate]
impl Parcel {
    #[event("Posted")]
    pub fn post(weight: u32) -> Self {
        Parcel {
            weight,
            delivered: false,
        }
    }

    #[event("Delivered")]
    pub fn deliver(&mut self) {
        self.delivered = true;
    }
}

fn courier() -> Metadata {
    Metadata::new()
        .user_id("courier-9")
        .change_reason("handed over at the door")
        .header("correlation-id", "c-41")
}

/// Saves two events of one parcel with metadata and one without, then reads
/// the log back through `mapper`.
fn check(app: &Application, read: impl Fn() -> Vec<Notification>, mapper: &Mapper) {
    let mut parcel = Parcel::post(3);
    parcel.deliver();
    app.save_with_metadata(&mut parcel, &courier())
        .expect("save with metadata");
    app.save(&mut Parcel::post(1)).expect("save without");

    let log = read();
    assert_eq!(log.len(), 3);
    for notification in &log[..2] {
        assert_eq!(
            mapper.metadata(&notification.event).expect("metadata"),
            courier()
        );
    }
    assert!(
        mapper
            .metadata(&log[2].event)
            .expect("no metadata")
            .is_empty()
    );
    // The events themselves read as before.
    let got: Parcel = app.repository().get(parcel.id()).expect("get");
    assert_eq!((got.version(), got.weight, got.delivered), (2, 3, true));
}

fn check_local(app: Application) {
    let mapper = app.mapper().clone();
    check(
        &app,
        || app.notification_log().select(1, 10).expect("select"),
        &mapper,
    );
}

#[test]
fn metadata_is_kept_in_memory() {
    check_local(Application::builder().in_memory().build().expect("app"));
}

#[test]
fn metadata_is_kept_in_sqlite() {
    let dir = tempfile::tempdir().expect("dir");
    check_local(
        Application::builder()
            .sqlite(dir.path().join("parcels.sqlite3"))
            .build()
            .expect("app"),
    );
}

#[test]
fn metadata_is_kept_in_postgres() {
    let Some(config) = pg_support::server("metadata_is_kept_in_postgres") else {
        return;
    };
    let prefix = pg_support::unique_prefix();
    let _tables = pg_support::DropTables::new(&prefix);
    check_local(
        Application::builder()
            .name(&prefix)
            .postgres(config)
            .build()
            .expect("app"),
    );
}

#[test]
fn metadata_is_compressed_and_encrypted_with_its_events() {
    let cipher = Cipher::new(&[7; 32]).expect("cipher");
    let app = Application::builder()
        .in_memory()
        .transcoder(Transcoder::MessagePack)
        .compressor(Compressor::Zstd)
        .cipher(cipher)
        .build()
        .expect("app");
    check_local(app);
    let app = Application::builder().in_memory().build().expect("app");
    app.save_with_metadata(&mut Parcel::post(2), &courier())
        .expect("save");
    let stored = app.notification_log().select(1, 1).expect("select");
    // Without the key, neither the event nor who made it can be read.
    let keyless = Mapper::new(Transcoder::Json).with_cipher(Cipher::new(&[8; 32]).expect("key"));
    assert!(keyless.metadata(&stored[0].event).is_err());
}

#[test]
fn metadata_travels_with_the_log_over_http() {
    let app = Arc::new(
        Application::builder()
            .name("parcels")
            .in_memory()
            .transcoder(Transcoder::MessagePack)
            .build()
            .expect("app"),
    );
    let base = http_support::serve(log_router(vec![app.clone()]).expect("router"));
    let remote = RemoteLog::new(&base, "parcels");
    let mapper = app.mapper().clone();
    check(
        &app,
        || remote.select(1, 10).expect("remote select"),
        &mapper,
    );
}
