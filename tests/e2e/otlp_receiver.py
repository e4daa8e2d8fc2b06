"""An OTLP trace receiver and a traced upstream app, for gatehouse's tracing
tests (crates/gatehouse/tests/tracing.rs).

- `--http PORT`: OTLP/HTTP, `POST /v1/traces` with `application/x-protobuf`,
  decoded by the official `opentelemetry-proto` classes.
- `--grpc PORT`: OTLP/gRPC, the official `TraceService` on a grpcio server.
- `--app PORT`: an upstream that reads `traceparent` with OpenTelemetry's
  own W3C propagator and answers what it found, as JSON.

Every span received is printed as one JSON line on stdout (with the
transport and the `authorization` it came with); `ready` is printed once
every listener is up. Listens on 127.0.0.1 only.
"""

import argparse
import json
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.trace.propagation.tracecontext import (
    TraceContextTextMapPropagator,
)

LOCK = threading.Lock()


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def emit(request, transport, authorization):
    lines = []
    for rs in request.resource_spans:
        resource = {kv.key: value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                lines.append(
                    {
                        "transport": transport,
                        "authorization": authorization,
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start": s.start_time_unix_nano,
                        "end": s.end_time_unix_nano,
                        "attributes": {kv.key: value(kv.value) for kv in s.attributes},
                        "status": s.status.code,
                        "flags": s.flags,
                    }
                )
    with LOCK:
        for line in lines:
            print(json.dumps(line), flush=True)


class Otlp(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if (
            self.path != "/v1/traces"
            or self.headers.get("content-type") != "application/x-protobuf"
        ):
            self.send_response(404)
            self.end_headers()
            return
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        emit(request, "http", self.headers.get("authorization"))
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        metadata = dict(context.invocation_metadata())
        emit(request, "grpc", metadata.get("authorization"))
        return trace_service_pb2.ExportTraceServiceResponse()


class App(BaseHTTPRequestHandler):
    def do_GET(self):
        carrier = {k.lower(): v for k, v in self.headers.items()}
        ctx = TraceContextTextMapPropagator().extract(carrier)
        span = trace.get_current_span(ctx).get_span_context()
        answer = json.dumps(
            {
                "valid": span.is_valid,
                "trace_id": format(span.trace_id, "032x"),
                "span_id": format(span.span_id, "016x"),
                "sampled": span.trace_flags.sampled,
                "traceparent": carrier.get("traceparent"),
                "tracestate": carrier.get("tracestate"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def serve_http(port, handler):
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http", type=int)
    p.add_argument("--grpc", type=int)
    p.add_argument("--app", type=int)
    args = p.parse_args()
    if args.http:
        serve_http(args.http, Otlp)
    if args.app:
        serve_http(args.app, App)
    if args.grpc:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
        server.add_insecure_port(f"127.0.0.1:{args.grpc}")
        server.start()
    print("ready", flush=True)
    # Until the test closes stdin (or kills the process).
    sys.stdin.read()


if __name__ == "__main__":
    main()
