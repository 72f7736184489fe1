//! Logs and OpenTelemetry traces.
//!
//! Logs: text or JSON on standard error, filtered by `RUST_LOG` (default `info`).
//!
//! Traces (when an OTLP endpoint is configured): one routed stanza is one trace — a
//! `stanza` span on the sending edge, a `route` span on the router, a `deliver` span on
//! the recipient's edge — joined across the gRPC hops by W3C trace context carried in the
//! link messages. The spans use the `switchyard::trace` target at TRACE level, which only
//! the OpenTelemetry layer listens to: with tracing off nobody is interested in them, so
//! their call sites are disabled and the hot path pays nothing (and nothing is injected).

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The target of every trace span.
pub const TARGET: &str = "switchyard::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Where and how much to trace.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    pub endpoint: String,
    /// Share of new traces kept (0.0–1.0); a propagated decision is always followed.
    pub sample_ratio: f64,
    /// `service.name` of this process (e.g. `switchyard-edge`).
    pub service: String,
}

/// Flushes pending spans when dropped (at process exit).
#[derive(Debug)]
pub struct TraceGuard(Option<SdkTracerProvider>);

impl Drop for TraceGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs logging (`json` or text) and, with `trace`, the OTLP exporter. Must run
/// inside the tokio runtime when tracing is on.
pub fn init(format: &str, trace: Option<TraceConfig>) -> Result<TraceGuard, String> {
    let env = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let logs = if format == "json" {
        logs.json().with_filter(env).boxed()
    } else {
        logs.with_filter(env).boxed()
    };
    let (otel, provider) = match trace {
        None => (None, None),
        Some(config) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(config.endpoint.clone())
                .build()
                .map_err(|e| format!("OTLP exporter for {}: {e}", config.endpoint))?;
            let ratio = config.sample_ratio.clamp(0.0, 1.0);
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                    ratio,
                ))))
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(config.service)
                        .build(),
                )
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("switchyard"))
                .with_filter(Targets::new().with_target(TARGET, tracing::Level::TRACE));
            ENABLED.store(true, Ordering::Relaxed);
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(TraceGuard(provider))
}

/// Whether traces are exported (otherwise nothing is injected or extracted).
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The W3C `traceparent` of the current span, or empty when tracing is off.
pub fn current_traceparent() -> String {
    if !enabled() {
        return String::new();
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&Span::current().context(), &mut carrier);
    carrier.remove("traceparent").unwrap_or_default()
}

/// Makes `span` a child of the remote span named by `traceparent`, if any.
pub fn adopt(span: &Span, traceparent: &str) {
    if !enabled() || traceparent.is_empty() {
        return;
    }
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let parent = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(parent);
}

/// A stanza received from a client, on its edge.
pub fn stanza_span(kind: &str) -> Span {
    tracing::trace_span!(target: TARGET, "stanza", kind)
}

/// A stanza routed by a router, child of the sending edge's span.
pub fn route_span(traceparent: &str) -> Span {
    let span = tracing::trace_span!(target: TARGET, "route");
    adopt(&span, traceparent);
    span
}

/// A stanza handed to a connection on the recipient's edge, child of the router's span.
pub fn deliver_span(traceparent: &str) -> Span {
    let span = tracing::trace_span!(target: TARGET, "deliver");
    adopt(&span, traceparent);
    span
}
