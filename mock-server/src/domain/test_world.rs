//! The default world and its principals, as the domain's unit tests name them.

use super::connection::Caller;
use super::ids::{EnvironmentId, PrincipalId, TenantId};
use super::world::World;

pub(crate) const TENANT: &str = "c7263f1a-afcd-4e8a-a7ce-66b19698caaa";
pub(crate) const ENV: &str = "37520647-dbdf-49fa-ba01-6134c14680c4";
pub(crate) const MEGAN: &str = "9b938b62-1239-4855-aaa8-bd33df599368";
pub(crate) const ADELE: &str = "7ca44739-d892-4cfc-a132-f8d0b3e0a21d";
pub(crate) const SP: &str = "ed6535a9-e3e6-4f8a-9fd5-58313db668bf";
pub(crate) const FINANCE: &str = "42e26112-838c-471b-b09f-958e640e9303";
pub(crate) const HR: &str = "d8ffb0fe-5a78-4d28-abf4-b5c4167600be";

/// The embedded default world.
pub(crate) fn world() -> World {
    World::from_fixture("default", &fixtures::default_world()).unwrap()
}

/// A principal of Contoso, by object id.
pub(crate) fn caller(w: &World, oid: &str) -> Caller {
    w.caller(TenantId::parse(TENANT).unwrap(), PrincipalId::parse(oid).unwrap(), None).unwrap()
}

/// The default world's environment.
pub(crate) fn env() -> EnvironmentId {
    EnvironmentId::parse(ENV).unwrap()
}
