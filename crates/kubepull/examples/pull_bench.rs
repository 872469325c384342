//! Pull benchmark, kubepull against skopeo and curl, in one run on this machine: the real
//! registry on loopback (TLS, htpasswd), an image of a busybox layer plus `KUBEPULL_BENCH_MIB`
//! MiB (default 96) of incompressible data in 3 layers (gzip level `KUBEPULL_BENCH_GZIP_LEVEL`,
//! default 6, as docker, buildkit and umoci write layers), each tool pulling it cold into a fresh
//! directory `KUBEPULL_BENCH_RUNS` times (default 3). Prints the median wall time, throughput and
//! peak RSS (from `/usr/bin/time`). Every timed run starts after a `sync(2)` (untimed), so no
//! run pays for the writeback of the one before it. `kubepull pull` is timed three times:
//! `--no-unpack` (blobs only), as is, which leaves the root filesystem ready (layers unpacked
//! into their snapshots while downloading; needs root), and ready with
//! `--discard-unpacked-layers` (the layer blobs not kept: never synced, removed before the
//! snapshots' `syncfs`), beside
//! `ctr images pull` and skopeo, with both auth modes.
//!
//! `KUBEPULL_BENCH_PROFILE=1` first profiles one pull, one unpack and one pull that leaves the
//! root filesystem ready with `perf` (CPU time by category: TLS, SHA-256, decompression,
//! network, file writes, fsync, ...); `=only` stops there. `KUBEPULL_BENCH_BASELINE_BIN=PATH`
//! also times the two `kubepull pull` rows with another build (before/after under the same
//! load); with `KUBEPULL_BENCH_PULL_ONLY=1` it times only those four pulls, round-robin run
//! after run, and prints each build's ready-rootfs / blobs-only ratio.
//! `KUBEPULL_BENCH_CONCURRENCY_SWEEP=1,2,3,4,6` times blobs-only and ready pulls at each
//! download concurrency, round-robin run after run (`KUBEPULL_BENCH_CONCURRENCY=N` sets it for
//! the other rows; the build's default otherwise). `KUBEPULL_BENCH_TIMINGS=1` prints the phase
//! timings (`KUBEPULL_PULL_TIMINGS`) of one blobs-only and one ready pull.
//! `KUBEPULL_BENCH_SERVE=SECONDS` only serves the image that long and prints a `kubepull pull`
//! command line for it (to run under strace or perf by hand).
//!
//! Run: `cargo run --release -p kubepull --example pull_bench` (scripts/bench-pull.sh).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use kubepull_testkit::Registry;

const USER: &str = "bench";
const PASS: &str = "Bench-Pass-1";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// Writes back every dirty page on the machine (`sync(2)`), untimed, before a timed run: each
/// run then starts with the disk idle, instead of paying for the writeback the run before it
/// left (a tool that does not fsync, skopeo or curl, leaves up to the whole image dirty).
fn settle() {
    let _ = Command::new("sync").status();
}

/// Runs a command under `/usr/bin/time -f %M` after [`settle`]; returns (seconds, peak RSS
/// KiB).
fn timed(cmd: &mut Command) -> (f64, u64) {
    settle();
    let rss_file = tempfile::NamedTempFile::new().expect("temp");
    let mut t = Command::new("/usr/bin/time");
    t.arg("-f").arg("%M").arg("-o").arg(rss_file.path());
    t.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = t.output().expect("run");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{:?} failed:\n{}",
        cmd.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rss = std::fs::read_to_string(rss_file.path())
        .ok()
        .and_then(|s| s.lines().last().and_then(|l| l.trim().parse().ok()))
        .unwrap_or(0);
    (secs, rss)
}

