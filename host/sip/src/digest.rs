//! HTTP Digest authentication for SIP (RFC 3261 section 22, RFC 7616, RFC 8760): the switch
//! challenging phones and trunks ([`Verifier`]) and answering a trunk's challenge
//! ([`DigestClient`]). Everything is a pure function of its inputs: the time and every random
//! value (the nonce seed, the cnonce) are passed in.
//!
//! The switch is multi-tenant and each tenant's SIP domain is its digest realm, so one
//! [`Verifier`] serves every realm: the realm is an argument of each call (issuing a nonce,
//! building challenges, checking a nonce, verifying), not of the verifier. The algorithms a
//! challenge offers can be narrowed per call too ([`Verifier::challenges`]), within those the
//! [`VerifierConfig`] allows.
//!
//! Nonces need no database row: a nonce is `base64url(time || random || HMAC-SHA256(key,
//! time || random || realm))`, so the verifier knows it issued a nonce, for which realm and
//! when, from the nonce alone; a nonce issued for one realm is invalid in every other. Replay
//! is refused by remembering the highest `nc` accepted for each nonce in a bounded map
//! ([`NonceCounts`], one per verifier, shared by all realms), written only once a response has
//! proven the password, so a stranger cannot fill it.
//!
//! Supported: `MD5` and `SHA-256` (also read as `SHA256`, which is not a registered name but
//! costs nothing to accept: the hash is the same), `qop=auth`, and the RFC 2069 form without
//! `qop` where configured. Not supported: `-sess` algorithms, `SHA-512-256`, `qop=auth-int`,
//! `userhash` and `username*` (RFC 7616 section 3.4.4): such a response is refused as
//! unsupported or malformed, and such a challenge is passed over.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::header::HeaderName;
use crate::message::Request;
use crate::syntax::{is_token, is_ws, quoted_end, scan, skip_ws};

/// Why an `Authorization` or `WWW-Authenticate` value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The scheme is not `Digest` (RFC 4475 `regaut01`: ignored, and challenged).
    #[error("unsupported authentication scheme")]
    UnsupportedScheme,
    /// An algorithm other than MD5 and SHA-256, or one the verifier's configuration does not
    /// allow.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// A `qop` other than `auth` (a challenge offering no `auth` at all, or `auth-int`).
    #[error("unsupported qop")]
    UnsupportedQop,
    /// No `qop` in a response to a challenge that offered it (the RFC 2069 form), which the
    /// verifier is not configured to accept.
    #[error("qop required")]
    QopRequired,
    /// The value is empty, or its scheme is not a token.
    #[error("malformed scheme")]
    Syntax,
    /// A parameter is not `name=value` (a missing `=`, an empty value, a stray character).
    #[error("malformed parameter")]
    BadParam,
    /// A quoted string is not closed.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// A parameter appears twice.
    #[error("duplicate parameter")]
    Duplicate,
    /// A required parameter is absent.
    #[error("missing parameter {0}")]
    Missing(&'static str),
    /// A value that is not UTF-8.
    #[error("value is not UTF-8")]
    NotUtf8,
    /// `nc` is not one to eight hex digits.
    #[error("malformed nonce count")]
    BadNonceCount,
    /// `response` is not hex of the algorithm's length.
    #[error("malformed response digest")]
    BadResponseFormat,
    /// A 401 or 407 without any challenge.
    #[error("no challenge")]
    NoChallenge,
}

/// A digest algorithm, ordered weakest first (the client takes the greatest offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`: what every phone speaks, and what RFC 3261 names.
    Md5,
    /// `SHA-256` (RFC 7616, offered first for SIP by RFC 8760).
    Sha256,
}

impl Algorithm {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// Reads an algorithm name, case-insensitively; `SHA256` is read as `SHA-256`.
    pub fn parse(name: &[u8]) -> Option<Algorithm> {
        if name.eq_ignore_ascii_case(b"MD5") {
            Some(Algorithm::Md5)
        } else if name.eq_ignore_ascii_case(b"SHA-256") || name.eq_ignore_ascii_case(b"SHA256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// How many hex digits its digests have.
    fn hex_len(self) -> usize {
        match self {
            Algorithm::Md5 => 32,
            Algorithm::Sha256 => 64,
        }
    }

    /// The lower-case hex digest of `parts` joined by `:`.
    fn hex(self, parts: &[&[u8]]) -> String {
        fn run<D: Digest>(parts: &[&[u8]]) -> String {
            let mut h = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    h.update(b":");
                }
                h.update(p);
            }
            hex::encode(h.finalize())
        }
        match self {
            Algorithm::Md5 => run::<md5::Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }
}

/// `H(username:realm:password)`, what the credential store keeps instead of the password.
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> String {
    algorithm.hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `request-digest`: RFC 7616 section 3.4.1, or RFC 2069's form when `qop` is absent.
fn request_digest(
    algorithm: Algorithm,
    ha1: &str,
    nonce: &str,
    method: &str,
    uri: &[u8],
    qop: Option<&QopAuth>,
) -> String {
    let ha2 = algorithm.hex(&[method.as_bytes(), uri]);
    match qop {
        Some(q) => algorithm.hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            q.nc.as_bytes(),
            q.cnonce.as_bytes(),
            q.qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => algorithm.hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Equality in a time that depends on the lengths only (public: the algorithm fixes them), so
/// timing many guesses does not reveal how many leading digits of the expected response were
/// right. Every byte is compared, with no early exit; `black_box` keeps the optimiser from
/// turning the fold back into a `memcmp` that stops at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && std::hint::black_box(a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y))) == 0
}

/// A parameter's name as written and its value unquoted.
type Param<'a> = (&'a [u8], Vec<u8>);

/// `Digest name=value, ...` split into its parameters, values unquoted. Tolerant of what RFC
/// 7235 allows and phones do: whitespace around `=` and `,`, empty list elements, any case in
/// names, a quoted value where a token is expected and the other way round.
fn digest_params(v: &[u8]) -> Result<Vec<Param<'_>>, AuthError> {
    let start = skip_ws(v, 0);
    let scheme_end = scan(v, start, is_token);
    if scheme_end == start {
        return Err(AuthError::Syntax);
    }
    if !v[start..scheme_end].eq_ignore_ascii_case(b"Digest") {
        return Err(AuthError::UnsupportedScheme);
    }
    if scheme_end < v.len() && !is_ws(v[scheme_end]) {
        return Err(AuthError::Syntax);
    }
    let mut params: Vec<Param<'_>> = Vec::with_capacity(10);
    let mut i = scheme_end;
    loop {
        while i < v.len() && (v[i] == b',' || is_ws(v[i])) {
            i += 1;
        }
        if i == v.len() {
            break;
        }
        let name_end = scan(v, i, is_token);
        let name = &v[i..name_end];
        let eq = skip_ws(v, name_end);
        if name.is_empty() || v.get(eq) != Some(&b'=') {
            return Err(AuthError::BadParam);
        }
        let at = skip_ws(v, eq + 1);
        let (value, end) = if v.get(at) == Some(&b'"') {
            let end = quoted_end(v, at).ok_or(AuthError::UnterminatedQuote)?;
            let inner = v.get(at + 1..end - 1).ok_or(AuthError::UnterminatedQuote)?;
            (unquote(inner), end)
        } else {
            let end = scan(v, at, |b| b != b',' && b != b'"' && !is_ws(b));
            if end == at {
                return Err(AuthError::BadParam);
            }
            (v[at..end].to_vec(), end)
        };
        if params.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            return Err(AuthError::Duplicate);
        }
        params.push((name, value));
        i = skip_ws(v, end);
        if i < v.len() && v[i] != b',' {
            return Err(AuthError::BadParam);
        }
    }
    Ok(params)
}

