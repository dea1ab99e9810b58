//! Poll delivery (RFC 8936) end to end: a real daemon polls the test transmitter on loopback.
//! Numbers in comments refer to docs/receiver-checklist.md (items 42-49).

mod common;

use std::time::Duration;

use common::{test_config, Mode, TestDaemon};
use reqwest::Method;
use serde_json::{json, Value};
use ssfd_testkit::{PollRequest, TestTransmitter};

/// Waits (at most 60 s) until `cond` holds; panics naming `what` otherwise.
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting until {what}");
}

/// A transmitter whose long polls are held only briefly, so acknowledgements are confirmed soon.
async fn transmitter() -> TestTransmitter {
    transmitter_in(Mode::Ssf).await
}

async fn transmitter_in(mode: Mode) -> TestTransmitter {
    let tx = mode.transmitter().await;
    tx.set_poll_hold(Duration::from_millis(200));
    tx
}

/// Creates a POLL stream on `feed` authenticated with the transmitter's static bearer token.
async fn poll_stream(d: &TestDaemon, tx: &TestTransmitter, feed: &str, extra: Value) -> String {
    let mut body = json!({
        "deliveryMethod": "SSF_DELIVERY_METHOD_POLL",
        "pollEndpointUrl": tx.poll_url(feed),
        "outboundAuthBearer": {"token": tx.static_token()},
    });
    if tx.is_legacy() {
        body["compatibilityProfile"] = json!("LEGACY_SSE");
    }
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        body[k] = v;
    }
    let (id, token) = d.create_stream_for(tx, body).await;
    assert!(token.is_empty(), "POLL streams have no push token");
    id
}

fn acked_all(tx: &TestTransmitter, jtis: &[String]) -> bool {
    let acked = tx.acked();
    jtis.iter().all(|j| acked.contains(j))
}

async fn pending_ack_rows(d: &TestDaemon, id: &str) -> i64 {
    d.daemon.app.store.pending_acks(id).await.unwrap().len() as i64
}

fn last_error(d: &TestDaemon, id: &str) -> String {
    d.daemon
        .app
        .registry
        .get(id)
        .map(|s| s.last_error_message.clone())
        .unwrap_or_default()
}

both_modes!(fifty_sets_are_polled_stored_and_acknowledged);
async fn fifty_sets_are_polled_stored_and_acknowledged(mode: Mode) {
    // 42, 43, 44, 47
    let d = TestDaemon::start().await;
    let tx = transmitter_in(mode).await;
    let jtis: Vec<String> = (0..50).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("all 50 are acknowledged", || acked_all(&tx, &jtis)).await;
    assert_eq!(d.events(&id).await.len(), 50);
    assert_eq!(d.stats(&id).await["eventsReceivedCount"], 50);
    assert_eq!(tx.queued("f"), 0);
    // Acknowledged exactly once each.
    assert_eq!(tx.acked().len(), 50);
    let requests = tx.poll_requests();
    let expected_auth = format!("Bearer {}", tx.static_token());
    for r in &requests {
        assert_eq!(r.max_events(), Some(100), "{:?}", r.body);
        // Long polls by default; a legacy transmitter refuses them, so LEGACY_SSE short-polls
        // and sends its acknowledgements as `acks` too.
        assert_eq!(r.return_immediately(), mode == Mode::Legacy);
        if mode == Mode::Legacy {
            assert_eq!(r.body["acks"], r.body["ack"]);
        }
        assert_eq!(r.authorization.as_deref(), Some(expected_auth.as_str()));
        assert!(r.set_errs().is_empty());
        assert_eq!(r.content_language, None, "no setErrs, no Content-Language");
    }
    // The pending rows go once the transmitter has answered the request that carried them.
    for _ in 0..600 {
        if pending_ack_rows(&d, &id).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending_ack_rows(&d, &id).await, 0);
    assert_eq!(d.get_stream(&id).await["lastErrorMessage"], "");
}

