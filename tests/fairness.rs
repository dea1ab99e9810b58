//! Per-client-address fairness on both listeners: one address holding many connections, or
//! sending wrong tokens, does not shut out another address.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{TestDaemon, ADMIN_TOKEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HOG: [u8; 4] = [127, 0, 0, 1];
const OTHER: [u8; 4] = [127, 0, 0, 2];

async fn connect_from(local: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::from(local), 0))
        .unwrap();
    socket.connect(to).await.unwrap()
}

/// Sends one request on `conn` and returns the status line ("" when the server closed it).
async fn status_line(conn: &mut TcpStream) -> String {
    let sent = conn
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .await;
    if sent.is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(local))
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn one_address_holding_connections_does_not_starve_another() {
    let d = TestDaemon::start_with(|c| c.server.max_connections_per_address = 3).await;
    for addr in [d.daemon.push_addr, d.daemon.admin_addr] {
        // The hog opens its three connections and keeps them idle.
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(connect_from(HOG, addr).await);
        }
        // Its fourth is closed at once, without an answer.
        let mut fourth = connect_from(HOG, addr).await;
        assert_eq!(status_line(&mut fourth).await, "", "listener {addr}");
        // Another address is served as usual.
        let mut other = connect_from(OTHER, addr).await;
        assert_eq!(
            status_line(&mut other).await,
            "HTTP/1.1 200 OK",
            "listener {addr}"
        );
        // Once the hog lets go of one, it may connect again.
        let mut first = held.remove(0);
        assert_eq!(status_line(&mut first).await, "HTTP/1.1 200 OK");
        drop(first);
        let mut again = String::new();
        for _ in 0..100 {
            let mut conn = connect_from(HOG, addr).await;
            again = status_line(&mut conn).await;
            if !again.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(again, "HTTP/1.1 200 OK");
    }
}

#[tokio::test]
async fn wrong_tokens_from_one_address_do_not_lock_out_another() {
    let d = TestDaemon::start_with(|c| c.server.max_failed_auth_per_minute = 3).await;
    let tx = ssfd_testkit::TestTransmitter::start().await;
    let (id, push_token) = d.create_stream_for(&tx, serde_json::json!({})).await;
    let streams = format!("{}/api/v1/ssf-receiver-streams", d.daemon.admin_url());
    let push = d.push_url(&id);
    let guesser = client_from(HOG);
    let other = client_from(OTHER);

    for _ in 0..3 {
        let r = guesser
            .get(&streams)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The guesser is now answered 429, even with the right token, on both listeners (the
    // count is per address, not per listener).
    let r = guesser
        .get(&streams)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let r = guesser
        .post(&push)
        .bearer_auth(&push_token)
        .header("content-type", "application/secevent+jwt")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);

    // Another address is not affected.
    let r = other
        .get(&streams)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = other.post(&push).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), 401);
}
