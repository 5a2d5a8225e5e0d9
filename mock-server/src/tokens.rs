//! Token keys: signs the RS256 JWTs the identity surface issues, publishes them as JWKS,
//! and verifies the bearer tokens every emulated API receives. The key is the fixed test
//! key from `fixtures` unless a file replaces it (DECISIONS.md).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Claims of every token the mock issues. Optional claims are left out when empty, as Entra does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Claims {
    /// Audience (the resource).
    pub aud: String,
    /// Issuer: `{origin}/{tenant}/v2.0`.
    pub iss: String,
    /// Issued at (Unix seconds, wall clock).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry.
    pub exp: i64,
    /// Tenant.
    pub tid: String,
    /// Object id of the principal.
    pub oid: String,
    /// Subject.
    pub sub: String,
    /// Client id that asked for the token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub appid: String,
    /// Same as `appid` (v2 name).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub azp: String,
    /// `app` or `user`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub idtyp: String,
    /// User principal name (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    /// Display name (user tokens and id tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Sign-in name (id tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_username: Option<String>,
    /// Delegated scopes (user tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scp: Option<String>,
    /// App roles (app tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    /// `1` secret, `2` certificate, `0` public client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azpacr: Option<String>,
    /// Token version.
    pub ver: String,
    /// Unique token id.
    pub uti: String,
    /// Mock-specific: what kind of token this is (`access`, `id`, `refresh`), so a refresh
    /// token is never accepted as an access token.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mock_typ: String,
    /// Mock-specific: scope granted with a refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_scope: Option<String>,
    /// Mock-specific: the incarnation of the sandbox the token was issued in, so a token of
    /// a deleted sandbox is refused even when a sandbox of the same name exists again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub xms_mock_sbx: String,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a JWT, or not signed by the mock's key.
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
    /// Past `exp`.
    #[error("the token is expired")]
    Expired,
    /// Signed, but of another kind (a refresh or id token used as a bearer token).
    #[error("the token is not an access token")]
    WrongKind,
    /// Its header names no `kid`, or one the mock does not publish.
    #[error("the token's signing key (kid) is not one the mock publishes")]
    UnknownKey,
    /// Its `nbf` is more than [`CLOCK_SKEW_SECS`] in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
}

/// The leeway on `nbf`: a client whose clock is a little ahead still gets in, one that
/// crafted a future token does not.
pub const CLOCK_SKEW_SECS: i64 = 5;

/// The signing key and what is published about it.
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    kid: String,
    n: String,
    e: String,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl Keys {
    /// The fixed test key shipped in `fixtures`.
    pub fn fixed_test_key() -> Self {
        Self::from_pkcs8_pem(fixtures::TOKEN_SIGNING_KEY_PEM)
            .unwrap_or_else(|e| panic!("the embedded signing key: {e}"))
    }

    /// A key from PKCS#8 PEM (RSA).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, String> {
        use aws_lc_rs::signature::KeyPair;
        let der = pem_der(pem, "PRIVATE KEY").ok_or("expected a PKCS#8 'PRIVATE KEY' PEM block")?;
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).map_err(|e| format!("not an RSA PKCS#8 key: {e}"))?;
        let public = pair.public_key();
        let n = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, public.as_ref());
        let kid = URL_SAFE_NO_PAD.encode(&digest.as_ref()[..20]);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_rsa_components(&n, &e).map_err(|e| e.to_string())?;
        Ok(Self { encoding, decoding, kid, n, e })
    }

    /// Signs claims as an RS256 JWT.
    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("JWT".into());
        // Signing with a valid RSA key cannot fail; an empty token would be refused downstream.
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap_or_default()
    }

    /// Checks signature, expiry and kind; the caller checks audience and tenant, since those
    /// are per-surface rules.
    pub fn verify_access_token(&self, token: &str, now_unix: i64) -> Result<Claims, TokenError> {
        let claims = self.verify_any(token, now_unix)?;
        if claims.mock_typ != "access" {
            return Err(TokenError::WrongKind);
        }
        Ok(claims)
    }

    /// [`Keys::verify_access_token`] through `cache`: the signature is checked once per
    /// token, expiry, `nbf` and the kind on every call.
    pub fn verify_access_token_cached(
        &self,
        cache: &VerifiedTokens,
        token: &str,
        now_unix: i64,
    ) -> Result<Arc<VerifiedToken>, TokenError> {
        let verified = match cache.get(token) {
            Some(v) => v,
            None => {
                let v = Arc::new(VerifiedToken::of(self.verify_signature(token)?));
                cache.insert(token, v.clone());
                v
            }
        };
        check_times(&verified.claims, now_unix)?;
        if verified.claims.mock_typ != "access" {
            return Err(TokenError::WrongKind);
        }
        Ok(verified)
    }

    /// Checks key id, signature, `nbf` and expiry of any token the mock issued.
    pub fn verify_any(&self, token: &str, now_unix: i64) -> Result<Claims, TokenError> {
        let claims = self.verify_signature(token)?;
        check_times(&claims, now_unix)?;
        Ok(claims)
    }

    /// Checks key id and signature only: what never changes for a given token, so it can be
    /// cached ([`VerifiedTokens`]); the times are checked on every use.
    pub fn verify_signature(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        let mut v = Validation::new(Algorithm::RS256);
        // Expiry is checked against the caller's clock, with no leeway, so an "expired
        // token" scenario is exact.
        v.validate_exp = false;
        v.validate_aud = false;
        v.required_spec_claims.clear();
        Ok(jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map_err(|_| TokenError::Invalid)?.claims)
    }

    /// The JSON Web Key Set document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "use": "sig",
                "alg": "RS256",
                "kid": self.kid,
                "n": self.n,
                "e": self.e,
            }]
        })
    }
}

