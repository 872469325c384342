//! Paginated lists with the real kubectl on the embedded (redb) store: the pages of one list are
//! one state, whatever is created, updated or deleted between them, as on etcd
//! (kube-apiserver's continue token: `storage/etcd3/store.go` `GetList`).

use std::collections::BTreeSet;

use serde_json::Value;

mod common;
use common::{https_client_builder, kubectl};

fn configmaps(names: impl IntoIterator<Item = String>) -> String {
    names
        .into_iter()
        .map(|n| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {n}, namespace: default}}\ndata: {{k: v}}\n---\n"))
        .collect()
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

async fn pages_across_writes(datastore: &str) {
    let d = tempfile::tempdir().unwrap();
    let cfg = kubepull_control::ServerConfig {
        datastore: datastore.into(),
        ..common::server_config(d.path(), false)
    };
    let server = kubepull_control::start(cfg).await.unwrap();
    let (kc, home) = (server.kubeconfig_path(), d.path().to_path_buf());
    let k = {
        let (kc, home) = (kc.clone(), home.clone());
        move |args: &[&str], stdin: Option<&str>| {
            let (ok, out) = kubectl(&kc, &home, args, stdin);
            assert!(ok, "kubectl {args:?}: {out}");
            out
        }
    };
    let raw = |k: &dyn Fn(&[&str], Option<&str>) -> String, path: &str| -> Value {
        serde_json::from_str(&k(&["get", "--raw", path], None)).unwrap()
    };
    k(
        &["apply", "-f", "-"],
        Some(&configmaps((0..12).map(|i| format!("z-{i:02}")))),
    );
    let base = "/api/v1/namespaces/default/configmaps";
    let before = names(&raw(&k, base));
    assert!(before.len() >= 12, "{before:?}");

    // page by page with kubectl get --raw, writing between every two pages
    let first = raw(&k, &format!("{base}?limit=3"));
    let rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let mut got = names(&first);
    let mut token = first["metadata"]["continue"].as_str().unwrap().to_string();
    let mut writes = vec![
        vec!["delete", "configmap", "z-05"],
        vec!["create", "configmap", "z-035"],
        vec!["label", "configmap", "z-06", "changed=yes"],
        vec!["delete", "configmap", "z-00"],
        vec!["create", "configmap", "z-99"],
    ]
    .into_iter();
    loop {
        if let Some(w) = writes.next() {
            k(&w, None);
        }
        let page = raw(&k, &format!("{base}?limit=3&continue={token}"));
        assert_eq!(page["metadata"]["resourceVersion"], rv.as_str());
        for i in page["items"].as_array().unwrap() {
            assert!(
                i["metadata"]["labels"]["changed"].is_null(),
                "a page showed a later update: {i}"
            );
        }
        got.extend(names(&page));
        match page["metadata"]["continue"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_string(),
            _ => break,
        }
    }
    assert_eq!(got, before, "the pages are the first page's state");
    let now = names(&raw(&k, base));
    assert!(now.contains(&"z-035".to_string()) && !now.contains(&"z-05".to_string()));

    // kubectl get --chunk-size=2 while a client writes: each write creates a-N, then deletes
    // y-N; one state has N or N-1 of the y's deleted for N a's, never more
    k(
        &["apply", "-f", "-"],
        Some(&configmaps((0..60).map(|i| format!("y-{i:03}")))),
    );
    let client = https_client_builder(&server).build().unwrap();
    let (url, token) = (server.url(), server.admin_token());
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // writes done (a create and a delete each)
    let done = std::sync::Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, done) = (stop.clone(), done.clone());
        tokio::spawn(async move {
            for i in 0..60 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("a-{i:03}")}});
                let r = client
                    .post(format!("{url}{base}"))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                let r = client
                    .delete(format!("{url}{base}/y-{i:03}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                done.store(i + 1, Ordering::SeqCst);
                // spread the writes over the lists below
                tokio::time::sleep(std::time::Duration::from_millis(15)).await;
            }
        })
    };
    let mut overlapped = false;
    for _ in 0..3 {
        let before = done.load(Ordering::SeqCst);
        let (kc, home) = (kc.clone(), home.clone());
        let (ok, out) = tokio::task::spawn_blocking(move || {
            kubectl(
                &kc,
                &home,
                &["get", "configmaps", "--chunk-size=2", "-o", "name"],
                None,
            )
        })
        .await
        .unwrap();
        assert!(ok, "{out}");
        overlapped |= done.load(Ordering::SeqCst) > before;
        let listed: BTreeSet<&str> = out.lines().collect();
        let a = listed
            .iter()
            .filter(|n| n.starts_with("configmap/a-"))
            .count();
        let y = listed
            .iter()
            .filter(|n| n.starts_with("configmap/y-"))
            .count();
        let deleted = 60 - y;
        assert!(
            deleted == a || deleted + 1 == a,
            "not one state: {a} created, {deleted} deleted"
        );
    }
    assert!(overlapped, "no write came while kubectl was listing");
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_pages_read_one_state_across_writes_on_redb() {
    pages_across_writes("").await;
}
