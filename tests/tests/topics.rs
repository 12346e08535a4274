//! Two event types registered under one topic: typed reads still work, reads
//! by topic alone say the topic is ambiguous.

use es_core::prelude::*;

mod kennel {
    use es_core::prelude::*;

    #[aggregate]
    pub struct Dog {
        pub name: String,
    }

    #[aggregate]
    impl Dog {
        #[event("Registered")]
        pub fn register(name: String) -> Self {
            Dog { name }
        }
    }
}

mod shelter {
    use es_core::prelude::*;

    #[aggregate]
    pub struct Dog {
        pub chip: u64,
    }

    // Same aggregate name, same event name: the same topic, "Dog.Registered".
    #[aggregate]
    impl Dog {
        #[event("Registered")]
        pub fn register(chip: u64) -> Self {
            Dog { chip }
        }
    }
}

#[test]
fn an_ambiguous_topic_fails_untyped_reads_only() {
    let error = es_core::topics::check_unique().expect_err("Dog.Registered twice");
    assert!(
        matches!(
            error,
            Error::DuplicateTopic {
                topic: "Dog.Registered"
            }
        ),
        "{error}"
    );
    assert!(
        error.to_string().contains("topic = "),
        "says how to fix it: {error}"
    );

    let app = Application::builder()
        .in_memory()
        .build()
        .expect("application");
    let mut dog = kennel::Dog::register("Fido".into());
    app.save(&mut dog).expect("save");
    assert_eq!(
        app.repository()
            .get::<kennel::Dog>(dog.id())
            .expect("typed read")
            .name,
        "Fido"
    );

    assert_eq!(
        shelter::Dog::register(7).pending_events()[0].topic(),
        "Dog.Registered"
    );

    let notification = app
        .notification_log()
        .select(1, 1)
        .expect("select")
        .remove(0);
    let error = app
        .mapper()
        .to_any_event(&notification.event)
        .expect_err("ambiguous");
    assert!(matches!(error, Error::DuplicateTopic { .. }), "{error}");
}
