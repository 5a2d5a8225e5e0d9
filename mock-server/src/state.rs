//! `AppState`: what every handler shares. One `std::sync::Mutex` over the sandbox registry:
//! a request locks it once, does its check-and-write, and unlocks before any `.await`
//! (mini-redis's reasoning: the critical sections are short and never wait on I/O).

use crate::journal::Redactor;
use crate::sandbox::Registry;
use crate::tokens::Keys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Shared server state; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    registry: Mutex<Registry>,
    keys: Keys,
    redactor: Redactor,
    started: Instant,
    ca_pem: Option<String>,
    tokens_issued: AtomicU64,
}

impl AppState {
    /// State over a registry, with signing keys and (when TLS is on) the CA certificate.
    pub fn new(registry: Registry, keys: Keys, ca_pem: Option<String>) -> Self {
        Self {
            inner: Arc::new(Shared {
                registry: Mutex::new(registry),
                keys,
                redactor: Redactor::new(),
                started: crate::domain::clock::monotonic(),
                ca_pem,
                tokens_issued: AtomicU64::new(0),
            }),
        }
    }

    /// Locks the registry. A poisoned lock is recovered: every command checks before it
    /// writes, so a panic cannot have left a half-written record behind.
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.inner.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Token keys.
    pub fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// The journal's redactor.
    pub fn redactor(&self) -> &Redactor {
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