both_modes!(rejected_sets_are_reported_in_set_errs_and_never_acknowledged);
async fn rejected_sets_are_reported_in_set_errs_and_never_acknowledged(mode: Mode) {
    // 43, and the CONF invalid-set-rejection module
    let d = TestDaemon::start().await;
    let tx = transmitter_in(mode).await;
    // An audience both modes name, so that a foreign one is refused in both.
    let aud = ssfd_testkit::DEFAULT_AUDIENCE;
    let good = tx.enqueue_set("f", &tx.set().aud(aud));
    let forged = tx.enqueue(
        "f",
        &tx.sign_with_unpublished_key(&tx.set().aud(aud).claims()),
    );
    let foreign = tx.enqueue_set("f", &tx.set().aud(aud).iss("https://impostor.example.com"));
    let elsewhere = tx.enqueue_set("f", &tx.set().aud("https://another-receiver.example.com"));
    let id = poll_stream(&d, &tx, "f", json!({"expectedAudience": aud})).await;
    until("three setErrs and one ack", || {
        tx.set_errs().len() == 3 && tx.acked().contains(&good)
    })
    .await;
    let errs = tx.set_errs();
    assert_eq!(errs[&forged]["err"], "invalid_key");
    assert_eq!(errs[&foreign]["err"], "invalid_issuer");
    assert_eq!(errs[&elsewhere]["err"], "invalid_audience");
    for e in errs.values() {
        assert!(!e["description"].as_str().unwrap().is_empty());
    }
    let acked = tx.acked();
    for bad in [&forged, &foreign, &elsewhere] {
        assert!(!acked.contains(bad), "{bad} must never be acknowledged");
    }
    // RFC 8936 §2.6: a request with setErrs carries Content-Language.
    let requests = tx.poll_requests();
    let with_errs: Vec<&PollRequest> = requests
        .iter()
        .filter(|r| !r.set_errs().is_empty())
        .collect();
    assert!(!with_errs.is_empty());
    for r in with_errs {
        assert_eq!(r.content_language.as_deref(), Some("en-US"));
    }
    let events = d.events(&id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["jti"], good.as_str());
    assert_eq!(events[0]["delivery"], "poll");
    assert_eq!(d.stats(&id).await["eventsFailedCount"], 3);
}

both_modes!(more_available_pages_through_the_queue);
async fn more_available_pages_through_the_queue(mode: Mode) {
    // 46
    let d = TestDaemon::start_with(|c| c.poll.max_events = 10).await;
    let tx = transmitter_in(mode).await;
    let jtis: Vec<String> = (0..35).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("all 35 are acknowledged", || acked_all(&tx, &jtis)).await;
    let answered: Vec<PollRequest> = tx
        .poll_requests()
        .into_iter()
        .filter(|r| !r.delivered.is_empty())
        .collect();
    let sizes: Vec<usize> = answered.iter().map(|r| r.delivered.len()).collect();
    let more: Vec<bool> = answered.iter().map(|r| r.more_available).collect();
    assert_eq!(sizes, vec![10, 10, 10, 5]);
    assert_eq!(more, vec![true, true, true, false]);
    assert!(tx
        .poll_requests()
        .iter()
        .all(|r| r.max_events() == Some(10)));
    assert_eq!(d.events(&id).await.len(), 35);
}

both_modes!(a_set_under_a_key_that_is_not_its_jti_is_an_invalid_request);
async fn a_set_under_a_key_that_is_not_its_jti_is_an_invalid_request(mode: Mode) {
    // 48
    let d = TestDaemon::start().await;
    let tx = transmitter_in(mode).await;
    let token = tx.set().jti("the-real-jti").sign();
    tx.enqueue_as("f", "another-key", &token);
    let good = tx.enqueue_set("f", &tx.set());
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the mismatch is reported", || {
        tx.set_errs().contains_key("another-key") && tx.acked().contains(&good)
    })
    .await;
    assert_eq!(tx.set_errs()["another-key"]["err"], "invalid_request");
    let acked = tx.acked();
    assert!(!acked.contains(&"another-key".to_string()));
    assert!(!acked.contains(&"the-real-jti".to_string()));
    let events = d.events(&id).await;
    assert_eq!(events.len(), 1, "the mismatched SET is not stored");
}

both_modes!(a_redelivered_set_is_acknowledged_again_and_stored_once);
async fn a_redelivered_set_is_acknowledged_again_and_stored_once(mode: Mode) {
    // 45
    let d = TestDaemon::start().await;
    let tx = transmitter_in(mode).await;
    let token = tx.set().sign();
    let jti = tx.enqueue("f", &token);
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the first delivery is acknowledged", || {
        tx.acked().contains(&jti)
    })
    .await;
    tx.enqueue("f", &token);
    until("the second delivery is acknowledged", || {
        tx.acked().iter().filter(|j| **j == jti).count() == 2
    })
    .await;
    assert_eq!(d.events(&id).await.len(), 1);
}

