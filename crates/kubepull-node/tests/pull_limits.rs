//! Node-wide pull limits (`serializeImagePulls`, `maxParallelImagePulls`) over the real registry
//! (TLS, htpasswd) and the real store: the registry client's transport seam wraps the real
//! HTTPS transport, counts the manifest requests in flight and holds them until the test
//! releases them, so the number of pulls running at once is read off, never timed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kubepull_core::keyring::PullSecret;
use kubepull_core::pullpolicy::PullPolicy;
use kubepull_images::Puller;
use kubepull_node::images::{
    ImageManager, ImageOutcome, ImageRequest, StepEvent, SystemClock, VerifyPolicy,
};
use kubepull_node::pull_limits::PullLimits;
use kubepull_node::service::StoreImageService;
use kubepull_registry::transport::{BoxFuture, Request, Response, TransportError};
use kubepull_registry::{
    Client, ClientConfig, HttpsTransport, Platform, SystemResolver, TlsConfig, Transport,
};
use kubepull_store::Store;
use kubepull_testkit::{busybox_image, Registry};

const USER: &str = "limits";
const PASS: &str = "Limits-Pass-9";
const PULLS: usize = 4;

/// The real transport, with manifest requests counted and held until released.
struct Gate {
    inner: HttpsTransport,
    released: AtomicBool,
    wake: tokio::sync::Notify,
    in_flight: AtomicUsize,
    max: AtomicUsize,
    seen: AtomicUsize,
}

impl Transport for Gate {
    fn send(&self, req: Request) -> BoxFuture<'_, Result<Response, TransportError>> {
        Box::pin(async move {
            let counted = req.url.path().contains("/manifests/");
            if counted {
                let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                self.max.fetch_max(now, Ordering::SeqCst);
                self.seen.fetch_add(1, Ordering::SeqCst);
                loop {
                    let notified = self.wake.notified();
                    if self.released.load(Ordering::SeqCst) {
                        break;
                    }
                    notified.await;
                }
            }
            let r = self.inner.send(req).await;
            if counted {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
            r
        })
    }
}

fn secret(server: &str) -> PullSecret {
    let json = format!(r#"{{"auths":{{"{server}":{{"username":"{USER}","password":"{PASS}"}}}}}}"#);
    PullSecret {
        name: "regcred".into(),
        secret_type: "kubernetes.io/dockerconfigjson".into(),
        data: BTreeMap::from([(".dockerconfigjson".into(), json.into_bytes())]),
    }
}

/// Waits (without a deadline of its own: the test runner's timeout is the bound) until `f`.
async fn until(mut f: impl FnMut() -> bool) {
    while !f() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Starts `PULLS` pulls of different images at once under `limits`; returns the most manifest
/// requests in flight at once while the pulls were held, after checking every pull finished.
async fn run(limits: PullLimits) -> (usize, usize, Vec<Vec<StepEvent>>) {
    let reg = Registry::start(&[(USER, PASS)]);
    for i in 0..PULLS {
        let img = busybox_image(&["true"], &[("etc/n", format!("{i}").as_bytes())]);
        reg.push(&format!("team/app{i}"), "v1", &img).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("images")).unwrap();
    let gate = Arc::new(Gate {
        inner: HttpsTransport::new(&TlsConfig::private_ca(reg.ca_pem().as_bytes().to_vec()))
            .unwrap(),
        released: AtomicBool::new(false),
        wake: tokio::sync::Notify::new(),
        in_flight: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
        seen: AtomicUsize::new(0),
    });
    let client = Client::new(
        gate.clone(),
        Arc::new(SystemResolver),
        ClientConfig::default(),
    );
    let puller = Puller::new(client, store, Platform::host()).with_unpack(false);
    let images = Arc::new(
        ImageManager::new(
            Arc::new(StoreImageService::new(puller)),
            Arc::new(SystemClock::default()),
            VerifyPolicy::default(),
        )
        .with_pull_limits(limits),
    );
    let secrets = [secret(&reg.host())];
    let host = reg.host();
    let tasks: Vec<_> = (0..PULLS)
        .map(|i| {
            let (images, secrets, host) = (images.clone(), secrets.clone(), host.clone());
            tokio::spawn(async move {
                let image = format!("{host}/team/app{i}:v1");
                let uid = format!("pod-{i}");
                let mut ev = vec![];
                let o = images
                    .ensure_image(
                        &ImageRequest {
                            pod_uid: &uid,
                            namespace: "default",
                            image: &image,
                            policy: Some(PullPolicy::IfNotPresent),
                            pull_secrets: &secrets,
                            node_config: None,
                        },
                        &mut ev,
                    )
                    .await;
                assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?} {ev:?}");
                ev
            })
        })
        .collect();
    // every pull has either reached the registry (held there) or is queued for a slot
    until(|| {
        let (running, waiting) = images.pull_load();
        running + waiting == PULLS && gate.in_flight.load(Ordering::SeqCst) == running
    })
    .await;
    let (running, waiting) = images.pull_load();
    let held = gate.in_flight.load(Ordering::SeqCst);
    gate.released.store(true, Ordering::SeqCst);
    gate.wake.notify_waiters();
    let mut events = vec![];
    for t in tasks {
        events.push(t.await.unwrap());
    }
    assert_eq!(images.pull_load(), (0, 0));
    assert!(gate.seen.load(Ordering::SeqCst) >= PULLS);
    assert!(
        gate.max.load(Ordering::SeqCst) <= running.max(1) || limits.slots().is_none(),
        "more manifest requests at once ({}) than pulls allowed ({running})",
        gate.max.load(Ordering::SeqCst)
    );
    assert_eq!(held, running);
    (running, waiting, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serialized_pulls_run_one_at_a_time() {
    let (running, waiting, events) = run(PullLimits::default()).await;
    assert_eq!((running, waiting), (1, PULLS - 1));
    // each pull is Pulling before it waits, and Pulled reports the wait
    for ev in events {
        let reasons: Vec<&str> = ev.iter().map(|e| e.reason.as_str()).collect();
        assert_eq!(reasons, ["Pulling", "Pulled"], "{ev:?}");
        assert!(ev[1].message.contains("including waiting"), "{ev:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_parallel_image_pulls_bounds_the_pulls_at_once() {
    let (running, waiting, _) = run(PullLimits::new(false, Some(2)).unwrap()).await;
    assert_eq!((running, waiting), (2, PULLS - 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlimited_parallel_pulls_all_run_at_once() {
    let (running, waiting, _) = run(PullLimits::new(false, None).unwrap()).await;
    assert_eq!((running, waiting), (PULLS, 0));
}
