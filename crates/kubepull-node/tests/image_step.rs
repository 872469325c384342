//! The kubelet's image step on a fake clock and a scripted image service.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use kubepull_core::keyring::{Credential, PullSecret};
use kubepull_core::pullpolicy::PullPolicy;
use kubepull_core::reference::Reference;
use kubepull_node::images::*;

#[derive(Default)]
struct FakeClock(Mutex<Duration>);
impl FakeClock {
    fn advance(&self, d: Duration) {
        *self.0.lock().unwrap() += d;
    }
}
impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.0.lock().unwrap()
    }
}

/// A registry that accepts exactly one username/password pair for `private/*` images and serves
/// `public/*` anonymously.
#[derive(Default)]
struct FakeImages {
    present: Mutex<BTreeMap<String, PresentImage>>,
    pulls: Mutex<Vec<(String, Vec<String>)>>,
    good: (String, String),
    down: Mutex<bool>,
    record_fails: Mutex<bool>,
}

#[async_trait]
impl ImageService for FakeImages {
    async fn image_status(&self, image: &Reference) -> Result<Option<PresentImage>, String> {
        Ok(self
            .present
            .lock()
            .unwrap()
            .get(&image.familiar_string())
            .cloned())
    }
    async fn pull_image(
        &self,
        image: &Reference,
        credentials: &[Credential],
    ) -> Result<PulledImage, String> {
        // the step hands over the parsed reference: the fake keys by the name as written
        let image = image.familiar_string();
        let image = image.as_str();
        self.pulls.lock().unwrap().push((
            image.to_string(),
            credentials.iter().map(|c| c.source.to_string()).collect(),
        ));
        if *self.down.lock().unwrap() {
            return Err("dial tcp 127.0.0.1:5000: connect: connection refused".into());
        }
        let ok_cred = credentials
            .iter()
            .find(|c| c.username == self.good.0 && c.password == self.good.1);
        if image.contains("/private/") && ok_cred.is_none() {
            return Err(format!(
                "failed to authorize: pull access denied for {image}: 401 Unauthorized"
            ));
        }
        let image_ref = format!("sha256:{:064x}", image.len());
        self.present.lock().unwrap().insert(
            image.to_string(),
            PresentImage {
                image_ref: image_ref.clone(),
                pulled_by: None,
            },
        );
        Ok(PulledImage {
            image_ref,
            size: 1234,
            pull_duration: Duration::from_millis(1500),
            credential: ok_cred.cloned(),
        })
    }
    async fn record_pulled(
        &self,
        image_ref: &str,
        namespace: &str,
        credential: Option<&Credential>,
    ) -> Result<(), String> {
        if *self.record_fails.lock().unwrap() {
            return Err("write pulls/ab.json: Read-only file system (os error 30)".into());
        }
        let mut present = self.present.lock().unwrap();
        for p in present.values_mut() {
            if p.image_ref == image_ref {
                let rec = p.pulled_by.get_or_insert_with(PulledBy::default);
                match credential {
                    Some(c) => {
                        rec.credential_hashes.push(c.credential_hash());
                        if let kubepull_core::keyring::CredentialSource::Secret { name } = &c.source
                        {
                            rec.secrets.push(format!("{namespace}/{name}"));
                        }
                    }
                    None => rec.node_pods_accessible = true,
                }
            }
        }
        Ok(())
    }
}

