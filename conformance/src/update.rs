//! `--update`: a case's observed requests written back as its `expect.requests`, in
//! default-world values, leaving the rest of the file as it was written (key order and
//! layout: the other members are copied as their original text).

use crate::case::{LoadedCase, RequestPattern};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// A JSON object's members in file order, each as its original text.
struct Ordered(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Ordered, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = m.next_entry::<String, Box<RawValue>>()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// The pattern a request gives: operation, method, routed path, query (without
/// `api-version`), body and status; redacted secrets become `"<any>"`.
pub fn pattern_of(observed: &Value) -> Value {
    let mut p = Map::new();
    for key in ["operation", "method", "path", "query", "body", "status"] {
        let v = observed.get(key).cloned().unwrap_or(Value::Null);
        let empty = v.is_null() || v.as_object().is_some_and(Map::is_empty);
        if !empty {
            p.insert(key.to_owned(), unredact(v));
        }
    }
    Value::Object(p)
}

fn unredact(v: Value) -> Value {
    match v {
        Value::String(s) if s.starts_with("<redacted:") => Value::String(crate::check::ANY.to_owned()),
        Value::Array(a) => Value::Array(a.into_iter().map(unredact).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, x)| (k, unredact(x))).collect()),
        other => other,
    }
}

/// Rewrites the case's file with `observed` (routed requests in default-world values) as its
/// `expect.requests`.
pub fn write_requests(case: &LoadedCase, observed: &[Value]) -> Result<(), String> {
    let path = case.path.as_ref().ok_or_else(|| format!("{}: --update needs the case's file on disk", case.file))?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    let updated = with_requests(&text, observed).map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(path, updated).map_err(|e| format!("{}: cannot write: {e}", path.display()))
}

/// The file text with `expect.requests` replaced (2-space indentation assumed, as the
/// catalog is written).
pub fn with_requests(text: &str, observed: &[Value]) -> Result<String, String> {
    let top: Ordered = serde_json::from_str(text).map_err(|e| e.to_string())?;
    // Through the typed pattern, so that its fields come in the documented order.
    let patterns: Vec<RequestPattern> = observed
        .iter()
        .map(|o| serde_json::from_value(pattern_of(o)).map_err(|e| format!("an observed request: {e}")))
        .collect::<Result<_, _>>()?;
    let requests = indent(&serde_json::to_string_pretty(&patterns).map_err(|e| e.to_string())?, 4);
    let mut members: Vec<(String, String)> = top.0.into_iter().map(|(k, v)| (k, v.get().to_owned())).collect();
    let expect = match members.iter().position(|(k, _)| k == "expect") {
        Some(i) => {
            let inner: Ordered = serde_json::from_str(&members[i].1).map_err(|e| format!("expect: {e}"))?;
            let mut inner: Vec<(String, String)> = inner.0.into_iter().map(|(k, v)| (k, v.get().to_owned())).collect();
            match inner.iter_mut().find(|(k, _)| k == "requests") {
                Some(r) => r.1 = requests,
                None => inner.insert(0, ("requests".into(), requests)),
            }
            members[i].1 = object(&inner, 2);
            None
        }
        None => Some(("expect".to_owned(), object(&[("requests".to_owned(), requests)], 2))),
    };
    members.extend(expect);
    Ok(object(&members, 0) + "\n")
}

fn object(members: &[(String, String)], depth: usize) -> String {
    let pad = " ".repeat(depth + 2);
    let body: Vec<String> =
        members.iter().map(|(k, v)| format!("{pad}{}: {v}", serde_json::to_string(k).unwrap_or_default())).collect();
    format!("{{\n{}\n{}}}", body.join(",\n"), " ".repeat(depth))
}

fn indent(s: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    s.lines()
        .enumerate()
        .map(|(i, l)| if i == 0 { l.to_owned() } else { format!("{pad}{l}") })
        .collect::<Vec<_>>()
        .join("\n")
}
