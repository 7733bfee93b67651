//! What runs on the callers' threads around a connect: late binding
//! (`bind`: requests that wait on connects in flight, in groups per route
//! and state, served by whichever connection comes first) and the
//! per-route circuit breaker (`breaker`: a route whose connects keep
//! failing is probed, not hammered). The event loop drives the connects
//! themselves (`reactor`); these decide who waits for what.

pub(crate) mod bind;
pub(crate) mod breaker;
