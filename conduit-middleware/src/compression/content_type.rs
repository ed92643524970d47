//! Which media types are worth compressing.

/// The default content-type predicate: text, JSON, JavaScript, XML, SVG, wasm, and a few other
/// textual types yes; images, audio, video, fonts in woff/woff2, archives and anything unknown
/// no. A response without `Content-Type` is not compressed.
pub fn is_compressible(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let Some((ty, sub)) = essence.split_once('/') else {
        return false;
    };
    let ty = ty.trim().to_ascii_lowercase();
    let sub = sub.trim().to_ascii_lowercase();
    if ty == "text" {
        return true;
    }
    if sub.ends_with("+json") || sub.ends_with("+xml") {
        return true;
    }
    match ty.as_str() {
        "application" => matches!(
            sub.as_str(),
            "json"
                | "javascript"
                | "x-javascript"
                | "ecmascript"
                | "xml"
                | "wasm"
                | "x-ndjson"
                | "ndjson"
                | "manifest+json"
                | "x-www-form-urlencoded"
                | "graphql"
                | "yaml"
                | "x-yaml"
                | "toml"
                | "csv"
                | "rtf"
                | "x-sh"
                | "vnd.ms-fontobject"
                | "x-font-ttf"
                | "x-font-opentype"
        ),
        "image" => matches!(
            sub.as_str(),
            "svg+xml" | "x-icon" | "vnd.microsoft.icon" | "bmp"
        ),
        "font" => matches!(sub.as_str(), "ttf" | "otf" | "collection"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for yes in [
            "text/html; charset=utf-8",
            "text/plain",
            "text/event-stream",
            "application/json",
            "application/problem+json",
            "application/javascript",
            "application/xml",
            "application/atom+xml",
            "image/svg+xml",
            "application/wasm",
            "application/x-ndjson",
            "TEXT/CSS",
        ] {
            assert!(is_compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "image/webp",
            "video/mp4",
            "audio/ogg",
            "font/woff2",
            "font/woff",
            "application/zip",
            "application/gzip",
            "application/x-tar",
            "application/octet-stream",
            "application/pdf",
            "",
            "garbage",
        ] {
            assert!(!is_compressible(no), "{no}");
        }
    }
}
