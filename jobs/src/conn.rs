//! One connection type for a single Redis server and for a Redis Cluster, chosen by the URL:
//! `redis://host:port/db` (or `rediss://`) is one server; `redis+cluster://host:port,host:port`
//! (or `rediss+cluster://`) is a cluster, given by as many of its nodes as the operator likes
//! (one is enough to find the rest; the event subscription tries them in order).
//!
//! Everything above this module talks to a [`RedisConn`], which is redis-rs's own
//! `ConnectionManager` (one server) or `ClusterConnection` (a cluster). Two things redis-rs does
//! not do for a cluster are done here:
//! - a pipeline whose commands live in several hash slots is split per slot (redis-rs sends a
//!   cluster pipeline to one node and fails on the second slot), and each part is sent to its
//!   slot's master; the parts run concurrently and their replies are put back in the
//!   pipeline's order. `SCRIPT LOAD` goes with every part, so a script is loaded on each node
//!   that runs it; other commands without a key (`PUBLISH`, whose channel redis-rs would take
//!   for a key and route elsewhere) go with the first;
//! - the cluster connection is made on first use, so a process can start while the cluster is
//!   still down, as with one server (`ConnectionManager::new_lazy_with_config`).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Arg, Client, Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::OnceCell;

use crate::error::QueueError;

/// How long connecting may take before a call fails (and its caller backs off).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where Redis is, parsed from a URL once.
#[derive(Clone)]
pub enum RedisTarget {
    Single(Client),
    Cluster {
        /// The nodes the URL named, each as a `redis://` URL.
        nodes: Vec<String>,
    },
}

impl RedisTarget {
    /// Parses `redis://…` (one server) or `redis+cluster://h:p,h:p` (a cluster).
    pub fn parse(url: &str) -> Result<Self, QueueError> {
        for (scheme, node_scheme) in [
            ("redis+cluster://", "redis://"),
            ("rediss+cluster://", "rediss://"),
        ] {
            if let Some(rest) = url.strip_prefix(scheme) {
                let nodes: Vec<String> = rest
                    .trim_end_matches('/')
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(|n| format!("{node_scheme}{n}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "a redis+cluster:// URL names no node",
                    ))
                    .into());
                }
                // fail on a malformed node now, not at first use
                for n in &nodes {
                    Client::open(n.as_str())?;
                }
                return Ok(Self::Cluster { nodes });
            }
        }
        Ok(Self::Single(Client::open(url)?))
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster { .. })
    }

    /// A connection that reconnects by itself; replies slower than `response_timeout` fail.
    pub fn connect_lazy(
        &self,
        response_timeout: Option<Duration>,
    ) -> Result<RedisConn, QueueError> {
        Ok(match self {
            Self::Single(client) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(response_timeout)
                    .set_min_delay(Duration::from_millis(100))
                    .set_max_delay(Duration::from_secs(1))
                    // fail fast while Redis is down: callers back off and retry, and nothing hangs
                    .set_number_of_retries(1);
                RedisConn::Single(ConnectionManager::new_lazy_with_config(
                    client.clone(),
                    cfg,
                )?)
            }
            Self::Cluster { nodes } => {
                let mut b = ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(CONNECT_TIMEOUT)
                    // a failover takes a few seconds: redirections and reconnects are retried
                    // inside redis-rs a few times, then the caller backs off and retries
                    .retries(3)
                    .min_retry_wait(100)
                    .max_retry_wait(1000);
                if let Some(t) = response_timeout {
                    b = b.response_timeout(t);
                }
                RedisConn::Cluster(LazyCluster {
                    inner: Arc::new((b.build()?, OnceCell::new())),
                })
            }
        })
    }

    /// A pub/sub connection: to the server, or to the first node of a cluster that answers
    /// (a cluster forwards every `PUBLISH` to all its nodes, so any node hears every event).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, QueueError> {
        match self {
            Self::Single(client) => Ok(client.get_async_pubsub().await?),
            Self::Cluster { nodes } => {
                let mut last = None;
                for n in nodes {
                    let attempt = async {
                        let client = Client::open(n.as_str())?;
                        tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub())
                            .await
                            .map_err(|_| {
                                redis::RedisError::from(std::io::Error::from(
                                    std::io::ErrorKind::TimedOut,
                                ))
                            })?
                    };
                    match attempt.await {
                        Ok(ps) => return Ok(ps),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last
                    .expect("a cluster target names at least one node")
                    .into())
            }
        }
    }
}