/// The contents of a quoted string with its `\` escapes removed.
fn unquote(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut escaped = false;
    for &b in s {
        if b == b'\\' && !escaped {
            escaped = true;
        } else {
            out.push(b);
            escaped = false;
        }
    }
    out
}

/// Prints a quoted string, escaping `"` and `\`. Control characters, which a quoted string
/// cannot carry, are left out: no value can break the header line.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars().filter(|c| !c.is_control() || *c == '\t') {
            if c == '"' || c == '\\' {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
        f.write_char('"')
    }
}

fn param<'p>(p: &'p [Param<'_>], name: &str) -> Option<&'p [u8]> {
    p.iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| &v[..])
}

fn text(p: &[Param<'_>], name: &'static str) -> Result<Option<String>, AuthError> {
    param(p, name)
        .map(|v| String::from_utf8(v.to_vec()).map_err(|_| AuthError::NotUtf8))
        .transpose()
}

fn required(p: &[Param<'_>], name: &'static str) -> Result<String, AuthError> {
    text(p, name)?.ok_or(AuthError::Missing(name))
}

fn algorithm_of(p: &[Param<'_>]) -> Result<Algorithm, AuthError> {
    // Absent means MD5 (RFC 7616 section 3.3).
    param(p, "algorithm").map_or(Ok(Algorithm::Md5), |a| {
        Algorithm::parse(a).ok_or(AuthError::UnsupportedAlgorithm)
    })
}

/// A challenge: the value of one `WWW-Authenticate` or `Proxy-Authenticate` header. The
/// switch builds one per algorithm it offers ([`Verifier::challenges`]); a client parses the
/// ones it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The realm (in the switch's challenges, the tenant's SIP domain).
    pub realm: String,
    /// The nonce.
    pub nonce: String,
    /// An opaque value the client must echo, if any.
    pub opaque: Option<String>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// Whether `qop="auth"` is offered.
    pub qop: bool,
    /// `stale=true`: the last response was right but its nonce had expired, so the client
    /// retries with the new nonce without asking its user again.
    pub stale: bool,
}

impl Challenge {
    /// A challenge offering `qop="auth"`, not stale, without opaque.
    pub fn new(realm: impl Into<String>, nonce: impl Into<String>, algorithm: Algorithm) -> Self {
        Challenge {
            realm: realm.into(),
            nonce: nonce.into(),
            opaque: None,
            algorithm,
            qop: true,
            stale: false,
        }
    }

    /// With an opaque value.
    pub fn with_opaque(mut self, opaque: impl Into<String>) -> Self {
        self.opaque = Some(opaque.into());
        self
    }

    /// With `stale=true` when `stale`.
    pub fn with_stale(mut self, stale: bool) -> Self {
        self.stale = stale;
        self
    }

    /// Parses a challenge value. `qop` offering `auth` among others is read as offering
    /// `auth`; offering only others is [`AuthError::UnsupportedQop`].
    pub fn parse(value: &[u8]) -> Result<Challenge, AuthError> {
        let p = digest_params(value)?;
        let qop = match param(&p, "qop") {
            None => false,
            Some(list) => {
                if !list
                    .split(|&b| b == b',')
                    .any(|q| q.trim_ascii().eq_ignore_ascii_case(b"auth"))
                {
                    return Err(AuthError::UnsupportedQop);
                }
                true
            }
        };
        Ok(Challenge {
            realm: required(&p, "realm")?,
            nonce: required(&p, "nonce")?,
            opaque: text(&p, "opaque")?,
            algorithm: algorithm_of(&p)?,
            qop,
            stale: param(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case(b"true")),
        })
    }
}

impl fmt::Display for Challenge {
    /// `Digest realm="..", nonce="..", opaque="..", algorithm=.., qop="auth", stale=true`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (realm, nonce) = (Quoted(&self.realm), Quoted(&self.nonce));
        write!(f, "Digest realm={realm}, nonce={nonce}")?;
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        write!(f, ", algorithm={}", self.algorithm.as_str())?;
        if self.qop {
            f.write_str(", qop=\"auth\"")?;
        }
        if self.stale {
            f.write_str(", stale=true")?;
        }
        Ok(())
    }
}

/// The `qop=auth` part of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QopAuth {
    /// `qop` as written (`auth`, in any case): it is hashed as written.
    pub qop: String,
    /// The client's nonce.
    pub cnonce: String,
    /// `nc` as written (eight hex digits): it is hashed as written.
    pub nc: String,
    /// `nc`'s value.
    pub count: u32,
}

/// A response: the value of an `Authorization` or `Proxy-Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The realm.
    pub realm: String,
    /// The nonce, as the challenge gave it.
    pub nonce: String,
    /// The `uri` the digest covers: the Request-URI.
    pub uri: String,
    /// The request digest, hex.
    pub response: String,
    /// The algorithm (`MD5` when absent).
    pub algorithm: Algorithm,
    /// `qop`, `cnonce` and `nc`; `None` in the RFC 2069 form.
    pub qop: Option<QopAuth>,
    /// The challenge's opaque value, echoed.
    pub opaque: Option<String>,
}

impl Credentials {
    /// Parses a response value. A scheme other than `Digest` is
    /// [`AuthError::UnsupportedScheme`]; `cnonce` and `nc` without `qop` are ignored (RFC 2617
    /// forbids sending them).
    pub fn parse(value: &[u8]) -> Result<Credentials, AuthError> {
        let p = digest_params(value)?;
        let algorithm = algorithm_of(&p)?;
        let qop = match text(&p, "qop")? {
            None => None,
            Some(qop) if qop.eq_ignore_ascii_case("auth") => {
                let nc = required(&p, "nc")?;
                // Digits only: `from_str_radix` alone would take a leading `+`.
                if !(1..=8).contains(&nc.len()) || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(AuthError::BadNonceCount);
                }
                let count = u32::from_str_radix(&nc, 16).map_err(|_| AuthError::BadNonceCount)?;
                Some(QopAuth {
                    qop,
                    cnonce: required(&p, "cnonce")?,
                    nc,
                    count,
                })
            }
            Some(_) => return Err(AuthError::UnsupportedQop),
        };
        let response = required(&p, "response")?;
        if response.len() != algorithm.hex_len() || !response.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(AuthError::BadResponseFormat);
        }
        Ok(Credentials {
            username: required(&p, "username")?,
            realm: required(&p, "realm")?,
            nonce: required(&p, "nonce")?,
            uri: required(&p, "uri")?,
            response,
            algorithm,
            qop,
            opaque: text(&p, "opaque")?,
        })
    }
}

impl fmt::Display for Credentials {
    /// `Digest username="..", realm="..", nonce="..", uri="..", response="..", algorithm=..,
    /// cnonce="..", qop=auth, nc=00000001, opaque=".."`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
            self.algorithm.as_str()
        )?;
        if let Some(q) = &self.qop {
            write!(
                f,
                ", cnonce={}, qop={}, nc={}",
                Quoted(&q.cnonce),
                q.qop,
                q.nc
            )?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        Ok(())
    }
}