fn secret(name: &str, server: &str, user: &str, pass: &str) -> PullSecret {
    let json = format!(r#"{{"auths":{{"{server}":{{"username":"{user}","password":"{pass}"}}}}}}"#);
    PullSecret {
        name: name.to_string(),
        secret_type: "kubernetes.io/dockerconfigjson".to_string(),
        data: BTreeMap::from([(".dockerconfigjson".to_string(), json.into_bytes())]),
    }
}

fn setup() -> (Arc<FakeImages>, Arc<FakeClock>, ImageManager) {
    let images = Arc::new(FakeImages {
        good: ("alice".into(), "s3cret-pw".into()),
        ..Default::default()
    });
    let clock = Arc::new(FakeClock::default());
    let m = ImageManager::new(images.clone(), clock.clone(), VerifyPolicy::default());
    (images, clock, m)
}

fn req<'a>(
    uid: &'a str,
    image: &'a str,
    policy: Option<PullPolicy>,
    secrets: &'a [PullSecret],
) -> ImageRequest<'a> {
    ImageRequest {
        pod_uid: uid,
        namespace: "team-a",
        image,
        policy,
        pull_secrets: secrets,
        node_config: None,
    }
}

fn waiting(o: &ImageOutcome) -> (&str, &str) {
    match o {
        ImageOutcome::Waiting {
            reason, message, ..
        } => (reason, message),
        other => panic!("expected waiting, got {other:?}"),
    }
}

fn reasons(ev: &[StepEvent]) -> Vec<String> {
    ev.iter()
        .map(|e| format!("{}/{}", e.event_type.as_str(), e.reason))
        .collect()
}

const IMG: &str = "reg.example:5000/private/app:v1";

#[tokio::test]
async fn invalid_image_name() {
    let (images, _, m) = setup();
    let mut ev = vec![];
    let o = m
        .ensure_image(&req("u1", "reg/app:${TAG}", None, &[]), &mut ev)
        .await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "InvalidImageName");
    assert_eq!(
        msg,
        r#"Failed to apply default image tag "reg/app:${TAG}": couldn't parse image name "reg/app:${TAG}": invalid reference format"#
    );
    assert_eq!(reasons(&ev), ["Warning/InspectFailed", "Warning/Failed"]);
    assert_eq!(ev[1].message, "Error: InvalidImageName");
    assert!(images.pulls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn pull_failure_then_backoff_timeline_then_secret_added() {
    let (images, clock, m) = setup();
    let mut ev = vec![];
    let o = m.ensure_image(&req("u1", IMG, None, &[]), &mut ev).await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "ErrImagePull");
    assert!(msg.contains("401 Unauthorized"), "{msg}");
    assert_eq!(
        reasons(&ev),
        ["Normal/Pulling", "Warning/Failed", "Warning/Failed"]
    );
    assert_eq!(ev[0].message, format!("Pulling image \"{IMG}\""));
    assert_eq!(
        ev[1].message,
        format!("Failed to pull image \"{IMG}\": {msg}")
    );
    assert_eq!(ev[2].message, "Error: ErrImagePull");

    // within the 10 s window: back-off, no pull
    clock.advance(Duration::from_secs(5));
    let mut ev = vec![];
    let o = m.ensure_image(&req("u1", IMG, None, &[]), &mut ev).await;
    let (reason, bmsg) = waiting(&o);
    assert_eq!(reason, "ImagePullBackOff");
    assert_eq!(
        bmsg,
        format!("Back-off pulling image \"{IMG}\": ErrImagePull: {msg}")
    );
    assert_eq!(reasons(&ev), ["Normal/BackOff", "Warning/Failed"]);
    assert_eq!(ev[0].message, format!("Back-off pulling image \"{IMG}\""));
    assert_eq!(ev[1].message, "Error: ImagePullBackOff");
    if let ImageOutcome::Waiting { retry_after, .. } = o {
        assert_eq!(retry_after, Some(Duration::from_secs(5)));
    }
    assert_eq!(images.pulls.lock().unwrap().len(), 1);

    // another pod has its own key
    let mut ev = vec![];
    let o = m.ensure_image(&req("u2", IMG, None, &[]), &mut ev).await;
    assert_eq!(waiting(&o).0, "ErrImagePull");

    // after 10 s: a real retry, fails again, window doubles to 20 s
    clock.advance(Duration::from_secs(5));
    let o = m
        .ensure_image(&req("u1", IMG, None, &[]), &mut vec![])
        .await;
    assert_eq!(waiting(&o).0, "ErrImagePull");
    clock.advance(Duration::from_secs(19));
    let o = m
        .ensure_image(&req("u1", IMG, None, &[]), &mut vec![])
        .await;
    assert_eq!(waiting(&o).0, "ImagePullBackOff");
    assert_eq!(images.pulls.lock().unwrap().len(), 3);

    // the secret is added: the next attempt after the window pulls and succeeds
    clock.advance(Duration::from_secs(1));
    let s = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    let mut ev = vec![];
    let o = m.ensure_image(&req("u1", IMG, None, &s), &mut ev).await;
    assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?}");
    assert_eq!(reasons(&ev), ["Normal/Pulling", "Normal/Pulled"]);
    assert_eq!(
        ev[1].message,
        format!("Successfully pulled image \"{IMG}\" in 1.5s (1.5s including waiting). Image size: 1234 bytes.")
    );
    assert_eq!(
        images.pulls.lock().unwrap().last().unwrap().1,
        ["secret/regcred"]
    );
    for e in &ev {
        assert!(!e.message.contains("s3cret-pw"));
    }
}

