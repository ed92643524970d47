//! One table of RFC 9110's cases for the rules in this module.

use http::header::{HeaderMap, HeaderValue, IF_NONE_MATCH};

use super::*;
use ContentCoding::*;

/// §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
#[test]
fn quality_values() {
    let table: &[(&str, Option<QValue>)] = &[
        ("0", Some(0)),
        ("0.", Some(0)),
        ("0.0", Some(0)),
        ("0.001", Some(1)),
        ("0.5", Some(500)),
        ("0.75", Some(750)),
        ("0.999", Some(999)),
        ("1", Some(1000)),
        ("1.", Some(1000)),
        ("1.000", Some(1000)),
        (" 0.3 ", Some(300)),
        ("1.001", None),
        ("1.5", None),
        ("2", None),
        ("0.1234", None),
        (".5", None),
        ("-1", None),
        ("", None),
        ("0.a", None),
        ("1e0", None),
    ];
    for (input, want) in table {
        assert_eq!(parse_qvalue(input), *want, "qvalue {input:?}");
    }
    let items: Vec<_> =
        quality_items(" gzip ; q=0.3 ,, br;level=5, zstd;q=7, deflate;bogus").collect();
    assert_eq!(
        items,
        [
            QualityItem {
                token: "gzip",
                q: Some(300)
            },
            QualityItem {
                token: "br",
                q: Some(1000)
            },
            QualityItem {
                token: "zstd",
                q: None
            },
            QualityItem {
                token: "deflate",
                q: None
            },
        ]
    );
}

/// §12.5.3, with the server's default preference (zstd, br, gzip, deflate) and with only
/// some codings available (a static file with just a `.gz` sibling).
#[test]
fn accept_encoding() {
    use Negotiated::{Encode, Identity, Required};
    let all = ContentCoding::PREFERENCE;
    let gz = [Gzip];
    let table: &[(&str, &[ContentCoding], Negotiated)] = &[
        // Empty value: only identity is acceptable.
        ("", &all, Identity),
        ("gzip", &all, Encode(Gzip)),
        ("x-gzip", &all, Encode(Gzip)),
        ("GZIP", &all, Encode(Gzip)),
        // Equal weights: the server's order.
        ("gzip, br, zstd", &all, Encode(Zstd)),
        ("gzip, deflate, br", &all, Encode(Brotli)),
        // Highest weight wins.
        ("gzip;q=0.8, zstd;q=0.9", &all, Encode(Zstd)),
        ("gzip;q=1.0, br;q=0.999", &all, Encode(Gzip)),
        ("compress, gzip", &all, Encode(Gzip)),
        // q=0 refuses a coding.
        ("br;q=0", &[Brotli], Identity),
        ("gzip;q=0, br", &all, Encode(Brotli)),
        // `*` covers what is not listed, not what is.
        ("*", &all, Encode(Zstd)),
        ("zstd;q=0, *", &all, Encode(Brotli)),
        ("*;q=0.5, gzip", &all, Encode(Gzip)),
        // The RFC's example: gzip preferred, identity acceptable, the rest refused.
        ("gzip;q=1.0, identity; q=0.5, *;q=0", &all, Encode(Gzip)),
        ("gzip;q=1.0, identity; q=0.5, *;q=0", &[Brotli], Identity),
        // A named identity that outweighs the codings wins; one that ties does not.
        ("gzip;q=0.5, identity", &all, Identity),
        ("gzip;q=0.5, identity;q=0.5", &all, Encode(Gzip)),
        // identity;q=0 and *;q=0 refuse identity: a coding is required ...
        ("gzip, identity;q=0", &all, Required(Gzip)),
        ("gzip;q=0.5, identity;q=0", &all, Required(Gzip)),
        ("br, *;q=0", &all, Required(Brotli)),
        ("identity;q=0", &all, Identity),
        ("identity;q=0, *", &gz, Required(Gzip)),
        // ... unless `identity` is named with a weight.
        ("*;q=0, identity", &all, Identity),
        ("gzip, *;q=0, identity;q=0.5", &all, Encode(Gzip)),
        // ... and when none is available, identity anyway (no 406).
        ("identity;q=0", &gz, Identity),
        ("*;q=0", &all, Identity),
        ("br, identity;q=0", &gz, Identity),
        // Only what is available.
        ("br", &gz, Identity),
        ("br, gzip;q=0.1", &gz, Encode(Gzip)),
        // Malformed elements are skipped, the rest honoured.
        ("gzip;q=2, br", &all, Encode(Brotli)),
        ("gzip;q=2", &all, Identity),
        (" gzip ; q=0.3 ,,", &gz, Encode(Gzip)),
        // Listed twice: the higher weight.
        ("gzip;q=0.1, br;q=0.5, gzip", &all, Encode(Gzip)),
    ];
    for (header, available, want) in table {
        assert_eq!(
            AcceptEncoding::parse(header).negotiate(available),
            *want,
            "Accept-Encoding: {header:?} among {available:?}"
        );
    }
    // Several field lines are one list; no header at all is identity.
    let mut h = HeaderMap::new();
    assert_eq!(AcceptEncoding::from_headers(&h).negotiate(&all), Identity);
    h.append("accept-encoding", HeaderValue::from_static("gzip;q=0.5"));
    h.append("accept-encoding", HeaderValue::from_static("br"));
    assert_eq!(
        AcceptEncoding::from_headers(&h).negotiate(&all),
        Encode(Brotli)
    );
}

