//! `cargo +nightly fuzz run resolve_path` (from conduit-static/): any request path either is
//! refused or resolves to plain names under the root. The same property runs on stable in
//! `conduit-static/tests/fuzz_resolver.rs`.
#![no_main]

use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    for allow_hidden in [false, true] {
        if let Ok(resolved) = conduit_static::resolve_path(path, allow_hidden) {
            let root = Path::new("/srv/root");
            let joined = root.join(resolved.relative());
            assert!(joined.starts_with(root));
            for c in Path::new(resolved.relative()).components() {
                let Component::Normal(name) = c else {
                    panic!("{path:?} resolved to a non-plain component {c:?}");
                };
                let name = name.to_str().unwrap();
                assert!(name != "." && name != "..");
                assert!(!name.contains(['\0', '\\', '/']));
                assert!(allow_hidden || !name.starts_with('.'));
            }
        }
    }
});
