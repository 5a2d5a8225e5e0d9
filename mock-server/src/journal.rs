//! The request journal: every request to an emulated surface, with secrets replaced **when
//! the entry is written**, so no later code path can leak them. Bounded; evictions are
//! counted and reported.
//!
//! Redaction works by field name (passwords, client secrets, tokens, certificate blobs, the
//! `Authorization` header) and by value (every credential of the sandbox's world and every
//! JWT-shaped string, which covers every token the mock issued and every client assertion).
//! A secret becomes `<redacted:KIND:H>`, H a short keyed hash (key per process): equal
//! secrets stay equal and none can be recovered. A known secret found outside its proper
//! field (a password in a query string) flags the entry as a leak.

use crate::operation::Operation;
use crate::tokens::find_jwts;
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::VecDeque;

/// Default number of entries kept per sandbox.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// One recorded exchange.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    /// Sequence number within the sandbox (survives eviction, so gaps show what was evicted).
    pub seq: u64,
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
    pub body: Value,
    /// Response status.
    pub status: u16,
    /// Response body, parsed the same way.
    pub response: Value,
    /// Where a known secret was found outside its proper field; empty when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leaks: Vec<String>,
}

/// What the middleware captured, before redaction. Only `Redactor::record` turns it into an
/// entry, so nothing unredacted can be stored.
#[derive(Debug)]
pub struct Exchange {
    /// Surface name.
    pub surface: &'static str,
    /// The named operation.
    pub operation: Operation,
    /// `http` / `https`.
    pub scheme: &'static str,
    /// Host header.
    pub host: String,
    /// Method.
    pub method: String,
    /// Raw path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Selected headers.
    pub headers: Vec<(String, String)>,
    /// Request content type and body (shared with the request, not copied).
    pub body: (Option<String>, axum::body::Bytes),
    /// Status.
    pub status: u16,
    /// Response content type and body (shared with the response, not copied).
    pub response: (Option<String>, axum::body::Bytes),
    /// Monotonic milliseconds since start.
    pub real_ms: u64,
}

/// Request headers worth keeping; everything else is dropped (cookies, proxies' headers).
pub const KEPT_HEADERS: &[&str] = &[
    "accept",
    "authorization",
    "content-type",
    "if-match",
    "if-none-match",
    "odata-maxversion",
    "odata-version",
    "prefer",
    "user-agent",
    "x-ms-client-request-id",
    "x-ms-correlation-id",
    "x-correlation-id",
    "x-ms-useragent",
    "mscrm.includeunpublished",
];

/// Secret kinds by field name (the last `:`-separated part, lower-cased, `_`/`-` removed).
fn kind_of_field(name: &str) -> Option<&'static str> {
    let last = name.rsplit(':').next().unwrap_or(name);
    let key: String = last.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    match key.as_str() {
        "password" | "pwd" | "newpassword" => Some("password"),
        "clientsecret" | "secret" => Some("client_secret"),
        "accesstoken" | "refreshtoken" | "idtoken" | "token" | "assertion" | "clientassertion" => Some("token"),
        "pfx" | "clientcertificatesecret" | "certificate" | "privatekey" => Some("certificate"),
        "authorization" => Some("authorization"),
        _ => None,
    }
}

/// Replaces secrets. One per process: its key makes the hashes unlinkable across runs.
#[derive(Debug)]
pub struct Redactor {
    key: aws_lc_rs::hmac::Key,
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
        Self { key }
    }

    /// The placeholder for a secret value.
    pub fn mark(&self, kind: &str, value: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.key, value.as_bytes());
        let hex: String = tag.as_ref()[..4].iter().map(|b| format!("{b:02x}")).collect();
        format!("<redacted:{kind}:{hex}>")
    }

    /// Redacts an exchange into a journal entry. `known` are the sandbox's credentials.
    pub fn record(
        &self,
        x: Exchange,
        known: &[(&'static str, String)],
        seq: u64,
        sandbox: &str,
        virtual_time: String,
    ) -> JournalEntry {
        let mut scan = Scan { redactor: self, known, leaks: Vec::new() };
        let path = scan.text(&x.path, "path", false);
        let host = scan.text(&x.host, "host", false);
        let query = form_pairs(&x.query)
            .into_iter()
            .map(|(k, v)| {
                let v = match kind_of_field(&k) {
                    Some(kind) => self.mark(kind, &v),
                    None => scan.text(&v, &format!("query.{k}"), false),
                };
                (k, v)
            })
            .collect();
        let mut headers = Map::new();
        for (name, value) in x.headers {
            let v = if name == "authorization" {
                match value.split_once(' ') {
                    Some((scheme, cred)) if scheme.eq_ignore_ascii_case("basic") => {
                        format!("{scheme} {}", self.mark("client_secret", cred))
                    }
                    Some((scheme, cred)) => format!("{scheme} {}", self.mark("token", cred)),
                    None => self.mark("authorization", &value),
                }
            } else {
                scan.text(&value, &format!("header.{name}"), false)
            };
            headers.insert(name, Value::String(v));
        }
        let mut body = parse_body(x.body.0.as_deref(), &x.body.1);
        scan.value(&mut body, "body", None);
        let mut response = parse_body(x.response.0.as_deref(), &x.response.1);
        scan.value(&mut response, "response", None);
        JournalEntry {
            seq,
            sandbox: sandbox.to_owned(),
            surface: x.surface.to_owned(),
            operation: x.operation,
            environment: None,
            virtual_time,
            real_ms: x.real_ms,
            scheme: x.scheme.to_owned(),
            host,
            method: x.method,
            path,
            query,
            headers,
            body,
            status: x.status,
            response,
            leaks: scan.leaks,
        }
    }
}

struct Scan<'a> {
    redactor: &'a Redactor,
    known: &'a [(&'static str, String)],
    leaks: Vec<String>,
}

