//! The named operations (`scenarios.md`, "Named operations"): every request is classified
//! once, at routing, into one of them. The journal records it, `GET /_mock/journal` filters
//! on it, and `docs/operations.md` lists them (a test checks the list against this enum).

use serde::Serialize;

macro_rules! operations {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// A named operation, `surface.verbNoun`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $( $(#[$doc])* $variant, )*
        }

        impl Operation {
            /// Every operation, in the order the docs list them.
            pub const ALL: &'static [Operation] = &[$(Operation::$variant,)*];

            /// The name, as `scenarios.md` spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Operation::$variant => $name, )*
                }
            }
        }
    };
}

operations! {
    /// `POST /{tenant}/oauth2/v2.0/token`.
    IdentityToken => "identity.token",
    /// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
    IdentityOpenidConfiguration => "identity.openidConfiguration",
    /// `GET /{tenant}/discovery/v2.0/keys`.
    IdentityKeys => "identity.keys",
    /// `GET /common/discovery/instance`.
    IdentityInstanceDiscovery => "identity.instanceDiscovery",
    /// `GET /common/userrealm/{upn}`.
    IdentityUserRealm => "identity.userRealm",
    /// `PUT …/connectors/{connector}/connections/{id}` (create or update).
    ConnectionsPut => "connections.put",
    /// `GET …/connectors/{connector}/connections/{id}`.
    ConnectionsGet => "connections.get",
    /// `GET …/connections` (with or without a connector).
    ConnectionsList => "connections.list",
    /// `DELETE …/connectors/{connector}/connections/{id}`.
    ConnectionsDelete => "connections.delete",
    /// `GET …/connections/{id}/permissions`.
    ConnectionsPermissions => "connections.permissions",
    /// `POST …/connections/{id}/modifyPermissions`.
    ConnectionsModifyPermissions => "connections.modifyPermissions",
    /// `GET /providers/Microsoft.BusinessAppPlatform/…/environments/{id}`.
    BapGetEnvironment => "bap.getEnvironment",
    /// `GET /providers/Microsoft.BusinessAppPlatform/…/environments` (not served yet).
    BapListEnvironments => "bap.listEnvironments",
    /// `GET {table}` (OData query of a table).
    DataverseQuery => "dataverse.query",
    /// `GET {table}({id})`.
    DataverseGet => "dataverse.get",
    /// `POST {table}`.
    DataverseCreate => "dataverse.create",
    /// `PATCH {table}({id})` (update, or create with a given id).
    DataverseUpdate => "dataverse.update",
    /// `DELETE {table}({id})`.
    DataverseDelete => "dataverse.delete",
    /// `GET WhoAmI`.
    DataverseWhoAmI => "dataverse.whoAmI",
    /// `POST GrantAccess`.
    DataverseGrantAccess => "dataverse.grantAccess",
    /// `POST ModifyAccess`.
    DataverseModifyAccess => "dataverse.modifyAccess",
    /// `POST RevokeAccess`.
    DataverseRevokeAccess => "dataverse.revokeAccess",
    /// `GET RetrieveSharedPrincipalsAndAccess(Target=…)`.
    DataverseRetrieveSharedPrincipalsAndAccess => "dataverse.retrieveSharedPrincipalsAndAccess",
    /// `GET EntityDefinitions…` (table metadata, picklists).
    DataverseEntityDefinitions => "dataverse.entityDefinitions",
    /// `POST flowmachines({id})/Microsoft.Dynamics.CRM.LeaveGroup`.
    DataverseLeaveGroup => "dataverse.leaveGroup",
    /// `POST workflows({id})/Microsoft.Dynamics.CRM.RunDesktopFlow`.
    DataverseRunDesktopFlow => "dataverse.runDesktopFlow",
    /// `GET flowsessions({id})`.
    DataverseGetFlowSession => "dataverse.getFlowSession",
    /// `GET flowsessions({id})/outputs/$value`.
    DataverseGetFlowSessionOutputs => "dataverse.getFlowSessionOutputs",
    /// `POST flowsessions({id})/Microsoft.Dynamics.CRM.CancelDesktopFlowRun`.
    DataverseCancelDesktopFlowRun => "dataverse.cancelDesktopFlowRun",
    /// `POST /apim/uiflow/…/uiFlowTypes/{type}/uiflows/{id}/runs`.
    RuntimeRunUIFlow => "runtime.runUIFlow",
    /// `GET /apim/uiflow/…/uiflows/{id}/runs/{runId}`.
    RuntimeGetRunStatus => "runtime.getRunStatus",
    /// `GET /apim/uiflow/{environment}/{connection}/usersession/testconnection`.
    RuntimeTestConnection => "runtime.testConnection",
    /// `GET /apim/uiflow/…/uiFlowTypes/{type}/uiflows`.
    RuntimeListUIFlows => "runtime.listUIFlows",
    /// `GET /apim/uiflow/…/uiFlowTypes/{type}/uiflows/{id}/$metadata.json`.
    RuntimeGetUIFlowMetadata => "runtime.getUIFlowMetadata",
    /// `GET /apim/uiflow/{environment}/{connection}/status`.
    RuntimeStatus => "runtime.status",
    /// A call to the control surface `/_mock/…` (never journaled).
    Control => "control",
    /// What the mock could not route: an unknown host, path or method.
    Unmatched => "unmatched",
}

impl Operation {
    /// The operation named `name`, as [`Operation::as_str`] spells it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|o| o.as_str() == name)
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Operation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for op in Operation::ALL {
            assert_eq!(Operation::parse(op.as_str()), Some(*op));
        }
        let mut names: Vec<&str> = Operation::ALL.iter().map(|o| o.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Operation::ALL.len());
    }

    #[test]
    fn every_operation_scenarios_md_names_exists() {
        let named = "identity.token identity.openidConfiguration identity.keys identity.instanceDiscovery \
            identity.userRealm connections.put connections.get connections.list connections.delete \
            connections.permissions connections.modifyPermissions bap.getEnvironment bap.listEnvironments \
            dataverse.query dataverse.get dataverse.create dataverse.update dataverse.delete dataverse.whoAmI \
            dataverse.grantAccess dataverse.modifyAccess dataverse.revokeAccess \
            dataverse.retrieveSharedPrincipalsAndAccess dataverse.runDesktopFlow dataverse.getFlowSession \
            dataverse.getFlowSessionOutputs dataverse.cancelDesktopFlowRun runtime.runUIFlow \
            runtime.getRunStatus runtime.testConnection runtime.listUIFlows unmatched";
        for name in named.split_whitespace() {
            assert!(Operation::parse(name).is_some(), "{name}");
        }
    }

    #[test]
    fn docs_list_every_operation() {
        let docs = include_str!("../../docs/operations.md");
        for op in Operation::ALL {
            assert!(docs.contains(&format!("`{}`", op.as_str())), "docs/operations.md does not list {op}");
        }
        let listed = docs.lines().filter(|l| l.starts_with("| `")).count();
        assert_eq!(listed, Operation::ALL.len(), "docs/operations.md lists an operation the enum does not have");
    }
}
