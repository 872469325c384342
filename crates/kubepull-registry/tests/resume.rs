//! Resuming a blob download from a partial file left by an interrupted pull
//! (`Repository::fetch_blob_resumable`), against the scripted registry: `Range` for the rest,
//! a full download when the registry ignores ranges or the partial is corrupt.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use http::Method;
use kubepull_core::reference::Digest;
use kubepull_registry::transport::{Request, Response};
use kubepull_registry::{ConfirmingHost, Descriptor, ErrorKind, ResumableFetch};

fn big_blob(f: &mut Fake) -> (Descriptor, Vec<u8>) {
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    f.blobs
        .insert(Digest::sha256_of(&data).to_string(), data.clone());
    let d = serde_json::from_str(&descriptor_json(
        "application/vnd.oci.image.layer.v1.tar",
        &data,
    ))
    .unwrap();
    (d, data)
}

/// The partial file's name in a test's temp dir.
const PARTIAL: &str = "blob.partial";

/// The scripted registry (Basic auth) serving the big blob; its descriptor and bytes.
fn serving_big_blob() -> (Arc<Server>, Descriptor, Vec<u8>) {
    let mut f = fake(AuthMode::Basic);
    let (desc, data) = big_blob(&mut f);
    (server(f), desc, data)
}

/// Answers the authorised `GET`s of blob `desc` with `answer` (everything else as scripted).
fn answer_blob_gets(
    s: &Server,
    desc: &Descriptor,
    answer: impl Fn(&Request) -> Response + Send + Sync + 'static,
) {
    let path = format!("/blobs/{}", desc.digest);
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        if !req.url.path().ends_with(&path) || req.headers.get("authorization").is_none() {
            return None;
        }
        Some(answer(req))
    }));
}

/// `fetch_blob_resumable` of `desc` into `partial`, as alice.
async fn fetch(
    s: &Arc<Server>,
    desc: &Descriptor,
    partial: &Path,
) -> Result<ResumableFetch, kubepull_registry::Error> {
    repo(s).fetch_blob_resumable(desc, partial, None).await
}

/// The `Range` headers of the blob requests, in order (`None` for a plain GET).
fn blob_ranges(s: &Server, d: &Descriptor) -> Vec<Option<String>> {
    s.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.url.contains(&format!("/blobs/{}", d.digest)))
        .filter(|l| l.auth.is_some())
        .map(|l| l.range.clone())
        .collect()
}