/// A cluster connection made on first use (and made again on the next use if that failed).
#[derive(Clone)]
pub struct LazyCluster {
    inner: Arc<(ClusterClient, OnceCell<ClusterConnection>)>,
}

impl LazyCluster {
    async fn get(&self) -> redis::RedisResult<ClusterConnection> {
        let (client, conn) = &*self.inner;
        conn.get_or_try_init(|| client.get_async_connection())
            .await
            .cloned()
    }
}

/// A connection to one Redis server or to a Redis Cluster; cheap to clone (clones share it).
#[derive(Clone)]
pub enum RedisConn {
    Single(ConnectionManager),
    Cluster(LazyCluster),
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                c.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Self::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                if pipeline.is_transaction() {
                    // MULTI/EXEC must be one slot anyway: redis-rs routes it as it is
                    return c.req_packed_commands(pipeline, offset, count).await;
                }
                // Each part to its slot's master by name: redis-rs would route a part by its
                // first key and refuse a `PUBLISH` (routed by its channel) beside it.
                let replies = try_join_all(split_by_slot(pipeline).into_iter().map(
                    |(slot, part, indices)| {
                        let mut c = c.clone();
                        let route = match slot {
                            Some(s) => SingleNodeRoutingInfo::SpecificNode(Route::with_slot(
                                s,
                                SlotAddr::Master,
                            )),
                            None => SingleNodeRoutingInfo::Random,
                        };
                        async move {
                            let n = part.len();
                            let values = c.route_pipeline(part, 0, n, route).await?;
                            Ok::<_, redis::RedisError>((indices, values))
                        }
                    },
                ))
                .await?;
                let mut out: Vec<Option<Value>> = vec![None; pipeline.len()];
                for (indices, values) in replies {
                    for (i, v) in indices.into_iter().zip(values) {
                        if out[i].is_none() {
                            out[i] = Some(v);
                        }
                    }
                }
                Ok(out
                    .into_iter()
                    .skip(offset)
                    .take(count)
                    .map(|v| v.unwrap_or(Value::Nil))
                    .collect())
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(_) => 0,
        }
    }
}

/// Where a pipelined command must run on a cluster.
enum Place {
    /// On the master of this key's slot.
    Key(Vec<u8>),
    /// On every node the pipeline goes to (`SCRIPT LOAD`: each node that runs a script needs it).
    Everywhere,
    /// On any one node (`PUBLISH`: a cluster forwards it to all nodes; `PING`, …).
    Anywhere,
}

/// Where `cmd` runs, for the commands voxfleet pipelines: by its first argument, or the first
/// key of `EVAL`/`EVALSHA`; commands without a key anywhere, scripts' loading everywhere.
fn place(cmd: &Cmd) -> Place {
    let mut args = cmd.args_iter().map(|a| match a {
        Arg::Simple(b) => Some(b),
        _ => None,
    });
    let Some(Some(name)) = args.next() else {
        return Place::Anywhere;
    };
    let key = match name.to_ascii_uppercase().as_slice() {
        b"SCRIPT" => return Place::Everywhere,
        b"PING" | b"PUBLISH" | b"INFO" | b"TIME" | b"CLUSTER" | b"ECHO" => return Place::Anywhere,
        b"EVAL" | b"EVALSHA" | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL" | b"FCALL_RO" => {
            let _script = args.next();
            let numkeys = args
                .next()
                .flatten()
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
            match numkeys {
                Some(n) if n > 0 => args.next().flatten(),
                _ => None,
            }
        }
        _ => args.next().flatten(),
    };
    key.map_or(Place::Anywhere, |k| Place::Key(k.to_vec()))
}

