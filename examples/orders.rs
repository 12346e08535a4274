//! A system of three applications, after the Python library's documentation:
//! orders are reserved by a reservations application, then paid by a
//! payments application, each following the others' notification logs.
//!
//! ```text
//! orders ──► reservations ──► orders ──► payments ──► orders
//! ```
//!
//! The same applications run under the single-threaded runner (followers
//! process in the saving thread, before the save returns) and the
//! multi-threaded one (a thread per follower); the example runs both:
//!
//! ```text
//! cargo run -p examples --example orders
//! ```
//!
//! Everything is kept in memory, so each run starts afresh.

use std::time::{Duration, Instant};

use es_core::prelude::*;
use es_core::system::{
    MultiThreadedRunner, Policies, ProcessApplication, SingleThreadedRunner, System, SystemError,
};

/// An order, reserved and then paid.
#[aggregate]
pub struct Order {
    name: String,
    reservation: Option<OriginatorId>,
    payment: Option<OriginatorId>,
}

#[aggregate]
impl Order {
    /// Places an order; its id follows from its name.
    #[event("Created", id = create_id(&name))]
    pub fn create(name: String) -> Self {
        Order {
            name,
            reservation: None,
            payment: None,
        }
    }

    #[event("Reserved")]
    pub fn set_reserved(&mut self, reservation: OriginatorId) {
        self.reservation = Some(reservation);
    }

    #[event("Paid")]
    pub fn set_paid(&mut self, payment: OriginatorId) {
        self.payment = Some(payment);
    }

    /// Whether the order has been reserved and paid.
    pub fn is_done(&self) -> bool {
        self.reservation.is_some() && self.payment.is_some()
    }
}

/// A reservation of an order's goods.
#[aggregate]
pub struct Reservation {
    order: OriginatorId,
}

#[aggregate]
impl Reservation {
    /// One reservation per order: its id follows from the order's.
    #[event("Created", id = create_id(&format!("reservation-{order}")))]
    pub fn create(order: OriginatorId) -> Self {
        Reservation { order }
    }
}

/// A payment for an order.
#[aggregate]
pub struct Payment {
    order: OriginatorId,
}

#[aggregate]
impl Payment {
    /// One payment per order: its id follows from the order's.
    #[event("Created", id = create_id(&format!("payment-{order}")))]
    pub fn create(order: OriginatorId) -> Self {
        Payment { order }
    }
}

/// The orders application follows reservations and payments, and marks
/// its orders reserved and paid.
fn orders_policy() -> Policies {
    Policies::new()
        .on(|event: DomainEvent<ReservationEvent>, context| {
            let ReservationEvent::Created { order } = event.payload;
            let mut order: Order = context.get(order)?;
            order.set_reserved(event.originator_id);
            context.collect(order);
            Ok(())
        })
        .on(|event: DomainEvent<PaymentEvent>, context| {
            let PaymentEvent::Created { order } = event.payload;
            let mut order: Order = context.get(order)?;
            order.set_paid(event.originator_id);
            context.collect(order);
            Ok(())
        })
}

/// Reservations reserve each new order.
fn reservations_policy() -> Policies {
    Policies::new().on(|event: DomainEvent<OrderEvent>, context| {
        if let OrderEvent::Created { .. } = event.payload {
            context.collect(Reservation::create(event.originator_id));
        }
        Ok(())
    })
}

/// Payments pay each reserved order.
fn payments_policy() -> Policies {
    Policies::new().on(|event: DomainEvent<OrderEvent>, context| {
        if let OrderEvent::Reserved { .. } = event.payload {
            context.collect(Payment::create(event.originator_id));
        }
        Ok(())
    })
}

/// The system, its applications built by `app` from their names.
pub fn orders_system(
    app: impl Fn(&str) -> Result<Application, es_core::Error>,
) -> Result<System, Box<dyn std::error::Error>> {
    Ok(System::builder()
        .process(ProcessApplication::new(app("orders")?, orders_policy())?)
        .process(ProcessApplication::new(
            app("reservations")?,
            reservations_policy(),
        )?)
        .process(ProcessApplication::new(
            app("payments")?,
            payments_policy(),
        )?)
        .pipe(["orders", "reservations", "orders", "payments", "orders"])
        .build()?)
}

