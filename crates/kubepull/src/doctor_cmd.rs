//! `kubepull doctor`: why a pod cannot pull its image, and the fix.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Arg, ArgAction, ArgMatches, Command};
use kubepull_kube::doctor::{self, gather, Options, Selection};

use crate::exit;

const LONG_ABOUT: &str = "\
Explains why a pod cannot pull its image, on any cluster (read-only: it never writes).

For each container (init, regular, ephemeral) it builds the pull secrets exactly as the
kubelet sees them (the pod's imagePullSecrets after ServiceAccount admission), checks them for
the classic traps (missing or misspelt secret, wrong namespace, wrong type or key, legacy
.dockercfg content, auth disagreeing with username/password, credsStore-only desktop config,
no key matching the image's registry, the ServiceAccount patched after the pod was created,
RBAC forbidding the read), probes the registry from here with each credential in the
kubelet's order (/v2/ ping, challenge, token, manifest, the node's platform in an index), reads
the pod's events and waiting state, and gives one cause with the evidence and the fix.

Causes: ok, credentials-rejected, no-credentials-sent, no-pull-access, image-not-found,
platform-not-found, rate-limited, tls-untrusted, tls-expired-or-mismatch, dns-failure,
registry-unreachable, http-https-mismatch, invalid-image-name, never-pull-missing,
secret-format, cloud-credential-provider, disk-or-extract, corrupt-download,
unsupported-manifest, timeout, unknown.

The probe runs from where doctor runs: DNS, proxies, firewalls and trusted CAs may differ on
the node (give --hosts-dir with the node's registry configuration to match it). A running
container whose image doctor cannot reach is reported as ok, with that caveat.

As a kubectl plugin: link the binary as `kubectl-kubepull` on PATH, then
`kubectl kubepull doctor POD -n NS`.";

const AFTER_HELP: &str = "\
Examples:
  kubepull doctor my-pod -n team-a
  kubepull doctor deployment/web -n team-a -o json
  kubepull doctor -l app=web
  kubepull doctor -A                       # every pod, grouped by cause
  kubepull doctor -f deploy.yaml           # before applying
  kubepull doctor --message 'Failed to pull image \"x\": ... 401 Unauthorized'

Exit codes:
  0  every checked container can pull
  1  at least one cannot
  2  bad usage, or the pod/object/kubeconfig cannot be read";

pub fn command() -> Command {
    Command::new("doctor")
        .about("Explain why a pod cannot pull its image (any cluster, read-only), with the fix")
        .long_about(LONG_ABOUT)
        .after_help(AFTER_HELP)
        .arg(
            Arg::new("target")
                .value_name("POD | TYPE/NAME")
                .help("A pod, or deployment/statefulset/daemonset/replicaset/job/cronjob/pod NAME (its live pods, or its template); all pods of the namespace when omitted"),
        )
        .arg(Arg::new("selector").short('l').long("selector").value_name("SELECTOR").help("Pods matching a label selector"))
        .arg(
            Arg::new("filename")
                .short('f')
                .long("filename")
                .value_name("MANIFEST")
                .action(ArgAction::Append)
                .help("Check manifests before applying them ('-' for standard input); Secrets and ServiceAccounts in them are used, the cluster's for the rest"),
        )
        .arg(Arg::new("namespace").short('n').long("namespace").value_name("NS").help("Namespace (default: the kubeconfig context's)"))
        .arg(Arg::new("all-namespaces").short('A').long("all-namespaces").action(ArgAction::SetTrue).help("Every pod in every namespace, problems grouped by cause"))
        .arg(Arg::new("kubeconfig").long("kubeconfig").value_name("FILE").help("kubeconfig (default: KUBECONFIG, then ~/.kube/config, then in-cluster)"))
        .arg(Arg::new("context").long("context").value_name("NAME").help("kubeconfig context"))
        .arg(Arg::new("hosts-dir").long("hosts-dir").value_name("DIR").help("The node's registry configuration, containerd's layout: DIR/<host[:port]>/hosts.toml (CA, client certs, mirrors)"))
        .arg(Arg::new("docker-config").long("docker-config").value_name("FILE").help("The node's docker config.json, tried after the pod's secrets as the kubelet does"))
        .arg(Arg::new("no-probe").long("no-probe").action(ArgAction::SetTrue).help("Do not contact registries; judge from the cluster's state alone"))
        .arg(Arg::new("message").long("message").value_name("TEXT").help("Classify one image-pull error message (an event or waiting message) and exit"))
        .arg(Arg::new("output").short('o').long("output").value_parser(["text", "json"]).default_value("text").help("Output format"))
}

fn read_manifests(files: &[String]) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut docs = vec![];
    for f in files {
        let (name, bytes) = if f == "-" {
            let mut b = vec![];
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut b)?;
            ("<stdin>".to_string(), b)
        } else {
            let b = std::fs::read(f).map_err(|e| anyhow::anyhow!("{f}: {e}"))?;
            (f.clone(), b)
        };
        let nodes = kubepull_core::lint::load_documents(&name, &bytes)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        for n in nodes {
            let v = n.to_json();
            // a List holds its objects in items
            if v.get("kind").and_then(|k| k.as_str()) == Some("List") {
                docs.extend(v["items"].as_array().cloned().unwrap_or_default());
            } else {
                docs.push(v);
            }
        }
    }
    Ok(docs)
}

