//! Headless Chromium for the tests that drive a page (SSE, WebSockets): [`launch`] starts it on
//! a URL with a fresh profile; the returned [`Browser`] stops it and removes the profile however
//! the test ends. Needs `chromium` (Debian package `chromium`; `scripts/test.sh` installs it).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running headless Chromium: killed and reaped, its profile directory removed, on drop.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    profile: std::path::PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // SIGTERM first, so Chromium stops and reaps its own helper processes; SIGKILL if it
        // does not exit within a few seconds.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The Chromium binary on `PATH`, if any.
pub fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// Open `url` in headless Chromium with a fresh profile and `extra` flags (for example
/// `--ignore-certificate-errors` for a test certificate). Panics without Chromium.
pub fn launch(url: &str, extra: &[&str]) -> Browser {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let bin = chromium().expect("chromium is needed for this test: apt-get install chromium");
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let profile = std::env::temp_dir().join(format!("conduit-chromium-{}-{n}", std::process::id()));
    let child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    Browser { child, profile }
}
