//! Parallel blob downloads and their progress seam, against the scripted registry.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, StatusCode};
use kubepull_core::reference::{parse_normalized_named, Digest};
use kubepull_registry::transport::Response;
use kubepull_registry::{
    Descriptor, ErrorKind, ProgressFn, RegistryCredential, DEFAULT_BLOB_CONCURRENCY,
};

/// A blob server whose bodies count how many are open at once (a body is open from the
/// response until it is dropped), sending each blob in small delayed chunks.
fn counting_hook(open: Arc<AtomicUsize>, peak: Arc<AtomicUsize>) -> Hook {
    Arc::new(move |req, fake| {
        let d = req.url.path().rsplit('/').next()?.to_string();
        if !req.url.path().contains("/blobs/") {
            return None;
        }
        let body = fake.blobs.get(&d)?.clone();
        struct Guard(Arc<AtomicUsize>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let now = open.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        let guard = Guard(open.clone());
        let chunks: Vec<Bytes> = body.chunks(8192).map(Bytes::copy_from_slice).collect();
        let stream =
            futures_util::stream::unfold((chunks.into_iter(), guard), |(mut it, g)| async move {
                let c = it.next()?;
                tokio::time::sleep(Duration::from_millis(2)).await;
                Some((Ok(c), (it, g)))
            });
        let mut h = HeaderMap::new();
        h.insert("content-length", body.len().to_string().parse().unwrap());
        Some(Response {
            status: StatusCode::OK,
            headers: h,
            body: Box::pin(stream),
        })
    })
}

fn many_blobs(f: &mut Fake, n: usize) -> Vec<Descriptor> {
    (0..n)
        .map(|i| {
            let data: Vec<u8> = (0..50_000u32).map(|j| (j as u8) ^ (i as u8)).collect();
            let d = Digest::sha256_of(&data);
            f.blobs.insert(d.to_string(), data.clone());
            serde_json::from_str(&descriptor_json(
                "application/vnd.oci.image.layer.v1.tar",
                &data,
            ))
            .unwrap()
        })
        .collect()
}

/// Progress reports per digest: `(bytes_done, total)`.
type Seen = HashMap<Digest, Vec<(u64, u64)>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_blobs_bounded_concurrency_order_and_progress() {
    let mut f = fake(AuthMode::Basic);
    let descs = many_blobs(&mut f, 7);
    let s = server(f.clone());
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    *s.hook.lock().unwrap() = Some(counting_hook(open.clone(), peak.clone()));
    let c = client(&s);
    let repo = c
        .repository(
            &parse_normalized_named("reg.example.com/team/app:v1").unwrap(),
            Some(RegistryCredential::basic(
                "secret/regcred",
                "alice",
                PASSWORD,
            )),
        )
        .unwrap();
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let seen2 = seen.clone();
    let progress: ProgressFn = Arc::new(move |d, done, total| {
        seen2
            .lock()
            .unwrap()
            .entry(d.clone())
            .or_default()
            .push((done, total));
    });
    let sinks = repo
        .fetch_blobs(
            &descs,
            DEFAULT_BLOB_CONCURRENCY,
            |_| async { Ok(Vec::<u8>::new()) },
            Some(progress),
        )
        .await
        .unwrap();
    assert_eq!(sinks.len(), descs.len());
    for (d, sink) in descs.iter().zip(&sinks) {
        assert_eq!(&f.blobs[&d.digest.to_string()], sink, "order of descs kept");
        let p = &seen.lock().unwrap()[&d.digest];
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0), "monotonic: {p:?}");
        assert_eq!(p.last(), Some(&(d.size, d.size)));
        assert!(p.len() > 1, "reported per chunk");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(
        peak <= DEFAULT_BLOB_CONCURRENCY,
        "at most {DEFAULT_BLOB_CONCURRENCY} transfers at once, saw {peak}"
    );
    assert!(peak >= 2, "transfers overlap: peak {peak}");
    assert_eq!(open.load(Ordering::SeqCst), 0);

    // concurrency 1 is sequential; 0 means 1
    let peak1 = Arc::new(AtomicUsize::new(0));
    *s.hook.lock().unwrap() = Some(counting_hook(Arc::new(AtomicUsize::new(0)), peak1.clone()));
    repo.fetch_blobs(&descs[..3], 0, |_| async { Ok(Vec::<u8>::new()) }, None)
        .await
        .unwrap();
    assert_eq!(peak1.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_blobs_first_failure_wins_and_files_are_not_left_behind() {
    let mut f = fake(AuthMode::Basic);
    let mut descs = many_blobs(&mut f, 4);
    // a blob the registry serves with other content
    let lie = descs[2].digest.to_string();
    f.blobs
        .insert(lie.clone(), vec![0u8; descs[2].size as usize]);
    let s = server(f);
    let c = client(&s);
    let repo = c
        .repository(
            &parse_normalized_named("reg.example.com/team/app:v1").unwrap(),
            Some(RegistryCredential::basic(
                "secret/regcred",
                "alice",
                PASSWORD,
            )),
        )
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = repo
        .fetch_blobs_to_dir(&descs, dir.path(), 2, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert!(!dir.path().join(descs[2].digest.hex()).exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // without the liar: every file in place, duplicates fetched once
    descs.remove(2);
    descs.push(descs[0].clone());
    let paths = repo
        .fetch_blobs_to_dir(&descs, dir.path(), 3, None)
        .await
        .unwrap();
    assert_eq!(paths.len(), descs.len());
    for (d, p) in descs.iter().zip(&paths) {
        assert_eq!(Digest::sha256_of(&std::fs::read(p).unwrap()), d.digest);
    }
    let blob_gets = s
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.url.contains(&descs[0].digest.to_string()))
        .filter(|l| l.auth.is_some())
        .count();
    assert_eq!(blob_gets, 2, "once per call, the duplicate skipped");
}
