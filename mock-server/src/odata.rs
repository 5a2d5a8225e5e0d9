//! The small OData subset the Dataverse surface needs: `$select`, `$filter` (`eq`/`ne`
//! comparisons joined by `and`), `$top`, `$orderby`, `$count`, and server-driven paging
//! (`Prefer: odata.maxpagesize` → `@odata.nextLink` with a `$skiptoken`). Pure: rows in,
//! page out. Anything outside the subset is refused by name, never silently ignored.

use serde_json::{Map, Value};
use uuid::Uuid;

/// Dataverse's code for a malformed query (`0x80060888`).
pub const BAD_QUERY: &str = "0x80060888";

/// A refused query: code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ODataError {
    /// Dataverse error code.
    pub code: &'static str,
    /// Message naming what is wrong.
    pub message: String,
}

fn bad(message: impl Into<String>) -> ODataError {
    ODataError { code: BAD_QUERY, message: message.into() }
}

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `'text'`.
    Str(String),
    /// An unquoted GUID.
    Guid(Uuid),
    /// A number.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
}

/// One comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Property.
    pub field: String,
    /// `true` for `ne`.
    pub negated: bool,
    /// Value.
    pub value: Literal,
}

/// Parsed query options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// `$select`.
    pub select: Option<Vec<String>>,
    /// `$filter`: comparisons that must all hold.
    pub filter: Vec<Comparison>,
    /// `$top`.
    pub top: Option<usize>,
    /// `$orderby`: (property, descending).
    pub orderby: Vec<(String, bool)>,
    /// `$count=true`.
    pub count: bool,
    /// `$skiptoken` (the mock's: an offset).
    pub skip: usize,
}

/// Parses the query options of a request. Unknown `$` options are refused; other parameters
/// are ignored (clients add their own).
pub fn parse_query(pairs: &[(String, String)]) -> Result<Query, ODataError> {
    let mut q = Query::default();
    for (k, v) in pairs {
        match k.as_str() {
            "$select" => q.select = Some(v.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()),
            "$filter" => q.filter = parse_filter(v)?,
            "$top" => {
                q.top = Some(
                    v.trim()
                        .parse()
                        .map_err(|_| bad(format!("The value '{v}' of $top is not a non-negative integer.")))?,
                )
            }
            "$orderby" => {
                for part in v.split(',') {
                    let mut words = part.split_whitespace();
                    let field = words.next().ok_or_else(|| bad("$orderby names no property."))?.to_owned();
                    let desc = match words.next() {
                        None | Some("asc") => false,
                        Some("desc") => true,
                        Some(other) => return Err(bad(format!("'{other}' in $orderby must be asc or desc."))),
                    };
                    q.orderby.push((field, desc));
                }
            }
            "$count" => q.count = v == "true",
            "$skiptoken" => {
                q.skip = v.parse().map_err(|_| bad(format!("The $skiptoken '{v}' was not issued by this server.")))?
            }
            "$expand" | "$apply" | "$search" | "$skip" => {
                return Err(ODataError {
                    code: "0x8006088a",
                    message: format!("The query option '{k}' is not implemented by the mock on this table."),
                });
            }
            other if other.starts_with('$') => {
                return Err(bad(format!("The query parameter '{other}' is not supported.")));
            }
            _ => {}
        }
    }
    Ok(q)
}

/// Parses `a eq 'x' and b ne 1`; parentheses around the whole or around a comparison are allowed.
pub fn parse_filter(text: &str) -> Result<Vec<Comparison>, ODataError> {
    let mut out = Vec::new();
    let tokens = tokenize(text)?;
    let mut i = 0;
    while i < tokens.len() {
        let field = tokens.get(i).cloned().ok_or_else(|| bad("The $filter is empty."))?;
        let op = tokens.get(i + 1).ok_or_else(|| bad(format!("'{field}' in $filter has no operator.")))?;
        let negated = match op.as_str() {
            "eq" => false,
            "ne" => true,
            other => {
                return Err(bad(format!(
                    "The $filter operator '{other}' is not supported by the mock (eq, ne and 'and' are)."
                )));
            }
        };
        let raw = tokens.get(i + 2).ok_or_else(|| bad(format!("'{field} {op}' in $filter has no value.")))?;
        if !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || field.is_empty() {
            return Err(bad(format!("'{field}' is not a property name.")));
        }
        out.push(Comparison { field, negated, value: literal(raw)? });
        i += 3;
        match tokens.get(i).map(String::as_str) {
            None => break,
            Some("and") => i += 1,
            Some("or") => return Err(bad("'or' in $filter is not supported by the mock; 'and' is.")),
            Some(other) => return Err(bad(format!("Syntax error at '{other}' in $filter."))),
        }
        if i >= tokens.len() {
            return Err(bad("The $filter ends with 'and'."));
        }
    }
    if out.is_empty() {
        return Err(bad("The $filter is empty."));
    }
    Ok(out)
}

