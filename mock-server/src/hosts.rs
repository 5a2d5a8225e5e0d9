//! Host names the mock knows, in one place: which real hosts it serves, which names are
//! Microsoft's, and which resource (token audience) a scope's origin names. Routing (which
//! surface a request is for), identity (which audience a token gets) and bearer checks
//! (which audience and issuer a token may carry) all read these, so they cannot disagree.

/// Suffix of the per-environment Power Platform API hosts (api-facts 1.2).
pub const ENV_HOST_SUFFIX: &str = ".environment.api.powerplatform.com";
/// The tenant-level Power Platform API host: the base URL of Microsoft's management SDKs.
pub const TENANT_API_HOST: &str = "api.powerplatform.com";
/// The BAP host.
pub const BAP_HOST: &str = "api.bap.microsoft.com";
/// Entra ID's hosts (and their aliases).
pub const IDENTITY_HOSTS: &[&str] =
    &["login.microsoftonline.com", "login.windows.net", "login.microsoft.com", "sts.windows.net"];
/// Real domains the mock knows of: a host under them that it does not serve gets a clear
/// "not implemented" instead of falling through to path routing.
const MICROSOFT_SUFFIXES: &[&str] = &[
    "microsoftonline.com",
    "powerplatform.com",
    "dynamics.com",
    "microsoft.com",
    "powerapps.com",
    "azure.com",
    "azure-apim.net",
    "windows.net",
];

/// The host without its port, lower-cased (`[::1]:80` → `::1`).
pub fn host_name(host: &str) -> std::borrow::Cow<'_, str> {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        }
    };
    let h = h.trim_end_matches('.');
    // Hosts come lower-cased almost always: no copy then.
    if h.bytes().any(|b| b.is_ascii_uppercase()) { h.to_ascii_lowercase().into() } else { h.into() }
}

/// The `:port` of an authority (`host:8443` → `:8443`), or `""` when it names none.
pub fn port_suffix(authority: &str) -> &str {
    match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') && authority[i + 1..].bytes().all(|b| b.is_ascii_digit()) => {
            &authority[i..]
        }
        _ => "",
    }
}

/// Whether a host name (no port) is under a Microsoft domain: a real host, served by the
/// mock or named as not emulated, never a door for the path forms.
pub fn is_microsoft_host(name: &str) -> bool {
    MICROSOFT_SUFFIXES.iter().any(|s| name == *s || name.strip_suffix(s).is_some_and(|h| h.ends_with('.')))
}

/// The org of a Dataverse host (`contosodev.crm4.dynamics.com` → `contosodev`).
pub fn crm_org(name: &str) -> Option<&str> {
    let (org, domain) = name.split_once('.')?;
    let crm = domain.strip_suffix(".dynamics.com").is_some_and(|c| c.starts_with("crm"));
    (crm && !org.is_empty()).then_some(org)
}

/// Whether the mock answers the identity path forms on this host (no port): Entra's hosts,
/// and every host that is not Microsoft's (loopback, a container name, a LAN address), since
/// the path forms are served on any host.
pub fn serves_identity(name: &str) -> bool {
    IDENTITY_HOSTS.contains(&name) || !is_microsoft_host(name)
}

/// A resource a token can be issued for, as named by a scope's origin (and path, for the
/// loopback Dataverse door). For every real host the port is ignored, so clients that derive
/// the scope from their base URL keep working when the mock is not on 443.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// `https://api.powerplatform.com`.
    PowerPlatform,
    /// `https://apihub.azure.com` (the connector runtime's older audience).
    ApiHub,
    /// `https://api.bap.microsoft.com`.
    Bap,
    /// `https://service.powerapps.com` (BAP's other audience).
    PowerApps,
    /// `https://graph.microsoft.com` (what a user grant without a resource gets).
    Graph,
    /// A Dataverse org, by its host or by `{any origin}/dataverse/{org}`.
    Dataverse {
        /// The org named.
        org: String,
        /// The resource as the token's `aud` carries it.
        uri: String,
    },
}

impl Audience {
    /// The audience a resource string (no trailing `/.default`) names, if any.
    pub fn parse(resource: &str) -> Option<Self> {
        let resource = resource.trim_end_matches('/');
        let (scheme, rest) = resource.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let name = host_name(authority);
        if path.is_empty() {
            let first_party = match name.as_ref() {
                TENANT_API_HOST => Some(Self::PowerPlatform),
                "apihub.azure.com" => Some(Self::ApiHub),
                BAP_HOST => Some(Self::Bap),
                "service.powerapps.com" => Some(Self::PowerApps),
                "graph.microsoft.com" => Some(Self::Graph),
                _ => None,
            };
            if let Some(a) = first_party {
                return (scheme == "https").then_some(a);
            }
            let org = crm_org(&name)?;
            return Some(Self::Dataverse { org: org.to_owned(), uri: format!("{scheme}://{name}") });
        }
        let org = path.strip_prefix("dataverse/").filter(|o| !o.is_empty() && !o.contains('/'))?;
        Some(Self::Dataverse { org: org.to_ascii_lowercase(), uri: resource.to_owned() })
    }

    /// What the token's `aud` says: the real host without its port, or the loopback
    /// Dataverse door as the client wrote it.
    pub fn uri(&self) -> &str {
        match self {
            Self::PowerPlatform => "https://api.powerplatform.com",
            Self::ApiHub => "https://apihub.azure.com",
            Self::Bap => "https://api.bap.microsoft.com",
            Self::PowerApps => "https://service.powerapps.com",
            Self::Graph => "https://graph.microsoft.com",
            Self::Dataverse { uri, .. } => uri,
        }
    }
}

