//! Where an OAUTHBEARER client gets its token, from the options of Kafka's
//! `OAuthBearerLoginModule` JAAS config:
//!
//! * `sasl.oauthbearer.token.endpoint.url` set to an `http(s)` URL: the OAuth client
//!   credentials grant at that endpoint, with the `clientId`, `clientSecret` and optional
//!   `scope` options;
//! * the same setting as a `file:` URL: the token in that file, read at each login;
//! * otherwise Kafka's unsecured login: a token that is not signed, built from the
//!   `unsecuredLogin*` options, which only a broker with the unsecured validator accepts.
//!
//! Extensions come from `extension_<name>` options (`unsecuredLoginExtension_<name>` for
//! unsecured tokens).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use krust_protocol::sasl::{jaas_option, oauth_extension_ok};

/// How long a token endpoint may take to answer.
const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(30);

fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A token from a token endpoint, kept until 80 % of its lifetime has passed (as Kafka's
/// clients refresh theirs), so that connections and re-authentications reuse it.
#[derive(Default)]
pub struct TokenCache(std::sync::Mutex<Option<(String, u64)>>);

impl PartialEq for TokenCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for TokenCache {}

impl Clone for TokenCache {
    fn clone(&self) -> Self {
        TokenCache::default()
    }
}

/// An OAUTHBEARER client's source of tokens.
#[derive(Clone, PartialEq, Eq)]
pub enum OAuthLogin {
    /// Kafka's unsecured login: the claims (JSON members, `iat` and `exp` added at each
    /// login) and the token's lifetime.
    Unsecured {
        claims: Vec<(String, String)>,
        lifetime_ms: u64,
        extensions: Vec<(String, String)>,
    },
    /// A token kept in a file.
    File {
        path: PathBuf,
        extensions: Vec<(String, String)>,
    },
    /// The client credentials grant at a token endpoint.
    Endpoint {
        url: String,
        client_id: String,
        client_secret: String,
        scope: Option<String>,
        extensions: Vec<(String, String)>,
        /// The certificates an https endpoint is checked against (PEM); the operating
        /// system's when `None`.
        trust_pem: Option<Vec<u8>>,
        cache: TokenCache,
    },
}

impl std::fmt::Debug for OAuthLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OAuthLogin::Unsecured { .. } => f.write_str("OAuthLogin::Unsecured"),
            OAuthLogin::File { path, .. } => write!(f, "OAuthLogin::File({})", path.display()),
            OAuthLogin::Endpoint { url, client_id, .. } => {
                write!(f, "OAuthLogin::Endpoint({url}, client {client_id})")
            }
        }
    }
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// The certificates an https identity provider is checked against, from the `ssl.*`
/// options of a JAAS config as Kafka reads them: `ssl.truststore.location` (a PEM file)
/// or `ssl.truststore.certificates` (PEM text), with `ssl.truststore.type=PEM`. `None`:
/// the operating system's certificate authorities.
pub fn jaas_truststore(options: &[(String, String)]) -> Result<Option<Vec<u8>>, String> {
    let option = |name: &str| jaas_option(options, name);
    let location = option("ssl.truststore.location");
    let inline = option("ssl.truststore.certificates");
    if location.is_none() && inline.is_none() {
        return Ok(None);
    }
    if !option("ssl.truststore.type").is_some_and(|t| t.trim().eq_ignore_ascii_case("PEM")) {
        return Err(
            "krust reads PEM truststores: set ssl.truststore.type=\"PEM\" with \
             ssl.truststore.location or ssl.truststore.certificates"
                .into(),
        );
    }
    let pem = match (location, inline) {
        (Some(path), None) => std::fs::read(path.trim())
            .map_err(|e| format!("cannot read ssl.truststore.location {path}: {e}"))?,
        (None, Some(text)) => text.as_bytes().to_vec(),
        _ => {
            return Err("set one of ssl.truststore.location and ssl.truststore.certificates".into())
        }
    };
    crate::tls::client_config(Some(&pem), None)?;
    Ok(Some(pem))
}

fn extensions(options: &[(String, String)], prefix: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for (k, v) in options {
        if let Some(name) = k.strip_prefix(prefix) {
            if !oauth_extension_ok(name, v) {
                return Err(format!("the SASL extension {name} is invalid"));
            }
            out.push((name.to_string(), v.clone()));
        }
    }
    Ok(out)
}

