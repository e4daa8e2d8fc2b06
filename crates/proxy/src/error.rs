//! Everything that can go wrong while serving a request, and the one place
//! that decides which status and page each refusal gets ([`response`]):
//! every refusal gatehouse answers itself is a [`ProxyError`]; its
//! [`Fault`] (the client, the policy, the upstream, gatehouse) decides the
//! class of status and the label it is counted under
//! (`gatehouse_refusals_total{source,code}`, counted by the dispatcher
//! from the [`Refusal`] the answer carries).

use std::borrow::Cow;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use crate::body::Body;

/// Who a refusal is on: decides the class of status and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// The request itself (4xx): malformed, ambiguous, unknown address.
    Downstream,
    /// The route's policy or sign-in: 401 or 403.
    Policy,
    /// The upstream: 502 or 504.
    Upstream,
    /// gatehouse or a service it depends on (the session store): 5xx.
    Internal,
}

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::Downstream => "downstream",
            Fault::Policy => "policy",
            Fault::Upstream => "upstream",
            Fault::Internal => "internal",
        }
    }
}

/// What a refusal's answer carries (in its extensions) for the dispatcher's
/// counters: never sent to the client.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    pub fault: Fault,
    pub code: &'static str,
}

/// Who is at fault decides the status: the client (4xx), the policy
/// (401/403), the upstream (502/504), or gatehouse itself (5xx).
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
    /// The route's policy denied it; the reasons only with
    /// `show_error_details`.
    #[error("the route's policy denied the request")]
    Denied(Option<String>),
    /// A missing or invalid client certificate where the route needs a
    /// valid one (Pomerium's 495).
    #[error("a valid client certificate is required")]
    ClientCertificate,
    /// No session where one is needed (API clients; browsers are sent to
    /// sign in).
    #[error("sign-in required")]
    SignInRequired,
    /// An own endpoint that needs a session, asked without one.
    #[error("not signed in")]
    NotSignedIn,
    /// The route needs sign-in and no identity provider can do it
    /// (`Some(name)`: a configured provider this build does not support).
    #[error("sign-in is not available")]
    SignInUnavailable(Option<String>),
    /// A bearer token refused (401), or its keys unreachable (503); the
    /// client learns nothing about the configuration.
    #[error("{public}")]
    BearerRefused {
        status: StatusCode,
        public: &'static str,
    },
    /// A token sign-in (`/.pomerium/sign_in_with_token`) refused.
    #[error("{1}")]
    TokenSignInRefused(StatusCode, &'static str),
    /// Programmatic login without `pomerium_redirect_uri`.
    #[error("programmatic login without a redirect URI")]
    ProgrammaticNoRedirect,
    /// Programmatic login to a host not in the whitelist.
    #[error("programmatic login to a host not whitelisted")]
    ProgrammaticRedirectRefused,
    /// A method an own endpoint does not take (`Allow` lists those it does).
    #[error("method not allowed")]
    MethodNotAllowed { allow: Option<&'static str> },
    /// A mounted service (the console) that needs a user from the main
    /// sign-in, asked without one (its policy admits anyone).
    #[error("a signed-in user is needed")]
    NeedsUser,
    /// A console route, and no console mounted on the proxy.
    #[error("the console is not configured")]
    NotMounted,
    /// The session store cannot be reached: sign-in waits (`Retry-After`).
    #[error("the session store is unavailable")]
    SessionStoreUnavailable,
    #[error("could not connect to the upstream")]
    UpstreamConnect(#[source] crate::body::BoxError),
    /// A TCP tunnel's target cannot be reached: 503, as Envoy answers a
    /// CONNECT (a tunnel client keeps its token and tries again later).
    #[error("the tunnel's target cannot be reached")]
    TunnelUnreachable,
    #[error("the upstream closed or reset the connection")]
    UpstreamReset(#[source] crate::body::BoxError),
    #[error("the upstream did not answer in time")]
    UpstreamTimeout,
    /// The client broke its request body off (a bad chunk, a reset).
    #[error("the request body broke off")]
    ClientBody,
    /// `timeout_write` passed before the response started.
    #[error("the request took longer than timeout_write")]
    StreamTimeout,
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
    /// Who the refusal is on.
    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::NoRoute
            | ProxyError::BadPath
            | ProxyError::Ambiguous(_)
            | ProxyError::NoHost
            | ProxyError::MethodNotSupported
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::ForwardAuthUntrusted
            | ProxyError::ForwardAuthBadRequest(_)
            | ProxyError::ForwardAuthNoRoute
            | ProxyError::ClientBody
            | ProxyError::ProgrammaticNoRedirect
            | ProxyError::ProgrammaticRedirectRefused => Fault::Downstream,
            ProxyError::Denied(_)
            | ProxyError::ClientCertificate
            | ProxyError::SignInRequired
            | ProxyError::NotSignedIn
            | ProxyError::SignInUnavailable(_)
            | ProxyError::NeedsUser => Fault::Policy,
            // A token refused is the policy's; a malformed request the
            // client's; keys or a store out of reach gatehouse's.
            ProxyError::BearerRefused { status, .. }
            | ProxyError::TokenSignInRefused(status, _) => {
                if status.is_server_error() {
                    Fault::Internal
                } else if *status == StatusCode::BAD_REQUEST {
                    Fault::Downstream
                } else {
                    Fault::Policy
                }
            }
            ProxyError::UpstreamConnect(_)
            | ProxyError::TunnelUnreachable
            | ProxyError::UpstreamReset(_)
            | ProxyError::UpstreamTimeout
            | ProxyError::StreamTimeout => Fault::Upstream,
            ProxyError::Internal(_)
            | ProxyError::SessionStoreUnavailable
            | ProxyError::NotMounted => Fault::Internal,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::BadPath | ProxyError::Ambiguous(_) | ProxyError::NoHost => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::MethodNotSupported | ProxyError::MethodNotAllowed { .. } => {
                StatusCode::METHOD_NOT_ALLOWED
            }
            ProxyError::Denied(_) | ProxyError::NeedsUser => StatusCode::FORBIDDEN,
            // Nginx's "SSL Certificate Required", as Pomerium answers.
            ProxyError::ClientCertificate => {
                StatusCode::from_u16(495).unwrap_or(StatusCode::FORBIDDEN)
            }
            ProxyError::SignInRequired
            | ProxyError::NotSignedIn
            | ProxyError::SignInUnavailable(_) => StatusCode::UNAUTHORIZED,
            ProxyError::BearerRefused { status, .. }
            | ProxyError::TokenSignInRefused(status, _) => *status,
            ProxyError::ProgrammaticNoRedirect => StatusCode::NOT_FOUND,
            ProxyError::ProgrammaticRedirectRefused => StatusCode::BAD_REQUEST,
            ProxyError::SessionStoreUnavailable
            | ProxyError::NotMounted
            | ProxyError::TunnelUnreachable => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::UpstreamConnect(_) | ProxyError::UpstreamReset(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            // As Envoy's `max_stream_duration` answers.
            ProxyError::StreamTimeout => StatusCode::REQUEST_TIMEOUT,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ProxyError::ForwardAuthUntrusted | ProxyError::ForwardAuthNoRoute => {
                StatusCode::FORBIDDEN
            }
            ProxyError::ForwardAuthBadRequest(_) | ProxyError::ClientBody => {
                StatusCode::BAD_REQUEST
            }
        }
    }

    /// The one-line reason shown to the person who made the request.
    pub fn reason(&self) -> Cow<'static, str> {
        let r = match self {
            ProxyError::NoRoute => "No route is configured for this address.",
            ProxyError::BadPath => "The request path is not valid.",
            ProxyError::Ambiguous(a) => a.reason(),
            ProxyError::NoHost => "The request did not say which host it is for.",
            ProxyError::MethodNotSupported => "This request method is not supported.",
            ProxyError::Denied(None) => DENIED,
            ProxyError::Denied(Some(reasons)) => {
                return format!("{DENIED} Reasons: {reasons}.").into();
            }
            ProxyError::ClientCertificate => {
                "A valid client certificate is required to access this page."
            }
            ProxyError::SignInRequired => "Sign-in required.",
            ProxyError::NotSignedIn => "Not signed in.",
            ProxyError::SignInUnavailable(None) => {
                "This route needs sign-in, and no identity provider is configured (set `idp_provider`)."
            }
            ProxyError::SignInUnavailable(Some(p)) => {
                return format!("This route needs sign-in, and the `{p}` identity provider is not supported by this gatehouse build yet.").into();
            }
            ProxyError::BearerRefused { public, .. } => public,
            ProxyError::TokenSignInRefused(_, why) => why,
            ProxyError::ProgrammaticNoRedirect => "pomerium_redirect_uri is required.",
            ProxyError::ProgrammaticRedirectRefused => {
                "pomerium_redirect_uri is not on a host in programmatic_redirect_domain_whitelist."
            }
            ProxyError::MethodNotAllowed { .. } => "Method not allowed.",
            ProxyError::NotMounted => "The console is not configured.",
            ProxyError::NeedsUser => {
                "The console needs a signed-in user: its policy must name who may use it."
            }
            ProxyError::SessionStoreUnavailable => {
                "Sign-in is unavailable for a moment: gatehouse cannot reach its session store. People already signed in are not affected. Try again shortly."
            }
            ProxyError::UpstreamConnect(_) | ProxyError::TunnelUnreachable => {
                "The service behind this address is not reachable."
            }
            ProxyError::UpstreamReset(_) => {
                "The service behind this address closed the connection."
            }
            ProxyError::UpstreamTimeout => {
                "The service behind this address did not answer in time."
            }
            ProxyError::StreamTimeout => {
                "The request took longer than this server allows (timeout_write)."
            }
            ProxyError::ClientBody => "The request body broke off before it was complete.",
            ProxyError::Internal(_) => "Something went wrong inside gatehouse.",
            ProxyError::ForwardAuthUntrusted => {
                "Forward-auth requests are accepted only from the proxies listed in forward_auth_trusted_sources."
            }
            ProxyError::ForwardAuthBadRequest(why) => why,
            ProxyError::ForwardAuthNoRoute => "No route matches this address.",
        };
        r.into()
    }

    /// A short stable code for logs, metrics and JSON errors.
    pub fn code(&self) -> &'static str {
        match self {
            ProxyError::NoRoute => "no_route",
            ProxyError::BadPath => "bad_path",
            ProxyError::Ambiguous(a) => a.code(),
            ProxyError::NoHost => "no_host",
            ProxyError::MethodNotSupported => "method_not_supported",
            ProxyError::Denied(_) => "access_denied",
            ProxyError::ClientCertificate => "invalid_client_certificate",
            ProxyError::SignInRequired | ProxyError::NotSignedIn => "user-unauthenticated",
            ProxyError::SignInUnavailable(_) => "sign_in_unavailable",
            ProxyError::BearerRefused { status, .. } => match *status {
                StatusCode::SERVICE_UNAVAILABLE => "bearer_keys_unavailable",
                StatusCode::BAD_REQUEST => "invalid_request",
                _ => "invalid_token",
            },
            ProxyError::TokenSignInRefused(..) => "token_sign_in_refused",
            ProxyError::ProgrammaticNoRedirect => "not_found",
            ProxyError::ProgrammaticRedirectRefused => "invalid_redirect",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::SessionStoreUnavailable => "session_store_unavailable",
            ProxyError::NotMounted => "unavailable",
            ProxyError::NeedsUser => "console_needs_user",
            ProxyError::UpstreamConnect(_) | ProxyError::TunnelUnreachable => "upstream_connect",
            ProxyError::UpstreamReset(_) => "upstream_reset",
            ProxyError::UpstreamTimeout => "upstream_timeout",
            ProxyError::StreamTimeout => "stream_timeout",
            ProxyError::ClientBody => "client_body",
            ProxyError::Internal(_) => "internal",
            ProxyError::ForwardAuthUntrusted => "forward_auth_untrusted",
            ProxyError::ForwardAuthBadRequest(_) => "forward_auth_bad_request",
            ProxyError::ForwardAuthNoRoute => "no_route",
        }
    }
}

