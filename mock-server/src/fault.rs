//! Fault rules (`scenarios.md`, "Fault rules") and the Retry-After check, as plain Rust: which
//! rule a request meets, how often it applies (`times`, `every`, seeded `probability`), the
//! delay it draws, and whether a client waited as long as an answer's `Retry-After` asked.
//! Rendering an answer and reading the request off the wire are the api layer's business
//! (`api::faults`). Not under `domain`: rules and bodies here are JSON values, and they
//! concern the network, not the emulated world.
//!
//! Counting, in this order per rule and request: an exhausted rule (`times` reached) is
//! skipped; the `match` fields must fit; the rule counts the match; `every: N` lets only each
//! Nth match through; `probability` draws from the rule's own generator (seeded, so one seed
//! gives one sequence on every server); only then does the rule hit. A rule skipped by
//! `every` or `probability` leaves the request to the rules after it.

use crate::operation::Operation;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// What a test posts to `/_mock/faults`: when a rule applies and what it answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultSpec {
    /// Which requests the rule is for; every field optional.
    #[serde(rename = "match", default)]
    pub match_: FaultMatch,
    /// What it does to them.
    #[serde(default)]
    pub respond: Respond,
    /// How many times it applies (unlimited when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// Applies to every Nth matching request only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// The chance it applies to a matching request, drawn from `seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Seed of the rule's draws (probability, delay ranges); 0 when absent, so an unseeded
    /// rule is as reproducible as a seeded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// The `match` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultMatch {
    /// A named operation (`connections.put`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// HTTP method, any case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Glob on the path as sent: `*` within one segment, `**` any number of segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The environment id the request names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Object id, app id or UPN of the caller, read from the bearer token without verifying it
    /// (on the token endpoint: the form's `client_id` or `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// A JSON value the request body must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The `respond` of a rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Respond {
    /// The status to answer with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Headers to add to the answer.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The body (the surface's default envelope when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// A delay before answering (or before letting the request through).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<Delay>,
    /// A fault on the wire instead of a clean answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<WireFault>,
}

impl Respond {
    /// Whether the rule answers in place of the handler (otherwise it only delays).
    pub fn answers(&self) -> bool {
        self.status.is_some() || self.body.is_some() || !self.headers.is_empty() || self.fault.is_some()
    }

    /// The status of the answer: given, else 200 for a broken body (the client got "an
    /// answer" it cannot read), else 500 (mock-defined defaults).
    pub fn status_or_default(&self) -> u16 {
        match (self.status, self.fault) {
            (Some(s), _) => s,
            (None, Some(WireFault::Truncate | WireFault::Malformed)) => 200,
            (None, _) => 500,
        }
    }
}

/// `delayMs`: a number, or a range drawn from the rule's seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Delay {
    /// Always this long.
    Fixed(u64),
    /// Between the two, inclusive.
    Range {
        /// Shortest.
        #[serde(rename = "minMs")]
        min_ms: u64,
        /// Longest.
        #[serde(rename = "maxMs")]
        max_ms: u64,
    },
}

/// A connection-level fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireFault {
    /// The connection closes without an answer.
    Drop,
    /// The answer's head promises the whole body; the connection closes halfway through it.
    Truncate,
    /// The body is not valid JSON (the first half of it, then garbage).
    Malformed,
}

/// The longest delay a rule may ask for: a minute keeps a forgotten rule from hanging a suite.
pub const MAX_DELAY_MS: u64 = 60_000;

