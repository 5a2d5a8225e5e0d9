//! `domain::Error`: one variant per rule that can be broken, each with its code. Messages
//! that Microsoft documents are reproduced word for word; codes the mock makes up are marked
//! `(mock-defined)` in their docs and in `docs/errors.md`.

use super::clock::ClockError;

/// A broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The sandbox clock refused a change (mock-defined `InvalidClockChange`).
    #[error(transparent)]
    Clock(#[from] ClockError),
}

impl Error {
    /// The error code clients see.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Clock(_) => "InvalidClockChange",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::Clock(_) => 400,
        }
    }
}
