//! Client connections as a whole, apart from the requests on them: the listener's
//! per-connection read buffer, and the limit on connections open at once (counted from
//! the moment a connection is handed over to the gateway until it closes, however many
//! requests or HTTP/2 streams it carries).

mod limit;
mod listener;
mod refusal;

pub use limit::{ConnectionLimit, ConnectionSlots};
pub use listener::{gateway_listener, gateway_tls_listener};