fn classify_only(text: &str, json: bool) -> u8 {
    let c = kubepull_core::diagnose::classify_message(text);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&c).unwrap_or_else(|_| "{}".into())
        );
    } else {
        println!("Cause:       {}", c.cause.as_str());
        if !c.candidates.is_empty() {
            let v: Vec<&str> = c.candidates.iter().map(|c| c.as_str()).collect();
            println!("Or else:     {}", v.join(", "));
        }
        if let Some(r) = c.runtime {
            println!("Runtime:     {r}");
        }
        if let Some(r) = &c.registry {
            println!("Registry:    {r}");
        }
        if let Some(s) = c.http_status {
            println!("HTTP status: {s}");
        }
        if !c.evidence.is_empty() {
            println!("Evidence:");
            for e in &c.evidence {
                println!("  - {e}");
            }
        }
    }
    if c.cause == kubepull_core::diagnose::Cause::Ok {
        exit::OK
    } else {
        exit::FAILURE
    }
}

pub fn run(m: &ArgMatches) -> u8 {
    let json = m.get_one::<String>("output").map(String::as_str) == Some("json");
    if let Some(text) = m.get_one::<String>("message") {
        return classify_only(text, json);
    }
    let files: Vec<String> = m
        .get_many::<String>("filename")
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let target = m.get_one::<String>("target");
    let selector = m.get_one::<String>("selector");
    let given = [target.is_some(), selector.is_some(), !files.is_empty()]
        .iter()
        .filter(|x| **x)
        .count();
    if given > 1 {
        eprintln!("error: give one of POD | TYPE/NAME, -l SELECTOR or -f MANIFEST");
        return exit::USAGE;
    }
    let all_ns = m.get_flag("all-namespaces");
    if all_ns && m.get_one::<String>("namespace").is_some() {
        eprintln!("error: -A and -n cannot be used together");
        return exit::USAGE;
    }
    if all_ns && target.is_some() {
        eprintln!("error: a resource cannot be retrieved by name across all namespaces");
        return exit::USAGE;
    }
    let selection = if !files.is_empty() {
        match read_manifests(&files) {
            Ok(d) => Selection::Manifests(d),
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::USAGE;
            }
        }
    } else if let Some(s) = selector {
        Selection::Selector(s.clone())
    } else if let Some(t) = target {
        match t.split_once('/') {
            Some((kind, name)) => match gather::canonical_kind(kind) {
                Some(k) if !name.is_empty() => Selection::Object {
                    kind: k.to_string(),
                    name: name.to_string(),
                },
                _ => {
                    eprintln!("error: {t:?}: TYPE must be one of pod, deployment, statefulset, daemonset, replicaset, job, cronjob");
                    return exit::USAGE;
                }
            },
            None => Selection::Pod(t.clone()),
        }
    } else {
        Selection::All
    };
    let node_config = match m.get_one::<String>("docker-config") {
        None => None,
        Some(f) => match crate::creds_cmd::load_node_config(Path::new(f)) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("error: --docker-config: {e:#}");
                return exit::USAGE;
            }
        },
    };
    let cfg = kubepull_registry::ClientConfig {
        // a probe asks once: a retry loop would only hide a rate limit or a flaky registry
        max_retries: 0,
        request_timeout: doctor::probe::PROBE_TIMEOUT,
        ..Default::default()
    };
    let (client, hosts) =
        match crate::adapt::client(m.get_one::<String>("hosts-dir").map(Path::new), cfg) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::USAGE;
            }
        };
    let opts = Options {
        selection,
        namespace: m.get_one::<String>("namespace").cloned(),
        all_namespaces: all_ns,
        kubeconfig: m.get_one::<String>("kubeconfig").map(PathBuf::from),
        context: m.get_one::<String>("context").cloned(),
        hosts: hosts.map(Arc::new),
        node_config,
        probe: !m.get_flag("no-probe"),
        client,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::FAILURE;
        }
    };
    let tty = std::io::stderr().is_terminal() && !json;
    let progress = move |done: usize, total: usize| {
        if tty {
            eprint!("\rprobing registries: {done}/{total}");
            if done == total {
                eprint!("\r\x1b[K");
            }
        }
    };
    let report = match rt.block_on(doctor::run(&opts, Some(&progress))) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return if e.is_usage() {
                exit::USAGE
            } else {
                exit::FAILURE
            };
        }
    };
    if json {
        println!("{}", doctor::render::json(&report));
    } else if all_ns || report.containers.len() > 12 {
        print!("{}", doctor::render::grouped(&report));
    } else {
        print!("{}", doctor::render::text(&report));
    }
    if report.containers.iter().all(|c| c.ok()) {
        exit::OK
    } else {
        exit::FAILURE
    }
}
