//! [`RemoteLog`] for async programs: the same reads, run on tokio's blocking
//! pool, as [`AsyncApplication`](crate::AsyncApplication) runs a store's.

use std::time::Duration;

use super::RemoteLog;
use super::format::SectionJson;
use crate::application::on_blocking_pool;
use crate::error::Result;
use crate::persistence::Notification;

/// A [`RemoteLog`] whose reads never block the async executor: each runs on
/// tokio's blocking pool (features `http-client` and `async`). A long poll
/// ([`select_waiting`](Self::select_waiting)) holds a thread of that pool,
/// not of the executor, while it waits.
///
/// ```
/// # #[cfg(all(feature = "http-server", feature = "async"))] {
/// use std::sync::Arc;
/// use es_core::interface::http::{AsyncRemoteLog, RemoteLog, log_router};
/// use es_core::prelude::*;
/// # #[aggregate] pub struct Crate { slats: u8 }
/// # #[aggregate] impl Crate { #[event("Nailed")] pub fn nail() -> Self { Crate { slats: 6 } } }
/// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// runtime.block_on(async {
///     let depot = Arc::new(Application::builder().name("depot").in_memory().build()?);
///     depot.save(&mut Crate::nail())?;
///     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
///     let base = format!("http://{}", listener.local_addr()?);
///     let router = log_router([depot])?;
///     tokio::spawn(async { axum::serve(listener, router).await });
///
///     let log = AsyncRemoteLog::from(RemoteLog::new(&base, "depot"));
///     assert_eq!(log.max_id().await?, Some(1));
///     assert_eq!(log.select(1, 10).await?[0].event.topic, "Crate.Nailed");
///     Ok::<(), Box<dyn std::error::Error>>(())
/// })?;
/// # }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct AsyncRemoteLog {
    log: RemoteLog,
}

impl From<RemoteLog> for AsyncRemoteLog {
    fn from(log: RemoteLog) -> Self {
        AsyncRemoteLog { log }
    }
}

impl AsyncRemoteLog {
    /// The blocking reader, for a follower ([`RemoteLeader`](super::RemoteLeader)).
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::interface::http::{AsyncRemoteLog, RemoteLog};
    /// let log = AsyncRemoteLog::from(RemoteLog::new("http://127.0.0.1:1", "depot"));
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// assert_eq!(log.blocking().name(), "depot");
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn blocking(&self) -> &RemoteLog {
        &self.log
    }

    /// As [`RemoteLog::max_id`]; a server that cannot be reached is an
    /// [`Error::Database`](crate::Error::Database), as a store's failure.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::interface::http::{AsyncRemoteLog, RemoteLog};
    /// let log = AsyncRemoteLog::from(RemoteLog::new("http://127.0.0.1:1", "depot"));
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let unreachable = runtime.block_on(log.max_id());
    /// assert!(matches!(unreachable, Err(es_core::Error::Database { .. })));
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn max_id(&self) -> Result<Option<u64>> {
        self.run(RemoteLog::max_id).await
    }

    /// As [`RemoteLog::select`].
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::interface::http::{AsyncRemoteLog, RemoteLog};
    /// let log = AsyncRemoteLog::from(RemoteLog::new("http://127.0.0.1:1", "depot"));
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// assert!(runtime.block_on(log.select(1, 100)).is_err());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn select(&self, start: u64, limit: usize) -> Result<Vec<Notification>> {
        self.run(move |log| log.select(start, limit)).await
    }

    /// As [`RemoteLog::select_waiting`]: if there are none yet, the server
    /// waits up to `wait` for some.
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::interface::http::{AsyncRemoteLog, RemoteLog};
    /// let log = AsyncRemoteLog::from(RemoteLog::new("http://127.0.0.1:1", "depot"));
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// let wait = std::time::Duration::from_secs(5);
    /// assert!(runtime.block_on(log.select_waiting(1, 100, wait)).is_err());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn select_waiting(
        &self,
        start: u64,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<Notification>> {
        self.run(move |log| log.select_waiting(start, limit, wait))
            .await
    }

    /// As [`RemoteLog::section`].
    ///
    /// ```
    /// # #[cfg(feature = "async")] {
    /// use es_core::interface::http::{AsyncRemoteLog, RemoteLog};
    /// let log = AsyncRemoteLog::from(RemoteLog::new("http://127.0.0.1:1", "depot"));
    /// let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    /// assert!(runtime.block_on(log.section("1,10")).is_err());
    /// # }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub async fn section(&self, section_id: &str) -> Result<(SectionJson, Vec<Notification>)> {
        let section_id = section_id.to_owned();
        self.run(move |log| log.section(&section_id)).await
    }

    async fn run<T: Send + 'static>(
        &self,
        read: impl FnOnce(&RemoteLog) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let log = self.log.clone();
        on_blocking_pool(move || read(&log)).await
    }
}
