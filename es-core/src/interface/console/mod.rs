//! A web console (feature `console`): server-rendered pages to look at what
//! applications have stored, with nothing to build and no JavaScript. Build
//! a [`Console`], then serve its [`router`](Console::router) with axum, on
//! its own or nested in the program's router.
//!
//! The pages:
//!
//! - **Applications** (`/`): each application with its newest notification
//!   id, and each registered follower with its position in its leader's
//!   log, the leader's newest id and the lag between the two.
//! - **Notification log** (`/applications/{name}?start=N`): the log page by
//!   page (50 notifications a page, with first, previous and next links),
//!   each event decoded through the application's mapper (whatever its
//!   transcoder, compressor and cipher) into its topic, aggregate id (a link
//!   to the aggregate's page), version, time and fields.
//! - **Aggregate** (`/applications/{name}/aggregates/{id}?start=V`): one
//!   aggregate's events in order, 50 a page, with the state after each one
//!   when its type is registered with [`Console::aggregate`].
//!
//! An event that cannot be decoded (a wrong cipher key, a topic this program
//! does not know how to replay, bytes cut short) shows as such in its row;
//! the rest of the page is still shown. An unknown application or aggregate
//! is a 404 page, a bad query a 400 page, a store's failure a 500 page.
//! Every stored value is HTML-escaped. The stores are read on tokio's
//! blocking pool, never on the executor's threads.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::Arc;
//! use es_core::interface::console::Console;
//! use es_core::prelude::*;
//! # #[aggregate] pub struct Kiln { heat: u32 }
//! # #[aggregate] impl Kiln {
//! #     #[event("Lit")] pub fn light() -> Self { Kiln { heat: 0 } }
//! #     #[event("Stoked")] pub fn stoke(&mut self, by: u32) { self.heat += by; }
//! # }
//!
//! let pottery = Arc::new(Application::builder().name("pottery").in_memory().build()?);
//! let mut kiln = Kiln::light();
//! kiln.stoke(300);
//! pottery.save(&mut kiln)?;
//!
//! let router = Console::new().application(pottery).aggregate::<Kiln>().router()?;
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
//! let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
//! let address = listener.local_addr()?;
//! std::thread::spawn(move || runtime.block_on(async { axum::serve(listener, router).await }));
//!
//! // What a browser would get for the kiln's page:
//! let mut stream = std::net::TcpStream::connect(address)?;
//! let path = format!("/applications/pottery/aggregates/{}", kiln.id());
//! write!(stream, "GET {path} HTTP/1.1\r\nHost: console\r\nConnection: close\r\n\r\n")?;
//! let mut page = String::new();
//! stream.read_to_string(&mut page)?;
//! assert!(page.starts_with("HTTP/1.1 200"));
//! assert!(page.contains("Kiln.Stoked"));
//! assert!(page.contains("&quot;heat&quot;: 300"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod inspect;
mod pages;
mod read;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use maud::Markup;
use serde::Deserialize;

use crate::application::Application;
use crate::domain::aggregate::Aggregate;
use crate::domain::id::OriginatorId;
use crate::error::Error;
use inspect::StatesFn;

/// How many notifications a log page shows, and how many events an
/// aggregate page shows.
const PAGE_SIZE: usize = 50;

