//! A client session with the coordinator: the `ClientStream` and the unary
//! calls on the one connection the coordinator knows the session by.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

use crate::proto::coordinator_client::CoordinatorClient;
use crate::proto::{self, client_in_message, subscribe, ClientInMessage};
use crate::state::{self, PlaceView, State};
use crate::{Error, Result, LABGRID_VERSION};

/// How long a call or a sync may take before the coordinator counts as
/// unresponsive.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// HTTP/2 pings keep the session's connection (and with it the session)
/// alive through idle stretches; the coordinator refuses pings closer than
/// 5 s apart.
const KEEPALIVE: Duration = Duration::from_millis(7500);

pub struct Session {
    addr: String,
    name: String,
    client: CoordinatorClient<Channel>,
    tx: mpsc::Sender<ClientInMessage>,
    state: watch::Receiver<State>,
    next_sync: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

fn endpoint(addr: &str) -> Result<Endpoint> {
    Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Error::Connect {
            addr: addr.to_string(),
            source: e,
        })
        .map(|e| {
            e.connect_timeout(Duration::from_secs(5))
                .http2_keep_alive_interval(KEEPALIVE)
                .keep_alive_timeout(Duration::from_secs(20))
                .keep_alive_while_idle(true)
        })
}

async fn channel(addr: &str) -> Result<Channel> {
    endpoint(addr)?
        .connect()
        .await
        .map_err(|source| Error::Connect {
            addr: addr.to_string(),
            source,
        })
}

fn call_error(addr: &str, call: impl Into<String>, status: tonic::Status) -> Error {
    Error::Call {
        addr: addr.to_string(),
        call: call.into(),
        status: format!("{:?}: {}", status.code(), status.message()),
    }
}

/// The places a coordinator knows, without a session (`hilt boards`).
pub async fn places(addr: &str) -> Result<Vec<PlaceView>> {
    let mut c = CoordinatorClient::new(channel(addr).await?);
    let r = tokio::time::timeout(CALL_TIMEOUT, c.get_places(proto::GetPlacesRequest {}))
        .await
        .map_err(|_| Error::Session("GetPlaces timed out".into(), addr.into()))?
        .map_err(|s| call_error(addr, "GetPlaces", s))?;
    Ok(r.into_inner()
        .places
        .into_iter()
        .map(state::place)
        .collect())
}

