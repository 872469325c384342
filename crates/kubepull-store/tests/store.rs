//! The store against the real filesystem: blobs, locks across threads and processes, records,
//! garbage collection.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use kubepull_core::reference::Digest;
use kubepull_store::{Error, ImageRecord, PullRecord, Store, MAX_PULL_RECORDS};

const ROLE: &str = "KUBEPULL_STORE_TEST_ROLE";
const ROOT: &str = "KUBEPULL_STORE_TEST_ROOT";

fn content(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Kills the child on drop so a failing assertion never leaks a process.
struct Kid(Child);
impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_role(role: &str, root: &Path, test: &str) -> Kid {
    Kid(Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ROOT, root)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap())
}

/// The child roles; the test harness runs them when the parent re-executes this binary.
fn child_role() -> bool {
    let Ok(role) = std::env::var(ROLE) else {
        return false;
    };
    let store = Store::open(Path::new(&std::env::var(ROOT).unwrap())).unwrap();
    let data = content(1 << 20, 7);
    let d = Digest::sha256_of(&data);
    let mut out = std::io::stdout();
    match role.as_str() {
        "hold" => {
            // take the lock, write half the blob, then wait to be killed
            let _l = store.lock_blob(&d).unwrap();
            std::fs::write(store.ingest_path(&d), &data[..data.len() / 2]).unwrap();
            writeln!(out, "\n@@locked@@").unwrap();
            out.flush().unwrap();
            loop {
                std::thread::park();
            }
        }
        "ingest" => {
            let wrote = ingest(&store, &d, &data, &AtomicUsize::new(0));
            writeln!(out, "\n@@{}@@", if wrote { "wrote" } else { "reused" }).unwrap();
            out.flush().unwrap();
        }
        other => panic!("unknown role {other}"),
    }
    true
}

/// The single-flight download pattern: returns whether this caller wrote the blob.
fn ingest(store: &Store, d: &Digest, data: &[u8], writes: &AtomicUsize) -> bool {
    if store.has_blob(d) {
        return false;
    }
    let lock = store.lock_blob(d).unwrap();
    if store.has_blob(d) {
        return false;
    }
    writes.fetch_add(1, Ordering::SeqCst);
    let p = store.ingest_path(d);
    let mut f = std::fs::File::create(&p).unwrap();
    for chunk in data.chunks(4096) {
        f.write_all(chunk).unwrap();
    }
    drop(f);
    store.commit_blob(&lock, &p, d, true).unwrap();
    true
}

#[test]
fn cross_process_children() {
    // entry point of the child roles (a no-op in a normal run)
    let _ = child_role();
}

#[test]
fn blob_roundtrip_and_verification() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let data = content(5000, 1);
    let d = Digest::sha256_of(&data);
    assert!(!s.has_blob(&d));
    assert!(matches!(
        s.read_blob(&d, 1 << 20),
        Err(Error::BlobNotFound(_))
    ));
    s.put_blob_bytes(&d, &data).unwrap();
    assert!(s.has_blob(&d));
    assert_eq!(s.read_blob(&d, 5000).unwrap(), data);
    assert!(matches!(
        s.read_blob(&d, 4999),
        Err(Error::TooLarge {
            size: 5000,
            limit: 4999,
            ..
        })
    ));
    // wrong content for a digest is refused and nothing is stored
    let other = Digest::sha256_of(b"other");
    assert!(matches!(
        s.put_blob_bytes(&other, &data),
        Err(Error::DigestMismatch { .. })
    ));
    assert!(!s.has_blob(&other));
    // a blob corrupted on disk is detected on read
    std::fs::write(s.blob_path(&d), b"tampered").unwrap();
    assert!(matches!(
        s.read_blob(&d, 1 << 20),
        Err(Error::DigestMismatch { .. })
    ));
    assert_eq!(s.blob_path(&d), t.path().join("blobs/sha256").join(d.hex()));
    assert_eq!(s.disk_usage().unwrap(), 8);
}

#[test]
fn commit_rejects_mismatch_and_wrong_lock() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let d = Digest::sha256_of(b"right");
    let lock = s.lock_blob(&d).unwrap();
    let p = s.ingest_path(&d);
    std::fs::write(&p, b"wrong").unwrap();
    let e = s.commit_blob(&lock, &p, &d, true).unwrap_err();
    assert!(matches!(e, Error::DigestMismatch { .. }), "{e}");
    assert!(!p.exists(), "a mismatching download is discarded");
    assert!(files_in(&t.path().join("blobs/sha256")).is_empty());
    let d2 = Digest::sha256_of(b"else");
    std::fs::write(&p, b"right").unwrap();
    let e = s.commit_blob(&lock, &p, &d2, false).unwrap_err();
    assert!(matches!(e, Error::WrongLock { .. }), "{e}");
    s.commit_blob(&lock, &p, &d, true).unwrap();
    assert_eq!(s.read_blob(&d, 10).unwrap(), b"right");
}

