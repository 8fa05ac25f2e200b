//! A client of labgrid's coordinator (gRPC, `labgrid-coordinator.proto`).
//!
//! A labgrid client session is the HTTP/2 connection that carries the
//! `ClientStream`: the coordinator knows who a caller is only by that
//! connection, so [`Session`] keeps one channel for the stream and for every
//! unary call. Resources are only delivered on the stream; [`Session`] keeps
//! the latest view of places and resources in a [`State`] that callers
//! watch.

pub mod glob;
mod session;
mod state;

pub use session::{
    places, release_without_session, set_tags_without_session, Reservation, ReservationState,
    Session,
};
pub use state::{Match, ParamValue, PlaceView, ResourcePath, ResourceView, State};

/// The labgrid release whose `.proto` is vendored in `proto/` and that the
/// end-to-end test runs against (scripts/setup installs the same one).
pub const LABGRID_VERSION: &str = "26.0.1";

/// The generated protocol types and client.
pub mod proto {
    tonic::include_proto!("labgrid");
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the labgrid coordinator at {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("labgrid coordinator at {addr}: {call}: {status}")]
    Call {
        addr: String,
        call: String,
        status: String,
    },
    #[error("labgrid coordinator at {addr}: {0}", addr = .1)]
    Session(String, String),
}

pub type Result<T> = std::result::Result<T, Error>;