impl FaultSpec {
    /// Checks what serde cannot; the message names the field (never echoes a value it refuses).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(op) = &self.match_.operation
            && Operation::parse(op).is_none_or(|o| o == Operation::Control)
        {
            return Err("match.operation: expected a named operation (docs/operations.md)".into());
        }
        if let Some(m) = &self.match_.method
            && (m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err("match.method: expected an HTTP method".into());
        }
        if let Some(p) = &self.match_.path
            && !p.starts_with('/')
        {
            return Err("match.path: expected a path starting with '/'".into());
        }
        if let Some(s) = self.respond.status
            && !(100..=599).contains(&s)
        {
            return Err("respond.status: expected an HTTP status (100-599)".into());
        }
        match self.respond.delay_ms {
            Some(Delay::Fixed(ms)) if ms > MAX_DELAY_MS => {
                return Err(format!("respond.delayMs: expected at most {MAX_DELAY_MS}"));
            }
            Some(Delay::Range { min_ms, max_ms }) if min_ms > max_ms || max_ms > MAX_DELAY_MS => {
                return Err(format!("respond.delayMs: expected minMs <= maxMs <= {MAX_DELAY_MS}"));
            }
            _ => {}
        }
        for (name, value) in &self.respond.headers {
            let token = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !token || value.bytes().any(|b| b < 0x20 && b != b'\t' || b == 0x7f) {
                return Err("respond.headers: expected header names and printable values".into());
            }
        }
        if !self.respond.answers() && self.respond.delay_ms.is_none() {
            return Err("respond: expected a status, body, headers, fault or delayMs".into());
        }
        if self.every == Some(0) {
            return Err("every: expected at least 1".into());
        }
        if let Some(p) = self.probability
            && !(0.0..=1.0).contains(&p)
        {
            return Err("probability: expected a number from 0 to 1".into());
        }
        Ok(())
    }
}

/// SplitMix64: small, fast and the same on every platform, which is all a fault roll needs.
#[derive(Debug, Clone)]
struct Rolls(u64);

impl Rolls {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A draw in [0, 1).
    fn unit(&mut self) -> f64 {
        // 53 bits: exactly representable.
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A rule as the sandbox holds it: the spec, its counters and its generator.
#[derive(Debug, Clone)]
pub struct FaultRule {
    /// `fault-N`, numbered per sandbox in creation order.
    pub id: String,
    /// What was posted.
    pub spec: FaultSpec,
    /// Requests whose `match` fitted while the rule was live.
    pub matched: u64,
    /// Times it applied.
    pub hits: u64,
    rolls: Rolls,
}

/// A rule as `GET /_mock/faults` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRuleView {
    /// Its id.
    pub id: String,
    /// What was posted.
    #[serde(flatten)]
    pub spec: FaultSpec,
    /// Times it applied.
    pub hits: u64,
    /// Requests whose `match` fitted while it was live.
    pub matched: u64,
    /// Applications left (`null`: unlimited).
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// Its listing.
    pub fn view(&self) -> FaultRuleView {
        FaultRuleView {
            id: self.id.clone(),
            spec: self.spec.clone(),
            hits: self.hits,
            matched: self.matched,
            remaining: self.spec.times.map(|t| t.saturating_sub(self.hits)),
        }
    }

    fn exhausted(&self) -> bool {
        self.spec.times.is_some_and(|t| self.hits >= t)
    }
}

/// A request as fault matching sees it. Caller and body are read only when a rule asks.
pub struct FaultRequest<'a> {
    /// Its named operation.
    pub operation: Operation,
    /// Method.
    pub method: &'a str,
    /// Path as sent.
    pub path: &'a str,
    /// The environment it names.
    pub environment: Option<&'a str>,
    /// Who the bearer token (or token request) says is calling: object id, app id, UPN.
    pub callers: &'a dyn Fn() -> Vec<String>,
    /// The body as JSON (a form as an object), if it is one.
    pub body: &'a dyn Fn() -> Option<Value>,
}

impl std::fmt::Debug for FaultRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultRequest")
            .field("operation", &self.operation)
            .field("method", &self.method)
            .field("path", &self.path)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl FaultMatch {
    /// Whether `req` fits every field given.
    pub fn fits(&self, req: &FaultRequest<'_>) -> bool {
        self.operation.as_deref().is_none_or(|o| o == req.operation.as_str())
            && self.method.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(req.method))
            && self.path.as_deref().is_none_or(|p| glob(p, req.path))
            && self.environment.as_deref().is_none_or(|e| req.environment.is_some_and(|r| r.eq_ignore_ascii_case(e)))
            && self.caller.as_deref().is_none_or(|c| (req.callers)().iter().any(|x| x.eq_ignore_ascii_case(c)))
            && self.body.as_ref().is_none_or(|b| (req.body)().is_some_and(|actual| contains(&actual, b)))
    }
}

