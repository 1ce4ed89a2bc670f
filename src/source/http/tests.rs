//! Tests of `source::http`: auth challenges, `Link` headers, where
//! credentials may go, and Docker Hub names.
//!
//! Built for `cargo test` only: no code outside tests may use anything here.

use super::*;

#[test]
fn challenges_parse() {
    assert_eq!(
        parse_challenge("Basic realm=\"Registry\""),
        Some(Challenge::Basic)
    );
    assert_eq!(
        parse_challenge(
            "Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull\""
        ),
        Some(Challenge::Bearer {
            realm: "https://auth.example/token".into(),
            service: Some("registry.example".into())
        })
    );
    assert_eq!(
        parse_challenge("bearer realm=https://a/t, service=s"),
        Some(Challenge::Bearer {
            realm: "https://a/t".into(),
            service: Some("s".into())
        })
    );
    // A quoted value may hold commas and escaped quotes.
    assert_eq!(
        parse_challenge("Bearer service=\"a,b\",realm=\"https://x/\\\"t\""),
        Some(Challenge::Bearer {
            realm: "https://x/\"t".into(),
            service: Some("a,b".into())
        })
    );
    assert_eq!(parse_challenge("Bearer service=\"s\""), None);
    assert_eq!(parse_challenge("Negotiate abc"), None);
    assert_eq!(parse_challenge(""), None);
}

#[test]
fn link_next() {
    assert_eq!(
        next_link("</v2/a/tags/list?n=100&last=x>; rel=\"next\"").as_deref(),
        Some("/v2/a/tags/list?n=100&last=x")
    );
    assert_eq!(
        next_link("<https://r/v2/a/tags/list?last=y>; rel=\"prev\", </n>; rel=next").as_deref(),
        Some("/n")
    );
    assert_eq!(next_link("</v2/a>; rel=\"prev\""), None);
    assert_eq!(next_link("garbage"), None);
}

#[test]
fn credentials_go_to_https_realms_or_the_insecure_registry_itself() {
    let u = |s: &str| Url::parse(s).unwrap();
    assert!(may_send_credentials(
        &u("https://auth.example/token"),
        "reg:5000",
        false
    ));
    assert!(may_send_credentials(
        &u("https://auth.example/token"),
        "reg:5000",
        true
    ));
    // Plain HTTP on another host or port: never.
    assert!(!may_send_credentials(
        &u("http://auth.example/token"),
        "reg:5000",
        true
    ));
    assert!(!may_send_credentials(
        &u("http://reg:5001/token"),
        "reg:5000",
        true
    ));
    // Plain HTTP on the registry itself: only when it is insecure.
    assert!(may_send_credentials(
        &u("http://reg:5000/token"),
        "reg:5000",
        true
    ));
    assert!(!may_send_credentials(
        &u("http://reg:5000/token"),
        "reg:5000",
        false
    ));
    assert!(!may_send_credentials(
        &u("ftp://reg:5000/token"),
        "reg:5000",
        true
    ));
}

#[test]
fn docker_hub_names() {
    assert_eq!(api_host("docker.io"), "registry-1.docker.io");
    assert_eq!(api_host("quay.io"), "quay.io");
    assert_eq!(api_repository("docker.io", "alpine"), "library/alpine");
    assert_eq!(api_repository("docker.io", "acme/x"), "acme/x");
    assert_eq!(api_repository("ghcr.io", "alpine"), "alpine");
}

#[test]
fn form_encoding() {
    assert_eq!(form_encode("a b&c=d/é"), "a+b%26c%3Dd%2F%C3%A9");
}
