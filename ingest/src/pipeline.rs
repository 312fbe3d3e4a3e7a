//! What passes between ingest's tasks, in one place so the graph of imports
//! runs one way: the consumer hands [`Arrived`] messages to the processor,
//! the processor hands [`Outbound`] work to the publisher, and the consumer
//! keeps [`ConsumerGauges`] the processor reports in its statistics.
//!
//! ```text
//! consumer ──Arrived──▶ processor ──Outbound──▶ publisher
//! ```

use async_nats::jetstream::Message;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A message from the consumer and when it arrived.
#[derive(Debug)]
pub struct Arrived {
    pub at: Instant,
    pub msg: Message,
}

/// A dead letter: the original payload, where it came from and why.
#[derive(Clone, Debug)]
pub struct DeadLetter {
    pub seq: u64,
    pub subject: String,
    pub payload: Bytes,
    pub reason: &'static str,
    pub detail: String,
}

/// What the processor asks the publisher to do, in order.
#[derive(Debug)]
pub enum Outbound {
    Dead(DeadLetter),
    /// Changed node states: (key, JSON).
    States(Vec<(String, Bytes)>),
    /// Everything up to this message is checkpointed: ack it (AckPolicy::All).
    Ack(Box<Message>),
    /// Ingest statistics (JSON of an `IngestStats`).
    Meta(Bytes),
}

/// Gauges the consumer updates and the processor reports.
#[derive(Debug, Default)]
pub struct ConsumerGauges {
    /// Messages in the stream not yet delivered to this consumer.
    pub lag: AtomicU64,
    /// Times the consumer was recreated after an error.
    pub restarts: AtomicU64,
}

/// What the publisher gave up on, for the statistics.
#[derive(Debug, Default)]
pub struct PublisherGauges {
    /// Node states refused (too large, not permitted): left out, the rest
    /// flowing; the node's next change is tried again.
    pub states_refused: AtomicU64,
    /// Dead letters whose payload was cut to fit the server's max_payload
    /// beside their headers (the headers say how long it was).
    pub dead_truncated: AtomicU64,
    /// Dead letters the server refused, written to the data dir instead.
    pub dead_set_aside: AtomicU64,
}

/// Dead letters handed to the publisher, and how many of them it has
/// settled (stored, or set aside), in the order they were handed over. The
/// processor keeps the unsettled ones in its state, so a snapshot carries
/// them and a restart sends them again.
#[derive(Debug, Default)]
pub struct DeadLetters {
    handed: AtomicU64,
    settled: AtomicU64,
}

impl DeadLetters {
    /// The processor handed one over.
    pub fn handed_over(&self) {
        self.handed.fetch_add(1, Ordering::SeqCst);
    }

    /// The publisher settled `n` more.
    pub fn stored(&self, n: usize) {
        self.settled.fetch_add(n as u64, Ordering::SeqCst);
    }

    /// How many have been settled since start.
    pub fn settled(&self) -> u64 {
        self.settled.load(Ordering::SeqCst)
    }

    /// How many are handed over and not settled.
    pub fn unstored(&self) -> u64 {
        self.handed
            .load(Ordering::SeqCst)
            .saturating_sub(self.settled.load(Ordering::SeqCst))
    }
}