#[test]
fn threads_single_flight() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let data = Arc::new(content(3 << 20, 3));
    let d = Digest::sha256_of(&data);
    let writes = Arc::new(AtomicUsize::new(0));
    let n = 8;
    let barrier = Arc::new(Barrier::new(n));
    let hs: Vec<_> = (0..n)
        .map(|_| {
            let (s, d, data, writes, barrier) = (
                s.clone(),
                d.clone(),
                data.clone(),
                writes.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                ingest(&s, &d, &data, &writes);
                assert!(s.has_blob(&d));
                s.read_blob(&d, 4 << 20).unwrap() == *data
            })
        })
        .collect();
    for h in hs {
        assert!(h.join().unwrap(), "every thread reads the blob back");
    }
    assert_eq!(writes.load(Ordering::SeqCst), 1, "exactly one writer");
    assert!(files_in(&t.path().join("ingest")).is_empty());
}

#[test]
fn processes_single_flight() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let kids: Vec<Kid> = (0..4)
        .map(|_| spawn_role("ingest", t.path(), "cross_process_children"))
        .collect();
    let mut outcomes = Vec::new();
    for mut k in kids {
        let mut out = String::new();
        std::io::Read::read_to_string(k.0.stdout.as_mut().unwrap(), &mut out).unwrap();
        assert!(k.0.wait().unwrap().success());
        outcomes.push(if out.contains("@@wrote@@") {
            "wrote"
        } else if out.contains("@@reused@@") {
            "reused"
        } else {
            "none"
        });
    }
    assert_eq!(
        outcomes.iter().filter(|o| **o == "wrote").count(),
        1,
        "{outcomes:?}"
    );
    assert_eq!(
        outcomes.iter().filter(|o| **o == "reused").count(),
        3,
        "{outcomes:?}"
    );
    let data = content(1 << 20, 7);
    assert_eq!(
        s.read_blob(&Digest::sha256_of(&data), 2 << 20).unwrap(),
        data
    );
}

#[test]
fn kill_9_releases_the_lock_and_leaves_no_blob() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let data = content(1 << 20, 7);
    let d = Digest::sha256_of(&data);
    let mut kid = spawn_role("hold", t.path(), "cross_process_children");
    let mut rd = BufReader::new(kid.0.stdout.take().unwrap());
    let mut line = String::new();
    // the test harness prints its own lines before the role's output
    while !line.contains("@@locked@@") {
        line.clear();
        let n = rd.read_line(&mut line).unwrap();
        assert!(n > 0, "child exited before taking the lock");
    }
    // another process holds it: exclusion across processes
    assert!(s.try_lock_blob(&d).unwrap().is_none());
    // gc neither takes the lock nor removes the partial download
    let r = s.gc().unwrap();
    assert_eq!(r.partials_removed, 0);
    assert!(s.ingest_path(&d).exists());
    kid.0.kill().unwrap(); // SIGKILL
    kid.0.wait().unwrap();
    let lock = s
        .try_lock_blob(&d)
        .unwrap()
        .expect("the kernel released the dead holder's lock");
    assert!(!s.has_blob(&d));
    assert!(
        files_in(&t.path().join("blobs/sha256")).is_empty(),
        "no partial blob under blobs/"
    );
    // the next writer resumes from the partial length
    let p = s.ingest_path(&d);
    let have = std::fs::metadata(&p).unwrap().len() as usize;
    assert_eq!(have, data.len() / 2);
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(&data[have..]).unwrap();
    drop(f);
    s.commit_blob(&lock, &p, &d, true).unwrap();
    assert_eq!(s.read_blob(&d, 2 << 20).unwrap(), data);
}

fn record(s: &Store, name: &str, blobs: &[&[u8]]) -> ImageRecord {
    let ds: Vec<Digest> = blobs
        .iter()
        .map(|b| {
            let d = Digest::sha256_of(b);
            s.put_blob_bytes(&d, b).unwrap();
            d
        })
        .collect();
    ImageRecord::new(
        name.to_string(),
        ds[0].clone(),
        ds[1].clone(),
        ds[2].clone(),
        ds[3..]
            .iter()
            .map(|d| {
                (
                    d.clone(),
                    "application/vnd.oci.image.layer.v1.tar".to_string(),
                    3,
                )
            })
            .collect(),
        "linux/amd64".into(),
        42,
    )
    .with_times(100, 200)
}

