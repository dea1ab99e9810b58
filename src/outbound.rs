//! The outbound policy: every HTTP request ssfd makes (keys, metadata, poll, token, management,
//! webhooks) goes through a client built here. Names are resolved, each address is checked, and
//! only checked addresses are connected to; literal addresses are checked before the request;
//! redirects are checked hop by hop; answers are read within a size limit.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Method;
use url::{Host, Url};

use serde::{Deserialize, Serialize};

/// `[outbound]`: where ssfd's own HTTP requests may go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// Permit loopback, private, link-local and unique-local destinations (local trials).
    #[serde(with = "crate::config::values::boolean")]
    pub allow_private: bool,
}

/// Why a request was not made, or its answer not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("not a valid URL")]
    BadUrl,
    #[error("{0}")]
    Refused(String),
    #[error("the HTTP client cannot be built")]
    Client,
}

/// The policy all clients share; a configuration reload changes it for every client at once.
#[derive(Clone, Debug, Default)]
pub struct Outbound {
    allow_private: Arc<AtomicBool>,
}

/// Time limits of a client. Requests may set a shorter (or, for long polls, a longer) total.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

/// How a client treats redirects.
#[derive(Debug, Clone, Copy)]
pub enum Redirects {
    /// A request that carries a credential or a signature is never redirected anywhere: the
    /// 3xx answer is the answer.
    None,
    /// Requests without credentials (public keys, metadata) follow fewer than `max` hops, each
    /// one checked like the first URL; never to http unless `allow_http`.
    Follow { max: usize, allow_http: bool },
}

impl Outbound {
    pub fn new(config: &OutboundConfig) -> Outbound {
        let o = Outbound::default();
        o.reconfigure(config);
        o
    }

    pub fn reconfigure(&self, config: &OutboundConfig) {
        self.allow_private
            .store(config.allow_private, Ordering::Relaxed);
    }

    fn private_allowed(&self) -> bool {
        self.allow_private.load(Ordering::Relaxed)
    }

    /// Whether ssfd may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.private_allowed() || is_public(ip)
    }

    /// Checks the host of a URL that names an address literally (a name is checked when it is
    /// resolved).
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::BadUrl);
        }
        let ip = match url.host() {
            Some(Host::Ipv4(v4)) => IpAddr::V4(v4),
            Some(Host::Ipv6(v6)) => IpAddr::V6(v6),
            Some(Host::Domain(_)) => return Ok(()),
            None => return Err(OutboundError::BadUrl),
        };
        if self.allows(ip) {
            Ok(())
        } else {
            Err(refused())
        }
    }

    /// A client that follows this policy.
    pub fn client(
        &self,
        limits: &ClientLimits,
        redirects: Redirects,
    ) -> Result<HttpClient, OutboundError> {
        let policy = self.clone();
        let redirect = match redirects {
            Redirects::None => reqwest::redirect::Policy::none(),
            Redirects::Follow { max, allow_http } => {
                let policy = self.clone();
                reqwest::redirect::Policy::custom(move |attempt| {
                    let url = attempt.url();
                    let scheme_ok =
                        url.scheme() == "https" || (allow_http && url.scheme() == "http");
                    if attempt.previous().len() >= max {
                        attempt.error("too many redirects")
                    } else if !scheme_ok {
                        attempt.error("redirect to a non-https URL")
                    } else if let Err(e) = policy.check_url(url) {
                        attempt.error(e)
                    } else {
                        attempt.follow()
                    }
                })
            }
        };
        let inner = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                policy: policy.clone(),
            }))
            .redirect(redirect)
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .user_agent(concat!("ssfd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| OutboundError::Client)?;
        Ok(HttpClient { inner, policy })
    }
}

fn refused() -> OutboundError {
    OutboundError::Refused(
        "the destination is a loopback, private or link-local address ([outbound] allow_private \
         permits it)"
            .into(),
    )
}

/// A client whose every request passed the policy. Cheap to clone.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Outbound,
}

