//! Registry authentication: parsing `WWW-Authenticate` challenges, the access scopes a request
//! needs, and answering a challenge with `Basic` credentials or with a `Bearer` token fetched
//! from the challenge's realm (anonymously, or with the domain's credentials) and cached per
//! (domain, scope) until it expires.
//!
//! Once a domain has challenged us, later requests carry the answer up front (Docker does the
//! same), so a push of many blobs costs one token fetch per scope, not one 401 per request.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::error::{ErrorBody, RegistryError};
use super::require_loopback_http;

/// A user name and password (or identity token) for one registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// One challenge of a `WWW-Authenticate` header: its scheme (lower case) and parameters (names
/// in lower case, values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: HashMap<String, String>,
}

/// Splits at commas outside quoted strings.
fn split_items(h: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in h.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&h[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&h[start..]);
    items
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// `token` or `"quoted \"string\""` (unescaped); anything after a closing quote is dropped.
fn param_value(v: &str) -> String {
    let v = v.trim();
    let Some(q) = v.strip_prefix('"') else {
        return v.to_string();
    };
    let mut out = String::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            '"' => break,
            c => out.push(c),
        }
    }
    out
}

/// `name=value` (with optional spaces around `=`), if `item` is one.
fn param(item: &str) -> Option<(String, String)> {
    let item = item.trim();
    let end = item.find(|c: char| !is_tchar(c)).unwrap_or(item.len());
    let (name, rest) = item.split_at(end);
    let value = rest.trim_start().strip_prefix('=')?;
    (!name.is_empty()).then(|| (name.to_ascii_lowercase(), param_value(value)))
}

/// Parses every challenge of a `WWW-Authenticate` value, e.g.
/// `Bearer realm="http://a/token",service="reg",scope="repository:x:pull,push", Basic realm="r"`.
/// Quoted strings may hold commas and escaped quotes; a `token68` after a scheme is ignored;
/// parameters before any scheme are dropped.
pub fn parse_challenges(h: &str) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for item in split_items(h) {
        let item = item.trim();
        if item.is_empty() {
            continue;
        }
        if let Some((k, v)) = param(item) {
            if let Some(c) = out.last_mut() {
                c.params.entry(k).or_insert(v);
            }
            continue;
        }
        // A new challenge: `scheme`, `scheme name=value` or `scheme token68`.
        let end = item.find(|c: char| !is_tchar(c)).unwrap_or(item.len());
        let (scheme, rest) = item.split_at(end);
        if scheme.is_empty() {
            continue;
        }
        let rest = rest.trim();
        let token68 = rest.trim_end_matches('=');
        let token68 = !token68.is_empty()
            && token68
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~+/".contains(c));
        let mut params = HashMap::new();
        if let Some((k, v)) = param(rest).filter(|_| !token68) {
            params.insert(k, v);
        }
        out.push(Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params,
        });
    }
    out
}

/// The access a request needs or a token grants: `type:name:action,action` entries, e.g.
/// `repository:library/busybox:pull,push`. `*` grants every action.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(BTreeMap<(String, String), BTreeSet<String>>);

impl Scopes {
    /// Parses a space-separated scope list; malformed entries are dropped.
    pub fn parse(s: &str) -> Scopes {
        let mut out = Scopes::default();
        for entry in s.split_whitespace() {
            let Some((kind, rest)) = entry.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            if kind.is_empty() || name.is_empty() {
                continue;
            }
            out.0
                .entry((kind.to_string(), name.to_string()))
                .or_default()
                .extend(
                    actions
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(str::to_string),
                );
        }
        out
    }

    /// `repository:REPO:ACTIONS`.
    pub fn repository(repo: &str, actions: &[&str]) -> Scopes {
        let mut out = Scopes::default();
        out.0.insert(
            ("repository".to_string(), repo.to_string()),
            actions.iter().map(|a| a.to_string()).collect(),
        );
        out
    }

    /// Both sets of access.
    pub fn union(mut self, other: &Scopes) -> Scopes {
        for (k, actions) in &other.0 {
            self.0
                .entry(k.clone())
                .or_default()
                .extend(actions.iter().cloned());
        }
        self
    }