#[test]
fn gc_keeps_referenced_and_locked_blobs_and_records_survive_reopen() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let a = record(
        &s,
        "docker.io/library/a:1",
        &[b"idx", b"man-a", b"cfg-a", b"shared", b"la"],
    );
    let b = record(
        &s,
        "docker.io/library/b:1",
        &[b"man-b", b"man-b", b"cfg-b", b"shared"],
    );
    s.put_image(&a).unwrap();
    s.put_image(&b).unwrap();
    s.put_blob_bytes(&Digest::sha256_of(b"garbage"), b"garbage")
        .unwrap();
    let locked = Digest::sha256_of(b"in-use");
    s.put_blob_bytes(&locked, b"in-use").unwrap();
    let orphan = Digest::sha256_of(b"orphan partial");
    std::fs::write(s.ingest_path(&orphan), b"orph").unwrap();
    let busy = Digest::sha256_of(b"busy partial");
    std::fs::write(s.ingest_path(&busy), b"busy").unwrap();
    let _l1 = s.lock_blob(&locked).unwrap();
    let _l2 = s.lock_blob(&busy).unwrap();
    let r = s.gc().unwrap();
    assert_eq!(r.blobs_removed, 1);
    assert_eq!(r.skipped_locked, 1);
    assert_eq!(r.partials_removed, 1);
    assert_eq!(r.bytes_freed, 7 + 4);
    assert!(!s.has_blob(&Digest::sha256_of(b"garbage")));
    assert!(s.has_blob(&locked));
    assert!(s.ingest_path(&busy).exists());
    assert!(!s.ingest_path(&orphan).exists());

    // reopen: the records are there and still keep their blobs
    let s2 = Store::open(t.path()).unwrap();
    assert_eq!(s2.images().unwrap(), vec![a.clone(), b.clone()]);
    assert_eq!(s2.image("docker.io/library/a:1").unwrap(), Some(a.clone()));
    for blob in a.blobs().chain(b.blobs()) {
        assert!(s2.has_blob(&Digest::parse(blob).unwrap()), "{blob}");
    }
    // removing a record frees only what nothing else references
    assert!(s2.remove_image("docker.io/library/a:1").unwrap());
    assert!(!s2.remove_image("docker.io/library/a:1").unwrap());
    let r = s2.gc().unwrap();
    assert_eq!(r.blobs_removed, 4, "idx, man-a, cfg-a, la: {r:?}");
    assert!(s2.has_blob(&Digest::sha256_of(b"shared")));
    for blob in b.blobs() {
        assert!(s2.has_blob(&Digest::parse(blob).unwrap()));
    }
    assert_eq!(s2.image("docker.io/library/a:1").unwrap(), None);
}

#[test]
fn gc_waits_for_pull_leases() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let d = Digest::sha256_of(b"pulled, not yet recorded");
    s.put_blob_bytes(&d, b"pulled, not yet recorded").unwrap();
    let lease = s.pull_lease().unwrap();
    let lease2 = s.pull_lease().unwrap(); // leases are shared
    let (tx, rx) = std::sync::mpsc::channel();
    let s2 = s.clone();
    let h = std::thread::spawn(move || {
        let r = s2.gc().unwrap();
        tx.send(()).unwrap();
        r
    });
    // the blob survives while the pull is in flight
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "gc ran during a pull");
    assert!(s.has_blob(&d));
    drop(lease);
    drop(lease2);
    assert_eq!(h.join().unwrap().blobs_removed, 1);
    assert!(!s.has_blob(&d));
}

#[test]
fn image_names_cannot_escape_and_times_are_kept() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path().join("root").as_path()).unwrap();
    for name in [
        "../../evil",
        "/etc/passwd",
        "a/b@sha256:00",
        "docker.io/library/busybox:1.36",
    ] {
        let mut r = record(&s, name, &[b"1", b"2", b"3"]);
        r.created_at = 0;
        s.put_image(&r).unwrap();
        assert_eq!(s.image(name).unwrap().unwrap().name, name);
    }
    assert_eq!(files_in(t.path()), vec!["root"]);
    assert_eq!(files_in(&t.path().join("root/images")).len(), 4);
    for f in files_in(&t.path().join("root/images")) {
        assert!(f.len() == 64 + 5 && f.ends_with(".json"), "{f}");
    }
    // a replaced record keeps its creation time unless given one
    let r = record(&s, "x", &[b"1", b"2", b"3"]).with_times(10, 20);
    s.put_image(&r).unwrap();
    s.put_image(&r.clone().with_times(0, 30)).unwrap();
    let got = s.image("x").unwrap().unwrap();
    assert_eq!((got.created_at, got.pulled_at), (10, 30));
}

