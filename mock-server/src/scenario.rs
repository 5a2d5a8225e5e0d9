//! Named scenarios (`scenarios.md`, Named scenarios): JSON files in `fixtures/scenarios/`,
//! embedded, each a set of fault rules and world steps a test applies with one control call
//! (`POST /_mock/scenarios/{name}`, [`crate::control::Control::apply_scenario`]). A file with
//! an unknown field does not load: [`all`] names the file and the field.
//!
//! Supported so far: `faults` and the `settings` world step. `patchMachine`, `removeShare`,
//! `patchDesktopFlow`, `clock` triggers and `overrides` are not yet read (a file using them
//! fails to load, so none can silently do less than it says).

use crate::control::SettingsPatch;
use crate::fault::FaultSpec;
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
}

/// A world step: each is also a control call.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum WorldStep {
    /// The fields of `PATCH /_mock/settings`.
    Settings(SettingsPatch),
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
        self.world.is_empty() && !self.faults.is_empty()
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
            for (i, f) in s.faults.iter().enumerate() {
                f.validate().map_err(|m| format!("{file}: faults[{i}].{m}"))?;
            }
            Ok(s)
        })
        .collect()
}

/// The embedded scenario `name`.
pub fn find(name: &str) -> Option<Scenario> {
    all().ok()?.into_iter().find(|s| s.name == name)
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