#[tokio::test]
async fn resumes_with_range_from_a_partial() {
    let (s, desc, data) = serving_big_blob();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    std::fs::write(&partial, &data[..120_000]).unwrap();

    let progress_seen = Arc::new(std::sync::Mutex::new(vec![]));
    let p2 = progress_seen.clone();
    let progress: kubepull_registry::ProgressFn =
        Arc::new(move |_, done, total| p2.lock().unwrap().push((done, total)));
    let r = repo(&s)
        .fetch_blob_resumable(&desc, &partial, Some(&progress))
        .await
        .unwrap();
    assert_eq!(
        r,
        ResumableFetch {
            resumed_from: 120_000,
            downloaded: 180_000,
            restarted: false
        }
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(blob_ranges(&s, &desc), vec![Some("bytes=120000-".into())]);
    let seen = progress_seen.lock().unwrap();
    assert_eq!(
        seen.first(),
        Some(&(120_000, 300_000)),
        "starts at the offset"
    );
    assert_eq!(seen.last(), Some(&(300_000, 300_000)));
}

#[tokio::test]
async fn no_partial_is_a_plain_download_and_a_complete_one_is_confirmed_not_fetched_again() {
    let (s, desc, data) = serving_big_blob();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!(
        (r.resumed_from, r.downloaded, r.restarted),
        (0, 300_000, false)
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(blob_ranges(&s, &desc), vec![None]);
    // complete and correct already: verified from disk, not downloaded again, but kept only
    // once the repository confirms it serves the blob (a HEAD with its credentials)
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!((r.resumed_from, r.downloaded), (300_000, 0));
    assert_eq!(blob_methods(&s, &desc), vec![Method::GET, Method::HEAD]);
    // a repository that does not serve it: the file (another repository's bytes) is not
    // taken; it is emptied and the blob asked for in full, which this repository refuses too
    answer_blob_gets(&s, &desc, |_| {
        resp(404, &[], r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
    });
    let e = fetch(&s, &desc, &partial).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(
        blob_methods(&s, &desc),
        vec![Method::GET, Method::HEAD, Method::HEAD, Method::GET]
    );
    assert_ne!(std::fs::read(&partial).unwrap(), data);
}

#[tokio::test]
async fn a_complete_partial_the_registry_does_not_confirm_is_downloaded_again() {
    let (s, desc, data) = serving_big_blob();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    std::fs::write(&partial, &data).unwrap();
    // HEAD not allowed (405): not confirmed, so the blob is fetched and verified as usual
    let path = format!("/blobs/{}", desc.digest);
    *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
        (req.url.path().ends_with(&path)
            && req.method == Method::HEAD
            && req.headers.get("authorization").is_some())
        .then(|| resp(405, &[], r#"{"errors":[{"code":"UNSUPPORTED"}]}"#))
    }));
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!(
        (r.resumed_from, r.downloaded, r.restarted),
        (0, 300_000, true)
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(blob_methods(&s, &desc), vec![Method::HEAD, Method::GET]);
    // a caller that knows the blob is this repository's skips the HEAD
    let r = repo(&s)
        .fetch_blob_resumable_trusting(&desc, &partial, None, true, ConfirmingHost::Resolving)
        .await
        .unwrap();
    assert_eq!((r.resumed_from, r.downloaded), (300_000, 0));
    assert_eq!(blob_methods(&s, &desc), vec![Method::HEAD, Method::GET]);
}

/// A `HEAD` confirms a complete partial only with the blob's size in `Content-Length` and, when
/// sent, its digest in `Docker-Content-Digest`; a host other than the one that resolved the
/// image must send the digest. A catch-all answering 200 to any `HEAD` (no or wrong headers,
/// which a real registry does not send) confirms nothing: the partial is emptied and the blob
/// downloaded.
#[tokio::test]
async fn a_head_confirms_a_complete_partial_only_naming_the_blobs_size_and_digest() {
    let (s, desc, data) = serving_big_blob();
    let len = data.len().to_string();
    let digest = desc.digest.to_string();
    let other = Digest::sha256_of(b"another blob").to_string();
    let head = |h: &[(&str, &str)]| -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // headers of the HEAD's 200; whether the resolving host and another host confirm with them
    let cases = [
        (
            head(&[("content-length", &len), ("docker-content-digest", &digest)]),
            true,
            true,
        ),
        (head(&[("content-length", &len)]), true, false),
        (
            head(&[("content-length", &len), ("docker-content-digest", &other)]),
            false,
            false,
        ),
        (
            head(&[("content-length", "7"), ("docker-content-digest", &digest)]),
            false,
            false,
        ),
        (head(&[("docker-content-digest", &digest)]), false, false),
        (head(&[]), false, false),
    ];
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    for (headers, resolving, other_host) in cases {
        let path = format!("/blobs/{}", desc.digest);
        let answer = headers.clone();
        *s.hook.lock().unwrap() = Some(Arc::new(move |req, _| {
            (req.url.path().ends_with(&path)
                && req.method == Method::HEAD
                && req.headers.get("authorization").is_some())
            .then(|| {
                let h: Vec<(&str, &str)> = answer
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                resp(200, &h, bytes::Bytes::new())
            })
        }));
        for (host, confirms) in [
            (ConfirmingHost::Resolving, resolving),
            (ConfirmingHost::Other, other_host),
        ] {
            let what = format!("{headers:?}, {host:?}");
            assert_eq!(
                repo(&s).blob_confirmed(&desc, host).await,
                confirms,
                "{what}"
            );
            std::fs::write(&partial, &data).unwrap();
            let gets = || {
                blob_methods(&s, &desc)
                    .iter()
                    .filter(|m| **m == Method::GET)
                    .count()
            };
            let gets_before = gets();
            let r = repo(&s)
                .fetch_blob_resumable_trusting(&desc, &partial, None, false, host)
                .await
                .unwrap();
            if confirms {
                assert_eq!((r.resumed_from, r.downloaded), (300_000, 0), "{what}");
            } else {
                // not reused: emptied and downloaded in full
                assert_eq!(
                    (r.resumed_from, r.downloaded, r.restarted),
                    (0, 300_000, true),
                    "{what}"
                );
            }
            assert_eq!(gets() > gets_before, !confirms, "{what}: blob fetched");
            assert_eq!(std::fs::read(&partial).unwrap(), data, "{what}");
        }
    }
}

#[tokio::test]
async fn a_non_distributable_descriptor_with_urls_does_not_get_a_complete_partial() {
    let (s, mut desc, data) = serving_big_blob();
    // a hostile manifest: another repository's layer, marked non-distributable, a dummy URL
    desc.media_type = "application/vnd.oci.image.layer.nondistributable.v1.tar".into();
    desc.urls = vec!["https://layers.example.invalid/x".into()];
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    std::fs::write(&partial, &data).unwrap();
    answer_blob_gets(&s, &desc, |_| {
        resp(404, &[], r#"{"errors":[{"code":"BLOB_UNKNOWN"}]}"#)
    });
    let e = fetch(&s, &desc, &partial).await;
    assert!(e.is_err(), "{e:?}");
    assert_ne!(std::fs::read(&partial).unwrap(), data);
}

/// The methods of the authorised requests for blob `d`, in order.
fn blob_methods(s: &Server, d: &Descriptor) -> Vec<Method> {
    s.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.url.contains(&format!("/blobs/{}", d.digest)))
        .filter(|l| l.auth.is_some())
        .map(|l| l.method.clone())
        .collect()
}

#[tokio::test]
async fn registry_ignoring_range_means_a_full_download() {
    let (s, desc, data) = serving_big_blob();
    // answers every blob GET with 200 and the whole body, Range or not
    let body = data.clone();
    answer_blob_gets(&s, &desc, move |_| {
        let len = body.len().to_string();
        resp(200, &[("content-length", len.as_str())], body.clone())
    });
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    // a partial whose bytes are wrong: were they kept, the result could not verify
    std::fs::write(&partial, vec![0xAAu8; 100_000]).unwrap();
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!(
        (r.resumed_from, r.downloaded, r.restarted),
        (0, 300_000, true)
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(
        blob_ranges(&s, &desc),
        vec![Some("bytes=100000-".into()), None],
        "asked for the rest, then for everything"
    );
}

#[tokio::test]
async fn corrupt_partial_falls_back_to_a_full_download() {
    let (s, desc, data) = serving_big_blob();
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    let mut bad = data[..150_000].to_vec();
    bad[777] ^= 1;
    std::fs::write(&partial, &bad).unwrap();
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!(
        (r.resumed_from, r.downloaded, r.restarted),
        (0, 300_000, true)
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
    assert_eq!(
        blob_ranges(&s, &desc),
        vec![Some("bytes=150000-".into()), None]
    );

    // a partial longer than the blob, or as long but wrong, is not trusted either
    for junk in [vec![1u8; 300_001], vec![2u8; 300_000]] {
        std::fs::write(&partial, &junk).unwrap();
        let r = fetch(&s, &desc, &partial).await.unwrap();
        assert_eq!((r.resumed_from, r.downloaded), (0, 300_000));
        assert_eq!(std::fs::read(&partial).unwrap(), data);
    }
}

#[tokio::test]
async fn a_cut_transfer_keeps_the_partial_and_a_lying_registry_empties_it() {
    let (s, desc, data) = serving_big_blob();
    // the body stops after 200,000 bytes, every time (resumes included)
    let body = data.clone();
    answer_blob_gets(&s, &desc, move |req| {
        let start: usize = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.strip_suffix('-'))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let end = 200_000.max(start);
        let part = body[start..end].to_vec();
        if start > 0 {
            let cr = format!("bytes {start}-{}/{}", body.len() - 1, body.len());
            return resp(206, &[("content-range", cr.as_str())], part);
        }
        resp(200, &[], part)
    });
    let dir = tempfile::tempdir().unwrap();
    let partial = dir.path().join(PARTIAL);
    let e = fetch(&s, &desc, &partial).await.unwrap_err();
    assert!(
        e.to_string().contains("300000") && e.to_string().contains("200000"),
        "a short blob: {e}"
    );
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        data[..200_000].to_vec(),
        "a short transfer keeps what arrived"
    );

    // a registry serving other content of the right size: nothing kept
    std::fs::write(&partial, b"").unwrap();
    answer_blob_gets(&s, &desc, |_| {
        resp(200, &[("content-length", "300000")], vec![9u8; 300_000])
    });
    let e = fetch(&s, &desc, &partial).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 0, "emptied");

    // a transport that fails mid-body: the bytes that arrived stay for the next attempt
    let body = data.clone();
    answer_blob_gets(&s, &desc, move |_| {
        let first = bytes::Bytes::copy_from_slice(&body[..64 * 1024]);
        let stream = futures_util::stream::iter(vec![
            Ok(first),
            Err(kubepull_registry::transport::TransportError::new(
                kubepull_registry::transport::TransportErrorKind::Connect,
                "connection reset",
            )),
        ]);
        let mut h = http::HeaderMap::new();
        h.insert("content-length", body.len().to_string().parse().unwrap());
        kubepull_registry::transport::Response {
            status: http::StatusCode::OK,
            headers: h,
            body: Box::pin(stream),
        }
    });
    let e = fetch(&s, &desc, &partial).await.unwrap_err();
    assert_ne!(e.kind(), ErrorKind::DigestMismatch, "{e}");
    assert_eq!(
        std::fs::read(&partial).unwrap(),
        data[..64 * 1024].to_vec(),
        "what arrived is kept"
    );
    // the registry is well again: only the rest is fetched
    *s.hook.lock().unwrap() = None;
    let r = fetch(&s, &desc, &partial).await.unwrap();
    assert_eq!(
        (r.resumed_from, r.downloaded, r.restarted),
        (65_536, 300_000 - 65_536, false)
    );
    assert_eq!(std::fs::read(&partial).unwrap(), data);
}
