//! The fuzz target `fuzz/fuzz_targets/resolve_path.rs`, runnable on stable: a fixed number of
//! generated and mutated request paths (seeded, so a failure reproduces) go through
//! `resolve_path`; none may panic, and every accepted one must be plain names under the root.
//! cargo-fuzz itself needs a nightly toolchain; this bounded run is what CI does on stable.

use std::path::{Component, Path};

use conduit_static::resolve_path;

/// splitmix64: a tiny seeded generator, enough to drive the mutations reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces attackers combine.
const TOKENS: &[&str] = &[
    "/",
    "/",
    "/",
    "..",
    ".",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "%00",
    "%",
    "%%",
    "%2",
    "%c0%af",
    "%c0%ae",
    "%e2%88%95",
    "%ef%bc%8f",
    "C:",
    "c:",
    ":",
    "::$DATA",
    "a",
    "b.txt",
    ".git",
    ".env",
    "%252e",
    "%252f",
    "~",
    "%ff",
    "%fe",
    "%u002e",
    ";",
    "?",
    "#",
    "é",
    "%C3%A9",
    "..%2f",
    "%2e%2e",
    "%2e%2e%2f",
    "....",
    "//",
    "\0",
    "\u{202e}",
    "%0a",
    "%20",
    " ",
];

const SEEDS: &[&str] = &[
    "/../secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/sub/..%5c..%5csecret.txt",
    "/%252e%252e%252fsecret.txt",
    "/..%c0%afsecret.txt",
    "/C:/Windows/win.ini",
    "/public.txt::$DATA",
    "/.git/config",
    "/a/b/c/index.html",
    "/static//x.js",
];

fn check(path: &str) {
    for allow_hidden in [false, true] {
        let Ok(resolved) = resolve_path(path, allow_hidden) else {
            continue;
        };
        let rel = resolved.relative();
        let root = Path::new("/srv/root");
        assert!(root.join(rel).starts_with(root), "{path:?} → {rel:?}");
        for c in Path::new(rel).components() {
            let Component::Normal(name) = c else {
                panic!("{path:?} resolved to a non-plain component {c:?} ({rel:?})");
            };
            let name = name.to_str().expect("UTF-8");
            assert!(name != "." && name != "..", "{path:?} → {rel:?}");
            assert!(!name.contains(['\0', '\\', '/']), "{path:?} → {rel:?}");
            let b = name.as_bytes();
            let drive = b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':';
            assert!(!drive && !name.contains("::"), "{path:?} → {rel:?}");
            assert!(allow_hidden || !name.starts_with('.'), "{path:?} → {rel:?}");
        }
        // Decoded once: a result without `%` resolves to itself (nothing left to decode).
        if !rel.contains('%') && !rel.is_empty() {
            let again = format!("/{rel}");
            let again = resolve_path(&again, allow_hidden).expect("stable");
            assert_eq!(again.relative(), rel);
        }
    }
}

#[test]
fn generated_and_mutated_paths_never_escape_the_root() {
    let mut rng = Rng(0x00c0_ffee_5eed);
    let mut accepted = 0usize;
    // Generated: random sequences of attack tokens.
    for _ in 0..60_000 {
        let mut p = String::from("/");
        for _ in 0..1 + rng.below(12) {
            p.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        check(&p);
        accepted += usize::from(resolve_path(&p, false).is_ok());
    }
    // Mutated: byte-level edits of known attacks (kept as UTF-8, as the URI is a &str).
    for _ in 0..60_000 {
        let mut bytes = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(4) {
                0 => bytes.insert(at, rng.next() as u8),
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                2 if at < bytes.len() => bytes[at] = b"/.%\\:02efF5cC"[rng.below(13)],
                _ => {
                    let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                    bytes.splice(at..at, t.iter().copied());
                }
            }
        }
        let p = String::from_utf8_lossy(&bytes);
        check(&p);
    }
    // Sanity: the generator does produce accepted paths, so the invariants were exercised.
    assert!(
        accepted > 1000,
        "only {accepted} generated paths were accepted"
    );
}