impl HttpClient {
    pub fn request(
        &self,
        method: Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundError> {
        let url = Url::parse(url).map_err(|_| OutboundError::BadUrl)?;
        self.policy.check_url(&url)?;
        Ok(self.inner.request(method, url))
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(Method::POST, url)
    }

    pub fn put(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(Method::PUT, url)
    }

    pub fn patch(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(Method::PATCH, url)
    }

    pub fn delete(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundError> {
        self.request(Method::DELETE, url)
    }
}

/// Resolves with the system resolver and keeps only the addresses the policy allows, so the
/// connection goes to an address that was checked (no second lookup to rebind).
struct CheckedResolver {
    policy: Outbound,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(refused()) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// Whether an address is a public unicast address. IPv4-mapped, IPv4-compatible, NAT64 and 6to4
/// forms are judged by the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments, 192.0.0.0/24.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking, 198.18.0.0/15.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, 240.0.0.0/4.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local, fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local, fe80::/10, and the deprecated site-local fec0::/10.
        || (first & 0xffc0) == 0xfe80
        || (first & 0xffc0) == 0xfec0)
}

/// The IPv4 address inside an IPv6 form that carries one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let low = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible ::a.b.c.d (not :: or ::1, which are judged as IPv6).
    if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
        return Some(low());
    }
    // NAT64: the well-known prefix 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
    if s[0] == 0x64 && s[1] == 0xff9b && (s[2..6] == [0; 4] || s[2] == 1) {
        return Some(low());
    }
    // 6to4, 2002:a.b.c.d::/48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// Why an answer could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Transport(String),
}

/// Reads an answer's body, refusing more than `limit` bytes (whatever `Content-Length` says).
pub async fn read_body(mut resp: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| BodyError::Transport(describe(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Describes a transport failure without the URL and in as few words as an operator needs.
/// Connection refused, reset, a TLS failure and a timeout read alike, so that the answer of a
/// probe (the stream `test` call) does not tell which ports are open on a host.
pub fn describe(e: &reqwest::Error) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(OutboundError::Refused(m)) = s.downcast_ref::<OutboundError>() {
            return m.clone();
        }
        source = s.source();
    }
    if e.is_redirect() {
        "a redirect was refused".into()
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read".into()
    } else {
        "the host could not be reached or did not answer in time".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(s: &str) -> bool {
        is_public(s.parse().unwrap())
    }

    #[test]
    fn private_and_special_addresses_are_refused() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::10.0.0.1",
            "2002:7f00:1::",
            "ff02::1",
        ] {
            assert!(!public(a), "{a}");
        }
        for a in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(public(a), "{a}");
        }
    }

    #[test]
    fn literal_urls_are_checked_and_names_wait_for_resolution() {
        let o = Outbound::default();
        let check = |u: &str| o.check_url(&Url::parse(u).unwrap());
        assert!(check("http://127.0.0.1:8080/x").is_err());
        assert!(check("http://[::ffff:7f00:1]/x").is_err());
        assert!(check("http://169.254.169.254/latest/meta-data").is_err());
        assert!(check("https://8.8.8.8/").is_ok());
        assert!(check("https://tr.example.com/").is_ok());
        assert!(check("ftp://8.8.8.8/").is_err());
        o.reconfigure(&OutboundConfig {
            allow_private: true,
        });
        assert!(check("http://127.0.0.1:8080/x").is_ok());
    }

    #[tokio::test]
    async fn names_resolving_to_loopback_are_refused_before_connecting() {
        let o = Outbound::default();
        let client = o
            .client(
                &ClientLimits {
                    connect_timeout: Duration::from_secs(2),
                    timeout: Duration::from_secs(2),
                },
                Redirects::None,
            )
            .unwrap();
        let err = client
            .get("http://localhost:9/")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        assert!(
            describe(&err).contains("allow_private"),
            "{}",
            describe(&err)
        );
        assert!(client.get("http://127.0.0.1:9/").is_err());
    }
}
