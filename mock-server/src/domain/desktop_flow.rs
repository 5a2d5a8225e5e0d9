//! Desktop flows and connection references as the fixture and Dataverse know them
//! (runs.md, "Desktop flows and connection references"): a flow carries the simulation of
//! what its runs do, so a test decides outcomes without a machine.

use super::ids::{ConnectionReferenceId, IdError, PrincipalId, WorkflowId};
use fixtures::{ConnectionReferenceFile, DesktopFlowFile};

/// What a run of a flow does once it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Simulation {
    /// Succeeds after `duration_secs` with these outputs (JSON text).
    Succeed {
        /// Run time.
        duration_secs: u64,
        /// Outputs, as JSON text.
        outputs: String,
    },
    /// Fails after `duration_secs`.
    Fail {
        /// Run time.
        duration_secs: u64,
        /// `errorcode`.
        code: String,
        /// `errormessage`.
        message: String,
    },
}

impl Simulation {
    /// How long a run lasts once started.
    pub fn duration_secs(&self) -> u64 {
        match self {
            Self::Succeed { duration_secs, .. } | Self::Fail { duration_secs, .. } => *duration_secs,
        }
    }
}

/// A desktop flow (`workflow`, category 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesktopFlow {
    /// `workflowid`.
    pub id: WorkflowId,
    /// Name.
    pub name: String,
    /// Owner (may read and cancel every run of it).
    pub owner: PrincipalId,
    /// Published (`statecode` 1).
    pub published: bool,
    /// Input JSON Schema, as JSON text.
    pub input_schema: String,
    /// Output JSON Schema, as JSON text.
    pub output_schema: String,
    /// What its runs do.
    pub simulation: Simulation,
}

impl DesktopFlow {
    /// From the fixture format (validated by the fixtures crate).
    pub fn from_file(f: &DesktopFlowFile) -> Result<Self, IdError> {
        let s = &f.simulation;
        let simulation = match &s.fail {
            Some(fail) => Simulation::Fail {
                duration_secs: s.duration_seconds,
                code: fail.code.clone(),
                message: fail.message.clone(),
            },
            None => Simulation::Succeed {
                duration_secs: s.duration_seconds,
                outputs: s.outputs.as_ref().map_or_else(|| "{}".to_owned(), ToString::to_string),
            },
        };
        Ok(Self {
            id: WorkflowId::parse(&f.workflow_id)?,
            name: f.name.clone(),
            owner: PrincipalId::parse(&f.owner)?,
            published: f.published,
            input_schema: f.input_schema.to_string(),
            output_schema: f.output_schema.to_string(),
            simulation,
        })
    }
}

/// A connection reference (`connectionreference`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionReference {
    /// `connectionreferenceid`.
    pub id: ConnectionReferenceId,
    /// `connectionreferencelogicalname`.
    pub logical_name: String,
    /// `connectionreferencedisplayname`.
    pub display_name: String,
    /// `connectorid`.
    pub connector_id: String,
    /// `connectionid`; empty until set.
    pub connection_id: String,
}

impl ConnectionReference {
    /// From the fixture format.
    pub fn from_file(r: &ConnectionReferenceFile) -> Result<Self, IdError> {
        Ok(Self {
            id: ConnectionReferenceId::parse(&r.connection_reference_id)?,
            logical_name: r.logical_name.clone(),
            display_name: r.display_name.clone(),
            connector_id: r.connector_id.clone(),
            connection_id: r.connection_id.clone(),
        })
    }
}
