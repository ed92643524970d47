//! [`WsSender`] and [`WsReceiver`]: the writer and reader halves of a [`WebSocket`], for a
//! handler that reads in one task and writes in another.
//!
//! The halves share the socket behind a lock held only while one of them is polled. The
//! reader still answers Pings and runs the keep-alive; the writer's `send` waits while the
//! send queue is full.
//!
//! ```no_run
//! use conduit_ws::{Message, WebSocket};
//! use futures_util::{SinkExt, StreamExt};
//!
//! async fn ticker(socket: WebSocket) {
//!     let (mut tx, mut rx) = socket.split();
//!     let writer = tokio::spawn(async move {
//!         for i in 0..3 {
//!             if tx.send(Message::text(format!("tick {i}"))).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//!     while let Some(Ok(msg)) = rx.next().await {
//!         if msg.is_close() {
//!             break;
//!         }
//!     }
//!     let _ = writer.await;
//! }
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use futures_sink::Sink;
use futures_util::StreamExt;
use futures_util::stream::{SplitSink, SplitStream};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::WsError;
use crate::message::Message;
use crate::socket::WebSocket;

/// The writer half of a [`WebSocket`]: a [`Sink`] of [`Message`].
#[derive(Debug)]
pub struct WsSender<S = crate::Upgraded>(SplitSink<WebSocket<S>, Message>);

/// The reader half of a [`WebSocket`]: a [`Stream`] of `Result<Message, WsError>`.
#[derive(Debug)]
pub struct WsReceiver<S = crate::Upgraded>(SplitStream<WebSocket<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Split into a writer and a reader half, usable from different tasks.
    pub fn split(self) -> (WsSender<S>, WsReceiver<S>) {
        let (tx, rx) = StreamExt::split(self);
        (WsSender(tx), WsReceiver(rx))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsReceiver<S> {
    /// Put the halves back together; `Err` gives them back if they are not of one socket.
    pub fn reunite(self, sender: WsSender<S>) -> Result<WebSocket<S>, (WsSender<S>, Self)> {
        self.0
            .reunite(sender.0)
            .map_err(|e| (WsSender(e.0), WsReceiver(e.1)))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WsReceiver<S> {
    type Item = Result<Message, WsError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0).poll_next(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WsSender<S> {
    type Error = WsError;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.0).poll_ready(cx)
    }

    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        Pin::new(&mut self.0).start_send(item)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