#[test]
fn pull_records() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let m = Digest::sha256_of(b"manifest");
    assert!(s.pull_records(&m).unwrap().is_empty());
    assert!(!s.pulled_anonymously(&m).unwrap());
    let rec = |src: &str, hash: Option<&str>, at| PullRecord {
        credential_hash: hash.map(String::from),
        source: src.into(),
        pulled_at: at,
    };
    s.record_pull(&m, &rec("secret/ns/a", Some("h1"), 1))
        .unwrap();
    s.record_pull(&m, &rec("secret/ns/a", Some("h1"), 5))
        .unwrap();
    s.record_pull(&m, &rec("node", Some("h2"), 6)).unwrap();
    let got = s.pull_records(&m).unwrap();
    assert_eq!(
        got,
        vec![
            rec("secret/ns/a", Some("h1"), 5),
            rec("node", Some("h2"), 6)
        ]
    );
    assert!(!s.pulled_anonymously(&m).unwrap());
    s.record_pull(&m, &rec("anonymous", None, 7)).unwrap();
    assert!(Store::open(t.path())
        .unwrap()
        .pulled_anonymously(&m)
        .unwrap());
    for i in 0..(MAX_PULL_RECORDS as u64 + 10) {
        s.record_pull(&m, &rec(&format!("secret/ns/{i}"), Some("h"), i))
            .unwrap();
    }
    let got = s.pull_records(&m).unwrap();
    assert_eq!(got.len(), MAX_PULL_RECORDS);
    assert_eq!(
        got.last().unwrap().source,
        format!("secret/ns/{}", MAX_PULL_RECORDS + 9)
    );
    // other manifests are separate
    assert!(s
        .pull_records(&Digest::sha256_of(b"other"))
        .unwrap()
        .is_empty());
}

#[test]
fn corrupt_records_are_typed_errors_without_content() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let m = Digest::sha256_of(b"manifest");
    std::fs::write(
        t.path().join("pulls").join(format!("{}.json", m.hex())),
        br#"{"records": [{"source": "s3cr3t-value", "pulledAt": "s3cr3t-value"}]}"#,
    )
    .unwrap();
    let e = s.pull_records(&m).unwrap_err();
    assert!(matches!(e, Error::CorruptRecord { .. }), "{e}");
    assert!(!e.to_string().contains("s3cr3t"), "{e}");
    assert!(!format!("{e:?}").contains("s3cr3t"), "{e:?}");
}

#[test]
fn open_removes_temp_files_of_dead_writers() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let ingest = t.path().join("ingest");
    let me = std::process::id();
    // names made before owner tokens: pid 0x7fffffff never exists (pid_max is at most 2^22),
    // and this process makes no such name, so one with its PID is an earlier process's
    let dead = ingest.join("2147483647.0.tmp");
    let dead_same_pid = ingest.join(format!("{me}.99.tmp"));
    // an earlier incarnation with this process's PID (a node agent restarted as PID 1):
    // its sequence numbers start at 0 again, as this process's do
    let earlier = ingest.join(format!("{me}.00000000deadbeef.0.tmp"));
    // another process that is running: it holds its owner lock
    let other_lock = t
        .path()
        .join("locks/owners/2147483646.0123456789abcdef.lock");
    let held = std::fs::File::create(&other_lock).unwrap();
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
    let other = ingest.join("2147483646.0123456789abcdef.0.tmp");
    // this process's own, in use
    let live = s.private_ingest_path().unwrap();
    assert!(
        live.starts_with(&ingest) && live.exists(),
        "{}",
        live.display()
    );
    assert_ne!(live, earlier);
    let partial = s.ingest_path(&Digest::sha256_of(b"resume me"));
    for p in [&dead, &dead_same_pid, &earlier, &other, &partial] {
        std::fs::write(p, b"x").unwrap();
    }
    Store::open(t.path()).unwrap();
    assert!(!dead.exists() && !dead_same_pid.exists());
    assert!(
        !earlier.exists(),
        "a file of an earlier process with this PID is kept"
    );
    let owners = t.path().join("locks/owners");
    assert!(
        !owners.join(format!("{me}.00000000deadbeef.lock")).exists(),
        "its owner lock is left"
    );
    // and this process's own lock stays while a store of it is open
    let mine: Vec<_> = std::fs::read_dir(&owners)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{me}.")))
        .collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert!(live.exists(), "this process's own file is removed");
    assert!(other.exists(), "a running process's file is removed");
    assert!(partial.exists(), "partial downloads are kept for resuming");
    // that process gone: its file and its lock go at the next open
    drop(held);
    Store::open(t.path()).unwrap();
    assert!(!other.exists());
    assert!(!other_lock.exists());
    assert!(live.exists());
    // a new file of this process's own is never an existing name
    let next = s.private_ingest_path().unwrap();
    assert_ne!(next, live);
    assert_eq!(std::fs::metadata(&next).unwrap().len(), 0);
}