fn main() {
    let mib: usize = std::env::var("KUBEPULL_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(96);
    let nlayers: usize = std::env::var("KUBEPULL_BENCH_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let runs: usize = std::env::var("KUBEPULL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let kp = std::env::var("KUBEPULL_BIN").unwrap_or_else(|_| "target/release/kubepull".into());
    let reg = Registry::start(&[(USER, PASS)]);
    // incompressible data, three layers
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let per = mib * (1 << 20) / nlayers;
    let datas: Vec<Vec<u8>> = (0..nlayers)
        .map(|_| {
            (0..per)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect()
        })
        .collect();
    // gzip level 6 by default, as docker/buildkit (Go's compress/gzip) and umoci (pgzip)
    // write layers: incompressible data in stored blocks
    let level: u32 = match std::env::var("KUBEPULL_BENCH_GZIP_LEVEL") {
        Err(_) => 6,
        Ok(v) => match v.parse() {
            Ok(l) if l <= 9 => l,
            _ => {
                eprintln!("KUBEPULL_BENCH_GZIP_LEVEL={v:?}: give a gzip level from 0 to 9");
                std::process::exit(2);
            }
        },
    };
    let img = kubepull_testkit::image::layered_image_at(&datas, level);
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    rt.block_on(reg.push("bench/big", "v1", &img));
    let total: usize = img.layers.iter().map(Vec::len).sum::<usize>() + img.config.len();
    let image = format!("{}/bench/big:v1", reg.host());
    let work = tempfile::tempdir().expect("temp");
    let w = work.path();
    reg.write_hosts_dir(&w.join("hosts"));
    let certs = w.join("certs");
    std::fs::create_dir_all(&certs).expect("certs");
    std::fs::copy(reg.ca_path(), certs.join("ca.crt")).expect("ca");
    let secret = w.join("secret.json");
    std::fs::write(
        &secret,
        format!(
            r#"{{"auths":{{"{}":{{"username":"{USER}","password":"{PASS}"}}}}}}"#,
            reg.host()
        ),
    )
    .expect("secret");

    // KUBEPULL_BENCH_SERVE=SECONDS: keep the registry up that long for pulls by hand (strace,
    // perf), printing the command line, then clean up
    if let Some(secs) = std::env::var("KUBEPULL_BENCH_SERVE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        println!(
            "{kp} pull {image} --policy Always --root ROOT --hosts-dir {} --pull-secret {}",
            w.join("hosts").display(),
            secret.display()
        );
        std::thread::sleep(std::time::Duration::from_secs(secs));
        return;
    }
    // KUBEPULL_BENCH_PROFILE=1: also profile a pull and an unpack; =only: nothing else
    let profile_mode = std::env::var("KUBEPULL_BENCH_PROFILE").unwrap_or_default();
    if !profile_mode.is_empty() {
        profile(&kp, &image, w, &secret);
        if profile_mode == "only" {
            return;
        }
    }
    // KUBEPULL_BENCH_TIMINGS=1: one ready pull with its phase timings (KUBEPULL_PULL_TIMINGS)
    if std::env::var_os("KUBEPULL_BENCH_TIMINGS").is_some() {
        for extra in [&["--no-unpack"][..], &[]] {
            let root = w.join("timings");
            let out = Command::new(&kp)
                .args(["pull", &image, "-q", "--policy", "Always"])
                .args(extra)
                .arg("--root")
                .arg(&root)
                .arg("--hosts-dir")
                .arg(w.join("hosts"))
                .arg("--pull-secret")
                .arg(&secret)
                .env("KUBEPULL_PULL_TIMINGS", "1")
                .output()
                .expect("run");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            println!(
                "kubepull pull {}:\n{}",
                extra.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir_all(&root);
        }
        return;
    }
    // KUBEPULL_BENCH_CONCURRENCY_SWEEP=1,2,3,4,6: blobs-only and ready pulls at each download
    // concurrency, round-robin run after run
    if let Ok(sweep) = std::env::var("KUBEPULL_BENCH_CONCURRENCY_SWEEP") {
        let levels: Vec<String> = sweep.split(',').map(|c| c.trim().to_string()).collect();
        let mut variants: Vec<(String, Vec<&str>)> = vec![];
        for c in &levels {
            variants.push((c.clone(), vec!["--no-unpack"]));
            variants.push((c.clone(), vec![]));
        }
        let mut times: Vec<Vec<f64>> = vec![vec![]; variants.len()];
        for _ in 0..runs {
            for (v, (c, extra)) in variants.iter().enumerate() {
                let mut args: Vec<&str> = vec!["--concurrency", c];
                args.extend(extra.iter().copied());
                let (t, _) = kp_pulls(&kp, &image, 1, w, &w.join("hosts"), &secret, &args);
                times[v].push(t);
            }
        }
        let med: Vec<f64> = times.into_iter().map(median).collect();
        println!("| download concurrency | blobs only (`--no-unpack`) | ready rootfs |");
        println!("| ---: | ---: | ---: |");
        for (k, c) in levels.iter().enumerate() {
            println!("| {c} | {:.3} s | {:.3} s |", med[2 * k], med[2 * k + 1]);
        }
        return;
    }
    let mut rows: Vec<(String, f64, u64)> = vec![];
    // KUBEPULL_BENCH_BASELINE_BIN: another kubepull binary (an earlier build) timed the same
    // way right before, for a before/after comparison under the same load
    if let Ok(base) = std::env::var("KUBEPULL_BENCH_BASELINE_BIN") {
        if std::env::var("KUBEPULL_BENCH_PULL_ONLY").is_ok() {
            // the four pulls round-robin, run after run, so that a change in the machine's load
            // falls on all of them alike
            let variants: [(&str, &str, &[&str]); 4] = [
                ("baseline build: pull --no-unpack", &base, &["--no-unpack"]),
                ("baseline build: pull (+ ready rootfs)", &base, &[]),
                (
                    "kubepull pull --no-unpack (blobs only)",
                    &kp,
                    &["--no-unpack"],
                ),
                ("kubepull pull (+ ready rootfs)", &kp, &[]),
            ];
            let mut times: Vec<Vec<f64>> = vec![vec![]; variants.len()];
            let mut peaks = vec![0u64; variants.len()];
            for _ in 0..runs {
                for (v, (_, bin, extra)) in variants.iter().enumerate() {
                    let (t, rss) = kp_pulls(bin, &image, 1, w, &w.join("hosts"), &secret, extra);
                    times[v].push(t);
                    peaks[v] = peaks[v].max(rss);
                }
            }
            let med: Vec<f64> = times.into_iter().map(median).collect();
            println!("| pull, runs interleaved (median of {runs}) | seconds | peak RSS |");
            println!("| --- | ---: | ---: |");
            for (v, (name, _, _)) in variants.iter().enumerate() {
                println!(
                    "| {name} | {:.3} s | {:.1} MiB |",
                    med[v],
                    peaks[v] as f64 / 1024.0
                );
            }
            println!(
                "\nready rootfs / blobs only: baseline build {:.2}x, this build {:.2}x; this build's ready pull is {:.2}x the baseline's",
                med[1] / med[0],
                med[3] / med[2],
                med[3] / med[1]
            );
            return;
        }
        let (t, rss) = kp_pulls(
            &base,
            &image,
            runs,
            w,
            &w.join("hosts"),
            &secret,
            &["--no-unpack"],
        );
        rows.push(("baseline build: pull --no-unpack".into(), t, rss));
        let (t, rss) = kp_pulls(&base, &image, runs, w, &w.join("hosts"), &secret, &[]);
        rows.push(("baseline build: pull (+ ready rootfs)".into(), t, rss));
    }
    let (t, rss) = kp_pulls(
        &kp,
        &image,
        runs,
        w,
        &w.join("hosts"),
        &secret,
        &["--no-unpack"],
    );
    rows.push(("kubepull pull --no-unpack (blobs only)".into(), t, rss));
    let (t, rss) = kp_pulls(&kp, &image, runs, w, &w.join("hosts"), &secret, &[]);
    rows.push((
        "kubepull pull (+ ready rootfs: unpacked while downloading)".into(),
        t,
        rss,
    ));
    let (t, rss) = kp_pulls(
        &kp,
        &image,
        runs,
        w,
        &w.join("hosts"),
        &secret,
        &["--discard-unpacked-layers"],
    );
    rows.push((
        "kubepull pull, ready, discard unpacked layers".into(),
        t,
        rss,
    ));
    let resume = resume_after_kill(&reg, &kp, &image, w, &secret, total as u64);
    if Path::new("/usr/bin/skopeo").exists() {
        let mut ts = vec![];
        let mut peak = 0;
        for i in 0..runs {
            let dest = w.join(format!("sk{i}"));
            let (t, rss) = timed(
                Command::new("skopeo")
                    .args(["copy", "-q", "--src-creds", &format!("{USER}:{PASS}")])
                    .arg("--src-cert-dir")
                    .arg(&certs)
                    .arg(format!("docker://{image}"))
                    .arg(format!("oci:{}:v1", dest.display())),
            );
            ts.push(t);
            peak = peak.max(rss);
            let _ = std::fs::remove_dir_all(&dest);
        }
        rows.push(("skopeo copy (to oci layout)".into(), median(ts), peak));
    }
    // kubepull pull + unpack, against `ctr images pull` (which also unpacks)
    {
        let mut ts = vec![];
        let mut peak = 0;
        for i in 0..runs {
            let root = w.join(format!("kpu{i}"));
            let (t_pull, rss) = timed(
                Command::new(&kp)
                    .args(["pull", &image, "-q", "--policy", "Always", "--no-unpack"])
                    .arg("--root")
                    .arg(&root)
                    .arg("--hosts-dir")
                    .arg(w.join("hosts"))
                    .arg("--pull-secret")
                    .arg(&secret),
            );
            let (t_unpack, rss2) = timed(
                Command::new(&kp)
                    .args(["unpack", &image])
                    .arg(w.join(format!("rootfs{i}")))
                    .arg("--root")
                    .arg(&root),
            );
            ts.push(t_pull + t_unpack);
            peak = peak.max(rss).max(rss2);
            let _ = std::fs::remove_dir_all(&root);
            let _ = std::fs::remove_dir_all(w.join(format!("rootfs{i}")));
        }
        rows.push((
            "kubepull pull --no-unpack, then kubepull unpack".into(),
            median(ts),
            peak,
        ));
    }
    if Path::new("/usr/bin/containerd").exists() && Path::new("/usr/bin/ctr").exists() {
        for (label, sub) in [
            ("ctr content fetch", "content"),
            ("ctr images pull (+ unpack)", "images"),
        ] {
            let mut ts = vec![];
            for i in 0..runs {
                let d = w.join(format!("ctrd-{sub}-{i}"));
                std::fs::create_dir_all(&d).expect("containerd dir");
                let sock = d.join("c.sock");
                std::fs::write(
                    d.join("config.toml"),
                    format!(
                        "version = 2\nroot = \"{}\"\nstate = \"{}\"\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{}\"\n[ttrpc]\n  address = \"{}\"\n",
                        d.join("root").display(),
                        d.join("state").display(),
                        sock.display(),
                        d.join("t.sock").display()
                    ),
                )
                .expect("config");
                let mut ctrd = Command::new("containerd")
                    .arg("--config")
                    .arg(d.join("config.toml"))
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("containerd");
                let deadline = Instant::now() + std::time::Duration::from_secs(10);
                while Command::new("ctr")
                    .arg("-a")
                    .arg(&sock)
                    .arg("version")
                    .output()
                    .map(|o| !o.status.success())
                    .unwrap_or(true)
                {
                    assert!(Instant::now() < deadline, "containerd did not start");
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                let mut c = Command::new("ctr");
                c.arg("-a").arg(&sock).arg(sub);
                if sub == "content" {
                    c.arg("fetch");
                } else {
                    c.arg("pull");
                }
                c.arg("--hosts-dir")
                    .arg(w.join("hosts"))
                    .args(["-u", &format!("{USER}:{PASS}")])
                    .arg(&image);
                let (t, _) = timed(&mut c);
                ts.push(t);
                let _ = ctrd.kill();
                let _ = ctrd.wait();
                let _ = Command::new("umount")
                    .arg("-R")
                    .arg(d.join("root"))
                    .status();
                let _ = std::fs::remove_dir_all(&d);
            }
            rows.push((label.into(), median(ts), 0));
        }
    }
    if Path::new("/usr/bin/curl").exists() {
        // the transfer floor: the blobs, sequentially, with no verification or storage
        let mut ts = vec![];
        let mut peak = 0;
        for _ in 0..runs {
            let mut total_t = 0.0;
            for b in std::iter::once(&img.config).chain(img.layers.iter()) {
                let d = kubepull_core::reference::Digest::sha256_of(b);
                let (t, rss) = timed(
                    Command::new("curl")
                        .args(["-sSf", "-o", "/dev/null", "-u", &format!("{USER}:{PASS}")])
                        .arg("--cacert")
                        .arg(reg.ca_path())
                        .arg(format!("https://{}/v2/bench/big/blobs/{d}", reg.host())),
                );
                total_t += t;
                peak = peak.max(rss);
            }
            ts.push(total_t);
        }
        rows.push(("curl, blobs one after another".into(), median(ts), peak));
        // the parallel floor: every blob at once
        let mut ts = vec![];
        for _ in 0..runs {
            settle();
            let t0 = Instant::now();
            let children: Vec<_> = std::iter::once(&img.config)
                .chain(img.layers.iter())
                .map(|b| {
                    let d = kubepull_core::reference::Digest::sha256_of(b);
                    Command::new("curl")
                        .args(["-sSf", "-o", "/dev/null", "-u", &format!("{USER}:{PASS}")])
                        .arg("--cacert")
                        .arg(reg.ca_path())
                        .arg(format!("https://{}/v2/bench/big/blobs/{d}", reg.host()))
                        .spawn()
                        .expect("curl")
                })
                .collect();
            for mut c in children {
                assert!(c.wait().expect("curl").success());
            }
            ts.push(t0.elapsed().as_secs_f64());
        }
        rows.push(("parallel curl, blobs only (floor)".into(), median(ts), 0));
    }
    // the same image behind distribution's token auth (an RS256 token issuer on loopback)
    let token_rows = rt.block_on(token_auth_rows(&img, &kp, runs, w));
    let mb = total as f64 / (1 << 20) as f64;
    println!(
        "\ncold pull of a {mb:.1} MiB image ({} layers + config, data layers gzip level {level}) from the real registry over TLS with Basic auth on loopback, median of {runs}\n",
        nlayers + 1
    );
    println!("| tool | seconds | MiB/s | peak RSS |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, t, rss) in rows
        .into_iter()
        .chain(std::iter::once(("(token auth)".to_string(), 0.0, 0)).chain(token_rows))
    {
        if t == 0.0 {
            println!("| **the same image behind token auth (RS256 Bearer tokens)** | | | |");
            continue;
        }
        println!(
            "| {name} | {t:.3} | {:.0} | {:.1} MiB |",
            mb / t,
            rss as f64 / 1024.0
        );
    }
    let (t, at_kill, sent) = resume;
    println!(
        "\nresume: `kill -9` of `kubepull pull` with {:.0}% of the image on disk; the next pull took {t:.3} s and the registry sent {:.1}% of the image for it (access log)",
        at_kill * 100.0,
        sent * 100.0
    );
}

/// `runs` cold `kubepull pull`s into fresh stores; returns (median seconds, peak RSS KiB).
fn kp_pulls(
    kp: &str,
    image: &str,
    runs: usize,
    w: &Path,
    hosts: &Path,
    secret: &Path,
    extra: &[&str],
) -> (f64, u64) {
    let mut ts = vec![];
    let mut peak = 0;
    for i in 0..runs {
        let root = w.join(format!("kp{i}"));
        let mut cmd = Command::new(kp);
        cmd.args(["pull", image, "-q", "--policy", "Always"]);
        // the build's default unless the bench sets it
        if !extra.contains(&"--concurrency") {
            if let Ok(c) = std::env::var("KUBEPULL_BENCH_CONCURRENCY") {
                cmd.args(["--concurrency", &c]);
            }
        }
        let (t, rss) = timed(
            cmd.args(extra)
                .arg("--root")
                .arg(&root)
                .arg("--hosts-dir")
                .arg(hosts)
                .arg("--pull-secret")
                .arg(secret),
        );
        ts.push(t);
        peak = peak.max(rss);
        let _ = std::fs::remove_dir_all(&root);
    }
    (median(ts), peak)
}

/// Where a CPU sample of `perf report --sort sym` goes, first match wins.
const CATEGORIES: &[(&str, &[&str])] = &[
    ("SHA-256", &["sha2::", "sha256"]),
    (
        "TLS (rustls, AES-GCM)",
        &[
            "rustls::", "ring::", "aes_", "gcm_", "ghash", "_aesni", "aesni_",
        ],
    ),
    (
        "decompression",
        &[
            "zlib_rs",
            "miniz_oxide",
            "flate2",
            "ruzstd",
            "crc32",
            "inflate",
        ],
    ),
    ("tar and unpack (user)", &["kubepull_store::unpack"]),
    (
        "network read (kernel TCP, socket copies)",
        &[
            "tcp_",
            "skb",
            "sock_",
            "inet_",
            "ip_",
            "__netif",
            "net_rx",
            "napi",
            "loopback",
            "__dev_queue",
            "_copy_to_iter",
            "recvfrom",
            "__sys_recv",
            "sk_",
        ],
    ),
    (
        "fsync, writeback",
        &[
            "sync_file",
            "syncfs",
            "sync_inodes",
            "file_write_and_wait",
            "writepages",
            "blk_",
            "submit_bio",
            "jbd2",
            "bio_",
            "virtblk",
            "virtqueue",
        ],
    ),
    (
        "file writes (page cache)",
        &[
            "ext4_",
            "xfs_",
            "generic_perform_write",
            "filemap_",
            "iomap_",
            "copy_folio_from_iter",
            "vfs_write",
            "ksys_write",
            "folio",
            "clear_page",
            "__block_commit",
            "mark_buffer",
            "__x64_sys_write",
            "pwrite",
        ],
    ),
    ("overlayfs (the snapshot's merged mount)", &["ovl_"]),
    ("locks, rename", &["flock", "rename", "locks_"]),
    (
        "HTTP and async runtime (hyper, tokio)",
        &[
            "hyper::",
            "h2::",
            "tokio::",
            "reqwest::",
            "futures_",
            "bytes::",
            "want::",
        ],
    ),
    ("memcpy", &["memcpy", "memmove"]),
];

/// Profiles one pull and one unpack with `perf record -e cpu-clock` (Debian `linux-perf`) and
/// prints where the CPU time went, by [`CATEGORIES`].
fn profile(kp: &str, image: &str, w: &Path, secret: &Path) {
    if Command::new("perf").arg("--version").output().is_err() {
        println!("profile: `perf` not found (apt-get install linux-perf)");
        return;
    }
    let root = w.join("kp-profile");
    let rootfs = w.join("kp-profile-rootfs");
    let pull: Vec<std::ffi::OsString> = [
        "pull",
        image,
        "-q",
        "--policy",
        "Always",
        "--no-unpack",
        "--root",
    ]
    .iter()
    .map(Into::into)
    .chain([root.clone().into_os_string()])
    .chain(["--hosts-dir".into(), w.join("hosts").into_os_string()])
    .chain(["--pull-secret".into(), secret.as_os_str().to_owned()])
    .collect();
    let unpack: Vec<std::ffi::OsString> = vec![
        "unpack".into(),
        image.into(),
        rootfs.clone().into_os_string(),
        "--root".into(),
        root.clone().into_os_string(),
    ];
    // the pull that leaves the root filesystem ready (layers unpacked into their snapshots
    // while downloading), into a store of its own
    let root2 = w.join("kp-profile-ready");
    let ready: Vec<std::ffi::OsString> = ["pull", image, "-q", "--policy", "Always", "--root"]
        .iter()
        .map(Into::into)
        .chain([root2.clone().into_os_string()])
        .chain(["--hosts-dir".into(), w.join("hosts").into_os_string()])
        .chain(["--pull-secret".into(), secret.as_os_str().to_owned()])
        .collect();
    for (what, args) in [
        ("pull --no-unpack", pull),
        ("unpack", unpack),
        ("pull (+ ready rootfs)", ready),
    ] {
        let data = w.join(format!(
            "perf-{}.data",
            what.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let t0 = Instant::now();
        let st = Command::new("perf")
            .args(["record", "-q", "-e", "cpu-clock", "-F", "1999", "-o"])
            .arg(&data)
            .arg("--")
            .arg(kp)
            .args(&args)
            .status()
            .expect("perf record");
        let wall = t0.elapsed().as_secs_f64();
        assert!(st.success(), "perf record {what} failed");
        let out = Command::new("perf")
            .args([
                "report",
                "-q",
                "--stdio",
                "--no-children",
                "--sort",
                "sym",
                "-g",
                "none",
                "-i",
            ])
            .arg(&data)
            .output()
            .expect("perf report");
        let text = String::from_utf8_lossy(&out.stdout);
        // exact sample counts (the "# Samples: 5K" header is rounded to 0.5 CPU s)
        let samples: u64 = Command::new("perf")
            .args([
                "report",
                "-q",
                "--stdio",
                "--no-children",
                "-n",
                "--sort",
                "comm",
                "-i",
            ])
            .arg(&data)
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        let mut top: Vec<String> = vec![];
        let mut shares: Vec<(String, f64)> = CATEGORIES
            .iter()
            .map(|(c, _)| (c.to_string(), 0.0))
            .chain([("other".to_string(), 0.0)])
            .collect();
        for l in text.lines() {
            let mut f = l.split_whitespace();
            let Some(pct) = f
                .next()
                .and_then(|p| p.trim_end_matches('%').parse::<f64>().ok())
            else {
                continue;
            };
            let sym = f.skip(1).collect::<Vec<_>>().join(" ");
            let i = CATEGORIES
                .iter()
                .position(|(_, pats)| pats.iter().any(|p| sym.contains(p)))
                .unwrap_or(CATEGORIES.len());
            shares[i].1 += pct;
            if top.len() < 12 {
                top.push(format!("{pct:.1}% {sym}"));
            }
        }
        let cpu = samples as f64 / 1999.0;
        println!(
            "\nprofile of `kubepull {what}` (perf cpu-clock): {wall:.2} s wall, about {cpu:.2} s on CPU"
        );
        println!("| where | share of CPU samples | CPU seconds |");
        println!("| --- | ---: | ---: |");
        shares.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
        for (c, pct) in shares.iter().filter(|s| s.1 >= 0.5) {
            println!("| {c} | {pct:.1}% | {:.2} |", cpu * pct / 100.0);
        }
        println!("top symbols: {}", top.join("; "));
        let _ = std::fs::remove_file(&data);
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&root2);
    let _ = std::fs::remove_dir_all(&rootfs);
}

/// `kill -9` of a pull once half the image is on disk, then the next pull: its time, and the
/// bytes the registry sent for it (from its access log) as a fraction of the image.
fn resume_after_kill(
    reg: &Registry,
    kp: &str,
    image: &str,
    w: &Path,
    secret: &Path,
    total: u64,
) -> (f64, f64, f64) {
    let root = w.join("kp-resume");
    let pull = || {
        let mut c = Command::new(kp);
        c.args(["pull", image, "-q", "--policy", "Always"])
            .arg("--root")
            .arg(&root)
            .arg("--hosts-dir")
            .arg(w.join("hosts"))
            .arg("--pull-secret")
            .arg(secret);
        c
    };
    let on_disk = || -> u64 {
        ["ingest", "blobs/sha256"]
            .iter()
            .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
            .flat_map(|d| d.flatten())
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    };
    let mut child = pull().spawn().expect("kubepull");
    while on_disk() < total / 2 {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    let at_kill = on_disk() as f64 / total as f64;
    // the registry logs each transfer the kill cut off when it notices the closed connection:
    // wait until its access log stops growing, so those lines are not counted as the next
    // pull's
    let mut log_before = reg.log().len();
    let mut quiet_since = Instant::now();
    let settle_deadline = Instant::now() + std::time::Duration::from_secs(10);
    while quiet_since.elapsed() < std::time::Duration::from_millis(500)
        && Instant::now() < settle_deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let n = reg.log().len();
        if n != log_before {
            log_before = n;
            quiet_since = Instant::now();
        }
    }
    let (t, _) = timed(&mut pull());
    let log = reg.log();
    // combined log format: "GET /v2/…/blobs/… HTTP/1.1" STATUS BYTES
    let sent: u64 = log[log_before..]
        .lines()
        .filter(|l| l.contains("\"GET ") && l.contains("/blobs/"))
        .filter_map(|l| {
            l.split("\" ")
                .nth(1)?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum();
    let _ = std::fs::remove_dir_all(&root);
    (t, at_kill, sent as f64 / total as f64)
}

async fn token_auth_rows(
    img: &kubepull_testkit::Image,
    kp: &str,
    runs: usize,
    w: &Path,
) -> Vec<(String, f64, u64)> {
    use kubepull_registry::testkit::{
        http_client, push, RegistryAuth, RegistryConfig, RegistryProcess, TestCa, TokenServer,
        TokenServerConfig,
    };
    let ca = TestCa::new();
    let tw = w.join("token");
    std::fs::create_dir_all(&tw).expect("dir");
    let tokens = TokenServer::start(&ca, TokenServerConfig::default(), &tw)
        .await
        .expect("token server");
    tokens.add_user(USER, PASS, &[("bench/", &["pull", "push"])]);
    let reg = RegistryProcess::start(RegistryConfig {
        tls: Some(ca.server_cert(&["127.0.0.1", "localhost"])),
        auth: RegistryAuth::Token {
            realm: tokens.realm(),
            service: tokens.service(),
            issuer: tokens.issuer(),
            root_cert_bundle_pem: tokens.signing_cert_pem().to_string(),
        },
        storage: None,
        redirect_base_url: None,
        client_ca_pem: None,
    })
    .expect("registry");
    let bearer = format!(
        "Bearer {}",
        tokens.mint(USER, "bench/big", &["push", "pull"])
    );
    let mut blobs = vec![img.config.clone()];
    blobs.extend(img.layers.iter().cloned());
    push(
        &reg.base_url(),
        &http_client(Some(ca.cert_pem()), None).unwrap(),
        Some(&bearer),
        "bench/big",
        "v1",
        "application/vnd.oci.image.manifest.v1+json",
        &img.manifest,
        &blobs,
    )
    .await
    .expect("push");
    let host = reg.host();
    let image = format!("{host}/bench/big:v1");
    let hosts = tw.join("hosts");
    let hd = hosts.join(&host);
    std::fs::create_dir_all(&hd).expect("hosts");
    std::fs::write(hd.join("ca.crt"), ca.cert_pem()).expect("ca");
    std::fs::write(
        hd.join("hosts.toml"),
        format!(
            "server = \"https://{host}\"\n\n[host.\"https://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
            hd.join("ca.crt").display()
        ),
    )
    .expect("hosts.toml");
    let certs = tw.join("certs");
    std::fs::create_dir_all(&certs).expect("certs");
    std::fs::write(certs.join("ca.crt"), ca.cert_pem()).expect("ca");
    let secret = tw.join("secret.json");
    std::fs::write(
        &secret,
        format!(r#"{{"auths":{{"{host}":{{"username":"{USER}","password":"{PASS}"}}}}}}"#),
    )
    .expect("secret");
    let mut rows = vec![];
    let (t, rss) = kp_pulls(kp, &image, runs, &tw, &hosts, &secret, &["--no-unpack"]);
    rows.push(("kubepull pull --no-unpack (blobs only)".to_string(), t, rss));
    let (t, rss) = kp_pulls(kp, &image, runs, &tw, &hosts, &secret, &[]);
    rows.push((
        "kubepull pull (+ ready rootfs: unpacked while downloading)".to_string(),
        t,
        rss,
    ));
    let (t, rss) = kp_pulls(
        kp,
        &image,
        runs,
        &tw,
        &hosts,
        &secret,
        &["--discard-unpacked-layers"],
    );
    rows.push((
        "kubepull pull, ready, discard unpacked layers".to_string(),
        t,
        rss,
    ));
    if Path::new("/usr/bin/skopeo").exists() {
        let mut ts = vec![];
        let mut peak = 0;
        for i in 0..runs {
            let dest = tw.join(format!("sk{i}"));
            let (t, rss) = timed(
                Command::new("skopeo")
                    .args(["copy", "-q", "--src-creds", &format!("{USER}:{PASS}")])
                    .arg("--src-cert-dir")
                    .arg(&certs)
                    .arg(format!("docker://{image}"))
                    .arg(format!("oci:{}:v1", dest.display())),
            );
            ts.push(t);
            peak = peak.max(rss);
            let _ = std::fs::remove_dir_all(&dest);
        }
        rows.push(("skopeo copy (to oci layout)".to_string(), median(ts), peak));
    }
    drop(reg);
    drop(tokens);
    rows
}
