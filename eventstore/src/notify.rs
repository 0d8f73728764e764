//! LISTEN/NOTIFY as a wake-up hint. Readers always re-read by checkpoint, so a
//! lost notification only delays them until their next poll.

use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use crate::store::NOTIFY_CHANNEL;

/// Spawns a task that keeps a LISTEN connection open (reconnecting on
/// failure) and publishes the latest notified log position.
pub fn spawn_listener(database_url: String) -> watch::Receiver<i64> {
    let (tx, rx) = watch::channel(0i64);
    tokio::spawn(async move {
        loop {
            if tx.is_closed() {
                return;
            }
            match tokio_postgres::connect(&database_url, NoTls).await {
                Ok((client, mut connection)) => {
                    let (msg_tx, mut msg_rx) = tokio::sync::mpsc::unbounded_channel();
                    let pump = tokio::spawn(async move {
                        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                        while let Some(Ok(msg)) = stream.next().await {
                            if msg_tx.send(msg).is_err() {
                                break;
                            }
                        }
                    });
                    if client.batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}")).await.is_ok() {
                        while let Some(msg) = msg_rx.recv().await {
                            if let AsyncMessage::Notification(n) = msg {
                                if let Ok(p) = n.payload().parse::<i64>() {
                                    tx.send_if_modified(|cur| {
                                        let newer = p > *cur;
                                        if newer {
                                            *cur = p;
                                        }
                                        newer
                                    });
                                }
                            }
                        }
                    }
                    pump.abort();
                }
                Err(e) => tracing::warn!(error = %e, "event listener cannot connect; retrying"),
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    rx
}
