//! es-core's spans: a save, a replay and a follower's processing each make
//! one, with the ids in its fields, for whatever subscriber the user installs.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use es_core::prelude::*;
use es_core::system::{Policies, ProcessApplication};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

#[aggregate]
pub struct Parcel {
    grams: u32,
}

#[aggregate]
impl Parcel {
    #[event("Posted")]
    pub fn post(grams: u32) -> Self {
        Parcel { grams }
    }
}

#[aggregate]
pub struct Label {
    grams: u32,
}

#[aggregate]
impl Label {
    #[event("Printed")]
    pub fn print(grams: u32) -> Self {
        Label { grams }
    }
}

/// Each span as its name and its fields, as `name{field=value ..}`.
#[derive(Default)]
struct Collector {
    spans: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl Subscriber for Collector {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = span.metadata().name().to_owned();
        span.record(&mut Fields(&mut line));
        self.spans.lock().expect("spans").push(line);
        Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn record(&self, span: &Id, values: &Record<'_>) {
        let mut spans = self.spans.lock().expect("spans");
        if let Some(line) = usize::try_from(span.into_u64() - 1)
            .ok()
            .and_then(|i| spans.get_mut(i))
        {
            values.record(&mut Fields(line));
        }
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn saves_replays_and_processing_make_spans_with_their_ids() {
    let collector = Arc::new(Collector::default());
    let posted = tracing::subscriber::with_default(Arc::clone(&collector), || {
        let post = Application::builder()
            .name("post")
            .in_memory()
            .build()
            .expect("app");
        let mut parcel = Parcel::post(250);
        post.save(&mut parcel).expect("save");
        let _: Parcel = post.repository().get(parcel.id()).expect("get");
        let labels = ProcessApplication::new(
            Application::builder()
                .name("labels")
                .in_memory()
                .build()
                .expect("app"),
            Policies::new().on(|event: DomainEvent<ParcelEvent>, context| {
                let ParcelEvent::Posted { grams } = event.payload;
                context.collect(Label::print(grams));
                Ok(())
            }),
        )
        .expect("follower");
        labels.pull_and_process(&post, None).expect("process");
        parcel.id()
    });
    let spans = collector.spans.lock().expect("spans").clone();
    let find = |start: &str| {
        spans
            .iter()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no span {start:?} in {spans:#?}"))
    };
    let save = find("es.save application=\"post\"");
    assert!(
        save.contains("events=1") && save.contains("first_id=1"),
        "{save}"
    );
    let replay = find("es.replay aggregate=\"Parcel\"");
    assert!(replay.contains(&format!("id={posted}")), "{replay}");
    let process = find("es.process follower=\"labels\" leader=\"post\"");
    assert!(process.contains("last_id=1"), "{process}");
    let tracked = find("es.save application=\"labels\"");
    assert!(tracked.contains("leader=\"post\" leader_id=1"), "{tracked}");
}