#[tokio::test]
async fn operator_reset_retries_now() {
    let (images, _, m) = setup();
    let _ = m
        .ensure_image(&req("u1", IMG, None, &[]), &mut vec![])
        .await;
    let o = m
        .ensure_image(&req("u1", IMG, None, &[]), &mut vec![])
        .await;
    assert_eq!(waiting(&o).0, "ImagePullBackOff");
    m.reset_backoff(Some("u1"));
    let o = m
        .ensure_image(&req("u1", IMG, None, &[]), &mut vec![])
        .await;
    assert_eq!(waiting(&o).0, "ErrImagePull");
    assert_eq!(images.pulls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn never_policy_and_present_images() {
    let (images, _, m) = setup();
    let mut ev = vec![];
    let o = m
        .ensure_image(&req("u1", IMG, Some(PullPolicy::Never), &[]), &mut ev)
        .await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "ErrImageNeverPull");
    assert_eq!(
        msg,
        format!("Container image \"{IMG}\" is not present with pull policy of Never")
    );
    assert_eq!(
        reasons(&ev),
        ["Warning/ErrImageNeverPull", "Warning/Failed"]
    );

    // present without a pull record, not listed by the admin: verified by pulling (fail closed)
    images.present.lock().unwrap().insert(
        "busybox:1.36".into(),
        PresentImage {
            image_ref: "sha256:aa".into(),
            pulled_by: None,
        },
    );
    let mut ev = vec![];
    let o = m
        .ensure_image(&req("u1", "busybox:1.36", None, &[]), &mut ev)
        .await;
    assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?}");
    assert_eq!(reasons(&ev), ["Normal/Pulling", "Normal/Pulled"]);
    assert_eq!(images.pulls.lock().unwrap().len(), 1);
    // ... and with Never it is not started (presence not revealed)
    images
        .present
        .lock()
        .unwrap()
        .get_mut("busybox:1.36")
        .unwrap()
        .pulled_by = None;
    let o = m
        .ensure_image(
            &req("u2", "busybox:1.36", Some(PullPolicy::Never), &[]),
            &mut vec![],
        )
        .await;
    assert_eq!(waiting(&o).0, "ErrImageNeverPull");

    // listed as preloaded by the admin: trusted without a record
    let (images, clock, _) = setup();
    let m = ImageManager::new(images.clone(), clock, VerifyPolicy::default()).with_preloaded(
        PreloadedImages::parse("# preloaded on this node\ndocker.io/library/busybox\n").unwrap(),
    );
    images.present.lock().unwrap().insert(
        "busybox:1.36".into(),
        PresentImage {
            image_ref: "sha256:aa".into(),
            pulled_by: None,
        },
    );
    let mut ev = vec![];
    let o = m
        .ensure_image(&req("u1", "busybox:1.36", None, &[]), &mut ev)
        .await;
    assert_eq!(
        o,
        ImageOutcome::Ready {
            image_ref: "sha256:aa".into()
        }
    );
    assert_eq!(
        ev[0].message,
        "Container image \"busybox:1.36\" already present on machine and can be accessed by the pod"
    );
    assert!(images.pulls.lock().unwrap().is_empty());
}

