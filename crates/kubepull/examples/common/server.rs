//! `kubepull server` as a process for the benchmarks: started on a data directory, ready when
//! `/readyz` answers, killed on drop; an HTTPS client with the admin token.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub child: Child,
    pub url: String,
    pub token: String,
    pub http: reqwest::Client,
}

impl Server {
    /// `POST {url}{path}` of `body` as JSON with the admin token.
    #[allow(dead_code)] // not every bench posts through it
    pub fn post(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> impl std::future::Future<Output = reqwest::Result<reqwest::Response>> {
        self.http
            .post(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap_or_default())
            .send()
    }

    /// [`Server::post`], then the response read to its end (an HTTP/2 response dropped unread
    /// is cancelled, and the server's data still in flight for it makes the client's h2 reset
    /// the stream again: after 1,024 such resets it closes its own connection); the status.
    #[allow(dead_code)] // not every bench creates through it
    pub async fn create(&self, path: &str, body: serde_json::Value) -> reqwest::StatusCode {
        let r = self.post(path, body).await.expect("POST");
        let status = r.status();
        let _ = r.bytes().await;
        status
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `kubepull server --secure-port 0 EXTRA… --data-dir DATA`, its output in `log`;
/// returns it once ready, with the time that took.
pub async fn start(kp: &str, data: &Path, log: &Path, extra: &[&str]) -> (Server, Duration) {
    let t0 = Instant::now();
    let log = std::fs::File::create(log).expect("log");
    let _ = std::fs::remove_file(data.join("admin.kubeconfig"));
    let child = Command::new(kp)
        .args(["server", "--secure-port", "0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start kubepull server");
    let kc = data.join("admin.kubeconfig");
    while !kc.exists() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let text = std::fs::read_to_string(&kc).expect("kubeconfig");
    let url = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("server: "))
        .expect("server url")
        .to_string();
    let token = std::fs::read_to_string(data.join("pki/admin.token"))
        .expect("token")
        .trim()
        .to_string();
    let ca = std::fs::read(data.join("pki/ca.crt")).expect("ca");
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .expect("client");
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    (
        Server {
            child,
            url,
            token,
            http,
        },
        t0.elapsed(),
    )
}
