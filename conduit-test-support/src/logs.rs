//! Capturing what the code under test logs: as text ([`Logs`]) or as fields ([`Capture`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A log sink; `text()` is everything logged so far.
#[derive(Clone, Debug, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Capture INFO and above logged on this thread (a current-thread test runtime runs the
    /// server's tasks here) until the guard is dropped.
    pub fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        Self::capture_at(tracing::Level::INFO)
    }

    /// Capture `level` and above logged on this thread until the guard is dropped.
    pub fn capture_at(level: tracing::Level) -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(level)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every captured event's fields, plus `target` and `level`.
pub type Events = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// A `tracing_subscriber` layer that records every event's fields into [`Events`].
#[derive(Debug)]
pub struct Capture(pub Events);

struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields(BTreeMap::new());
        event.record(&mut fields);
        let meta = event.metadata();
        fields.0.insert("target".into(), meta.target().into());
        fields.0.insert("level".into(), meta.level().to_string());
        self.0.lock().unwrap().push(fields.0);
    }
}

/// The captured events of `target`.
pub fn events_of(events: &Events, target: &str) -> Vec<BTreeMap<String, String>> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e["target"] == target)
        .cloned()
        .collect()
}