/// A snapshot build directory an earlier process with this PID left (its sequence numbers are
/// this process's too) is removed by `gc`.
#[test]
fn gc_removes_build_directories_of_an_earlier_process_with_this_pid() {
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let me = std::process::id();
    let snaps = t.path().join("snapshots");
    let earlier = snaps.join(format!("tmp-{me}.00000000deadbeef.0"));
    std::fs::create_dir_all(earlier.join("fs")).unwrap();
    s.gc().unwrap();
    assert!(!earlier.exists());
}

#[test]
fn store_is_clone_send_sync() {
    fn check<T: Clone + Send + Sync + 'static>() {}
    check::<Store>();
    let t = tempfile::tempdir().unwrap();
    let s = Store::open(t.path()).unwrap();
    let s2 = s.clone();
    assert_eq!(s2.root(), t.path());
    let d = Digest::sha256_of(b"sized");
    assert_eq!(s.blob_size(&d), None);
    s.put_blob_bytes(&d, b"sized").unwrap();
    assert_eq!(s2.blob_size(&d), Some(5));
    assert_eq!(s2.disk_usage().unwrap(), 5);
    assert_eq!(s.gc().unwrap().bytes_freed, 5);
    assert_eq!(s.disk_usage().unwrap(), 0);
}

/// Blob sources: deduplicated, kept with the blob, removed with it by gc; a corrupt pull
/// records file is replaced by the next record; the store root is 0700.
#[test]
fn blob_sources_corrupt_records_and_private_root() {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    let s = Store::open(&root).unwrap();
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let data = content(1000, 7);
    let d = Digest::sha256_of(&data);
    s.put_blob_bytes(&d, &data).unwrap();
    assert!(s.blob_sources(&d).unwrap().is_empty());
    s.add_blob_source(&d, "reg.example:5000/team/app").unwrap();
    s.add_blob_source(&d, "reg.example:5000/team/app").unwrap();
    s.add_blob_source(&d, "reg.example:5000/other/app").unwrap();
    assert_eq!(
        s.blob_sources(&d).unwrap(),
        ["reg.example:5000/team/app", "reg.example:5000/other/app"]
    );
    assert!(s.add_blob_source(&d, "two\nlines").is_err());
    assert!(s.add_blob_source(&d, "").is_err());
    // the list is not fsynced: what a crash may leave (an empty or zeroed file) grants no
    // repository the blob, and the next fetch from a repository is noted again
    let list = root.join("sources").join(d.hex());
    for left in [&b""[..], &[0u8; 64][..]] {
        std::fs::write(&list, left).unwrap();
        let names = s.blob_sources(&d).unwrap();
        assert!(
            !names.iter().any(|n| n == "reg.example:5000/team/app"),
            "{names:?}"
        );
        s.add_blob_source(&d, "reg.example:5000/team/app").unwrap();
        assert!(s
            .blob_sources(&d)
            .unwrap()
            .contains(&"reg.example:5000/team/app".to_string()));
    }
    // a list cut short in its last name (`other/app-private` written, `other/app` left)
    // does not grant the name it now spells; the whole names before it still count
    std::fs::write(
        &list,
        b"reg.example:5000/team/app\nreg.example:5000/other/app",
    )
    .unwrap();
    assert_eq!(s.blob_sources(&d).unwrap(), ["reg.example:5000/team/app"]);
    // unreferenced: gc removes the blob and its sources
    let r = s.gc().unwrap();
    assert_eq!(r.blobs_removed, 1);
    assert!(s.blob_sources(&d).unwrap().is_empty());
    assert!(files_in(&root.join("sources")).is_empty());

    let m = Digest::sha256_of(b"manifest");
    std::fs::write(
        root.join("pulls").join(format!("{}.json", m.hex())),
        b"{not json",
    )
    .unwrap();
    assert!(s.pull_records(&m).is_err());
    let rec = PullRecord {
        credential_hash: Some("h".into()),
        source: "secret/ns/a".into(),
        pulled_at: 1,
    };
    s.record_pull(&m, &rec).unwrap();
    assert_eq!(s.pull_records(&m).unwrap(), vec![rec]);
}

