//! Durability is proven, not assumed: the daemon is killed with SIGKILL while SETs are being
//! pushed, and every SET that got a 202 must be in the store after a restart. Also: a database
//! that cannot be written answers 503, never 202, and the daemon recovers.

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use common::{create_stream_at, ChildDaemon};
use ssfd_testkit::TestTransmitter;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_push_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let tx = TestTransmitter::start().await;
    let mut daemon = ChildDaemon::spawn(dir.path(), "").await;
    let http = ssfd_testkit::http_client();
    let (id, token) = create_stream_at(&http, &daemon.admin_url(), &tx).await;
    // Pre-sign so the pushers only push.
    let sets: Vec<(String, String)> = (0..3000)
        .map(|i| {
            let jti = format!("kill-{i}");
            (jti.clone(), tx.set().jti(jti).sign())
        })
        .collect();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let url = daemon.push_url(&id);
    let chunks: Vec<Vec<(String, String)>> = sets.chunks(375).map(|c| c.to_vec()).collect();
    let mut pushers = Vec::new();
    for chunk in chunks {
        let (http, url, token, acked) = (http.clone(), url.clone(), token.clone(), acked.clone());
        pushers.push(tokio::spawn(async move {
            for (jti, set) in chunk {
                match ssfd_testkit::push_set(&http, &url, &token, &set).await {
                    Ok(r) if r.status() == 202 => {
                        acked.lock().unwrap().insert(jti);
                    }
                    Ok(_) => {}
                    Err(_) => break, // the daemon is gone
                }
            }
        }));
    }
    // Kill once a good share has been acknowledged (bounded wait).
    for _ in 0..1000 {
        if acked.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    daemon.kill9();
    for p in pushers {
        let _ = p.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 300,
        "only {} acknowledged before the kill",
        acked.len()
    );

    let daemon = daemon.restart().await;
    let stored: HashSet<String> = common::stored_events(&dir.path().join("ssfd.db"), Some(&id))
        .await
        .into_iter()
        .map(|e| e.jti)
        .collect();
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged SETs lost, e.g. {:?}",
        lost.len(),
        lost.first()
    );
    // The daemon is usable after the crash and still knows every jti.
    let (jti, set) = &sets[0];
    let resp = ssfd_testkit::push_set(&http, &daemon.push_url(&id), &token, set)
        .await
        .unwrap();
    assert_eq!(resp.status(), 202, "{jti}");
}

/// Sets the soft file-size limit of a running process (the stand-in for a full disk that works
/// for root too: writes past the limit fail with EFBIG).
fn set_file_size_limit(pid: u32, soft: u64) {
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: libc::RLIM_INFINITY,
    };
    let rc = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_FSIZE, &new, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_never_202_and_recovers() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let tx = TestTransmitter::start().await;
    let push_port = common::free_port();
    let admin_port = common::free_port();
    let config_path = dir.path().join("receiver.toml");
    std::fs::write(
        &config_path,
        format!(
            "[server]\npush_listen = \"127.0.0.1:{push_port}\"\nadmin_listen = \"127.0.0.1:{admin_port}\"\n\
             [storage]\npath = \"{}\"\n[admin]\ntoken = \"{}\"\n[jwks]\nallow_http = true\n[log]\nlevel = \"error\"\n",
            dir.path().join("ssfd.db").display(),
            common::ADMIN_TOKEN
        ),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ssfd"));
    cmd.arg("serve").arg("--config").arg(&config_path);
    // Writing past RLIMIT_FSIZE raises SIGXFSZ, which would kill the daemon; ignored, the write
    // fails with EFBIG instead, as it would with ENOSPC on a full disk.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let daemon = ChildDaemon::spawn_command(cmd, config_path, push_port, admin_port).await;
    let http = ssfd_testkit::http_client();
    let (id, token) = create_stream_at(&http, &daemon.admin_url(), &tx).await;
    let url = daemon.push_url(&id);
    assert_eq!(
        ssfd_testkit::push_set(&http, &url, &token, &tx.set().sign())
            .await
            .unwrap()
            .status(),
        202
    );

    let size = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    };
    let largest = size("ssfd.db").max(size("ssfd.db-wal"));
    set_file_size_limit(daemon.child.id(), largest + 16 * 1024);

    let mut acked = Vec::new();
    let mut refused = Vec::new();
    for i in 0..2000 {
        let jti = format!("full-{i}");
        let resp = ssfd_testkit::push_set(&http, &url, &token, &tx.set().jti(&jti).sign())
            .await
            .unwrap();
        match resp.status().as_u16() {
            202 => acked.push(jti),
            503 => {
                assert!(resp.headers().get("retry-after").is_some());
                refused.push(jti);
                if refused.len() >= 3 {
                    break;
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(!refused.is_empty(), "the disk never filled up");
    // Still alive and answering.
    let health = http
        .get(format!("{}/healthz", daemon.admin_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    // Space returns: the very SETs that were refused are accepted on redelivery.
    set_file_size_limit(daemon.child.id(), libc::RLIM_INFINITY);
    for jti in &refused {
        let resp = ssfd_testkit::push_set(&http, &url, &token, &tx.set().jti(jti).sign())
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{jti}");
    }
    let events = common::stored_events(&dir.path().join("ssfd.db"), None).await;
    for jti in acked.iter().chain(refused.iter()) {
        let n = events.iter().filter(|e| &e.jti == jti).count();
        assert_eq!(n, 1, "{jti}");
    }
}