/// The web console's configuration: which applications it shows, which
/// aggregate types it can replay, which followers' positions it reports.
/// See [the module](self) for the pages.
///
/// ```
/// use std::sync::Arc;
/// use es_core::interface::console::Console;
/// use es_core::prelude::*;
/// let app = Arc::new(Application::builder().name("orders").in_memory().build()?);
/// let router: axum::Router = Console::new().application(app).router()?;
/// # let _ = router;
/// # Ok::<(), es_core::Error>(())
/// ```
#[derive(Default)]
pub struct Console {
    apps: Vec<Arc<Application>>,
    aggregates: HashMap<&'static str, Arc<StatesFn>>,
    followers: Vec<(Arc<Application>, String)>,
    base_path: String,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut aggregates: Vec<&&str> = self.aggregates.keys().collect();
        aggregates.sort();
        f.debug_struct("Console")
            .field(
                "applications",
                &self.apps.iter().map(|a| a.name()).collect::<Vec<_>>(),
            )
            .field("aggregates", &aggregates)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// A follower as the index reports it.
struct Followed {
    name: String,
    app: Arc<Application>,
    leader: String,
}

/// What the handlers share.
struct Inner {
    apps: BTreeMap<String, Arc<Application>>,
    aggregates: HashMap<&'static str, Arc<StatesFn>>,
    followers: Vec<Followed>,
    base_path: String,
}

impl Console {
    /// A console that shows nothing yet.
    ///
    /// ```
    /// let console = es_core::interface::console::Console::new();
    /// # let _ = console;
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Shows `app`'s log and aggregates, under its name (which it must have).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::console::Console;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("billing").in_memory().build()?);
    /// let console = Console::new().application(app);
    /// # let _ = console.router()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn application(mut self, app: Arc<Application>) -> Self {
        self.apps.push(app);
        self
    }

    /// Lets aggregate pages of type `A` show the state after each event, as
    /// the repository would rebuild it at that version. Aggregates of types
    /// not registered show their events only.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::console::Console;
    /// use es_core::prelude::*;
    /// # #[aggregate] pub struct Loom { rows: u32 }
    /// # #[aggregate] impl Loom { #[event("Strung")] pub fn string() -> Self { Loom { rows: 0 } } }
    /// let app = Arc::new(Application::builder().name("weaving").in_memory().build()?);
    /// let console = Console::new().application(app).aggregate::<Loom>();
    /// # let _ = console.router()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn aggregate<A: Aggregate>(mut self) -> Self {
        self.aggregates.insert(A::NAME, inspect::states_of::<A>());
        self
    }

    /// Reports on the index how far the application `follower` (which must
    /// have a name) has processed the log of `leader`: its tracked position,
    /// and, when `leader` is one of the console's applications, the lag.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::console::Console;
    /// use es_core::prelude::*;
    /// let orders = Arc::new(Application::builder().name("orders").in_memory().build()?);
    /// let invoicing = Arc::new(Application::builder().name("invoicing").in_memory().build()?);
    /// let console = Console::new().application(orders).follower(invoicing, "orders");
    /// # let _ = console.router()?;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn follower(mut self, follower: Arc<Application>, leader: impl Into<String>) -> Self {
        self.followers.push((follower, leader.into()));
        self
    }

    /// The path the router is nested under in the program's router (as
    /// `Router::nest(path, console)`), so that the pages' links point inside
    /// it: `""` (the default) when it is served on its own, else a path that
    /// starts with `/` and does not end with one.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::console::Console;
    /// use es_core::prelude::*;
    /// let app = Arc::new(Application::builder().name("orders").in_memory().build()?);
    /// let console = Console::new().application(app).base_path("/admin/events").router()?;
    /// let router: axum::Router = axum::Router::new().nest("/admin/events", console);
    /// # let _ = router;
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// The console's pages as an axum router, to serve (`axum::serve`) or to
    /// nest. An application or follower without a name, two applications of
    /// one name, or a base path that is not `""` or `/...` without a
    /// trailing `/`, is an [`Error::Config`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use es_core::interface::console::Console;
    /// use es_core::prelude::*;
    /// let unnamed = Arc::new(Application::builder().in_memory().build()?);
    /// assert!(matches!(Console::new().application(unnamed).router(), Err(Error::Config { .. })));
    /// # Ok::<(), es_core::Error>(())
    /// ```
    pub fn router(self) -> Result<axum::Router, Error> {
        let inner = self.into_inner()?;
        Ok(axum::Router::new()
            .route("/", get(index))
            .route("/applications/{application}", get(log))
            .route(
                "/applications/{application}/aggregates/{id}",
                get(aggregate),
            )
            .fallback(not_found)
            .with_state(Arc::new(inner)))
    }

    fn into_inner(self) -> Result<Inner, Error> {
        let base = &self.base_path;
        if !base.is_empty() && (!base.starts_with('/') || base.ends_with('/')) {
            return Err(config(
                "console base path",
                base,
                "\"\" or a path like /admin/events",
            ));
        }
        let mut apps = BTreeMap::new();
        for app in self.apps {
            let name = named(&app, "a name for each application the console shows")?;
            if apps.insert(name.clone(), app).is_some() {
                return Err(config(
                    "application name",
                    &name,
                    "one application of each name",
                ));
            }
        }
        let followers = self
            .followers
            .into_iter()
            .map(|(app, leader)| {
                let name = named(&app, "a name for each follower the console reports on")?;
                Ok(Followed { name, app, leader })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Inner {
            apps,
            aggregates: self.aggregates,
            followers,
            base_path: self.base_path,
        })
    }
}