impl OAuthLogin {
    /// The login of a JAAS config's options and `sasl.oauthbearer.token.endpoint.url`.
    pub fn from_options(
        options: &[(String, String)],
        token_endpoint_url: Option<&str>,
    ) -> Result<OAuthLogin, String> {
        let option = |name: &str| jaas_option(options, name);
        if let Some(url) = token_endpoint_url.map(str::trim).filter(|u| !u.is_empty()) {
            let extensions = extensions(options, "extension_")?;
            if let Some(path) = crate::http::file_url_path(url) {
                return Ok(OAuthLogin::File {
                    path: PathBuf::from(path),
                    extensions,
                });
            }
            crate::http::Url::parse(url)?;
            let (Some(client_id), Some(client_secret)) =
                (option("clientId"), option("clientSecret"))
            else {
                return Err(
                    "a token endpoint needs the clientId and clientSecret options of \
                     sasl.jaas.config"
                        .into(),
                );
            };
            return Ok(OAuthLogin::Endpoint {
                url: url.to_string(),
                client_id: client_id.to_string(),
                client_secret: client_secret.to_string(),
                scope: option("scope").map(str::to_string),
                extensions,
                trust_pem: jaas_truststore(options)?,
                cache: TokenCache::default(),
            });
        }
        let principal_claim = option("unsecuredLoginPrincipalClaimName").unwrap_or("sub");
        let lifetime_s = match option("unsecuredLoginLifetimeSeconds") {
            None => 3600.0,
            Some(v) => v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s > 0.0)
                .ok_or_else(|| {
                    format!("unsecuredLoginLifetimeSeconds {v:?} is not a positive number")
                })?,
        };
        let mut claims = Vec::new();
        for (k, v) in options {
            let (name, value) = if let Some(n) = k.strip_prefix("unsecuredLoginStringClaim_") {
                (n, json_string(v))
            } else if let Some(n) = k.strip_prefix("unsecuredLoginNumberClaim_") {
                let num: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite())
                    .ok_or_else(|| format!("claim {n}: {v:?} is not a number"))?;
                (n, format!("{num}"))
            } else if let Some(n) = k.strip_prefix("unsecuredLoginListClaim_") {
                let mut chars = v.chars();
                let Some(delim) = chars.next() else {
                    return Err(format!("list claim {n} is empty"));
                };
                let items: Vec<String> = chars
                    .as_str()
                    .split(delim)
                    .filter(|i| !i.is_empty())
                    .map(json_string)
                    .collect();
                (n, format!("[{}]", items.join(",")))
            } else {
                continue;
            };
            if name == "iat" || name == "exp" {
                return Err(format!(
                    "claim {name} cannot be set: it is given at each login"
                ));
            }
            claims.push((name.to_string(), value));
        }
        if !claims.iter().any(|(n, _)| n == principal_claim) {
            return Err(format!(
                "an unsecured OAUTHBEARER login needs its principal: set \
                 unsecuredLoginStringClaim_{principal_claim}=\"<name>\" in sasl.jaas.config \
                 (or sasl.oauthbearer.token.endpoint.url for a real token)"
            ));
        }
        Ok(OAuthLogin::Unsecured {
            claims,
            lifetime_ms: (lifetime_s * 1000.0).round() as u64,
            extensions: extensions(options, "unsecuredLoginExtension_")?,
        })
    }

    /// A token and the extensions to send with it.
    pub async fn token(&self) -> Result<(String, Vec<(String, String)>), String> {
        match self {
            OAuthLogin::Unsecured {
                claims,
                lifetime_ms,
                extensions,
            } => {
                // Whole milliseconds, never ahead of the clock: a broker checking `iat`
                // without clock skew must not see it in the future.
                let now_ms = epoch_ms();
                let exp_ms = now_ms.saturating_add(*lifetime_ms);
                let mut body = format!(
                    "{{\"iat\":{}.{:03},\"exp\":{}.{:03}",
                    now_ms / 1000,
                    now_ms % 1000,
                    exp_ms / 1000,
                    exp_ms % 1000
                );
                for (k, v) in claims {
                    body.push_str(&format!(",{}:{v}", json_string(k)));
                }
                body.push('}');
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let token = format!(
                    "{}.{}.",
                    b64.encode(br#"{"alg":"none"}"#),
                    b64.encode(body.as_bytes())
                );
                Ok((token, extensions.clone()))
            }
            OAuthLogin::File { path, extensions } => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    return Err(format!("the token file {} is empty", path.display()));
                }
                Ok((token, extensions.clone()))
            }
            OAuthLogin::Endpoint {
                url,
                client_id,
                client_secret,
                scope,
                extensions,
                trust_pem,
                cache,
            } => {
                if let Ok(c) = cache.0.lock() {
                    if let Some((token, until)) = c.as_ref() {
                        if epoch_ms() < *until {
                            return Ok((token.clone(), extensions.clone()));
                        }
                    }
                }
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    crate::http::form_encode(client_id),
                    crate::http::form_encode(client_secret)
                ));
                let mut form = "grant_type=client_credentials".to_string();
                if let Some(s) = scope {
                    form.push_str(&format!("&scope={}", crate::http::form_encode(s)));
                }
                let auth = format!("Basic {basic}");
                let resp = crate::http::request(
                    "POST",
                    url,
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/x-www-form-urlencoded"),
                    ],
                    Some(form.as_bytes()),
                    trust_pem
                        .as_deref()
                        .map(|pem| crate::tls::client_config(Some(pem), None))
                        .transpose()?,
                    ENDPOINT_TIMEOUT,
                )
                .await?;
                if resp.status != 200 {
                    return Err(format!(
                        "the token endpoint {url} answered HTTP {}: {}",
                        resp.status,
                        String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
                    ));
                }
                let doc: serde_json::Value = serde_json::from_slice(&resp.body)
                    .map_err(|e| format!("the token endpoint's answer is not JSON: {e}"))?;
                let token = doc
                    .get("access_token")
                    .and_then(serde_json::Value::as_str)
                    .filter(|t| !t.is_empty())
                    .ok_or("the token endpoint's answer has no access_token")?;
                let now = epoch_ms();
                let lifetime_ms = doc
                    .get("expires_in")
                    .and_then(serde_json::Value::as_f64)
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(|s| (s * 1000.0) as u64)
                    .or_else(|| jwt_exp_ms(token).map(|exp| exp.saturating_sub(now)))
                    .unwrap_or(0);
                if let Ok(mut c) = cache.0.lock() {
                    *c = Some((token.to_string(), now.saturating_add(lifetime_ms / 5 * 4)));
                }
                Ok((token.to_string(), extensions.clone()))
            }
        }
    }
}

