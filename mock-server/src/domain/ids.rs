//! Validated identifiers. Each is built only through `parse`, so a malformed id is a typed
//! error at the edge and never reaches a rule.

use std::fmt;
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {kind}: {reason}")]
pub struct IdError {
    /// What was expected (`tenant id`, `environment id`, …).
    pub kind: &'static str,
    /// The rejected text.
    pub value: String,
    /// Why.
    pub reason: &'static str,
}

/// Parses a GUID in hyphenated (36) or simple (32 hex) form. Braced and URN forms are refused:
/// the real APIs take the two plain forms only.
pub fn parse_guid(kind: &'static str, value: &str) -> Result<Uuid, IdError> {
    let ok_len = value.len() == 36 || value.len() == 32;
    match Uuid::try_parse(value) {
        Ok(u) if ok_len => Ok(u),
        _ => Err(IdError {
            kind,
            value: value.chars().take(80).collect(),
            reason: "expected a GUID such as 00000000-0000-0000-0000-000000000000",
        }),
    }
}

macro_rules! guid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the hyphenated or 32-hex form.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                parse_guid($kind, value).map(Self)
            }
            /// Wraps a GUID.
            pub fn from_uuid(u: Uuid) -> Self {
                Self(u)
            }
            /// The GUID.
            pub fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        /// As its hyphenated text, the way every body and the control service's views show it.
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

guid_id!(
    /// An Entra ID tenant.
    TenantId, "tenant id"
);
guid_id!(
    /// Object id of a user or service principal.
    PrincipalId, "object id"
);
guid_id!(
    /// Application (client) id.
    AppId, "application id"
);
guid_id!(
    /// `flowmachineid`.
    MachineId, "machine id"
);
guid_id!(
    /// `flowmachinegroupid`: the `targetId` of a desktop-flow connection.
    MachineGroupId, "machine group id"
);
guid_id!(
    /// Dataverse `systemuserid`.
    SystemUserId, "systemuser id"
);
guid_id!(
    /// Dataverse `teamid`.
    TeamId, "team id"
);
guid_id!(
    /// A desktop-flow credential's id (`properties.credentialId` of a connection).
    CredentialId, "credential id"
);
guid_id!(
    /// Dataverse `environmentvariabledefinitionid`.
    VariableId, "environment variable definition id"
);
guid_id!(
    /// Dataverse `environmentvariablevalueid`.
    VariableValueId, "environment variable value id"
);

guid_id!(
    /// A desktop flow's `workflowid`.
    WorkflowId, "workflow id"
);
guid_id!(
    /// A run's `flowsessionid`.
    FlowSessionId, "flow session id"
);
guid_id!(
    /// `connectionreferenceid`.
    ConnectionReferenceId, "connection reference id"
);

/// A Power Platform environment id: a GUID, optionally prefixed `Default-` (default environments).
/// Kept as written (lower-cased), since it appears verbatim in URLs and bodies. Shared, not
/// copied: every connection and index entry of an environment holds the same text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvironmentId(std::sync::Arc<str>);

/// Hashes and compares as its text, so maps keyed by ids are searched by text.
impl std::borrow::Borrow<str> for EnvironmentId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl EnvironmentId {
    /// Parses `GUID` or `Default-GUID` (case-insensitive prefix).
    pub fn parse(value: &str) -> Result<Self, IdError> {
        Self::canonical(value, |text| Self(text.into()))
    }

    /// Calls `f` with the text [`EnvironmentId::parse`] keeps for `value`, written on the
    /// stack: a lookup by it (the id is `Borrow<str>`) allocates nothing.
    pub fn canonical<R>(value: &str, f: impl FnOnce(&str) -> R) -> Result<R, IdError> {
        const PREFIX: &str = "Default-";
        let (prefix, rest) = match value.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => (PREFIX, &value[PREFIX.len()..]),
            _ => ("", value),
        };
        let guid = parse_guid("environment id", rest).map_err(|mut e| {
            e.value = value.chars().take(80).collect();
            e
        })?;
        let mut buf = [0u8; PREFIX.len() + uuid::fmt::Hyphenated::LENGTH];
        buf[..prefix.len()].copy_from_slice(prefix.as_bytes());
        let written = guid.hyphenated().encode_lower(&mut buf[prefix.len()..]).len();
        let text = std::str::from_utf8(&buf[..prefix.len() + written]).map_err(|_| IdError {
            kind: "environment id",
            value: value.chars().take(80).collect(),
            reason: "expected a GUID such as 00000000-0000-0000-0000-000000000000",
        })?;
        Ok(f(text))
    }

    /// The id as used in paths and bodies.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `ENVIRONMENT_ID_URL` (api-facts 1.2): lower-case, hyphens removed, the last two
    /// characters split off by a period.
    pub fn host_prefix(&self) -> String {
        let flat: String = self.0.to_ascii_lowercase().chars().filter(|c| *c != '-').collect();
        let (head, tail) = flat.split_at(flat.len() - 2);
        format!("{head}.{tail}")
    }

    /// The environment's Power Platform API host in the public cloud.
    pub fn api_host(&self) -> String {
        format!("{}.environment.api.powerplatform.com", self.host_prefix())
    }
}

impl fmt::Display for EnvironmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for EnvironmentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_host_follows_the_documented_example() {
        let id = EnvironmentId::parse("37520647-dbdf-49fa-ba01-6134c14680c4").unwrap();
        assert_eq!(id.host_prefix(), "37520647dbdf49faba016134c14680.c4");
        assert_eq!(id.api_host(), "37520647dbdf49faba016134c14680.c4.environment.api.powerplatform.com");
    }

    #[test]
    fn a_default_environment_keeps_its_prefix_in_the_host() {
        // The rule applied to the 39 characters "default" + 32 hex. (api-facts' worked example
        // for this id shows one 'e' fewer, which the rule it cites does not produce.)
        let id = EnvironmentId::parse("Default-aaaabbbb-0000-cccc-1111-dddd2222eeee").unwrap();
        assert_eq!(id.api_host(), "defaultaaaabbbb0000cccc1111dddd2222ee.ee.environment.api.powerplatform.com");
    }

    #[test]
    fn both_guid_forms_name_the_same_id_and_others_are_refused() {
        let a = TenantId::parse("c7263f1a-afcd-4e8a-a7ce-66b19698caaa").unwrap();
        let b = TenantId::parse("c7263f1aafcd4e8aa7ce66b19698caaa").unwrap();
        assert_eq!(a, b);
        assert!(TenantId::parse("{c7263f1a-afcd-4e8a-a7ce-66b19698caaa}").is_err());
        assert!(TenantId::parse("contoso").is_err());
    }
}
