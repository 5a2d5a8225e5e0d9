//! The one normaliser (DECISIONS.md): used by the journal's normalised view, the project's
//! insta snapshots and the conformance runner, so that all three agree on what "the same
//! request" means.
//!
//! It sorts object keys and replaces volatile values with typed, identity-preserving
//! placeholders: the same GUID gets the same `<group-id:1>` everywhere in one normalisation,
//! whether written hyphenated, as 32 hex digits, or as an environment host prefix. The kind
//! comes from the field or path segment the GUID sits in; `<guid:N>` where unknown. Times
//! become `<time:N>`, JWTs `<token:N>`, redaction marks `<redacted:KIND:N>` (their hashes
//! are keyed per process), and loopback ports `<loopback>`.

use serde_json::{Map, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// Normalises a batch of values with one shared numbering.
pub fn normalise_all(values: &[Value]) -> Vec<Value> {
    let mut n = Normaliser::default();
    for v in values {
        n.classify(v, None, None);
    }
    values.iter().map(|v| n.render(v, None)).collect()
}

/// Normalises one value.
pub fn normalise(value: &Value) -> Value {
    normalise_all(std::slice::from_ref(value)).remove(0)
}

#[derive(Default)]
struct Normaliser {
    /// GUID → kind, the most specific kind seen wins over `guid`.
    kinds: HashMap<Uuid, &'static str>,
    /// (kind, GUID) → number, in order of first appearance.
    numbers: HashMap<(&'static str, Uuid), usize>,
    counters: HashMap<&'static str, usize>,
    /// Other volatile values (times, tokens, redaction marks) → placeholder.
    others: HashMap<String, String>,
}

/// Kind of a GUID by the field that holds it.
fn kind_of_key(key: &str) -> Option<&'static str> {
    let k: String = key.chars().filter(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
    Some(match k.as_str() {
        "tid" | "tenantid" | "utid" | "tenant" | "hometenantid" => "tenant-id",
        "oid" | "objectid" | "principalid" | "uid" | "sub" | "azureactivedirectoryobjectid" => "object-id",
        "appid" | "azp" | "clientid" | "applicationid" => "app-id",
        "targetid" | "flowmachinegroupid" | "machinegroupid" | "groupid" | "flowmachinegroupidvalue" => "group-id",
        "flowmachineid" | "machineid" => "machine-id",
        "connectionid" | "connectionname" => "connection-id",
        "environmentid" | "environmentname" => "environment-id",
        "systemuserid" | "ownerid" | "owneridvalue" => "systemuser-id",
        "organizationid" => "organization-id",
        "correlationid" | "xmscorrelationid" | "xcorrelationid" => "correlation-id",
        "traceid" => "trace-id",
        "requestid" | "xmsclientrequestid" | "uti" => "request-id",
        "flowsessionid" => "flowsession-id",
        _ => return None,
    })
}

/// Kind of a GUID by the path segment before it (`environments/{id}`, `flowmachines({id})`).
fn kind_of_segment(seg: &str) -> Option<&'static str> {
    let s = seg.trim_end_matches(['/', '(']).rsplit('/').next().unwrap_or("").to_ascii_lowercase();
    Some(match s.as_str() {
        "environments" | "uiflow" => "environment-id",
        "connections" => "connection-id",
        "flowmachinegroups" | "machinegroups" => "group-id",
        "flowmachines" | "machines" => "machine-id",
        "systemusers" => "systemuser-id",
        "permissions" => "permission-id",
        "flowsessions" => "flowsession-id",
        "tenants" => "tenant-id",
        _ => return None,
    })
}

/// A GUID found inside a string: byte range, value, kind guess from its surroundings.
fn find_guids(s: &str) -> Vec<(usize, usize, Uuid, Option<&'static str>)> {
    let b = s.as_bytes();
    let hex = |i: usize| i < b.len() && b[i].is_ascii_hexdigit();
    let boundary = |i: usize| i >= b.len() || !(b[i].is_ascii_alphanumeric() || b[i] == b'-');
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'-');
        if before_ok && hex(i) {
            // Hyphenated form.
            if let Some(cand) = s.get(i..i + 36).filter(|c| boundary(i + 36) && c.contains('-'))
                && let Ok(u) = Uuid::try_parse(cand)
            {
                out.push((i, i + 36, u, context_kind(s, i, i + 36)));
                i += 36;
                continue;
            }
            // 32-hex form.
            if let Some(cand) = s.get(i..i + 32).filter(|_| boundary(i + 32) && (i..i + 32).all(hex))
                && let Ok(u) = Uuid::try_parse(cand)
            {
                out.push((i, i + 32, u, context_kind(s, i, i + 32)));
                i += 32;
                continue;
            }
            // Environment host prefix: 30 hex, '.', 2 hex.
            if i + 33 <= b.len()
                && (i..i + 30).all(hex)
                && b[i + 30] == b'.'
                && hex(i + 31)
                && hex(i + 32)
                && boundary(i + 33)
            {
                let flat = format!("{}{}", &s[i..i + 30], &s[i + 31..i + 33]);
                if let Ok(u) = Uuid::try_parse(&flat) {
                    out.push((i, i + 33, u, Some("environment-id")));
                    i += 33;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

fn context_kind(s: &str, start: usize, end: usize) -> Option<&'static str> {
    let rest = &s[end..];
    if ["/oauth2", "/v2.0", "/discovery"].iter().any(|p| rest.starts_with(p)) {
        return Some("tenant-id");
    }
    kind_of_segment(&s[..start])
}

fn is_time(s: &str) -> bool {
    (s.len() >= 19 && chrono::DateTime::parse_from_rfc3339(s).is_ok())
        || chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%SZ").is_ok()
}

/// Replaces `127.0.0.1:PORT`, `localhost:PORT` and `[::1]:PORT` by `<loopback>`, and the
/// port after any other host name (`….powerplatform.com:38833`) by `<port>`: ports are
/// picked at random by tests, so they are never part of a request's substance.
fn mask_ports(s: &str) -> String {
    let s = mask_loopback(s);
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    let mut i = 1;
    while i < b.len() {
        if b[i] == b':' && b[i - 1].is_ascii_alphabetic() {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let ends = b.get(i + 1 + digits).is_none_or(|c| !c.is_ascii_alphanumeric());
            if (1..=5).contains(&digits) && ends {
                out.push_str(&s[last..=i]);
                out.push_str("<port>");
                last = i + 1 + digits;
                i = last;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&s[last..]);
    out
}

fn mask_loopback(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    'outer: while !rest.is_empty() {
        for host in ["127.0.0.1:", "localhost:", "[::1]:"] {
            if let Some(after) = rest.strip_prefix(host) {
                let digits = after.bytes().take_while(u8::is_ascii_digit).count();
                if digits > 0 {
                    out.push_str("<loopback>");
                    rest = &after[digits..];
                    continue 'outer;
                }
            }
        }
        let ch = rest.chars().next().unwrap_or_default();
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

impl Normaliser {
    fn note(&mut self, u: Uuid, kind: Option<&'static str>) {
        let k = kind.unwrap_or("guid");
        let e = self.kinds.entry(u).or_insert(k);
        if *e == "guid" {
            *e = k;
        }
    }

    fn classify(&mut self, v: &Value, key: Option<&str>, parent: Option<&str>) {
        match v {
            Value::String(s) => {
                // `{"targetId":{"value":GUID}}`: the parent names the value.
                let field_kind = match key {
                    Some("value" | "name") => parent.and_then(kind_of_key).or(key.and_then(kind_of_key)),
                    Some("id") if matches!(parent, Some("createdBy" | "principal")) => Some("object-id"),
                    Some(k) => kind_of_key(k),
                    None => None,
                };
                for (_, _, u, ctx) in find_guids(s) {
                    self.note(u, ctx.or(field_kind));
                }
            }
            Value::Array(items) => items.iter().for_each(|i| self.classify(i, key, parent)),
            Value::Object(map) => {
                for (k, item) in sorted(map) {
                    self.classify(item, Some(k), key);
                }
            }
            _ => {}
        }
    }

    fn placeholder(&mut self, u: Uuid) -> String {
        let kind = self.kinds.get(&u).copied().unwrap_or("guid");
        let next = self.counters.get(kind).copied().unwrap_or(0) + 1;
        let n = *self.numbers.entry((kind, u)).or_insert_with(|| next);
        if n == next {
            self.counters.insert(kind, next);
        }
        format!("<{kind}:{n}>")
    }

    fn other(&mut self, kind: &str, value: &str) -> String {
        if let Some(p) = self.others.get(value) {
            return p.clone();
        }
        let counter = self.counters.entry(leak_kind(kind)).or_insert(0);
        *counter += 1;
        let p = format!("<{kind}:{counter}>");
        self.others.insert(value.to_owned(), p.clone());
        p
    }

    fn render_str(&mut self, s: &str) -> String {
        if is_time(s) {
            return self.other("time", s);
        }
        if crate::tokens::looks_like_jwt(s) {
            return self.other("token", s);
        }
        let s = &self.render_embedded_times(&mask_ports(s));
        let mut out = String::new();
        let mut last = 0;
        for (start, end, u, _) in find_guids(s) {
            out.push_str(&s[last..start]);
            out.push_str(&self.placeholder(u));
            last = end;
        }
        out.push_str(&s[last..]);
        self.render_redactions(&out)
    }

    /// Entra's `error_description` ends with a `Timestamp: …` line in real time: it gets the
    /// same placeholder as the envelope's `timestamp` field.
    fn render_embedded_times(&mut self, s: &str) -> String {
        const LABEL: &str = "Timestamp: ";
        const LEN: usize = "2025-01-06 09:00:00Z".len();
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find(LABEL) {
            let after = i + LABEL.len();
            out.push_str(&rest[..after]);
            match rest.get(after..after + LEN).filter(|t| is_time(t)) {
                Some(time) => {
                    out.push_str(&self.other("time", time));
                    rest = &rest[after + LEN..];
                }
                None => rest = &rest[after..],
            }
        }
        out.push_str(rest);
        out
    }

    /// `<redacted:KIND:H>` → `<redacted:KIND:N>`, numbered per kind by distinct H.
    fn render_redactions(&mut self, s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("<redacted:") {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            let Some(close) = tail.find('>') else {
                out.push_str(tail);
                return out;
            };
            let mark = &tail[..=close];
            let inner = &mark[10..mark.len() - 1];
            let kind = inner.rsplit_once(':').map_or(inner, |(k, _)| k);
            out.push_str(&self.other(&format!("redacted:{kind}"), mark));
            rest = &tail[close + 1..];
        }
        out.push_str(rest);
        out
    }

    fn render(&mut self, v: &Value, key: Option<&str>) -> Value {
        match v {
            Value::String(s) => Value::String(self.render_str(s)),
            Value::Number(_) if key == Some("realMs") => Value::String("<real-ms>".into()),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.render(i, key)).collect()),
            Value::Object(map) => {
                let mut out = Map::new();
                for (k, item) in sorted(map) {
                    let rendered = self.render(item, Some(k));
                    out.insert(k.clone(), rendered);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

/// Counters for `other` placeholders are keyed by a static name per family.
fn leak_kind(kind: &str) -> &'static str {
    match kind {
        "time" => "time",
        "token" => "token",
        k if k.starts_with("redacted:password") => "redacted:password",
        k if k.starts_with("redacted:client_secret") => "redacted:client_secret",
        k if k.starts_with("redacted:token") => "redacted:token",
        k if k.starts_with("redacted:certificate") => "redacted:certificate",
        _ => "redacted:other",
    }
}

/// Keys in canonical (byte) order, whatever map implementation serde_json was built with.
fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entra_timestamp_line_gets_the_placeholder_of_the_timestamp_field() {
        let v = json!({
            "error_description": "AADSTS90002: x.\r\nTimestamp: 2026-11-28 18:41:10Z",
            "timestamp": "2026-11-28 18:41:10Z",
        });
        let n = normalise(&v);
        assert_eq!(n["error_description"], "AADSTS90002: x.\r\nTimestamp: <time:1>");
        assert_eq!(n["timestamp"], "<time:1>");
    }

    #[test]
    fn the_same_guid_gets_the_same_placeholder_in_every_form() {
        let v = json!({
            "path": "/connectivity/environments/37520647-dbdf-49fa-ba01-6134c14680c4/connectors/shared_uiflow/connections/d4e4a6ff9a67492aa1f6de854528668c",
            "host": "37520647dbdf49faba016134c14680.c4.environment.api.powerplatform.com",
            "body": {"properties": {"connectionParametersSet": {"values": {"targetId": {"value": "FBD9EF90-EB39-437B-A791-919993C57260"}}}}},
            "again": "d4e4a6ff-9a67-492a-a1f6-de854528668c"
        });
        let n = normalise(&v);
        assert_eq!(
            n["path"],
            "/connectivity/environments/<environment-id:1>/connectors/shared_uiflow/connections/<connection-id:1>"
        );
        assert_eq!(n["host"], "<environment-id:1>.environment.api.powerplatform.com");
        assert_eq!(n["body"]["properties"]["connectionParametersSet"]["values"]["targetId"]["value"], "<group-id:1>");
        assert_eq!(n["again"], "<connection-id:1>");
    }

    #[test]
    fn times_tokens_redactions_and_ports_are_replaced_identity_preserving() {
        let v = json!([
            {"t": "2025-01-06T09:00:00Z", "u": "2025-01-06T09:00:00Z", "s": "<redacted:password:ab12cd34>", "o": "https://127.0.0.1:41234/x"},
            {"t": "2025-01-06T10:00:00Z", "s": "<redacted:password:ffffffff>", "realMs": 12}
        ]);
        let n = normalise(&v);
        assert_eq!(n[0]["t"], "<time:1>");
        assert_eq!(n[0]["u"], "<time:1>");
        assert_eq!(n[1]["t"], "<time:2>");
        assert_eq!(n[0]["s"], "<redacted:password:1>");
        assert_eq!(n[1]["s"], "<redacted:password:2>");
        assert_eq!(n[0]["o"], "https://<loopback>/x");
        let hosts =
            normalise(&json!("https://a.environment.api.powerplatform.com:38833/x at 09:00:00Z, urn:ietf:params"));
        assert_eq!(hosts, "https://a.environment.api.powerplatform.com:<port>/x at 09:00:00Z, urn:ietf:params");
        assert_eq!(n[1]["realMs"], "<real-ms>");
    }

    #[test]
    fn text_with_multibyte_characters_near_a_guid_is_handled() {
        let s = "…/p…c7263f1a-afcd-4e8a-a7ce-66b19698caaa…and more text with … here, long enough to pass 36 bytes";
        let n = normalise(&json!({ "m": s }));
        assert!(n["m"].as_str().unwrap().contains("<guid:1>"));
        for cut in 0..s.len() {
            if let Some(prefix) = s.get(..cut) {
                normalise(&json!(prefix));
            }
        }
    }

    #[test]
    fn keys_come_out_sorted() {
        let n = normalise(&json!({"b": 1, "a": {"d": 1, "c": 2}}));
        assert_eq!(serde_json::to_string(&n).unwrap(), r#"{"a":{"c":2,"d":1},"b":1}"#);
    }

    #[test]
    fn a_tenant_in_an_authority_path_is_a_tenant() {
        let n = normalise(&json!({"path": "/c7263f1a-afcd-4e8a-a7ce-66b19698caaa/oauth2/v2.0/token"}));
        assert_eq!(n["path"], "/<tenant-id:1>/oauth2/v2.0/token");
    }
}