/// Whether `iss` is `{scheme}://{host[:port]}/{tid}/v2.0` for a host the mock answers identity
/// requests on. The request's own origin is not compared: a token got on
/// `login.microsoftonline.com` is good on the loopback door and the other way round.
pub fn issuer_ok(iss: &str, tid: &str) -> bool {
    let Some((scheme, rest)) = iss.split_once("://") else {
        return false;
    };
    let Some((authority, path)) = rest.split_once('/') else {
        return false;
    };
    let scheme_ok = scheme == "https" || scheme == "http";
    let path_ok = path.strip_suffix("/v2.0").is_some_and(|t| !tid.is_empty() && t.eq_ignore_ascii_case(tid));
    scheme_ok && path_ok && authority_ok(authority) && serves_identity(&host_name(authority))
}

/// `host[:port]` or `[v6][:port]`, with a port that is a port.
fn authority_ok(authority: &str) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((h, after)) => (h, if after.is_empty() { None } else { after.strip_prefix(':').or(Some("x")) }),
            None => return false,
        },
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    !host.is_empty() && port.is_none_or(|p| p.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_brackets_are_stripped_from_hosts() {
        assert_eq!(host_name("[::1]:8443"), "::1");
        assert_eq!(host_name("Login.MicrosoftOnline.com:443"), "login.microsoftonline.com");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn the_port_of_a_real_host_in_a_scope_is_ignored() {
        for (resource, aud) in [
            ("https://api.powerplatform.com", "https://api.powerplatform.com"),
            ("https://api.powerplatform.com:8443/", "https://api.powerplatform.com"),
            ("HTTPS://API.PowerPlatform.com:443", "https://api.powerplatform.com"),
            ("https://api.bap.microsoft.com:8443", "https://api.bap.microsoft.com"),
            ("https://contosodev.crm.dynamics.com:8443", "https://contosodev.crm.dynamics.com"),
            ("https://contosodev.crm4.dynamics.com", "https://contosodev.crm4.dynamics.com"),
            ("https://127.0.0.1:8443/dataverse/contosodev", "https://127.0.0.1:8443/dataverse/contosodev"),
            ("http://127.0.0.1/dataverse/contosodev/", "http://127.0.0.1/dataverse/contosodev"),
        ] {
            assert_eq!(Audience::parse(resource).map(|a| a.uri().to_owned()).as_deref(), Some(aud), "{resource}");
        }
        assert!(matches!(
            Audience::parse("https://contosodev.crm.dynamics.com:8443"),
            Some(Audience::Dataverse { org, .. }) if org == "contosodev"
        ));
    }

    #[test]
    fn resources_the_mock_does_not_know_name_no_audience() {
        for resource in [
            "https://unknown.example",
            "http://api.powerplatform.com",
            "https://api.powerplatform.com/other",
            "https://127.0.0.1:8443",
            "https://127.0.0.1/dataverse/a/b",
            "https://crm.dynamics.com",
            "api.powerplatform.com",
            "ftp://api.powerplatform.com",
        ] {
            assert_eq!(Audience::parse(resource), None, "{resource}");
        }
    }

    #[test]
    fn an_issuer_names_the_tokens_tenant_on_an_origin_the_mock_serves() {
        let tid = "c7263f1a-afcd-4e8a-a7ce-66b19698caaa";
        for iss in [
            format!("https://127.0.0.1:8443/{tid}/v2.0"),
            format!("http://localhost/{tid}/v2.0"),
            format!("https://[::1]:8443/{tid}/v2.0"),
            format!("https://login.microsoftonline.com/{tid}/v2.0"),
            format!("https://login.microsoftonline.com:8443/{tid}/v2.0"),
            format!("http://mock:8080/{tid}/v2.0"),
        ] {
            assert!(issuer_ok(&iss, tid), "{iss}");
        }
        for iss in [
            "https://127.0.0.1:8443/2fb041f4-16af-4df6-9550-f140e1fe4a21/v2.0".to_owned(),
            format!("https://sts.windows.net/{tid}/"),
            format!("https://127.0.0.1:8443/{tid}"),
            format!("https://contosodev.crm.dynamics.com/{tid}/v2.0"),
            format!("https://api.powerplatform.com/{tid}/v2.0"),
            format!("ftp://127.0.0.1/{tid}/v2.0"),
            format!("https://127.0.0.1:x/{tid}/v2.0"),
            format!("https:///{tid}/v2.0"),
            format!("https://127.0.0.1/{tid}/extra/v2.0"),
            String::new(),
        ] {
            assert!(!issuer_ok(&iss, tid), "{iss}");
        }
        assert!(!issuer_ok("https://127.0.0.1//v2.0", ""));
    }

    #[test]
    fn the_port_of_an_authority_is_kept_apart() {
        assert_eq!(port_suffix("api.bap.microsoft.com:8443"), ":8443");
        assert_eq!(port_suffix("api.bap.microsoft.com"), "");
        assert_eq!(port_suffix("[::1]:9"), ":9");
        assert_eq!(port_suffix("[::1]"), "");
    }

    #[test]
    fn microsoft_hosts_are_told_apart_from_look_alikes() {
        assert!(is_microsoft_host("api.powerplatform.com"));
        assert!(is_microsoft_host("dynamics.com"));
        assert!(!is_microsoft_host("notdynamics.com"));
        assert!(!is_microsoft_host("127.0.0.1"));
        assert_eq!(crm_org("contosodev.crm.dynamics.com"), Some("contosodev"));
        assert_eq!(crm_org("contosodev.api.crm.dynamics.com"), None);
    }
}