impl Scan<'_> {
    /// Replaces known secrets and JWTs inside free text. `proper` says the field is one where
    /// such a value belongs (so finding it there is no leak).
    fn text(&mut self, s: &str, at: &str, proper: bool) -> String {
        let mut out = s.to_owned();
        for (kind, secret) in self.known {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), &self.redactor.mark(kind, secret));
                if !proper {
                    self.leaks.push(format!("{kind} in {at}"));
                }
            }
        }
        let jwts = find_jwts(&out);
        for (start, end) in jwts.into_iter().rev() {
            let token = out[start..end].to_owned();
            out.replace_range(start..end, &self.redactor.mark("token", &token));
        }
        out
    }

    fn value(&mut self, v: &mut Value, at: &str, kind: Option<&'static str>) {
        match v {
            Value::String(s) => {
                *s = match kind {
                    Some(k) => self.redactor.mark(k, s),
                    None => self.text(s, at, false),
                };
            }
            Value::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(item, &format!("{at}[{i}]"), kind);
                }
            }
            Value::Object(map) => {
                for (k, item) in map.iter_mut() {
                    let inner = kind.or_else(|| kind_of_field(k));
                    self.value(item, &format!("{at}.{k}"), inner);
                }
            }
            // Numbers and booleans cannot hold a secret worth redacting, except inside a secret field.
            other => {
                if let Some(k) = kind {
                    *other = Value::String(self.redactor.mark(k, &other.to_string()));
                }
            }
        }
    }
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

/// A body as JSON: parsed JSON, a form as an object of strings, other UTF-8 as a string
/// (truncated), binary as a size note, empty as null.
fn parse_body(content_type: Option<&str>, bytes: &[u8]) -> Value {
    const MAX_TEXT: usize = 64 * 1024;
    if bytes.is_empty() {
        return Value::Null;
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let text = String::from_utf8_lossy(bytes);
        let mut map = Map::new();
        for (k, v) in form_pairs(&text) {
            map.insert(k, Value::String(v));
        }
        return Value::Object(map);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(bytes) {
        return v;
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.len() <= MAX_TEXT => Value::String(s.to_owned()),
        Ok(s) => {
            let mut cut = MAX_TEXT;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            Value::String(format!("{}… ({} bytes in all)", &s[..cut], s.len()))
        }
        Err(_) => Value::String(format!("<{} bytes of binary>", bytes.len())),
    }
}

/// A bounded journal.
#[derive(Debug)]
pub struct Journal {
    entries: VecDeque<JournalEntry>,
    capacity: usize,
    evicted: u64,
    next_seq: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }
}

impl Journal {
    /// A journal keeping at most `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { entries: VecDeque::new(), capacity: capacity.max(1), evicted: 0, next_seq: 1 }
    }

    /// The number the next entry will get.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Appends, evicting the oldest entry when full.
    pub fn push(&mut self, e: JournalEntry) {
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
            self.evicted += 1;
        }
        self.entries.push_back(e);
    }

    /// Entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &JournalEntry> {
        self.entries.iter()
    }

    /// How many entries were evicted since the last clear.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Empties the journal (sequence numbers keep counting).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.evicted = 0;
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
            host: "127.0.0.1:1".into(),
            method: "POST".into(),
            path: path.into(),
            query: query.into(),
            headers: vec![("authorization".into(), "Basic dXNlcjpwYXNz".into())],
            body: (Some("application/x-www-form-urlencoded".into()), body.as_bytes().to_vec().into()),
            status: 200,
            response: (Some("application/json".into()), response.as_bytes().to_vec().into()),
            real_ms: 5,
        }
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
            &known,
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
    fn a_known_secret_outside_its_field_is_flagged_as_a_leak() {
        let r = Redactor::new();
        let known = vec![("password", "Hunter2-Passw0rd".to_owned())];
        let e = r.record(exchange("/x", "debug=Hunter2-Passw0rd", "", ""), &known, 1, "default", "t".into());
        assert_eq!(e.query[0].1, r.mark("password", "Hunter2-Passw0rd"));
        assert_eq!(e.leaks, vec!["password in query.debug".to_owned()]);
    }

    #[test]
    fn nested_secret_fields_keep_their_shape() {
        let r = Redactor::new();
        let mut x = exchange("/c", "", "", "");
        x.body = (
            Some("application/json".into()),
            br#"{"values":{"password":{"value":"p"},"tokenRunOwnerCert:clientCertificateSecret":{"value":{"pfx":"MII","password":""}},"username":{"value":"u"}}}"#.to_vec().into(),
        );
        let e = r.record(x, &[], 1, "default", "t".into());
        assert_eq!(e.body["values"]["password"]["value"], Value::String(r.mark("password", "p")));
        assert_eq!(
            e.body["values"]["tokenRunOwnerCert:clientCertificateSecret"]["value"]["pfx"],
            Value::String(r.mark("certificate", "MII"))
        );
        assert_eq!(e.body["values"]["username"]["value"], "u");
    }

    #[test]
    fn the_journal_is_bounded_and_counts_evictions() {
        let r = Redactor::new();
        let mut j = Journal::with_capacity(2);
        for _ in 0..3 {
            let seq = j.next_seq();
            j.push(r.record(exchange("/x", "", "", ""), &[], seq, "default", "t".into()));
        }
        assert_eq!(j.entries().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(j.evicted(), 1);
    }
}