/// Splits on spaces outside quotes; drops grouping parentheses (only `and` is supported, so
/// grouping cannot change the meaning).
fn tokenize(text: &str) -> Result<Vec<String>, ODataError> {
    let mut tokens = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                cur.push('\'');
                loop {
                    match chars.next() {
                        Some('\'') if chars.peek() == Some(&'\'') => {
                            chars.next();
                            cur.push_str("''");
                        }
                        Some('\'') => {
                            cur.push('\'');
                            break;
                        }
                        Some(ch) => cur.push(ch),
                        None => return Err(bad("A string in $filter is not closed.")),
                    }
                }
            }
            '(' | ')' => {}
            c if c.is_whitespace() => {
                if !cur.is_empty() {
                    tokens.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    Ok(tokens)
}

fn literal(raw: &str) -> Result<Literal, ODataError> {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Ok(Literal::Str(inner.replace("''", "'")));
    }
    match raw {
        "null" => return Ok(Literal::Null),
        "true" => return Ok(Literal::Bool(true)),
        "false" => return Ok(Literal::Bool(false)),
        _ => {}
    }
    if raw.len() == 36
        && let Ok(u) = Uuid::try_parse(raw)
    {
        return Ok(Literal::Guid(u));
    }
    raw.parse::<f64>()
        .map(Literal::Num)
        .map_err(|_| bad(format!("'{raw}' in $filter is not a literal (quote strings: 'text').")))
}

fn matches(v: Option<&Value>, lit: &Literal) -> bool {
    match (v.unwrap_or(&Value::Null), lit) {
        (Value::Null, Literal::Null) => true,
        // String comparison in Dataverse is case-insensitive.
        (Value::String(s), Literal::Str(l)) => s.to_lowercase() == l.to_lowercase(),
        (Value::String(s), Literal::Guid(g)) => Uuid::try_parse(s).is_ok_and(|u| u == *g),
        (Value::Number(n), Literal::Num(l)) => n.as_f64() == Some(*l),
        (Value::Bool(b), Literal::Bool(l)) => b == l,
        _ => false,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (a.unwrap_or(&Value::Null), b.unwrap_or(&Value::Null)) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::String(x), Value::String(y)) => x.to_lowercase().cmp(&y.to_lowercase()),
        (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Ordering::Equal),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Rows (projected).
    pub rows: Vec<Map<String, Value>>,
    /// Total matching (for `$count`).
    pub count: usize,
    /// Offset of the next page, when there is one.
    pub next_skip: Option<usize>,
}

