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
        }
    }
}