/// What [`Verifier::check_nonce`] makes of a nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceState {
    /// Issued by this verifier for the realm asked about, within its lifetime.
    Fresh,
    /// Issued by this verifier for the realm asked about, but expired: challenge again with
    /// `stale=true`.
    Stale,
    /// Not issued by this verifier for the realm asked about (forged, altered, another key,
    /// issued for another realm, or not a nonce).
    Invalid,
}

/// What a nonce stands for: when it was issued and its random part. The HMAC binds them, so
/// this pair identifies the nonce. It binds the realm too, which is left out of the id: the
/// random part, fresh for each nonce, already tells any two nonces apart.
type NonceId = (u64, [u8; 16]);

/// The highest `nc` accepted for each nonce, for nonces still within their lifetime, with a
/// cap on how many are kept. Entries are ordered by issue time: expired ones are dropped
/// from the front, and when the map is full of live nonces the oldest is dropped and every
/// nonce issued up to its time is refused from then on (answered stale, so the client
/// fetches a new one), because a forgotten count could otherwise be replayed.
#[derive(Debug)]
pub struct NonceCounts {
    seen: std::collections::BTreeMap<NonceId, u32>,
    cap: usize,
    forgotten_up_to: Option<u64>,
}

/// Why [`NonceCounts::accept`] refused a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Not above the highest accepted.
    Replay,
    /// The nonce was dropped from a full map.
    Forgotten,
}

impl NonceCounts {
    /// A map keeping at most `cap` nonces (at least one).
    pub fn new(cap: usize) -> NonceCounts {
        NonceCounts {
            seen: std::collections::BTreeMap::new(),
            cap: cap.max(1),
            forgotten_up_to: None,
        }
    }

    /// How many nonces are tracked.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// No nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Accepts `nc` for a nonce if it is above every count accepted for it; nonces issued
    /// before `oldest_live` have expired and are dropped first.
    fn accept(&mut self, id: NonceId, nc: u32, oldest_live: u64) -> Result<(), Refused> {
        while self
            .seen
            .first_key_value()
            .is_some_and(|(k, _)| k.0 < oldest_live)
        {
            self.seen.pop_first();
        }
        if let Some(highest) = self.seen.get_mut(&id) {
            if nc <= *highest {
                return Err(Refused::Replay);
            }
            *highest = nc;
            return Ok(());
        }
        if self.forgotten_up_to.is_some_and(|t| id.0 <= t) {
            return Err(Refused::Forgotten);
        }
        if self.seen.len() >= self.cap
            && let Some(((issued, _), _)) = self.seen.pop_first()
        {
            self.forgotten_up_to = Some(self.forgotten_up_to.map_or(issued, |t| t.max(issued)));
        }
        self.seen.insert(id, nc);
        Ok(())
    }
}

/// The result of verifying a request's credentials, with what to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Authenticated.
    Ok {
        /// Who.
        username: String,
    },
    /// No credentials in the request: challenge.
    NoCredentials,
    /// The response is right but its nonce has expired, or was forgotten under load:
    /// challenge again with `stale=true`.
    Stale,
    /// The response is right but its `nc` is not above one already accepted for the nonce
    /// (a replayed request): challenge again with `stale=true`.
    Replay,
    /// The response does not match: a wrong password, or a digest over something else.
    BadResponse,
    /// No credentials are stored for this username and algorithm. Answer as for
    /// [`Outcome::BadResponse`], so that the wire does not tell which usernames exist.
    UnknownUser {
        /// The username given.
        username: String,
    },
    /// A nonce this verifier did not issue (forged or altered): challenge afresh.
    InvalidNonce,
    /// The credentials are for another realm than the one verified against: challenge.
    RealmMismatch,
    /// The digest's `uri` is not the Request-URI: 400, or challenge.
    UriMismatch,
    /// An algorithm the verifier's configuration does not allow: challenge.
    UnsupportedAlgorithm,
    /// Not a `Digest` response (RFC 4475 `regaut01`): challenge.
    UnsupportedScheme,
    /// The response cannot be read: 400, or challenge.
    Malformed(AuthError),
}

/// How a [`Verifier`] challenges and what it accepts. Not `#[non_exhaustive]`, so that callers
/// can write `VerifierConfig { allow_rfc2069: true, ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// How long a nonce may be used: 300 s. A phone reuses one nonce, counting `nc` up, for
    /// every request until it is refused as stale, which costs one more round trip.
    pub nonce_lifetime: Duration,
    /// The algorithms allowed, most preferred first (RFC 8760 section 2.3): SHA-256 then MD5,
    /// for phones that know only MD5. A challenge offers these, one each, or those of them a
    /// caller passes to [`Verifier::challenges`]; responses in others are refused.
    pub algorithms: Vec<Algorithm>,
    /// Accept the RFC 2069 form (no `qop`), each nonce then usable once: off. Every
    /// challenge offers `qop="auth"`, so only a client from before RFC 2617 omits it, and
    /// without `nc` and `cnonce` a response can be replayed for as long as its nonce lives.
    pub allow_rfc2069: bool,
    /// How many nonces' counts are remembered: 65536.
    pub max_nonces: usize,
    /// An opaque value to put in every challenge, if any. Not checked on the way back: the
    /// nonce carries all the state, and phones that drop opaque would gain nothing by being
    /// refused.
    pub opaque: Option<String>,
}

impl Default for VerifierConfig {
    fn default() -> VerifierConfig {
        VerifierConfig {
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            allow_rfc2069: false,
            max_nonces: 65536,
            opaque: None,
        }
    }
}

/// The length of a decoded nonce: the time, the random part and the HMAC.
const NONCE_BYTES: usize = 8 + 16 + 32;
/// Its length in base64url without padding.
const NONCE_CHARS: usize = (NONCE_BYTES * 8).div_ceil(6);

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The server side, for every realm: issues challenges and verifies responses. The realm is
/// given with each call because the switch is multi-tenant and each tenant's SIP domain is its
/// realm; one verifier (one key, one replay table) serves them all. Not `Clone`: two copies
/// would each accept the same `nc` once.
pub struct Verifier {
    /// HMAC-SHA256 keyed with the server key, cloned for each nonce (the key's inner and
    /// outer blocks are computed once).
    mac: Hmac<Sha256>,
    config: VerifierConfig,
    /// One table for every realm. Its keys are nonce ids without the realm, and need none:
    /// the random part is fresh for each nonce, so two realms' nonces share an id only by
    /// chance (one in 2^128 for two nonces of the same second), and a count is written only
    /// for a nonce whose HMAC proved it was issued for the realm being verified, so a
    /// response in one realm cannot spend or replay another realm's counts.
    counts: NonceCounts,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("nonces", &self.counts.len())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for every realm. `key` authenticates its nonces: random, and shared by every
    /// host that must accept another's nonces; changing it makes every nonce invalid.
    pub fn new(key: [u8; 32], config: VerifierConfig) -> Verifier {
        // HMAC pads a key shorter than its 64-byte block with zeros (RFC 2104), so this is the
        // HMAC keyed with `key`, built through the infallible constructor.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&key);
        Verifier {
            mac: Hmac::<Sha256>::new(&block.into()),
            counts: NonceCounts::new(config.max_nonces),
            config,
        }
    }

