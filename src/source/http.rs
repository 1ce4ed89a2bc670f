//! The distribution API's HTTP exchanges, spoken directly over `reqwest`.
//!
//! A registry client has to see headers and decide where credentials go,
//! and that is exactly where general-purpose clients fall short for a
//! daemon polling thousands of times a day: `Retry-After` must be read,
//! `Link` pagination followed, bodies capped while they stream, and the
//! user's password must never leave the registry it belongs to. This
//! module does those few exchanges itself:
//!
//! - **Challenges.** The first `401` of a registry tells its scheme
//!   (`Basic` or `Bearer realm=...,service=...`), remembered per registry,
//!   so later requests authenticate up front: an open registry costs no
//!   extra request at all, an htpasswd one none after the first.
//! - **Tokens.** A `Bearer` challenge is answered by the realm's token
//!   service, per repository scope (`repository:NAME:pull`), cached until
//!   it expires. Basic credentials are exchanged with `GET`; a docker
//!   `identitytoken` with the OAuth2 `refresh_token` grant (`POST`).
//! - **Where credentials go.** To the registry itself (plain HTTP only when
//!   it is marked `insecure`), and to a token realm only over HTTPS (or, for
//!   an `insecure` registry, a plain-HTTP realm on that same host and port).
//!   Any other realm is asked anonymously and a refusal says why.
//!   Redirects are followed by hand: the `Authorization` header goes only to
//!   the registry's own origin (scheme, host and port), never to a blob
//!   store on another host or port, and an HTTPS registry cannot send us to
//!   plain HTTP unless that host is marked `insecure`.
//! - **Errors.** `404` and the OCI "unknown" codes are not-found; `401`
//!   and `403` unauthorized; everything else keeps its status and the
//!   server's `Retry-After` for the backoff ([`super::backoff`]).

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;

use super::{BlobStream, SourceError};
use crate::source::auth::Credential;

/// Redirects followed at most per request.
const MAX_REDIRECTS: usize = 5;
/// A token service's answer is at most this large.
const MAX_TOKEN_BODY: u64 = 64 * 1024;
/// An error body is read this far for its message.
const MAX_ERROR_BODY: u64 = 8 * 1024;
/// A token without `expires_in` lives this long (the token spec's default).
const DEFAULT_TOKEN_LIFE: Duration = Duration::from_secs(60);
/// Tokens are renewed this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);

/// How a registry asks to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Challenge {
    /// `WWW-Authenticate: Basic`.
    Basic,
    /// `WWW-Authenticate: Bearer realm="...",service="..."`.
    Bearer {
        /// The token service URL.
        realm: String,
        /// The `service` parameter, passed back to the realm.
        service: Option<String>,
    },
}

/// One request to a registry.
pub(super) struct Call<'a> {
    /// `GET` or `HEAD`.
    pub method: Method,
    /// The registry (or mirror) as configured: `host[:port]`.
    pub registry: &'a str,
    /// The repository, for the token scope.
    pub repository: &'a str,
    /// Path and query under the registry's origin (`/v2/...`).
    pub path: String,
    /// The `Accept` header, if any.
    pub accept: Option<String>,
    /// What is asked for, for errors (`tag list of acme/x`).
    pub what: String,
}

/// The registry HTTP client: one connection pool, remembered challenges
/// and tokens.
pub(super) struct Http {
    client: reqwest::Client,
    insecure: Vec<String>,
    challenges: std::sync::Mutex<HashMap<String, Challenge>>,
    tokens: std::sync::Mutex<HashMap<(String, String), (String, Instant)>>,
}

/// The host the API of `registry` is served from (Docker Hub's differs
/// from its name).
pub(super) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// The repository as the API names it (Docker Hub's official images live
/// under `library/`).
pub(super) fn api_repository(registry: &str, repository: &str) -> String {
    if matches!(registry, "docker.io" | "index.docker.io") && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository.to_string()
    }
}

pub(super) use crate::error::chain;

/// A certificate the system does not trust gets the option that fixes it.
pub(super) fn with_tls_hint(endpoint: &str, message: String) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "{message} (for a private CA or a self-signed certificate, set ca_file = \"/path/to/ca.pem\" under [registries.\"{endpoint}\"])"
        )
    } else {
        message
    }
}

