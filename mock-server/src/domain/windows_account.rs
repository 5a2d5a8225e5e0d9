//! Which Windows account a written name stands for on a machine: the one rule that both the
//! connection checks and attended runs use to match a username against a machine's accounts
//! (DECISIONS.md, "Machines, groups and sharing"; the forms are SUP-CRED's and PAD-CONN's).
//!
//! - Names compare case-insensitively, as Windows does.
//! - Bare `user`, `.\user`, `local\user` and `{MACHINE}\user` name the local account `user` of
//!   the machine the name is checked on, so one name fits every machine of a group.
//! - `AzureAD\{upn}` and `{upn}` name the same Entra account.
//! - `DOMAIN\user` and `user@domain` are different accounts: a machine has both only when the
//!   fixture lists both.

/// The account a name stands for on one machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Account {
    /// The machine's own local account.
    Local(String),
    /// An account of a Windows domain (`DOMAIN\user`).
    Domain {
        /// Domain, lower-cased.
        domain: String,
        /// User, lower-cased.
        user: String,
    },
    /// An Entra (or any UPN-named) account, lower-cased.
    Upn(String),
}

/// The prefix Windows uses for Entra accounts (`AzureAD\megan@contoso.onmicrosoft.com`).
const ENTRA_PREFIX: &str = "azuread";

fn account(name: &str, machine: &str) -> Option<Account> {
    let name = name.trim().to_lowercase();
    match name.split_once('\\') {
        Some((prefix, user)) => {
            if prefix.is_empty() || user.is_empty() || user.contains('\\') {
                return None;
            }
            if prefix == ENTRA_PREFIX {
                return upn(user);
            }
            let local = prefix == "." || prefix == "local" || prefix.eq_ignore_ascii_case(machine);
            if local {
                return (!user.contains('@')).then(|| Account::Local(user.to_owned()));
            }
            Some(Account::Domain { domain: prefix.to_owned(), user: user.to_owned() })
        }
        None if name.contains('@') => upn(&name),
        None if name.is_empty() => None,
        None => Some(Account::Local(name)),
    }
}

/// Whether `name` stands for an account on `machine` (what `account` finds), without building
/// it: a connection's status checks its username on every read. ASCII names only; others are
/// lower-cased the long way, as `account` does.
fn names_an_account(name: &str, machine: &str) -> bool {
    let name = name.trim();
    if !name.is_ascii() {
        return account(name, machine).is_some();
    }
    match name.split_once('\\') {
        Some((prefix, user)) => {
            if prefix.is_empty() || user.is_empty() || user.contains('\\') {
                return false;
            }
            if prefix.eq_ignore_ascii_case(ENTRA_PREFIX) {
                return is_upn(user);
            }
            let local = prefix == "." || prefix.eq_ignore_ascii_case("local") || prefix.eq_ignore_ascii_case(machine);
            !local || !user.contains('@')
        }
        None if name.contains('@') => is_upn(name),
        None => !name.is_empty(),
    }
}

fn upn(name: &str) -> Option<Account> {
    is_upn(name).then(|| Account::Upn(name.to_owned()))
}

/// `user@domain`, both parts present and one `@` only.
fn is_upn(name: &str) -> bool {
    name.split_once('@').is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty() && !domain.contains('@'))
}

/// Whether `given` (what a connection or run names) is the account `listed` (as the fixture
/// writes it) on the machine named `machine`. A malformed name matches nothing.
pub fn same_account(given: &str, listed: &str, machine: &str) -> bool {
    // The common case, the account written as the fixture lists it, reads one name.
    if given.trim() == listed.trim() {
        return names_an_account(listed, machine);
    }
    match (account(given, machine), account(listed, machine)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{account, names_an_account, same_account};
    use proptest::prelude::*;

    proptest! {
        /// The quick check agrees with building the account, for any name and machine.
        #[test]
        fn names_an_account_says_what_account_finds(
            name in "[ .\\\\@a-zA-Z0-9\u{c9}\u{e9}\u{212a}-]{0,24}",
            machine in prop_oneof![Just("BUILD-01".to_owned()), Just("\u{c9}-01".to_owned()), "[a-zA-Z-]{0,8}"],
        ) {
            prop_assert_eq!(names_an_account(&name, &machine), account(&name, &machine).is_some());
        }
    }

    #[test]
    fn each_written_form_names_the_account_decisions_defines() {
        // (given, listed in the fixture, machine, same account?)
        let cases = [
            // Local accounts: every local form, any case.
            ("BUILD-01\\rpa", "BUILD-01\\rpa", "BUILD-01", true),
            ("build-01\\RPA", "BUILD-01\\rpa", "BUILD-01", true),
            (".\\rpa", "BUILD-01\\rpa", "BUILD-01", true),
            ("local\\RPA", "BUILD-01\\rpa", "BUILD-01", true),
            ("LOCAL\\rpa", "BUILD-01\\rpa", "BUILD-01", true),
            ("rpa", "BUILD-01\\rpa", "BUILD-01", true),
            ("Rpa", ".\\rpa", "BUILD-01", true),
            // Another machine's name is a domain on this one.
            ("OTHER\\rpa", "BUILD-01\\rpa", "BUILD-01", false),
            ("FIN-01\\rpa", "FIN-02\\rpa", "FIN-02", false),
            // A domain account is not local, whatever the local form.
            (".\\svc-rpa", "CONTOSO\\svc-rpa", "FIN-01", false),
            ("svc-rpa", "CONTOSO\\svc-rpa", "FIN-01", false),
            ("contoso\\SVC-RPA", "CONTOSO\\svc-rpa", "FIN-01", true),
            // DOMAIN\user and user@domain are different accounts.
            ("svc-rpa@contoso.com", "CONTOSO\\svc-rpa", "FIN-01", false),
            ("CONTOSO\\svc-rpa", "svc-rpa@contoso.com", "FIN-01", false),
            // Entra: AzureAD\upn is the account upn.
            ("AzureAD\\rpa@contoso.onmicrosoft.com", "rpa@contoso.onmicrosoft.com", "BUILD-01", true),
            ("azuread\\RPA@Contoso.onmicrosoft.com", "rpa@contoso.onmicrosoft.com", "BUILD-01", true),
            ("rpa@contoso.onmicrosoft.com", "AzureAD\\rpa@contoso.onmicrosoft.com", "BUILD-01", true),
            ("RPA@CONTOSO.ONMICROSOFT.COM", "rpa@contoso.onmicrosoft.com", "BUILD-01", true),
            ("AzureAD\\rpa", "BUILD-01\\rpa", "BUILD-01", false),
            ("rpa", "rpa@contoso.onmicrosoft.com", "BUILD-01", false),
            ("AzureAD\\rpa@contoso.onmicrosoft.com", "BUILD-01\\rpa", "BUILD-01", false),
            // Malformed names match nothing, not even themselves.
            ("", "", "BUILD-01", false),
            ("\\rpa", "\\rpa", "BUILD-01", false),
            ("BUILD-01\\", "BUILD-01\\", "BUILD-01", false),
            ("a\\b\\c", "a\\b\\c", "BUILD-01", false),
            ("@contoso.com", "@contoso.com", "BUILD-01", false),
            (".\\rpa@contoso.com", ".\\rpa@contoso.com", "BUILD-01", false),
        ];
        for (given, listed, machine, expected) in cases {
            assert_eq!(same_account(given, listed, machine), expected, "'{given}' vs listed '{listed}' on {machine}");
        }
    }
}
