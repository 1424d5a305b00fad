//! The queue protocol tests of `queue.rs`, run again on a real Redis Cluster (six nodes on
//! loopback, three masters with a replica each: `voxfleet_testkit::cluster`), so every script,
//! pipeline and blocking wait is shown to work where a queue's keys and the fleet's keys lie
//! on different nodes.

/// The cluster these tests run on: one per test binary.
fn redis_url() -> String {
    voxfleet_testkit::cluster::shared().url()
}

#[path = "queue.rs"]
mod protocol;
