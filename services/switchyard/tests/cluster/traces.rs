//! A real OTLP/gRPC trace receiver for the tracing test: it keeps every span exported to
//! it with the `service.name` of the process that sent it.

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use std::sync::{Arc, Mutex};
use tonic::{Request, Response, Status};

#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Receiver {
    pub spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    Value::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for scope in resource.scope_spans {
                for s in scope.spans {
                    spans.push(Span {
                        service: service.clone(),
                        name: s.name,
                        trace_id: s.trace_id,
                        span_id: s.span_id,
                        parent: s.parent_span_id,
                    });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

/// Starts the receiver on loopback; returns it and its `http://` endpoint.
pub async fn start() -> (Receiver, String) {
    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(receiver.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (receiver, endpoint)
}

impl Receiver {
    /// A `stanza` (edge) → `route` (router) → `deliver` (other edge) chain, if exported.
    pub fn chain(&self) -> Option<[Span; 3]> {
        let spans = self.spans.lock().unwrap();
        let find = |id: &[u8]| spans.iter().find(|s| s.span_id == id).cloned();
        spans
            .iter()
            .filter(|s| s.name == "deliver")
            .find_map(|deliver| {
                let route = find(&deliver.parent)?;
                let stanza = find(&route.parent)?;
                let linked = route.name == "route" && stanza.name == "stanza";
                let one_trace =
                    deliver.trace_id == route.trace_id && route.trace_id == stanza.trace_id;
                (linked && one_trace).then(|| [stanza, route, deliver.clone()])
            })
    }
}
