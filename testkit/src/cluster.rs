//! A real Redis Cluster on loopback for tests: six `redis-server` processes in cluster mode
//! (three masters with a replica each, made by `redis-cli --cluster create`), each with an
//! append-only file (`appendfsync everysec`, the usual production setting), as an operator would run one for voxfleet.
//!
//! [`RedisCluster::start`] gives a cluster of one's own (stopped when dropped);
//! [`shared`] gives one cluster per test binary. Its nodes are watched by a small shell loop
//! that kills them when the test process is gone, since a `static` is never dropped.
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a master may be unreachable before its replica takes over (ms): short, so a
/// failover test does not wait Redis's default 15 s.
const NODE_TIMEOUT_MS: u32 = 2000;

pub struct RedisCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    nodes: Mutex<Vec<Option<Child>>>,
}

impl RedisCluster {
    /// Starts six nodes and joins them into a cluster; returns once every node says the
    /// cluster is `ok`. Fails the test, naming the package, when redis-server is missing.
    pub fn start() -> Self {
        crate::require_tool("redis-server", "redis-server");
        crate::require_tool("redis-cli", "redis-tools");
        let ports = free_port_pairs(6);
        let dir = std::env::temp_dir().join(format!(
            "voxfleet-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let c = Self {
            nodes: Mutex::new(ports.iter().map(|&p| Some(spawn_node(&dir, p))).collect()),
            ports,
            dir,
        };
        for &p in &c.ports {
            wait_for(
                Duration::from_secs(10),
                &format!("node {p} to listen"),
                || std::net::TcpStream::connect(("127.0.0.1", p)).is_ok(),
            );
        }
        let addrs: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for &p in &c.ports {
            wait_for(
                Duration::from_secs(30),
                &format!("node {p} to see the cluster ok"),
                || cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"),
            );
            // a replica that has not synced once cannot take over: wait for every link
            wait_for(
                Duration::from_secs(30),
                &format!("node {p}'s replication link"),
                || {
                    let info = cli(p, &["INFO", "replication"]);
                    info.contains("role:master") || info.contains("master_link_status:up")
                },
            );
        }
        c
    }

    /// The URL voxfleet takes for it: `redis+cluster://` and every node.
    pub fn url(&self) -> String {
        let nodes: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    /// The port of the master that now serves `key`'s hash slot.
    pub fn master_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.live_port(), &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT");
        for line in cli(self.live_port(), &["CLUSTER", "NODES"]).lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let owns = f[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => {
                    let (a, b): (u16, u16) = (a.parse().unwrap_or(1), b.parse().unwrap_or(0));
                    (a..=b).contains(&slot)
                }
                None => r.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if owns {
                let port = f[1].split(['@', ':']).nth(1).expect("node address");
                return port.parse().expect("port");
            }
        }
        panic!("no master serves slot {slot} of {key}");
    }

    /// `kill -9` of the node on `port`; its replica takes over after the node timeout.
    pub fn kill(&self, port: u16) {
        let i = self
            .ports
            .iter()
            .position(|&p| p == port)
            .expect("a node of this cluster");
        if let Some(mut child) = self.nodes.lock().unwrap()[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits until every running node has marked the node on `port` failed (`fail`, not just
    /// suspected) and reports the cluster `ok` again: a replica has taken over its slots.
    pub fn wait_failover(&self, port: u16, timeout: Duration) {
        let addr = format!("127.0.0.1:{port}@");
        for p in self.live_ports() {
            wait_for(timeout, &format!("node {p} to mark {port} failed"), || {
                cli(p, &["CLUSTER", "NODES"]).lines().any(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    f.len() > 2
                        && f[1].starts_with(&addr)
                        && f[2].split(',').any(|flag| flag == "fail")
                })
            });
        }
        self.wait_ok(timeout);
    }

    /// Waits until every running node reports `cluster_state:ok`.
    pub fn wait_ok(&self, timeout: Duration) {
        for p in self.live_ports() {
            wait_for(timeout, &format!("node {p} to see the cluster ok"), || {
                cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok")
            });
        }
    }

    fn live_ports(&self) -> Vec<u16> {
        let nodes = self.nodes.lock().unwrap();
        self.ports
            .iter()
            .zip(nodes.iter())
            .filter(|(_, n)| n.is_some())
            .map(|(&p, _)| p)
            .collect()
    }

    fn live_port(&self) -> u16 {
        self.live_ports().first().copied().expect("a live node")
    }

    fn stop(&self) {
        for child in self.nodes.lock().unwrap().iter_mut() {
            if let Some(mut c) = child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One cluster for the whole test binary, started on first use. A watchdog kills its nodes
/// once this process has exited.
pub fn shared() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let c = RedisCluster::start();
        let pids: Vec<String> = c
            .nodes
            .lock()
            .unwrap()
            .iter()
            .flatten()
            .map(|n| n.id().to_string())
            .collect();
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; kill -9 {pids} 2>/dev/null; rm -rf '{dir}'",
            me = std::process::id(),
            pids = pids.join(" "),
            dir = c.dir.display()
        );
        // Never waited for: it outlives this process by design (init reaps it).
        #[allow(clippy::zombie_processes)]
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh");
        c
    })
}

fn spawn_node(dir: &std::path::Path, port: u16) -> Child {
    let node_dir = dir.join(port.to_string());
    std::fs::create_dir_all(&node_dir).expect("node dir");
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--cluster-enabled", "yes"])
        .args(["--cluster-config-file", "nodes.conf"])
        .args(["--cluster-node-timeout", &NODE_TIMEOUT_MS.to_string()])
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ])
        // replicas sync at once (Redis waits 5 s by default to serve several together)
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(&node_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (apt-get install redis-server)")
}

/// `redis-cli -p port args…`'s output ("" when the node does not answer).
fn cli(port: u16, args: &[&str]) -> String {
    Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

fn wait_for(timeout: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `n` free ports whose cluster bus ports (port + 10000) are free as well.
fn free_port_pairs(n: usize) -> Vec<u16> {
    let mut held = vec![];
    let mut ports = vec![];
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let p = l.local_addr().expect("addr").port();
        if p < 55535
            && let Ok(bus) = std::net::TcpListener::bind(("127.0.0.1", p + 10000))
        {
            ports.push(p);
            held.push(bus);
        }
        held.push(l);
    }
    ports
}
