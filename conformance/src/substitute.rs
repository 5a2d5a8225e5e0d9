//! `save` and `${name.field}`: a client step's result kept under a name, and whole strings of
//! later args and expectations replaced by one of its fields (a dotted path:
//! `${r.outputs.total}`, array indexes as numbers).

use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The results kept so far in one case, by `save` name.
pub type Saved = BTreeMap<String, Value>;

/// `(name, field path)` when `s` is a whole-string reference `${name.field}` (or `${name}`).
pub fn reference(s: &str) -> Option<(&str, &str)> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    let (name, path) = inner.split_once('.').unwrap_or((inner, ""));
    let ok = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    ok.then_some((name, path))
}

/// Calls `f` on every string in `v` (object keys excluded).
pub fn visit_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|x| visit_strings(x, f)),
        Value::Object(o) => o.values().for_each(|x| visit_strings(x, f)),
        _ => {}
    }
}

/// `v` with every `${name.field}` replaced by that saved value; an error names the reference
/// that cannot be resolved.
pub fn substitute(v: &Value, saved: &Saved) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => match reference(s) {
            Some((name, path)) => {
                let base = saved.get(name).ok_or_else(|| format!("'{s}': no step saved '{name}'"))?;
                lookup(base, path)
                    .cloned()
                    .ok_or_else(|| format!("'{s}': the result saved as '{name}' has no '{path}'"))?
            }
            None => v.clone(),
        },
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, saved)).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                out.insert(k.clone(), substitute(x, saved)?);
            }
            Value::Object(out)
        }
        _ => v.clone(),
    })
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(v);
    }
    path.split('.').try_fold(v, |at, key| match at {
        Value::Object(o) => o.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}
