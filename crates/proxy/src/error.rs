//! Everything that can go wrong while serving a request, and the one place
//! that decides which status and page each failure gets.

use http::StatusCode;

/// Who is at fault decides the status: the client (4xx), the upstream
/// (502/504), or gatehouse itself (500).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("no route for this host and path")]
    NoRoute,
    #[error("the request target is not a valid path")]
    BadPath,
    /// The request could be read two ways (path or headers): refused.
    #[error("{}", .0.reason())]
    Ambiguous(crate::request::Ambiguous),
    #[error("the request has no Host")]
    NoHost,
    #[error("method not supported by gatehouse")]
    MethodNotSupported,
    #[error("the route's policy denied the request")]
    Denied,
    #[error("could not connect to the upstream")]
    UpstreamConnect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream closed or reset the connection")]
    UpstreamReset(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    #[error("could not build the upstream request")]
    Internal(String),
    /// A forward-auth question from a peer not in
    /// `forward_auth_trusted_sources`.
    #[error("forward-auth question from an untrusted peer")]
    ForwardAuthUntrusted,
    /// A forward-auth question that does not describe its request.
    #[error("{0}")]
    ForwardAuthBadRequest(&'static str),
    /// A forward-auth question about an address no route serves (403: the
    /// proxy in front must refuse it, not pass it on).
    #[error("no route for the original request")]
    ForwardAuthNoRoute,
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BadPath | ProxyError::Ambiguous(_) | ProxyError::NoHost => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::MethodNotSupported => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::Denied => StatusCode::FORBIDDEN,
            ProxyError::UpstreamConnect(_) | ProxyError::UpstreamReset(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::ForwardAuthUntrusted | ProxyError::ForwardAuthNoRoute => {
                StatusCode::FORBIDDEN
            }
            ProxyError::ForwardAuthBadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// The one-line reason shown to the person who made the request.
    pub fn reason(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "No route is configured for this address.",
            ProxyError::BadPath => "The request path is not valid.",
            ProxyError::Ambiguous(a) => a.reason(),
            ProxyError::NoHost => "The request did not say which host it is for.",
            ProxyError::MethodNotSupported => "This request method is not supported.",
            ProxyError::Denied => "Access denied: this route's policy does not allow this request.",
            ProxyError::UpstreamConnect(_) => "The service behind this address is not reachable.",
            ProxyError::UpstreamReset(_) => {
                "The service behind this address closed the connection."
            }
            ProxyError::UpstreamTimeout => {
                "The service behind this address did not answer in time."
            }
            ProxyError::Internal(_) => "Something went wrong inside gatehouse.",
            ProxyError::ForwardAuthUntrusted => {
                "Forward-auth requests are accepted only from the proxies listed in forward_auth_trusted_sources."
            }
            ProxyError::ForwardAuthBadRequest(why) => why,
            ProxyError::ForwardAuthNoRoute => "No route matches this address.",
        }
    }

    /// A short stable code for logs, metrics and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::BadPath => "bad_path",
            ProxyError::Ambiguous(a) => a.code(),
            ProxyError::NoHost => "no_host",
            ProxyError::MethodNotSupported => "method_not_supported",
            ProxyError::Denied => "access_denied",
            ProxyError::UpstreamConnect(_) => "upstream_connect",
            ProxyError::UpstreamReset(_) => "upstream_reset",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::Internal(_) => "internal",
            ProxyError::ForwardAuthUntrusted => "forward_auth_untrusted",
            ProxyError::ForwardAuthBadRequest(_) => "forward_auth_bad_request",
            ProxyError::ForwardAuthNoRoute => "no_route",
        }
    }
}

/// The one answer for a refusal: its status, reason and code, as a page or
/// JSON (`json`), with the request id.
pub fn response(e: &ProxyError, request_id: &str, json: bool) -> http::Response<crate::body::Body> {
    crate::answers::page(e.status(), e.reason(), e.code(), request_id, json)
}
