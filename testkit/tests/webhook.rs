//! The webhook recorder: what it records and the answers it gives, in order.

use ssfd_testkit::WebhookRecorder;

#[tokio::test]
async fn records_requests_and_answers_the_queue_then_the_default() {
    let hook = WebhookRecorder::start().await;
    assert!(hook.is_empty());
    hook.answer_next(2, 503, "try again");
    let http = ssfd_testkit::http_client();
    let send = |n: u32| {
        http.post(format!("{}?n={n}", hook.url()))
            .header("idempotency-key", format!("key-{n}"))
            .header("content-type", "application/json")
            .body(format!("{{\"n\":{n}}}"))
            .send()
    };
    let mut answers = Vec::new();
    for n in 0..3 {
        let r = send(n).await.unwrap();
        answers.push((r.status().as_u16(), r.text().await.unwrap()));
    }
    hook.answer_always(500, "receiver broken");
    let r = send(3).await.unwrap();
    answers.push((r.status().as_u16(), r.text().await.unwrap()));
    assert_eq!(
        answers,
        [
            (503, "try again".to_string()),
            (503, "try again".to_string()),
            (200, String::new()),
            (500, "receiver broken".to_string()),
        ]
    );

    let got = hook.deliveries();
    assert_eq!(hook.len(), 4);
    for (n, d) in got.iter().enumerate() {
        assert_eq!(d.method, "POST");
        assert_eq!(d.path, format!("/hook?n={n}"));
        assert_eq!(d.header("idempotency-key"), format!("key-{n}"));
        assert_eq!(d.header("x-absent"), "");
        assert_eq!(d.json()["n"], n);
    }
    assert!(got.windows(2).all(|w| w[0].received_at <= w[1].received_at));
}

#[tokio::test]
async fn restarts_on_the_same_address_and_stops_when_dropped() {
    let first = WebhookRecorder::start().await;
    let addr = first.addr();
    drop(first);
    let http = ssfd_testkit::http_client();
    let mut refused = false;
    for _ in 0..50 {
        if http
            .post(format!("http://{addr}/hook"))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "the recorder outlived its handle");

    let second = WebhookRecorder::start_on(addr).await.unwrap();
    let r = http.post(second.url()).body("x").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(second.deliveries()[0].body, "x");
}
