//! Desktop flows and connection references as the fixture and Dataverse know them
//! (runs.md, "Desktop flows and connection references"): a flow carries the simulation of
//! what its runs do, so a test decides outcomes without a machine.

use super::ids::{ConnectionReferenceId, IdError, PrincipalId, WorkflowId};
use fixtures::{ConnectionReferenceFile, DesktopFlowFile, SimulationFile};

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

impl Simulation {
    /// From the fixture format.
    pub fn from_file(s: &SimulationFile) -> Self {
        match &s.fail {
            Some(fail) => Simulation::Fail {
                duration_secs: s.duration_seconds,
                code: fail.code.clone(),
                message: fail.message.clone(),
            },
            None => Simulation::Succeed {
                duration_secs: s.duration_seconds,
                outputs: s.outputs.as_ref().map_or_else(|| "{}".to_owned(), ToString::to_string),
            },
        }
    }
}

impl DesktopFlow {
    /// From the fixture format (validated by the fixtures crate).
    pub fn from_file(f: &DesktopFlowFile) -> Result<Self, IdError> {
        let simulation = Simulation::from_file(&f.simulation);
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

/// A change to a desktop flow (`PATCH /_mock/desktopflows/{id}`); `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct FlowChange {
    /// Name.
    pub name: Option<String>,
    /// Owner.
    pub owner: Option<PrincipalId>,
    /// Published.
    pub published: Option<bool>,
    /// Input schema (JSON text).
    pub input_schema: Option<String>,
    /// Output schema (JSON text).
    pub output_schema: Option<String>,
    /// What its runs do (runs queued later; queued runs keep theirs).
    pub simulation: Option<Simulation>,
}

impl super::world::World {
    /// Adds a desktop flow to an environment (`POST /_mock/desktopflows`).
    pub fn add_desktop_flow(&mut self, env: &super::ids::EnvironmentId, flow: DesktopFlow) -> Result<(), super::Error> {
        let e = self
            .environments
            .iter_mut()
            .find(|e| &e.id == env)
            .ok_or(super::Error::RecordNotFound { entity: "environment", id: env.to_string() })?;
        if e.system_user_of(flow.owner).is_none() {
            return Err(super::Error::NotOrganizationMember(flow.owner.to_string()));
        }
        if e.desktop_flows.iter().any(|f| f.id == flow.id) {
            return Err(super::Error::DuplicateRecord(format!("workflow {}", flow.id)));
        }
        e.desktop_flows.push(flow);
        Ok(())
    }

    /// Changes a desktop flow of any environment; the flow after.
    pub fn change_desktop_flow(&mut self, id: WorkflowId, change: FlowChange) -> Result<&DesktopFlow, super::Error> {
        let e = self
            .environments
            .iter_mut()
            .find(|e| e.desktop_flows.iter().any(|f| f.id == id))
            .ok_or(super::Error::RecordNotFound { entity: "workflow", id: id.to_string() })?;
        if let Some(o) = change.owner
            && e.system_user_of(o).is_none()
        {
            return Err(super::Error::NotOrganizationMember(o.to_string()));
        }
        let f = e
            .desktop_flows
            .iter_mut()
            .find(|f| f.id == id)
            .ok_or(super::Error::RecordNotFound { entity: "workflow", id: id.to_string() })?;
        let FlowChange { name, owner, published, input_schema, output_schema, simulation } = change;
        f.name = name.unwrap_or(std::mem::take(&mut f.name));
        f.owner = owner.unwrap_or(f.owner);
        f.published = published.unwrap_or(f.published);
        f.input_schema = input_schema.unwrap_or(std::mem::take(&mut f.input_schema));
        f.output_schema = output_schema.unwrap_or(std::mem::take(&mut f.output_schema));
        f.simulation = simulation.unwrap_or(f.simulation.clone());
        Ok(f)
    }
}

/// A change to a connection reference; `None` keeps a value.
#[derive(Debug, Clone, Default)]
pub struct ReferenceChange {
    /// `connectionreferencelogicalname` (only at creation).
    pub logical_name: Option<String>,
    /// `connectionreferencedisplayname`.
    pub display_name: Option<String>,
    /// `connectorid`.
    pub connector_id: Option<String>,
    /// `connectionid` (empty clears it).
    pub connection_id: Option<String>,
}

/// The connector of desktop flows, as a connection reference names it.
pub const UIFLOW_CONNECTOR_ID: &str = "/providers/Microsoft.PowerApps/apis/shared_uiflow";

impl super::world::World {
    /// Creates or updates a connection reference (`POST`, `PATCH connectionreferences(id)`);
    /// every member of the environment may (its solution-aware rights are not modelled).
    /// True when it was created.
    pub fn upsert_connection_reference(
        &mut self,
        env: &super::ids::EnvironmentId,
        id: ConnectionReferenceId,
        change: ReferenceChange,
    ) -> Result<bool, super::Error> {
        let e = self
            .environments
            .iter_mut()
            .find(|e| &e.id == env)
            .ok_or(super::Error::RecordNotFound { entity: "connectionreference", id: id.to_string() })?;
        if let Some(name) = &change.logical_name
            && e.connection_references.iter().any(|r| r.id != id && r.logical_name.eq_ignore_ascii_case(name))
        {
            return Err(super::Error::DuplicateRecord(format!("connectionreferencelogicalname '{name}'")));
        }
        let created = match e.connection_references.iter_mut().find(|r| r.id == id) {
            Some(r) => {
                if change.logical_name.as_ref().is_some_and(|n| !n.eq_ignore_ascii_case(&r.logical_name)) {
                    return Err(super::Error::InvalidRunParameter(
                        "The logical name of a connection reference is fixed once it is created.".into(),
                    ));
                }
                apply(r, change);
                false
            }
            None => {
                let logical_name = change.logical_name.clone().filter(|n| !n.trim().is_empty()).ok_or(
                    super::Error::AttributeRequired {
                        entity: "connectionreference",
                        attribute: "connectionreferencelogicalname",
                    },
                )?;
                let mut r = ConnectionReference {
                    id,
                    display_name: logical_name.clone(),
                    logical_name,
                    connector_id: UIFLOW_CONNECTOR_ID.to_owned(),
                    connection_id: String::new(),
                };
                apply(&mut r, change);
                e.connection_references.push(r);
                true
            }
        };
        Ok(created)
    }
}

fn apply(r: &mut ConnectionReference, change: ReferenceChange) {
    if let Some(v) = change.display_name {
        r.display_name = v;
    }
    if let Some(v) = change.connector_id {
        r.connector_id = v;
    }
    if let Some(v) = change.connection_id {
        r.connection_id = v;
    }
}