impl Session {
    /// Opens a session as `name` (`host/user`, the holder labgrid shows),
    /// subscribed to every place and resource, and waits for the
    /// coordinator's first full view.
    pub async fn open(addr: &str, name: &str) -> Result<Session> {
        let ch = channel(addr).await?;
        let mut client = CoordinatorClient::new(ch);
        let (tx, rx) = mpsc::channel::<ClientInMessage>(16);
        let msg = |kind| ClientInMessage { kind: Some(kind) };
        // Queued before the stream opens: the first message must be
        // StartupDone, and the coordinator only answers a stream that has one.
        for m in [
            msg(client_in_message::Kind::Startup(proto::StartupDone {
                version: format!(
                    "hilt {} (labgrid {LABGRID_VERSION} protocol)",
                    env!("CARGO_PKG_VERSION")
                ),
                name: name.to_string(),
            })),
            msg(client_in_message::Kind::Subscribe(proto::Subscribe {
                is_unsubscribe: None,
                kind: Some(subscribe::Kind::AllPlaces(true)),
            })),
            msg(client_in_message::Kind::Subscribe(proto::Subscribe {
                is_unsubscribe: None,
                kind: Some(subscribe::Kind::AllResources(true)),
            })),
        ] {
            tx.send(m).await.expect("the receiver is held above");
        }
        let stream =
            tokio::time::timeout(CALL_TIMEOUT, client.client_stream(ReceiverStream::new(rx)))
                .await
                .map_err(|_| {
                    Error::Session("opening the client stream timed out".into(), addr.into())
                })?
                .map_err(|s| call_error(addr, "ClientStream", s))?
                .into_inner();
        let (state_tx, state) = watch::channel(State::default());
        let reader = tokio::spawn(read(stream, state_tx));
        let s = Session {
            addr: addr.to_string(),
            name: name.to_string(),
            client,
            tx,
            state,
            next_sync: AtomicU64::new(1),
            reader,
        };
        s.sync().await?;
        Ok(s)
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The holder name this session acquires places as.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> State {
        self.state.borrow().clone()
    }

    /// A receiver of every change to the view (for watching a place).
    pub fn watch(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// Returns once the coordinator has sent everything it had queued for
    /// this session before now.
    pub async fn sync(&self) -> Result<()> {
        let id = self.next_sync.fetch_add(1, Ordering::Relaxed);
        let msg = ClientInMessage {
            kind: Some(client_in_message::Kind::Sync(proto::Sync { id })),
        };
        if self.tx.send(msg).await.is_err() {
            return Err(self.closed_error());
        }
        let mut rx = self.state.clone();
        let waited = tokio::time::timeout(
            CALL_TIMEOUT,
            rx.wait_for(|s| s.synced >= id || s.closed.is_some()),
        )
        .await;
        match waited {
            Ok(Ok(s)) if s.closed.is_none() => Ok(()),
            Ok(_) => Err(self.closed_error()),
            Err(_) => Err(Error::Session(
                format!("no answer to Sync {id} within {} s", CALL_TIMEOUT.as_secs()),
                self.addr.clone(),
            )),
        }
    }

    fn closed_error(&self) -> Error {
        let why = self
            .state
            .borrow()
            .closed
            .clone()
            .unwrap_or_else(|| "the session ended".into());
        Error::Session(why, self.addr.clone())
    }

    async fn unary<T, F, Fut>(&self, call: &str, f: F) -> Result<T>
    where
        F: FnOnce(CoordinatorClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(CALL_TIMEOUT, f(self.client.clone())).await {
            Ok(Ok(r)) => Ok(r.into_inner()),
            Ok(Err(s)) => Err(call_error(&self.addr, call, s)),
            Err(_) => Err(Error::Session(
                format!("{call} timed out"),
                self.addr.clone(),
            )),
        }
    }

    pub async fn acquire(&self, place: &str) -> Result<()> {
        let req = proto::AcquirePlaceRequest {
            placename: place.to_string(),
        };
        self.unary(&format!("AcquirePlace {place}"), |mut c| async move {
            c.acquire_place(req).await
        })
        .await?;
        self.sync().await
    }

    /// Releases `place` only if `fromuser` still holds it (labgrid's
    /// conditional release); with None, whoever holds it.
    pub async fn release(&self, place: &str, fromuser: Option<&str>) -> Result<()> {
        let req = proto::ReleasePlaceRequest {
            placename: place.to_string(),
            fromuser: fromuser.map(str::to_string),
        };
        self.unary(&format!("ReleasePlace {place}"), |mut c| async move {
            c.release_place(req).await
        })
        .await?;
        self.sync().await
    }

    /// Sets (or with an empty value, removes) the place's tags; other tags
    /// are kept.
    pub async fn set_tags(&self, place: &str, tags: HashMap<String, String>) -> Result<()> {
        let req = proto::SetPlaceTagsRequest {
            placename: place.to_string(),
            tags,
        };
        self.unary(&format!("SetPlaceTags {place}"), |mut c| async move {
            c.set_place_tags(req).await
        })
        .await?;
        self.sync().await
    }

    /// Reserves any place whose tags include `tags`; returns the token.
    pub async fn reserve(&self, tags: HashMap<String, String>, prio: f64) -> Result<String> {
        let req = proto::CreateReservationRequest {
            filters: HashMap::from([(
                "main".to_string(),
                proto::reservation::Filter { filter: tags },
            )]),
            prio,
        };
        let r = self
            .unary("CreateReservation", |mut c| async move {
                c.create_reservation(req).await
            })
            .await?;
        r.reservation
            .map(|r| r.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Session(
                    "CreateReservation returned no token".into(),
                    self.addr.clone(),
                )
            })
    }

    /// The reservation's state and, once allocated, its place. Polling also
    /// keeps a waiting reservation alive (it expires a minute after the
    /// last poll).
    pub async fn poll_reservation(&self, token: &str) -> Result<Reservation> {
        let req = proto::PollReservationRequest {
            token: token.to_string(),
        };
        let r = self
            .unary("PollReservation", |mut c| async move {
                c.poll_reservation(req).await
            })
            .await?;
        let r = r.reservation.unwrap_or_default();
        Ok(Reservation {
            state: match r.state {
                0 => ReservationState::Waiting,
                1 => ReservationState::Allocated,
                2 => ReservationState::Acquired,
                3 => ReservationState::Expired,
                _ => ReservationState::Invalid,
            },
            place: r.allocations.get("main").cloned(),
        })
    }

    pub async fn cancel_reservation(&self, token: &str) -> Result<()> {
        let req = proto::CancelReservationRequest {
            token: token.to_string(),
        };
        self.unary("CancelReservation", |mut c| async move {
            c.cancel_reservation(req).await
        })
        .await
        .map(|_| ())
    }

    pub async fn add_place(&self, place: &str) -> Result<()> {
        let req = proto::AddPlaceRequest {
            name: place.to_string(),
        };
        self.unary(&format!("AddPlace {place}"), |mut c| async move {
            c.add_place(req).await
        })
        .await?;
        self.sync().await
    }

    pub async fn add_match(&self, place: &str, pattern: &str) -> Result<()> {
        let req = proto::AddPlaceMatchRequest {
            placename: place.to_string(),
            pattern: pattern.to_string(),
            rename: None,
        };
        self.unary(&format!("AddPlaceMatch {place}"), |mut c| async move {
            c.add_place_match(req).await
        })
        .await?;
        self.sync().await
    }
}

/// labgrid's `ReservationState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationState {
    Waiting,
    Allocated,
    Acquired,
    Expired,
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub state: ReservationState,
    /// The place allocated to it, once it is.
    pub place: Option<String>,
}

