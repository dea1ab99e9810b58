//! HTTPS on the listeners with certificates made at test time: the handshake, the https push
//! URL, renewal without a restart (file watcher and SIGHUP), a bad new file kept out, plain HTTP
//! refused on a TLS port, and client certificates on the admin listener.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{TestDaemon, ADMIN_TOKEN};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use reqwest::Method;
use serde_json::json;
use ssfd::config::{Config, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A test CA that signs server and client certificates.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    /// A leaf for 127.0.0.1: (certificate PEM, key PEM, certificate DER).
    fn leaf(&self) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
}

fn write_leaf(dir: &Path, leaf: &(String, String, Vec<u8>), chain_extra: &str) -> Files {
    let files = Files {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, format!("{}{chain_extra}", leaf.0)).unwrap();
    std::fs::write(&files.key, &leaf.1).unwrap();
    files
}

fn client(ca: &Ca) -> reqwest::Client {
    client_builder(ca).build().unwrap()
}

fn client_builder(ca: &Ca) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        // Every request a new connection, so that each one sees the certificate in force.
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
}

/// The leaf certificate the push listener serves now.
async fn served_leaf(ca: &Ca, url: &str) -> Vec<u8> {
    let resp = client(ca)
        .get(format!("{url}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .unwrap()
        .to_vec()
}

async fn start_tls(ca: &Ca, edit: impl FnOnce(&mut TlsConfig)) -> (TestDaemon, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf();
    // A chain file: the leaf followed by its CA.
    let files = write_leaf(dir.path(), &leaf, &ca.pem());
    let mut config = common::test_config(dir.path());
    let mut tls = TlsConfig {
        cert_file: files.cert,
        key_file: files.key,
        admin: false,
        client_ca_file: None,
    };
    edit(&mut tls);
    config.server.tls = Some(tls);
    config.server.public_base_url = "https://ssf.example".to_string();
    (TestDaemon::start_in(dir, config).await, leaf.2)
}

#[tokio::test]
async fn push_listener_speaks_tls_and_push_urls_are_https() {
    let ca = Ca::new();
    let (d, leaf) = start_tls(&ca, |_| {}).await;
    assert!(d.daemon.push_url().starts_with("https://"));
    assert_eq!(served_leaf(&ca, &d.daemon.push_url()).await, leaf);
    // The admin listener stays plain HTTP unless `admin = true`.
    assert!(d.daemon.admin_url().starts_with("http://"));
    let (status, body) = d
        .api(
            Method::POST,
            "/api/v1/ssf-receiver-streams",
            Some(
                json!({"displayName": "t", "issuerUrl": "https://idp.example",
                        "jwksUrl": "https://idp.example/jwks"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // The URL comes from public_base_url, which must be https:// with TLS on (see
    // tls_keys_in_the_file).
    let url = body["ssfReceiverStream"]["pushEndpointUrl"]
        .as_str()
        .unwrap();
    assert!(url.starts_with("https://ssf.example/ssf/push/"), "{url}");
}

#[tokio::test]
async fn plain_http_is_refused_on_a_tls_port() {
    let ca = Ca::new();
    let (d, _) = start_tls(&ca, |_| {}).await;
    let mut conn = tokio::net::TcpStream::connect(d.daemon.push_addr)
        .await
        .unwrap();
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the connection was not closed");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "a plain HTTP answer came back: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // reqwest with http:// gets no answer either.
    let plain = format!("http://{}/healthz", d.daemon.push_addr);
    assert!(reqwest::get(&plain).await.is_err());
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let ca = Ca::new();
    let (d, first) = start_tls(&ca, |_| {}).await;
    let url = d.daemon.push_url();
    assert_eq!(served_leaf(&ca, &url).await, first);
    let renewed = ca.leaf();
    write_leaf(d.dir.path(), &renewed, "");
    // The watcher compares modification times every few seconds.
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_leaf(&ca, &url).await;
        if served == renewed.2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        served, renewed.2,
        "the renewed certificate was not picked up"
    );
}

#[tokio::test]
async fn a_bad_new_file_is_refused_and_the_old_certificate_stays() {
    let ca = Ca::new();
    let (d, first) = start_tls(&ca, |_| {}).await;
    let url = d.daemon.push_url();
    let tls = d.daemon.tls.clone().unwrap();
    let cert_file = d.dir.path().join("cert.pem");
    let key_file = d.dir.path().join("key.pem");
    let good_key = std::fs::read(&key_file).unwrap();

    // Not PEM at all.
    std::fs::write(&cert_file, "not a certificate\n").unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("server.tls.cert_file"), "{err}");
    assert_eq!(served_leaf(&ca, &url).await, first);

    // A key that belongs to another certificate (a renewal half written).
    let other = ca.leaf();
    std::fs::write(&cert_file, &other.0).unwrap();
    std::fs::write(&key_file, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("server.tls.key_file"), "{err}");
    assert!(err.contains("does not fit"), "{err}");
    assert_eq!(served_leaf(&ca, &url).await, first);

    // A missing key file.
    std::fs::remove_file(&key_file).unwrap();
    let err = tls.reload().unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
    assert_eq!(served_leaf(&ca, &url).await, first);

    // Once both files are whole again, the new pair goes into force.
    std::fs::write(&key_file, &other.1).unwrap();
    tls.reload().unwrap();
    assert_eq!(served_leaf(&ca, &url).await, other.2);
    drop(good_key);
}

#[tokio::test]
async fn admin_listener_requires_a_client_certificate_when_configured() {
    let ca = Ca::new();
    let client_ca = Ca::new();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("clients.pem");
    std::fs::write(&ca_file, client_ca.pem()).unwrap();
    let (d, _) = start_tls(&ca, |t| {
        t.admin = true;
        t.client_ca_file = Some(ca_file.clone());
    })
    .await;
    let admin = d.daemon.admin_url();
    assert!(admin.starts_with("https://"));
    let streams = format!("{admin}/api/v1/ssf-receiver-streams");

    // Without a client certificate the handshake fails: no answer at all.
    let anonymous = client(&ca)
        .get(&streams)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await;
    assert!(anonymous.is_err(), "{anonymous:?}");

    // A certificate from another CA is refused too.
    let stranger = Ca::new().leaf();
    let wrong = client_builder(&ca)
        .identity(
            reqwest::Identity::from_pem(format!("{}{}", stranger.0, stranger.1).as_bytes())
                .unwrap(),
        )
        .build()
        .unwrap();
    assert!(wrong
        .get(&streams)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .is_err());

    // A certificate from the configured CA gets through, and the token is still required.
    let member = client_ca.leaf();
    let trusted = client_builder(&ca)
        .identity(
            reqwest::Identity::from_pem(format!("{}{}", member.0, member.1).as_bytes()).unwrap(),
        )
        .build()
        .unwrap();
    let ok = trusted
        .get(&streams)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let no_token = trusted.get(&streams).send().await.unwrap();
    assert_eq!(no_token.status(), 401);
    // The push listener asks for no client certificate.
    assert_eq!(
        client(&ca)
            .get(format!("{}/healthz", d.daemon.push_url()))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn a_bad_certificate_at_start_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), "junk").unwrap();
    std::fs::write(dir.path().join("key.pem"), "junk").unwrap();
    let mut config = common::test_config(dir.path());
    config.server.tls = Some(TlsConfig {
        cert_file: dir.path().join("cert.pem"),
        key_file: dir.path().join("key.pem"),
        admin: false,
        client_ca_file: None,
    });
    let err = match ssfd::daemon::Daemon::start(config).await {
        Ok(_) => panic!("started with a junk certificate"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("server.tls.cert_file"), "{err}");
}

#[test]
fn tls_keys_in_the_file() {
    let parse = |text: &str| Config::parse(text, Path::new("receiver.toml"));
    let base =
        "[server.tls]\ncert_file = \"/etc/ssfd/cert.pem\"\nkey_file = \"credential:tls-key\"\n";
    let c = parse(base).unwrap();
    let tls = c.server.tls.clone().unwrap();
    assert_eq!(tls.key_file, PathBuf::from("credential:tls-key"));
    assert!(!tls.admin);
    // The default public base URL follows the listener into https.
    assert_eq!(c.server.public_base_url, "https://127.0.0.1:8080");
    // check-config output parses back.
    assert_eq!(parse(&c.redacted_toml()).unwrap().server.tls, c.server.tls);

    let err = parse(&format!(
        "[server]\npublic_base_url = \"http://ssf.example\"\n{base}"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("server.public_base_url"), "{err}");
    assert!(err.contains("https"), "{err}");
    assert!(parse(&format!(
        "[server]\npublic_base_url = \"https://ssf.example\"\n{base}"
    ))
    .is_ok());

    let err = parse("[server.tls]\ncert_file = \"c.pem\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.tls.key_file"), "{err}");
    let err = parse(&format!("{base}client_ca_file = \"ca.pem\"\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.tls.client_ca_file"), "{err}");
    assert!(parse(&format!(
        "{base}admin = true\nclient_ca_file = \"ca.pem\"\n"
    ))
    .is_ok());
    let err = parse(&format!("{base}verify = true\n"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.tls.verify"), "{err}");
}

#[tokio::test]
async fn sighup_rereads_the_certificate() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let first = ca.leaf();
    let files = write_leaf(dir.path(), &first, "");
    let extra = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        files.cert.display(),
        files.key.display()
    );
    // public_base_url is not given: with TLS on it defaults to https.
    let d = common::ChildDaemon::spawn(dir.path(), &extra).await;
    let url = format!("https://127.0.0.1:{}", d.push_port);
    assert_eq!(served_leaf(&ca, &url).await, first.2);

    // A renewal the file watcher cannot see (same sizes, modification times put back), so that
    // only the SIGHUP can bring it in.
    let meta = |p: &Path| std::fs::metadata(p).unwrap();
    let (cert_len, key_len) = (meta(&files.cert).len(), meta(&files.key).len());
    let (cert_time, key_time) = (
        meta(&files.cert).modified().unwrap(),
        meta(&files.key).modified().unwrap(),
    );
    let renewed = (0..50)
        .map(|_| ca.leaf())
        .find(|l| l.0.len() as u64 == cert_len && l.1.len() as u64 == key_len)
        .expect("a renewal of the same size");
    write_leaf(dir.path(), &renewed, "");
    for (path, time) in [(&files.cert, cert_time), (&files.key, key_time)] {
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(time)
            .unwrap();
    }
    tokio::time::sleep(ssfd::tls::WATCH_INTERVAL * 2).await;
    assert_eq!(served_leaf(&ca, &url).await, first.2, "the watcher saw it");

    let pid = d.child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_leaf(&ca, &url).await;
        if served == renewed.2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(served, renewed.2, "SIGHUP did not bring in the renewal");
}

#[test]
fn per_address_limits_in_the_file() {
    let parse = |text: &str| Config::parse(text, Path::new("receiver.toml"));
    let c = parse("[server]\nmax_connections_per_address = 8\nmax_failed_auth_per_minute = 5\n")
        .unwrap();
    assert_eq!(c.server.max_connections_per_address, 8);
    assert_eq!(c.server.max_failed_auth_per_minute, 5);
    let defaults = Config::default();
    assert_eq!(defaults.server.max_connections_per_address, 64);
    assert_eq!(defaults.server.max_failed_auth_per_minute, 20);
    for key in ["max_connections_per_address", "max_failed_auth_per_minute"] {
        for bad in ["0", "100001", "\"many\""] {
            let err = parse(&format!("[server]\n{key} = {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("server.{key}")), "{err}");
            assert!(err.contains("line 2"), "{err}");
        }
    }
}