/// The DER inside the first PEM block with the given label.
pub fn pem_der(pem: &str, label: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::STANDARD;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok()
}

/// Whether a string looks like a JWT (three base64url segments, the first a JSON header).
/// The journal redacts every such string: it is how tokens the mock issued (and client
/// assertions) are found wherever they appear.
pub fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(h), Some(p), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    h.starts_with("eyJ")
        && !p.is_empty()
        && [h, p, sig].iter().all(|x| x.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

/// Finds JWT-shaped substrings (for redaction inside larger strings such as headers).
pub fn find_jwts(s: &str) -> Vec<(usize, usize)> {
    let bytes = s.as_bytes();
    let is_tok = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.';
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find("eyJ") {
        let start = i + off;
        let mut end = start;
        while end < bytes.len() && is_tok(bytes[end]) {
            end += 1;
        }
        if looks_like_jwt(&s[start..end]) {
            out.push((start, end));
        }
        i = end.max(start + 3);
    }
    out
}

/// Expiry (no leeway) and `nbf` (with [`CLOCK_SKEW_SECS`]) at `now_unix`.
fn check_times(claims: &Claims, now_unix: i64) -> Result<(), TokenError> {
    if claims.exp <= now_unix {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now_unix + CLOCK_SKEW_SECS {
        return Err(TokenError::NotYetValid);
    }
    Ok(())
}

/// A token whose signature checked out, with what its claims alone decide worked out once
/// (they never change for a given token): whether its issuer has the form the mock issues,
/// and the resource its audience names. Each request still checks them against itself.
#[derive(Debug, PartialEq)]
pub struct VerifiedToken {
    /// Its claims.
    pub claims: Claims,
    /// [`crate::hosts::issuer_ok`] of its `iss` and `tid`.
    pub issuer_ok: bool,
    /// Its `aud` parsed; `None` when it names no resource the mock serves.
    pub audience: Option<crate::hosts::Audience>,
}

impl VerifiedToken {
    fn of(claims: Claims) -> Self {
        let issuer_ok = crate::hosts::issuer_ok(&claims.iss, &claims.tid);
        let audience = crate::hosts::Audience::parse(&claims.aud);
        Self { claims, issuer_ok, audience }
    }
}

/// The most tokens [`VerifiedTokens`] remembers.
pub const VERIFIED_TOKENS_CAPACITY: usize = 4096;

/// Tokens whose signature was verified, with their claims, so RS256 is not redone on every
/// request. Only tokens that verified are kept (a bad token costs its verification each
/// time, so garbage cannot fill the cache); at capacity an arbitrary entry makes room.
/// Claims of a token never change, so the cache needs no invalidation: the sandbox
/// incarnation, expiry, `nbf`, issuer and audience are checked on every use.
pub struct VerifiedTokens {
    /// Keyed by [`slot`] of the token; the token itself is kept to be compared whole.
    map: Mutex<Slots>,
    capacity: usize,
}

/// Slot → (the token, what verifying it found).
type Slots = HashMap<u64, (Box<str>, Arc<VerifiedToken>)>;

/// A token's place in the cache: a hash of its last bytes, the signature's, which differ
/// from token to token; hashing the whole kilobyte on every request would cost more than the
/// rest of the lookup. A collision only costs a verification: the whole token is compared.
fn slot(token: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    let tail = &token.as_bytes()[token.len().saturating_sub(32)..];
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(tail)
}

/// Bearer tokens are secrets: a debug print shows how many are held, never one of them.
impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.map.lock().map_or(0, |m| m.len());
        f.debug_struct("VerifiedTokens").field("held", &held).field("capacity", &self.capacity).finish()
    }
}