/// Whether `path` fits `pattern`: `*` stands for any characters within one segment, a `**`
/// segment for any number of segments (none included).
pub fn glob(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_start_matches('/').split('/').collect();
    let path: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    segments(&pattern, &path)
}

fn segments(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments(rest, &path[skip..])),
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(seg, tail)| segment(first.as_bytes(), seg.as_bytes()) && segments(rest, tail)),
    }
}

fn segment(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| segment(rest, &text[skip..])),
        Some((c, rest)) => text.split_first().is_some_and(|(t, tail)| t == c && segment(rest, tail)),
    }
}

/// Whether `actual` contains `expected`: an object every expected key with a containing
/// value, an array an element containing each expected element, anything else equality.
pub fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e.iter().all(|(k, v)| a.get(k).is_some_and(|x| contains(x, v))),
        (Value::Array(a), Value::Array(e)) => e.iter().all(|v| a.iter().any(|x| contains(x, v))),
        _ => actual == expected,
    }
}

/// What a rule that hit does to the request.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultHit {
    /// The rule.
    pub rule: String,
    /// Its `respond`.
    pub respond: Respond,
    /// The delay drawn, if any.
    pub delay_ms: Option<u64>,
}

/// A sandbox's fault rules, in creation order.
#[derive(Debug, Default)]
pub struct FaultBook {
    rules: Vec<FaultRule>,
    created: u64,
}

impl FaultBook {
    /// Adds a rule (already validated) and answers it.
    pub fn add(&mut self, spec: FaultSpec) -> FaultRuleView {
        self.created += 1;
        let rule = FaultRule {
            id: format!("fault-{}", self.created),
            rolls: Rolls(spec.seed.unwrap_or(0)),
            spec,
            matched: 0,
            hits: 0,
        };
        let view = rule.view();
        self.rules.push(rule);
        view
    }

    /// Every rule, exhausted ones included.
    pub fn list(&self) -> Vec<FaultRuleView> {
        self.rules.iter().map(FaultRule::view).collect()
    }

    /// Removes one rule; false when there is none of that id.
    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.rules.len();
        self.rules.retain(|r| r.id != id);
        self.rules.len() != before
    }

    /// Removes every rule (ids keep counting, so an old id never names a new rule).
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Back to nothing, numbering included (reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    /// Whether there is no rule at all (the common case: nothing to look at).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule that applies to `req`, counted; `None` lets the request through.
    pub fn decide(&mut self, req: &FaultRequest<'_>) -> Option<FaultHit> {
        for rule in &mut self.rules {
            if rule.exhausted() || !rule.spec.match_.fits(req) {
                continue;
            }
            rule.matched += 1;
            if rule.spec.every.is_some_and(|n| rule.matched % n != 0) {
                continue;
            }
            if let Some(p) = rule.spec.probability
                && rule.rolls.unit() >= p
            {
                continue;
            }
            rule.hits += 1;
            let delay_ms = rule.spec.respond.delay_ms.map(|d| match d {
                Delay::Fixed(ms) => ms,
                Delay::Range { min_ms, max_ms } => min_ms + rule.rolls.next() % (max_ms - min_ms + 1),
            });
            return Some(FaultHit { rule: rule.id.clone(), respond: rule.spec.respond.clone(), delay_ms });
        }
        None
    }
}

/// What a later request must wait for: an answer that carried `Retry-After`.
#[derive(Debug, Clone)]
struct Owed {
    required_secs: u64,
    answered_ms: u64,
    status: u16,
}

/// Where the next request is expected: the same operation again, or (after a 202) its `Location`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Awaited {
    Operation(Operation),
    Location(String),
}

/// Whether one request waited as long as the answer before it asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryAfterVerdict {
    /// The request's operation.
    pub operation: Operation,
    /// Its path as sent.
    pub path: String,
    /// Who called (object id, app id or client id; empty when nothing says).
    pub caller: String,
    /// The status of the answer that carried `Retry-After`.
    pub after_status: u16,
    /// Seconds it asked for.
    pub required: u64,
    /// Real milliseconds between that answer and this request.
    pub waited_ms: u64,
    /// Whether the wait was long enough.
    pub honoured: bool,
}

