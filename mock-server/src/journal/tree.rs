//! A JSON body as the redactor walks it: what `serde_json::Value` would hold, but borrowing
//! every string without escapes from the body and keeping an object's members in a sorted
//! vector instead of a `BTreeMap` of owned keys. It serialises to exactly the text the
//! `Value` would (same members, same order, same number and string forms), so the journal's
//! stored text is unchanged while a body costs a fraction of the allocations.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Number, Value};
use std::borrow::Cow;

/// One JSON value; see the module's note.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    /// Members sorted by key, each key once (the last of duplicates, as `Value` keeps).
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

/// The key serde_json's `Value` treats as a raw value's marker rather than a member: a body
/// using it is left to `Value` (see [`Json::parse`]).
pub(super) const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'a> Json<'a> {
    /// Parses `bytes` as `serde_json::from_slice::<Value>` would: `None` exactly when that fails.
    pub(super) fn parse(bytes: &'a [u8]) -> Option<Self> {
        match serde_json::from_slice::<Json<'a>>(bytes) {
            Ok(json) => Some(json),
            // Rare shapes (the raw-value marker key) go through `Value` itself.
            Err(_) => serde_json::from_slice::<Value>(bytes).ok().map(Json::from),
        }
    }

    /// Its JSON text, as `serde_json::to_string` of the equivalent `Value`.
    pub(super) fn to_raw(&self) -> Box<serde_json::value::RawValue> {
        // Serialising plain data cannot fail.
        serde_json::value::to_raw_value(self)
            .unwrap_or_else(|_| serde_json::value::to_raw_value(&Value::Null).expect("null serialises"))
    }
}

impl From<Value> for Json<'_> {
    fn from(v: Value) -> Self {
        match v {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(b),
            Value::Number(n) => Json::Number(n),
            Value::String(s) => Json::String(Cow::Owned(s)),
            Value::Array(items) => Json::Array(items.into_iter().map(Json::from).collect()),
            Value::Object(map) => Json::Object(map.into_iter().map(|(k, v)| (Cow::Owned(k), Json::from(v))).collect()),
        }
    }
}

impl Serialize for Json<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Mirrors `Value`'s `Serialize`, so both give the same text.
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => serializer.collect_seq(items),
            Json::Object(members) => {
                let mut map = serializer.serialize_map(Some(members.len()))?;
                for (k, v) in members {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

/// A key, borrowed when the body holds it without escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // As `Value`: a number that is not finite becomes null.
        Ok(Number::from_f64(v).map_or(Json::Null, Json::Number))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::String(Cow::Owned(v)))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Deserialize::deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members: Vec<(Cow<'de, str>, Json<'de>)> = Vec::new();
        let mut sorted = true;
        while let Some(Key(key)) = map.next_key()? {
            if key == RAW_VALUE_TOKEN {
                return Err(de::Error::custom("the raw-value marker: left to Value"));
            }
            let value = map.next_value()?;
            sorted &= members.last().is_none_or(|(last, _)| *last < key);
            members.push((key, value));
        }
        if !sorted {
            // As a `BTreeMap`: by key, and the last of equal keys wins (the sort is stable).
            members.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<(Cow<'de, str>, Json<'de>)> = Vec::with_capacity(members.len());
            for member in members {
                match kept.last_mut() {
                    Some(last) if last.0 == member.0 => *last = member,
                    _ => kept.push(member),
                }
            }
            members = kept;
        }
        Ok(Json::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same_as_value(text: &str) {
        let value = serde_json::from_str::<Value>(text).ok();
        let json = Json::parse(text.as_bytes());
        assert_eq!(json.as_ref().map(|j| j.to_raw().get().to_owned()), value.as_ref().map(Value::to_string), "{text}");
    }

    #[test]
    fn a_body_reads_and_writes_as_a_value_would() {
        for text in [
            r#"{"b":1,"a":[true,null,-2,3.5e3,1E2,-0,0.1],"c":{"z":"\u0041\n/","y":"é\u00e9"}}"#,
            r#"{"k":1,"k":2,"a":{"x":1},"a":"last"}"#,
            r#" [ "x" , { } , [ ] ] "#,
            r#""just a string""#,
            r#"{"$serde_json::private::RawValue":"1"}"#,
            r#"{"$serde_json::private::RawValue":1}"#,
            r#"{"a":1e400}"#,
            r#"{"a":18446744073709551616,"b":-9223372036854775809,"c":18446744073709551615}"#,
            "{\"a\":\"\\ud83d\\ude00\",\"\\u0062\":2}",
            r#"{"a":1,}"#,
            "",
            "nul",
        ] {
            same_as_value(text);
        }
    }
}
