//! Cases are written in the default world's values; each runs in a sandbox whose ids, hosts,
//! UPNs and secrets instantiation rewrote. [`WorldMap`] is that rewrite as string
//! replacements, learnt by walking the default world and the sandbox's world in parallel:
//! every string that differs gives a pair (its 32-hex and environment-host forms too, for
//! GUIDs), and any string of a case that equals or contains a default-world value is
//! rewritten the same way. [`WorldMap::back`] undoes it (`--update`).

use aho_corasick::{AhoCorasick, MatchKind};
use fixtures::WorldFile;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One direction of the rewrite.
#[derive(Debug, Clone)]
pub struct Rewrite {
    pairs: Vec<(String, String)>,
    /// Whole strings that instantiation kept as they are although they contain a rewritten
    /// value (`rpa@contoso.onmicrosoft.com`, a Windows account): never rewritten.
    kept: BTreeSet<String>,
    matcher: Option<AhoCorasick>,
}

impl Rewrite {
    fn new(pairs: BTreeMap<String, String>, kept: BTreeSet<String>) -> Self {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        let matcher = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(pairs.iter().map(|(from, _)| from.as_str()))
            .ok();
        Self { pairs, kept, matcher }
    }

    /// One string rewritten.
    pub fn string(&self, s: &str) -> String {
        if self.kept.contains(s) {
            return s.to_owned();
        }
        match &self.matcher {
            Some(m) => {
                let mut out = String::with_capacity(s.len());
                let mut last = 0;
                for hit in m.find_iter(s) {
                    out.push_str(&s[last..hit.start()]);
                    out.push_str(&self.pairs[hit.pattern().as_usize()].1);
                    last = hit.end();
                }
                out.push_str(&s[last..]);
                out
            }
            None => s.to_owned(),
        }
    }

    /// Every string of `v` rewritten (object keys too: a query parameter or header name
    /// never holds a world value, but a map keyed by ids may).
    pub fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.string(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.value(x)).collect()),
            Value::Object(o) => Value::Object(o.iter().map(|(k, x)| (self.string(k), self.value(x))).collect()),
            _ => v.clone(),
        }
    }
}

/// The default world ↔ one sandbox.
#[derive(Debug, Clone)]
pub struct WorldMap {
    /// Default-world value → sandbox value.
    pub to_sandbox: Rewrite,
    /// Sandbox value → default-world value.
    pub back: Rewrite,
    /// The sandbox's secrets (passwords, client secrets, secret variables): the journal shows
    /// them redacted, so an expected secret matches any redaction mark.
    pub secrets: BTreeSet<String>,
    /// The default world.
    pub default_world: WorldFile,
    /// The sandbox's world.
    pub sandbox_world: WorldFile,
}

impl WorldMap {
    /// Learns the rewrite from the two worlds (the sandbox's is the default instantiated).
    pub fn new(default_world: &WorldFile, sandbox_world: &WorldFile) -> Self {
        let a = serde_json::to_value(default_world).unwrap_or(Value::Null);
        let b = serde_json::to_value(sandbox_world).unwrap_or(Value::Null);
        let mut forward = BTreeMap::new();
        let mut same = BTreeSet::new();
        let mut secrets = BTreeSet::new();
        if let (Value::Object(a), Value::Object(b)) = (&a, &b) {
            for (k, va) in a {
                // The world's name is not a value cases use ("default" would match everywhere).
                if k == "name" || k == "description" || k == "$schema" {
                    continue;
                }
                if let Some(vb) = b.get(k) {
                    walk(k, va, vb, &mut forward, &mut same, &mut secrets);
                }
            }
        }
        let mut pairs = BTreeMap::new();
        for (from, to) in &forward {
            pairs.insert(from.clone(), to.clone());
            if let (Ok(f), Ok(t)) = (uuid::Uuid::try_parse(from), uuid::Uuid::try_parse(to)) {
                let flat = |u: uuid::Uuid| u.simple().to_string();
                pairs.insert(flat(f), flat(t));
                let host = |u: uuid::Uuid| {
                    let s = flat(u);
                    format!("{}.{}", &s[..30], &s[30..])
                };
                pairs.insert(host(f), host(t));
            }
        }
        let reverse: BTreeMap<String, String> = pairs.iter().map(|(f, t)| (t.clone(), f.clone())).collect();
        let kept_forward: BTreeSet<String> = same.iter().filter(|s| contains_any(s, pairs.keys())).cloned().collect();
        let kept_back: BTreeSet<String> = same.iter().filter(|s| contains_any(s, reverse.keys())).cloned().collect();
        Self {
            to_sandbox: Rewrite::new(pairs, kept_forward),
            back: Rewrite::new(reverse, kept_back),
            secrets,
            default_world: default_world.clone(),
            sandbox_world: sandbox_world.clone(),
        }
    }

