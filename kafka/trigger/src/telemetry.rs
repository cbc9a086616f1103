//! Traces, configured as Spin configures them: on when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is
//! set (and `OTEL_SDK_DISABLED` is not), exported over OTLP to that
//! endpoint, the service named by `OTEL_SERVICE_NAME`.
//!
//! The W3C `traceparent` is what ties one write's spans together: the HTTP
//! span continues the caller's and hands its own to the component in the
//! request's `traceparent` header; the component stores it with each outbox
//! row; the relay's publish span continues it and travels in the Kafka
//! record's `traceparent` and `ce_traceparent` headers (the latter is the
//! CloudEvents distributed-tracing extension in binary mode); each Kafka
//! handler's span continues that and is handed to the component the same
//! way; outbound HTTP continues the `traceparent` the component set, or the
//! invocation's.
//!
//! With tracing off every function here is a no-op that allocates nothing.

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// The W3C trace-context header.
pub const TRACEPARENT: &str = "traceparent";
/// The CloudEvents distributed-tracing extension attribute, as a Kafka
/// header in binary content mode.
pub const CE_TRACEPARENT: &str = "ce_traceparent";

static TRACER: OnceLock<(SdkTracerProvider, SdkTracer)> = OnceLock::new();

fn set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// Starts the exporter if the environment asks for traces (says whether
/// it did).
pub fn init() -> Result<bool> {
    if set("OTEL_SDK_DISABLED")
        || !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    {
        return Ok(false);
    }
    let protocol = std::env::var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|_| "http/protobuf".into());
    let protocol = match protocol.as_str() {
        "http/protobuf" => opentelemetry_otlp::Protocol::HttpBinary,
        "http/json" => opentelemetry_otlp::Protocol::HttpJson,
        // gRPC would need tonic and a second HTTP stack in the host.
        "grpc" => bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL=grpc is not supported by trigger-kafka; use http/protobuf (port 4318 on a collector) or http/json"
        ),
        other => bail!("OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not an OTLP protocol (http/protobuf, http/json)"),
    };
    use opentelemetry_otlp::WithExportConfig;
    // The endpoint, headers and timeout come from the standard OTEL_*
    // variables, read by the exporter itself.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol)
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "trigger-kafka".into());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    use opentelemetry::trace::TracerProvider as _;
    let tracer = provider.tracer("trigger-kafka");
    let _ = TRACER.set((provider, tracer));
    Ok(true)
}

/// Exports what is buffered and stops the exporter (before the process
/// exits).
pub fn shutdown() {
    if let Some((provider, _)) = TRACER.get() {
        let _ = provider.shutdown();
    }
}

/// Whether spans are recorded at all.
pub fn enabled() -> bool {
    TRACER.get().is_some()
}

struct Lookup<'a, F: Fn(&str) -> Option<&'a str>>(F);

impl<'a, F: Fn(&str) -> Option<&'a str>> Extractor for Lookup<'a, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }
    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

struct Out(HashMap<String, String>);

impl Injector for Out {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// A span in progress; ends (and is exported) when dropped.
pub struct Span {
    inner: Option<opentelemetry_sdk::trace::Span>,
}

impl Span {
    /// Starts a span continuing `traceparent` (a new trace without one).
    pub fn start(
        name: &'static str,
        kind: SpanKind,
        traceparent: Option<&str>,
        attributes: Vec<KeyValue>,
    ) -> Span {
        let Some((_, tracer)) = TRACER.get() else {
            return Span { inner: None };
        };
        let parent = match traceparent {
            Some(value) => TraceContextPropagator::new()
                .extract(&Lookup(|key| (key == TRACEPARENT).then_some(value))),
            None => Context::new(),
        };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Span { inner: Some(span) }
    }

    /// A span that records nothing (tracing off).
    pub fn none() -> Span {
        Span { inner: None }
    }

    /// This span as a `traceparent` value, for what it causes.
    pub fn traceparent(&self) -> Option<String> {
        let span = self.inner.as_ref()?;
        let cx = Context::new().with_remote_span_context(span.span_context().clone());
        let mut out = Out(HashMap::new());
        TraceContextPropagator::new().inject_context(&cx, &mut out);
        out.0.remove(TRACEPARENT)
    }

    pub fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(span) = &mut self.inner {
            span.set_attribute(attribute);
        }
    }

    pub fn fail(&mut self, reason: impl Into<String>) {
        if let Some(span) = &mut self.inner {
            span.set_status(Status::error(reason.into()));
        }
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(span) = &mut self.inner {
            span.end();
        }
    }
}

/// Replaces (or adds) the `traceparent` among string headers.
pub fn put_traceparent(headers: &mut Vec<(String, String)>, names: &[&str], value: &str) {
    for name in names {
        match headers.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value.to_owned(),
            None => headers.push(((*name).to_owned(), value.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_get_one_traceparent_each() {
        let mut headers = vec![("traceparent".to_owned(), "old".to_owned())];
        put_traceparent(&mut headers, &[TRACEPARENT, CE_TRACEPARENT], "new");
        assert_eq!(
            headers,
            [
                ("traceparent".to_owned(), "new".to_owned()),
                ("ce_traceparent".to_owned(), "new".to_owned())
            ]
        );
    }

    #[test]
    fn without_an_exporter_nothing_is_recorded() {
        let span = Span::start(
            "x",
            SpanKind::Internal,
            Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            vec![],
        );
        assert_eq!(span.traceparent(), None);
    }
}
