//! The HTTP side of the WebSocket listener, request by request.

use super::*;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// A browser's upgrade request (RFC 6455 §1.2's key), with `extra` headers.
fn upgrade_request(extra: &[(&str, &str)]) -> HeaderMap {
    let mut all = vec![
        ("host", "chat.example.org"),
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];
    all.extend_from_slice(extra);
    headers(&all)
}

const DOMAINS: &[String] = &[];

fn domains() -> Vec<String> {
    vec!["chat.example.org".into(), "localhost".into()]
}

fn get(policy: &WebSocketPolicy, path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let domains = domains();
    let site = Site {
        policy,
        domains: &domains,
    };
    respond(&site, &Method::GET, true, path, headers)
}

#[test]
fn an_upgrade_naming_xmpp_switches_protocols() {
    let policy = WebSocketPolicy::default();
    let response = get(
        &policy,
        PATH,
        &upgrade_request(&[("sec-websocket-protocol", "chat, xmpp")]),
    );
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let h = response.headers();
    // RFC 6455 §1.3's worked example.
    assert_eq!(
        h[header::SEC_WEBSOCKET_ACCEPT],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert_eq!(h[header::SEC_WEBSOCKET_PROTOCOL], "xmpp");
    assert_eq!(h[header::UPGRADE], "websocket");
}

#[test]
fn an_upgrade_without_the_xmpp_subprotocol_is_refused() {
    let policy = WebSocketPolicy::default();
    for extra in [vec![], vec![("sec-websocket-protocol", "chat")]] {
        let response = get(&policy, PATH, &upgrade_request(&extra));
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
    }
}

#[test]
fn what_is_not_a_websocket_upgrade_gets_426() {
    let policy = WebSocketPolicy::default();
    let cases = [
        headers(&[("host", "x")]),
        upgrade_request(&[("sec-websocket-protocol", "xmpp")])
            .into_iter()
            .filter(|(k, _)| k.as_ref().is_some_and(|k| k != header::SEC_WEBSOCKET_KEY))
            .map(|(k, v)| (k.unwrap(), v))
            .collect(),
        {
            let mut h = upgrade_request(&[("sec-websocket-protocol", "xmpp")]);
            h.insert(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("8"));
            h
        },
    ];
    for h in cases {
        let response = get(&policy, PATH, &h);
        assert_eq!(response.status(), StatusCode::UPGRADE_REQUIRED, "{h:?}");
        assert_eq!(response.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }
}

#[test]
fn origins_are_checked_when_listed() {
    let policy = WebSocketPolicy {
        origins: vec!["https://chat.example.org".into()],
        public_url: None,
    };
    let with = |origin: &str| {
        get(
            &policy,
            PATH,
            &upgrade_request(&[("sec-websocket-protocol", "xmpp"), ("origin", origin)]),
        )
        .status()
    };
    assert_eq!(
        with("https://chat.example.org"),
        StatusCode::SWITCHING_PROTOCOLS
    );
    assert_eq!(with("https://evil.example"), StatusCode::FORBIDDEN);
    assert_eq!(with("null"), StatusCode::FORBIDDEN);
    // Not a browser: nothing to check against.
    let response = get(
        &policy,
        PATH,
        &upgrade_request(&[("sec-websocket-protocol", "xmpp")]),
    );
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
}

fn body(response: Response<Full<Bytes>>) -> String {
    use http_body_util::BodyExt;
    let collected = futures_util::FutureExt::now_or_never(response.into_body().collect());
    let bytes = collected.unwrap().unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn host_meta_names_the_endpoint_in_xml_and_json() {
    let policy = WebSocketPolicy::default();
    let h = headers(&[("host", "chat.example.org:5443")]);
    let xrd = get(&policy, "/.well-known/host-meta", &h);
    assert_eq!(xrd.status(), StatusCode::OK);
    assert_eq!(xrd.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(xrd.headers()[header::CONTENT_TYPE], "application/xrd+xml");
    let xml = body(xrd);
    let el = switchyard_core::xml::Element::parse(xml.trim_start_matches(|c| c != '\n')).unwrap();
    let link = el
        .child("Link", "http://docs.oasis-open.org/ns/xri/xrd-1.0")
        .unwrap();
    assert_eq!(link.attr("rel"), Some(REL));
    assert_eq!(
        link.attr("href"),
        Some("wss://chat.example.org:5443/xmpp-websocket")
    );

    let jrd = get(&policy, "/.well-known/host-meta.json", &h);
    assert_eq!(jrd.headers()[header::CONTENT_TYPE], "application/json");
    let json: serde_json::Value = serde_json::from_str(&body(jrd)).unwrap();
    assert_eq!(json["links"][0]["rel"], REL);
    assert_eq!(
        json["links"][0]["href"],
        "wss://chat.example.org:5443/xmpp-websocket"
    );

    let configured = WebSocketPolicy {
        origins: Vec::new(),
        public_url: Some("wss://xmpp.example.org/ws?a=1&b='2'".into()),
    };
    let xml = body(get(&configured, "/.well-known/host-meta", &h));
    assert!(
        xml.contains("href='wss://xmpp.example.org/ws?a=1&amp;b=&apos;2&apos;'"),
        "{xml}"
    );
}

#[test]
fn an_upgrade_needs_http11_a_real_key_and_the_subprotocol_as_named() {
    let policy = WebSocketPolicy::default();
    let xmpp = ("sec-websocket-protocol", "xmpp");
    let domains = domains();
    let site = Site {
        policy: &policy,
        domains: &domains,
    };
    let http10 = respond(&site, &Method::GET, false, PATH, &upgrade_request(&[xmpp]));
    assert_eq!(http10.status(), StatusCode::BAD_REQUEST);
    for key in [
        "abc",
        "",
        "dGhlIHNhbXBsZSBub25jZQ",
        "dGhlIHNhbXBsZSBub25j!Q==",
    ] {
        let mut h = upgrade_request(&[xmpp]);
        h.insert(
            header::SEC_WEBSOCKET_KEY,
            HeaderValue::from_str(key).unwrap(),
        );
        assert_eq!(
            get(&policy, PATH, &h).status(),
            StatusCode::BAD_REQUEST,
            "{key:?}"
        );
    }
    // §4.1: the reply must name a subprotocol exactly as offered.
    let upper = upgrade_request(&[("sec-websocket-protocol", "XMPP")]);
    assert_eq!(get(&policy, PATH, &upper).status(), StatusCode::BAD_REQUEST);
}

#[test]
fn a_host_that_is_not_a_served_domain_is_not_echoed() {
    let policy = WebSocketPolicy::default();
    for host in [
        "evil'/><x",
        "a b",
        "",
        "evil.example",
        "localhost:99999999",
        "[::1",
    ] {
        let response = get(
            &policy,
            "/.well-known/host-meta",
            &headers(&[("host", host)]),
        );
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{host:?}");
    }
    let response = get(&policy, "/.well-known/host-meta", &HeaderMap::new());
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let twice = headers(&[("host", "localhost"), ("host", "evil.example")]);
    let response = get(&policy, "/.well-known/host-meta", &twice);
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let upper = headers(&[("host", "LOCALHOST:5443")]);
    let xml = body(get(&policy, "/.well-known/host-meta", &upper));
    assert!(
        xml.contains("href='wss://localhost:5443/xmpp-websocket'"),
        "{xml}"
    );
}

#[test]
fn other_paths_and_methods_are_refused() {
    let policy = WebSocketPolicy::default();
    let h = headers(&[("host", "x")]);
    assert_eq!(get(&policy, "/", &h).status(), StatusCode::NOT_FOUND);
    assert_eq!(
        get(&policy, "/http-bind", &h).status(),
        StatusCode::NOT_FOUND
    );
    let site = Site {
        policy: &policy,
        domains: DOMAINS,
    };
    let post = respond(&site, &Method::POST, true, PATH, &h);
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}
