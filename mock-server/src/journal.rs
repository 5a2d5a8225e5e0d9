//! The request journal: every request to an emulated surface, with secrets replaced **when
//! the entry is written**, so no later code path can leak them. Bounded; evictions are
//! counted and reported.
//!
//! Redaction works by field name (passwords, client secrets, tokens, certificate blobs, the
//! `Authorization` header) and by value (every credential of the sandbox's world and every
//! JWT-shaped string, which covers every token the mock issued and every client assertion).
//! A secret becomes `<redacted:KIND:H>`, H a short keyed hash (key per process): equal
//! secrets stay equal and none can be recovered. A body that does not parse is kept as a
//! rendition from a lenient tokenizer: the value after every secret-named word, wherever the
//! word appears, is replaced too. A known secret found outside its proper field (a password
//! in a query string), or any query parameter named like a secret, flags the entry as a
//! leak; the journal counts flagged entries.
//!
//! Writing an entry as text costs more than answering most requests, and most entries of a
//! busy journal are evicted unread. So an exchange that [`Redactor::might_leak`] clears (no
//! known secret anywhere in it, no secret-named query parameter) is kept as captured (its text
//! copied into one buffer, [`CapturedText`]), with the secrets and redactor of its moment, and
//! written on its first read by the same code with
//! the same inputs: what any read returns is byte for byte what writing at once gives, and
//! its leak verdict (none) is known at once. Anything else is redacted before it is stored.
//!
//! - `tree` — the borrowed JSON tree a body is parsed into and redacted in, written as the
//!   exact text a `serde_json::Value` would give.

mod tree;

use crate::operation::Operation;
use crate::tokens::find_jwts;
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use tree::Json;

/// Default number of entries kept per sandbox.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// One recorded exchange. Its bodies are [`Value`]s for reading ([`Redactor::record`]), or
/// their JSON text as stored ([`Redactor::redact`], what the pipeline journals).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry<B = Value> {
    /// Sequence number within the sandbox (survives eviction, so gaps show what was evicted).
    pub seq: u64,
    /// Always `request` (events are [`EventEntry`]).
    pub kind: EntryKind,
    /// The sandbox the request belongs to.
    pub sandbox: String,
    /// Which surface answered (`identity`, `powerplatform`, `dataverse`, `bap`, `runtime`, `unknown`).
    pub surface: String,
    /// The named operation (`connections.put`, …, `unmatched`; docs/operations.md).
    pub operation: Operation,
    /// The environment the request named, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The sandbox's virtual time when the request arrived.
    pub virtual_time: String,
    /// Milliseconds since the server started, on a monotonic clock (for Retry-After checks).
    pub real_ms: u64,
    /// `http` or `https`.
    pub scheme: String,
    /// Host as the client sent it.
    pub host: String,
    /// Method.
    pub method: String,
    /// Path as the client sent it (before any routing rewrite).
    pub path: String,
    /// Query parameters in order, values redacted.
    pub query: Vec<(String, String)>,
    /// Selected request headers (lower-case names), values redacted.
    pub headers: Map<String, Value>,
    /// Request body: JSON as JSON, a form as an object, other text as a string, nothing as null.
    pub body: B,
    /// Response status.
    pub status: u16,
    /// Response body, parsed the same way.
    pub response: B,
    /// Where a known secret was found outside its proper field; empty when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaks: Vec<String>,
    /// The Retry-After check's verdict on this request, when an earlier answer to its caller
    /// asked it to wait (`scenarios.md`, Retry-After check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<RetryAfterMark>,
}

/// What a request's journal entry says of the `Retry-After` it was asked to honour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryAfterMark {
    /// Seconds the earlier answer asked for.
    pub required: u64,
    /// Real milliseconds waited since that answer.
    pub waited_ms: u64,
    /// Whether the wait was long enough.
    pub honoured: bool,
}

/// What the middleware captured, before redaction. Only `Redactor::record` turns it into an
/// entry, so nothing unredacted can be stored.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// Surface name.
    pub surface: &'static str,
    /// The named operation.
    pub operation: Operation,
    /// `http` / `https`.
    pub scheme: &'static str,
    /// Selected headers, as they came.
    pub headers: KeptHeaders,
    /// Status.
    pub status: u16,
    /// Monotonic milliseconds since start.
    pub real_ms: u64,
    /// Host, method, path, query, content types and bodies.
    pub text: CapturedText,
}

/// An exchange's text, each part borrowed: what [`CapturedText`] copies and gives back.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExchangeText<'a> {
    /// Host header.
    pub host: &'a str,
    /// Method.
    pub method: &'a str,
    /// Raw path.
    pub path: &'a str,
    /// Raw query string.
    pub query: &'a str,
    /// Request content type and body.
    pub body: (Option<&'a str>, &'a [u8]),
    /// Response content type and body.
    pub response: (Option<&'a str>, &'a [u8]),
}

/// An exchange's text copied into one buffer: a journal entry waiting to be written (or
/// evicted unread) is one allocation to make and one to free, and keeps none of hyper's
/// buffers alive.
#[derive(Debug, Clone)]
pub struct CapturedText {
    buf: Box<[u8]>,
    /// Where each part ends in `buf`: host, method, path, query, the two content types, body,
    /// response.
    ends: [usize; 8],
    /// Whether the request (bit 0) and the response (bit 1) named a content type.
    typed: u8,
}

impl CapturedText {
    /// A copy of `t`.
    pub fn of(t: ExchangeText<'_>) -> Self {
        let parts: [&[u8]; 8] = [
            t.host.as_bytes(),
            t.method.as_bytes(),
            t.path.as_bytes(),
            t.query.as_bytes(),
            t.body.0.unwrap_or_default().as_bytes(),
            t.response.0.unwrap_or_default().as_bytes(),
            t.body.1,
            t.response.1,
        ];
        let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        let mut ends = [0; 8];
        for (end, part) in ends.iter_mut().zip(parts) {
            buf.extend_from_slice(part);
            *end = buf.len();
        }
        let typed = u8::from(t.body.0.is_some()) | (u8::from(t.response.0.is_some()) << 1);
        Self { buf: buf.into_boxed_slice(), ends, typed }
    }

    /// The text, borrowed.
    pub fn get(&self) -> ExchangeText<'_> {
        let part = |i: usize| {
            let start = if i == 0 { 0 } else { self.ends[i - 1] };
            self.buf.get(start..self.ends[i]).unwrap_or_default()
        };
        // The first six parts were copied from `&str`s, so they are text.
        let text = |i: usize| std::str::from_utf8(part(i)).unwrap_or_default();
        let typed = |bit: u8, i: usize| (self.typed & bit != 0).then(|| text(i));
        ExchangeText {
            host: text(0),
            method: text(1),
            path: text(2),
            query: text(3),
            body: (typed(1, 4), part(6)),
            response: (typed(2, 5), part(7)),
        }
    }

    /// Bytes it holds.
    fn len(&self) -> usize {
        self.buf.len()
    }
}

/// What a request's entry records besides the exchange: the sandbox's secrets, name and
/// virtual time when it arrived, the environment it named and the Retry-After verdict on it.
#[derive(Debug)]
pub struct Capture {
    /// The sandbox's known secrets at that moment (a later rotation does not change them).
    pub known: Arc<KnownSecrets>,
    /// The sandbox's name.
    pub sandbox: String,
    /// Its virtual time.
    pub virtual_time: crate::domain::clock::Timestamp,
    /// The environment the request named.
    pub environment: Option<String>,
    /// The Retry-After check's verdict on it.
    pub retry_after: Option<RetryAfterMark>,
}

/// A request entry kept as captured until first read (module docs). Holds secrets, so it is
/// never shown.
pub struct Deferred {
    exchange: Exchange,
    redactor: Arc<Redactor>,
    capture: Capture,
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deferred").field("operation", &self.exchange.operation).finish_non_exhaustive()
    }
}

impl Deferred {
    /// The bytes it counts for until written: what it holds, plus the entry's frame.
    fn size(&self) -> usize {
        let x = &self.exchange;
        std::mem::size_of::<Self>()
            + 320
            + x.text.len()
            + x.headers.size()
            + self.capture.sandbox.len()
            + self.capture.environment.as_ref().map_or(0, String::len)
    }

    /// The entry's text, exactly as writing it at once would have given.
    fn write(self, seq: u64) -> serde_json::Result<String> {
        let Self { exchange, redactor, capture } = self;
        let vt = crate::domain::clock::format_timestamp(capture.virtual_time);
        let mut entry = redactor.redact(exchange, &capture.known, seq, &capture.sandbox, vt);
        entry.environment = capture.environment;
        entry.retry_after = capture.retry_after;
        serde_json::to_string(&entry)
    }
}

/// A request's entry on its way into the journal ([`Redactor::prepare`]).
#[derive(Debug)]
pub enum Recorded {
    /// Redacted already.
    Written(Box<JournalEntry<Box<RawValue>>>),
    /// Kept as captured, written when first read.
    Deferred(Box<Deferred>),
}

/// Request headers worth keeping; everything else is dropped (cookies, proxies' headers).
pub static KEPT_HEADERS: [HeaderName; 15] = [
    HeaderName::from_static("accept"),
    HeaderName::from_static("authorization"),
    HeaderName::from_static("content-type"),
    HeaderName::from_static("if-match"),
    HeaderName::from_static("if-none-match"),
    HeaderName::from_static("odata-maxversion"),
    HeaderName::from_static("odata-version"),
    HeaderName::from_static("prefer"),
    HeaderName::from_static("user-agent"),
    HeaderName::from_static("x-ms-client-request-id"),
    HeaderName::from_static("x-ms-correlation-id"),
    HeaderName::from_static("x-correlation-id"),
    HeaderName::from_static("x-ms-useragent"),
    HeaderName::from_static("mscrm.includeunpublished"),
    HeaderName::from_static("x-mock-scenario"),
];

/// A request's kept headers: the first value of each, in [`KEPT_HEADERS`]' order, copied into
/// one buffer (a value shares hyper's read buffer, which a journal entry must not keep alive),
/// each named by its place in that list. One allocation, freed in one piece when its entry goes.
#[derive(Debug, Clone, Default)]
pub struct KeptHeaders {
    values: Box<[u8]>,
    /// Per kept header: its place in [`KEPT_HEADERS`] and where its value ends in `values`.
    spans: smallvec::SmallVec<[(u8, u32); 6]>,
}

impl KeptHeaders {
    /// The kept headers of `headers`, in one pass.
    pub fn of(headers: &axum::http::HeaderMap) -> Self {
        let mut found: [Option<&HeaderValue>; KEPT_HEADERS.len()] = [None; KEPT_HEADERS.len()];
        for (name, value) in headers {
            // Standard names compare as one byte each, custom ones by length first.
            let Some(kept) = KEPT_HEADERS.iter().position(|k| k == name) else { continue };
            found[kept].get_or_insert(value);
        }
        let mut values = Vec::with_capacity(found.iter().flatten().map(|v| v.len()).sum());
        let mut spans = smallvec::SmallVec::new();
        for (place, value) in found.iter().enumerate() {
            let Some(value) = value else { continue };
            values.extend_from_slice(value.as_bytes());
            // hyper bounds a request's head far below 4 GiB, so an end always fits.
            spans.push((place as u8, u32::try_from(values.len()).unwrap_or(u32::MAX)));
        }
        Self { values: values.into_boxed_slice(), spans }
    }

