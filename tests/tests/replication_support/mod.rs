//! A webhook receiver for the master's tests: it checks each delivery's
//! signature, keeps the batches, and answers as the test tells it to.

#![allow(dead_code)] // Each test target uses its own part of this module.

use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use es_core::interface::replication::Batch;
use es_core::interface::replication::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};

// The crate declares `mod http_support` beside this module.
use crate::http_support;

/// What the receiver got and how it answers.
#[derive(Default)]
pub struct Inbox {
    secret: Mutex<String>,
    batches: Mutex<Vec<Batch>>,
    /// The status to answer with; 0 answers 200 and keeps the batch.
    answer: AtomicU16,
    /// How long to wait before answering, in milliseconds.
    delay_ms: AtomicU64,
    /// Deliveries whose signature did not verify.
    forged: AtomicU64,
    /// Deliveries answered with an error status.
    refused: AtomicU64,
}

impl Inbox {
    pub fn set_secret(&self, secret: &str) {
        *self.secret.lock().expect("secret") = secret.to_owned();
    }

    pub fn answer(&self, status: u16) {
        self.answer.store(status, Ordering::SeqCst);
    }

    pub fn delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn batches(&self) -> Vec<Batch> {
        self.batches.lock().expect("batches").clone()
    }

    /// Every record received, in the order the batches came.
    pub fn records(&self) -> Vec<es_core::interface::replication::HistoryRecord> {
        self.batches().into_iter().flat_map(|b| b.results).collect()
    }

    pub fn forged(&self) -> u64 {
        self.forged.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delay = inbox.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let timestamp: u64 = header(TIMESTAMP_HEADER).parse().unwrap_or(0);
    let secret = inbox.secret.lock().expect("secret").clone();
    if verify(
        secret.as_bytes(),
        timestamp,
        &body,
        header(SIGNATURE_HEADER),
    )
    .is_err()
    {
        inbox.forged.fetch_add(1, Ordering::SeqCst);
        return StatusCode::UNAUTHORIZED;
    }
    let answer = inbox.answer.load(Ordering::SeqCst);
    if answer != 0 {
        inbox.refused.fetch_add(1, Ordering::SeqCst);
        return StatusCode::from_u16(answer).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    }
    let Ok(batch) = serde_json::from_slice::<Batch>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    inbox.batches.lock().expect("batches").push(batch);
    StatusCode::OK
}

/// A receiver on a free port: its inbox and its callback URL.
pub fn receiver() -> (Arc<Inbox>, String) {
    let inbox = Arc::new(Inbox::default());
    let router = axum::Router::new()
        .route("/cb", axum::routing::post(receive))
        .with_state(Arc::clone(&inbox));
    let base = http_support::serve(router);
    (inbox, format!("{base}/cb"))
}

/// A free port of loopback, for a service that must keep its address
/// across restarts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .expect("a free port")
}

/// One of the example's services, run as a process: started again on
/// demand, killed when dropped.
pub struct Service {
    program: &'static str,
    env: Vec<(String, String)>,
    port: u16,
    child: Option<std::process::Child>,
}

impl Service {
    /// `program` with `env`, serving on `port`; not started yet.
    pub fn new(program: &'static str, port: u16, env: &[(&str, String)]) -> Self {
        Service {
            program,
            env: env
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
            port,
            child: None,
        }
    }

    /// Starts it and waits until it answers on its port.
    pub fn start(&mut self) {
        let child = std::process::Command::new(self.program)
            .envs(self.env.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the service starts");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("{} exited at start: {status}", self.program);
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} did not serve within 30 s",
                self.program
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills it with SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}
