//! The wasmswitch SIP stack.
//!
//! The message layer is our own: a parser over the received bytes with typed views of the
//! headers the stack reads and everything else kept verbatim. Neither `rsip` nor `rsipstack`
//! passes the RFC 4475 torture set, and `rsipstack` re-escapes URIs it prints (see
//! `DEPENDENCIES.md`); both are kept as benchmark peers only. The protocol cores are sans-IO:
//! they take `(now, input)` and return what to send and when to wake up, so their timers are
//! tested on a simulated clock.

#[cfg(feature = "endpoint")]
mod connections;
pub mod dialog;
pub mod digest;
pub mod dns;
#[cfg(feature = "endpoint")]
pub mod endpoint;
pub mod framing;
pub mod header;
pub mod invite;
pub mod limits;
pub mod message;
pub mod params;
pub mod registrar;
pub mod screen;
pub mod session_timer;
mod syntax;
#[cfg(feature = "endpoint")]
pub mod tls;
pub mod transaction;
pub mod typed;
pub mod uri;

pub use header::{Header, HeaderName, Headers};
pub use message::{CoreRef, Malformed, Message, ParseError, Request, Response};
pub use typed::{CSeq, Method, NameAddr, Via};
pub use uri::{Host, SipUri, Uri};
