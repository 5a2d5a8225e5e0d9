//! One-line journal snapshots for tests (cargo feature `insta`): the normalised journal slice
//! a filter selects, read to its end, snapshotted with insta where the macro is called.
//!
//! ```ignore
//! mock_server::assert_journal_snapshot!(server.default_sandbox(), JournalFilter::all().kind(EntryKind::Request));
//! mock_server::assert_journal_snapshot!("connection_put", sandbox, JournalFilter::all().operation(Operation::ConnectionsPut));
//! ```
//!
//! The snapshot is the JSON array `GET /_mock/journal?view=normalised` answers in `entries`
//! (docs/faults.md, "Journal snapshots"), so any language's snapshot tool can keep the same.

#[doc(hidden)]
pub use insta as __insta;

/// Snapshots the normalised journal entries `$filter` selects in `$sandbox` (a
/// [`crate::SandboxHandle`]); with a leading name, under that name. Call it in an async test.
#[macro_export]
macro_rules! assert_journal_snapshot {
    ($sandbox:expr, $filter:expr $(,)?) => {{
        let entries = $sandbox.journal().normalised($filter).await.expect("the sandbox's journal");
        $crate::snapshot::__insta::assert_json_snapshot!(entries);
    }};
    ($name:expr, $sandbox:expr, $filter:expr $(,)?) => {{
        let entries = $sandbox.journal().normalised($filter).await.expect("the sandbox's journal");
        $crate::snapshot::__insta::assert_json_snapshot!($name, entries);
    }};
}
