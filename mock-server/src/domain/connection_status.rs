//! A connection's status, worked out from the world as it is now, so it follows every change:
//! a rotated password, a machine removed or added, a deleted group, a tenant allowlisted.
//! The checks are the ones the service runs when it tests a connection: the Windows account
//! on every machine of the group (username/password and credential connections), or the
//! connect-with-sign-in prerequisites (join state, tenant allowlist, interactive sign-in).
//! Codes and messages are DECISIONS.md's failure table, word for word.

use super::connection::{Connection, Login, ParameterSet};
use super::credential::CredentialKind;
use super::windows_account::same_account;
use super::world::{Environment, JoinType, Machine, World};
use secrecy::ExposeSecret;
use uuid::Uuid;

/// A connection's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Usable.
    Connected,
    /// Not usable, with the documented code and message.
    Error {
        /// Code (`WindowsIdentityIncorrect`, …).
        code: &'static str,
        /// Message.
        message: String,
    },
}

impl ConnectionStatus {
    fn error(code: &'static str, message: String) -> Self {
        Self::Error { code, message }
    }

    /// The code of an error status.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            Self::Connected => None,
            Self::Error { code, .. } => Some(code),
        }
    }

    /// `TestConnection`: fine, or the failure as an error (SUP-ERR's statuses).
    pub fn test(self) -> Result<(), super::Error> {
        match self {
            Self::Connected => Ok(()),
            Self::Error { code, message } => Err(super::Error::ConnectionTestFailed { code, message }),
        }
    }
}

/// Whether a machine can take connect-with-sign-in at all: Entra joined and synchronised,
/// or AD domain joined.
pub fn is_joined(m: &Machine) -> bool {
    match m.join_type {
        JoinType::EntraJoined => m.entra_synced,
        JoinType::DomainJoined => true,
        JoinType::Workgroup => false,
    }
}

fn identity_incorrect(m: &Machine, correlation: Uuid) -> ConnectionStatus {
    ConnectionStatus::error(
        "WindowsIdentityIncorrect",
        format!(
            "Details: Connection failed: [Machine {}]. There's an issue with your credentials. Check your credentials or use different credentials to connect to the machine. Correlation id: {correlation}.",
            m.id
        ),
    )
}

/// What a login resolves to: a username and, unless the credential holds a certificate or
/// lives in CyberArk, the password to check (from the vault stand-in, through the Secret
/// variable's Key Vault reference).
fn resolve(world: &World, env: &Environment, login: &Login) -> Option<(String, Option<String>)> {
    match login {
        Login::Password { username, password } => Some((username.clone(), Some(password.expose_secret().to_owned()))),
        Login::Credential { credential, .. } => {
            let c = env.credential(*credential)?;
            let username = world.variable_value(env, &c.username_variable)?;
            let password = match (c.kind, &c.password_variable) {
                (CredentialKind::KeyVaultPassword, Some(var)) => Some(world.variable_value(env, var)?),
                _ => None,
            };
            Some((username, password))
        }
    }
}

fn check_login(
    world: &World,
    env: &Environment,
    machines: &[&Machine],
    login: &Login,
    correlation: Uuid,
) -> ConnectionStatus {
    let resolved = resolve(world, env, login);
    for m in machines {
        let ok = resolved.as_ref().is_some_and(|(username, password)| {
            m.windows_accounts.iter().any(|a| {
                a.interactive_logon
                    && same_account(username, &a.username, &m.name)
                    && password.as_ref().is_none_or(|p| a.password.expose_secret() == p)
            })
        });
        if !ok {
            return identity_incorrect(m, correlation);
        }
    }
    ConnectionStatus::Connected
}

fn check_sign_in(world: &World, env: &Environment, machines: &[&Machine], c: &Connection) -> ConnectionStatus {
    let user = world.user(c.created_by.principal);
    for m in machines {
        if !is_joined(m) {
            return ConnectionStatus::error(
                "MachineNotJoined",
                "The machine is neither Microsoft Entra nor domain joined.".to_owned(),
            );
        }
        if m.join_type == JoinType::DomainJoined && !m.allowed_tenants.contains(&env.tenant) {
            let message = if m.legacy_sign_in_error {
                "Unable to connect. The credentials for the machine are incorrect.".to_owned()
            } else {
                format!(
                    "Tenant {} needs to be explicitly allowlisted to authorize 'connect with sign-in' runs on the machine",
                    env.tenant
                )
            };
            return ConnectionStatus::error("UnallowedTenantForConnectWithSignIn", message);
        }
        if !user.is_some_and(|u| u.interactive_logon.contains(&m.id)) {
            return identity_incorrect(m, c.correlation);
        }
    }
    ConnectionStatus::Connected
}

impl World {
    /// The connection's status on one machine: what a run assigned there finds when it signs in.
    pub fn status_on(&self, c: &Connection, m: &Machine) -> ConnectionStatus {
        let Some(env) = self.environment(&c.environment) else {
            return ConnectionStatus::Connected;
        };
        match &c.parameters {
            ParameterSet::AzureRelay { login, .. } | ParameterSet::AzureRelayRunOwner { login, .. } => {
                check_login(self, env, &[m], login, c.correlation)
            }
            ParameterSet::PasswordlessAttended { .. } => check_sign_in(self, env, &[m], c),
        }
    }

    /// The Windows account a run of the connection uses: the sign-in user's UPN, or the
    /// login's username (a credential's resolved from its variable).
    pub fn run_account(&self, c: &Connection) -> Option<String> {
        match c.parameters.login() {
            None => self.user(c.created_by.principal).map(|u| u.upn.clone()),
            Some(login) => resolve(self, self.environment(&c.environment)?, login).map(|(u, _)| u),
        }
    }

    /// The status of a connection in the world as it is now.
    pub fn status(&self, c: &Connection) -> ConnectionStatus {
        let Some(env) = self.environment(&c.environment) else {
            return ConnectionStatus::Connected;
        };
        let target = c.parameters.target();
        if env.group(target).is_none() {
            return ConnectionStatus::error(
                "XrmMachineGroupNotFound",
                format!(
                    "The machine group '{target}' was not found: it was deleted, or its only machine joined another group."
                ),
            );
        }
        let machines: Vec<&Machine> = env.machines.iter().filter(|m| m.group == target).collect();
        match &c.parameters {
            ParameterSet::AzureRelay { login, .. } | ParameterSet::AzureRelayRunOwner { login, .. } => {
                check_login(self, env, &machines, login, c.correlation)
            }
            ParameterSet::PasswordlessAttended { .. } => check_sign_in(self, env, &machines, c),
        }
    }
}