impl Default for VerifiedTokens {
    fn default() -> Self {
        Self::with_capacity(VERIFIED_TOKENS_CAPACITY)
    }
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { map: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.map.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, token: &str) -> Option<Arc<VerifiedToken>> {
        let slot = slot(token);
        self.lock().get(&slot).filter(|(held, _)| **held == *token).map(|(_, verified)| verified.clone())
    }

    fn insert(&self, token: &str, verified: Arc<VerifiedToken>) {
        let mut map = self.lock();
        if map.len() >= self.capacity
            && let Some(k) = map.keys().next().copied()
        {
            map.remove(&k);
        }
        map.insert(slot(token), (token.into(), verified));
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            aud: "https://api.powerplatform.com".into(),
            exp,
            mock_typ: "access".into(),
            ver: "2.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_token_verifies_and_round_trips_its_claims() {
        let keys = Keys::fixed_test_key();
        let token = keys.sign(&claims(2_000));
        assert!(looks_like_jwt(&token));
        assert_eq!(keys.verify_access_token(&token, 1_000).unwrap(), claims(2_000));
    }

    #[test]
    fn an_expired_or_tampered_token_is_refused() {
        let keys = Keys::fixed_test_key();
        let token = keys.sign(&claims(2_000));
        assert_eq!(keys.verify_access_token(&token, 2_000), Err(TokenError::Expired));
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert_eq!(keys.verify_access_token(&tampered, 1_000), Err(TokenError::Invalid));
        assert_eq!(keys.verify_access_token("not-a-token", 1_000), Err(TokenError::Invalid));
    }

    #[test]
    fn the_cache_verifies_a_signature_once_and_still_checks_expiry_and_kind_on_every_use() {
        let keys = Keys::fixed_test_key();
        let cache = VerifiedTokens::with_capacity(2);
        let token = keys.sign(&claims(2_000));
        assert_eq!(keys.verify_access_token_cached(&cache, &token, 1_000).unwrap().claims, claims(2_000));
        assert_eq!(cache.len(), 1);
        assert_eq!(keys.verify_access_token_cached(&cache, &token, 2_000), Err(TokenError::Expired));
        let refresh = keys.sign(&Claims { mock_typ: "refresh".into(), ..claims(2_000) });
        assert_eq!(keys.verify_access_token_cached(&cache, &refresh, 1_000), Err(TokenError::WrongKind));
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert_eq!(keys.verify_access_token_cached(&cache, &tampered, 1_000), Err(TokenError::Invalid));
        assert_eq!(cache.len(), 2, "the tampered token is not kept");
        let third = keys.sign(&claims(3_000));
        assert!(keys.verify_access_token_cached(&cache, &third, 1_000).is_ok());
        assert_eq!(cache.len(), 2, "bounded");
        let shown = format!("{cache:?}");
        assert!(!shown.contains(&third) && !shown.contains("eyJ"), "a debug print shows no token: {shown}");
    }

    #[test]
    fn a_future_nbf_is_refused_beyond_five_seconds() {
        let keys = Keys::fixed_test_key();
        let mut c = claims(2_000);
        c.nbf = 1_005;
        assert!(keys.verify_access_token(&keys.sign(&c), 1_000).is_ok());
        c.nbf = 1_006;
        assert_eq!(keys.verify_access_token(&keys.sign(&c), 1_000), Err(TokenError::NotYetValid));
    }

    #[test]
    fn a_missing_or_unknown_kid_is_refused_even_with_a_good_signature() {
        let keys = Keys::fixed_test_key();
        let sign = |kid: Option<&str>| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = kid.map(str::to_owned);
            jsonwebtoken::encode(&header, &claims(2_000), &keys.encoding).unwrap()
        };
        assert_eq!(keys.verify_access_token(&sign(None), 1_000), Err(TokenError::UnknownKey));
        assert_eq!(keys.verify_access_token(&sign(Some("other")), 1_000), Err(TokenError::UnknownKey));
        assert!(keys.verify_access_token(&sign(Some(&keys.kid)), 1_000).is_ok());
    }

    #[test]
    fn a_refresh_token_is_not_an_access_token() {
        let keys = Keys::fixed_test_key();
        let mut c = claims(2_000);
        c.mock_typ = "refresh".into();
        assert_eq!(keys.verify_access_token(&keys.sign(&c), 1_000), Err(TokenError::WrongKind));
    }

    #[test]
    fn jwts_are_found_inside_larger_strings() {
        let keys = Keys::fixed_test_key();
        let token = keys.sign(&claims(2_000));
        let header = format!("Bearer {token}");
        assert_eq!(find_jwts(&header), vec![(7, header.len())]);
        assert!(find_jwts("eyJ but not a token").is_empty());
    }
}