#[tokio::test]
async fn unavailable_keys_neither_acknowledge_nor_report_until_they_return() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.set_jwks_status(500);
    let jti = tx.enqueue_set("f", &tx.set());
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the SET was delivered twice", || {
        tx.poll_requests()
            .iter()
            .filter(|r| r.delivered.contains(&jti))
            .count()
            >= 2
    })
    .await;
    assert!(tx.acked().is_empty());
    assert!(tx.set_errs().is_empty());
    tx.set_jwks_status(200);
    until("it is acknowledged once the keys are back", || {
        tx.acked().contains(&jti)
    })
    .await;
    assert!(tx.set_errs().is_empty());
    assert_eq!(d.events(&id).await.len(), 1);
}

#[tokio::test]
async fn a_poll_interval_polls_with_return_immediately() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    let jtis: Vec<String> = (0..3).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    poll_stream(&d, &tx, "f", json!({"pollInterval": "1s"})).await;
    until("all acknowledged", || acked_all(&tx, &jtis)).await;
    let requests = tx.poll_requests();
    assert!(requests.iter().all(|r| r.return_immediately()));
}

#[tokio::test]
async fn oauth_tokens_are_renewed_before_they_expire() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.set_token_lifetime(Duration::from_secs(2));
    let (client_id, client_secret) = tx.client_credentials();
    let id = poll_stream(
        &d,
        &tx,
        "f",
        json!({
            "outboundAuthBearer": null,
            "outboundAuthOauth2": {"clientId": client_id, "clientSecret": client_secret,
                                   "tokenUrl": tx.token_url(), "scopes": []},
        }),
    )
    .await;
    let mut jtis = Vec::new();
    for _ in 0..60 {
        if tx.tokens_issued() >= 3 {
            break;
        }
        jtis.push(tx.enqueue_set("f", &tx.set()));
        until("the SET is acknowledged", || acked_all(&tx, &jtis)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(tx.tokens_issued() >= 3, "a 2 s token must be renewed");
    for r in tx.token_requests() {
        assert_eq!(r.grant_type, "client_credentials");
        assert_eq!(r.client_id, client_id);
        assert_eq!(r.scope, "ssf.manage ssf.read");
        assert!(r.secret_in_body, "client_secret_post");
        assert!(!r.authorization_header);
        assert!(r.granted);
    }
    let distinct: std::collections::HashSet<_> = tx
        .poll_requests()
        .into_iter()
        .filter_map(|r| r.authorization)
        .collect();
    assert!(distinct.len() >= 3);
    // The secret never shows in the API.
    let text = d.get_stream(&id).await.to_string();
    assert!(!text.contains(&client_secret));
    assert_eq!(d.events(&id).await.len(), jtis.len());
}

#[tokio::test]
async fn a_refused_access_token_is_replaced_and_the_request_sent_again() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    let (client_id, client_secret) = tx.client_credentials();
    poll_stream(
        &d,
        &tx,
        "f",
        json!({
            "outboundAuthBearer": null,
            "outboundAuthOauth2": {"clientId": client_id, "clientSecret": client_secret,
                                   "tokenUrl": tx.token_url(), "scopes": ["ssf.read"]},
        }),
    )
    .await;
    let first = tx.enqueue_set("f", &tx.set());
    until("the first SET is acknowledged", || {
        tx.acked().contains(&first)
    })
    .await;
    assert_eq!(tx.tokens_issued(), 1);
    tx.revoke_tokens();
    let second = tx.enqueue_set("f", &tx.set());
    until("the second SET is acknowledged", || {
        tx.acked().contains(&second)
    })
    .await;
    assert_eq!(tx.tokens_issued(), 2);
    assert!(tx.unauthorized_count() >= 1);
    assert!(tx.token_requests().iter().all(|r| r.scope == "ssf.read"));
}

