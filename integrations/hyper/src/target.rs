//! Where a request goes, read from its URI, and the request made ready for
//! the wire: a `Host` header, and the URI in origin form (`/path?query`),
//! which is what an HTTP/1.1 server expects from a client that is not
//! talking to a proxy.

use crate::endpoint::Endpoint;
use crate::error::ClientError;
use http::header::HOST;
use http::uri::Scheme;
use http::{HeaderValue, Request, Uri};
use leasehold::tls::TlsRoute;
use std::net::SocketAddr;

/// The scheme, host and port of an absolute `http` or `https` URI.
#[derive(Debug)]
pub(crate) struct Target {
    /// The URI (a clone shares its bytes), whose host is known to be there.
    uri: Uri,
    tls: bool,
    port: u16,
}

impl Target {
    /// Reads the target of `uri`.
    ///
    /// # Errors
    /// [`ClientError::Uri`] when the URI is not absolute, or its scheme is
    /// neither `http` nor `https`.
    pub(crate) fn of(uri: &Uri) -> Result<Self, ClientError> {
        let invalid = |reason| ClientError::Uri {
            uri: uri.to_string(),
            reason,
        };
        let scheme = uri
            .scheme()
            .ok_or_else(|| invalid("no scheme (an absolute http:// or https:// URI is needed)"))?;
        let tls = if *scheme == Scheme::HTTP {
            false
        } else if *scheme == Scheme::HTTPS {
            true
        } else {
            return Err(invalid("the scheme is neither http nor https"));
        };
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("no host"));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            uri: uri.clone(),
            tls,
            port,
        })
    }

    /// The host, without the brackets of an IPv6 literal.
    pub(crate) fn host(&self) -> &str {
        let host = self.uri.host().unwrap_or_default();
        host.strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .unwrap_or(host)
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The pool route to `addr`, one of the host's addresses: a TLS one
    /// names the server by the URI's host.
    ///
    /// # Errors
    /// [`ClientError::Uri`] when the host is no valid TLS server name.
    pub(crate) fn endpoint(&self, addr: SocketAddr) -> Result<Endpoint, ClientError> {
        if !self.tls {
            return Ok(Endpoint::Tcp(addr));
        }
        TlsRoute::new(addr, self.host())
            .map(Endpoint::Tls)
            .map_err(|_| ClientError::Uri {
                uri: self.uri.to_string(),
                reason: "the host is not a valid TLS server name",
            })
    }
}

/// Gives `request` a `Host` header from its URI's authority unless it has
/// one, and turns its URI into origin form.
///
/// # Errors
/// [`ClientError::Uri`] when the authority is not a valid header value.
pub(crate) fn prepare<B>(request: &mut Request<B>) -> Result<(), ClientError> {
    let uri = request.uri();
    if !request.headers().contains_key(HOST) {
        if let Some(authority) = uri.authority() {
            // The authority without user information, as sent in `Host`.
            let host = authority.as_str();
            let host = host.rsplit_once('@').map_or(host, |(_, host)| host);
            let value = HeaderValue::from_str(host).map_err(|_| ClientError::Uri {
                uri: uri.to_string(),
                reason: "the authority is not a valid Host header",
            })?;
            request.headers_mut().insert(HOST, value);
        }
    }
    let origin = match request.uri().path_and_query() {
        Some(path) if path.as_str() != "/" => {
            let mut parts = http::uri::Parts::default();
            parts.path_and_query = Some(path.clone());
            Uri::from_parts(parts).expect("a path and query alone is a valid URI")
        }
        _ => Uri::from_static("/"),
    };
    *request.uri_mut() = origin;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepared(uri: &str) -> Request<()> {
        let mut request = Request::get(uri).body(()).unwrap();
        prepare(&mut request).unwrap();
        request
    }

    #[test]
    fn requests_go_out_in_origin_form_with_the_authority_as_host() {
        let request = prepared("http://example.com:8080/a/b?c=d");
        assert_eq!(request.uri(), "/a/b?c=d");
        assert_eq!(request.headers()[HOST], "example.com:8080");
        let request = prepared("https://user:secret@example.com");
        assert_eq!(request.uri(), "/");
        assert_eq!(request.headers()[HOST], "example.com");
        let mut request = Request::get("http://127.0.0.1/x")
            .header(HOST, "virtual.example")
            .body(())
            .unwrap();
        prepare(&mut request).unwrap();
        assert_eq!(request.headers()[HOST], "virtual.example", "kept");
    }

    #[test]
    fn targets_name_scheme_host_and_port() {
        let target = Target::of(&Uri::from_static("https://[::1]/")).unwrap();
        assert_eq!((target.host(), target.port()), ("::1", 443));
        let addr = "[::1]:443".parse().unwrap();
        assert!(matches!(target.endpoint(addr), Ok(Endpoint::Tls(_))));
        let target = Target::of(&Uri::from_static("http://10.0.0.1:81/")).unwrap();
        assert_eq!((target.host(), target.port()), ("10.0.0.1", 81));
        let addr = "10.0.0.1:81".parse().unwrap();
        assert_eq!(target.endpoint(addr).unwrap(), Endpoint::Tcp(addr));
        for uri in ["/relative", "ftp://host/", "127.0.0.1:80"] {
            let uri: Uri = uri.parse().unwrap();
            assert!(
                matches!(Target::of(&uri), Err(ClientError::Uri { .. })),
                "{uri}"
            );
        }
    }
}
