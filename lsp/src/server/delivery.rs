//! Knowing when a message to the client has gone to the writer.
//!
//! tower-lsp-server writes two streams through one fair `select`: messages
//! the server sends of its own (notifications, requests to the client, from
//! a channel) and responses (as handlers finish). A notification a handler
//! sent just before it returned can therefore be written after the
//! handler's response. Where the order matters, such as a command's
//! `$/progress` `end` before the command's result, the handler waits until
//! the writer has taken the notification: [`Delivery::expect`] resolves
//! when the message stream of [`TrackedSocket`] yields it, and the writer
//! writes in the order it is yielded.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use tokio::sync::oneshot;
use tower_lsp_server::jsonrpc::Request;
use tower_lsp_server::{ClientSocket, Loopback};

/// How long a handler waits for its message at most: a message that is
/// never written (the connection closed, the client not initialized) must
/// not hold the response back.
const LIMIT: Duration = Duration::from_secs(2);

/// A message someone waits for, and how to tell them.
type Waiter = (Box<dyn Fn(&Request) -> bool + Send>, oneshot::Sender<()>);

/// Waiters for messages to be handed to the writer, shared by the handlers
/// and the [`TrackedSocket`] of one connection.
#[derive(Clone, Default)]
pub struct Delivery(Arc<Mutex<Vec<Waiter>>>);

impl Delivery {
    /// Resolves once a message that `matches` accepts has been handed to
    /// the writer (or after [`LIMIT`]). Call it before sending the message.
    pub fn expect<M>(&self, matches: M) -> impl Future<Output = ()> + use<M>
    where
        M: Fn(&Request) -> bool + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.waiters().push((Box::new(matches), tx));
        async move {
            if tokio::time::timeout(LIMIT, rx).await.is_err() {
                tracing::warn!("a message to the client was not written within {LIMIT:?}");
            }
        }
    }

    /// The socket of a connection, reporting each message it yields.
    pub fn track(&self, socket: ClientSocket) -> TrackedSocket {
        TrackedSocket { socket, delivery: self.clone() }
    }

    fn waiters(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn yielded(&self, request: &Request) {
        let mut waiters = self.waiters();
        if waiters.is_empty() {
            return;
        }
        let mut index = 0;
        while index < waiters.len() {
            if waiters[index].1.is_closed() || (waiters[index].0)(request) {
                let (_, tx) = waiters.swap_remove(index);
                let _ = tx.send(());
            } else {
                index += 1;
            }
        }
    }
}

/// A [`ClientSocket`] whose outgoing messages report to a [`Delivery`].
pub struct TrackedSocket {
    socket: ClientSocket,
    delivery: Delivery,
}

impl Loopback for TrackedSocket {
    type RequestStream = Tracked<<ClientSocket as Loopback>::RequestStream>;
    type ResponseSink = <ClientSocket as Loopback>::ResponseSink;

    fn split(self) -> (Self::RequestStream, Self::ResponseSink) {
        let (requests, responses) = Loopback::split(self.socket);
        (Tracked { requests, delivery: self.delivery }, responses)
    }
}

/// The outgoing half of a [`TrackedSocket`].
pub struct Tracked<S> {
    requests: S,
    delivery: Delivery,
}

impl<S: Stream<Item = Request> + Unpin> Stream for Tracked<S> {
    type Item = Request;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request>> {
        let polled = self.requests.poll_next_unpin(cx);
        if let Poll::Ready(Some(request)) = &polled {
            self.delivery.yielded(request);
        }
        polled
    }
}

/// Whether a message is the `$/progress` `end` of a token.
pub fn is_progress_end(request: &Request, token: &serde_json::Value) -> bool {
    request.method() == "$/progress"
        && request.params().is_some_and(|params| params["token"] == *token && params["value"]["kind"] == "end")
}