    /// Whether `self` grants everything `want` asks for.
    pub fn covers(&self, want: &Scopes) -> bool {
        want.0.iter().all(|(k, actions)| {
            self.0
                .get(k)
                .is_some_and(|have| have.contains("*") || actions.is_subset(have))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One `scope=` value per resource, as token servers take them.
    pub fn entries(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|((kind, name), actions)| {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                format!("{kind}:{name}:{}", actions.join(","))
            })
            .collect()
    }
}

/// How a domain asked to be authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scheme {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

struct CachedToken {
    domain: String,
    scopes: Scopes,
    header: String,
    expires: Instant,
}

/// Bearer tokens by domain and the scopes they were issued for.
#[derive(Default)]
struct TokenCache(Vec<CachedToken>);

impl TokenCache {
    /// An unexpired token of `domain` whose scopes cover `want`.
    fn get(&self, domain: &str, want: &Scopes, now: Instant) -> Option<String> {
        self.0
            .iter()
            .find(|t| t.domain == domain && t.expires > now && t.scopes.covers(want))
            .map(|t| t.header.clone())
    }

    fn insert(&mut self, domain: &str, scopes: Scopes, header: String, expires: Instant) {
        let now = Instant::now();
        self.0
            .retain(|t| t.expires > now && !(t.domain == domain && t.scopes == scopes));
        self.0.push(CachedToken {
            domain: domain.to_string(),
            scopes,
            header,
            expires,
        });
    }

    /// Drops a token the registry refused.
    fn forget(&mut self, domain: &str, header: &str) {
        self.0
            .retain(|t| !(t.domain == domain && t.header == header));
    }
}

/// A token is trusted for `expires_in` seconds, at least 60 (the token spec's default and
/// minimum), counted from before it was asked for.
fn token_lifetime(expires_in: Option<u64>) -> Duration {
    Duration::from_secs(expires_in.unwrap_or(60).max(60))
}

/// Percent-encodes a query value.
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Credentials per domain, what each domain asked for, and the tokens it gave.
#[derive(Default)]
pub(crate) struct Auth {
    creds: HashMap<String, Credentials>,
    schemes: Mutex<HashMap<String, Scheme>>,
    tokens: Mutex<TokenCache>,
}

impl Auth {
    pub fn set_credentials(&mut self, domain: &str, creds: Credentials) {
        self.creds.insert(domain.to_string(), creds);
    }

    fn scheme(&self, domain: &str) -> Option<Scheme> {
        let map = self.schemes.lock().unwrap_or_else(|p| p.into_inner());
        map.get(domain).cloned()
    }

    /// The `Authorization` value to send up front for `want`, if the domain challenged before:
    /// its basic credentials, or a cached token (fetching a new one when none covers `want`).
    pub fn header_for(
        &self,
        agent: &ureq::Agent,
        domain: &str,
        want: &Scopes,
    ) -> Result<Option<String>, RegistryError> {
        match self.scheme(domain) {
            None => Ok(None),
            Some(Scheme::Basic) => Ok(self.creds.get(domain).map(Credentials::basic_header)),
            Some(Scheme::Bearer { realm, service }) => {
                let cached = {
                    let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
                    tokens.get(domain, want, Instant::now())
                };
                match cached {
                    Some(h) => Ok(Some(h)),
                    None => self
                        .fetch_token(agent, domain, &realm, service.as_deref(), want)
                        .map(Some),
                }
            }
        }
    }

    /// Answers a 401: picks the `Bearer` challenge (else `Basic`), remembers it for the domain
    /// and returns the header to retry with. `sent` is the header the refused request carried;
    /// `refusal` the 401's body, for the error when there is nothing better to send.
    pub fn answer(
        &self,
        agent: &ureq::Agent,
        domain: &str,
        want: &Scopes,
        challenges: &[Challenge],
        sent: Option<&str>,
        refusal: &ErrorBody,
    ) -> Result<String, RegistryError> {
        let refused = || RegistryError::Unauthorized {
            domain: domain.to_string(),
            message: refusal.message_or("authentication required"),
        };
        let pick = |s: &str| challenges.iter().find(|c| c.scheme == s);
        if let Some(c) = pick("bearer") {
            let realm = c.params.get("realm").cloned().unwrap_or_default();
            if realm.is_empty() {
                return Err(RegistryError::Protocol {
                    url: domain.to_string(),
                    problem: "the registry's Bearer challenge has no realm".into(),
                });
            }
            let service = c.params.get("service").cloned();
            self.schemes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    domain.to_string(),
                    Scheme::Bearer {
                        realm: realm.clone(),
                        service: service.clone(),
                    },
                );
            if let Some(s) = sent {
                self.tokens
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .forget(domain, s);
            }
            // Ask for what the request needs and what the challenge names.
            let scope = c.params.get("scope").map_or("", String::as_str);
            let scopes = want.clone().union(&Scopes::parse(scope));
            let header = self.fetch_token(agent, domain, &realm, service.as_deref(), &scopes)?;
            if sent == Some(header.as_str()) {
                return Err(refused());
            }
            return Ok(header);
        }
        if pick("basic").is_some() {
            self.schemes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(domain.to_string(), Scheme::Basic);
            let header = self
                .creds
                .get(domain)
                .map(Credentials::basic_header)
                .ok_or_else(refused)?;
            if sent == Some(header.as_str()) {
                return Err(refused());
            }
            return Ok(header);
        }
        Err(refused())
    }

    /// `GET realm?service=&scope=…` (with basic auth when the domain has credentials); caches
    /// and returns `Bearer <token>`.
    fn fetch_token(
        &self,
        agent: &ureq::Agent,
        domain: &str,
        realm: &str,
        service: Option<&str>,
        scopes: &Scopes,
    ) -> Result<String, RegistryError> {
        require_loopback_http(realm)?;
        let creds = self.creds.get(domain);
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(format!("service={}", urlencode(s)));
        }
        for s in scopes.entries() {
            query.push(format!("scope={}", urlencode(&s)));
        }
        if let Some(c) = creds.filter(|c| !c.username.is_empty()) {
            query.push(format!("account={}", urlencode(&c.username)));
        }
        let url = if query.is_empty() {
            realm.to_string()
        } else {
            let sep = if realm.contains('?') { '&' } else { '?' };
            format!("{realm}{sep}{}", query.join("&"))
        };
        let asked = Instant::now();
        let mut req = agent.get(&url).header("Accept", "application/json");
        if let Some(c) = creds {
            req = req.header("Authorization", &c.basic_header());
        }
        let mut resp = req.call().map_err(|e| RegistryError::transport(&url, e))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .map_err(|e| RegistryError::transport(&url, e))?;
        match status {
            200 => {}
            401 | 403 => {
                let fallback = if creds.is_some() {
                    "incorrect username or password"
                } else {
                    "authentication required"
                };
                return Err(RegistryError::Unauthorized {
                    domain: domain.to_string(),
                    message: ErrorBody::parse(&body).message_or(fallback),
                });
            }
            _ => {
                return Err(RegistryError::Http {
                    status,
                    url,
                    message: ErrorBody::parse(&body).describe("no message"),
                });
            }
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| RegistryError::Protocol {
                url: url.clone(),
                problem: format!("the token server's answer is not JSON: {e}"),
            })?;
        let token = [&v["token"], &v["access_token"]]
            .into_iter()
            .find_map(|t| t.as_str().filter(|t| !t.is_empty()))
            .ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                problem: "the token server sent no token".into(),
            })?;
        let header = format!("Bearer {token}");
        let expires = asked + token_lifetime(v["expires_in"].as_u64());
        self.tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(domain, scopes.clone(), header.clone(), expires);
        Ok(header)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(h: &str) -> Challenge {
        let mut all = parse_challenges(h);
        assert_eq!(all.len(), 1, "{h}: {all:?}");
        all.remove(0)
    }

    #[test]
    fn bearer_challenge_with_commas_in_quotes() {
        let c = one(
            r#"Bearer realm="http://127.0.0.1:1/token",service="reg, one",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:1/token");
        assert_eq!(c.params["service"], "reg, one");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        assert_eq!(c.params.len(), 3);
    }

    #[test]
    fn escaped_quotes_spaces_and_case() {
        let c = one(r#"BASIC Realm = "x \"y\" \\ z" , charset="UTF-8""#);
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], r#"x "y" \ z"#);
        assert_eq!(c.params["charset"], "UTF-8");
        let c = one(r#"Bearer realm="ünï, cödé""#);
        assert_eq!(c.params["realm"], "ünï, cödé");
    }

    #[test]
    fn several_challenges_tokens_and_junk() {
        let all = parse_challenges(
            r#"Basic realm="a, b", Bearer realm=http://h/t,service=s, Negotiate abc==, Empty"#,
        );
        let schemes: Vec<&str> = all.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["basic", "bearer", "negotiate", "empty"]);
        assert_eq!(all[0].params["realm"], "a, b");
        assert_eq!(all[1].params["realm"], "http://h/t");
        assert_eq!(all[1].params["service"], "s");
        assert!(all[2].params.is_empty() && all[3].params.is_empty());
        // Unterminated quotes, stray commas and parameters without a scheme do not panic.
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges(r#"realm="x""#).is_empty());
        let c = one(r#",, Bearer realm="open"#);
        assert_eq!(c.params["realm"], "open");
        let c = one(r#"Bearer realm="a\"#);
        assert_eq!(c.params["realm"], "a");
        let c = one(r#"Bearer realm="x"junk, scope=y"#);
        assert_eq!(
            (c.params["realm"].as_str(), c.params["scope"].as_str()),
            ("x", "y")
        );
    }

    #[test]
    fn scopes_cover_and_merge() {
        let push = Scopes::repository("a/b", &["pull", "push"]);
        let pull = Scopes::parse("repository:a/b:pull");
        assert!(push.covers(&pull) && !pull.covers(&push));
        assert!(push.covers(&Scopes::default()));
        assert!(Scopes::parse("repository:a/b:*").covers(&push));
        let mount = push
            .clone()
            .union(&Scopes::parse("repository:c:pull  junk registry:catalog:*"));
        assert_eq!(
            mount.entries(),
            [
                "registry:catalog:*",
                "repository:a/b:pull,push",
                "repository:c:pull"
            ]
        );
        assert!(!push.covers(&mount));
        let host = Scopes::parse("repository:localhost:5000/x:pull");
        assert_eq!(host.entries(), ["repository:localhost:5000/x:pull"]);
    }

    #[test]
    fn tokens_are_cached_per_domain_and_scope_until_they_expire() {
        let mut cache = TokenCache::default();
        let now = Instant::now();
        let push = Scopes::repository("a", &["pull", "push"]);
        let pull = Scopes::repository("a", &["pull"]);
        cache.insert(
            "r:1",
            push.clone(),
            "Bearer t1".into(),
            now + token_lifetime(None),
        );
        assert_eq!(cache.get("r:1", &pull, now).as_deref(), Some("Bearer t1"));
        assert_eq!(cache.get("r:2", &pull, now), None);
        assert_eq!(
            cache.get("r:1", &Scopes::repository("b", &["pull"]), now),
            None
        );
        assert_eq!(cache.get("r:1", &pull, now + Duration::from_secs(61)), None);
        assert_eq!(token_lifetime(Some(5)), Duration::from_secs(60));
        assert_eq!(token_lifetime(Some(300)), Duration::from_secs(300));
        cache.insert(
            "r:1",
            push.clone(),
            "Bearer t2".into(),
            now + token_lifetime(None),
        );
        assert_eq!(cache.0.len(), 1);
        cache.forget("r:1", "Bearer t2");
        assert_eq!(cache.get("r:1", &pull, now), None);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            urlencode("repository:a/b:pull,push"),
            "repository%3Aa%2Fb%3Apull%2Cpush"
        );
    }
}