#[tokio::test]
async fn a_failing_endpoint_is_polled_with_back_off_and_recovery_clears_the_error() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.fail_polls(503, Duration::from_secs(5));
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the failure is on the stream", || {
        last_error(&d, &id).contains("HTTP 503")
    })
    .await;
    let v = d.get_stream(&id).await;
    assert!(v["lastErrorAt"].is_string());
    assert!(v["lastErrorMessage"].as_str().unwrap().contains("poll"));
    let jti = tx.enqueue_set("f", &tx.set());
    until("polling recovers", || tx.acked().contains(&jti)).await;
    let failed = tx
        .poll_requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    assert!((1..=6).contains(&failed), "{failed} requests while failing");
    until("the error is cleared", || last_error(&d, &id).is_empty()).await;
    let v = d.get_stream(&id).await;
    assert!(v.get("lastErrorAt").is_none(), "{v}");
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.fail_polls_with_retry_after(503, Duration::from_secs(3), 2);
    poll_stream(&d, &tx, "f", json!({})).await;
    let jti = tx.enqueue_set("f", &tx.set());
    until("polling recovers", || tx.acked().contains(&jti)).await;
    let failed = tx
        .poll_requests()
        .iter()
        .filter(|r| r.status == 503)
        .count();
    // Without Retry-After, back-off alone would have tried three times in three seconds.
    assert!((1..=2).contains(&failed), "{failed} requests while failing");
}

#[tokio::test]
async fn a_400_answer_body_is_ignored_and_polling_backs_off() {
    // 49
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.fail_polls(400, Duration::from_secs(1));
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the 400 is recorded", || {
        last_error(&d, &id).contains("HTTP 400")
    })
    .await;
    let jti = tx.enqueue_set("f", &tx.set());
    until("polling recovers", || tx.acked().contains(&jti)).await;
    until("the error is cleared", || last_error(&d, &id).is_empty()).await;
}

