//! A real etcd cluster (Debian `etcd-server`) on loopback, killed on drop.

use std::process::{Child, Command};

/// Running etcd members.
pub struct Etcd {
    children: Vec<Option<Child>>,
    /// `127.0.0.1:PORT` client addresses, one per member.
    pub clients: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Etcd {
    /// Starts a cluster of `members` on free loopback ports.
    pub fn start(members: usize) -> Etcd {
        crate::need("etcd", "etcd-server");
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..members)
            .map(|_| (crate::free_port(), crate::free_port()))
            .collect();
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("n{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut children = vec![];
        for (i, (c, p)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).expect("log");
            children.push(Some(
                Command::new("etcd")
                    .args(["--name", &format!("n{i}")])
                    .arg("--data-dir")
                    .arg(dir.path().join(format!("n{i}")))
                    .args(["--listen-client-urls", &format!("http://127.0.0.1:{c}")])
                    .args(["--advertise-client-urls", &format!("http://127.0.0.1:{c}")])
                    .args(["--listen-peer-urls", &format!("http://127.0.0.1:{p}")])
                    .args([
                        "--initial-advertise-peer-urls",
                        &format!("http://127.0.0.1:{p}"),
                    ])
                    .args(["--initial-cluster", &cluster.join(",")])
                    .args(["--initial-cluster-state", "new"])
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log)
                    .spawn()
                    .expect("start etcd"),
            ));
        }
        Etcd {
            children,
            clients: ports
                .iter()
                .map(|(c, _)| format!("127.0.0.1:{c}"))
                .collect(),
            _dir: dir,
        }
    }

    /// `etcd://h1,h2,…`.
    pub fn spec(&self) -> String {
        format!("etcd://{}", self.clients.join(","))
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children.get_mut(i).and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