/// §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; §8.8.3.2's comparison table.
#[test]
fn entity_tags() {
    let tag = |s: &'static str| EntityTag::parse(s.as_bytes()).unwrap();
    // The RFC's table: W/"1" vs W/"1", W/"1" vs W/"2", W/"1" vs "1", "1" vs "1".
    let cases = [
        ("W/\"1\"", "W/\"1\"", false, true),
        ("W/\"1\"", "W/\"2\"", false, false),
        ("W/\"1\"", "\"1\"", false, true),
        ("\"1\"", "\"1\"", true, true),
    ];
    for (a, b, strong, weak) in cases {
        assert_eq!(
            tag(a).matches(&tag(b), Comparison::Strong),
            strong,
            "{a} {b} strong"
        );
        assert_eq!(
            tag(a).matches(&tag(b), Comparison::Weak),
            weak,
            "{a} {b} weak"
        );
    }
    for bad in [
        "abc",
        "\"abc",
        "W/abc",
        "w/\"abc\"",
        "\"a\"b\"",
        "\"a\" x",
        "\"a\u{1}\"",
    ] {
        assert_eq!(EntityTag::parse(bad.as_bytes()), None, "{bad:?}");
    }
    assert_eq!(tag("\"\"").opaque(), b"");
    assert!(tag("W/\"x\"").is_weak());
    assert_eq!(tag(" \"x\" ").opaque(), b"x");

    // Lists (§13.1.1, §13.1.2): `*`, several lines, empty elements; a malformed list is an
    // error however early a match came.
    let current = tag("\"abc\"");
    let list = |lines: &[&'static str], cmp| {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(IF_NONE_MATCH, HeaderValue::from_static(l));
        }
        EntityTagList::new(h.get_all(IF_NONE_MATCH)).matches(&current, cmp)
    };
    use Comparison::{Strong, Weak};
    assert_eq!(list(&["\"abc\""], Strong), Ok(true));
    assert_eq!(list(&["\"x\", \"abc\""], Strong), Ok(true));
    assert_eq!(list(&["\"x\",\"y\""], Weak), Ok(false));
    assert_eq!(list(&["\"x\"", "W/\"abc\""], Weak), Ok(true));
    assert_eq!(list(&["W/\"abc\""], Strong), Ok(false));
    assert_eq!(list(&["*"], Strong), Ok(true));
    assert_eq!(list(&[" * "], Weak), Ok(true));
    assert_eq!(
        list(&["\"x\", *"], Weak),
        Err(MalformedTagList),
        "* stands alone"
    );
    assert_eq!(
        list(&[""], Weak),
        Err(MalformedTagList),
        "at least one element"
    );
    assert_eq!(list(&[" , \"abc\" ,"], Weak), Ok(true));
    assert_eq!(list(&["\"abc\", junk"], Weak), Err(MalformedTagList));
    assert_eq!(list(&["abc"], Weak), Err(MalformedTagList));
    assert_eq!(list(&["\"abc\" \"x\""], Weak), Err(MalformedTagList));
    assert_eq!(list(&[], Weak), Ok(false));

    // Encoded variants: one suffix convention, the coding's token.
    let v = HeaderValue::from_static("\"abc\"");
    assert_eq!(etag_with_coding(&v, Gzip).unwrap(), "\"abc-gzip\"");
    assert_eq!(etag_with_coding(&v, Zstd).unwrap(), "\"abc-zstd\"");
    assert_eq!(etag_with_coding(&v, Brotli).unwrap(), "\"abc-br\"");
    let w = HeaderValue::from_static("W/\"abc\"");
    assert_eq!(etag_with_coding(&w, Deflate).unwrap(), "W/\"abc-deflate\"");
    assert_eq!(
        etag_with_coding(&HeaderValue::from_static("abc"), Gzip),
        None
    );
    assert_eq!(tag("\"abc-gzip\"").without_coding(Gzip), Some(current));
    assert_eq!(tag("\"abc-gzip\"").without_coding(Brotli), None);
    assert_eq!(tag("\"abcgzip\"").without_coding(Gzip), None);
}