/// The four kubelet policies on one private image with and without a record.
#[tokio::test]
async fn verification_policies() {
    let b = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    let cases: [(VerifyPolicy, &str, bool, bool); 6] = [
        // policy, list, record present, pod B (no secret) starts from the cache
        (VerifyPolicy::NeverVerify, "", true, true),
        (VerifyPolicy::NeverVerifyPreloadedImages, "", true, false),
        (
            VerifyPolicy::NeverVerifyPreloadedImages,
            "reg.example:5000/private/*",
            false,
            true,
        ),
        (
            VerifyPolicy::NeverVerifyAllowlistedImages,
            "reg.example:5000/private/app",
            true,
            true,
        ),
        (
            VerifyPolicy::NeverVerifyAllowlistedImages,
            "reg.example:5000/other/*",
            true,
            false,
        ),
        (
            VerifyPolicy::AlwaysVerify,
            "reg.example:5000/private/*",
            false,
            false,
        ),
    ];
    for (policy, list, with_record, b_starts) in cases {
        let images = Arc::new(FakeImages {
            good: ("alice".into(), "s3cret-pw".into()),
            ..Default::default()
        });
        let m = ImageManager::new(images.clone(), Arc::new(FakeClock::default()), policy)
            .with_preloaded(PreloadedImages::parse(list).unwrap());
        if with_record {
            let o = m
                .ensure_image(
                    &req("pod-a", IMG, Some(PullPolicy::IfNotPresent), &b),
                    &mut vec![],
                )
                .await;
            assert!(matches!(o, ImageOutcome::Ready { .. }), "{policy:?}: {o:?}");
        } else {
            images.present.lock().unwrap().insert(
                IMG.into(),
                PresentImage {
                    image_ref: "sha256:bb".into(),
                    pulled_by: None,
                },
            );
        }
        let o = m
            .ensure_image(
                &req("pod-b", IMG, Some(PullPolicy::Never), &[]),
                &mut vec![],
            )
            .await;
        assert_eq!(
            matches!(o, ImageOutcome::Ready { .. }),
            b_starts,
            "{policy:?} list={list:?} record={with_record}: {o:?}"
        );
    }
}

#[test]
fn policy_names_and_preloaded_list_validation() {
    for n in VerifyPolicy::NAMES {
        assert_eq!(n.parse::<VerifyPolicy>().unwrap().as_str(), n);
    }
    let e = "Always".parse::<VerifyPolicy>().unwrap_err();
    assert!(e.to_string().contains("NeverVerifyPreloadedImages"), "{e}");
    assert_eq!(
        VerifyPolicy::default(),
        VerifyPolicy::NeverVerifyPreloadedImages
    );

    let ok =
        PreloadedImages::parse("docker.io/library/busybox\n\nreg.example:5000/base/*\n").unwrap();
    assert!(ok.matches("docker.io/library/busybox"));
    assert!(!ok.matches("docker.io/library/busybox2"));
    assert!(ok.matches("reg.example:5000/base/x/y"));
    assert!(!ok.matches("reg.example:5000/based"));
    for (bad, why) in [
        (" docker.io/library/busybox", "spaces"),
        ("busybox", "fully normalized"),
        ("docker.io/library/busybox:1.36", "tag"),
        ("reg.example:5000/*/app", "trailing"),
        ("/*", "host"),
        ("reg.example:5000/base*", "trailing"),
    ] {
        let e = PreloadedImages::parse(bad).unwrap_err();
        assert!(e.to_string().contains(why), "{bad:?}: {e}");
        assert_eq!(e.line, 1);
    }
}