/// The most verdicts kept per sandbox (oldest dropped first).
pub const MAX_VERDICTS: usize = 1000;

/// A sandbox's Retry-After bookkeeping: what each caller owes, and the verdicts so far.
#[derive(Debug, Default)]
pub struct RetryAfterBook {
    owed: HashMap<(String, Awaited), Owed>,
    verdicts: std::collections::VecDeque<RetryAfterVerdict>,
}

/// One exchange as the Retry-After check sees it.
#[derive(Debug)]
pub struct Exchanged<'a> {
    /// Operation.
    pub operation: Operation,
    /// Path as sent.
    pub path: &'a str,
    /// Who called.
    pub caller: String,
    /// Real milliseconds when the request arrived.
    pub arrived_ms: u64,
    /// Real milliseconds when it was answered.
    pub answered_ms: u64,
    /// The answer's status.
    pub status: u16,
    /// The answer's `Retry-After`, in seconds.
    pub retry_after: Option<u64>,
    /// The path of the answer's `Location`.
    pub location: Option<String>,
}

impl RetryAfterBook {
    /// Whether nothing is owed (the common case: nothing to judge).
    pub fn owes_nothing(&self) -> bool {
        self.owed.is_empty()
    }

    /// Judges `x` against what its caller owed, then records what its answer asks for.
    /// Only 429, 503 and 202 answers put a caller under an obligation.
    pub fn observe(&mut self, x: Exchanged<'_>) -> Option<RetryAfterVerdict> {
        let keys = [
            (x.caller.clone(), Awaited::Location(x.path.to_owned())),
            (x.caller.clone(), Awaited::Operation(x.operation)),
        ];
        let verdict = keys.iter().find_map(|k| self.owed.remove(k)).map(|owed| {
            let waited_ms = x.arrived_ms.saturating_sub(owed.answered_ms);
            RetryAfterVerdict {
                operation: x.operation,
                path: x.path.to_owned(),
                caller: x.caller.clone(),
                after_status: owed.status,
                required: owed.required_secs,
                waited_ms,
                honoured: waited_ms >= owed.required_secs.saturating_mul(1000),
            }
        });
        if let Some(v) = &verdict {
            if self.verdicts.len() >= MAX_VERDICTS {
                self.verdicts.pop_front();
            }
            self.verdicts.push_back(v.clone());
        }
        if let Some(required_secs) = x.retry_after {
            let awaited = match (x.status, x.location) {
                (202, Some(location)) => Some(Awaited::Location(location)),
                (429 | 503, _) => Some(Awaited::Operation(x.operation)),
                _ => None,
            };
            if let Some(a) = awaited {
                self.owed.insert((x.caller, a), Owed { required_secs, answered_ms: x.answered_ms, status: x.status });
            }
        }
        verdict
    }

    /// Every verdict so far, oldest first.
    pub fn verdicts(&self) -> impl Iterator<Item = &RetryAfterVerdict> {
        self.verdicts.iter()
    }

