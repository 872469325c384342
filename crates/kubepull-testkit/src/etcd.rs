//! A real etcd cluster (Debian `etcd-server`) on loopback, killed on drop.
//!
//! `KUBEPULL_ETCD` names another etcd binary to run instead of the `etcd` on `PATH` (the API
//! benchmark uses it to measure an upstream etcd 3.5 release beside Debian's 3.4).

use std::process::{Child, Command};

/// The etcd binary the cluster runs: `KUBEPULL_ETCD`, else `etcd` from `PATH`.
pub fn etcd_bin() -> String {
    std::env::var("KUBEPULL_ETCD")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "etcd".into())
}

/// The version [`etcd_bin`] reports (`3.4.23`), `None` when it cannot be run.
pub fn etcd_version() -> Option<String> {
    let out = Command::new(etcd_bin()).arg("--version").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("etcd Version: "))
        .map(|v| v.trim().to_string())
}

/// Running etcd members.
pub struct Etcd {
    children: Vec<Option<Child>>,
    /// How each member was started (to start it again).
    commands: Vec<Vec<String>>,
    /// `127.0.0.1:PORT` client addresses, one per member.
    pub clients: Vec<String>,
    /// `http://…` or `https://…` client URLs, one per member.
    pub urls: Vec<String>,
    _dir: tempfile::TempDir,
}

/// Client TLS for the members (PEM): they serve `cert`/`key` and, when `client_ca` is given,
/// require a client certificate signed by it (`--client-cert-auth`).
pub struct EtcdTls {
    /// The serving certificate (for 127.0.0.1).
    pub cert: String,
    /// Its key.
    pub key: String,
    /// The CA client certificates must be signed by.
    pub client_ca: Option<String>,
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
        Self::start_with(members, None)
    }

    /// Starts a cluster whose client ports serve TLS (`tls`), or plain HTTP.
    pub fn start_with(members: usize, tls: Option<&EtcdTls>) -> Etcd {
        let bin = etcd_bin();
        if bin == "etcd" {
            crate::need("etcd", "etcd-server");
        } else {
            assert!(
                std::path::Path::new(&bin).is_file(),
                "KUBEPULL_ETCD={bin:?} is not a file"
            );
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let ports: Vec<(u16, u16)> = (0..members)
            .map(|_| (crate::free_port(), crate::free_port()))
            .collect();
        let cluster: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("n{i}=http://127.0.0.1:{p}"))
            .collect();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut tls_args: Vec<String> = vec![];
        if let Some(t) = tls {
            let w = |name: &str, pem: &str| {
                let p = dir.path().join(name);
                std::fs::write(&p, pem).expect("write tls file");
                p.to_string_lossy().into_owned()
            };
            tls_args.extend(["--cert-file".into(), w("server.crt", &t.cert)]);
            tls_args.extend(["--key-file".into(), w("server.key", &t.key)]);
            if let Some(ca) = &t.client_ca {
                tls_args.extend([
                    "--client-cert-auth".into(),
                    "--trusted-ca-file".into(),
                    w("client-ca.crt", ca),
                ]);
            }
        }
        let mut children = vec![];
        let mut commands = vec![];
        for (i, (c, p)) in ports.iter().enumerate() {
            let log = std::fs::File::create(dir.path().join(format!("n{i}.log"))).expect("log");
            let mut args: Vec<String> = vec![
                "--name".into(),
                format!("n{i}"),
                "--data-dir".into(),
                dir.path()
                    .join(format!("n{i}"))
                    .to_string_lossy()
                    .into_owned(),
            ];
            args.extend([
                "--listen-client-urls".into(),
                format!("{scheme}://127.0.0.1:{c}"),
                "--advertise-client-urls".into(),
                format!("{scheme}://127.0.0.1:{c}"),
                "--listen-peer-urls".into(),
                format!("http://127.0.0.1:{p}"),
                "--initial-advertise-peer-urls".into(),
                format!("http://127.0.0.1:{p}"),
                "--initial-cluster".into(),
                cluster.join(","),
                "--initial-cluster-state".into(),
                "new".into(),
            ]);
            args.extend(tls_args.iter().cloned());
            commands.push(args.clone());
            children.push(Some(
                Command::new(&bin)
                    .args(&args)
                    .stdout(log.try_clone().expect("log"))
                    .stderr(log)
                    .spawn()
                    .expect("start etcd"),
            ));
        }
        Etcd {
            children,
            commands,
            urls: ports
                .iter()
                .map(|(c, _)| format!("{scheme}://127.0.0.1:{c}"))
                .collect(),
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

    /// Starts member `i` again (after [`Etcd::kill`]) on its data directory; it rejoins the cluster.
    pub fn restart(&mut self, i: usize) {
        if self.children[i].is_some() {
            return;
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self._dir.path().join(format!("n{i}.log")))
            .expect("log");
        self.children[i] = Some(
            Command::new(etcd_bin())
                .args(&self.commands[i])
                .stdout(log.try_clone().expect("log"))
                .stderr(log)
                .spawn()
                .expect("start etcd"),
        );
    }

    /// Kills member `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.children.get_mut(i).and_then(Option::take) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
