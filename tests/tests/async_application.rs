//! `AsyncApplication` when its caller goes away: a save handed to the
//! blocking pool runs to its end even if the future awaiting it is dropped
//! (a client that hung up), so it is committed or refused whole, never cut
//! off half-way.

use std::future::Future as _;
use std::task::Poll;
use std::time::Duration;

use es_core::AsyncApplication;
use es_core::prelude::*;

#[aggregate]
pub struct Parcel {
    weight: u32,
}

#[aggregate]
impl Parcel {
    #[event("Weighed")]
    pub fn weigh(weight: u32) -> Self {
        Parcel { weight }
    }
}

#[test]
fn a_save_whose_caller_stopped_waiting_is_still_committed() {
    // A file synced on each commit, so that the save is still running when
    // its caller gives up.
    let dir = tempfile::tempdir().expect("a directory");
    let app = AsyncApplication::new(
        Application::builder()
            .sqlite(dir.path().join("parcels.sqlite3"))
            .build()
            .expect("an application"),
    );
    let parcel = Parcel::weigh(12);
    let id = parcel.id();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        // Polled once, which hands the save to the pool, then dropped.
        let mut save = std::pin::pin!(app.save(parcel));
        let first = std::future::poll_fn(|context| Poll::Ready(save.as_mut().poll(context))).await;
        assert!(first.is_pending(), "a synced save took no time at all");
    });
    let saved = app.application().wait_for_save(0, Duration::from_secs(10));
    assert_eq!(saved, 1, "the save went on without its caller");
    let parcel: Parcel = app
        .application()
        .repository()
        .get(id)
        .expect("the parcel, saved whole");
    assert_eq!((parcel.weight, parcel.version()), (12, 1));
}