/// `pipeline` cut into one pipeline per hash slot, each with its slot and the indices (in
/// `pipeline`) of its commands. `SCRIPT` commands go into every part, other keyless commands
/// into the first; a pipeline without a key is one part without a slot.
fn split_by_slot(pipeline: &Pipeline) -> Vec<(Option<Slot>, Pipeline, Vec<usize>)> {
    let cmds: Vec<&Cmd> = pipeline.cmd_iter().collect();
    let mut order: Vec<Slot> = vec![];
    let mut by_slot: HashMap<Slot, Vec<usize>> = HashMap::new();
    let (mut everywhere, mut anywhere) = (vec![], vec![]);
    for (i, cmd) in cmds.iter().enumerate() {
        match place(cmd) {
            Place::Key(k) => {
                let slot = Slot::for_key(&k);
                by_slot
                    .entry(slot)
                    .or_insert_with(|| {
                        order.push(slot);
                        vec![]
                    })
                    .push(i);
            }
            Place::Everywhere => everywhere.push(i),
            Place::Anywhere => anywhere.push(i),
        }
    }
    if order.is_empty() {
        return vec![(None, pipeline.clone(), (0..cmds.len()).collect())];
    }
    order
        .into_iter()
        .enumerate()
        .map(|(n, slot)| {
            let mut indices = everywhere.clone();
            if n == 0 {
                indices.extend(&anywhere);
            }
            indices.extend(&by_slot[&slot]);
            indices.sort_unstable();
            let mut part = redis::pipe();
            for &i in &indices {
                part.add_command(cmds[i].clone());
            }
            (Some(slot), part, indices)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_choose_one_server_or_a_cluster() {
        assert!(
            !RedisTarget::parse("redis://127.0.0.1:6379/0")
                .unwrap()
                .is_cluster()
        );
        match RedisTarget::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/").unwrap() {
            RedisTarget::Cluster { nodes } => {
                assert_eq!(nodes, ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
            }
            RedisTarget::Single(_) => panic!("a cluster URL gave one server"),
        }
        assert!(RedisTarget::parse("redis+cluster://").is_err());
    }

    #[test]
    fn a_pipeline_over_several_slots_is_split_per_slot_with_keyless_commands_in_each() {
        let mut p = redis::pipe();
        p.cmd("SCRIPT").arg("LOAD").arg("return 1").ignore();
        p.sadd("vf:queues", "cpu").ignore();
        p.cmd("EVALSHA")
            .arg("abc")
            .arg(2)
            .arg("{vf:cpu}:a")
            .arg("{vf:cpu}:b");
        p.cmd("EVALSHA").arg("abc").arg(1).arg("{vf:gpu}:a");
        p.llen("{vf:cpu}:pending:high");
        let parts = split_by_slot(&p);
        let indices: Vec<Vec<usize>> = parts.iter().map(|(_, _, i)| i.clone()).collect();
        assert_eq!(indices, [vec![0, 1], vec![0, 2, 4], vec![0, 3]]);
        assert!(parts.iter().all(|(_, part, i)| part.len() == i.len()));
        assert_eq!(parts[1].0, Some(Slot::for_key("{vf:cpu}:a")));
        // a channel is no key: published once, beside the first slot's commands
        let mut p = redis::pipe();
        p.hset("{vf:cpu}:job:1", "progress_done", 1)
            .hset("{vf:gpu}:job:2", "progress_done", 1)
            .publish("vf:events", "{}");
        let parts = split_by_slot(&p);
        let indices: Vec<Vec<usize>> = parts.iter().map(|(_, _, i)| i.clone()).collect();
        assert_eq!(indices, [vec![0, 2], vec![1]]);
        assert_eq!(parts[0].0, Some(Slot::for_key("{vf:cpu}:job:1")));
    }
}
