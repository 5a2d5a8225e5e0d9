//! Time as an input. The only module that reads the wall clock (clippy's
//! `disallowed_methods` forbids it elsewhere), so every rule is driven by a clock a test can
//! set and advance.

use chrono::{DateTime, Duration, TimeZone, Utc};

/// An instant in UTC.
pub type Timestamp = DateTime<Utc>;

/// The wall clock. Tokens use it (DECISIONS.md: a client's token cache must keep working
/// while a test advances a sandbox's virtual clock by hours).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> Timestamp {
    Utc::now()
}

/// A monotonic reading, for the journal's real-time column and Retry-After checks.
#[allow(clippy::disallowed_methods)]
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// The instant a fresh virtual clock shows: fixed, so journals and snapshots repeat.
pub fn default_start() -> Timestamp {
    Utc.with_ymd_and_hms(2025, 1, 6, 9, 0, 0).single().unwrap_or_default()
}

/// How a sandbox's clock moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockMode {
    /// Moves only when told to (set / advance).
    Virtual,
    /// Follows the wall clock.
    System,
}

/// A sandbox's clock: virtual by default, switchable to real time.
#[derive(Debug, Clone)]
pub struct VirtualClock {
    now: Timestamp,
    mode: ClockMode,
}

impl Default for VirtualClock {
    fn default() -> Self {
        Self::new(default_start())
    }
}

impl VirtualClock {
    /// A virtual clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        Self { now: start, mode: ClockMode::Virtual }
    }

    /// The current instant.
    pub fn now(&self) -> Timestamp {
        match self.mode {
            ClockMode::Virtual => self.now,
            ClockMode::System => wall_clock(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> ClockMode {
        self.mode
    }

    /// Switches mode; a switch to virtual time freezes the clock where it stands.
    pub fn set_mode(&mut self, mode: ClockMode) {
        self.now = self.now();
        self.mode = mode;
    }

    /// Sets the instant. Refuses to go backwards, since rules assume time only moves forward.
    pub fn set(&mut self, to: Timestamp) -> Result<Timestamp, ClockError> {
        if self.mode == ClockMode::System {
            return Err(ClockError::SystemMode);
        }
        if to < self.now {
            return Err(ClockError::Backwards { now: self.now, requested: to });
        }
        self.now = to;
        Ok(self.now)
    }

    /// Moves the clock forward.
    pub fn advance(&mut self, by: Duration) -> Result<Timestamp, ClockError> {
        if by < Duration::zero() {
            return Err(ClockError::NegativeAdvance);
        }
        let to = self.now.checked_add_signed(by).ok_or(ClockError::OutOfRange)?;
        self.set(to)
    }
}

/// Why the clock refused a change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    /// Time only moves forward.
    #[error("the clock cannot go backwards: it shows {now} and {requested} was asked")]
    Backwards {
        /// Current instant.
        now: Timestamp,
        /// Requested instant.
        requested: Timestamp,
    },
    /// A negative duration.
    #[error("the clock only advances by a positive duration")]
    NegativeAdvance,
    /// Beyond what a timestamp holds.
    #[error("the requested instant is out of range")]
    OutOfRange,
    /// A real-time clock cannot be set.
    #[error("the sandbox clock follows real time; switch it to mode 'virtual' before setting it")]
    SystemMode,
}

/// Formats an instant the way the Power Platform APIs do (`2024-07-30T15:16:03.3742074Z`).
pub fn format_timestamp(t: Timestamp) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_clock_moves_only_when_advanced() {
        let mut c = VirtualClock::default();
        let t0 = c.now();
        assert_eq!(c.now(), t0);
        c.advance(Duration::hours(1)).unwrap();
        assert_eq!(c.now(), t0 + Duration::hours(1));
    }

    #[test]
    fn the_clock_refuses_to_go_backwards() {
        let mut c = VirtualClock::default();
        let t0 = c.now();
        assert!(matches!(c.set(t0 - Duration::seconds(1)), Err(ClockError::Backwards { .. })));
        assert!(matches!(c.advance(Duration::seconds(-1)), Err(ClockError::NegativeAdvance)));
        assert_eq!(c.now(), t0);
    }
}
