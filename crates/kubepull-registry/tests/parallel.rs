//! Parallel blob downloads on one repository handle (the way the image service runs them) and
//! their progress seam, against the scripted registry.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;

use bytes::Bytes;
use common::*;
use http::{HeaderMap, StatusCode};
use kubepull_core::reference::Digest;
use kubepull_registry::transport::Response;
use kubepull_registry::{Descriptor, ErrorKind, ProgressFn, Repository};

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

/// Fetches every blob into `dir/<hex>.partial`, `concurrency` at once, on one handle.
async fn fetch_all(
    repo: &Repository,
    descs: &[Descriptor],
    dir: &std::path::Path,
    concurrency: usize,
    progress: Option<ProgressFn>,
) -> Vec<kubepull_registry::Result<kubepull_registry::ResumableFetch>> {
    let progress = progress.as_ref();
    futures_util::stream::iter(descs)
        .map(|d| async move {
            let p = dir.join(format!("{}.partial", d.digest.hex()));
            repo.fetch_blob_resumable(d, &p, progress).await
        })
        .buffered(concurrency)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_fetches_on_one_handle_overlap_and_report_progress_per_chunk() {
    let mut f = fake(AuthMode::Basic);
    let descs = many_blobs(&mut f, 7);
    let s = server(f.clone());
    let open = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    *s.hook.lock().unwrap() = Some(counting_hook(open.clone(), peak.clone()));
    let repo = repo(&s);
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
    let dir = tempfile::tempdir().unwrap();
    let results = fetch_all(&repo, &descs, dir.path(), 3, Some(progress)).await;
    for (d, r) in descs.iter().zip(results) {
        let r = r.unwrap();
        assert_eq!(
            (r.resumed_from, r.downloaded, r.restarted),
            (0, d.size, false)
        );
        let p = dir.path().join(format!("{}.partial", d.digest.hex()));
        assert_eq!(&f.blobs[&d.digest.to_string()], &std::fs::read(p).unwrap());
        let p = &seen.lock().unwrap()[&d.digest];
        assert!(p.windows(2).all(|w| w[0].0 < w[1].0), "monotonic: {p:?}");
        assert_eq!(p.last(), Some(&(d.size, d.size)));
        assert!(p.len() > 1, "reported per chunk");
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak >= 2, "transfers overlap: peak {peak}");
    assert_eq!(open.load(Ordering::SeqCst), 0, "every body closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_registry_fails_only_its_blob_and_keeps_none_of_its_bytes() {
    let mut f = fake(AuthMode::Basic);
    let descs = many_blobs(&mut f, 4);
    // a blob the registry serves with other content
    let lie = descs[2].digest.to_string();
    f.blobs
        .insert(lie.clone(), vec![0u8; descs[2].size as usize]);
    let s = server(f);
    let repo = repo(&s);
    let dir = tempfile::tempdir().unwrap();
    let results = fetch_all(&repo, &descs, dir.path(), 2, None).await;
    for (i, (d, r)) in descs.iter().zip(results).enumerate() {
        let p = dir.path().join(format!("{}.partial", d.digest.hex()));
        if i == 2 {
            let e = r.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
            assert_eq!(
                std::fs::metadata(&p).unwrap().len(),
                0,
                "liar's bytes dropped"
            );
        } else {
            r.unwrap();
            assert_eq!(Digest::sha256_of(&std::fs::read(&p).unwrap()), d.digest);
        }
    }
}