/// A download left in ingest/ by pulls that do not keep the blob is removed by the last of
/// them to let go of it, never while another holds it, and never once committed.
#[test]
fn a_held_partial_is_removed_by_its_last_holder() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path()).unwrap();
    let data = content(1000, 3);
    let d = Digest::sha256_of(&data);
    std::fs::write(store.ingest_path(&d), &data).unwrap();
    let (a, b) = (
        store.hold_partial(&d).unwrap(),
        store.hold_partial(&d).unwrap(),
    );
    assert!(!store.discard_partial(a).unwrap(), "b still holds it");
    assert!(store.ingest_path(&d).exists());
    assert!(store.discard_partial(b).unwrap());
    assert!(!store.ingest_path(&d).exists());

    // committed by an ordinary pull meanwhile: the blob stays
    std::fs::write(store.ingest_path(&d), &data).unwrap();
    let held = store.hold_partial(&d).unwrap();
    let lock = store.lock_blob(&d).unwrap();
    store
        .commit_blob(&lock, &store.ingest_path(&d), &d, true)
        .unwrap();
    drop(lock);
    assert!(!store.discard_partial(held).unwrap());
    assert!(store.has_blob(&d));
}

/// `gc` with an image whose layers were discarded: nothing missing, nothing removed but the
/// source lists of blobs neither stored nor named by an image; a discarded layer's blob that
/// is in the store for no image goes.
#[test]
fn gc_with_discarded_layers() {
    let t = tempfile::tempdir().unwrap();
    let store = Store::open(t.path()).unwrap();
    let (config, layer, stray) = (content(10, 1), content(20, 2), content(30, 3));
    let (cd, ld, sd) = (
        Digest::sha256_of(&config),
        Digest::sha256_of(&layer),
        Digest::sha256_of(&stray),
    );
    store.put_blob_bytes(&cd, &config).unwrap();
    let mut rec = ImageRecord::new(
        "reg.example/app:v1".into(),
        cd.clone(),
        cd.clone(),
        cd.clone(),
        vec![(
            ld.clone(),
            "application/vnd.oci.image.layer.v1.tar".into(),
            20,
        )],
        "linux/amd64".into(),
        30,
    );
    rec.layers[0].discarded = true;
    store.put_image(&rec).unwrap();
    store.add_blob_source(&ld, "reg.example/app").unwrap();
    store.add_blob_source(&sd, "reg.example/app").unwrap();
    let g = store.gc().unwrap();
    assert_eq!(g, kubepull_store::GcReport::default());
    assert_eq!(store.blob_sources(&ld).unwrap(), vec!["reg.example/app"]);
    assert!(
        store.blob_sources(&sd).unwrap().is_empty(),
        "a stray source list goes"
    );
    assert!(store.has_blob(&cd));
    assert_eq!(store.image("reg.example/app:v1").unwrap().unwrap(), rec);

    // the layer's blob in the store (an ordinary pull of another image, removed since) is not
    // this image's to keep
    store.put_blob_bytes(&ld, &layer).unwrap();
    assert_eq!(store.gc().unwrap().blobs_removed, 1);
    assert!(!store.has_blob(&ld));
    // and the source list the discarded layer relies on stays
    assert_eq!(store.blob_sources(&ld).unwrap(), vec!["reg.example/app"]);

    // the hold files of pulls that died go; one held stays
    let hold_file = |d: &Digest| {
        t.path()
            .join("locks/sha256")
            .join(format!("{}.unpack.lock", d.hex()))
    };
    drop(store.hold_partial(&ld).unwrap());
    let held = store.hold_partial(&sd).unwrap();
    assert!(hold_file(&ld).exists() && hold_file(&sd).exists());
    store.gc().unwrap();
    assert!(!hold_file(&ld).exists(), "a stale hold file stays");
    assert!(hold_file(&sd).exists(), "a held one goes");
    drop(held);
}