fn named(app: &Application, expected: &str) -> Result<String, Error> {
    match app.name() {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => Err(config("application name", "", expected)),
    }
}

fn config(variable: &str, value: &str, expected: &str) -> Error {
    Error::Config {
        variable: variable.into(),
        value: value.into(),
        expected: expected.into(),
    }
}

/// A page that could not be made, answered as an HTML page with its status.
struct Failure {
    status: StatusCode,
    message: String,
    base_path: String,
}

impl Failure {
    fn new(inner: &Inner, status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
            base_path: inner.base_path.clone(),
        }
    }

    fn from_error(inner: &Inner, error: Error) -> Self {
        let status = match error {
            Error::AggregateNotFound { .. } => StatusCode::NOT_FOUND,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure::new(inner, status, error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("Error");
        let page = pages::error(&self.base_path, title, &self.message);
        (self.status, Html(page.into_string())).into_response()
    }
}

type Shared = Arc<Inner>;

fn page(markup: Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// Runs the stores' blocking `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    inner: &Shared,
    work: impl FnOnce(&Inner) -> Result<T, Error> + Send + 'static,
) -> Result<T, Failure> {
    let shared = Arc::clone(inner);
    tokio::task::spawn_blocking(move || work(&shared))
        .await
        .map_err(|e| {
            Failure::new(
                inner,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the reader: {e}"),
            )
        })?
        .map_err(|error| Failure::from_error(inner, error))
}

fn find(inner: &Inner, name: &str) -> Result<Arc<Application>, Failure> {
    inner.apps.get(name).cloned().ok_or_else(|| {
        Failure::new(
            inner,
            StatusCode::NOT_FOUND,
            format!("No application {name:?} is shown by this console."),
        )
    })
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    start: Option<u64>,
}

/// The first notification id or version a page shows: 1 unless asked.
fn start(inner: &Inner, query: Result<Query<PageQuery>, QueryRejection>) -> Result<u64, Failure> {
    let Query(query) =
        query.map_err(|e| Failure::new(inner, StatusCode::BAD_REQUEST, e.body_text()))?;
    match query.start {
        Some(0) => Err(Failure::new(
            inner,
            StatusCode::BAD_REQUEST,
            "start counts from 1",
        )),
        start => Ok(start.unwrap_or(1)),
    }
}

async fn index(State(inner): State<Shared>) -> Result<Response, Failure> {
    let data = blocking(&inner, |inner| Ok(read::index(inner))).await?;
    Ok(page(pages::index(&inner.base_path, &data)))
}

async fn log(
    State(inner): State<Shared>,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let start = start(&inner, query)?;
    let app = find(&inner, &name)?;
    let data = blocking(&inner, move |_| read::log(name, &app, start)).await?;
    Ok(page(pages::log(&inner.base_path, &data)))
}

async fn aggregate(
    State(inner): State<Shared>,
    Path((name, id)): Path<(String, String)>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, Failure> {
    let start = start(&inner, query)?;
    let app = find(&inner, &name)?;
    let id: OriginatorId = id
        .parse()
        .map_err(|error: Error| Failure::new(&inner, StatusCode::BAD_REQUEST, error.to_string()))?;
    let data = blocking(&inner, move |inner| {
        read::aggregate(inner, name, &app, &id, start)
    })
    .await?;
    Ok(page(pages::aggregate(&inner.base_path, &data)))
}

async fn not_found(State(inner): State<Shared>) -> Failure {
    Failure::new(
        &inner,
        StatusCode::NOT_FOUND,
        "There is no such page in this console.",
    )
}