fn in_memory(name: &str) -> Result<Application, es_core::Error> {
    Application::builder().name(name).in_memory().build()
}

/// Waits until `done` says yes, or fails after `timeout`.
fn eventually(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    let deadline = Instant::now() + timeout;
    while !done()? {
        if Instant::now() > deadline {
            return Err(SystemError::Runner(format!("not done within {timeout:?}")).into());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // In the saving thread: done when the save returns.
    let runner = SingleThreadedRunner::start(orders_system(in_memory)?)?;
    let orders = runner.application("orders")?;
    let mut order = Order::create("coffee beans".into());
    orders.save(&mut order)?;
    let order: Order = orders.repository().get(order.id())?;
    println!(
        "single-threaded: {} reserved ({}) and paid ({})",
        order.name,
        order
            .reservation
            .as_ref()
            .map_or("-".into(), ToString::to_string),
        order
            .payment
            .as_ref()
            .map_or("-".into(), ToString::to_string)
    );
    assert!(order.is_done());

    // A thread per follower: done a moment later.
    let runner = MultiThreadedRunner::start(orders_system(in_memory)?)?;
    let orders = runner.application("orders")?;
    let mut order = Order::create("tea leaves".into());
    orders.save(&mut order)?;
    eventually(Duration::from_secs(10), || {
        Ok(orders.repository().get::<Order>(order.id())?.is_done())
    })?;
    println!("multi-threaded: {} reserved and paid", order.name);
    runner.stop()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every application's events as (id, version, topic), sorted.
    fn contents(app: &Application) -> Vec<(String, u64, String)> {
        let mut events: Vec<_> = app
            .recorder()
            .select_notifications(1, 1_000_000, None, &[])
            .expect("log")
            .into_iter()
            .map(|n| {
                (
                    n.event.originator_id.to_string(),
                    n.event.originator_version,
                    n.event.topic,
                )
            })
            .collect();
        events.sort();
        events
    }

    const NAMES: [&str; 3] = ["orders", "reservations", "payments"];

    #[test]
    fn a_saved_order_is_reserved_and_paid_before_the_save_returns() {
        let runner =
            SingleThreadedRunner::start(orders_system(in_memory).expect("system")).expect("runner");
        let orders = runner.application("orders").expect("orders");
        let mut order = Order::create("a".into());
        orders.save(&mut order).expect("save");
        let order: Order = orders.repository().get(order.id()).expect("get");
        assert!(order.is_done());
        assert_eq!(order.version(), 3);
    }

    #[test]
    fn both_runners_reach_the_same_final_state() {
        let single =
            SingleThreadedRunner::start(orders_system(in_memory).expect("system")).expect("runner");
        let multi = MultiThreadedRunner::start_with_poll_interval(
            orders_system(in_memory).expect("system"),
            Duration::from_millis(20),
        )
        .expect("runner");
        for n in 0..20 {
            for app in [single.application("orders"), multi.application("orders")] {
                app.expect("orders")
                    .save(&mut Order::create(format!("order {n}")))
                    .expect("save");
            }
        }
        let orders = multi.application("orders").expect("orders");
        eventually(Duration::from_secs(20), || {
            Ok((0..20).all(|n| {
                orders
                    .repository()
                    .get::<Order>(create_id(&format!("order {n}")))
                    .is_ok_and(|order| order.is_done())
            }))
        })
        .expect("the multi-threaded runner finishes");
        for name in NAMES {
            let (a, b) = (
                contents(single.application(name).expect("app")),
                contents(multi.application(name).expect("app")),
            );
            assert_eq!(a, b, "{name}");
            assert!(!a.is_empty(), "{name}");
        }
        multi.stop().expect("no follower failed");
    }
}