    /// Back to nothing (reset).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> FaultSpec {
        let s: FaultSpec = serde_json::from_value(v).unwrap();
        s.validate().unwrap();
        s
    }

    fn put(path: &str) -> FaultRequest<'_> {
        FaultRequest {
            operation: Operation::ConnectionsPut,
            method: "PUT",
            path,
            environment: Some("env-1"),
            callers: &|| vec!["app-1".into()],
            body: &|| Some(json!({"properties": {"connectionParametersSet": {"name": "x"}}})),
        }
    }

    #[test]
    fn globs_match_segments() {
        assert!(glob("/connectivity/**", "/connectivity/environments/e/connections"));
        assert!(glob("/connectivity/**", "/connectivity"));
        assert!(glob("/a/*/c", "/a/b/c"));
        assert!(!glob("/a/*/c", "/a/b/x/c"));
        assert!(glob("/a/**/c", "/a/b/x/c"));
        assert!(glob("/a/conn*", "/a/connections"));
        assert!(!glob("/a/*", "/a/b/c"));
    }

    #[test]
    fn containment_is_recursive() {
        let actual = json!({"a": {"b": 1, "c": [1, {"d": 2, "e": 3}]}, "f": "g"});
        assert!(contains(&actual, &json!({"a": {"c": [{"d": 2}]}})));
        assert!(!contains(&actual, &json!({"a": {"b": 2}})));
        assert!(!contains(&actual, &json!({"x": null})));
    }

    #[test]
    fn times_then_behave_and_every_nth() {
        let mut book = FaultBook::default();
        book.add(spec(json!({"match": {"operation": "connections.put"}, "respond": {"status": 429}, "times": 2})));
        let hits: Vec<bool> = (0..4).map(|_| book.decide(&put("/p")).is_some()).collect();
        assert_eq!(hits, [true, true, false, false]);
        assert_eq!(book.list()[0].remaining, Some(0));

        let mut book = FaultBook::default();
        book.add(spec(json!({"respond": {"status": 503}, "every": 3})));
        let hits: Vec<bool> = (0..6).map(|_| book.decide(&put("/p")).is_some()).collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
    }

    #[test]
    fn one_seed_one_sequence() {
        let roll = |seed: u64| {
            let mut book = FaultBook::default();
            book.add(spec(json!({"respond": {"status": 500, "delayMs": {"minMs": 1, "maxMs": 9}},
                                 "probability": 0.5, "seed": seed})));
            (0..64).map(|_| book.decide(&put("/p")).map(|h| h.delay_ms)).collect::<Vec<_>>()
        };
        assert_eq!(roll(7), roll(7));
        assert_ne!(roll(7), roll(8));
        let applied = roll(7).iter().filter(|h| h.is_some()).count();
        assert!((16..=48).contains(&applied), "about half: {applied}");
    }

    #[test]
    fn match_fields_and_order() {
        let mut book = FaultBook::default();
        book.add(spec(json!({"match": {"caller": "someone-else"}, "respond": {"status": 401}})));
        book.add(spec(json!({"match": {"method": "put", "path": "/connectivity/**", "environment": "ENV-1",
                                        "caller": "APP-1", "body": {"properties": {}}},
                             "respond": {"status": 409}})));
        book.add(spec(json!({"respond": {"status": 500}})));
        assert_eq!(book.decide(&put("/connectivity/x")).unwrap().rule, "fault-2");
        assert_eq!(book.decide(&put("/other")).unwrap().rule, "fault-3");
        assert!(book.remove("fault-3"));
        assert!(book.decide(&put("/other")).is_none());
    }

    #[test]
    fn validation_names_the_field() {
        for (bad, field) in [
            (json!({"match": {"operation": "nope"}, "respond": {"status": 500}}), "match.operation"),
            (json!({"respond": {"status": 99}}), "respond.status"),
            (json!({"respond": {}}), "respond"),
            (json!({"respond": {"status": 500}, "every": 0}), "every"),
            (json!({"respond": {"status": 500}, "probability": 2.0}), "probability"),
            (json!({"respond": {"delayMs": {"minMs": 5, "maxMs": 1}}}), "respond.delayMs"),
            (json!({"respond": {"status": 500, "headers": {"a b": "c"}}}), "respond.headers"),
        ] {
            let s: FaultSpec = serde_json::from_value(bad).unwrap();
            assert!(s.validate().unwrap_err().starts_with(field), "{field}");
        }
    }

    #[test]
    fn retry_after_is_judged_on_the_next_request_of_the_caller() {
        let mut book = RetryAfterBook::default();
        let x = |caller: &str, at: u64, status: u16, retry_after: Option<u64>| Exchanged {
            operation: Operation::ConnectionsPut,
            path: "/p",
            caller: caller.into(),
            arrived_ms: at,
            answered_ms: at,
            status,
            retry_after,
            location: None,
        };
        assert!(book.observe(x("a", 0, 429, Some(2))).is_none());
        assert!(book.observe(x("b", 100, 201, None)).is_none(), "another caller owes nothing");
        let v = book.observe(x("a", 500, 429, Some(2))).unwrap();
        assert!(!v.honoured);
        let v = book.observe(x("a", 2600, 201, None)).unwrap();
        assert!(v.honoured && v.waited_ms == 2100);
        assert!(book.owes_nothing());
    }
}
