//! Pod networking with the real CNI plugins (Debian's containernetworking-plugins in
//! /usr/lib/cni), real network namespaces and a real bridge. Needs root. Traffic stays between
//! the test's namespaces and this host.
//!
//! Every test uses its own node name (its own bridge), its own pod UIDs (their own namespaces)
//! and a /24 no route uses, and a guard removes all of it even when an assertion fails.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use kubepull_node::podnet::{
    self, netns, Cni, CniError, NetworkConfigList, NodeNetwork, PodNetwork, PodRef, PortMapping,
};

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn unique() -> (u32, u32) {
    (std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

fn prerequisites() -> bool {
    if !is_root() {
        eprintln!("skipping: needs root (network namespaces, bridges)");
        return false;
    }
    assert!(
        Path::new(podnet::DEFAULT_BIN_DIR).join("bridge").is_file(),
        "containernetworking-plugins must be installed in {}",
        podnet::DEFAULT_BIN_DIR
    );
    true
}

/// A /24 inside 10.251.0.0/16 that no route of this machine covers, chosen from the pid and a
/// counter so that concurrent tests differ.
fn free_subnet(pid: u32, n: u32) -> String {
    let out = Command::new("ip").args(["-j", "route"]).output().unwrap();
    let routes = String::from_utf8_lossy(&out.stdout).to_string();
    for k in 0..256 {
        let third = (pid.wrapping_mul(7) + n * 31 + k) % 256;
        let net = format!("10.251.{third}.0/24");
        if !routes.contains(&format!("10.251.{third}.")) {
            return net;
        }
    }
    panic!("no free /24 in 10.251.0.0/16");
}

fn uid(pid: u32, n: u32, k: u32) -> String {
    // a UID-shaped string whose first 16 hex digits are unique to this test
    format!("{pid:08x}-{n:04x}-{k:04x}-8000-000000000000")
}

fn links() -> Vec<serde_json::Value> {
    let out = Command::new("ip").args(["-j", "link"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn link_exists(name: &str) -> bool {
    links().iter().any(|l| l["ifname"].as_str() == Some(name))
}

fn nat_rules() -> String {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn netns_list() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Everything a test creates, removed on drop (even on panic).
struct Setup {
    net: PodNetwork,
    node: NodeNetwork,
    uids: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(node_name: &str) -> Setup {
        let (pid, n) = unique();
        let dir = tempfile::tempdir().unwrap();
        let node = NodeNetwork::new(node_name, &free_subnet(pid, n), dir.path());
        let cni = Cni::new(
            vec![PathBuf::from(podnet::DEFAULT_BIN_DIR)],
            node.config_list().unwrap(),
        );
        Setup {
            net: PodNetwork::new(cni, dir.path().join("cni").join("results")),
            node,
            uids: vec![],
            _dir: dir,
        }
    }

    fn pod(&mut self, uid: String) -> PodRef {
        self.uids.push(uid.clone());
        PodRef {
            namespace: "default".into(),
            name: format!("p{}", self.uids.len()),
            uid,
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let net = self.net.clone();
        let uids = self.uids.clone();
        let bridge = self.node.bridge.clone();
        // a runtime of its own: drop may run inside the test's runtime
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                for u in &uids {
                    let _ = net.teardown(u).await;
                    let _ = netns::delete(&netns::pod_netns_name(u)).await;
                }
                let _ = podnet::delete_bridge(&bridge).await;
            });
        })
        .join();
    }
}

fn in_netns(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(["netns", "exec", ns, "busybox"])
        .args(args)
        .output()
        .unwrap()
}

/// A server in `server_ns` answers one connection on `port` with `line`; a client (in
/// `client_ns`, or on the host) connects to `addr:to_port` and returns what it read. The client
/// retries until the server listens.
fn tcp_exchange(
    server_ns: &str,
    port: u16,
    line: &str,
    client_ns: Option<&str>,
    addr: &str,
    to_port: u16,
) -> String {
    let mut server = Command::new("ip")
        .args(["netns", "exec", server_ns, "busybox", "nc", "-l", "-p"])
        .arg(port.to_string())
        .args(["-e", "echo", line])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut got = String::new();
    for _ in 0..100 {
        let mut c = match client_ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "busybox"]);
                c
            }
            None => Command::new("busybox"),
        };
        let o = c
            .args(["nc", "-w", "5", addr, &to_port.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        if o.status.success() {
            got = String::from_utf8_lossy(&o.stdout).trim().to_string();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    got
}

#[tokio::test]
async fn two_pods_on_one_bridge_talk_and_teardown_leaves_nothing() {
    if !prerequisites() {
        return;
    }
    let (pid, n) = unique();
    let mut s = Setup::new(&format!("podnet-talk-{pid}-{n}"));
    let a = s.pod(uid(pid, n, 1));
    let b = s.pod(uid(pid, n, 2));
    let ipa = s.net.setup(&a, &[]).await.expect("ADD pod a");
    let ipb = s.net.setup(&b, &[]).await.expect("ADD pod b");
    assert_eq!(ipa.netns, netns::path(&netns::pod_netns_name(&a.uid)));
    let (IpAddr::V4(va), IpAddr::V4(vb)) = (ipa.ips[0], ipb.ips[0]) else {
        panic!("expected IPv4 pod IPs: {ipa:?} {ipb:?}");
    };
    assert_ne!(va, vb);
    let prefix = s.node.subnet.trim_end_matches("0/24");
    assert!(
        va.to_string().starts_with(prefix),
        "{va} in {}",
        s.node.subnet
    );
    assert!(
        vb.to_string().starts_with(prefix),
        "{vb} in {}",
        s.node.subnet
    );
    assert!(
        link_exists(&s.node.bridge),
        "bridge {} exists",
        s.node.bridge
    );

    // the same pod again: the remembered attachment, no second address
    let again = s.net.setup(&a, &[]).await.unwrap();
    assert_eq!(again.ips, ipa.ips);
    assert_eq!(
        podnet::ipam_reservations(&s.node.ipam_dir, &s.node.name).len(),
        2
    );

    // a pings b over the bridge; b pings a
    let nsa = netns::pod_netns_name(&a.uid);
    let nsb = netns::pod_netns_name(&b.uid);
    let o = in_netns(&nsa, &["ping", "-c", "1", "-W", "5", &vb.to_string()]);
    assert!(o.status.success(), "ping a→b: {o:?}");
    let o = in_netns(&nsb, &["ping", "-c", "1", "-W", "5", &va.to_string()]);
    assert!(o.status.success(), "ping b→a: {o:?}");
    // the host reaches the pod (through the bridge's gateway address)
    let o = Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "5", &va.to_string()])
        .output()
        .unwrap();
    assert!(o.status.success(), "ping host→a: {o:?}");

    // TCP: b answers a connection with a line, a reads it
    let got = tcp_exchange(
        &nsb,
        7777,
        "hello-from-b",
        Some(&nsa),
        &vb.to_string(),
        7777,
    );
    assert_eq!(got, "hello-from-b");

    // CHECK passes while the attachment is intact
    s.net.check(&a.uid).await.expect("CHECK");

    // teardown: no netns, no veth on the bridge, no IP reserved
    s.net.teardown(&a.uid).await.unwrap();
    s.net.teardown(&b.uid).await.unwrap();
    // DEL is idempotent
    s.net.teardown(&a.uid).await.unwrap();
    s.net.teardown(&b.uid).await.unwrap();
    let list = netns_list();
    assert!(!list.contains(&nsa) && !list.contains(&nsb), "{list}");
    let on_bridge: Vec<String> = links()
        .iter()
        .filter(|l| l["master"].as_str() == Some(s.node.bridge.as_str()))
        .map(|l| l["ifname"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        on_bridge.is_empty(),
        "veths left on the bridge: {on_bridge:?}"
    );
    assert!(podnet::ipam_reservations(&s.node.ipam_dir, &s.node.name).is_empty());
    assert!(s.net.records().is_empty());
    podnet::delete_bridge(&s.node.bridge).await.unwrap();
    podnet::delete_bridge(&s.node.bridge).await.unwrap();
    assert!(!link_exists(&s.node.bridge));
}

#[tokio::test]
async fn del_is_idempotent_and_survives_a_vanished_netns() {
    if !prerequisites() {
        return;
    }
    let (pid, n) = unique();
    let mut s = Setup::new(&format!("podnet-del-{pid}-{n}"));
    let a = s.pod(uid(pid, n, 1));
    // never attached: nothing to do
    s.net.teardown(&a.uid).await.unwrap();
    s.net.setup(&a, &[]).await.unwrap();
    let chain = podnet::masquerade_chain(&s.node.name, &netns::pod_netns_name(&a.uid));
    assert!(nat_rules().contains(&chain), "ipMasq chain {chain} exists");
    // the namespace disappears behind our back (a reboot, or someone ran ip netns del)
    let name = netns::pod_netns_name(&a.uid);
    assert!(Command::new("ip")
        .args(["netns", "delete", &name])
        .status()
        .unwrap()
        .success());
    // CHECK sees it
    let e = s.net.check(&a.uid).await.unwrap_err();
    assert!(matches!(e, CniError::Plugin { .. }), "{e:?}");
    // DEL still releases the address and the record, twice
    s.net.teardown(&a.uid).await.unwrap();
    s.net.teardown(&a.uid).await.unwrap();
    assert!(podnet::ipam_reservations(&s.node.ipam_dir, &s.node.name).is_empty());
    assert!(s.net.record(&a.uid).is_none());
    assert!(
        !nat_rules().contains(&chain),
        "ipMasq chain {chain} left behind"
    );
    // and the pod can be attached again
    let again = s.net.setup(&a, &[]).await.unwrap();
    assert!(!again.ips.is_empty());
    s.net.teardown(&a.uid).await.unwrap();
    assert!(!netns_list().contains(&name));
    assert!(
        !nat_rules().contains(&chain),
        "ipMasq chain {chain} left behind"
    );
}

#[tokio::test]
async fn cleanup_detaches_pods_no_longer_bound() {
    if !prerequisites() {
        return;
    }
    let (pid, n) = unique();
    let mut s = Setup::new(&format!("podnet-gc-{pid}-{n}"));
    let keep = s.pod(uid(pid, n, 1));
    let gone = s.pod(uid(pid, n, 2));
    s.net.setup(&keep, &[]).await.unwrap();
    s.net.setup(&gone, &[]).await.unwrap();
    let done = s.net.cleanup(|u| u == keep.uid).await;
    assert_eq!(done, vec![gone.uid.clone()]);
    let list = netns_list();
    assert!(list.contains(&netns::pod_netns_name(&keep.uid)), "{list}");
    assert!(!list.contains(&netns::pod_netns_name(&gone.uid)), "{list}");
    assert_eq!(s.net.records().len(), 1);
    // running it again changes nothing
    assert!(s.net.cleanup(|u| u == keep.uid).await.is_empty());
}

#[tokio::test]
async fn host_port_reaches_the_pod() {
    if !prerequisites() {
        return;
    }
    let (pid, n) = unique();
    let mut s = Setup::new(&format!("podnet-port-{pid}-{n}"));
    let a = s.pod(uid(pid, n, 1));
    let host_port = 20000 + (pid % 20000) as u16 + n as u16;
    let ips = s
        .net
        .setup(
            &a,
            &[PortMapping {
                host_port,
                container_port: 8080,
                protocol: "tcp".into(),
                host_ip: String::new(),
            }],
        )
        .await
        .unwrap();
    let nsa = netns::pod_netns_name(&a.uid);
    // the gateway is the host's address on the bridge: DNAT of a local destination
    let gw = s.node.subnet.replace(".0/24", ".1");
    let got = tcp_exchange(&nsa, 8080, "via-host-port", None, &gw, host_port);
    assert_eq!(
        got, "via-host-port",
        "{gw}:{host_port} → {:?}:8080",
        ips.ips
    );
    s.net.teardown(&a.uid).await.unwrap();
    // the DNAT rules went with DEL
    let rules = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(
        !rules.contains(&format!("--dport {host_port} ")),
        "hostPort rule left behind"
    );
}

#[tokio::test]
async fn missing_plugin_and_bad_results_are_typed_errors() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = |name: &str, body: &str| {
        let p = bin.join(name);
        std::fs::write(&p, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    // a hostile plugin answering VERSION properly, then garbage / an error result
    let version = r#"if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi"#;
    script("garbage", &format!("{version}\necho 'this is not json'"));
    script(
        "failing",
        &format!(
            "{version}\nif [ \"$CNI_COMMAND\" = ADD ]; then echo '{{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"bad bridge name\",\"details\":\"too long\"}}'; exit 1; fi"
        ),
    );
    script(
        "noip",
        &format!("{version}\necho '{{\"cniVersion\":\"1.0.0\",\"interfaces\":[],\"ips\":[]}}'"),
    );
    script(
        "old",
        r#"echo '{"cniVersion":"0.3.1","supportedVersions":["0.3.0","0.3.1"]}'"#,
    );
    let (pid, n) = unique();
    let list = |t: &str| {
        NetworkConfigList::parse(
            format!(r#"{{"cniVersion":"1.0.0","name":"t","plugins":[{{"type":"{t}"}}]}}"#)
                .as_bytes(),
            "test",
        )
        .unwrap()
    };
    let attach = |t: &str, k: u32| {
        let net = PodNetwork::new(
            Cni::new(vec![bin.clone()], list(t)),
            dir.path().join("results"),
        );
        let pod = PodRef {
            namespace: "default".into(),
            name: "p".into(),
            uid: uid(pid, n, k),
        };
        (net, pod)
    };
    struct NsGuard(Vec<String>);
    impl Drop for NsGuard {
        fn drop(&mut self) {
            for u in &self.0 {
                let _ = Command::new("ip")
                    .args(["netns", "delete", &netns::pod_netns_name(u)])
                    .output();
            }
        }
    }
    let _g = NsGuard((1..=5).map(|k| uid(pid, n, k)).collect());

    let (net, pod) = attach("nosuchplugin", 1);
    let e = net.setup(&pod, &[]).await.unwrap_err();
    assert!(
        matches!(&e, CniError::PluginNotFound { plugin, .. } if plugin == "nosuchplugin"),
        "{e:?}"
    );
    assert!(e.to_string().contains("--cni-bin-dir"), "{e}");

    let (net, pod) = attach("garbage", 2);
    let e = net.setup(&pod, &[]).await.unwrap_err();
    assert!(
        matches!(&e, CniError::BadResult { plugin, command, .. } if plugin == "garbage" && command == "ADD"),
        "{e:?}"
    );
    assert!(e.to_string().contains("not JSON"), "{e}");

    let (net, pod) = attach("failing", 3);
    let e = net.setup(&pod, &[]).await.unwrap_err();
    assert_eq!(e.code(), Some(7), "{e:?}");
    assert_eq!(
        e.to_string(),
        "plugin type=\"failing\" failed (ADD): bad bridge name; too long"
    );

    let (net, pod) = attach("noip", 4);
    let e = net.setup(&pod, &[]).await.unwrap_err();
    assert!(matches!(e, CniError::NoPodIp(_)), "{e:?}");

    let (net, pod) = attach("old", 5);
    let e = net.setup(&pod, &[]).await.unwrap_err();
    assert!(
        matches!(&e, CniError::NoCommonVersion { plugin, .. } if plugin == "old"),
        "{e:?}"
    );

    // every failed ADD was undone: no namespace, no record
    let list = netns_list();
    for k in 1..=5 {
        assert!(
            !list.contains(&netns::pod_netns_name(&uid(pid, n, k))),
            "{list}"
        );
    }
    assert!(PodNetwork::new(
        Cni::new(vec![bin.clone()], list_for_records()),
        dir.path().join("results")
    )
    .records()
    .is_empty());
}

fn list_for_records() -> NetworkConfigList {
    NetworkConfigList::parse(
        br#"{"cniVersion":"1.0.0","name":"t","plugins":[{"type":"x"}]}"#,
        "test",
    )
    .unwrap()
}

#[tokio::test]
async fn version_negotiation_with_the_real_plugins() {
    if !prerequisites() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = NodeNetwork::new("podnet-version", "10.251.0.0/24", dir.path());
    let cni = Cni::new(
        vec![PathBuf::from(podnet::DEFAULT_BIN_DIR)],
        node.config_list().unwrap(),
    );
    let v = cni.negotiate_version().await.unwrap();
    // whichever of 1.0.0/1.1.0 the installed plugins speak, and it is one they list
    let bridge = cni.plugin_versions("bridge").await.unwrap();
    assert!(bridge.contains(&v), "{v} in {bridge:?}");
    assert!(podnet::SUPPORTED_VERSIONS.contains(&v.as_str()));
}

#[tokio::test]
async fn two_nodes_on_one_host_use_their_own_bridges_and_subnets() {
    if !prerequisites() {
        return;
    }
    let (pid, n) = unique();
    let mut a = Setup::new(&format!("podnet-node-a-{pid}-{n}"));
    let mut b = Setup::new(&format!("podnet-node-b-{pid}-{n}"));
    assert_ne!(a.node.bridge, b.node.bridge);
    assert_ne!(a.node.subnet, b.node.subnet);
    let pa = a.pod(uid(pid, n, 1));
    let pb = b.pod(uid(pid, n, 2));
    let ia = a.net.setup(&pa, &[]).await.unwrap();
    let ib = b.net.setup(&pb, &[]).await.unwrap();
    assert!(ia.ips[0]
        .to_string()
        .starts_with(a.node.subnet.trim_end_matches("0/24")));
    assert!(ib.ips[0]
        .to_string()
        .starts_with(b.node.subnet.trim_end_matches("0/24")));
    // each pod hangs off its own node's bridge
    let veth_master = |netns_name: &str| -> String {
        // the host side of the pod's veth is the peer of eth0 (its ifindex in link-netns terms)
        let o = Command::new("ip")
            .args(["-n", netns_name, "-j", "link", "show", "eth0"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let peer = v[0]["link_index"].as_u64().unwrap();
        links()
            .iter()
            .find(|l| l["ifindex"].as_u64() == Some(peer))
            .and_then(|l| l["master"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    assert_eq!(veth_master(&netns::pod_netns_name(&pa.uid)), a.node.bridge);
    assert_eq!(veth_master(&netns::pod_netns_name(&pb.uid)), b.node.bridge);
    // the host reaches both
    for ip in [ia.ips[0], ib.ips[0]] {
        let o = Command::new("busybox")
            .args(["ping", "-c", "1", "-W", "5", &ip.to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "ping host→{ip}: {o:?}");
    }
    a.net.teardown(&pa.uid).await.unwrap();
    b.net.teardown(&pb.uid).await.unwrap();
}