    /// The algorithms the configuration allows, most preferred first: what to pass as
    /// `offer` to [`Verifier::challenges`] when every one of them may be offered.
    pub fn algorithms(&self) -> &[Algorithm] {
        &self.config.algorithms
    }

    /// The HMAC over a nonce's time and random part and the realm it is for, so that a nonce
    /// issued for one realm is not ours in another. The head has a fixed length (24 bytes),
    /// so the input is unambiguous: no two pairs of head and realm hash the same bytes.
    fn tag(&self, realm: &str, head: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(head);
        mac.update(realm.as_bytes());
        mac
    }

    /// A new nonce for `realm` issued at `now`; `random` must be fresh random bytes for each,
    /// whatever the realm: the replay table, shared by every realm, tells nonces apart by
    /// issue time and random part only.
    pub fn nonce(&self, realm: &str, now: SystemTime, random: [u8; 16]) -> String {
        let mut raw = [0u8; NONCE_BYTES];
        raw[..8].copy_from_slice(&unix_secs(now).to_be_bytes());
        raw[8..24].copy_from_slice(&random);
        let tag = self.tag(realm, &raw[..24]).finalize().into_bytes();
        raw[24..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The challenge values for a 401 or 407 in `realm`, all with one new nonce (as in RFC
    /// 7616 section 3.9.1's example): one per algorithm of `offer` that the configuration
    /// also allows, in `offer`'s order, each algorithm once. `offer` is usually
    /// [`Verifier::algorithms`]; a caller narrows it to leave out an algorithm a user has no
    /// stored HA1 for, since a client that picked it could never succeed.
    ///
    /// When no algorithm of `offer` is allowed the result is empty. A 401 or 407 must carry
    /// at least one challenge (RFC 3261 sections 22.2 and 22.3), so the caller then has none
    /// to send and must answer otherwise (403, for example).
    pub fn challenges(
        &self,
        realm: &str,
        offer: &[Algorithm],
        now: SystemTime,
        random: [u8; 16],
        stale: bool,
    ) -> Vec<String> {
        let mut algorithms: Vec<Algorithm> = Vec::with_capacity(offer.len());
        for &a in offer {
            if self.config.algorithms.contains(&a) && !algorithms.contains(&a) {
                algorithms.push(a);
            }
        }
        if algorithms.is_empty() {
            return Vec::new();
        }
        let nonce = self.nonce(realm, now, random);
        algorithms
            .into_iter()
            .map(|a| {
                let mut c = Challenge::new(realm, &*nonce, a).with_stale(stale);
                c.opaque.clone_from(&self.config.opaque);
                c.to_string()
            })
            .collect()
    }

    fn decode(&self, realm: &str, nonce: &str) -> Option<NonceId> {
        // Only a nonce of our length is decoded: no allocation sized by what a client sent.
        if nonce.len() != NONCE_CHARS {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        let (head, tag) = raw.split_at_checked(24)?;
        // `verify_slice` compares in constant time and refuses a tag of the wrong length.
        self.tag(realm, head).verify_slice(tag).ok()?;
        let (time, random) = head.split_first_chunk::<8>()?;
        Some((u64::from_be_bytes(*time), random.try_into().ok()?))
    }

    /// Whether `nonce` is one of ours for `realm` and still usable at `now`. A nonce issued
    /// for another realm is [`NonceState::Invalid`]. A nonce from up to its lifetime in the
    /// future is accepted too: it is ours, and the clock was stepped back.
    pub fn check_nonce(&self, realm: &str, now: SystemTime, nonce: &str) -> NonceState {
        match self.decode(realm, nonce) {
            None => NonceState::Invalid,
            Some((issued, _)) if self.fresh(now, issued) => NonceState::Fresh,
            Some(_) => NonceState::Stale,
        }
    }

    fn fresh(&self, now: SystemTime, issued: u64) -> bool {
        unix_secs(now).abs_diff(issued) <= self.config.nonce_lifetime.as_secs()
    }

    /// Verifies one `Authorization` (or `Proxy-Authorization`) value of a request to
    /// `realm`: credentials naming another realm are [`Outcome::RealmMismatch`], and a nonce
    /// issued for another realm is [`Outcome::InvalidNonce`]. `request_uri` is the
    /// Request-URI as received, which the digest's `uri` must equal byte for byte. `ha1_for`
    /// looks up the stored [`ha1`] for a username and algorithm (in `realm`); it is called
    /// only for a response that passes every other check.
    pub fn verify(
        &mut self,
        realm: &str,
        now: SystemTime,
        method: &str,
        request_uri: &[u8],
        value: &[u8],
        ha1_for: impl FnOnce(&str, Algorithm) -> Option<String>,
    ) -> Outcome {
        let c = match Credentials::parse(value) {
            Ok(c) => c,
            Err(AuthError::UnsupportedScheme) => return Outcome::UnsupportedScheme,
            Err(AuthError::UnsupportedAlgorithm) => return Outcome::UnsupportedAlgorithm,
            Err(e) => return Outcome::Malformed(e),
        };
        if !self.config.algorithms.contains(&c.algorithm) {
            return Outcome::UnsupportedAlgorithm;
        }
        if c.realm != realm {
            return Outcome::RealmMismatch;
        }
        if c.uri.as_bytes() != request_uri {
            return Outcome::UriMismatch;
        }
        if c.qop.is_none() && !self.config.allow_rfc2069 {
            return Outcome::Malformed(AuthError::QopRequired);
        }
        let Some(id) = self.decode(realm, &c.nonce) else {
            return Outcome::InvalidNonce;
        };
        // The response is checked before staleness and replay: `stale=true` tells the client
        // its password was right (RFC 7616 section 3.3), and only a proven response may
        // write to the nonce counts.
        let stored = ha1_for(&c.username, c.algorithm);
        // An unknown user costs the same hashing as a known one.
        let ha1 = stored
            .clone()
            .unwrap_or_else(|| "0".repeat(c.algorithm.hex_len()));
        let expected = request_digest(
            c.algorithm,
            &ha1,
            &c.nonce,
            method,
            request_uri,
            c.qop.as_ref(),
        );
        // The response's case is the client's; lowering it reveals nothing about `expected`.
        let matches = constant_time_eq(
            expected.as_bytes(),
            c.response.to_ascii_lowercase().as_bytes(),
        );
        if stored.is_none() {
            return Outcome::UnknownUser {
                username: c.username,
            };
        }
        if !matches {
            return Outcome::BadResponse;
        }
        if !self.fresh(now, id.0) {
            return Outcome::Stale;
        }
        let oldest_live = unix_secs(now).saturating_sub(self.config.nonce_lifetime.as_secs());
        // The RFC 2069 form has no count: as count 0, its nonce is accepted once.
        let nc = c.qop.as_ref().map_or(0, |q| q.count);
        match self.counts.accept(id, nc, oldest_live) {
            Ok(()) => Outcome::Ok {
                username: c.username,
            },
            Err(Refused::Replay) => Outcome::Replay,
            Err(Refused::Forgotten) => Outcome::Stale,
        }
    }

    /// Verifies a request's credentials for `realm` in `header` (`Authorization` for a
    /// registrar or UAS, `Proxy-Authorization` for a proxy): the value for `realm` where there
    /// are several (RFC 3261 section 22.3), else the first, checked as [`Verifier::verify`]
    /// checks it. No value at all is [`Outcome::NoCredentials`].
    pub fn verify_request(
        &mut self,
        realm: &str,
        now: SystemTime,
        request: &Request,
        header: &HeaderName,
        ha1_for: impl FnOnce(&str, Algorithm) -> Option<String>,
    ) -> Outcome {
        let values: Vec<&Bytes> = request.headers().get_all(header).collect();
        let ours = values
            .iter()
            .find(|v| Credentials::parse(v).is_ok_and(|c| c.realm == realm))
            .or(values.first());
        match ours {
            None => Outcome::NoCredentials,
            Some(v) => self.verify(
                realm,
                now,
                request.method().as_str(),
                request.uri().as_bytes(),
                v,
                ha1_for,
            ),
        }
    }
}

/// Builds the response to `challenge` for one request: `qop=auth` with `cnonce` and `nc`
/// when the challenge offers it, else the RFC 2069 form; `opaque` and `algorithm` echoed.
pub fn respond(
    challenge: &Challenge,
    username: &str,
    password: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> Credentials {
    let qop = challenge.qop.then(|| QopAuth {
        qop: "auth".to_owned(),
        cnonce: cnonce.to_owned(),
        nc: format!("{nc:08x}"),
        count: nc,
    });
    let ha1 = ha1(challenge.algorithm, username, &challenge.realm, password);
    Credentials {
        response: request_digest(
            challenge.algorithm,
            &ha1,
            &challenge.nonce,
            method,
            uri.as_bytes(),
            qop.as_ref(),
        ),
        username: username.to_owned(),
        realm: challenge.realm.clone(),
        nonce: challenge.nonce.clone(),
        uri: uri.to_owned(),
        algorithm: challenge.algorithm,
        qop,
        opaque: challenge.opaque.clone(),
    }
}

/// The client side for one account (the switch registering with a trunk): keeps the
/// strongest challenge it was sent and counts `nc` for its nonce, so later requests can
/// reuse the nonce until the server calls it stale.
///
/// Whether a challenge means the password is wrong is the caller's to judge: a 401 to a
/// request that carried fresh credentials, without `stale=true`, should not be retried.
#[derive(Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    challenge: Option<Challenge>,
    nc: u32,
}

impl fmt::Debug for DigestClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password.
        f.debug_struct("DigestClient")
            .field("username", &self.username)
            .field("challenge", &self.challenge)
            .field("nc", &self.nc)
            .finish_non_exhaustive()
    }
}

impl DigestClient {
    /// A client for `username` and `password`, not yet challenged.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> DigestClient {
        DigestClient {
            username: username.into(),
            password: password.into(),
            challenge: None,
            nc: 0,
        }
    }

    /// Takes the challenge values of a 401 or 407 (every `WWW-Authenticate` or
    /// `Proxy-Authenticate` value) and keeps the strongest it supports: SHA-256 over MD5,
    /// the first of equals. RFC 8760 section 2.4 says to take the topmost supported "unless a
    /// local policy dictates otherwise"; this is such a policy, because challenges are not
    /// integrity-protected and whoever can reorder them could otherwise push MD5 to the top.
    /// A new nonce starts its count again; the same nonce keeps it. Without a usable
    /// challenge, the error of the first one (the previous challenge is kept).
    pub fn challenged<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<&Challenge, AuthError> {
        let mut best: Option<Challenge> = None;
        let mut first_error = None;
        for v in values {
            match Challenge::parse(v) {
                Ok(c) if best.as_ref().is_none_or(|b| c.algorithm > b.algorithm) => best = Some(c),
                Ok(_) => {}
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        let best = best.ok_or(first_error.unwrap_or(AuthError::NoChallenge))?;
        if self
            .challenge
            .as_ref()
            .is_none_or(|c| c.nonce != best.nonce)
        {
            self.nc = 0;
        }
        Ok(self.challenge.insert(best))
    }

    /// The `Authorization` (or `Proxy-Authorization`) value for the next request, counting
    /// `nc` up; `cnonce` must be fresh random text for each. `None` before any challenge,
    /// or once the count is exhausted (then a new challenge is needed).
    pub fn authorization(&mut self, method: &str, uri: &str, cnonce: &str) -> Option<String> {
        let challenge = self.challenge.as_ref()?;
        self.nc = self.nc.checked_add(1)?;
        let c = respond(
            challenge,
            &self.username,
            &self.password,
            method,
            uri,
            cnonce,
            self.nc,
        );
        Some(c.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];
    const REALM: &str = "pbx.example.com";
    const URI: &[u8] = b"sip:pbx.example.com";
    /// A second tenant's realm, served by the same verifier.
    const OTHER: &str = "other.example.com";

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    const T0: u64 = 1_700_000_000;

    fn verifier() -> Verifier {
        Verifier::new(KEY, VerifierConfig::default())
    }

    /// The stored HA1 of alice (password "secret") in either algorithm.
    fn store(user: &str, a: Algorithm) -> Option<String> {
        (user == "alice").then(|| ha1(a, "alice", REALM, "secret"))
    }

    /// A response from alice with `password`, to a SHA-256 challenge issued at `T0`.
    fn answer(password: &str, nc: u32) -> String {
        let c = Challenge::new(
            REALM,
            verifier().nonce(REALM, at(T0), [1; 16]),
            Algorithm::Sha256,
        );
        respond(
            &c,
            "alice",
            password,
            "REGISTER",
            "sip:pbx.example.com",
            "c1",
            nc,
        )
        .to_string()
    }

    fn verify(v: &mut Verifier, now: u64, value: &str) -> Outcome {
        v.verify(REALM, at(now), "REGISTER", URI, value.as_bytes(), store)
    }

    #[test]
    fn rfc2617_example() {
        // RFC 2617 section 3.5, unfolded as a SIP parser hands it over (a fold is one SP).
        let challenge = Challenge::parse(
            b"Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert!(challenge.qop);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let c = respond(
            &challenge,
            "Mufasa",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "0a4f113b",
            1,
        );
        assert_eq!(c.response, "6629fae49393a05397450978507c4ef1");
        let sent = Credentials::parse(
            b"Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
              nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
              qop=auth, nc=00000001, cnonce=\"0a4f113b\", \
              response=\"6629fae49393a05397450978507c4ef1\", \
              opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .unwrap();
        assert_eq!(sent, c);
        assert_eq!(Credentials::parse(c.to_string().as_bytes()).unwrap(), c);
    }

    #[test]
    fn rfc7616_examples() {
        // RFC 7616 section 3.9.1: two challenges, SHA-256 first; the client takes SHA-256.
        let challenge = |alg: &str| {
            format!(
                "Digest\trealm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                 algorithm={alg}, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                 opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
            )
        };
        let (sha, md5) = (challenge("SHA-256"), challenge("MD5"));
        let mut client = DigestClient::new("Mufasa", "Circle of Life");
        for order in [[&md5, &sha], [&sha, &md5]] {
            let picked = client.challenged(order.map(|s| s.as_bytes())).unwrap();
            assert_eq!(picked.algorithm, Algorithm::Sha256);
        }
        let value = client
            .authorization(
                "GET",
                "/dir/index.html",
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            )
            .unwrap();
        let sent = Credentials::parse(value.as_bytes()).unwrap();
        assert_eq!(
            sent.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(
            sent.opaque.as_deref(),
            Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
        );
        assert!(value.contains(", algorithm=SHA-256, "), "{value}");
        assert!(value.contains(", qop=auth, nc=00000001"), "{value}");

        let c = respond(
            &Challenge::parse(md5.as_bytes()).unwrap(),
            "Mufasa",
            "Circle of Life",
            "GET",
            "/dir/index.html",
            "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            1,
        );
        assert_eq!(c.response, "8ca523f5e9506fed4657c9700eebdbec");
    }

    #[test]
    fn challenges_offer_sha256_then_md5() {
        let config = VerifierConfig {
            opaque: Some("o1".into()),
            ..VerifierConfig::default()
        };
        let v = Verifier::new(KEY, config);
        let nonce = v.nonce(REALM, at(T0), [9; 16]);
        assert_eq!(nonce.len(), NONCE_CHARS);
        assert_eq!(
            v.challenges(REALM, v.algorithms(), at(T0), [9; 16], true),
            [
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{nonce}\", opaque=\"o1\", \
                     algorithm=SHA-256, qop=\"auth\", stale=true"
                ),
                format!(
                    "Digest realm=\"{REALM}\", nonce=\"{nonce}\", opaque=\"o1\", \
                     algorithm=MD5, qop=\"auth\", stale=true"
                ),
            ]
        );
        let c = Challenge::parse(
            v.challenges(REALM, v.algorithms(), at(T0), [9; 16], false)[0].as_bytes(),
        )
        .unwrap();
        assert_eq!(c.nonce, nonce);
        assert!(!c.stale);
    }

    #[test]
    fn challenges_offer_what_the_caller_asks_and_the_config_allows() {
        let v = verifier();
        assert_eq!(v.algorithms(), [Algorithm::Sha256, Algorithm::Md5]);
        let nonce = v.nonce(REALM, at(T0), [9; 16]);
        // A user with an MD5 HA1 only: exactly one challenge, MD5, for the realm asked.
        let md5 = v.challenges(REALM, &[Algorithm::Md5], at(T0), [9; 16], false);
        assert_eq!(
            md5,
            [format!(
                "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\""
            )]
        );
        // The offer's order, not the config's; each algorithm once.
        let algorithms = |offer: &[Algorithm]| -> Vec<Algorithm> {
            v.challenges(REALM, offer, at(T0), [9; 16], false)
                .iter()
                .map(|c| Challenge::parse(c.as_bytes()).unwrap().algorithm)
                .collect()
        };
        assert_eq!(
            algorithms(&[Algorithm::Md5, Algorithm::Sha256, Algorithm::Md5]),
            [Algorithm::Md5, Algorithm::Sha256]
        );
        // An offer outside the config, or none: no challenge at all.
        let sha_only = Verifier::new(
            KEY,
            VerifierConfig {
                algorithms: vec![Algorithm::Sha256],
                ..VerifierConfig::default()
            },
        );
        assert_eq!(sha_only.algorithms(), [Algorithm::Sha256]);
        assert!(
            sha_only
                .challenges(REALM, &[Algorithm::Md5], at(T0), [9; 16], false)
                .is_empty()
        );
        assert!(v.challenges(REALM, &[], at(T0), [9; 16], false).is_empty());
    }

    /// alice's stored HA1 in `realm`: one password, a different HA1 in each realm.
    fn store_in(realm: &'static str) -> impl FnOnce(&str, Algorithm) -> Option<String> {
        move |user, a| (user == "alice").then(|| ha1(a, "alice", realm, "secret"))
    }

    /// alice's response in `realm` to `v`'s SHA-256 challenge for `realm` issued at `T0`.
    fn answer_in(v: &Verifier, realm: &str, random: [u8; 16], nc: u32) -> String {
        let c = Challenge::new(realm, v.nonce(realm, at(T0), random), Algorithm::Sha256);
        respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c1",
            nc,
        )
        .to_string()
    }

    /// `value` verified at `T0` for `realm`, against alice's HA1 in `realm`.
    fn verify_in(v: &mut Verifier, realm: &'static str, value: &str) -> Outcome {
        v.verify(
            realm,
            at(T0),
            "REGISTER",
            URI,
            value.as_bytes(),
            store_in(realm),
        )
    }

    #[test]
    fn one_verifier_serves_two_realms() {
        let mut v = verifier();
        let ok = Outcome::Ok {
            username: "alice".into(),
        };
        let ours = answer_in(&v, REALM, [1; 16], 1);
        let theirs = answer_in(&v, OTHER, [2; 16], 1);
        // Each realm's response is checked against the realm asked for.
        assert_eq!(verify_in(&mut v, OTHER, &ours), Outcome::RealmMismatch);
        assert_eq!(verify_in(&mut v, REALM, &theirs), Outcome::RealmMismatch);
        assert_eq!(verify_in(&mut v, REALM, &ours), ok);
        assert_eq!(verify_in(&mut v, OTHER, &theirs), ok);
        // A nonce issued for one realm is not ours in the other, by check_nonce or by verify,
        // even in a response that is otherwise right for the other realm.
        let nonce = v.nonce(REALM, at(T0), [3; 16]);
        assert_eq!(v.check_nonce(REALM, at(T0), &nonce), NonceState::Fresh);
        assert_eq!(v.check_nonce(OTHER, at(T0), &nonce), NonceState::Invalid);
        let moved = respond(
            &Challenge::new(OTHER, &*nonce, Algorithm::Sha256),
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c1",
            1,
        )
        .to_string();
        assert_eq!(verify_in(&mut v, OTHER, &moved), Outcome::InvalidNonce);
    }

    #[test]
    fn replay_is_refused_in_each_realm_with_one_table() {
        let mut v = verifier();
        let ok = Outcome::Ok {
            username: "alice".into(),
        };
        // alice's response with count `nc` to the nonce for `realm` made of `random`.
        let mut check = |realm: &'static str, random: [u8; 16], nc: u32| {
            let value = answer_in(&v, realm, random, nc);
            verify_in(&mut v, realm, &value)
        };
        assert_eq!(check(REALM, [1; 16], 1), ok);
        assert_eq!(check(OTHER, [2; 16], 1), ok);
        assert_eq!(check(REALM, [1; 16], 1), Outcome::Replay);
        assert_eq!(check(OTHER, [2; 16], 1), Outcome::Replay);
        // Each nonce counts on its own: one realm's count does not move the other's.
        assert_eq!(check(REALM, [1; 16], 3), ok);
        assert_eq!(check(OTHER, [2; 16], 2), ok);
        assert_eq!(check(REALM, [1; 16], 2), Outcome::Replay);
        assert_eq!(check(OTHER, [2; 16], 2), Outcome::Replay);
        // A response replayed into the other realm is refused there, and counts nothing.
        let ours = answer_in(&v, REALM, [1; 16], 4);
        assert_eq!(verify_in(&mut v, OTHER, &ours), Outcome::RealmMismatch);
        assert_eq!(verify_in(&mut v, REALM, &ours), ok);
        assert_eq!(verify_in(&mut v, REALM, &ours), Outcome::Replay);
        assert_eq!(v.counts.len(), 2);
    }

    #[test]
    fn display_round_trips_and_keeps_to_one_line() {
        let c = Challenge::new("a \"b\" \\ c\r\nX-Injected: 1", "n", Algorithm::Md5)
            .with_opaque("o")
            .with_stale(true);
        let text = c.to_string();
        assert_eq!(
            text,
            "Digest realm=\"a \\\"b\\\" \\\\ cX-Injected: 1\", nonce=\"n\", opaque=\"o\", \
             algorithm=MD5, qop=\"auth\", stale=true"
        );
        let back = Challenge::parse(text.as_bytes()).unwrap();
        assert_eq!(back.realm, "a \"b\" \\ cX-Injected: 1");
        assert_eq!(
            (back.opaque.as_deref(), back.stale, back.qop),
            (Some("o"), true, true)
        );
    }

    #[test]
    fn nonces_expire_and_are_bound_to_key_and_realm() {
        let v = verifier();
        let nonce = v.nonce(REALM, at(T0), [1; 16]);
        assert_eq!(v.check_nonce(REALM, at(T0), &nonce), NonceState::Fresh);
        assert_eq!(
            v.check_nonce(REALM, at(T0 + 300), &nonce),
            NonceState::Fresh
        );
        assert_eq!(
            v.check_nonce(REALM, at(T0 + 301), &nonce),
            NonceState::Stale
        );
        // The clock stepped back: still ours, still usable.
        assert_eq!(v.check_nonce(REALM, at(T0 - 10), &nonce), NonceState::Fresh);
        let other_key = Verifier::new([8; 32], VerifierConfig::default());
        assert_eq!(
            other_key.check_nonce(REALM, at(T0), &nonce),
            NonceState::Invalid
        );
        // The same verifier, asked about another realm.
        assert_eq!(v.check_nonce(OTHER, at(T0), &nonce), NonceState::Invalid);
        // Every single-character change, in the time, the random part or the tag.
        for i in 0..nonce.len() {
            let mut t = nonce.clone().into_bytes();
            t[i] = if t[i] == b'A' { b'B' } else { b'A' };
            let t = String::from_utf8(t).unwrap();
            assert_eq!(v.check_nonce(REALM, at(T0), &t), NonceState::Invalid, "{t}");
        }
        for bad in [
            "",
            "x",
            &nonce[1..],
            &format!("{nonce}A"),
            &format!("{nonce}="),
        ] {
            assert_eq!(
                v.check_nonce(REALM, at(T0), bad),
                NonceState::Invalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn right_password_then_replay() {
        let mut v = verifier();
        let ok = Outcome::Ok {
            username: "alice".into(),
        };
        assert_eq!(verify(&mut v, T0 + 1, &answer("secret", 1)), ok);
        assert_eq!(
            verify(&mut v, T0 + 2, &answer("secret", 1)),
            Outcome::Replay
        );
        assert_eq!(verify(&mut v, T0 + 2, &answer("secret", 3)), ok);
        assert_eq!(
            verify(&mut v, T0 + 2, &answer("secret", 2)),
            Outcome::Replay
        );
        assert_eq!(verify(&mut v, T0 + 2, &answer("secret", 4)), ok);
        assert_eq!(v.counts.len(), 1);
    }

    #[test]
    fn wrong_password_unknown_user_and_stale() {
        let mut v = verifier();
        assert_eq!(
            verify(&mut v, T0, &answer("guess", 1)),
            Outcome::BadResponse
        );
        // A wrong guess writes no count: the right answer with the same nc still passes.
        assert!(matches!(
            verify(&mut v, T0, &answer("secret", 1)),
            Outcome::Ok { .. }
        ));
        let c = Challenge::new(REALM, v.nonce(REALM, at(T0), [1; 16]), Algorithm::Md5);
        let bob = respond(
            &c,
            "bob",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c",
            1,
        );
        assert_eq!(
            verify(&mut v, T0, &bob.to_string()),
            Outcome::UnknownUser {
                username: "bob".into()
            }
        );
        // Expired: stale only for the right password (RFC 7616 section 3.3).
        assert_eq!(
            verify(&mut v, T0 + 301, &answer("secret", 2)),
            Outcome::Stale
        );
        assert_eq!(
            verify(&mut v, T0 + 301, &answer("guess", 2)),
            Outcome::BadResponse
        );
    }

    #[test]
    fn realm_uri_nonce_scheme_and_algorithm_checks() {
        let mut v = verifier();
        let nonce = v.nonce(REALM, at(T0), [1; 16]);
        let mut c = Challenge::new("elsewhere.example.com", &*nonce, Algorithm::Sha256);
        let r = respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c",
            1,
        );
        assert_eq!(verify(&mut v, T0, &r.to_string()), Outcome::RealmMismatch);
        c.realm = REALM.into();
        // The uri is compared byte for byte: an equivalent URI written otherwise differs.
        let r = respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:PBX.example.com",
            "c",
            1,
        );
        assert_eq!(verify(&mut v, T0, &r.to_string()), Outcome::UriMismatch);
        // A forged nonce is refused before any password check.
        let mut forged = nonce.clone();
        forged.replace_range(..1, if nonce.starts_with('A') { "B" } else { "A" });
        c.nonce = forged;
        let r = respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c",
            1,
        );
        assert_eq!(verify(&mut v, T0, &r.to_string()), Outcome::InvalidNonce);
        for other in [
            "NoOneKnowsThisScheme opaque-data=here",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        ] {
            assert_eq!(verify(&mut v, T0, other), Outcome::UnsupportedScheme);
        }
        let sess = answer("secret", 1).replace("algorithm=SHA-256", "algorithm=MD5-sess");
        assert_eq!(verify(&mut v, T0, &sess), Outcome::UnsupportedAlgorithm);
        let config = VerifierConfig {
            algorithms: vec![Algorithm::Sha256],
            ..VerifierConfig::default()
        };
        let mut sha_only = Verifier::new(KEY, config);
        c.nonce = nonce;
        c.algorithm = Algorithm::Md5;
        let r = respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "c",
            1,
        );
        assert_eq!(
            verify(&mut sha_only, T0, &r.to_string()),
            Outcome::UnsupportedAlgorithm
        );
    }

    #[test]
    fn rfc2069_only_when_allowed_and_then_once() {
        let mut c = Challenge::new(
            REALM,
            verifier().nonce(REALM, at(T0), [1; 16]),
            Algorithm::Md5,
        );
        c.qop = false;
        let r = respond(
            &c,
            "alice",
            "secret",
            "REGISTER",
            "sip:pbx.example.com",
            "",
            1,
        );
        let r = r.to_string();
        assert!(
            !r.contains("qop") && !r.contains("cnonce") && !r.contains("nc="),
            "{r}"
        );
        assert_eq!(
            verify(&mut verifier(), T0, &r),
            Outcome::Malformed(AuthError::QopRequired)
        );
        let config = VerifierConfig {
            allow_rfc2069: true,
            ..VerifierConfig::default()
        };
        let mut v = Verifier::new(KEY, config);
        assert!(matches!(verify(&mut v, T0, &r), Outcome::Ok { .. }));
        assert_eq!(verify(&mut v, T0, &r), Outcome::Replay);
    }

    #[test]
    fn tolerant_parsing() {
        let v = verifier();
        let nonce = v.nonce(REALM, at(T0), [1; 16]);
        let c = Challenge::new(REALM, &*nonce, Algorithm::Sha256);
        let right = respond(
            &c,
            "al\"ice",
            "pw",
            "REGISTER",
            "sip:pbx.example.com",
            "c\\1",
            1,
        );
        // Odd whitespace, escapes, unknown and empty elements, names in any case, quoted
        // tokens, the unregistered `SHA256`, an upper-case response.
        let odd = format!(
            "  digest   USERNAME = \"al\\\"ice\" ,, Realm=\"{REALM}\",\tnonce= \"{nonce}\" , \
             uri=\"sip:pbx.example.com\", response=\"{}\", ALGORITHM=\"SHA256\", \
             cnonce=\"c\\\\1\", qop=\"AUTH\", nc=00000001, x-vendor=\"a, b\", y=z,",
            right.response.to_ascii_uppercase()
        );
        let parsed = Credentials::parse(odd.as_bytes()).unwrap();
        assert_eq!(parsed.username, "al\"ice");
        assert_eq!(parsed.algorithm, Algorithm::Sha256);
        assert_eq!(parsed.qop.as_ref().map(|q| q.cnonce.as_str()), Some("c\\1"));
        let mut v = Verifier::new(KEY, VerifierConfig::default());
        // The qop is hashed as written ("AUTH"), so the client's digest was over "auth":
        // refused, as the client signed something else.
        assert_eq!(
            v.verify(REALM, at(T0), "REGISTER", URI, odd.as_bytes(), |_, a| Some(
                ha1(a, "al\"ice", REALM, "pw")
            )),
            Outcome::BadResponse
        );
        let odd = odd.replace("qop=\"AUTH\"", "qop=auth");
        assert_eq!(
            v.verify(REALM, at(T0), "REGISTER", URI, odd.as_bytes(), |_, a| Some(
                ha1(a, "al\"ice", REALM, "pw")
            )),
            Outcome::Ok {
                username: "al\"ice".into()
            }
        );
    }

    #[test]
    fn malformed_values() {
        let mut v = verifier();
        let good = answer("secret", 1);
        for (bad, why) in [
            (
                good.replace("nc=00000001", "nc=000000001"),
                AuthError::BadNonceCount,
            ),
            (
                good.replace("nc=00000001", "nc=+0000001"),
                AuthError::BadNonceCount,
            ),
            (
                good.replace("nc=00000001", "nc=xyz"),
                AuthError::BadNonceCount,
            ),
            (
                good.replace("qop=auth", "qop=auth-int"),
                AuthError::UnsupportedQop,
            ),
            (good.replace(", nc=00000001", ""), AuthError::Missing("nc")),
            (
                good.replace("username=", "user="),
                AuthError::Missing("username"),
            ),
            (format!("{good}, realm=\"x\""), AuthError::Duplicate),
            (format!("{good}, x"), AuthError::BadParam),
            (format!("{good}, x="), AuthError::BadParam),
            (format!("{good}, x=\"open"), AuthError::UnterminatedQuote),
            (format!("{good} junk"), AuthError::BadParam),
            (
                good.replacen("response=\"", "response=\"0", 1),
                AuthError::BadResponseFormat,
            ),
            ("Digest".into(), AuthError::Missing("response")),
            ("Digest,".into(), AuthError::Syntax),
            ("".into(), AuthError::Syntax),
            ("\"Digest\" a=b".into(), AuthError::Syntax),
        ] {
            let outcome = verify(&mut v, T0, &bad);
            assert_eq!(outcome, Outcome::Malformed(why), "{bad}");
        }
        let latin1 = b"Digest username=\"\xe9\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"00000000000000000000000000000000\"";
        assert_eq!(Credentials::parse(latin1), Err(AuthError::NotUtf8));
    }

    #[test]
    fn truncations_never_panic() {
        let mut v = verifier();
        let good = answer("secret", 1);
        let challenge = &v.challenges(REALM, v.algorithms(), at(T0), [1; 16], true)[0];
        for value in [&good, challenge] {
            for end in 0..value.len() {
                let cut = &value.as_bytes()[..end];
                let _ = v.verify(REALM, at(T0), "REGISTER", URI, cut, store);
                let _ = Challenge::parse(cut);
                // And with the rest of the line dropped from the front.
                let _ = Credentials::parse(&value.as_bytes()[end..]);
            }
        }
        for odd in [
            "Digest a=\"\\",
            "Digest a=\"\\\"",
            "Digest a=\"",
            "Digest =",
            "Digest a =  ",
        ] {
            assert!(Credentials::parse(odd.as_bytes()).is_err(), "{odd}");
        }
        assert!(matches!(verify(&mut v, T0, &good), Outcome::Ok { .. }));
    }

    #[test]
    fn nonce_counts_are_bounded() {
        let mut counts = NonceCounts::new(2);
        let id = |t: u64| (t, [0; 16]);
        assert_eq!(counts.accept(id(10), 1, 0), Ok(()));
        assert_eq!(counts.accept(id(11), 1, 0), Ok(()));
        // Full of live nonces: the oldest goes, and so does every nonce up to its time.
        assert_eq!(counts.accept(id(12), 1, 0), Ok(()));
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.accept(id(10), 2, 0), Err(Refused::Forgotten));
        assert_eq!(counts.accept(id(11), 2, 0), Ok(()));
        assert_eq!(counts.accept(id(12), 1, 0), Err(Refused::Replay));
        // Expiry frees room without forgetting anything live.
        assert_eq!(counts.accept(id(20), 1, 12), Ok(()));
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.accept(id(21), 1, 20), Ok(()));
        assert_eq!(counts.len(), 2);
        assert_eq!(counts.accept(id(20), 1, 20), Err(Refused::Replay));
    }