    /// A case's value in the sandbox: every string rewritten, and `{"account": {"machine",
    /// "username"}}` inside objects replaced by that account's `username` and `password`.
    pub fn to_sandbox(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::Object(o) => {
                let mut out = Map::new();
                for (k, x) in o {
                    if k == "account" {
                        let (username, password) = self.account(x)?;
                        out.insert("username".into(), Value::String(username));
                        out.insert("password".into(), Value::String(password));
                    } else {
                        out.insert(self.to_sandbox.string(k), self.to_sandbox(x)?);
                    }
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(|x| self.to_sandbox(x)).collect::<Result<_, _>>()?),
            _ => self.to_sandbox.value(v),
        })
    }

    /// The sandbox's username and password of `{"machine": M, "username": U}` (default-world
    /// machine name or id, and username).
    fn account(&self, spec: &Value) -> Result<(String, String), String> {
        let field = |k: &str| spec.get(k).and_then(Value::as_str);
        let (Some(machine), Some(username)) = (field("machine"), field("username")) else {
            return Err("'account' is {\"machine\": NAME, \"username\": USER}".into());
        };
        let (e, m) = self.machine_position(machine)?;
        let template = &self.default_world.environments[e].machines[m];
        let i =
            template.windows_accounts.iter().position(|a| a.username.eq_ignore_ascii_case(username)).ok_or_else(
                || format!("machine '{machine}' has no Windows account '{username}' in the default world"),
            )?;
        let a = self
            .sandbox_world
            .environments
            .get(e)
            .and_then(|env| env.machines.get(m))
            .and_then(|m| m.windows_accounts.get(i))
            .ok_or_else(|| format!("the sandbox lacks machine '{machine}''s account '{username}'"))?;
        Ok((a.username.clone(), a.password.clone()))
    }

    /// (environment index, machine index) of a default-world machine, by name or id.
    fn machine_position(&self, machine: &str) -> Result<(usize, usize), String> {
        self.default_world
            .environments
            .iter()
            .enumerate()
            .find_map(|(e, env)| {
                env.machines
                    .iter()
                    .position(|m| m.name.eq_ignore_ascii_case(machine) || m.id.eq_ignore_ascii_case(machine))
                    .map(|m| (e, m))
            })
            .ok_or_else(|| format!("the default world has no machine '{machine}'"))
    }

    /// The sandbox id of a default-world machine named by name or id.
    pub fn machine_id(&self, machine: &str) -> Result<String, String> {
        let (e, m) = self.machine_position(machine)?;
        self.sandbox_world
            .environments
            .get(e)
            .and_then(|env| env.machines.get(m))
            .map(|m| m.id.clone())
            .ok_or_else(|| format!("the sandbox lacks machine '{machine}'"))
    }
}

fn contains_any<'a>(s: &str, keys: impl Iterator<Item = &'a String>) -> bool {
    let mut keys = keys;
    keys.any(|k| s.contains(k.as_str()))
}

const SECRET_KEYS: &[&str] = &["password", "clientSecret"];

fn walk(
    key: &str,
    a: &Value,
    b: &Value,
    forward: &mut BTreeMap<String, String>,
    same: &mut BTreeSet<String>,
    secrets: &mut BTreeSet<String>,
) {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            if SECRET_KEYS.contains(&key) {
                secrets.insert(y.clone());
            }
            if x == y {
                same.insert(x.clone());
            } else {
                forward.entry(x.clone()).or_insert_with(|| y.clone());
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                walk(key, p, q, forward, same, secrets);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            // A secret environment variable holds its secret under `value`.
            let secret_variable = x.get("type").and_then(Value::as_str) == Some("Secret");
            for (k, p) in x {
                if let Some(q) = y.get(k) {
                    let k = if secret_variable && k == "value" { "password" } else { k.as_str() };
                    walk(k, p, q, forward, same, secrets);
                }
            }
        }
        _ => {}
    }
}