/// Applies the coordinator's messages to the view until the stream ends,
/// and then says why it ended.
async fn read(mut stream: tonic::Streaming<proto::ClientOutMessage>, tx: watch::Sender<State>) {
    let why = loop {
        match stream.message().await {
            Ok(Some(m)) => tx.send_modify(|s| {
                for u in m.updates {
                    if let Some(k) = u.kind {
                        s.apply(k);
                    }
                }
                if let Some(sync) = m.sync {
                    s.synced = s.synced.max(sync.id);
                }
            }),
            Ok(None) => break "the coordinator closed the session".to_string(),
            Err(e) => {
                break format!(
                    "the session's stream failed: {:?}: {}",
                    e.code(),
                    e.message()
                )
            }
        }
    };
    tx.send_modify(|s| s.closed = Some(why));
}

/// Releases `place` if `fromuser` still holds it, over a connection of its
/// own: what a process that is exiting (or whose session's runtime is gone)
/// can still do, since ReleasePlace needs no session.
pub async fn release_without_session(addr: &str, place: &str, fromuser: &str) -> Result<()> {
    let mut c = CoordinatorClient::new(channel(addr).await?);
    let req = proto::ReleasePlaceRequest {
        placename: place.to_string(),
        fromuser: Some(fromuser.to_string()),
    };
    tokio::time::timeout(CALL_TIMEOUT, c.release_place(req))
        .await
        .map_err(|_| Error::Session("ReleasePlace timed out".into(), addr.into()))?
        .map_err(|s| call_error(addr, format!("ReleasePlace {place}"), s))?;
    Ok(())
}

/// Sets (or with an empty value, removes) tags of `place` over a
/// connection of its own: SetPlaceTags needs no session either.
pub async fn set_tags_without_session(
    addr: &str,
    place: &str,
    tags: HashMap<String, String>,
) -> Result<()> {
    let mut c = CoordinatorClient::new(channel(addr).await?);
    let req = proto::SetPlaceTagsRequest {
        placename: place.to_string(),
        tags,
    };
    tokio::time::timeout(CALL_TIMEOUT, c.set_place_tags(req))
        .await
        .map_err(|_| Error::Session("SetPlaceTags timed out".into(), addr.into()))?
        .map_err(|s| call_error(addr, format!("SetPlaceTags {place}"), s))?;
    Ok(())
}
