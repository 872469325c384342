//! `kubepull pull`, `images`, `rmi`, `gc`, `unpack`: the node image store from the command line,
//! pulling with exactly the credentials the kubelet would use.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use clap::{Arg, ArgAction, ArgMatches, Command};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use kubepull_core::keyring;
use kubepull_core::pullpolicy::{self, PullDecision, PullPolicy};
use kubepull_core::reference::Digest;
use kubepull_images::{self as puller, Progress, Puller};
use kubepull_registry::{ErrorKind, Platform};
use kubepull_store::Store;

use crate::exit;

/// Where the store lives when `--root` is not given.
pub fn default_root() -> PathBuf {
    if let Some(r) = std::env::var_os("KUBEPULL_ROOT") {
        return PathBuf::from(r);
    }
    if rustix_is_root() {
        return PathBuf::from("/var/lib/kubepull");
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME") {
        return PathBuf::from(x).join("kubepull");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/kubepull"),
        None => PathBuf::from(".kubepull"),
    }
}

fn rustix_is_root() -> bool {
    // uid 0 owns /proc/self when we are root; no libc call needed
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn root_arg() -> Arg {
    Arg::new("root")
        .long("root")
        .value_name("DIR")
        .help("Image store directory [default: $KUBEPULL_ROOT, /var/lib/kubepull as root, else ~/.local/share/kubepull]")
}

fn root_of(m: &ArgMatches) -> PathBuf {
    m.get_one::<String>("root")
        .map(PathBuf::from)
        .unwrap_or_else(default_root)
}

/// Registry connection flags shared by `pull` and the node agent.
pub fn registry_args(cmd: Command) -> Command {
    cmd.arg(
        Arg::new("hosts-dir")
            .long("hosts-dir")
            .value_name("DIR")
            .help("containerd-style registry host configuration: DIR/<host[:port]>/hosts.toml (ca, client certs, skip_verify, mirrors); without hosts.toml, Docker's certs.d files DIR/<host[:port]>/{*.crt, client.cert, client.key}"),
    )
    .arg(
        Arg::new("insecure-registry")
            .long("insecure-registry")
            .value_name("HOST[:PORT]")
            .action(ArgAction::Append)
            .help("A registry served over plain HTTP (anonymous only: credentials never travel over plain HTTP)"),
    )
}

/// Builds the registry client and host configuration from `--hosts-dir` and
/// `--insecure-registry`.
pub fn registry_client(
    m: &ArgMatches,
) -> anyhow::Result<(
    kubepull_registry::Client,
    Option<kubepull_registry::HostsDir>,
)> {
    let cfg = kubepull_registry::ClientConfig {
        insecure_registries: m
            .get_many::<String>("insecure-registry")
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        ..Default::default()
    };
    crate::adapt::client(m.get_one::<String>("hosts-dir").map(Path::new), cfg)
}

pub fn pull_command() -> Command {
    registry_args(
        Command::new("pull")
            .about("Pull an image into the node image store with the credentials the kubelet would use")
            .long_about(
                "Pull an image into the node image store with the credentials the kubelet would use.\n\n\
                 An interrupted pull (even kill -9) leaves its unfinished blobs in ROOT/ingest; the next \
                 pull asks the registry only for the rest (HTTP Range), or downloads a blob in full when \
                 the registry ignores ranges or the partial does not verify.\n\n\
                 Layers are unpacked into the store's overlay snapshots while they download (as root), \
                 so containers start from them with no further unpacking; a layer's snapshot is kept \
                 only once its blob digest and the config's diff ID verified, and the image is \
                 recorded only once every layer did.\n\n\
                 With --discard-unpacked-layers (containerd's discard_unpacked_layers) a layer \
                 unpacked while it downloads is verified the same way but its blob is not kept: the \
                 download is never synced and is removed once every layer is applied and verified, \
                 before the syncfs that makes the snapshots durable, so the layer reaches the disk \
                 once (unless the kernel's own writeback takes the download first: \
                 vm.dirty_expire_centisecs, vm.dirty_background_ratio); a layer whose snapshot is already in place (fetched from the \
                 same repository before) is not downloaded. Manifest and config blobs are kept. \
                 `kubepull unpack` of the image copies its tree from the snapshots; a pull with \
                 --no-unpack (any policy but Never) takes such an image as absent and downloads \
                 the layer blobs again.",
            )
            .arg(Arg::new("image").required(true).help("The image as written in a pod spec"))
            .arg(
                Arg::new("pull-secret")
                    .long("pull-secret")
                    .action(ArgAction::Append)
                    .value_name("FILE")
                    .help("Secret manifests (YAML/JSON) used as the pod's imagePullSecrets, in order"),
            )
            .arg(
                Arg::new("docker-config")
                    .long("docker-config")
                    .value_name("FILE")
                    .help("The node's docker config.json (tried after the pull secrets)"),
            )
            .arg(root_arg())
            .arg(
                Arg::new("platform")
                    .long("platform")
                    .value_name("OS/ARCH[/VARIANT]")
                    .help("Platform to select from a multi-platform image [default: this host]"),
            )
            .arg(
                Arg::new("policy")
                    .long("policy")
                    .value_parser(["Always", "IfNotPresent", "Never"])
                    .help("Pull policy [default: the kubelet's default for the image: Always for :latest or no tag, else IfNotPresent]"),
            )
            .arg(
                Arg::new("concurrency")
                    .long("concurrency")
                    .value_parser(clap::value_parser!(usize))
                    .default_value("3")
                    .help("Layers downloaded at once"),
            )
            .arg(
                Arg::new("no-unpack")
                    .long("no-unpack")
                    .action(ArgAction::SetTrue)
                    .help("Store the blobs only; leave unpacking to the first container start or `kubepull unpack`"),
            )
            .arg(discard_unpacked_layers_arg().conflicts_with("no-unpack"))
            .arg(Arg::new("quiet").short('q').long("quiet").action(ArgAction::SetTrue).help("No progress output"))
            .arg(
                Arg::new("output")
                    .short('o')
                    .long("output")
                    .value_parser(["text", "json"])
                    .default_value("text"),
            )
            .after_help(PULL_EXIT_CODES),
    )
}

/// `--discard-unpacked-layers`, for `pull`, `node` and `up`.
pub fn discard_unpacked_layers_arg() -> Arg {
    Arg::new("discard-unpacked-layers")
        .long("discard-unpacked-layers")
        .action(ArgAction::SetTrue)
        .help("Do not keep the blobs of layers unpacked into snapshots (containerd's discard_unpacked_layers): each layer's download is never synced and is removed before the snapshots' syncfs; manifests and configs are kept")
}

pub const PULL_EXIT_CODES: &str = "\
Exit codes:
  0  pulled, or already present under the policy
  1  other failure (store, protocol, unexpected response)
  2  bad usage or unreadable input (secret files, docker config, hosts.toml)
  10 credentials rejected by the registry (the error names each secret/key tried)
  11 repository not found, or the credential has no pull access
  12 tag or digest not found
  13 the image has no manifest for the platform
  14 rate limited by the registry
  15 TLS or certificate failure
  16 DNS or connection failure
  17 transfer stalled or timed out
  18 digest mismatch (corrupt or tampered content; nothing was stored)
  19 invalid image reference
  20 policy Never and the image is not present
  21 refused as unsafe (token realm, redirect or plain-HTTP credential policy)";

/// The documented exit code of a registry failure: the registry crate's table
/// ([`ErrorKind::exit_code`]), the one table both report.
pub fn exit_code_of(kind: ErrorKind) -> u8 {
    u8::try_from(kind.exit_code()).unwrap_or(exit::FAILURE)
}

/// Exit code when policy is Never and the image is absent.
pub const NEVER_NOT_PRESENT: u8 = kubepull_registry::error::EXIT_NEVER_PULL as u8;

struct Bars {
    multi: MultiProgress,
    total: ProgressBar,
    per: Mutex<HashMap<Digest, ProgressBar>>,
    plain: bool,
    quiet: bool,
    started: Instant,
}

fn short(d: &Digest) -> String {
    d.hex().chars().take(12).collect()
}

impl Progress for Bars {
    fn resolved(&self, image: &str, digest: &Digest, blobs: &[(Digest, u64)]) {
        if self.quiet {
            return;
        }
        let total: u64 = blobs.iter().map(|b| b.1).sum();
        if self.plain {
            eprintln!(
                "{image}: resolved to {digest}, {} blobs, {}",
                blobs.len(),
                indicatif::HumanBytes(total)
            );
            return;
        }
        self.total.set_length(total);
        self.total.set_message(image.to_string());
        let style = ProgressStyle::with_template(
            "{prefix:.dim} {bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let mut per = self.per.lock().unwrap_or_else(|p| p.into_inner());
        for (d, size) in blobs {
            let pb = self
                .multi
                .insert_before(&self.total, ProgressBar::new(*size));
            pb.set_style(style.clone());
            pb.set_prefix(short(d));
            per.insert(d.clone(), pb);
        }
    }
    fn bytes(&self, digest: &Digest, n: u64) {
        if self.quiet || self.plain {
            return;
        }
        if let Some(pb) = self
            .per
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            pb.inc(n);
        }
        self.total.inc(n);
    }
    fn resumed(&self, digest: &Digest, offset: u64) {
        if self.plain && !self.quiet {
            eprintln!(
                "  {} resumed an interrupted download at {}",
                short(digest),
                indicatif::HumanBytes(offset)
            );
        }
    }
    fn blob_done(&self, digest: &Digest, reused: bool) {
        if self.quiet {
            return;
        }
        if self.plain {
            eprintln!(
                "  {} {}",
                short(digest),
                if reused {
                    "already present"
                } else {
                    "downloaded, verified"
                }
            );
            return;
        }
        if let Some(pb) = self
            .per
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
        {
            if reused {
                let rest = pb.length().unwrap_or(0).saturating_sub(pb.position());
                self.total.inc(rest);
                pb.finish_with_message("already present");
            } else {
                pb.finish_with_message("done");
            }
        }
    }
}

fn policy_of(m: &ArgMatches, image: &str) -> PullPolicy {
    match m.get_one::<String>("policy").map(String::as_str) {
        Some("Always") => PullPolicy::Always,
        Some("Never") => PullPolicy::Never,
        Some("IfNotPresent") => PullPolicy::IfNotPresent,
        _ => pullpolicy::default_pull_policy(image),
    }
}

pub fn run_pull(m: &ArgMatches) -> u8 {
    kubepull_store::timings::mark(|| "command start".into());
    let image = m.get_one::<String>("image").cloned().unwrap_or_default();
    let json_out = m.get_one::<String>("output").map(String::as_str) == Some("json");
    let quiet = m.get_flag("quiet") || json_out;
    let (secrets, node) = match crate::creds_cmd::credential_inputs(m, "pull-secret") {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let platform = match m.get_one::<String>("platform") {
        Some(p) => {
            match Platform::parse(p) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: --platform {p:?}: {e}; expected OS/ARCH[/VARIANT], e.g. linux/amd64");
                    return exit::USAGE;
                }
            }
        }
        None => Platform::host(),
    };
    let resolution = match keyring::resolve(&image, &secrets, node.as_ref()) {
        Ok(r) => r,
        Err(keyring::ResolveError::InvalidImage(e)) => {
            eprintln!("error: {e}");
            eprintln!("hint: {}", ErrorKind::InvalidReference.hint());
            return exit_code_of(ErrorKind::InvalidReference);
        }
        Err(e @ keyring::ResolveError::Secret { .. }) => {
            eprintln!("error: pull secret: {e}");
            eprintln!("hint: fix the secret's .dockerconfigjson (`kubepull lint` explains it)");
            return exit::FAILURE;
        }
    };
    let root = root_of(m);
    let store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: image store {}: {e}", root.display());
            return exit::FAILURE;
        }
    };
    kubepull_store::timings::mark(|| "store opened".into());
    let (client, hosts) = match registry_client(m) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    kubepull_store::timings::mark(|| "registry client built".into());
    // parsed once: the store name and the pull take the reference
    let reference = match puller::parse_image(&image) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code_of(ErrorKind::InvalidReference);
        }
    };
    let name = puller::store_name_of(&reference);
    let policy = policy_of(m, &image);
    let concurrency = m.get_one::<usize>("concurrency").copied().unwrap_or(3);
    let mut puller = Puller::new(client, store.clone(), platform)
        .with_concurrency(concurrency)
        .with_unpack(!m.get_flag("no-unpack"))
        .with_discard_unpacked_layers(m.get_flag("discard-unpacked-layers"));
    if let Some(h) = hosts {
        puller = puller.with_hosts(h);
    }
    // an image whose record does not keep its layer blobs is not present for a pull that
    // needs them (--no-unpack, or no snapshots here): it fetches them again
    let present = store
        .image(&name)
        .ok()
        .flatten()
        .filter(|rec| !(puller.needs_layer_blobs() && store.discarded_blobs_missing(rec)));
    match pullpolicy::decide(policy, present.is_some()) {
        PullDecision::NeverPullAbsent => {
            eprintln!("error: {}", pullpolicy::messages::never_pull(&image));
            eprintln!("hint: pull it first, or use --policy IfNotPresent");
            return NEVER_NOT_PRESENT;
        }
        PullDecision::UsePresent => {
            if json_out {
                println!(
                    "{}",
                    serde_json::json!({"image": name, "pulled": false, "present": true})
                );
            } else if !m.get_flag("quiet") {
                println!("{}", pullpolicy::messages::already_present(&image));
            }
            return exit::OK;
        }
        PullDecision::Pull => {}
    }
    let tty = std::io::stderr().is_terminal();
    let multi = MultiProgress::with_draw_target(if quiet || !tty {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let total = multi.add(ProgressBar::new(0));
    total.set_style(
        ProgressStyle::with_template(
            "{prefix:.bold} {bar:30.green/white} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    total.set_prefix("total       ");
    let bars = Arc::new(Bars {
        multi,
        total,
        per: Mutex::new(HashMap::new()),
        plain: !tty,
        quiet,
        started: Instant::now(),
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return exit::FAILURE;
        }
    };
    kubepull_store::timings::mark(|| "async runtime started".into());
    let result = rt.block_on(puller.pull(&reference, &resolution.credentials, bars.clone()));
    // the runtime's drop waits for its blocking threads
    drop(rt);
    kubepull_store::timings::mark(|| "async runtime shut down".into());
    bars.total.finish_and_clear();
    match result {
        Ok(r) => {
            if json_out {
                println!(
                    "{}",
                    serde_json::json!({
                        "image": r.name,
                        "digest": r.digest.to_string(),
                        "manifest": r.manifest_digest.to_string(),
                        "imageID": r.config_digest.to_string(),
                        "size": r.size,
                        "downloaded": r.downloaded,
                        "resumed": r.resumed,
                        "fetchedBlobs": r.fetched_blobs,
                        "reusedBlobs": r.reused_blobs,
                        "credential": r.credential_source,
                        "rootfsReady": r.rootfs_ready,
                        "snapshotsBuilt": r.snapshots_built,
                        "unpackSkipped": r.unpack_skipped,
                        "layersDiscarded": r.layers_discarded,
                        "seconds": r.duration.as_secs_f64(),
                    })
                );
            } else if !m.get_flag("quiet") {
                println!(
                    "{}",
                    pullpolicy::messages::pulled(
                        &image,
                        r.duration,
                        bars.started.elapsed(),
                        r.size
                    )
                );
                let resumed = if r.resumed > 0 {
                    format!(
                        ", {} resumed from an interrupted pull",
                        indicatif::HumanBytes(r.resumed)
                    )
                } else {
                    String::new()
                };
                println!(
                    "  digest {}  image ID {}  credential {}  ({} downloaded{resumed}, {} blobs reused)",
                    r.digest,
                    r.config_digest,
                    r.credential_source.as_deref().unwrap_or("anonymous"),
                    indicatif::HumanBytes(r.downloaded),
                    r.reused_blobs
                );
                match (&r.unpack_skipped, r.rootfs_ready) {
                    (_, true) => println!(
                        "  root filesystem ready: every layer's snapshot in place ({} unpacked while downloading)",
                        r.snapshots_built
                    ),
                    (Some(why), false) => println!("  layers not unpacked: {why}"),
                    (None, false) => {}
                }
                if r.layers_discarded > 0 {
                    println!(
                        "  {} layer blobs not kept (--discard-unpacked-layers): the snapshots hold them",
                        r.layers_discarded
                    );
                }
            }
            exit::OK
        }
        Err(e) => {
            eprintln!(
                "error: {}",
                pullpolicy::messages::failed_to_pull(&image, &puller::error_chain(&e))
            );
            let code = match e.kind() {
                Some(k) => {
                    eprintln!("hint: {}", k.hint());
                    exit_code_of(k)
                }
                None => exit::FAILURE,
            };
            if !resolution.matched_keys.is_empty() {
                eprintln!(
                    "credentials tried, in order: {}",
                    resolution.matched_keys.join(", ")
                );
            } else {
                eprintln!(
                    "no credential matched {}: the pull was anonymous",
                    resolution.lookup_key
                );
            }
            code
        }
    }
}

pub fn images_command() -> Command {
    Command::new("images")
        .about("List images in the node image store")
        .arg(root_arg())
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_parser(["text", "json"])
                .default_value("text"),
        )
}

pub fn run_images(m: &ArgMatches) -> u8 {
    let root = root_of(m);
    let store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: image store {}: {e}", root.display());
            return exit::FAILURE;
        }
    };
    let images = match store.images() {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    if m.get_one::<String>("output").map(String::as_str) == Some("json") {
        let v: Vec<_> = images.iter().map(crate::adapt::image_json).collect();
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return exit::OK;
    }
    println!(
        "{:<60} {:<14} {:<14} {:<14} {:>10}",
        "IMAGE", "DIGEST", "IMAGE ID", "PLATFORM", "SIZE"
    );
    for i in &images {
        let (name, digest, id, platform, size) = crate::adapt::image_row(i);
        println!(
            "{name:<60} {digest:<14} {id:<14} {platform:<14} {:>10}",
            indicatif::HumanBytes(size).to_string()
        );
    }
    exit::OK
}

pub fn rmi_command() -> Command {
    Command::new("rmi")
        .about("Remove images from the store (their blobs are freed by `kubepull gc`)")
        .arg(Arg::new("image").required(true).action(ArgAction::Append))
        .arg(root_arg())
}

pub fn run_rmi(m: &ArgMatches) -> u8 {
    let root = root_of(m);
    let store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: image store {}: {e}", root.display());
            return exit::FAILURE;
        }
    };
    let mut code = exit::OK;
    for image in m.get_many::<String>("image").into_iter().flatten() {
        let name = match puller::store_name(image) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("error: {e}");
                code = exit_code_of(ErrorKind::InvalidReference);
                continue;
            }
        };
        match store.remove_image(&name) {
            Ok(true) => println!("Untagged: {name}"),
            Ok(false) => {
                eprintln!("error: image {name} not found in {}", root.display());
                code = exit::FAILURE;
            }
            Err(e) => {
                eprintln!("error: {e}");
                code = exit::FAILURE;
            }
        }
    }
    code
}