    /// Each kept header's name and value, in [`KEPT_HEADERS`]' order.
    pub fn iter(&self) -> impl Iterator<Item = (&'static HeaderName, &[u8])> + '_ {
        let mut start = 0;
        self.spans.iter().map(move |&(place, end)| {
            let value = self.values.get(start..end as usize).unwrap_or_default();
            start = end as usize;
            (&KEPT_HEADERS[usize::from(place)], value)
        })
    }

    /// Bytes its names and values take.
    fn size(&self) -> usize {
        self.values.len() + self.iter().map(|(name, _)| name.as_str().len() + 8).sum::<usize>()
    }
}

/// Secret kinds by field name: any `:`-separated part (`tokenRunOwnerCert:clientCertificateSecret`,
/// or a key a broken body ran together, `password:{value`), lower-cased, `_`/`-` and other
/// punctuation removed. The one list of secret-named words: JSON fields, form keys, query
/// parameters and the words the lenient tokenizer looks for in bodies that do not parse all go
/// through it.
fn kind_of_field(name: &str) -> Option<&'static str> {
    // Most names are one word: no splitting machinery for them (a plain loop over a short key).
    if !name.bytes().any(|b| b == b':') {
        return kind_of_word_part(name);
    }
    name.rsplit(':').find_map(kind_of_word_part)
}

fn kind_of_word_part(part: &str) -> Option<&'static str> {
    // Called for every key of every body: folded on the stack. No secret name is longer than
    // the buffer, so a longer word is none.
    let mut buf = [0u8; 24];
    let mut len = 0;
    for b in part.bytes().filter(u8::is_ascii_alphanumeric) {
        if len == buf.len() {
            return None;
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    match &buf[..len] {
        b"password" | b"pwd" | b"newpassword" => Some("password"),
        b"clientsecret" | b"secret" => Some("client_secret"),
        b"accesstoken" | b"refreshtoken" | b"idtoken" | b"token" | b"assertion" | b"clientassertion" => Some("token"),
        b"pfx" | b"clientcertificatesecret" | b"certificate" | b"privatekey" => Some("certificate"),
        b"authorization" => Some("authorization"),
        _ => None,
    }
}

/// Replaces secrets. One per process: its key makes the hashes unlinkable across runs.
pub struct Redactor {
    key: aws_lc_rs::hmac::Key,
    /// Marks of bearer tokens already seen: a client sends one token with every request, so
    /// its keyed hash is computed once. Holds tokens, so never shown (see `Debug`).
    bearer_marks: std::sync::Mutex<std::collections::HashMap<Box<str>, Box<str>>>,
}

/// Bearer tokens whose marks are remembered; past this the memory starts over.
const REMEMBERED_BEARER_MARKS: usize = 1024;

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor").finish_non_exhaustive()
    }
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    /// A redactor with a fresh random key.
    pub fn new() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = aws_lc_rs::hmac::Key::generate(aws_lc_rs::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"mock-server"));
        Self { key, bearer_marks: Default::default() }
    }

    /// A redacted body as stored: itself up to [`MAX_STORED_BODY`] bytes of JSON, else
    /// `{"$truncated": {"length", "hash", "head"}}` (mock-defined), where `head` is the first
    /// [`STORED_HEAD`] bytes of the redacted JSON text and `hash` a keyed hash of all of it.
    /// Redaction has already happened, so the cut cannot expose a secret.
    fn bounded(&self, body: &Json<'_>) -> Box<RawValue> {
        let whole;
        let text = match body {
            Json::String(s) if s.len() > MAX_STORED_BODY => s.as_ref(),
            Json::Null | Json::String(_) => return body.to_raw(),
            other => {
                whole = other.to_raw();
                if whole.get().len() <= MAX_STORED_BODY {
                    return whole;
                }
                whole.get()
            }
        };
        let tag = aws_lc_rs::hmac::sign(&self.key, text.as_bytes());
        let hash: String = tag.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        let truncated = serde_json::json!({ "$truncated": { "length": text.len(), "hash": hash, "head": head(text, STORED_HEAD) } });
        Json::from(truncated).to_raw()
    }

    /// The placeholder for a secret value.
    pub fn mark(&self, kind: &str, value: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, value.as_bytes());
        let hex: String = tag.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("<redacted:{kind}:{hex}>")
    }

    /// [`Redactor::mark`] of a bearer token, remembered.
    fn bearer_mark(&self, token: &str) -> String {
        let mut marks = self.bearer_marks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mark) = marks.get(token) {
            return mark.to_string();
        }
        let mark = self.mark("token", token);
        if marks.len() >= REMEMBERED_BEARER_MARKS {
            marks.clear();
        }
        marks.insert(token.into(), mark.as_str().into());
        mark
    }

    /// Whether redacting `x` could flag a leak: a secret-named query parameter, or a known
    /// secret outside its proper field. `false` means its entry has no leak, so it may be
    /// written later ([`Redactor::prepare`]). A body is scanned as redaction scans it only
    /// when a secret could be in it: it is a form (scanned percent-decoded), JSON with the
    /// escapes that let one character be written two ways (`\u`, `\/`), or a secret shows in
    /// it as written or JSON-escaped (JSON writes a string one way otherwise). Elsewhere a
    /// secret as written or escaped counts as a leak: errs on the side of `true`.
    pub fn might_leak(&self, x: &Exchange, known: &KnownSecrets) -> bool {
        let body_leaks = |content_type: Option<&str>, bytes: &[u8], at: &'static str| {
            if bytes.is_empty() {
                return false;
            }
            let form =
                content_type.is_some_and(|ct| ct.get(..FORM.len()).is_some_and(|s| s.eq_ignore_ascii_case(FORM)));
            let two_ways = memchr::memchr_iter(b'\\', bytes).any(|i| matches!(bytes.get(i + 1), Some(b'u' | b'/')));
            let hits = known.occurrences(bytes);
            if !(form || two_ways || hits.is_some()) {
                return false;
            }
            // JSON, the usual case, is read once without building its tree.
            if !form && let Some(verdict) = json_leaks(bytes, hits.as_deref().unwrap_or_default(), known) {
                return verdict;
            }
            let mut scan = Scan { redactor: self, known, leaks: Vec::new(), dry: true };
            scan.body(content_type, bytes, At::Root(at));
            !scan.leaks.is_empty()
        };
        // Decoded as `form_pairs` decodes (serde_urlencoded reads through form_urlencoded),
        // without copying what needs no decoding.
        let t = x.text.get();
        form_urlencoded::parse(t.query.as_bytes())
            .any(|(k, v)| kind_of_field(&k).is_some() || known.occur_in(v.as_bytes()))
            || known.occur_in(t.path.as_bytes())
            || known.occur_in(t.host.as_bytes())
            || x.headers.iter().any(|(name, value)| name != AUTHORIZATION && known.occur_in(value))
            || body_leaks(t.body.0, t.body.1, "body")
            || body_leaks(t.response.0, t.response.1, "response")
    }

    /// A request's journal entry, ready for [`Journal::record`]: redacted now when it might
    /// hold a leak, else kept as captured and written when first read.
    pub fn prepare(self: &Arc<Self>, x: Exchange, capture: Capture) -> Recorded {
        if self.might_leak(&x, &capture.known) {
            let vt = crate::domain::clock::format_timestamp(capture.virtual_time);
            let mut entry = self.redact(x, &capture.known, 0, &capture.sandbox, vt);
            entry.environment = capture.environment;
            entry.retry_after = capture.retry_after;
            Recorded::Written(Box::new(entry))
        } else {
            Recorded::Deferred(Box::new(Deferred { exchange: x, redactor: self.clone(), capture }))
        }
    }

    /// Redacts an exchange into a journal entry with its bodies as values, for reading.
    /// `known` are the sandbox's credentials.
    pub fn record(
        &self,
        x: Exchange,
        known: &KnownSecrets,
        seq: u64,
        sandbox: &str,
        virtual_time: String,
    ) -> JournalEntry {
        let e = self.redact(x, known, seq, sandbox, virtual_time);
        let value = |raw: &RawValue| serde_json::from_str(raw.get()).unwrap_or(Value::Null);
        JournalEntry {
            body: value(&e.body),
            response: value(&e.response),
            seq: e.seq,
            kind: e.kind,
            sandbox: e.sandbox,
            surface: e.surface,
            operation: e.operation,
            environment: e.environment,
            virtual_time: e.virtual_time,
            real_ms: e.real_ms,
            scheme: e.scheme,
            host: e.host,
            method: e.method,
            path: e.path,
            query: e.query,
            headers: e.headers,
            status: e.status,
            leaks: e.leaks,
            retry_after: e.retry_after,
        }
    }

    /// Redacts an exchange into a journal entry with its bodies as the JSON text the journal
    /// stores. `known` are the sandbox's credentials.
    pub fn redact(
        &self,
        x: Exchange,
        known: &KnownSecrets,
        seq: u64,
        sandbox: &str,
        virtual_time: String,
    ) -> JournalEntry<Box<RawValue>> {
        let mut scan = Scan { redactor: self, known, leaks: Vec::new(), dry: false };
        let t = x.text.get();
        let path = scan.text(t.path, At::Root("path")).into_owned();
        let host = scan.text(t.host, At::Root("host")).into_owned();
        let query = form_pairs(t.query)
            .into_iter()
            .map(|(k, v)| {
                let query = At::Root("query");
                let at = At::Field(&query, &k);
                let v = match kind_of_field(&k) {
                    // A URL ends up in proxies' and servers' logs: a secret there has leaked,
                    // whatever its value.
                    Some(kind) => {
                        scan.leak(kind, at);
                        self.mark(kind, &v)
                    }
                    None => scan.text(&v, at).into_owned(),
                };
                (k, v)
            })
            .collect();
        let mut headers = Map::new();
        for (name, value) in x.headers.iter() {
            let value = String::from_utf8_lossy(value);
            let name = name.as_str();
            let v = if name == "authorization" {
                match value.split_once(' ') {
                    Some((scheme, cred)) if scheme.eq_ignore_ascii_case("basic") => {
                        format!("{scheme} {}", self.mark("client_secret", cred))
                    }
                    Some((scheme, cred)) => format!("{scheme} {}", self.bearer_mark(cred)),
                    None => self.mark("authorization", &value),
                }
            } else {
                scan.text(&value, At::Field(&At::Root("header"), name)).into_owned()
            };
            headers.insert(name.to_owned(), Value::String(v));
        }
        let body = self.bounded(&scan.body(t.body.0, t.body.1, At::Root("body")));
        let response = self.bounded(&scan.body(t.response.0, t.response.1, At::Root("response")));
        JournalEntry {
            seq,
            kind: EntryKind::Request,
            sandbox: sandbox.to_owned(),
            surface: x.surface.to_owned(),
            operation: x.operation,
            environment: None,
            virtual_time,
            real_ms: x.real_ms,
            scheme: x.scheme.to_owned(),
            host,
            method: t.method.to_owned(),
            path,
            query,
            headers,
            body,
            status: x.status,
            response,
            leaks: scan.leaks,
            retry_after: None,
        }
    }
}

/// Whether a JSON body holds a known secret in a string outside every secret-named field, as
/// [`Scan::value`] would flag it; `None` when the body is not in the plain JSON this reads (so
/// the caller scans it the long way, which is always right). Read in one pass over the bytes,
/// building nothing: the request path's leak pre-check. It reads a strict subset of what
/// serde_json reads (its refusals are refusals here too): any nesting deeper than
/// [`LEAK_SCAN_DEPTH`], a number serde_json could find out of range, or the raw-value marker
/// key gives `None`. Duplicate keys are all looked at, where the tree keeps the last: a flag
/// that errs on the side of a scan.
fn json_leaks(bytes: &[u8], hits: &[(usize, usize)], known: &KnownSecrets) -> Option<bool> {
    static TOKEN: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(tree::RAW_VALUE_TOKEN.as_bytes()));
    if TOKEN.find(bytes).is_some() {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut scan = LeakScan { text, bytes, at: 0, hits, known, leak: false };
    scan.value(false, 0)?;
    scan.space();
    (scan.at == bytes.len()).then_some(scan.leak)
}

