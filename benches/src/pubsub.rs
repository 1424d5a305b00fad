//! Waiting for a "job started" signal on a Redis pub/sub channel, for the pickup-latency runs:
//! voxfleet's own `<prefix>:events` channel, and the channel the apalis-redis probe handler
//! publishes on. Arrival is timed with a monotonic clock in this process.
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};

use crate::procs::Proc;

pub struct Subscription {
    // Held so the subscription stays open for as long as the stream is read.
    _sink: PubSubSink,
    stream: PubSubStream,
}

impl Subscription {
    pub async fn new(client: &redis::Client, channel: &str) -> anyhow::Result<Self> {
        let mut ps = client
            .get_async_pubsub()
            .await
            .context("opening a pub/sub connection")?;
        ps.subscribe(channel)
            .await
            .with_context(|| format!("subscribing to {channel}"))?;
        let (sink, stream) = ps.split();
        Ok(Self {
            _sink: sink,
            stream,
        })
    }

    /// Waits up to `timeout` for a message whose payload satisfies `matches`, checking that
    /// `child` is still alive meanwhile. Returns when it arrived, or `None` on timeout.
    pub async fn wait_for(
        &mut self,
        child: &mut Proc,
        timeout: Duration,
        mut matches: impl FnMut(&[u8]) -> bool,
    ) -> anyhow::Result<Option<Instant>> {
        let deadline = Instant::now() + timeout;
        loop {
            child.check_alive()?;
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            match tokio::time::timeout(left.min(Duration::from_millis(500)), self.stream.next())
                .await
            {
                Ok(Some(msg)) => {
                    if matches(msg.get_payload_bytes()) {
                        return Ok(Some(Instant::now()));
                    }
                }
                Ok(None) => anyhow::bail!("the pub/sub connection closed"),
                Err(_) => {}
            }
        }
    }
}