/// A pull whose record cannot be written fails: the container does not start and the step backs
/// off like a failed pull; once records can be written again the retry succeeds.
#[tokio::test]
async fn failed_record_write_fails_the_pull() {
    let (images, clock, m) = setup();
    *images.record_fails.lock().unwrap() = true;
    let s = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    let mut ev = vec![];
    let o = m
        .ensure_image(&req("u1", IMG, Some(PullPolicy::IfNotPresent), &s), &mut ev)
        .await;
    let (reason, msg) = waiting(&o);
    assert_eq!(reason, "ErrImagePull");
    assert!(msg.contains("failed to record the pull"), "{msg}");
    assert_eq!(
        reasons(&ev),
        ["Normal/Pulling", "Warning/Failed", "Warning/Failed"]
    );
    // in back-off now
    let o = m
        .ensure_image(
            &req("u1", IMG, Some(PullPolicy::IfNotPresent), &s),
            &mut vec![],
        )
        .await;
    assert_eq!(waiting(&o).0, "ImagePullBackOff");
    *images.record_fails.lock().unwrap() = false;
    clock.advance(Duration::from_secs(11));
    let o = m
        .ensure_image(
            &req("u1", IMG, Some(PullPolicy::IfNotPresent), &s),
            &mut vec![],
        )
        .await;
    assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?}");
}

#[tokio::test]
async fn always_pulls_even_when_present() {
    let (images, _, m) = setup();
    let s = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    let r = req("u1", IMG, Some(PullPolicy::Always), &s);
    assert!(matches!(
        m.ensure_image(&r, &mut vec![]).await,
        ImageOutcome::Ready { .. }
    ));
    assert!(matches!(
        m.ensure_image(&r, &mut vec![]).await,
        ImageOutcome::Ready { .. }
    ));
    assert_eq!(images.pulls.lock().unwrap().len(), 2);
}

