//! Typed handlers, one per event enum, as policies and projections keep
//! them: an event goes to the handler of its enum, decoded as that enum,
//! and events of enums without a handler are never decoded. What a handler
//! writes with (a processing context, a view's transaction) borrows for a
//! lifetime of its own, so it is named by a [`Target`].

use std::marker::PhantomData;

use crate::domain::event::{AggregateEvent, AnyEvent, DomainEvent};
use crate::error::BoxError;

/// What handlers write with, for any lifetime of its borrows.
pub(crate) trait Target: 'static {
    type Of<'a>;
}

/// The handlers of one policy or projection.
pub(crate) struct Handlers<T: Target> {
    handlers: Vec<Box<dyn Handler<T>>>,
}

impl<T: Target> Default for Handlers<T> {
    fn default() -> Self {
        Handlers {
            handlers: Vec::new(),
        }
    }
}

impl<T: Target> Handlers<T> {
    pub(crate) fn len(&self) -> usize {
        self.handlers.len()
    }

    /// Adds the handler of the events of enum `E`.
    pub(crate) fn push<E, F>(&mut self, handler: F)
    where
        E: AggregateEvent,
        F: for<'a> Fn(DomainEvent<E>, &mut T::Of<'a>) -> Result<(), BoxError>
            + Send
            + Sync
            + 'static,
    {
        self.handlers.push(Box::new(Typed {
            handler,
            _event: PhantomData::<fn() -> E>,
        }));
    }

    /// Whether a handler takes events of `topic`.
    pub(crate) fn wants(&self, topic: &str) -> bool {
        self.handlers.iter().any(|handler| handler.wants(topic))
    }

    /// Hands `event` to the handler of its enum; nothing if there is none.
    pub(crate) fn handle(
        &self,
        mut event: DomainEvent<Box<dyn AnyEvent>>,
        target: &mut T::Of<'_>,
    ) -> Result<(), BoxError> {
        for handler in &self.handlers {
            match handler.handle(event, target) {
                Handled::Done(result) => return result,
                Handled::NotMine(back) => event = back,
            }
        }
        Ok(())
    }
}

enum Handled {
    Done(Result<(), BoxError>),
    NotMine(DomainEvent<Box<dyn AnyEvent>>),
}

trait Handler<T: Target>: Send + Sync {
    fn wants(&self, topic: &str) -> bool;
    fn handle(&self, event: DomainEvent<Box<dyn AnyEvent>>, target: &mut T::Of<'_>) -> Handled;
}

struct Typed<E, F> {
    handler: F,
    _event: PhantomData<fn() -> E>,
}

impl<T, E, F> Handler<T> for Typed<E, F>
where
    T: Target,
    E: AggregateEvent,
    F: for<'a> Fn(DomainEvent<E>, &mut T::Of<'a>) -> Result<(), BoxError> + Send + Sync,
{
    fn wants(&self, topic: &str) -> bool {
        E::has_topic(topic)
    }

    fn handle(&self, event: DomainEvent<Box<dyn AnyEvent>>, target: &mut T::Of<'_>) -> Handled {
        match event.downcast::<E>() {
            Ok(event) => Handled::Done((self.handler)(event, target)),
            Err(event) => Handled::NotMine(event),
        }
    }
}