/// Parses a `WWW-Authenticate` header: its scheme and parameters.
pub(super) fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer {
        realm,
        service: params.get("service").cloned(),
    })
}

/// `key="value", key=value` pairs (quoted values may hold commas).
fn parse_params(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.insert(key, value);
    }
}

/// The `rel="next"` target of a `Link` header, if any.
pub(super) fn next_link(value: &str) -> Option<String> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim().replace(' ', "");
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| target.to_string())
    })
}

/// Whether credentials may be sent to a token `realm` of `registry`.
pub(super) fn may_send_credentials(realm: &Url, registry: &str, insecure: bool) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => insecure && authority(realm).as_deref() == Some(registry),
        _ => false,
    }
}

/// `host[:port]` of a URL, as registries are keyed.
fn authority(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

impl Http {
    /// A client trusting the system roots and `cas`; `insecure` hosts are
    /// spoken to over plain HTTP.
    pub(super) fn new(insecure: Vec<String>, cas: &[Vec<u8>]) -> Result<Http, SourceError> {
        let mut builder = reqwest::Client::builder();
        for pem in cas {
            let cert = reqwest::Certificate::from_pem(pem).map_err(|e| SourceError::Setup {
                endpoint: "registry client".into(),
                reason: format!("a ca_file is not a PEM certificate: {}", chain(&e)),
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let client = builder
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("skillsyncd/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SourceError::Setup {
                endpoint: "registry client".into(),
                reason: chain(&e),
            })?;
        Ok(Http {
            client,
            insecure,
            challenges: std::sync::Mutex::new(HashMap::new()),
            tokens: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn is_insecure(&self, registry: &str) -> bool {
        self.insecure.iter().any(|h| h == registry)
    }

    fn origin(&self, registry: &str) -> Result<Url, SourceError> {
        let scheme = if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        };
        Url::parse(&format!("{scheme}://{}/", api_host(registry))).map_err(|e| SourceError::Setup {
            endpoint: registry.to_string(),
            reason: format!("not a registry address: {e}"),
        })
    }

    /// Forgets what was learned about `registry`'s authentication (its
    /// credentials changed).
    pub(super) fn forget(&self, registry: &str) {
        self.challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(registry);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(r, _), _| r != registry);
    }

    fn challenge(&self, registry: &str) -> Option<Challenge> {
        self.challenges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(registry)
            .cloned()
    }

    /// Sends `call`, authenticating as the registry asks, following
    /// redirects; an error status becomes a [`SourceError`].
    pub(super) async fn send(
        &self,
        call: &Call<'_>,
        credential: Option<&Credential>,
    ) -> Result<reqwest::Response, SourceError> {
        let url =
            self.origin(call.registry)?
                .join(&call.path)
                .map_err(|e| SourceError::Protocol {
                    endpoint: call.registry.to_string(),
                    message: format!("{}: bad path {}: {e}", call.what, call.path),
                })?;
        let mut auth = match self.challenge(call.registry) {
            Some(c) => self.authorization(call, &c, credential, false).await?,
            None => None,
        };
        let mut resp = self.follow(call, &url, auth.as_ref()).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_challenge);
            if let Some(c) = challenge {
                let known = self.challenge(call.registry);
                // A second 401 under a known scheme means the token or the
                // password was refused: one fresh token is worth a try.
                let retry = auth.is_none()
                    || (known.as_ref() == Some(&c) && matches!(c, Challenge::Bearer { .. }));
                self.challenges
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(call.registry.to_string(), c.clone());
                if retry {
                    auth = self.authorization(call, &c, credential, true).await?;
                    if auth.is_some() {
                        resp = self.follow(call, &url, auth.as_ref()).await?;
                    }
                }
            }
        }
        self.check(call, resp).await
    }

    /// The `Authorization` header for `call` under `challenge`, fetching a
    /// token when needed (`fresh`: even when one is cached).
    async fn authorization(
        &self,
        call: &Call<'_>,
        challenge: &Challenge,
        credential: Option<&Credential>,
        fresh: bool,
    ) -> Result<Option<HeaderValue>, SourceError> {
        match challenge {
            Challenge::Basic => Ok(match credential {
                Some(Credential::Basic { username, password }) => {
                    let raw = base64::engine::general_purpose::STANDARD
                        .encode(format!("{username}:{password}"));
                    secret_header(&format!("Basic {raw}"))
                }
                _ => None,
            }),
            Challenge::Bearer { realm, service } => {
                let scope = format!("repository:{}:pull", call.repository);
                let key = (call.registry.to_string(), scope.clone());
                if !fresh {
                    let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((token, until)) = tokens.get(&key) {
                        if Instant::now() < *until {
                            return Ok(secret_header(&format!("Bearer {token}")));
                        }
                    }
                }
                let (token, life) = self
                    .token(call, realm, service.as_deref(), &scope, credential)
                    .await?;
                let header = secret_header(&format!("Bearer {token}"));
                // `expires_in` is the token service's word: a life too long
                // for the clock makes a token used once, not a panic.
                let now = Instant::now();
                let until = now
                    .checked_add(life.saturating_sub(TOKEN_MARGIN))
                    .unwrap_or(now);
                self.tokens
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key, (token, until));
                Ok(header)
            }
        }
    }

    /// A token from `realm` for `scope`.
    async fn token(
        &self,
        call: &Call<'_>,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> Result<(String, Duration), SourceError> {
        let endpoint = call.registry.to_string();
        let realm_url = Url::parse(realm).map_err(|e| SourceError::Protocol {
            endpoint: endpoint.clone(),
            message: format!("token realm {realm:?} is not a URL: {e}"),
        })?;
        let allowed =
            may_send_credentials(&realm_url, call.registry, self.is_insecure(call.registry));
        let credential = match credential {
            Some(_) if !allowed => {
                tracing::warn!(
                    registry = %endpoint,
                    realm = %realm_url,
                    "credentials withheld from a token service that is not HTTPS on another host; asking anonymously"
                );
                None
            }
            other => other,
        };
        let request = self.token_request(&realm_url, service, scope, credential);
        let resp = request.send().await.map_err(|e| SourceError::Network {
            endpoint: endpoint.clone(),
            message: with_tls_hint(&endpoint, format!("token service {realm}: {}", chain(&e))),
        })?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(SourceError::Unauthorized {
                endpoint,
                hint: if credential.is_none() && !allowed {
                    format!("credentials are never sent to the plain-HTTP token service {realm}")
                } else {
                    String::new()
                },
            });
        }
        if !status.is_success() {
            return Err(self.status_error(&endpoint, "token", resp).await);
        }
        let body = read_capped(resp, MAX_TOKEN_BODY, &endpoint, "token answer").await?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| SourceError::Protocol {
                endpoint: endpoint.clone(),
                message: format!("token service {realm}: not a token answer: {e}"),
            })?;
        let token = answer
            .token
            .or(answer.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SourceError::Protocol {
                endpoint,
                message: format!("token service {realm} answered without a token"),
            })?;
        let life = answer
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFE)
            .max(DEFAULT_TOKEN_LIFE);
        Ok((token, life))
    }

    /// The request for a token: with an identity token, a refresh-token
    /// form POST; else a GET of the scope, with basic auth when `credential`
    /// has a password.
    fn token_request(
        &self,
        realm_url: &Url,
        service: Option<&str>,
        scope: &str,
        credential: Option<&Credential>,
    ) -> reqwest::RequestBuilder {
        match credential {
            Some(Credential::IdentityToken(refresh)) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "skillsyncd"),
                    ("scope", scope),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                let body = form
                    .iter()
                    .map(|(k, v)| format!("{k}={}", form_encode(v)))
                    .collect::<Vec<_>>()
                    .join("&");
                self.client
                    .post(realm_url.clone())
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(body)
            }
            other => {
                let mut url = realm_url.clone();
                {
                    let mut q = url.query_pairs_mut();
                    if let Some(s) = service {
                        q.append_pair("service", s);
                    }
                    q.append_pair("scope", scope);
                }
                let mut rb = self.client.get(url);
                if let Some(Credential::Basic { username, password }) = other {
                    rb = rb.basic_auth(username, Some(password));
                }
                rb
            }
        }
    }

    /// Sends `call` to `url`, following redirects; `auth` goes only to the
    /// registry's own origin.
    async fn follow(
        &self,
        call: &Call<'_>,
        url: &Url,
        auth: Option<&HeaderValue>,
    ) -> Result<reqwest::Response, SourceError> {
        let origin = url.origin();
        let mut url = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut rb = self.client.request(call.method.clone(), url.clone());
            if let Some(accept) = &call.accept {
                rb = rb.header(header::ACCEPT, accept);
            }
            if url.origin() == origin {
                if let Some(a) = auth {
                    rb = rb.header(header::AUTHORIZATION, a.clone());
                }
            }
            let resp = rb.send().await.map_err(|e| SourceError::Network {
                endpoint: call.registry.to_string(),
                message: with_tls_hint(call.registry, format!("{}: {}", call.what, chain(&e))),
            })?;
            if !resp.status().is_redirection() {
                return Ok(resp);
            }
            let Some(location) = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
            else {
                return Ok(resp);
            };
            let next = url.join(location).map_err(|e| SourceError::Protocol {
                endpoint: call.registry.to_string(),
                message: format!("{}: bad redirect {location:?}: {e}", call.what),
            })?;
            if next.scheme() != "https" {
                let plain_ok = next.scheme() == "http"
                    && authority(&next).is_some_and(|a| self.is_insecure(&a));
                if !plain_ok {
                    return Err(SourceError::Protocol {
                        endpoint: call.registry.to_string(),
                        message: format!(
                            "{}: redirected to {}, which is not HTTPS and not marked insecure",
                            call.what,
                            next.origin().ascii_serialization()
                        ),
                    });
                }
            }
            url = next;
        }
        Err(SourceError::Protocol {
            endpoint: call.registry.to_string(),
            message: format!("{}: more than {MAX_REDIRECTS} redirects", call.what),
        })
    }

    /// Passes a successful answer through; turns others into errors.
    async fn check(
        &self,
        call: &Call<'_>,
        resp: reqwest::Response,
    ) -> Result<reqwest::Response, SourceError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let endpoint = call.registry.to_string();
        match status {
            StatusCode::NOT_FOUND => Err(SourceError::NotFound {
                what: call.what.clone(),
                endpoint,
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(SourceError::Unauthorized {
                endpoint,
                hint: String::new(),
            }),
            _ => Err(self.status_error(&endpoint, &call.what, resp).await),
        }
    }

    async fn status_error(
        &self,
        endpoint: &str,
        what: &str,
        resp: reqwest::Response,
    ) -> SourceError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| super::backoff::parse_retry_after(v, SystemTime::now()));
        let body = read_capped(resp, MAX_ERROR_BODY, endpoint, what)
            .await
            .unwrap_or_default();
        let envelope: Option<ErrorEnvelope> = serde_json::from_slice(&body).ok();
        let unknown = envelope.as_ref().is_some_and(|e| {
            e.errors.iter().any(|e| {
                matches!(
                    e.code.as_str(),
                    "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND"
                )
            })
        });
        if unknown && status < 500 {
            return SourceError::NotFound {
                what: what.to_string(),
                endpoint: endpoint.to_string(),
            };
        }
        let message = match envelope {
            Some(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(&body).trim().to_string(),
        };
        SourceError::Status {
            endpoint: endpoint.to_string(),
            what: what.to_string(),
            status,
            message: message.chars().take(200).collect(),
            retry_after,
        }
    }
}

/// A header value marked sensitive (kept out of reqwest's debug output).
fn secret_header(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Reads a whole body, refusing more than `cap` bytes (checked against
/// `Content-Length` first, then while reading).
pub(super) async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
    endpoint: &str,
    what: &str,
) -> Result<Vec<u8>, SourceError> {
    let too_large = || SourceError::Protocol {
        endpoint: endpoint.to_string(),
        message: format!("{what} is larger than {cap} bytes"),
    };
    if resp.content_length().is_some_and(|len| len > cap) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| SourceError::Network {
        endpoint: endpoint.to_string(),
        message: format!("{what}: {}", chain(&e)),
    })? {
        if (out.len() + chunk.len()) as u64 > cap {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// A response body as a stream of chunks; a transport error ends it.
pub(super) fn body_stream(resp: reqwest::Response) -> BlobStream {
    futures_util::stream::unfold(Some(resp), |state| async move {
        let mut resp = state?;
        match resp.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(resp))),
            Ok(None) => None,
            Err(e) => Some((Err(std::io::Error::other(chain(&e))), None)),
        }
    })
    .boxed()
}

/// The headers of an answer, for callers that need one.
pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests;
