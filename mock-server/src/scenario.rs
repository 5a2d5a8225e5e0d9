//! Named scenarios (`scenarios.md`, Named scenarios): JSON files in `fixtures/scenarios/`,
//! embedded, each a set of fault rules and world steps a test applies with one control call
//! (`POST /_mock/scenarios/{name}`, [`crate::control::Control::apply_scenario`]). A file with
//! an unknown field does not load: [`all`] names the file and the field.
//!
//! Supported so far: `faults`, the `settings`, `patchMachine`, `removeShare` and
//! `patchDesktopFlow` world steps, and `clock` triggers (an advance or world steps).
//! `overrides` replace a mock-defined error envelope's code or message in the sandbox's
//! answers.

use crate::control::{DesktopFlowPatch, MachineFactsPatch, SettingsPatch};
use crate::fault::FaultSpec;
use crate::operation::Operation;
use serde::{Deserialize, Serialize};

/// One scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    /// Kebab-case name, the file's stem.
    pub name: String,
    /// One line.
    pub summary: String,
    /// What a client sees.
    pub docs: String,
    /// World steps, applied in order.
    #[serde(default)]
    pub world: Vec<WorldStep>,
    /// Fault rules, added after the sandbox's others in this order.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
    /// One-shot triggers: after an operation is answered, advance the clock or change the world.
    #[serde(default)]
    pub clock: Vec<ClockTrigger>,
    /// Replacements for mock-defined error codes or messages, by code.
    #[serde(default)]
    pub overrides: std::collections::BTreeMap<String, Override>,
}

/// What replaces a mock-defined code's envelope `code` or `message` (for users who learn the
/// real service's answer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Override {
    /// The code to answer instead.
    #[serde(default)]
    pub code: Option<String>,
    /// The message to answer instead.
    #[serde(default)]
    pub message: Option<String>,
}

/// A `clock` trigger: once a request of `after.operation` has been answered by its handler
/// with a success (2xx; a fault rule's answer never fires it), the sandbox's clock advances
/// by `advance`, or its `world` steps apply. It fires once.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClockTrigger {
    /// The operation it waits for.
    pub after: After,
    /// How far the clock moves.
    #[serde(default)]
    pub advance: Option<Advance>,
    /// Or what changes in the world.
    #[serde(default)]
    pub world: Vec<WorldStep>,
}

/// The `after` of a trigger.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct After {
    /// A named operation.
    pub operation: String,
}

/// A clock advance, as `POST /_mock/clock/advance` takes it.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Advance {
    /// Hours.
    #[serde(default)]
    pub hours: u64,
    /// Minutes.
    #[serde(default)]
    pub minutes: u64,
    /// Seconds.
    #[serde(default)]
    pub seconds: u64,
}

impl Advance {
    /// The whole advance.
    pub fn duration(self) -> std::time::Duration {
        std::time::Duration::from_secs(self.hours * 3600 + self.minutes * 60 + self.seconds)
    }
}

/// A trigger a sandbox holds until it fires.
#[derive(Debug, Clone)]
pub struct ArmedTrigger {
    /// The scenario that armed it.
    pub scenario: String,
    /// The operation it waits for.
    pub operation: Operation,
    /// How far the clock moves.
    pub advance: Option<std::time::Duration>,
    /// What changes in the world.
    pub world: Vec<WorldStep>,
}

/// A world step: each is also a control call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum WorldStep {
    /// The fields of `PATCH /_mock/settings`.
    Settings(SettingsPatch),
    /// `machine` (the default world's id or the machine's name) and the fields of
    /// `PATCH /_mock/machines/{id}`.
    PatchMachine(PatchMachine),
    /// A group's share with a principal is removed: `group` (default-world id or name) or
    /// `machine` (its group), and `principal` (object id, UPN, app id or display name).
    RemoveShare(RemoveShare),
    /// `desktopFlow` (the default world's workflow id or the flow's name) and the fields of
    /// `PATCH /_mock/desktopflows/{id}`.
    PatchDesktopFlow(PatchDesktopFlow),
}