    #[test]
    fn client_counts_per_nonce() {
        let mut client = DigestClient::new("alice", "secret");
        assert_eq!(client.authorization("REGISTER", "sip:x", "c"), None);
        assert_eq!(client.challenged([]).err(), Some(AuthError::NoChallenge));
        assert_eq!(
            client.challenged([&b"Basic realm=\"x\""[..]]).err(),
            Some(AuthError::UnsupportedScheme)
        );
        let v = verifier();
        let first = v.challenges(REALM, v.algorithms(), at(T0), [1; 16], false);
        let nc = |client: &mut DigestClient| {
            let value = client.authorization("REGISTER", "sip:x", "c").unwrap();
            Credentials::parse(value.as_bytes())
                .unwrap()
                .qop
                .unwrap()
                .count
        };
        client
            .challenged(first.iter().map(|s| s.as_bytes()))
            .unwrap();
        assert_eq!((nc(&mut client), nc(&mut client)), (1, 2));
        // The same nonce again keeps counting; a new one starts over.
        client
            .challenged(first.iter().map(|s| s.as_bytes()))
            .unwrap();
        assert_eq!(nc(&mut client), 3);
        let second = v.challenges(REALM, v.algorithms(), at(T0 + 400), [2; 16], true);
        assert!(
            client
                .challenged(second.iter().map(|s| s.as_bytes()))
                .unwrap()
                .stale
        );
        assert_eq!(nc(&mut client), 1);
    }
}