/// §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient accepts.
#[test]
fn dates() {
    let v = |s: &'static str| HeaderValue::from_static(s);
    assert_eq!(
        parse_http_date(&v("Sun, 06 Nov 1994 08:49:37 GMT")),
        Some(784_111_777)
    );
    assert_eq!(
        parse_http_date(&v("Sunday, 06-Nov-94 08:49:37 GMT")),
        Some(784_111_777)
    );
    assert_eq!(
        parse_http_date(&v("Sun Nov  6 08:49:37 1994")),
        Some(784_111_777)
    );
    assert_eq!(parse_http_date(&v("yesterday")), None);
    let mut h = HeaderMap::new();
    h.append("if-modified-since", v("Sun, 06 Nov 1994 08:49:37 GMT"));
    let name = http::header::IF_MODIFIED_SINCE;
    assert_eq!(single_date(&h, &name), Some(784_111_777));
    h.append("if-modified-since", v("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert_eq!(single_date(&h, &name), None, "sent twice: ignored");
}

/// §12.5.1: the most specific matching range gives the weight; JSON errors need JSON named.
#[test]
fn accept_media_quality_and_json_preference() {
    fn accept(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(http::header::ACCEPT, HeaderValue::from_str(v).unwrap());
        }
        h
    }
    let table: &[(&[&str], QValue, QValue, bool)] = &[
        // Accept lines, q(text/plain), q(application/json), prefers JSON
        (&[], 1000, 1000, false),
        (&["*/*"], 1000, 1000, false),
        (&["application/json"], 0, 1000, true),
        (&["application/problem+json"], 0, 0, true),
        (&["Application/Problem+JSON;q=0.5"], 0, 0, true),
        (&["application/json, text/plain"], 1000, 1000, true),
        (&["text/plain, application/json;q=0.9"], 1000, 900, false),
        (&["text/*;q=0.2, application/json;q=0.3"], 200, 300, true),
        (&["text/plain;q=0.1, text/*, */*;q=0.5"], 100, 500, false),
        (&["application/json;q=0"], 0, 0, false),
        (
            &["text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"],
            800,
            800,
            false,
        ),
        (&["application/*;q=0.4"], 0, 400, false),
        (&["application/json;q=bogus, text/plain"], 1000, 0, false),
        (&["text/plain;q=0.5", "application/json"], 500, 1000, true),
        (&["application/json;q=0.5, */*"], 1000, 500, false),
    ];
    for (lines, text_q, json_q, json) in table {
        let h = accept(lines);
        assert_eq!(
            media_quality(&h, "text/plain"),
            *text_q,
            "text/plain for {lines:?}"
        );
        assert_eq!(
            media_quality(&h, "application/json"),
            *json_q,
            "json for {lines:?}"
        );
        assert_eq!(prefers_json(&h), *json, "prefers_json for {lines:?}");
    }
}