#[tokio::test]
async fn admin_changes_start_restart_and_stop_pollers_without_a_restart() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    let running = |id: &str| {
        d.daemon
            .app
            .transmitters
            .running_pollers()
            .contains(&id.to_string())
    };
    until("the poller runs", || running(&id)).await;
    let first = tx.enqueue_set("f", &tx.set());
    until("its SET is acknowledged", || tx.acked().contains(&first)).await;

    let path = format!("/api/v1/ssf-receiver-streams/{id}");
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(json!({"ssfReceiverStream": {"enabled": false}, "updateMask": "enabled"})),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    until("disabling stops the poller", || !running(&id)).await;

    let queued_while_off = tx.enqueue_set("f2", &tx.set());
    let (status, v) = d
        .api(
            Method::POST,
            &path,
            Some(
                json!({"ssfReceiverStream": {"enabled": true, "pollEndpointUrl": tx.poll_url("f2")},
                        "updateMask": "enabled,pollEndpointUrl"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    until("the poller follows the new endpoint", || {
        tx.acked().contains(&queued_while_off)
    })
    .await;

    let (status, _) = d.api(Method::DELETE, &path, None).await;
    assert_eq!(status, 200);
    until("deleting stops the poller", || !running(&id)).await;
}

#[tokio::test]
async fn shutdown_sends_a_final_acknowledgement_only_request() {
    // 47
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    // A long hold: the request that carries the acks is still open when the daemon stops.
    tx.set_poll_hold(Duration::from_secs(30));
    let jtis: Vec<String> = (0..3).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    for _ in 0..600 {
        if d.events(&id).await.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(d.events(&id).await.len(), 3);
    d.stop().await;
    let last = tx.poll_requests().pop().unwrap();
    assert_eq!(last.max_events(), Some(0), "{:?}", last.body);
    assert!(last.return_immediately());
    assert_eq!(last.status, 200);
    let acks = last.acks();
    assert!(jtis.iter().all(|j| acks.contains(j)), "{acks:?}");
}

#[tokio::test]
async fn pending_acknowledgements_survive_a_restart() {
    let d = TestDaemon::start().await;
    let tx = TestTransmitter::start().await;
    tx.set_poll_hold(Duration::from_secs(30));
    let jtis: Vec<String> = (0..2).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    for _ in 0..600 {
        if d.events(&id).await.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Nothing the transmitter answers from now on confirms the acks.
    tx.fail_polls(503, Duration::from_secs(3600));
    let dir = d.stop().await;
    {
        let store = common::storage_settings(dir.path()).open().await;
        assert_eq!(store.pending_acks(&id).await.unwrap().len(), 2);
    }
    tx.fail_polls(503, Duration::ZERO);
    tx.set_poll_hold(Duration::from_millis(200));
    let before = tx.poll_requests().len();
    let config = test_config(dir.path());
    let d = TestDaemon::start_in(dir, config).await;
    until("the restarted poller asks again", || {
        tx.poll_requests()[before..].iter().any(|r| r.status == 200)
    })
    .await;
    let first = tx.poll_requests()[before..]
        .iter()
        .find(|r| r.status == 200)
        .cloned()
        .unwrap();
    let acks = first.acks();
    assert!(jtis.iter().all(|j| acks.contains(j)), "{acks:?}");
    for _ in 0..600 {
        if pending_ack_rows(&d, &id).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending_ack_rows(&d, &id).await, 0);
}

#[tokio::test]
async fn an_answer_with_more_than_max_events_is_taken_max_events_at_a_time() {
    let d = TestDaemon::start_with(|c| c.poll.max_events = 3).await;
    let tx = transmitter().await;
    tx.set_poll_ignores_max_events(true);
    let jtis: Vec<String> = (0..10).map(|_| tx.enqueue_set("f", &tx.set())).collect();
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("all 10 are acknowledged", || acked_all(&tx, &jtis)).await;
    assert_eq!(d.events(&id).await.len(), 10);
    for r in tx.poll_requests() {
        let acks = r.acks().len();
        assert!(acks <= 3, "{acks} acks in one request: {:?}", r.body);
    }
}

#[tokio::test]
async fn a_poller_started_again_clears_the_error_its_predecessor_left() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.fail_polls(503, Duration::from_secs(3600));
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the failure is on the stream", || {
        last_error(&d, &id).contains("HTTP 503")
    })
    .await;
    let dir = d.stop().await;
    tx.fail_polls(503, Duration::ZERO);
    let config = test_config(dir.path());
    let d = TestDaemon::start_in(dir, config).await;
    let jti = tx.enqueue_set("f", &tx.set());
    until("polling works again", || tx.acked().contains(&jti)).await;
    until("the old error is cleared", || {
        last_error(&d, &id).is_empty()
    })
    .await;
}

#[tokio::test]
async fn an_access_token_that_never_expires_does_not_stop_the_poller() {
    // expires_in near u64::MAX once made `Instant + Duration` panic inside the poller.
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.set_token_lifetime(Duration::from_secs(u64::MAX));
    let (client_id, client_secret) = tx.client_credentials();
    let id = poll_stream(
        &d,
        &tx,
        "f",
        json!({
            "outboundAuthBearer": null,
            "outboundAuthOauth2": {"clientId": client_id, "clientSecret": client_secret,
                                   "tokenUrl": tx.token_url(), "scopes": []},
        }),
    )
    .await;
    let first = tx.enqueue_set("f", &tx.set());
    until("the first SET is acknowledged", || {
        tx.acked().contains(&first)
    })
    .await;
    let second = tx.enqueue_set("f", &tx.set());
    until("the second SET is acknowledged", || {
        tx.acked().contains(&second)
    })
    .await;
    assert_eq!(tx.tokens_issued(), 1, "the token is reused");
    assert_eq!(d.events(&id).await.len(), 2);
}

#[tokio::test]
async fn a_transmitter_that_ignores_acks_is_not_polled_in_a_hot_loop() {
    let d = TestDaemon::start().await;
    let tx = transmitter().await;
    tx.set_poll_ignores_acks(true);
    let good = tx.enqueue_set("f", &tx.set());
    // And one that is rejected every time.
    tx.enqueue_as("f", "bad-key", &tx.set().sign());
    let id = poll_stream(&d, &tx, "f", json!({})).await;
    until("the SET is acknowledged", || tx.acked().contains(&good)).await;
    let from = tx.poll_requests().len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let polls = tx.poll_requests().len() - from;
    // Back-off from 0.5-1 s doubling: a handful in 3 s (a hot loop made hundreds).
    assert!(polls <= 6, "{polls} polls in 3 s");
    assert_eq!(d.events(&id).await.len(), 1);
    // New SETs are still taken promptly once they come.
    tx.set_poll_ignores_acks(false);
    let next = tx.enqueue_set("f", &tx.set());
    until("the new SET is acknowledged", || tx.acked().contains(&next)).await;
    assert_eq!(d.events(&id).await.len(), 2);
}
