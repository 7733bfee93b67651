//! An HTTP/1.1 client on [hyper] 1.x whose connections, plain and TLS, live
//! in a [leasehold] pool.
//!
//! [`EndpointConnector`] opens plain and TLS connections for one pool.

#![forbid(unsafe_code)]

mod endpoint;

pub use endpoint::{Endpoint, EndpointConnector, EndpointHandshake, EndpointStream};