/// The `exp` of a JWT, read without checking it (the broker does).
fn jwt_exp_ms(token: &str) -> Option<u64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = doc.get("exp")?.as_f64()?;
    (exp.is_finite() && exp > 0.0).then_some((exp * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[tokio::test]
    async fn unsecured_login_builds_a_token() {
        let login = OAuthLogin::from_options(
            &opts(&[
                ("unsecuredLoginStringClaim_sub", "al\"ice"),
                ("unsecuredLoginListClaim_scope", ",read,write"),
                ("unsecuredLoginNumberClaim_n", "1.5"),
                ("unsecuredLoginExtension_traceId", "abc"),
                ("unsecuredLoginLifetimeSeconds", "60"),
            ]),
            None,
        )
        .expect("login");
        let (token, ext) = login.token().await.expect("token");
        assert_eq!(ext, opts(&[("traceId", "abc")]));
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["sub"], "al\"ice");
        assert_eq!(claims["scope"], serde_json::json!(["read", "write"]));
        assert_eq!(claims["n"], 1.5);
        let life = claims["exp"].as_f64().unwrap_or(0.0) - claims["iat"].as_f64().unwrap_or(0.0);
        assert!((life - 60.0).abs() < 0.01, "{life}");

        for bad in [
            &[("unsecuredLoginStringClaim_name", "x")][..],
            &[
                ("unsecuredLoginStringClaim_sub", "x"),
                ("unsecuredLoginStringClaim_exp", "1"),
            ],
            &[
                ("unsecuredLoginStringClaim_sub", "x"),
                ("unsecuredLoginExtension_auth", "1"),
            ],
            &[
                ("unsecuredLoginStringClaim_sub", "x"),
                ("unsecuredLoginLifetimeSeconds", "-1"),
            ],
        ] {
            assert!(
                OAuthLogin::from_options(&opts(bad), None).is_err(),
                "{bad:?}"
            );
        }
        assert!(OAuthLogin::from_options(&[], Some("http://idp/token")).is_err());
        // The truststore of an https endpoint: PEM only, and readable.
        let endpoint = [("clientId", "c"), ("clientSecret", "s")];
        for (extra, wanted) in [
            (&[("ssl.truststore.location", "/etc/ca.jks")][..], "PEM"),
            (
                &[
                    ("ssl.truststore.type", "PEM"),
                    ("ssl.truststore.location", "/nonexistent/ca.pem"),
                ],
                "cannot read",
            ),
            (
                &[
                    ("ssl.truststore.type", "PEM"),
                    ("ssl.truststore.certificates", "not a certificate"),
                ],
                "certificate",
            ),
        ] {
            let mut o = opts(&endpoint);
            o.extend(opts(extra));
            let e = OAuthLogin::from_options(&o, Some("https://idp/token")).expect_err("refused");
            assert!(e.contains(wanted), "{extra:?}: {e}");
        }
        assert!(matches!(
            OAuthLogin::from_options(&[], Some("file:///tmp/t")),
            Ok(OAuthLogin::File { .. })
        ));
    }
}
