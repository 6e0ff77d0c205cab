//! OCSP queries for the engine ([`Event::OcspWanted`](crate::ike::Event)): the engine made
//! and will verify the request; the daemon only carries it, POSTed with the bounded HTTP
//! client of `crl_fetch` (connect + whole exchange within the timeout, the answer at most
//! [`MAX_OCSP_RESPONSE`]), one task per query and at most a few at once, so that a slow or
//! endless responder costs one task until its timeout and never the engine's task.

use std::time::Duration;

use tokio::sync::mpsc;
use tracing::debug;

use super::crl_fetch::{HttpUri, http_post};
use crate::auth::ocsp::MAX_OCSP_RESPONSE;

/// Queries running at once; beyond, the query is answered "not sent" at once (the engine
/// asks again after a minute at the earliest).
const MAX_IN_FLIGHT: usize = 8;

/// A finished query, for [`crate::ike::Endpoint::ocsp_response`].
pub struct Answered {
    pub query: u64,
    pub body: Result<Vec<u8>, String>,
}

pub struct OcspFetcher {
    timeout: Duration,
    tx: mpsc::Sender<Answered>,
    rx: mpsc::Receiver<Answered>,
    in_flight: usize,
    /// Answers that need no task (refused at once), delivered by [`OcspFetcher::next`].
    immediate: Vec<Answered>,
}

impl OcspFetcher {
    pub fn new(timeout: Duration) -> OcspFetcher {
        let (tx, rx) = mpsc::channel(MAX_IN_FLIGHT);
        OcspFetcher {
            timeout,
            tx,
            rx,
            in_flight: 0,
            immediate: Vec::new(),
        }
    }

    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Starts POSTing `request` to `uri`.
    pub fn want(&mut self, query: u64, uri: &str, request: Vec<u8>) {
        let Some(parsed) = HttpUri::parse(uri) else {
            self.refuse(query, format!("not an http:// URI: {uri:.80}"));
            return;
        };
        if self.in_flight >= MAX_IN_FLIGHT {
            self.refuse(query, "too many OCSP queries in flight".into());
            return;
        }
        self.in_flight += 1;
        let (tx, timeout) = (self.tx.clone(), self.timeout);
        debug!(query, %uri, "OCSP query");
        tokio::spawn(async move {
            let body = http_post(
                &parsed,
                timeout,
                MAX_OCSP_RESPONSE,
                "application/ocsp-request",
                &request,
            )
            .await;
            let _ = tx.send(Answered { query, body }).await;
        });
    }

    fn refuse(&mut self, query: u64, reason: String) {
        if self.immediate.len() < MAX_IN_FLIGHT * 8 {
            self.immediate.push(Answered {
                query,
                body: Err(reason),
            });
        }
    }

    /// The next finished query (pending forever when none is in flight or refused).
    pub async fn next(&mut self) -> Option<Answered> {
        if let Some(a) = self.immediate.pop() {
            return Some(a);
        }
        let a = self.rx.recv().await;
        self.in_flight = self.in_flight.saturating_sub(1);
        a
    }
}