/// Applies a query to rows of an entity. `properties` are the entity's properties (others are
/// refused by name); `key` is always kept; `max_page` comes from `Prefer: odata.maxpagesize`.
pub fn apply(
    rows: Vec<Map<String, Value>>,
    q: &Query,
    entity: &str,
    properties: &[&str],
    key: &str,
    max_page: Option<usize>,
) -> Result<Page, ODataError> {
    let known = |f: &str| properties.contains(&f);
    let unknown =
        |f: &str| bad(format!("Could not find a property named '{f}' on type 'Microsoft.Dynamics.CRM.{entity}'."));
    for f in q.select.iter().flatten().chain(q.filter.iter().map(|c| &c.field)).chain(q.orderby.iter().map(|(f, _)| f))
    {
        if !known(f) {
            return Err(unknown(f));
        }
    }
    let mut rows: Vec<_> =
        rows.into_iter().filter(|r| q.filter.iter().all(|c| matches(r.get(&c.field), &c.value) != c.negated)).collect();
    for (field, desc) in q.orderby.iter().rev() {
        rows.sort_by(|a, b| {
            let o = compare(a.get(field), b.get(field));
            if *desc { o.reverse() } else { o }
        });
    }
    if let Some(top) = q.top {
        rows.truncate(top);
    }
    let count = rows.len();
    let page_size = max_page.filter(|n| *n > 0).unwrap_or(5000);
    let end = (q.skip + page_size).min(rows.len());
    let next_skip = (end < rows.len()).then_some(end);
    let rows = rows
        .into_iter()
        .skip(q.skip)
        .take(page_size)
        .map(|r| match &q.select {
            None => r,
            Some(sel) => {
                r.into_iter().filter(|(k, _)| k == key || k.starts_with("@odata") || sel.contains(k)).collect()
            }
        })
        .collect();
    Ok(Page { rows, count, next_skip })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rows() -> Vec<Map<String, Value>> {
        [
            ("b", 2, "42e26112-838c-471b-b09f-958e640e9303"),
            ("A", 1, "42e26112-838c-471b-b09f-958e640e9303"),
            ("c", 3, "fbd9ef90-eb39-437b-a791-919993c57260"),
        ]
        .into_iter()
        .map(|(n, v, g)| {
            json!({ "id": n, "name": n, "n": v, "_flowmachinegroupid_value": g }).as_object().unwrap().clone()
        })
        .collect()
    }

    const PROPS: &[&str] = &["id", "name", "n", "_flowmachinegroupid_value"];

    fn q(pairs: &[(&str, &str)]) -> Result<Query, ODataError> {
        parse_query(&pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect::<Vec<_>>())
    }

    #[test]
    fn filter_select_orderby_and_top_compose() {
        let query = q(&[
            ("$filter", "_flowmachinegroupid_value eq 42e26112-838c-471b-b09f-958e640e9303 and name ne 'zzz'"),
            ("$select", "name"),
            ("$orderby", "name desc"),
            ("$top", "5"),
        ])
        .unwrap();
        let page = apply(rows(), &query, "flowmachine", PROPS, "id", None).unwrap();
        let names: Vec<_> = page.rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
        assert_eq!(names, vec!["b", "A"]);
        assert!(page.rows[0].get("n").is_none(), "only selected properties and the key");
        assert!(page.rows[0].get("id").is_some());
    }

    #[test]
    fn string_equality_is_case_insensitive_and_quotes_escape() {
        let page = apply(rows(), &q(&[("$filter", "name eq 'a'")]).unwrap(), "e", PROPS, "id", None).unwrap();
        assert_eq!(page.count, 1);
        assert_eq!(parse_filter("name eq 'O''Brien'").unwrap()[0].value, Literal::Str("O'Brien".into()));
    }

    #[test]
    fn paging_hands_out_next_links_until_the_last_page() {
        let query = q(&[("$orderby", "n")]).unwrap();
        let first = apply(rows(), &query, "e", PROPS, "id", Some(2)).unwrap();
        assert_eq!((first.rows.len(), first.next_skip), (2, Some(2)));
        let second = apply(rows(), &Query { skip: 2, ..query }, "e", PROPS, "id", Some(2)).unwrap();
        assert_eq!((second.rows.len(), second.next_skip), (1, None));
        assert_eq!(second.rows[0]["name"], "c");
    }

    #[test]
    fn unknown_properties_and_unsupported_syntax_are_refused_by_name() {
        let e = apply(rows(), &q(&[("$select", "nope")]).unwrap(), "flowmachine", PROPS, "id", None).unwrap_err();
        assert_eq!(e.message, "Could not find a property named 'nope' on type 'Microsoft.Dynamics.CRM.flowmachine'.");
        assert!(q(&[("$filter", "name eq 'a' or n eq 1")]).unwrap_err().message.contains("'or'"));
        assert!(q(&[("$filter", "contains(name,'a')")]).is_err());
        assert!(q(&[("$filter", "name eq 'open")]).is_err());
        assert!(q(&[("$top", "-1")]).is_err());
        assert!(q(&[("$expand", "x")]).is_err());
    }
}
