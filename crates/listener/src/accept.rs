//! The accept loop.

use crate::limits::{ConnectionGuard, ConnectionLimits, Refusal};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Accepts connections until `shutdown` turns true, and runs `handler` for each in its own
/// task: with a connection slot, or with the refusal when a cap is hit (the handler then
/// answers in its protocol and closes). Accept errors (such as running out of file
/// descriptors) are logged and retried after a pause instead of ending the loop.
pub async fn serve<H, F>(
    listener: TcpListener,
    limits: Arc<ConnectionLimits>,
    mut shutdown: watch::Receiver<bool>,
    handler: H,
) where
    H: Fn(TcpStream, SocketAddr, Result<ConnectionGuard, Refusal>) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let slot = limits.try_acquire(peer.ip());
                tokio::spawn(handler(stream, peer, slot));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; pausing briefly");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