/// A `patchDesktopFlow` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct PatchDesktopFlow {
    /// The default world's workflow id of the flow, or its name.
    pub desktop_flow: String,
    /// The fields to set as written (checked when the file loads), mapped into a sandbox
    /// before they are read.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for PatchDesktopFlow {
    type Error = String;

    fn try_from(mut fields: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        let desktop_flow = match fields.remove("desktopFlow") {
            Some(serde_json::Value::String(f)) => f,
            _ => return Err("desktopFlow: expected the flow's default-world workflow id or name".into()),
        };
        let patch = serde_path_to_error::deserialize::<_, DesktopFlowPatch>(serde_json::Value::Object(fields.clone()))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        patch.into_change().map_err(|e| e.to_string())?;
        Ok(Self { desktop_flow, fields })
    }
}

/// A `removeShare` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoveShare {
    /// The group, by the default world's id or by name.
    #[serde(default)]
    pub group: Option<String>,
    /// Or a machine, whose group it is.
    #[serde(default)]
    pub machine: Option<String>,
    /// Who loses the share.
    pub principal: String,
}

/// A `patchMachine` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "serde_json::Map<String, serde_json::Value>")]
pub struct PatchMachine {
    /// The default world's id of the machine, or its name.
    pub machine: String,
    /// The fields to set as written (checked when the file loads): mapped into a sandbox
    /// before they are read, since tenant ids and UPNs differ from sandbox to sandbox.
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl TryFrom<serde_json::Map<String, serde_json::Value>> for PatchMachine {
    type Error = String;

    fn try_from(mut fields: serde_json::Map<String, serde_json::Value>) -> Result<Self, Self::Error> {
        let machine = match fields.remove("machine") {
            Some(serde_json::Value::String(m)) => m,
            _ => return Err("machine: expected the machine's default-world id or name".into()),
        };
        serde_path_to_error::deserialize::<_, MachineFactsPatch>(serde_json::Value::Object(fields.clone()))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        Ok(Self { machine, fields })
    }
}

/// A scenario as `GET /_mock/scenarios` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScenarioSummary {
    /// Name.
    pub name: String,
    /// One line.
    pub summary: String,
}

impl Scenario {
    /// Whether a request may ask for it with `x-mock-scenario`: only scenarios made of fault
    /// rules alone can answer one request.
    pub fn requestable(&self) -> bool {
        self.world.is_empty() && self.clock.is_empty() && self.overrides.is_empty() && !self.faults.is_empty()
    }
}

/// Every embedded scenario, by name; the first broken file is an error naming it and its field.
pub fn all() -> Result<Vec<Scenario>, String> {
    fixtures::scenario_files()
        .into_iter()
        .map(|(file, text)| {
            let de = &mut serde_json::Deserializer::from_str(text);
            let s: Scenario =
                serde_path_to_error::deserialize(de).map_err(|e| format!("{file}: {}: {}", e.path(), e.inner()))?;
            if !file.ends_with(&format!("/{}.json", s.name)) {
                return Err(format!("{file}: name: expected the file's stem"));
            }
            for (i, c) in s.clock.iter().enumerate() {
                if Operation::parse(&c.after.operation).is_none_or(|o| o == Operation::Control) {
                    return Err(format!("{file}: clock[{i}].after.operation: expected a named operation"));
                }
                if c.advance.is_some() != c.world.is_empty() {
                    return Err(format!("{file}: clock[{i}]: expected either advance or world"));
                }
            }
            for (i, f) in s.faults.iter().enumerate() {
                f.validate().map_err(|m| format!("{file}: faults[{i}].{m}"))?;
            }
            Ok(s)
        })
        .collect()
}

/// The embedded scenario `name`. The embedded files are checked by a test, so a load error
/// here is a broken build: it is logged and the scenario counts as missing.
pub fn find(name: &str) -> Option<Scenario> {
    match all() {
        Ok(all) => all.into_iter().find(|s| s.name == name),
        Err(e) => {
            tracing::error!(error = %e, "an embedded scenario does not load: this is a bug in the mock");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_scenario_loads() {
        let all = all().unwrap();
        assert!(all.len() >= 5);
        assert!(all.iter().all(|s| !s.summary.contains('\n') && !s.docs.is_empty()));
    }

    #[test]
    fn docs_walk_through_every_scenario() {
        let docs = include_str!("../../docs/scenarios.md");
        for s in all().unwrap() {
            assert!(docs.contains(&format!("### {}\n", s.name)), "docs/scenarios.md has no section for {}", s.name);
        }
    }
}