/// Deeper than this, [`json_leaks`] leaves a body to the long way (serde_json's own limit is 128).
const LEAK_SCAN_DEPTH: u32 = 64;

/// [`json_leaks`]' reader. `hits` are where each secret occurs in the body as written, found
/// in one pass: a string without escapes holds a secret exactly when an occurrence lies inside
/// it, with no search per string. A string with escapes is decoded by serde_json (which also
/// checks its escapes) and searched itself.
struct LeakScan<'b> {
    text: &'b str,
    bytes: &'b [u8],
    at: usize,
    hits: &'b [(usize, usize)],
    known: &'b KnownSecrets,
    leak: bool,
}

/// A string's place in the body: its content's bounds and whether it has escapes.
struct Quoted {
    start: usize,
    end: usize,
    escaped: bool,
}

impl LeakScan<'_> {
    fn space(&mut self) {
        while matches!(self.bytes.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.bytes.get(self.at) == Some(&b);
        self.at += usize::from(found);
        found
    }

    /// One value; `secret` when a member above it is secret-named.
    fn value(&mut self, secret: bool, depth: u32) -> Option<()> {
        if depth > LEAK_SCAN_DEPTH {
            return None;
        }
        self.space();
        match *self.bytes.get(self.at)? {
            b'{' => {
                self.at += 1;
                self.space();
                if self.eat(b'}') {
                    return Some(());
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    let named = self.secret_named(&key)?;
                    self.space();
                    self.eat(b':').then_some(())?;
                    self.value(secret || named, depth + 1)?;
                    self.space();
                    if !self.eat(b',') {
                        return self.eat(b'}').then_some(());
                    }
                }
            }
            b'[' => {
                self.at += 1;
                self.space();
                if self.eat(b']') {
                    return Some(());
                }
                loop {
                    self.value(secret, depth + 1)?;
                    self.space();
                    if !self.eat(b',') {
                        return self.eat(b']').then_some(());
                    }
                }
            }
            b'"' => {
                let s = self.string()?;
                if !secret && self.holds_secret(&s)? {
                    self.leak = true;
                }
                Some(())
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        self.bytes.get(self.at..)?.starts_with(word.as_bytes()).then(|| self.at += word.len())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?` with at most 15 digits before the
    /// exponent and at most 2 in it: a number serde_json reads as a finite f64 whatever it is.
    fn number(&mut self) -> Option<()> {
        let digits = |scan: &mut Self| {
            let from = scan.at;
            while scan.bytes.get(scan.at).is_some_and(u8::is_ascii_digit) {
                scan.at += 1;
            }
            scan.at - from
        };
        self.eat(b'-');
        let leading_zero = self.bytes.get(self.at) == Some(&b'0');
        let mut mantissa = digits(self);
        if mantissa == 0 || (leading_zero && mantissa > 1) {
            return None;
        }
        if self.eat(b'.') {
            let fraction = digits(self);
            (fraction > 0).then_some(())?;
            mantissa += fraction;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            let exponent = digits(self);
            (1..=2).contains(&exponent).then_some(())?;
        }
        (mantissa <= 15).then_some(())
    }

    /// A string starting at the cursor, its content's bounds; `None` for a raw control
    /// character (serde_json refuses those) or no closing quote.
    fn string(&mut self) -> Option<Quoted> {
        self.eat(b'"').then_some(())?;
        let start = self.at;
        let mut escaped = false;
        loop {
            let i = self.at + memchr::memchr2(b'"', b'\\', self.bytes.get(self.at..)?)?;
            if self.bytes[i] == b'"' {
                let end = i;
                self.at = i + 1;
                if self.bytes[start..end].iter().any(|&b| b < 0x20) {
                    return None;
                }
                return Some(Quoted { start, end, escaped });
            }
            // An escape: the byte after the backslash is escaped (decoding checks it).
            escaped = true;
            self.at = i + 2;
        }
    }

    /// A string's text with its escapes decoded; `None` when serde_json would refuse them.
    fn decoded(&self, s: &Quoted) -> Option<Cow<'_, str>> {
        let quoted = self.text.get(s.start - 1..s.end + 1)?;
        if s.escaped {
            serde_json::from_str::<String>(quoted).ok().map(Cow::Owned)
        } else {
            quoted.get(1..quoted.len() - 1).map(Cow::Borrowed)
        }
    }

    fn secret_named(&self, key: &Quoted) -> Option<bool> {
        Some(kind_of_field(&self.decoded(key)?).is_some())
    }

    fn holds_secret(&self, s: &Quoted) -> Option<bool> {
        if s.escaped {
            return Some(self.known.written_in(&self.decoded(s)?));
        }
        Some(self.hits.iter().any(|&(a, b)| s.start <= a && b <= s.end))
    }
}

/// Where in an exchange a value sits (`body.values.password.value`), rendered only when a
/// leak is noted: most values never need it.
#[derive(Debug, Clone, Copy)]
enum At<'a> {
    Root(&'a str),
    Field(&'a At<'a>, &'a str),
    Index(&'a At<'a>, usize),
}

impl std::fmt::Display for At<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Root(name) => f.write_str(name),
            Self::Field(parent, name) => write!(f, "{parent}.{name}"),
            Self::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Where secrets occur in a text: `(start, end)` byte offsets.
type Occurrences = smallvec::SmallVec<[(usize, usize); 4]>;

/// The secrets a sandbox knows (every credential of its world and every one it ever held),
/// with one automaton that finds them all in a single pass over a string.
#[derive(Debug, Default)]
pub struct KnownSecrets {
    list: Vec<(&'static str, String)>,
    finder: Option<aho_corasick::AhoCorasick>,
    /// Every secret as written and as JSON writes it inside a string (a PEM's line breaks
    /// become `\n`): what finds a secret in raw text that may be JSON.
    any_form: Option<aho_corasick::AhoCorasick>,
}

impl KnownSecrets {
    /// The secrets, each with its kind (`password`, `client_secret`, …).
    pub fn new(list: Vec<(&'static str, String)>) -> Self {
        let list: Vec<_> = list.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        let finder = aho_corasick::AhoCorasick::new(list.iter().map(|(_, v)| v.as_str())).ok();
        let escaped = list.iter().filter_map(|(_, v)| {
            let json = serde_json::to_string(v).ok()?;
            let inner = json.get(1..json.len() - 1)?;
            (inner != v).then(|| inner.to_owned())
        });
        let forms: Vec<String> = list.iter().map(|(_, v)| v.clone()).chain(escaped).collect();
        let any_form = aho_corasick::AhoCorasick::new(&forms).ok();
        Self { list, finder, any_form }
    }

    /// Whether any secret occurs in `bytes`, as written or JSON-escaped.
    fn occur_in(&self, bytes: &[u8]) -> bool {
        self.any_form.as_ref().is_some_and(|f| f.is_match(bytes))
    }

    /// Where any secret occurs in `bytes` as written, overlapping occurrences included;
    /// `None` when none occurs in any form ([`KnownSecrets::occur_in`]). One pass finds both.
    fn occurrences(&self, bytes: &[u8]) -> Option<Occurrences> {
        let any_form = self.any_form.as_ref()?;
        let mut found = false;
        let mut hits = Occurrences::new();
        for m in any_form.find_overlapping_iter(bytes) {
            found = true;
            // The secrets as written come first among the automaton's patterns.
            if m.pattern().as_usize() < self.list.len() {
                hits.push((m.start(), m.end()));
            }
        }
        found.then_some(hits)
    }

    /// Whether any secret occurs in `s` as written (what [`Scan::text`] looks for).
    fn written_in(&self, s: &str) -> bool {
        self.finder.as_ref().is_some_and(|f| f.is_match(s))
    }

    /// The secrets, each with its kind.
    pub fn list(&self) -> &[(&'static str, String)] {
        &self.list
    }

    /// Every occurrence of every secret in `s`, overlapping ones included: `(kind, start, end)`.
    fn find_in(&self, s: &str) -> Vec<(&'static str, usize, usize)> {
        let Some(finder) = &self.finder else { return Vec::new() };
        finder.find_overlapping_iter(s).map(|m| (self.list[m.pattern().as_usize()].0, m.start(), m.end())).collect()
    }
}

struct Scan<'a> {
    redactor: &'a Redactor,
    known: &'a KnownSecrets,
    leaks: Vec<String>,
    /// Only looking for leaks: nothing is replaced, so no mark is computed.
    dry: bool,
}

impl Scan<'_> {
    /// Notes that a secret of `kind` was found at `at`, outside its proper field.
    fn leak(&mut self, kind: &str, at: At<'_>) {
        let note = format!("{kind} in {at}");
        if !self.leaks.contains(&note) {
            self.leaks.push(note);
        }
    }

    /// Free text of a field that holds no secret by name: every known secret (a leak there)
    /// and every JWT is replaced.
    fn text<'s>(&mut self, s: &'s str, at: At<'_>) -> Cow<'s, str> {
        self.replace(s, at, Vec::new())
    }

    /// The lenient tokenizer's rendition of text that does not parse: the values of
    /// secret-named words, every known secret and every JWT are replaced.
    fn lenient(&mut self, s: &str, at: At<'_>) -> String {
        self.replace(s, at, secret_values(s)).into_owned()
    }

    /// Replaces `named` (values of secret-named words), every known secret and every JWT in
    /// `s`. Overlapping finds become one mark, so no piece of a secret survives next to one.
    fn replace<'s>(&mut self, s: &'s str, at: At<'_>, named: Vec<Span>) -> Cow<'s, str> {
        let mut spans = named.clone();
        for (kind, start, end) in self.known.find_in(s) {
            if !named.iter().any(|n| n.start <= start && end <= n.end) {
                self.leak(kind, at);
            }
            spans.push(Span { start, end, kind });
        }
        if s.contains("eyJ") {
            spans.extend(find_jwts(s).into_iter().map(|(start, end)| Span { start, end, kind: "token" }));
        }
        // Most strings hold no secret: keep them as they are.
        if spans.is_empty() || self.dry {
            return Cow::Borrowed(s);
        }
        // Stable: at equal ranges the field's kind (pushed first) names the mark.
        spans.sort_by_key(|sp| (sp.start, std::cmp::Reverse(sp.end)));
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        let mut spans = spans.into_iter().peekable();
        while let Some(Span { start, mut end, kind }) = spans.next() {
            while let Some(next) = spans.next_if(|n| n.start < end) {
                end = end.max(next.end);
            }
            out.push_str(&s[last..start]);
            out.push_str(&self.redactor.mark(kind, &s[start..end]));
            last = end;
        }
        out.push_str(&s[last..]);
        Cow::Owned(out)
    }

    fn value(&mut self, v: &mut Json<'_>, at: At<'_>, kind: Option<&'static str>) {
        match v {
            Json::String(s) => match kind {
                Some(_) if self.dry => {}
                Some(k) => *s = Cow::Owned(self.redactor.mark(k, s)),
                None => {
                    if let Cow::Owned(redacted) = self.text(s, at) {
                        *s = Cow::Owned(redacted);
                    }
                }
            },
            Json::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, At::Index(&at, i), kind);
                }
            }
            Json::Object(members) => {
                for (k, item) in members.iter_mut() {
                    let inner = kind.or_else(|| kind_of_field(k));
                    self.value(item, At::Field(&at, k), inner);
                }
            }
            // Numbers and booleans cannot hold a secret worth redacting, except inside a secret field.
            other => {
                if let Some(k) = kind.filter(|_| !self.dry) {
                    let text = other.to_raw();
                    *other = Json::String(Cow::Owned(self.redactor.mark(k, text.get())));
                }
            }
        }
    }

    /// A body as JSON, redacted: parsed JSON, a form as an object of strings, other UTF-8 as
    /// the lenient rendition (truncated after redaction), binary as a size note, empty as null.
    fn body<'b>(&mut self, content_type: Option<&str>, bytes: &'b [u8], at: At<'_>) -> Json<'b> {
        if bytes.is_empty() {
            return Json::Null;
        }
        let form = content_type.is_some_and(|ct| ct.get(..FORM.len()).is_some_and(|s| s.eq_ignore_ascii_case(FORM)));
        if form {
            return Json::from(self.form(&String::from_utf8_lossy(bytes), at));
        }
        if let Some(mut v) = Json::parse(bytes) {
            self.value(&mut v, at, None);
            return v;
        }
        Json::String(Cow::Owned(match std::str::from_utf8(bytes) {
            Ok(text) => self.lenient(text, at),
            // A binary body may be a certificate: nothing of it is kept.
            Err(_) => format!("<{} bytes of binary>", bytes.len()),
        }))
    }

    /// A form per `key=` pair: a secret-named key's value is replaced whatever its encoding.
    /// A "form" whose keys are not names (a JSON body sent as a form, say) could hold a
    /// secret in a key, so it is rendered leniently as a whole instead.
    fn form(&mut self, text: &str, at: At<'_>) -> Value {
        let pairs = form_pairs(text);
        if !pairs.iter().all(|(k, _)| is_plain_name(k)) {
            return Value::String(self.lenient(text, at));
        }
        let mut map = Map::new();
        for (k, v) in pairs {
            let v = match kind_of_field(&k) {
                Some(_) if self.dry => v,
                Some(kind) => self.redactor.mark(kind, &v),
                None => self.text(&v, At::Field(&at, &k)).into_owned(),
            };
            map.insert(k, Value::String(v));
        }
        Value::Object(map)
    }
}

/// A byte range of text to replace, and the kind of secret it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    kind: &'static str,
}

/// Bytes that end a word for the lenient tokenizer: JSON and form punctuation, quotes and
/// whitespace. Quotes are mere separators, so a missing quote (which desynchronises every
/// string after it) changes no word: a secret-named word is found wherever it appears.
fn is_separator(b: u8) -> bool {
    b.is_ascii_whitespace() || b"{}[]:,=&\"\\;".contains(&b)
}

/// Words that stand between a secret-named word and its value (`"password":{"value":"…"}`,
/// `Authorization: Bearer …`).
fn is_wrapper(word: &str) -> bool {
    ["value", "bearer", "basic"].iter().any(|w| word.eq_ignore_ascii_case(w))
}

/// A word's secret kind, also when percent-encoded (`client%5Fsecret`) or when a broken
/// escape sticks to it (`%4access_token`, `password%e2%82`, once a quote between went missing).
fn kind_of_word(word: &str) -> Option<&'static str> {
    if !word.contains('%') {
        return kind_of_field(word);
    }
    kind_of_field(word).or_else(|| kind_of_field(&form_pairs(word).pop()?.0)).or_else(|| {
        let mut parts = word.split('%');
        let first = parts.next().and_then(kind_of_field);
        // After a `%`, up to two bytes may be what is left of the escape.
        first.or_else(|| parts.find_map(|p| (0..=2).find_map(|skip| p.get(skip..).and_then(kind_of_field))))
    })
}

/// Where the value starting at `start` ends. A quoted value ends at a quote that closes
/// it: one followed by `,`, `}`, `]` or the end, so that a quote out of step (a missing quote
/// elsewhere) or bytes wedged in before the value do not end it early. A bare value ends
/// where a bare JSON or form value does.
fn value_end(b: &[u8], start: usize) -> usize {
    let quoted = start > 0 && b[start - 1] == b'"';
    let mut i = start;
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 2,
            b'"' if quoted => {
                let next = b[i + 1..].iter().find(|c| !c.is_ascii_whitespace());
                if matches!(next, None | Some(b',' | b'}' | b']')) {
                    return i;
                }
                i += 1;
            }
            b',' | b'}' | b']' | b'&' | b'\r' | b'\n' if !quoted => return i,
            _ => i += 1,
        }
    }
    b.len()
}

/// The lenient tokenizer: the values that follow a secret-named word in text that does not
/// parse. The value is the next word that is not a wrapper, up to the end of its string (or
/// of its bare token); a secret-named word in its place starts over (`{"pfx":…}` inside
/// `clientCertificateSecret`), and `""` right after the word is an empty value.
fn secret_values(text: &str) -> Vec<Span> {
    let b = text.as_bytes();
    let mut spans = Vec::new();
    let mut pending: Option<&'static str> = None;
    let mut i = 0;
    while i < b.len() {
        if is_separator(b[i]) {
            if pending.is_some() && b[i] == b'"' && b.get(i + 1) == Some(&b'"') {
                pending = None;
                i += 1;
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_separator(b[i]) {
            i += 1;
        }
        let word = &text[start..i];
        // Where a value is due, only a secret name as written starts over: a value that
        // merely reads like one (`*%p*f!x`) is the value.
        let trigger = match pending {
            Some(_) => kind_of_field(word).filter(|_| word.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')),
            None => kind_of_word(word),
        };
        if let Some(kind) = trigger {
            pending = Some(kind);
        } else if let Some(kind) = pending.filter(|_| !is_wrapper(word)) {
            let end = value_end(b, start);
            spans.push(Span { start, end, kind });
            pending = None;
            i = end;
        }
    }
    spans
}

/// A form key that is a parameter name, not text that happened to precede a `=`.
fn is_plain_name(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.$:@[]".contains(c))
}

/// The form content type: its values are scanned percent-decoded.
const FORM: &str = "application/x-www-form-urlencoded";

/// A stored body larger than this (its redacted JSON form) keeps only a head, its length and
/// a keyed hash (DECISIONS, Journal).
pub const MAX_STORED_BODY: usize = 16 * 1024;
/// How much of such a body is kept.
pub const STORED_HEAD: usize = 4 * 1024;

/// The first `max` bytes of `s`, cut on a character boundary and never inside a mark, so no
/// piece of a secret is left outside its `<redacted:…>`.
fn head(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Some(open) = s[..cut].rfind("<redacted:")
        && !s[open..cut].contains('>')
    {
        cut = open;
    }
    &s[..cut]
}

/// Splits `a=1&b=2` into decoded pairs. Invalid encodings are kept as written.
pub fn form_pairs(s: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(s).unwrap_or_else(|_| {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
    })
}

/// What an entry records: a request to an emulated surface, or something the mock did on its
/// own (run transitions, callback attempts, fault hits, Retry-After verdicts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A request and its answer.
    Request,
    /// Something that happened without a request.
    Event,
}

impl EntryKind {
    /// The name in the journal and its `kind=` filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Event => "event",
        }
    }
}

/// An event entry: what happened, with its details.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEntry {
    /// Sequence number within the sandbox, shared with requests.
    pub seq: u64,
    /// Always `event`.
    pub kind: EntryKind,
    /// The sandbox it happened in.
    pub sandbox: String,
    /// The sandbox's virtual time when it happened.
    pub virtual_time: String,
    /// Milliseconds since the server started, on a monotonic clock.
    pub real_ms: u64,
    /// What happened (`run.queued`, `callback.attempt`, …).
    pub event: String,
    /// Its details, redacted like a body.
    pub detail: Value,
}

/// Limits of every journal of a server: entries and bytes per sandbox, and bytes over all
/// sandboxes (DECISIONS, Journal). Cheap to clone; the clones share the global count.
#[derive(Debug, Clone)]
pub struct JournalLimits {
    /// Entries kept per sandbox.
    pub entries: usize,
    /// Bytes kept per sandbox, counted at stored size.
    pub bytes: usize,
    /// Bytes kept over all sandboxes.
    pub total_bytes: usize,
    total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Default bytes kept per sandbox.
pub const DEFAULT_SANDBOX_BYTES: usize = 16 * 1024 * 1024;
/// Default bytes kept over all sandboxes.
pub const DEFAULT_TOTAL_BYTES: usize = 48 * 1024 * 1024;

impl Default for JournalLimits {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY, DEFAULT_SANDBOX_BYTES, DEFAULT_TOTAL_BYTES)
    }
}

impl JournalLimits {
    /// Limits with a fresh global count (one per server).
    pub fn new(entries: usize, bytes: usize, total_bytes: usize) -> Self {
        Self { entries: entries.max(1), bytes, total_bytes, total: Default::default() }
    }

    /// Bytes stored over all journals sharing these limits.
    pub fn total_stored(&self) -> usize {
        self.total.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The fields the journal's filters read, kept beside the stored JSON.
#[derive(Debug)]
struct Stored {
    seq: u64,
    kind: EntryKind,
    /// The bytes it counts for ([`Stored::measure`]), kept so that evicting an entry long
    /// out of the cache does not walk it.
    size: usize,
    /// A written request entry's facts; a deferred one reads them from its exchange.
    request: Option<RequestFacts>,
    /// The entry: JSON text, compact, as reads return it; or not written yet.
    text: Text,
}

#[derive(Debug)]
enum Text {
    Written(Box<str>),
    Deferred(Box<Deferred>),
}

#[derive(Debug)]
struct RequestFacts {
    operation: Operation,
    method: String,
    path: String,
    surface: String,
    environment: Option<String>,
    status: u16,
}

impl RequestFacts {
    fn of(d: &Deferred) -> Self {
        let f = d.facts();
        Self {
            operation: f.operation,
            method: f.method.to_owned(),
            path: f.path.to_owned(),
            surface: f.surface.to_owned(),
            environment: f.environment.map(str::to_owned),
            status: f.status,
        }
    }

    fn facts(&self) -> Facts<'_> {
        Facts {
            operation: self.operation,
            method: &self.method,
            path: &self.path,
            surface: &self.surface,
            environment: self.environment.as_deref(),
            status: self.status,
        }
    }
}

/// What the journal's filters read of a request entry.
struct Facts<'a> {
    operation: Operation,
    method: &'a str,
    path: &'a str,
    surface: &'a str,
    environment: Option<&'a str>,
    status: u16,
}

impl Deferred {
    fn facts(&self) -> Facts<'_> {
        let x = &self.exchange;
        let t = x.text.get();
        Facts {
            operation: x.operation,
            method: t.method,
            path: t.path,
            surface: x.surface,
            environment: self.capture.environment.as_deref(),
            status: x.status,
        }
    }
}

impl Stored {
    /// The bytes this entry counts for, measured.
    fn measure(&self) -> usize {
        let facts = self.request.as_ref().map_or(0, |r| {
            r.method.len() + r.path.len() + r.surface.len() + r.environment.as_ref().map_or(0, String::len)
        });
        let text = match &self.text {
            Text::Written(json) => json.len(),
            Text::Deferred(d) => d.size(),
        };
        std::mem::size_of::<Self>() + text + facts
    }

    /// A request entry's facts, wherever they are kept.
    fn facts(&self) -> Option<Facts<'_>> {
        match (&self.request, &self.text) {
            (Some(r), _) => Some(r.facts()),
            (None, Text::Deferred(d)) => Some(d.facts()),
            (None, Text::Written(_)) => None,
        }
    }

    /// Its text, written now if it was not yet.
    fn written(&mut self) -> Option<&str> {
        if let Text::Deferred(_) = self.text {
            let Text::Deferred(d) = std::mem::replace(&mut self.text, Text::Written(Box::default())) else {
                unreachable!("matched just above")
            };
            self.request = Some(RequestFacts::of(&d));
            // Serialising plain data cannot fail; an entry that somehow did reads as absent.
            self.text = Text::Written(d.write(self.seq).ok()?.into_boxed_str());
        }
        match &self.text {
            Text::Written(json) => Some(json),
            Text::Deferred(_) => None,
        }
    }
}

/// What a journal read asks for. Every field is optional; filters of requests (`method`,
/// `path`, `surface`, `environment`, `status`) leave events out.
#[derive(Debug, Clone, Default)]
pub struct JournalFilter {
    /// Entries with a `seq` above this.
    pub since: Option<u64>,
    /// At most this many (default [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
    pub limit: Option<usize>,
    /// `request` or `event`.
    pub kind: Option<EntryKind>,
    /// The named operation of a request.
    pub operation: Option<Operation>,
    /// Request method, any case.
    pub method: Option<String>,
    /// Path prefix, as sent.
    pub path: Option<String>,
    /// Surface name.
    pub surface: Option<String>,
    /// Environment id, any case.
    pub environment: Option<String>,
    /// Response status.
    pub status: Option<u16>,
}

/// Entries per page unless asked.
pub const DEFAULT_PAGE: usize = 1000;
/// The largest page.
pub const MAX_PAGE: usize = 10_000;

impl JournalFilter {
    /// Every entry (a page at a time: the handle reads to the end).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only requests with this method.
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Only requests whose path starts with `prefix`.
    pub fn path(mut self, prefix: impl Into<String>) -> Self {
        self.path = Some(prefix.into());
        self
    }

    /// Only requests to this surface.
    pub fn surface(mut self, surface: impl Into<String>) -> Self {
        self.surface = Some(surface.into());
        self
    }

    /// Only requests that named this environment.
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Only requests of this named operation.
    pub fn operation(mut self, operation: Operation) -> Self {
        self.operation = Some(operation);
        self
    }

    /// Only requests answered with this status.
    pub fn status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Only entries of this kind.
    pub fn kind(mut self, kind: EntryKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only entries after `seq`.
    pub fn since(mut self, seq: u64) -> Self {
        self.since = Some(seq);
        self
    }

    /// At most this many entries per page.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    fn matches(&self, e: &Stored) -> bool {
        if self.since.is_some_and(|s| e.seq <= s) || self.kind.is_some_and(|k| e.kind != k) {
            return false;
        }
        let asks_request = self.operation.is_some()
            || self.method.is_some()
            || self.path.is_some()
            || self.surface.is_some()
            || self.environment.is_some()
            || self.status.is_some();
        let Some(r) = e.facts() else { return !asks_request };
        self.operation.is_none_or(|o| r.operation == o)
            && self.method.as_deref().is_none_or(|m| r.method.eq_ignore_ascii_case(m))
            && self.path.as_deref().is_none_or(|p| r.path.starts_with(p))
            && self.surface.as_deref().is_none_or(|s| r.surface == s)
            && self.environment.as_deref().is_none_or(|env| r.environment.is_some_and(|x| x.eq_ignore_ascii_case(env)))
            && self.status.is_none_or(|s| r.status == s)
    }
}

/// One page of a journal read.
#[derive(Debug)]
pub struct JournalPage {
    /// The entries, oldest first, as JSON text.
    pub entries: Vec<Box<serde_json::value::RawValue>>,
    /// The `since` of the next page; `None` at the end.
    pub next: Option<u64>,
}

/// Evictions since the last clear, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Evictions {
    /// Requests evicted.
    pub request: u64,
    /// Events evicted.
    pub event: u64,
}

impl Evictions {
    /// All evictions.
    pub fn total(&self) -> u64 {
        self.request + self.event
    }
}

/// A sandbox's journal, bounded in entries and bytes. Entries are stored as JSON text: a
/// read returns them as they are, and text is several times smaller than a `Value` tree.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<Stored>,
    limits: JournalLimits,
    bytes: usize,
    evicted: Evictions,
    /// Entries flagged with a leak since the last clear (evicted ones included).
    leaks: u64,
    next_seq: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Self::new(JournalLimits::default())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.limits.total.fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Journal {
    /// An empty journal within `limits`.
    pub fn new(limits: JournalLimits) -> Self {
        Self { entries: VecDeque::new(), limits, bytes: 0, evicted: Evictions::default(), leaks: 0, next_seq: 1 }
    }

    /// A journal keeping at most `capacity` entries, with the default byte limits.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::new(JournalLimits::new(capacity, DEFAULT_SANDBOX_BYTES, DEFAULT_TOTAL_BYTES))
    }

    /// The number the next entry will get.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Appends a request entry, evicting the oldest entries while over a limit.
    pub fn push<B: Serialize>(&mut self, e: JournalEntry<B>) {
        if !e.leaks.is_empty() {
            self.leaks += 1;
        }
        let request = RequestFacts {
            operation: e.operation,
            method: e.method.clone(),
            path: e.path.clone(),
            surface: e.surface.clone(),
            environment: e.environment.clone(),
            status: e.status,
        };
        // Serialising plain data cannot fail; an entry that somehow did is not worth a panic.
        let Ok(json) = serde_json::to_string(&e) else { return };
        self.store(e.seq, EntryKind::Request, Some(request), Text::Written(json.into_boxed_str()));
    }

    /// Appends a request's entry under the next sequence number ([`Redactor::prepare`]).
    pub fn record(&mut self, recorded: Recorded) {
        let seq = self.next_seq();
        match recorded {
            Recorded::Written(mut e) => {
                e.seq = seq;
                self.push(*e);
            }
            Recorded::Deferred(d) => self.store(seq, EntryKind::Request, None, Text::Deferred(d)),
        }
    }

    /// Appends an event entry.
    pub fn push_event(&mut self, e: EventEntry) {
        let Ok(json) = serde_json::to_string(&e) else { return };
        self.store(e.seq, EntryKind::Event, None, Text::Written(json.into_boxed_str()));
    }

    fn store(&mut self, seq: u64, kind: EntryKind, request: Option<RequestFacts>, text: Text) {
        let mut stored = Stored { seq, kind, size: 0, request, text };
        stored.size = stored.measure();
        let size = stored.size;
        self.bytes += size;
        self.limits.total.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        self.entries.push_back(stored);
        // The newest entry always stays: a journal that drops what just happened is useless.
        while self.entries.len() > 1
            && (self.entries.len() > self.limits.entries
                || self.bytes > self.limits.bytes
                || self.limits.total_stored() > self.limits.total_bytes)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            let size = old.size;
            self.bytes -= size;
            self.limits.total.fetch_sub(size, std::sync::atomic::Ordering::Relaxed);
            match old.kind {
                EntryKind::Request => self.evicted.request += 1,
                EntryKind::Event => self.evicted.event += 1,
            }
        }
    }

    /// One page of the entries `filter` selects, oldest first; entries not written yet are
    /// written now (and count at their written size from then on).
    pub fn page(&mut self, filter: &JournalFilter) -> JournalPage {
        let limit = filter.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
        let start = self.start_of(filter);
        let mut picked = Vec::new();
        let mut next = None;
        for i in start..self.entries.len() {
            if !filter.matches(&self.entries[i]) {
                continue;
            }
            if picked.len() == limit {
                next = picked.last().map(|&j: &usize| self.entries[j].seq);
                break;
            }
            picked.push(i);
        }
        let mut entries = Vec::with_capacity(picked.len());
        for i in picked {
            let e = &mut self.entries[i];
            let before = e.size;
            let text = e.written().and_then(|t| RawValue::from_string(t.to_owned()).ok());
            let after = e.measure();
            e.size = after;
            self.bytes = self.bytes + after - before;
            if after >= before {
                self.limits.total.fetch_add(after - before, std::sync::atomic::Ordering::Relaxed);
            } else {
                self.limits.total.fetch_sub(before - after, std::sync::atomic::Ordering::Relaxed);
            }
            entries.extend(text);
        }
        JournalPage { entries, next }
    }

    /// How many entries `filter` selects (its `limit` aside).
    pub fn count(&self, filter: &JournalFilter) -> usize {
        self.matching(filter).count()
    }

    fn matching<'a>(&'a self, filter: &'a JournalFilter) -> impl Iterator<Item = &'a Stored> + 'a {
        self.entries.range(self.start_of(filter)..).filter(move |e| filter.matches(e))
    }

    /// Entries are in `seq` order: a read skips straight to `since`.
    fn start_of(&self, filter: &JournalFilter) -> usize {
        filter.since.map_or(0, |s| self.entries.partition_point(|e| e.seq <= s))
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes it holds, counted at stored size.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Evictions since the last clear, per kind.
    pub fn evicted(&self) -> Evictions {
        self.evicted
    }

    /// How many entries were flagged with a leak since the last clear, evicted ones included.
    pub fn leaks(&self) -> u64 {
        self.leaks
    }

    /// Its limits.
    pub fn limits(&self) -> &JournalLimits {
        &self.limits
    }

    /// Empties the journal (sequence numbers keep counting).
    pub fn clear(&mut self) {
        self.limits.total.fetch_sub(self.bytes, std::sync::atomic::Ordering::Relaxed);
        self.entries.clear();
        self.bytes = 0;
        self.evicted = Evictions::default();
        self.leaks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(path: &str, query: &str, body: &str, response: &str) -> Exchange {
        Exchange {
            surface: "identity",
            operation: Operation::IdentityToken,
            scheme: "https",
            headers: KeptHeaders::of(&axum::http::HeaderMap::from_iter([(
                AUTHORIZATION,
                HeaderValue::from_static("Basic dXNlcjpwYXNz"),
            )])),
            status: 200,
            real_ms: 5,
            text: CapturedText::of(ExchangeText {
                host: "127.0.0.1:1",
                method: "POST",
                path,
                query,
                body: (Some("application/x-www-form-urlencoded"), body.as_bytes()),
                response: (Some("application/json"), response.as_bytes()),
            }),
        }
    }

    impl Exchange {
        /// The same exchange with another request body.
        fn with_body(mut self, content_type: &str, body: &[u8]) -> Self {
            self.text = CapturedText::of(ExchangeText { body: (Some(content_type), body), ..self.text.get() });
            self
        }

        /// The same exchange with another response body.
        fn with_response(mut self, content_type: &str, response: &[u8]) -> Self {
            self.text = CapturedText::of(ExchangeText { response: (Some(content_type), response), ..self.text.get() });
            self
        }
    }

    #[test]
    fn captured_text_gives_back_every_part_as_given() {
        let given = ExchangeText {
            host: "h\u{e9}:1",
            method: "PATCH",
            path: "/a/b",
            query: "x=1&y=%20",
            body: (None, b"\xff\x00raw"),
            response: (Some(""), b"{}"),
        };
        let t = CapturedText::of(given);
        let back = t.get();
        assert_eq!(
            (back.host, back.method, back.path, back.query, back.body, back.response),
            (given.host, given.method, given.path, given.query, given.body, given.response)
        );
        let empty = CapturedText::of(ExchangeText::default());
        assert_eq!(empty.get().body, (None, &b""[..]));
        assert_eq!(empty.len(), 0);
    }

    #[test]
    fn secrets_are_replaced_by_field_name_and_by_known_value() {
        let r = Redactor::new();
        let known = vec![("client_secret", "s3cret-value".to_owned())];
        let e = r.record(
            exchange(
                "/t/oauth2/v2.0/token",
                "",
                "client_id=abc&client_secret=s3cret-value&scope=x",
                r#"{"access_token":"eyJhbGciOi.eyJzdWIi.c2ln","expires_in":3599}"#,
            ),
            &KnownSecrets::new(known.clone()),
            1,
            "default",
            "t".into(),
        );
        let text = serde_json::to_string(&e).unwrap();
        assert!(!text.contains("s3cret-value"), "{text}");
        assert!(!text.contains("dXNlcjpwYXNz"), "{text}");
        assert!(!text.contains("eyJhbGciOi"), "{text}");
        assert_eq!(e.body["client_id"], "abc");
        assert_eq!(e.body["client_secret"], Value::String(r.mark("client_secret", "s3cret-value")));
        assert!(e.leaks.is_empty());
    }

    #[test]
    fn every_kept_header_is_kept_in_its_place() {
        let mut headers = axum::http::HeaderMap::new();
        for (i, name) in KEPT_HEADERS.iter().enumerate().rev() {
            headers.insert(name.clone(), HeaderValue::from_str(&format!("v{i}")).unwrap());
            headers.append(name.clone(), HeaderValue::from_static("second"));
        }
        headers.insert("cookie", HeaderValue::from_static("dropped"));
        let kept = KeptHeaders::of(&headers);
        let names: Vec<_> = kept.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, KEPT_HEADERS.to_vec(), "every kept header, in the list's order");
        for (i, (_, v)) in kept.iter().enumerate() {
            assert_eq!(v, format!("v{i}").as_bytes(), "the first value of each");
        }
        assert_eq!(KeptHeaders::of(&axum::http::HeaderMap::new()).iter().count(), 0);
    }

    #[test]
    fn a_known_secret_outside_its_field_is_flagged_as_a_leak() {
        let r = Redactor::new();
        let known = vec![("password", "Hunter2-Passw0rd".to_owned())];
        let e = r.record(
            exchange("/x", "debug=Hunter2-Passw0rd", "", ""),
            &KnownSecrets::new(known.clone()),
            1,
            "default",
            "t".into(),
        );
        assert_eq!(e.query[0].1, r.mark("password", "Hunter2-Passw0rd"));
        assert_eq!(e.leaks, vec!["password in query.debug".to_owned()]);
    }

    #[test]
    fn nested_secret_fields_keep_their_shape() {
        let r = Redactor::new();
        let x = exchange("/c", "", "", "").with_body(
            "application/json",
            br#"{"values":{"password":{"value":"p"},"tokenRunOwnerCert:clientCertificateSecret":{"value":{"pfx":"MII","password":""}},"username":{"value":"u"}}}"#,
        );
        let e = r.record(x, &KnownSecrets::default(), 1, "default", "t".into());
        assert_eq!(e.body["values"]["password"]["value"], Value::String(r.mark("password", "p")));
        assert_eq!(
            e.body["values"]["tokenRunOwnerCert:clientCertificateSecret"]["value"]["pfx"],
            Value::String(r.mark("certificate", "MII"))
        );
        assert_eq!(e.body["values"]["username"]["value"], "u");
    }

    fn seqs(page: &JournalPage) -> Vec<u64> {
        page.entries.iter().map(|e| serde_json::from_str::<Value>(e.get()).unwrap()["seq"].as_u64().unwrap()).collect()
    }

    fn push_request(j: &mut Journal, r: &Redactor, path: &str, body: &str) {
        let seq = j.next_seq();
        j.push(r.record(exchange(path, "", body, ""), &KnownSecrets::default(), seq, "default", "t".into()));
    }

    fn push_event(j: &mut Journal, name: &str) {
        let seq = j.next_seq();
        let e = EventEntry {
            seq,
            kind: EntryKind::Event,
            sandbox: "default".into(),
            virtual_time: "t".into(),
            real_ms: 0,
            event: name.into(),
            detail: Value::Null,
        };
        j.push_event(e);
    }

    #[test]
    fn the_journal_is_bounded_in_entries_and_counts_evictions_per_kind() {
        let r = Redactor::new();
        let mut j = Journal::with_capacity(2);
        push_event(&mut j, "run.queued");
        for _ in 0..3 {
            push_request(&mut j, &r, "/x", "");
        }
        assert_eq!(seqs(&j.page(&JournalFilter::default())), vec![3, 4]);
        assert_eq!(j.evicted(), Evictions { request: 1, event: 1 });
    }

    #[test]
    fn the_journal_is_bounded_in_bytes_per_sandbox_and_over_all() {
        let r = Redactor::new();
        let body = format!("{{\"note\":\"{}\"}}", "x".repeat(1000));
        let limits = JournalLimits::new(10_000, 20_000, 30_000);
        let (mut a, mut b) = (Journal::new(limits.clone()), Journal::new(limits.clone()));
        for _ in 0..100 {
            push_request(&mut a, &r, "/a", &body);
        }
        assert!(a.bytes() <= 20_000 && a.len() < 100 && a.evicted().request > 0, "{} bytes", a.bytes());
        for _ in 0..100 {
            push_request(&mut b, &r, "/b", &body);
        }
        assert!(limits.total_stored() <= 30_000, "{} bytes over all", limits.total_stored());
        assert_eq!(limits.total_stored(), a.bytes() + b.bytes());
        drop(a);
        assert_eq!(limits.total_stored(), b.bytes(), "a dropped journal gives its bytes back");
        b.clear();
        assert_eq!(limits.total_stored(), 0);
    }

    #[test]
    fn pages_follow_since_and_limit_to_the_end_and_filters_count() {
        let r = Redactor::new();
        let mut j = Journal::default();
        for i in 0..25 {
            push_request(&mut j, &r, if i % 2 == 0 { "/even" } else { "/odd" }, "");
        }
        push_event(&mut j, "run.started");
        let mut filter = JournalFilter { limit: Some(10), ..Default::default() };
        let mut all = Vec::new();
        loop {
            let page = j.page(&filter);
            all.extend(seqs(&page));
            match page.next {
                Some(next) => filter.since = Some(next),
                None => break,
            }
        }
        assert_eq!(all, (1..=26).collect::<Vec<_>>());
        let even = JournalFilter { path: Some("/even".into()), ..Default::default() };
        assert_eq!(j.count(&even), 13);
        let events = JournalFilter { kind: Some(EntryKind::Event), ..Default::default() };
        assert_eq!(seqs(&j.page(&events)), vec![26]);
        let posts = JournalFilter { method: Some("post".into()), ..Default::default() };
        assert_eq!(j.count(&posts), 25, "a request filter leaves events out");
        let exact = JournalFilter { limit: Some(26), ..Default::default() };
        assert_eq!(j.page(&exact).next, None, "a page that ends with the last entry has no next");
    }

    /// The body an exchange was journaled with, as text.
    fn journaled_body(r: &Redactor, content_type: &str, body: &str, known: &[(&'static str, String)]) -> JournalEntry {
        let x = exchange("/c", "", "", "").with_body(content_type, body.as_bytes());
        r.record(x, &KnownSecrets::new(known.to_vec()), 1, "default", "t".into())
    }

    #[test]
    fn a_json_body_one_brace_short_keeps_its_shape_but_not_its_secrets() {
        let r = Redactor::new();
        let body = r#"{"values":{"username":{"value":"CONTOSO\\svc-rpa"},"password":{"value":"Qz7~vK2#mW9+tR4!xB"},"tokenRunOwnerCert:clientCertificateSecret":{"value":{"pfx":"MIIKcQIBAzCC","password":""}},"targetId":{"value":"g"}}"#;
        let e = journaled_body(&r, "application/json", body, &[]);
        let expected = format!(
            r#"{{"values":{{"username":{{"value":"CONTOSO\\svc-rpa"}},"password":{{"value":"{}"}},"tokenRunOwnerCert:clientCertificateSecret":{{"value":{{"pfx":"{}","password":""}}}},"targetId":{{"value":"g"}}}}"#,
            r.mark("password", "Qz7~vK2#mW9+tR4!xB"),
            r.mark("certificate", "MIIKcQIBAzCC"),
        );
        assert_eq!(e.body, Value::String(expected));
        assert!(e.leaks.is_empty());
    }

    #[test]
    fn a_secret_named_word_inside_a_desynchronised_string_still_hides_its_value() {
        let r = Redactor::new();
        // The quote after `password` is missing: every string after it is out of step.
        let e = journaled_body(&r, "application/json", r#"{"password:{"value":"Qz7~vK2#mW9","user":"bob"}"#, &[]);
        let text = e.body.as_str().unwrap();
        assert!(!text.contains("Qz7~vK"), "{text}");
        assert!(text.contains("bob"), "{text}");
    }

    #[test]
    fn known_secrets_and_jwts_are_replaced_in_text_and_flagged_outside_their_field() {
        let r = Redactor::new();
        let known = vec![("password", "Megan-Test-Passw0rd!".to_owned())];
        let e = journaled_body(&r, "text/plain", "note Megan-Test-Passw0rd! then eyJhbGciOi.eyJzdWIi.c2ln", &known);
        assert_eq!(
            e.body,
            Value::String(format!(
                "note {} then {}",
                r.mark("password", "Megan-Test-Passw0rd!"),
                r.mark("token", "eyJhbGciOi.eyJzdWIi.c2ln")
            ))
        );
        assert_eq!(e.leaks, vec!["password in body".to_owned()]);
        // In its field, a known secret is no leak, and keeps the hash it has everywhere else.
        let e = journaled_body(&r, "application/json", r#"{"password":"Megan-Test-Passw0rd!""#, &known);
        assert_eq!(e.body, Value::String(format!(r#"{{"password":"{}""#, r.mark("password", "Megan-Test-Passw0rd!"))));
        assert!(e.leaks.is_empty());
    }

    #[test]
    fn form_bodies_are_redacted_per_key_also_with_broken_encoding_or_the_wrong_content_type() {
        let r = Redactor::new();
        let e = journaled_body(
            &r,
            "application/x-www-form-urlencoded",
            "client_id=a&client_secret=ab%zz%7Ecd-ef&scope=x",
            &[],
        );
        assert_eq!(e.body["client_secret"], Value::String(r.mark("client_secret", "ab%zz~cd-ef")));
        assert_eq!(e.body["scope"], "x");
        let e = journaled_body(&r, "application/json", "client_id=a&client%5Fsecret=ab%zz%7Ecd-ef&scope=x", &[]);
        assert_eq!(
            e.body,
            Value::String(format!("client_id=a&client%5Fsecret={}&scope=x", r.mark("client_secret", "ab%zz%7Ecd-ef")))
        );
        // A JSON body sent as a form: its "keys" are text, rendered leniently as a whole.
        let e = journaled_body(&r, "application/x-www-form-urlencoded", r#"{"password":"a=b&c"}"#, &[]);
        assert_eq!(e.body, Value::String(format!(r#"{{"password":"{}"}}"#, r.mark("password", "a=b&c"))));
    }

    #[test]
    fn a_remembered_bearer_mark_is_the_mark_and_the_memory_is_bounded() {
        let r = Redactor::new();
        let token = "eyJhbGciOi.eyJzdWIi.c2ln";
        assert_eq!(r.bearer_mark(token), r.mark("token", token));
        assert_eq!(r.bearer_mark(token), r.mark("token", token), "remembered, still the same");
        for i in 0..REMEMBERED_BEARER_MARKS + 10 {
            let other = format!("token-{i}");
            assert_eq!(r.bearer_mark(&other), r.mark("token", &other));
        }
        assert!(r.bearer_marks.lock().unwrap().len() <= REMEMBERED_BEARER_MARKS);
        assert!(!format!("{r:?}").contains("token-"), "the remembered tokens are never shown");
    }

    #[test]
    fn a_secret_named_query_parameter_is_a_leak_whatever_its_value() {
        let r = Redactor::new();
        let e = r.record(
            exchange("/x", "a=1&client_secret=&access_token=x", "", ""),
            &KnownSecrets::default(),
            1,
            "default",
            "t".into(),
        );
        assert_eq!(
            e.leaks,
            vec!["client_secret in query.client_secret".to_owned(), "token in query.access_token".to_owned()]
        );
        let mut j = Journal::default();
        j.push(e);
        j.push(r.record(exchange("/x", "a=1", "", ""), &KnownSecrets::default(), 2, "default", "t".into()));
        assert_eq!(j.leaks(), 1, "entries with a leak are counted");
        j.clear();
        assert_eq!(j.leaks(), 0);
    }

    #[test]
    fn a_key_that_a_broken_body_ran_together_with_a_secret_name_still_hides_its_value() {
        // Found by the corruption proptest: two dropped quotes leave valid JSON whose key is
        // `password:{value`.
        let r = Redactor::new();
        let body = r#"{"values":{"password:{value":"A--0a*a-AaA*"}}"#;
        let e = journaled_body(&r, "application/json", body, &[]);
        assert!(!e.body.to_string().contains("A--0a*"), "{}", e.body);
        assert_eq!(kind_of_field("tokenRunOwnerCert:clientCertificateSecret"), Some("certificate"));
        assert_eq!(kind_of_field("tokenRunOwnerCert:clientId"), None);
    }

    #[test]
    fn a_large_body_is_stored_as_a_head_its_length_and_a_keyed_hash_cut_after_redaction() {
        let r = Redactor::new();
        // The mark of the password straddles the head's end: the cut must come before it.
        let body = format!(
            "{} password=Qz7~vK2#mW9+tR4!xB\nand more {}",
            "x".repeat(STORED_HEAD - 20),
            "y".repeat(MAX_STORED_BODY)
        );
        let e = journaled_body(&r, "text/plain", &body, &[]);
        let t = &e.body["$truncated"];
        let head = t["head"].as_str().unwrap();
        assert!(!e.body.to_string().contains("Qz7~vK"));
        assert!(
            head.len() <= STORED_HEAD && !head.contains("<redacted:p"),
            "no half mark: {}",
            &head[head.len() - 40..]
        );
        assert!(t["length"].as_u64().unwrap() > MAX_STORED_BODY as u64);
        let again = journaled_body(&r, "text/plain", &body, &[]);
        assert_eq!(again.body["$truncated"]["hash"], t["hash"], "equal bodies, equal hashes");
        let json = format!(
            "{{\"values\":{{\"password\":\"Qz7~vK2#mW9+tR4!xB\"}},\"zpad\":\"{}\"}}",
            "z".repeat(MAX_STORED_BODY)
        );
        let e = journaled_body(&r, "application/json", &json, &[]);
        let head = e.body["$truncated"]["head"].as_str().unwrap();
        assert!(head.contains("<redacted:password:") && !head.contains("Qz7~vK"), "{head}");
    }

    /// The redaction of JSON bodies before the borrowed tree: a `Value` parsed, walked and
    /// written. The tree must give the same text and the same leaks.
    mod same_as_the_value_path {
        use super::*;
        use proptest::prelude::*;

        fn value_path(scan: &mut Scan<'_>, v: &mut Value, at: At<'_>, kind: Option<&'static str>) {
            match v {
                Value::String(s) => {
                    *s = match kind {
                        Some(k) => scan.redactor.mark(k, s),
                        None => scan.text(s, at).into_owned(),
                    };
                }
                Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        value_path(scan, item, At::Index(&at, i), kind);
                    }
                }
                Value::Object(map) => {
                    for (k, item) in map.iter_mut() {
                        let inner = kind.or_else(|| kind_of_field(k));
                        value_path(scan, item, At::Field(&at, k), inner);
                    }
                }
                other => {
                    if let Some(k) = kind {
                        *other = Value::String(scan.redactor.mark(k, &other.to_string()));
                    }
                }
            }
        }

        /// A body's stored text and the leaks noted in it.
        type Written = (String, Vec<String>);

        /// Both paths over one body: `None` when it is not JSON (both must agree on that).
        fn both(r: &Redactor, known: &KnownSecrets, text: &str) -> Option<(Written, Written)> {
            let mut old = Scan { redactor: r, known, leaks: Vec::new(), dry: false };
            let parsed = serde_json::from_str::<Value>(text);
            assert_eq!(parsed.is_ok(), Json::parse(text.as_bytes()).is_some(), "{text}");
            let mut v = parsed.ok()?;
            value_path(&mut old, &mut v, At::Root("body"), None);
            let mut new = Scan { redactor: r, known, leaks: Vec::new(), dry: false };
            let tree = new.body(Some("application/json"), text.as_bytes(), At::Root("body"));
            Some(((v.to_string(), old.leaks), (tree.to_raw().get().to_owned(), new.leaks)))
        }

        const KEYS: &[&str] = &[
            "a",
            "b",
            "value",
            "username",
            "password",
            "client_secret",
            "tokenRunOwnerCert:clientCertificateSecret",
            "pfx",
            "access_token",
            "pass\\u0077ord",
            "\\u0061",
            "z\\n",
            "\u{e9}t\u{e9}",
        ];

        const STRINGS: &[&str] = &[
            "",
            "plain",
            "Megan-Test-Passw0rd!",
            "note Megan-Test-Passw0rd! inside",
            "eyJhbGciOi.eyJzdWIi.c2ln",
            "a\\nb",
            "\\u00e9t\\u00e9 \\ud83d\\ude00",
            "x\\\"y\\\\z\\/",
            "caf\u{e9} \u{1F600}",
            "Megan-Test-\\u0050assw0rd!",
        ];

        const NUMBERS: &[&str] = &[
            "0",
            "1",
            "-0",
            "-12",
            "1.5e3",
            "0.1",
            "1E2",
            "2.50",
            "18446744073709551615",
            "18446744073709551616",
            "-9223372036854775809",
            "1e400",
        ];

        fn doc() -> impl Strategy<Value = String> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                Just("false".to_owned()),
                proptest::sample::select(NUMBERS).prop_map(str::to_owned),
                proptest::sample::select(STRINGS).prop_map(|s| format!("\"{s}\"")),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    proptest::collection::vec(inner.clone(), 0..5).prop_map(|items| format!("[{}]", items.join(", "))),
                    proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(|members| {
                        let members: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\" :{v}")).collect();
                        format!("{{ {} }}", members.join(","))
                    }),
                ]
            })
        }

        fn known() -> KnownSecrets {
            KnownSecrets::new(vec![("password", "Megan-Test-Passw0rd!".to_owned())])
        }

        #[test]
        fn representative_bodies_are_written_and_flagged_alike() {
            let r = Redactor::new();
            for text in [
                r#"{"properties":{"environment":{"id":"/providers/Microsoft.PowerApps/environments/e","name":"e"},"connectionParametersSet":{"name":"azureRelay","values":{"username":{"value":"CONTOSO\\svc-rpa"},"password":{"value":"Contoso-SvcRpa-Passw0rd!"},"targetId":{"value":"42e26112-838c-471b-b09f-958e640e9303"}}}}}"#,
                r#"{"values":{"tokenRunOwnerCert:clientCertificateSecret":{"value":{"pfx":"MIIKcQIBAzCC","password":""}},"n":[1,2.5,{"token":true}]}}"#,
                r#"{"access_token":"eyJhbGciOi.eyJzdWIi.c2ln","expires_in":3599,"token_type":"Bearer","note":"Megan-Test-Passw0rd!"}"#,
                r#"{"password":12,"password":{"value":null},"a":"eyJx.eyJy.z and Megan-Test-Passw0rd!"}"#,
                r#"["Megan-Test-Passw0rd!",{"secret":[1,"x",false]}]"#,
            ] {
                let (old, new) = both(&r, &known(), text).expect("JSON");
                assert_eq!(old, new, "{text}");
            }
        }

        #[test]
        fn the_stored_entry_is_the_entry_of_values_written() {
            let r = Redactor::new();
            let x = exchange("/c", "a=1", "", r#"{"b":1,"a":"eyJhbGciOi.eyJzdWIi.c2ln"}"#)
                .with_body("application/json", br#"{"z":{"password":"p"},"a":[1,2.5e3]}"#);
            let again = x.clone();
            let stored = serde_json::to_string(&r.redact(x, &known(), 3, "default", "t".into())).unwrap();
            let read = serde_json::to_string(&r.record(again, &known(), 3, "default", "t".into())).unwrap();
            assert_eq!(stored, read);
        }

        /// Secrets a body may hold: one plain, one that JSON writes escaped (a PEM's line
        /// break, a quote, a backslash).
        fn known_both() -> KnownSecrets {
            KnownSecrets::new(vec![
                ("password", "Megan-Test-Passw0rd!".to_owned()),
                ("certificate", "-----BEGIN X-----\nQ\"w\\e/rt\n-----END X-----".to_owned()),
            ])
        }

        /// A journal that keeps an exchange deferred or writes it at once gives the same text.
        fn journaled(r: &Arc<Redactor>, x: Exchange, known: Arc<KnownSecrets>) -> String {
            let capture = Capture {
                known,
                sandbox: "default".into(),
                virtual_time: "2025-01-01T00:00:00Z".parse().unwrap(),
                environment: Some("e".into()),
                retry_after: None,
            };
            let mut j = Journal::default();
            j.record(r.prepare(x, capture));
            j.page(&JournalFilter::all()).entries[0].get().to_owned()
        }

        const QUERIES: &[&str] =
            &["", "api-version=1", "a=Megan-Test-Passw0rd!", "password=x", "a=Megan-Test-Passw0rd%21", "a=%2D%2D"];
        const PATHS: &[&str] = &["/c", "/c/Megan-Test-Passw0rd!", "/c/eyJhbGciOi.eyJzdWIi.c2ln"];
        const TYPES: &[&str] = &["application/json", "application/x-www-form-urlencoded", "text/plain"];

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn an_exchange_cleared_of_leaks_has_none_and_reads_as_if_written_at_once(
                body in doc(),
                response in doc(),
                query in proptest::sample::select(QUERIES),
                path in proptest::sample::select(PATHS),
                content_type in proptest::sample::select(TYPES),
                with_pem in any::<bool>(),
                pem_in_body in any::<bool>(),
            ) {
                let known = Arc::new(if with_pem { known_both() } else { known() });
                let pem = "-----BEGIN X-----\\nQ\\\"w\\\\e/rt\\n-----END X-----";
                let body = if pem_in_body { format!("{{\"note\": \"{pem}\", \"b\": {body}}}") } else { body };
                let x = exchange(path, query, "", "")
                    .with_body(content_type, body.as_bytes())
                    .with_response("application/json", response.as_bytes());
                let copy = || x.clone();
                let r = Arc::new(Redactor::new());
                let at_once = r.redact(copy(), &known, 1, "default", "t".into());
                if !r.might_leak(&x, &known) {
                    prop_assert!(at_once.leaks.is_empty(), "cleared, yet {:?}", at_once.leaks);
                }
                let mut expected = at_once;
                expected.virtual_time = "2025-01-01T00:00:00Z".into();
                expected.environment = Some("e".into());
                prop_assert_eq!(journaled(&r, x, known), serde_json::to_string(&expected).unwrap());
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1024, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn random_json_is_written_and_flagged_alike(text in doc(), cut in proptest::option::of(0.0..1.0f64)) {
                let text = match cut {
                    Some(f) => text.chars().take((text.chars().count() as f64 * f) as usize).collect(),
                    None => text,
                };
                let r = Redactor::new();
                if let Some((old, new)) = both(&r, &known(), &text) {
                    prop_assert_eq!(old, new, "{}", text);
                }
            }

            /// The leak pre-check's one-pass reader: it reads every body serde_json reads but
            /// a number out of its subset, refuses every body serde_json refuses, and never
            /// clears one the long way flags (it may flag a duplicate key the tree drops).
            #[test]
            fn the_leak_pre_check_reads_plain_json_and_never_clears_a_leak(
                text in doc(),
                cut in proptest::option::of(0.0..1.0f64),
                wrapped in any::<bool>(),
            ) {
                let text = match cut {
                    Some(f) => text.chars().take((text.chars().count() as f64 * f) as usize).collect(),
                    None => text,
                };
                // Deeper than the reader goes, so it must leave the body to the long way.
                let text = if wrapped { format!("{}{text}{}", "[".repeat(70), "]".repeat(70)) } else { text };
                let known = known_both();
                let hits = known.occurrences(text.as_bytes()).unwrap_or_default();
                let fast = json_leaks(text.as_bytes(), &hits, &known);
                if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
                    prop_assert_eq!(fast, None, "serde_json refuses {}", text);
                    return Ok(());
                }
                let r = Redactor::new();
                let mut scan = Scan { redactor: &r, known: &known, leaks: Vec::new(), dry: true };
                scan.body(Some("application/json"), text.as_bytes(), At::Root("body"));
                let flagged = !scan.leaks.is_empty();
                // Numbers outside the reader's subset: 16 digits or more (the long integers of
                // NUMBERS, or what a cut leaves of them), or a three-digit exponent.
                let digit_runs = text.split(|c: char| !c.is_ascii_digit());
                let outside = digit_runs.into_iter().any(|run| run.len() >= 16) || text.contains("e400");
                match fast {
                    Some(leak) => prop_assert!(leak || !flagged, "cleared a leak the scan flags: {}", text),
                    None => prop_assert!(wrapped || outside, "plain JSON left to the long way: {}", text),
                }
            }
        }

        #[test]
        fn the_leak_pre_check_flags_a_secret_only_outside_secret_named_fields() {
            let known = known_both();
            let verdict = |text: &str| {
                let hits = known.occurrences(text.as_bytes()).unwrap_or_default();
                json_leaks(text.as_bytes(), &hits, &known)
            };
            assert_eq!(verdict(r#"{"password":{"value":"Megan-Test-Passw0rd!"}}"#), Some(false));
            assert_eq!(verdict(r#"{"note":["x","Megan-Test-Passw0rd!"]}"#), Some(true));
            assert_eq!(verdict(r#"{"pass\u0077ord":"Megan-Test-Passw0rd!"}"#), Some(false), "an escaped key is read");
            assert_eq!(verdict(r#"{"a":"Megan-Test-\u0050assw0rd!"}"#), Some(true), "an escaped value is decoded");
            assert_eq!(verdict(r#"{"a":"Megan-Test-Passw0rd","b":"!"}"#), Some(false), "no string holds it");
            assert_eq!(verdict(r#"{"a": 01}"#), None);
            assert_eq!(verdict(r#"{"a": "\x"}"#), None);
            assert_eq!(verdict("{\"a\": \"\u{1}\"}"), None, "a raw control character");
            assert_eq!(verdict(r#"{"a": 1} x"#), None);
            assert_eq!(verdict(r#"{"a": -1.5e-12, "b": [true, false, null, {}], "c": 0}"#), Some(false));
        }
    }

    mod unparsable_bodies {
        use super::*;
        use crate::normalise::normalise;
        use proptest::prelude::*;

        /// The secret-named words a client may put before a secret.
        const SECRET_NAMES: &[&str] = &[
            "password",
            "client_secret",
            "secret",
            "clientCertificateSecret",
            "pfx",
            "access_token",
            "refresh_token",
            "client_assertion",
            "assertion",
            "token",
            "Authorization",
        ];

        /// Text the journal writes whatever the request: field names, marks, placeholders.
        const FIXED_WORDS: &str = "seq sandbox default surface identity environment virtualTime realMs \
            scheme https host method path query headers body status response leaks <redacted:password: \
            <redacted:client_secret: <redacted:token: <redacted:certificate: <redacted:authorization: \
            <real-ms> <loopback> <port> <time: <token: <guid: bytes in all Basic application/json";

        /// A request body with `{KEY}` before `{SECRET}`, and whether it is a form.
        const TEMPLATES: &[(&str, bool)] = &[
            (
                r#"{"properties":{"environment":{"name":"37520647-dbdf-49fa-ba01-6134c14680c4"},"connectionParametersSet":{"name":"azureRelay","values":{"username":{"value":"CONTOSO\\svc-rpa"},"{KEY}":{"value":"{SECRET}"},"targetId":{"value":"42e26112-838c-471b-b09f-958e640e9303"}}}}}"#,
                false,
            ),
            (r#"{"client_id":"app-one","{KEY}":"{SECRET}","scope":"https://api.powerplatform.com/.default"}"#, false),
            (
                r#"{"values":{"tokenRunOwnerCert:clientCertificateSecret":{"value":{"{KEY}":"{SECRET}","password":""}},"username":{"value":"u"}}}"#,
                false,
            ),
            (
                "grant_type=client_credentials&client_id=app-one&{KEY}={SECRET}&scope=https%3A%2F%2Fapi.powerplatform.com%2F.default",
                true,
            ),
        ];

        #[derive(Debug, Clone)]
        enum Corruption {
            /// Cut at this fraction of the bytes after the value's first byte.
            Truncate(f64),
            Trailing(String),
            /// Drop the n-th (modulo their count) brace or quote.
            DropDelimiter(usize),
            /// Insert a broken escape at this fraction of the body.
            BrokenPercent(f64, &'static str),
        }

        fn corruption() -> impl Strategy<Value = Corruption> {
            prop_oneof![
                (0.0..=1.0f64).prop_map(Corruption::Truncate),
                "[ -~]{1,12}".prop_map(Corruption::Trailing),
                any::<usize>().prop_map(Corruption::DropDelimiter),
                ((0.0..=1.0f64), prop_oneof![Just("%"), Just("%4"), Just("%G1"), Just("%%"), Just("%e2%82")])
                    .prop_map(|(at, s)| Corruption::BrokenPercent(at, s)),
            ]
        }

        /// A corrupted body; the corruptions keep the secret-named key and the value's first byte.
        struct Body {
            text: Vec<u8>,
            key: std::ops::Range<usize>,
            first: usize,
            /// What the corruptions added: part of the request, so the secret shares nothing with it.
            added: Vec<String>,
        }

        impl Body {
            fn corrupt(&mut self, c: &Corruption) {
                let at = |f: f64, lo: usize, hi: usize| lo + (((hi - lo) as f64) * f) as usize;
                match c {
                    Corruption::Truncate(f) => {
                        let len = self.text.len();
                        self.text.truncate(at(*f, self.first + 1, len));
                    }
                    Corruption::Trailing(s) => {
                        self.text.extend_from_slice(s.as_bytes());
                        self.added.push(s.clone());
                    }
                    Corruption::DropDelimiter(n) => {
                        let delimiters: Vec<usize> =
                            (0..self.text.len()).filter(|&i| b"{}\"".contains(&self.text[i])).collect();
                        if let Some(&i) = delimiters.get(n % delimiters.len().max(1)) {
                            self.text.remove(i);
                            if i < self.key.start {
                                self.key = self.key.start - 1..self.key.end - 1;
                            }
                            if i < self.first {
                                self.first -= 1;
                            }
                        }
                    }
                    Corruption::BrokenPercent(f, s) => {
                        let i = at(*f, 0, self.text.len());
                        // Inside or against the key it would no longer be that key.
                        if (self.key.start..=self.key.end).contains(&i) {
                            return;
                        }
                        self.text.splice(i..i, s.bytes());
                        if i < self.key.start {
                            self.key = self.key.start + s.len()..self.key.end + s.len();
                        }
                        if i <= self.first {
                            self.first += s.len();
                        }
                        self.added.push((*s).to_owned());
                    }
                }
            }
        }

        fn pieces(secret: &str) -> impl Iterator<Item = &str> {
            (0..=secret.len() - 6).map(move |i| &secret[i..i + 6])
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn no_piece_of_a_secret_after_a_secret_named_key_survives_any_corruption(
                secret in "[A-Za-z0-9~!#%*+-]{12,40}",
                key in proptest::sample::select(SECRET_NAMES),
                template in proptest::sample::select(TEMPLATES),
                encode in any::<bool>(),
                content_type in proptest::sample::select(&["application/json", "application/x-www-form-urlencoded", "text/plain"][..]),
                known_secret in any::<bool>(),
                corruptions in proptest::collection::vec(corruption(), 1..4),
            ) {
                let (template, form) = template;
                let written = if form && encode {
                    serde_urlencoded::to_string([("v", secret.as_str())]).unwrap()[2..].to_owned()
                } else {
                    secret.clone()
                };
                let (before, after) = template.split_once("{SECRET}").unwrap();
                let before = before.replace("{KEY}", key);
                let key_start = before.rfind(key).unwrap();
                let mut body = Body {
                    text: format!("{before}{written}{after}").into_bytes(),
                    key: key_start..key_start + key.len(),
                    first: before.len(),
                    added: Vec::new(),
                };
                for c in &corruptions {
                    body.corrupt(c);
                }
                let rest = [before.as_str(), after, FIXED_WORDS].into_iter().chain(body.added.iter().map(String::as_str));
                let rest: Vec<&str> = rest.collect();
                prop_assume!(pieces(&secret).all(|p| rest.iter().all(|r| !r.contains(p))));

                let r = Redactor::new();
                let known = if known_secret { vec![("password", secret.clone())] } else { Vec::new() };
                let x = exchange("/c", "", "", "").with_body(content_type, &body.text).with_response(
                    "application/json",
                    br#"{"error":{"code":"InvalidJson","message":"The request body is not valid JSON: EOF while parsing an object at line 1 column 9."}}"#,
                );
                let e = r.record(x, &KnownSecrets::new(known.clone()), 1, "default", "t".into());

                let raw = serde_json::to_string(&e).unwrap();
                let normalised = serde_json::to_string(&normalise(&serde_json::to_value(&e).unwrap())).unwrap();
                let sent = String::from_utf8_lossy(&body.text);
                for p in pieces(&secret) {
                    prop_assert!(!raw.contains(p), "raw journal holds {p:?} of {secret:?}\nsent: {sent}\njournal: {}", e.body);
                    prop_assert!(!normalised.contains(p), "normalised journal holds {p:?}\nsent: {sent}\njournal: {normalised}");
                }
                prop_assert!(raw.contains("<redacted:"), "sent: {sent}\njournal: {}", e.body);
                prop_assert!(e.leaks.is_empty(), "a secret in its field is no leak: {:?}\nsent: {sent}", e.leaks);
            }
        }
    }
}