pub fn gc_command() -> Command {
    Command::new("gc")
        .about("Delete blobs and layer snapshots no image references (blobs being downloaded and snapshots a container stacks are kept)")
        .arg(root_arg())
}

pub fn run_gc(m: &ArgMatches) -> u8 {
    let root = root_of(m);
    let store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: image store {}: {e}", root.display());
            return exit::FAILURE;
        }
    };
    match store.gc() {
        Ok(r) => {
            println!("{}", crate::adapt::gc_line(&r));
            exit::OK
        }
        Err(e) => {
            eprintln!("error: {e}");
            exit::FAILURE
        }
    }
}

pub fn unpack_command() -> Command {
    Command::new("unpack")
        .about(
            "Unpack a stored image's layers into a root filesystem directory (an image pulled \
             with --discard-unpacked-layers is copied from its layer snapshots)",
        )
        .arg(Arg::new("image").required(true))
        .arg(
            Arg::new("dest")
                .required(true)
                .help("Destination directory (created; must be empty)"),
        )
        .arg(root_arg())
}

pub fn run_unpack(m: &ArgMatches) -> u8 {
    let root = root_of(m);
    let image = m.get_one::<String>("image").cloned().unwrap_or_default();
    let dest = PathBuf::from(m.get_one::<String>("dest").cloned().unwrap_or_default());
    let store = match Store::open(&root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: image store {}: {e}", root.display());
            return exit::FAILURE;
        }
    };
    let name = match puller::store_name(&image) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return exit_code_of(ErrorKind::InvalidReference);
        }
    };
    let rec = match store.image(&name) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!("error: image {name} is not in the store; run `kubepull pull {image}` first");
            return exit::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    if dest.exists()
        && std::fs::read_dir(&dest)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        eprintln!(
            "error: destination {} exists and is not empty",
            dest.display()
        );
        return exit::USAGE;
    }
    let started = Instant::now();
    match kubepull_store::unpack_image(
        &store,
        &rec,
        &dest,
        &kubepull_store::UnpackOptions::default(),
    ) {
        Ok(stats) => {
            println!(
                "unpacked {name} into {} ({}) in {:.2}s",
                dest.display(),
                crate::adapt::unpack_line(&stats),
                started.elapsed().as_secs_f64()
            );
            exit::OK
        }
        Err(e) => {
            eprintln!("error: unpacking {name}: {e}");
            exit::FAILURE
        }
    }
}