const DENIED: &str = "Access denied: this route's policy does not allow this request.";

/// The one answer for a refusal: its status, reason and code, as a page or
/// JSON (`json`), with the request id, the headers its kind calls for
/// (`Allow`, `Retry-After`, `WWW-Authenticate`), and a [`Refusal`] in its
/// extensions for the counters.
pub fn response(e: &ProxyError, request_id: &str, json: bool) -> Response<Body> {
    let mut resp = crate::answers::page(e.status(), &e.reason(), e.code(), request_id, json);
    let h = resp.headers_mut();
    match e {
        ProxyError::MethodNotAllowed { allow: Some(allow) } => {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        ProxyError::SessionStoreUnavailable => {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        ProxyError::BearerRefused { status, public } if *status == StatusCode::UNAUTHORIZED => {
            let value = format!(
                "Bearer realm=\"gatehouse\", error=\"invalid_token\", error_description=\"{public}\""
            );
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(header::WWW_AUTHENTICATE, v);
            }
        }
        _ => {}
    }
    resp.extensions_mut().insert(Refusal {
        fault: e.fault(),
        code: e.code(),
    });
    resp
}

/// The answer for an authorization refusal (sign-in required, denied),
/// shaped for the client as Pomerium's `deniedResponse`: a Kubernetes
/// `Status` for Kubernetes clients; `/robots.txt` answered 200 with
/// everything disallowed (so crawlers index nothing behind the route);
/// JSON for clients that prefer it; a gRPC status for gRPC and gRPC-Web;
/// else the HTML page.
pub fn refusal(
    e: &ProxyError,
    headers: &http::HeaderMap,
    path: &str,
    request_id: &str,
) -> Response<Body> {
    use crate::answers;
    let mut resp = if answers::is_kubernetes(headers) {
        answers::kubernetes_status(e.status(), &e.reason())
    } else if path == "/robots.txt" {
        answers::robots_disallow_all()
    } else if let Some(ct) = answers::grpc(headers).filter(|_| !answers::wants_json(headers)) {
        answers::grpc_refusal(e.status(), &e.reason(), ct)
    } else {
        return response(e, request_id, answers::wants_json(headers));
    };
    resp.extensions_mut().insert(Refusal {
        fault: e.fault(),
        code: e.code(),
    });
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fault_decides_the_class_of_status_and_the_answer_carries_it() {
        let all = [
            ProxyError::NoRoute,
            ProxyError::BadPath,
            ProxyError::NoHost,
            ProxyError::MethodNotSupported,
            ProxyError::MethodNotAllowed {
                allow: Some("GET, POST"),
            },
            ProxyError::Denied(None),
            ProxyError::Denied(Some("domain-unauthorized".into())),
            ProxyError::SignInRequired,
            ProxyError::NotSignedIn,
            ProxyError::SignInUnavailable(Some("okta".into())),
            ProxyError::BearerRefused {
                status: StatusCode::UNAUTHORIZED,
                public: "no",
            },
            ProxyError::BearerRefused {
                status: StatusCode::SERVICE_UNAVAILABLE,
                public: "later",
            },
            ProxyError::TokenSignInRefused(StatusCode::FORBIDDEN, "no"),
            ProxyError::TokenSignInRefused(StatusCode::BAD_REQUEST, "bad"),
            ProxyError::TokenSignInRefused(StatusCode::SERVICE_UNAVAILABLE, "later"),
            ProxyError::BearerRefused {
                status: StatusCode::BAD_REQUEST,
                public: "bad",
            },
            ProxyError::ProgrammaticNoRedirect,
            ProxyError::ProgrammaticRedirectRefused,
            ProxyError::UpstreamTimeout,
            ProxyError::Internal("x".into()),
            ProxyError::SessionStoreUnavailable,
            ProxyError::NotMounted,
            ProxyError::NeedsUser,
            ProxyError::ForwardAuthUntrusted,
            ProxyError::ForwardAuthBadRequest("bad"),
            ProxyError::ForwardAuthNoRoute,
        ];
        for e in &all {
            let status = e.status();
            match e.fault() {
                Fault::Downstream => assert!(status.is_client_error(), "{e:?}"),
                Fault::Policy => assert!(matches!(status.as_u16(), 400 | 401 | 403 | 405), "{e:?}"),
                Fault::Upstream => assert!(matches!(status.as_u16(), 502 | 504), "{e:?}"),
                Fault::Internal => assert!(status.is_server_error(), "{e:?}"),
            }
            let resp = response(e, "id", true);
            assert_eq!(resp.status(), status);
            let r = resp
                .extensions()
                .get::<Refusal>()
                .expect("carries its refusal");
            assert_eq!((r.fault, r.code), (e.fault(), e.code()));
        }
        let resp = response(&ProxyError::SessionStoreUnavailable, "id", false);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
        let e = ProxyError::MethodNotAllowed {
            allow: Some("GET, POST"),
        };
        assert_eq!(
            response(&e, "id", false).headers()[header::ALLOW],
            "GET, POST"
        );
        let e = ProxyError::BearerRefused {
            status: StatusCode::UNAUTHORIZED,
            public: "The bearer token is not valid for this route.",
        };
        assert!(
            response(&e, "id", false).headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer realm=\"gatehouse\", error=\"invalid_token\"")
        );
        assert!(
            ProxyError::Denied(Some("domain-unauthorized".into()))
                .reason()
                .ends_with("Reasons: domain-unauthorized.")
        );
    }
}
