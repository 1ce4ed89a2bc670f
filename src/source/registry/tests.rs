//! Tests of `source::registry`: endpoints, request pacing and `next` links.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;

fn image(registry: &str, repository: &str) -> ImageRef {
    ImageRef {
        registry: registry.into(),
        repository: repository.into(),
    }
}

fn source(routes: Vec<Route>) -> RegistrySource {
    RegistrySource::new(RegistryOptions {
        routes,
        deadline: Duration::from_secs(5),
        poll_interval: Duration::from_secs(60),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn endpoints_follow_routes() {
    let conf = r#"
[[registry]]
location = "quay.io"
[[registry.mirror]]
location = "m1.corp"
[[registry.mirror]]
location = "m2.corp/cache"
pull-from-mirror = "digest-only"
[[registry]]
prefix = "quay.io/blocked"
location = "quay.io/blocked"
blocked = true
"#;
    let routes = registries_conf::parse(conf, std::path::Path::new("r.conf")).unwrap();
    let s = source(routes);
    let img = image("quay.io", "acme/x");
    assert_eq!(
        s.endpoints(&img, false).unwrap(),
        vec![image("m1.corp", "acme/x"), image("quay.io", "acme/x")]
    );
    assert_eq!(
        s.endpoints(&img, true).unwrap(),
        vec![
            image("m1.corp", "acme/x"),
            image("m2.corp", "cache/acme/x"),
            image("quay.io", "acme/x")
        ]
    );
    assert!(s.endpoints(&image("quay.io", "blocked/y"), false).is_err());
    assert_eq!(
        s.endpoints(&image("ghcr.io", "a/b"), true).unwrap(),
        vec![image("ghcr.io", "a/b")]
    );
}

#[tokio::test(start_paused = true)]
async fn requests_per_second_spaces_request_starts() {
    let s = RegistrySource::new(RegistryOptions {
        requests_per_second: HashMap::from([("r".to_string(), 4.0)]),
        max_requests: HashMap::from([("r".to_string(), 2)]),
        deadline: Duration::from_secs(5),
        ..Default::default()
    })
    .unwrap();
    let t0 = tokio::time::Instant::now();
    let mut starts = Vec::new();
    for _ in 0..5 {
        let _turn = s.turn("r").await;
        starts.push(t0.elapsed());
    }
    assert_eq!(
        starts,
        (0..5)
            .map(|i| Duration::from_millis(250 * i))
            .collect::<Vec<_>>()
    );
    // Another registry has no budget.
    let t1 = tokio::time::Instant::now();
    for _ in 0..5 {
        let _turn = s.turn("other").await;
    }
    assert_eq!(t1.elapsed(), Duration::ZERO);
    // The cap on requests in flight: two turns held, a third waits.
    let a = s.turn("other").await;
    let _b = s.turn("other").await;
    let third = tokio::time::timeout(Duration::from_secs(1), s.turn("other")).await;
    assert!(third.is_ok(), "the default cap is 4");
    drop(a);
    let _c = s.turn("r").await;
    let _d = s.turn("r").await;
    let held = tokio::time::timeout(Duration::from_secs(10), s.turn("r")).await;
    assert!(held.is_err(), "max_requests = 2 holds a third request back");
}

#[test]
fn next_links_stay_on_the_registry() {
    let at = image("reg:5000", "a");
    assert_eq!(
        same_origin_path(&at, "/v2/a/tags/list?n=100&last=x").unwrap(),
        "/v2/a/tags/list?n=100&last=x"
    );
    assert_eq!(
        same_origin_path(&at, "http://reg:5000/v2/a/tags/list?last=y").unwrap(),
        "/v2/a/tags/list?last=y"
    );
    assert!(same_origin_path(&at, "http://evil:5000/v2/a/tags/list").is_err());
    assert!(same_origin_path(&at, "//evil/v2").is_err());
}
