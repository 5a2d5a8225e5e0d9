//! `AppState`: what every handler shares: the sandbox registry (each sandbox behind its own
//! lock, see [`crate::sandbox`]), the signing keys, the verified-token cache and the
//! journal's redactor. No lock is held across an `.await` (mini-redis's reasoning: the
//! critical sections are short and never wait on I/O).

use crate::journal::Redactor;
use crate::sandbox::Registry;
use crate::tokens::{Keys, VerifiedTokens};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Shared server state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Registry,
    keys: Keys,
    verified: VerifiedTokens,
    redactor: Arc<Redactor>,
    started: Instant,
    ca_pem: Option<String>,
    tokens_issued: AtomicU64,
    /// `--allow-request-faults`: whether `x-mock-scenario` is honoured.
    request_faults: AtomicBool,
}

impl AppState {
    /// State over a registry, with signing keys and (when TLS is on) the CA certificate.
    pub fn new(registry: Registry, keys: Keys, ca_pem: Option<String>) -> Self {
        Self {
            inner: Arc::new(Shared {
                registry,
                keys,
                verified: VerifiedTokens::default(),
                redactor: Arc::new(Redactor::new()),
                started: crate::domain::clock::monotonic(),
                ca_pem,
                tokens_issued: AtomicU64::new(0),
                request_faults: AtomicBool::new(false),
            }),
        }
    }

    /// Honour `x-mock-scenario` on requests (`--allow-request-faults`).
    pub fn allow_request_faults(&self, allow: bool) {
        self.inner.request_faults.store(allow, Ordering::Relaxed);
    }

    /// Whether requests may ask for a scenario's fault with `x-mock-scenario`.
    pub fn request_faults_allowed(&self) -> bool {
        self.inner.request_faults.load(Ordering::Relaxed)
    }

    /// The sandboxes.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Token keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Bearer tokens whose signature was verified.
    pub fn verified_tokens(&self) -> &VerifiedTokens {
        &self.inner.verified
    }

    /// The journal's redactor.
    pub fn redactor(&self) -> &Arc<Redactor> {
        &self.inner.redactor
    }

    /// Milliseconds since start on a monotonic clock.
    pub fn real_ms(&self) -> u64 {
        u64::try_from(self.inner.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The CA certificate PEM, when TLS is on.
    pub fn ca_pem(&self) -> Option<&str> {
        self.inner.ca_pem.as_deref()
    }

    /// A fresh unique token id (`uti`).
    pub fn next_token_id(&self) -> String {
        let n = self.inner.tokens_issued.fetch_add(1, Ordering::Relaxed) + 1;
        format!("mock-{n:08}")
    }
}