/// KEP-2535: tenant B's pod without the secret does not start from tenant A's cached private
/// image; a pod with the same credential under another Secret name does.
#[tokio::test]
async fn ensure_secret_pulled_images() {
    let (images, _, m) = setup();
    let a = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    let o = m
        .ensure_image(
            &req("pod-a", IMG, Some(PullPolicy::IfNotPresent), &a),
            &mut vec![],
        )
        .await;
    assert!(matches!(o, ImageOutcome::Ready { .. }));
    assert_eq!(images.pulls.lock().unwrap().len(), 1);

    // tenant B, no secret, IfNotPresent: must verify by pulling, which the registry refuses
    let mut ev = vec![];
    let o = m
        .ensure_image(
            &req("pod-b", IMG, Some(PullPolicy::IfNotPresent), &[]),
            &mut ev,
        )
        .await;
    assert_eq!(waiting(&o).0, "ErrImagePull");
    assert_eq!(images.pulls.lock().unwrap().len(), 2);

    // tenant B with Never: the same message as "absent", so presence is not revealed
    let o = m
        .ensure_image(
            &req("pod-b2", IMG, Some(PullPolicy::Never), &[]),
            &mut vec![],
        )
        .await;
    assert_eq!(waiting(&o).0, "ErrImageNeverPull");

    // the same credential under another Secret name matches by hash: no pull
    let c = [secret(
        "other-name",
        "reg.example:5000",
        "alice",
        "s3cret-pw",
    )];
    let mut ev = vec![];
    let o = m
        .ensure_image(
            &req("pod-c", IMG, Some(PullPolicy::IfNotPresent), &c),
            &mut ev,
        )
        .await;
    assert!(matches!(o, ImageOutcome::Ready { .. }), "{o:?}");
    assert_eq!(images.pulls.lock().unwrap().len(), 2);
    assert_eq!(reasons(&ev), ["Normal/Pulled"]);

    // an image pulled anonymously is accessible to every pod
    let pub_img = "reg.example:5000/public/app:v1";
    let _ = m
        .ensure_image(
            &req("pod-a", pub_img, Some(PullPolicy::IfNotPresent), &[]),
            &mut vec![],
        )
        .await;
    let o = m
        .ensure_image(
            &req("pod-b", pub_img, Some(PullPolicy::IfNotPresent), &[]),
            &mut vec![],
        )
        .await;
    assert!(matches!(o, ImageOutcome::Ready { .. }));
    assert_eq!(images.pulls.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn malformed_secret_fails_without_backoff() {
    let (images, _, m) = setup();
    let bad = [PullSecret {
        name: "broken".into(),
        secret_type: "kubernetes.io/dockerconfigjson".into(),
        data: BTreeMap::from([(".dockerconfigjson".into(), b"{\"auths\":".to_vec())]),
    }];
    for _ in 0..2 {
        let mut ev = vec![];
        let o = m.ensure_image(&req("u1", IMG, None, &bad), &mut ev).await;
        let (reason, msg) = waiting(&o);
        assert_eq!(reason, "unexpected end of JSON input");
        assert_eq!(msg, "unexpected end of JSON input");
        assert_eq!(reasons(&ev), ["Warning/Failed"]);
        assert_eq!(ev[0].message, "Error: unexpected end of JSON input");
    }
    assert!(images.pulls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn registry_down_then_back() {
    let (images, clock, m) = setup();
    let s = [secret("regcred", "reg.example:5000", "alice", "s3cret-pw")];
    *images.down.lock().unwrap() = true;
    let o = m.ensure_image(&req("u1", IMG, None, &s), &mut vec![]).await;
    assert_eq!(waiting(&o).0, "ErrImagePull");
    *images.down.lock().unwrap() = false;
    clock.advance(Duration::from_secs(10));
    let o = m.ensure_image(&req("u1", IMG, None, &s), &mut vec![]).await;
    assert!(matches!(o, ImageOutcome::Ready { .. }));
}

/// The pod worker's cadence after a failed pull: each sync that ends in an error is requeued
/// after `requeue_after_error` (10–15 s), so the pod shows `ErrImagePull` until the next sync,
/// then `ImagePullBackOff` for the syncs inside the image back-off window, with one `BackOff`
/// event per such sync.
#[tokio::test]
async fn pod_worker_cadence_after_a_failed_pull() {
    use kubepull_node::pod::requeue_after_error;
    assert_eq!(requeue_after_error(0.0), Duration::from_secs(10));
    assert_eq!(requeue_after_error(0.5), Duration::from_millis(12_500));
    assert!(requeue_after_error(1.0) < Duration::from_secs(15));

    let (images, clock, m) = setup();
    let mut seen = vec![];
    for i in 0..8 {
        if i > 0 {
            // the lowest jitter: the densest timeline the worker can produce
            clock.advance(requeue_after_error(0.0));
        }
        let mut ev = vec![];
        let o = m.ensure_image(&req("u1", IMG, None, &[]), &mut ev).await;
        let reason = waiting(&o).0.to_string();
        let backoffs = ev.iter().filter(|e| e.reason == "BackOff").count();
        assert_eq!(
            backoffs,
            usize::from(reason == "ImagePullBackOff"),
            "{ev:?}"
        );
        seen.push(reason);
    }
    assert_eq!(
        seen,
        [
            "ErrImagePull",     // t=0: pull fails, back-off 10 s
            "ErrImagePull",     // t=10: window over, pull fails, back-off 20 s
            "ImagePullBackOff", // t=20
            "ErrImagePull",     // t=30: pull fails, back-off 40 s
            "ImagePullBackOff", // t=40
            "ImagePullBackOff", // t=50
            "ImagePullBackOff", // t=60
            "ErrImagePull",     // t=70
        ]
    );
    assert_eq!(images.pulls.lock().unwrap().len(), 4);
}
