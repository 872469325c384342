//! CustomResourceDefinitions with the real kubectl: the ClusterPullSecret CRD (cluster-scoped,
//! status subresource, printer columns) and a namespaced CRD with two versions and `scale`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use kubepull_control::start;

use super::{kubectl, server_config, token_kubeconfig};

pub const CLUSTER_PULL_SECRET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusterpullsecrets.kubepull.io}
spec:
  group: kubepull.io
  scope: Cluster
  names: {plural: clusterpullsecrets, singular: clusterpullsecret, kind: ClusterPullSecret, shortNames: [cps]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Registry, type: string, jsonPath: .spec.registry}
    - {name: Namespaces, type: integer, jsonPath: .status.namespaces}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [registry, secretRef]
            properties:
              registry: {type: string, pattern: '^[a-z0-9.:-]+$'}
              secretRef:
                type: object
                required: [name, namespace]
                properties:
                  name: {type: string}
                  namespace: {type: string}
              namespaceSelector: {type: object, x-kubernetes-preserve-unknown-fields: true}
              mode: {type: string, enum: [Copy, Reference], default: Copy}
          status:
            type: object
            properties:
              namespaces: {type: integer}
"#;

const MIRROR_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: mirrors.test.kubepull.io}
spec:
  group: test.kubepull.io
  scope: Namespaced
  names: {plural: mirrors, kind: Mirror}
  versions:
  - name: v1beta1
    served: true
    storage: false
    deprecated: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas, labelSelectorPath: .status.selector}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              replicas: {type: integer, minimum: 0, default: 1}
              upstream: {type: string}
          status:
            type: object
            properties:
              replicas: {type: integer}
              selector: {type: string}
"#;

const CPS: &str = r#"
apiVersion: kubepull.io/v1alpha1
kind: ClusterPullSecret
metadata: {name: corp}
spec:
  registry: registry.corp.example
  secretRef: {name: regcred, namespace: kube-system}
  namespaceSelector: {matchLabels: {team: a}}
  surprise: dropped
"#;

/// The whole life of two CRDs through kubectl: established, discovered, CRUD with pruning,
/// defaults and schema errors naming the field, printer columns, the status and scale
/// subresources, watch, RBAC on a custom resource, restart, and deletion of the CRD with its
/// objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = server_config(d.path(), false);
    cfg.datastore = String::new(); // redb: the restart below reads the same file
    let server = start(cfg.clone()).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let dir = d.path().to_path_buf();
    let (url, ca) = (server.url(), server.ca_pem());
    let (a2, h2) = (admin.clone(), home.clone());
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let ki = |args: &[&str], stdin: &str| kubectl(&admin, &home, args, Some(stdin));
        let (ok, out) = ki(&["apply", "-f", "-"], CLUSTER_PULL_SECRET_CRD);
        assert!(ok, "{out}");
        let (ok, out) = ki(&["apply", "-f", "-"], MIRROR_CRD);
        assert!(ok, "{out}");
        let (ok, out) = k(&["wait", "--for=condition=Established", "crd/clusterpullsecrets.kubepull.io", "crd/mirrors.test.kubepull.io"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "crd", "clusterpullsecrets.kubepull.io", "-o", "jsonpath={.status.conditions[*].reason} {.status.storedVersions}"]);
        assert!(ok && out.contains("NoConflicts InitialNamesAccepted") && out.contains("v1alpha1"), "{out}");
        let (ok, out) = k(&["api-resources", "--api-group=kubepull.io"]);
        assert!(ok && out.contains("clusterpullsecrets") && out.contains("cps") && out.contains("kubepull.io/v1alpha1") && out.contains("false"), "{out}");
        // the OpenAPI documents follow the CRD: kubectl explain reads its schema
        let (ok, out) = k(&["explain", "clusterpullsecrets.spec"]);
        assert!(ok && out.contains("KIND:") && out.contains("ClusterPullSecret") && out.contains("secretRef"), "{out}");

        // create: the unknown field is pruned (with a warning), the default applied
        let (ok, out) = ki(&["apply", "--validate=warn", "-f", "-"], CPS);
        assert!(ok, "{out}");
        assert!(out.contains("unknown field \"spec.surprise\""), "{out}");
        let (ok, out) = k(&["get", "cps", "corp", "-o", "json"]);
        assert!(ok, "{out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["spec"]["mode"], "Copy");
        assert!(v["spec"].get("surprise").is_none(), "{v}");
        assert_eq!(v["spec"]["namespaceSelector"]["matchLabels"]["team"], "a", "preserved");
        assert_eq!(v["metadata"]["generation"], 1);
        // applied again with a change (kubectl sends a merge patch for custom resources)
        let (ok, out) = ki(&["apply", "--validate=warn", "-f", "-"], &CPS.replace("registry.corp.example", "registry2.corp.example"));
        assert!(ok && out.contains("clusterpullsecret.kubepull.io/corp configured"), "{out}");
        let (ok, out) = k(&["get", "cps", "corp", "-o", "jsonpath={.spec.registry} {.metadata.generation}"]);
        assert!(ok && out.trim() == "registry2.corp.example 2", "{out}");
        let (ok, out) = k(&["get", "crd"]);
        assert!(ok && out.starts_with("NAME") && out.contains("CREATED AT") && out.contains("clusterpullsecrets.kubepull.io"), "{out}");
        // strict validation refuses it instead
        let strict = CPS.replace("name: corp", "name: strict");
        let (ok, out) = ki(&["create", "--validate=strict", "-f", "-"], &strict);
        assert!(!ok && out.contains("unknown field \"spec.surprise\""), "{out}");

        // invalid objects are refused with the field named
        let bad = "apiVersion: kubepull.io/v1alpha1\nkind: ClusterPullSecret\nmetadata: {name: bad}\nspec: {registry: 'Has Spaces', mode: Sometimes}\n";
        let (ok, out) = ki(&["create", "-f", "-"], bad);
        assert!(!ok);
        for needle in [
            "The ClusterPullSecret \"bad\" is invalid",
            "spec.secretRef: Required value",
            "spec.registry: Invalid value: \"Has Spaces\": spec.registry in body should match '^[a-z0-9.:-]+$'",
            "spec.mode: Unsupported value: \"Sometimes\": supported values: \"Copy\", \"Reference\"",
        ] {
            assert!(out.contains(needle), "{needle}\n{out}");
        }
        let (ok, out) = k(&["get", "cps", "bad"]);
        assert!(!ok && out.contains("clusterpullsecrets.kubepull.io \"bad\" not found"), "{out}");

        // printer columns
        let (ok, out) = k(&["get", "cps"]);
        assert!(ok, "{out}");
        let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, vec!["NAME", "REGISTRY", "NAMESPACES", "AGE"], "{out}");
        assert!(out.lines().nth(1).unwrap_or("").starts_with("corp") && out.contains("registry2.corp.example"), "{out}");
        // a changed CRD is served at once: a new printer column
        let more = CLUSTER_PULL_SECRET_CRD.replace(
            "    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}",
            "    - {name: Mode, type: string, jsonPath: .spec.mode}\n    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}",
        );
        let more = more.replace(
            "              mode: {type: string, enum: [Copy, Reference], default: Copy}",
            "              mode: {type: string, enum: [Copy, Reference], default: Copy, x-kubernetes-validations: [{rule: 'self != \"\"'}]}",
        );
        let (ok, out) = ki(&["apply", "-f", "-"], &more);
        assert!(ok && out.contains("configured"), "{out}");
        assert!(out.contains("x-kubernetes-validations rules are not evaluated by this API server"), "{out}");
        let (ok, out) = k(&["get", "crd", "clusterpullsecrets.kubepull.io", "-o", "jsonpath={.metadata.generation}"]);
        assert!(ok && out.trim() == "2", "a spec change of the CRD moves its generation: {out}");
        let (ok, out) = k(&["get", "cps"]);
        assert!(ok, "{out}");
        let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, vec!["NAME", "REGISTRY", "NAMESPACES", "MODE", "AGE"], "{out}");
        assert!(out.lines().nth(1).unwrap_or("").contains("Copy"), "{out}");

        // status subresource: only status changes, generation stays
        let (ok, out) = k(&["patch", "cps", "corp", "--subresource=status", "--type=merge", "-p", r#"{"status":{"namespaces":3},"spec":{"registry":"evil.example"}}"#]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cps", "corp", "-o", "jsonpath={.status.namespaces} {.spec.registry} {.metadata.generation}"]);
        assert!(ok && out.trim() == "3 registry2.corp.example 2", "{out}");
        // the main resource ignores status; a spec change moves generation
        let (ok, out) = k(&["patch", "cps", "corp", "--type=merge", "-p", r#"{"status":{"namespaces":9},"spec":{"mode":"Reference"}}"#]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cps", "corp", "-o", "jsonpath={.status.namespaces} {.spec.mode} {.metadata.generation}"]);
        assert!(ok && out.trim() == "3 Reference 3", "{out}");
        let (ok, out) = k(&["get", "cps"]);
        assert!(ok && out.lines().nth(1).unwrap_or("").split_whitespace().nth(2) == Some("3"), "{out}");
        // json patch works, strategic merge patch does not (415, as upstream)
        let (ok, out) = k(&["patch", "cps", "corp", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/registry","value":"reg.example"}]"#]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["patch", "cps", "corp", "--type=strategic", "-p", r#"{"spec":{"registry":"x.example"}}"#]);
        assert!(!ok && out.contains("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"), "{out}");
        // server-side apply
        let ssa = "apiVersion: kubepull.io/v1alpha1\nkind: ClusterPullSecret\nmetadata: {name: ssa}\nspec: {registry: ssa.example, secretRef: {name: a, namespace: b}}\n";
        let (ok, out) = ki(&["apply", "--server-side", "-f", "-"], ssa);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cps", "ssa", "-o", "jsonpath={.spec.mode}"]);
        assert!(ok && out.trim() == "Copy", "{out}");
        let (ok, out) = k(&["delete", "cps", "ssa"]);
        assert!(ok, "{out}");
        // a label the CRD does not declare in selectableFields is refused
        let (ok, out) = k(&["get", "cps", "--field-selector", "spec.registry=x"]);
        assert!(!ok && out.contains("field label not supported: spec.registry"), "{out}");

        // a watch sees the changes
        let mut w = Command::new("kubectl")
            .env("KUBECONFIG", &admin)
            .env("HOME", &home)
            .args(["get", "cps", "-w", "--request-timeout=60s", "--output-watch-events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(w.stdout.take().unwrap()).lines();
        let mut seen = vec![];
        while let Some(Ok(l)) = lines.next() {
            seen.push(l.clone());
            if l.contains("ADDED") && l.contains("corp") {
                break;
            }
        }
        let (ok, out) = k(&["patch", "cps", "corp", "--type=merge", "-p", r#"{"spec":{"registry":"watched.example"}}"#]);
        assert!(ok, "{out}");
        while let Some(Ok(l)) = lines.next() {
            seen.push(l.clone());
            if l.contains("MODIFIED") && l.contains("watched.example") {
                break;
            }
        }
        let _ = w.kill();
        let _ = w.wait();
        assert!(seen.iter().any(|l| l.contains("MODIFIED") && l.contains("watched.example")), "{seen:?}");

        // the namespaced CRD: defaults, scale, versions, selectors
        let (ok, out) = k(&["create", "namespace", "t"]);
        assert!(ok, "{out}");
        let m = "apiVersion: test.kubepull.io/v1\nkind: Mirror\nmetadata: {name: m1, namespace: t, labels: {tier: a}}\nspec: {upstream: docker.io}\n";
        let (ok, out) = ki(&["apply", "-f", "-"], m);
        assert!(ok, "{out}");
        let (ok, out) = ki(&["apply", "-f", "-"], &m.replace("m1", "m2").replace("tier: a", "tier: b"));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "mirrors", "-n", "t", "-l", "tier=b", "-o", "name"]);
        assert!(ok && out.trim() == "mirror.test.kubepull.io/m2", "{out}");
        let (ok, out) = k(&["get", "mirrors", "-A", "--field-selector", "metadata.name=m1", "-o", "name"]);
        assert!(ok && out.trim() == "mirror.test.kubepull.io/m1", "{out}");
        let (ok, out) = k(&["get", "mirror", "m1", "-n", "t", "-o", "jsonpath={.spec.replicas}"]);
        assert!(ok && out.trim() == "1", "defaulted: {out}");
        let (ok, out) = k(&["get", "mirror", "m1", "-n", "t"]);
        assert!(ok && out.starts_with("NAME") && out.contains("AGE"), "{out}");
        let (ok, out) = k(&["scale", "mirror", "m1", "-n", "t", "--replicas=3"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "mirror", "m1", "-n", "t", "-o", "jsonpath={.spec.replicas} {.metadata.generation}"]);
        assert!(ok && out.trim() == "3 2", "{out}");
        let (ok, out) = k(&["get", "--raw", "/apis/test.kubepull.io/v1/namespaces/t/mirrors/m1/scale"]);
        assert!(ok, "{out}");
        let sc: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!((sc["kind"].clone(), sc["spec"]["replicas"].clone(), sc["status"]["replicas"].clone()), ("Scale".into(), 3.into(), 0.into()));
        let (ok, out) = k(&["get", "mirror", "m1", "-n", "t", "--subresource=scale"]);
        assert!(ok, "{out}");
        let header: Vec<&str> = out.lines().next().unwrap_or("").split_whitespace().collect();
        assert_eq!(header, vec!["NAME", "DESIRED", "AVAILABLE", "AGE"], "{out}");
        let row: Vec<&str> = out.lines().nth(1).unwrap_or("").split_whitespace().collect();
        assert_eq!(row.get(..3), Some(&["m1", "3", "0"][..]), "{out}");
        let (ok, out) = k(&["scale", "mirror", "m1", "-n", "t", "--replicas=-1"]);
        assert!(!ok, "{out}");
        // the Scale's replicas go into the custom resource, whose validation checks them
        // (`ValidateScaleSpec`); the Scale itself is not checked (`ValidateScale` is the
        // built-in kinds')
        let (ok, out) = k(&["patch", "mirror", "m1", "-n", "t", "--subresource=scale", "--type=merge", "-p", r#"{"spec":{"replicas":-1}}"#]);
        assert!(!ok && out.contains(r#"The Mirror "m1" is invalid"#), "{out}");
        assert!(out.contains(".spec.replicas: Invalid value: -1: should be a non-negative integer"), "{out}");
        let (ok, out) = k(&["patch", "mirror", "m1", "-n", "t", "--subresource=scale", "--type=merge", "-p", r#"{"metadata":{"labels":{"a b":"c"}},"spec":{"replicas":3}}"#]);
        assert!(ok, "{out}");
        // and on the custom resource's own writes: the spec's on create and update, the
        // status's on every write
        let bad = "apiVersion: test.kubepull.io/v1\nkind: Mirror\nmetadata: {name: m9, namespace: t}\nspec: {upstream: docker.io, replicas: 2147483648}\nstatus: {replicas: 1.5}\n";
        let (ok, out) = ki(&["create", "-f", "-"], bad);
        assert!(!ok && out.contains(".spec.replicas: Invalid value: 2147483648: should be less than or equal to 2147483647"), "{out}");
        let (ok, out) = k(&["patch", "mirror", "m1", "-n", "t", "--subresource=status", "--type=merge", "-p", r#"{"status":{"replicas":-2,"selector":{"a":"b"}}}"#]);
        assert!(!ok && out.contains(".status.replicas: Invalid value: -2: should be a non-negative integer"), "{out}");
        assert!(out.contains(r#".status.selector: Invalid value: "": .status.selector accessor error: map[] is of the type map[string]interface {}, expected string"#), "{out}");
        // the other served version: same object, its apiVersion
        let (ok, out) = k(&["get", "mirrors.v1beta1.test.kubepull.io", "m1", "-n", "t", "-o", "jsonpath={.apiVersion} {.spec.upstream}"]);
        assert!(ok && out.contains("test.kubepull.io/v1beta1 docker.io"), "{out}");
        assert!(out.contains("Warning: test.kubepull.io/v1beta1 Mirror is deprecated; use test.kubepull.io/v1 Mirror"), "{out}");
        // written through the other version: stored in the storage version, read in either
        let m3 = "apiVersion: test.kubepull.io/v1beta1\nkind: Mirror\nmetadata: {name: m3, namespace: t}\nspec: {upstream: quay.io, extra: kept}\n";
        let (ok, out) = ki(&["create", "-o", "json", "-f", "-"], m3);
        assert!(ok, "{out}");
        // stdout (the object), then stderr (the deprecation warning)
        let created: serde_json::Value = serde_json::Deserializer::from_str(&out).into_iter().next().unwrap().unwrap();
        assert!(out.contains("Warning: test.kubepull.io/v1beta1 Mirror is deprecated"), "{out}");
        assert_eq!(created["apiVersion"], "test.kubepull.io/v1beta1");
        assert!(created["spec"].get("extra").is_none(), "answered as stored: {created}");
        let (ok, out) = k(&["get", "mirror", "m3", "-n", "t", "-o", "jsonpath={.apiVersion} {.spec.replicas}"]);
        assert!(ok && out.trim() == "test.kubepull.io/v1 1", "read as v1, pruned and defaulted with the storage schema: {out}");
        // legacy discovery: the preferred version first, subresources listed
        let (ok, out) = k(&["get", "--raw", "/apis/test.kubepull.io"]);
        assert!(ok, "{out}");
        let g: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(g["preferredVersion"]["version"], "v1", "{g}");
        assert_eq!(g["versions"].as_array().map(Vec::len), Some(2), "{g}");
        let (ok, out) = k(&["get", "--raw", "/apis/test.kubepull.io/v1"]);
        assert!(ok, "{out}");
        let l: serde_json::Value = serde_json::from_str(&out).unwrap();
        let names: Vec<&str> = l["resources"].as_array().unwrap().iter().filter_map(|r| r["name"].as_str()).collect();
        assert_eq!(names, vec!["mirrors", "mirrors/status", "mirrors/scale"], "{l}");
        let (ok, out) = k(&["get", "--raw", "/apis"]);
        assert!(ok && out.contains("\"name\":\"kubepull.io\"") && out.contains("kubepull.io/v1alpha1"), "{out}");
        // the ClusterPullSecret has no scale subresource
        let (ok, out) = k(&["get", "--raw", "/apis/kubepull.io/v1alpha1/clusterpullsecrets/corp/scale"]);
        assert!(!ok && out.contains("NotFound"), "{out}");

        // RBAC on a custom resource: a Role granting mirrors allows exactly that
        let (ok, out) = k(&["create", "serviceaccount", "bot", "-n", "t"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "role", "mirror-reader", "-n", "t", "--verb=get,list", "--resource=mirrors.test.kubepull.io"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "rolebinding", "bot-mirrors", "-n", "t", "--role=mirror-reader", "--serviceaccount=t:bot"]);
        assert!(ok, "{out}");
        let (ok, token) = k(&["create", "token", "bot", "-n", "t"]);
        assert!(ok, "{token}");
        let bot = token_kubeconfig(&dir, "bot.kubeconfig", &url, &ca, &format!("    token: {}\n", token.trim()));
        let kb = |args: &[&str]| kubectl(&bot, &dir.join("bothome"), args, None);
        let (ok, out) = kb(&["get", "mirrors", "-o", "name"]);
        assert!(ok && out.contains("mirror.test.kubepull.io/m1"), "{out}");
        let (ok, out) = kb(&["delete", "mirror", "m1"]);
        assert!(!ok && out.contains("cannot delete resource \"mirrors\" in API group \"test.kubepull.io\" in the namespace \"t\""), "{out}");
        let (ok, out) = kb(&["get", "mirrors", "-n", "default"]);
        assert!(!ok && out.contains("Forbidden"), "{out}");
        let (ok, out) = kb(&["get", "clusterpullsecrets"]);
        assert!(!ok && out.contains("cannot list resource \"clusterpullsecrets\" in API group \"kubepull.io\" at the cluster scope"), "{out}");
        let (ok, out) = kb(&["get", "mirrors", "m1", "--subresource=scale"]);
        assert!(!ok && out.contains("Forbidden"), "{out}");
    })
    .await
    .unwrap();

    // the etcd layout of kube-apiserver, in the storage version
    let kv = server
        .objects()
        .store()
        .get("/registry/test.kubepull.io/mirrors/t/m3")
        .await
        .unwrap()
        .unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&kv.value).unwrap();
    assert_eq!(stored["apiVersion"], "test.kubepull.io/v1");
    assert!(
        stored["spec"].get("extra").is_none(),
        "pruned with the storage schema: {stored}"
    );
    assert!(
        stored["spec"].get("replicas").is_none(),
        "defaults of the storage version apply on read: {stored}"
    );
    assert_eq!(stored["spec"]["upstream"], "quay.io");
    // the schemas for OpenAPI publishing
    let schemas = kubepull_control::crd::openapi_schemas(&server.objects());
    let kinds: Vec<(&str, &str, &str)> = schemas
        .iter()
        .map(|s| (s.group.as_str(), s.version.as_str(), s.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("kubepull.io", "v1alpha1", "ClusterPullSecret"),
            ("test.kubepull.io", "v1", "Mirror"),
            ("test.kubepull.io", "v1beta1", "Mirror")
        ]
    );
    assert_eq!(
        schemas[0].schema["properties"]["spec"]["required"],
        serde_json::json!(["registry", "secretRef"])
    );
    // a restart keeps the CRDs and their objects
    server.shutdown().await;
    let server = start(cfg).await.unwrap();
    let (admin, home) = (a2, h2);
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let (ok, out) = k(&[
            "get",
            "cps",
            "corp",
            "-o",
            "jsonpath={.spec.registry} {.status.namespaces}",
        ]);
        assert!(ok && out.trim() == "watched.example 3", "{out}");
        let (ok, out) = k(&[
            "get",
            "mirror",
            "m1",
            "-n",
            "t",
            "-o",
            "jsonpath={.spec.replicas}",
        ]);
        assert!(ok && out.trim() == "3", "{out}");

        // deleting a CRD deletes its objects and stops serving it
        let (ok, out) = k(&["delete", "crd", "mirrors.test.kubepull.io"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&[
            "get",
            "--raw",
            "/apis/test.kubepull.io/v1/namespaces/t/mirrors",
        ]);
        assert!(!ok && out.contains("NotFound"), "{out}");
        // kubectl's discovery cache may still name the resource: the list is then a 404
        let (ok, out) = k(&["get", "mirrors", "-A"]);
        assert!(
            !ok && (out.contains("the server doesn't have a resource type \"mirrors\"")
                || out.contains("the server could not find the requested resource")),
            "{out}"
        );
        // created again, it starts empty
        let (ok, out) = kubectl(&admin, &home, &["apply", "-f", "-"], Some(MIRROR_CRD));
        assert!(ok, "{out}");
        let (ok, out) = k(&[
            "wait",
            "--for=condition=Established",
            "crd/mirrors.test.kubepull.io",
        ]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "mirrors", "-A", "-o", "name"]);
        assert!(ok && out.trim().is_empty(), "{out}");
        let (ok, out) = k(&["get", "cps", "-o", "name"]);
        assert!(
            ok && out.trim() == "clusterpullsecret.kubepull.io/corp",
            "{out}"
        );
    })
    .await
    .unwrap();
    server.shutdown().await;
}

fn http_client(ca: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
        .tls_built_in_root_certs(false)
        .use_rustls_tls()
        .build()
        .unwrap()
}

/// Bad CRDs and bad custom resource bodies get Status errors and store nothing: a
/// non-structural schema, two storage versions, a conversion webhook, a protected group, name
/// conflicts (NamesAccepted False, not served), garbage and oversized bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_crds_and_bodies_store_nothing() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let http = http_client(&server.ca_pem());
    let (a2, h2) = (admin.clone(), home.clone());
    tokio::task::spawn_blocking(move || {
        let ki = |stdin: &str| kubectl(&a2, &h2, &["create", "-f", "-"], Some(stdin));
        let nonstructural = CLUSTER_PULL_SECRET_CRD.replace("registry: {type: string, pattern: '^[a-z0-9.:-]+$'}", "registry: {pattern: '^[a-z]+$'}");
        let (ok, out) = ki(&nonstructural);
        assert!(!ok);
        assert!(out.contains("The CustomResourceDefinition \"clusterpullsecrets.kubepull.io\" is invalid: spec.validation.openAPIV3Schema.properties[spec].properties[registry].type: Required value: must not be empty for specified object fields"), "{out}");
        let webhook = MIRROR_CRD.replace("scope: Namespaced", "scope: Namespaced\n  conversion: {strategy: Webhook}");
        let (ok, out) = ki(&webhook);
        assert!(!ok && out.contains("spec.conversion.strategy: Unsupported value: \"Webhook\": supported values: \"None\""), "{out}");
        let two = MIRROR_CRD.replace("storage: false", "storage: true");
        let (ok, out) = ki(&two);
        assert!(!ok && out.contains("must have exactly one version marked as storage version"), "{out}");
        let protected = MIRROR_CRD.replace("test.kubepull.io", "test.k8s.io");
        let (ok, out) = ki(&protected);
        assert!(!ok && out.contains("protected groups must have approval annotation"), "{out}");
        let (ok, out) = kubectl(&a2, &h2, &["get", "crd", "-o", "name"], None);
        assert!(ok && out.trim().is_empty(), "nothing stored: {out}");
        // a second CRD claiming a taken short name is stored but not served
        let (ok, out) = ki(CLUSTER_PULL_SECRET_CRD);
        assert!(ok, "{out}");
        let clash = CLUSTER_PULL_SECRET_CRD
            .replace("clusterpullsecrets", "otherthings")
            .replace("clusterpullsecret,", "otherthing,")
            .replace("kind: ClusterPullSecret", "kind: OtherThing");
        let (ok, out) = ki(&clash);
        assert!(ok, "{out}");
        let (ok, out) = kubectl(&a2, &h2, &["get", "crd", "otherthings.kubepull.io", "-o", "jsonpath={.status.conditions[*].reason}"], None);
        assert!(ok && out.trim() == "ShortNamesConflict NotAccepted", "{out}");
    })
    .await
    .unwrap();
    let base = format!(
        "{}/apis/kubepull.io/v1alpha1/clusterpullsecrets",
        server.url()
    );
    let r = http
        .get(format!(
            "{}/apis/kubepull.io/v1alpha1/otherthings",
            server.url()
        ))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "a CRD whose names are not accepted is not served"
    );
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{not json".to_vec(), 400, "not valid JSON"),
        (b"[1,2]".to_vec(), 400, "JSON object"),
        (br#"{"apiVersion":"kubepull.io/v9","kind":"ClusterPullSecret","metadata":{"name":"x"}}"#.to_vec(), 400, "does not match the expected API version"),
        (br#"{"apiVersion":"kubepull.io/v1alpha1","kind":"ClusterPullSecret","metadata":{"name":"x"},"spec":{"registry":5,"secretRef":{"name":"a","namespace":"b"}}}"#.to_vec(), 422, "spec.registry in body must be of type string: \"integer\""),
        (br#"{"apiVersion":"kubepull.io/v1alpha1","kind":"ClusterPullSecret","metadata":{"name":"Bad_Name"},"spec":{"registry":"r","secretRef":{"name":"a","namespace":"b"}}}"#.to_vec(), 422, "metadata.name: Invalid value"),
        (format!(r#"{{"metadata":{{"name":"big"}},"spec":{{"registry":"{}"}}}}"#, "a".repeat(4 << 20)).into_bytes(), 400, "limit"),
        (br#"{"apiVersion":"kubepull.io/v1alpha1","kind":"ClusterPullSecret","metadata":{"name":"x","labels":{"a":5}},"spec":{"registry":"r","secretRef":{"name":"a","namespace":"b"}}}"#.to_vec(), 400, "ClusterPullSecret in version \"v1alpha1\" cannot be handled as a ClusterPullSecret: metadata:"),
    ];
    for (body, code, needle) in cases {
        let r = http
            .post(&base)
            .bearer_auth(server.admin_token())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert!(v["message"].as_str().unwrap_or("").contains(needle), "{v}");
    }
    // garbage CRD bodies
    let crds = format!(
        "{}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        server.url()
    );
    for (body, code) in [
        (
            &br#"{"metadata":{"name":"a.b.c"},"spec":{"versions":"nope"}}"#[..],
            400,
        ),
        (&br#"{"metadata":{"name":"a.b.c"},"spec":{}}"#[..], 422),
        (&b"\x00\x01garbage"[..], 400),
    ] {
        let r = http
            .post(&crds)
            .bearer_auth(server.admin_token())
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), code);
        let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
        assert_eq!(v["kind"], "Status", "{v}");
    }
    let r = http
        .get(&base)
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(
        v["items"].as_array().unwrap().len(),
        0,
        "nothing stored: {v}"
    );
    // fields ObjectMeta does not have are dropped, with a warning
    let ok = br#"{"apiVersion":"kubepull.io/v1alpha1","kind":"ClusterPullSecret","metadata":{"name":"ok","junk":1},"spec":{"registry":"r","secretRef":{"name":"a","namespace":"b"}}}"#;
    let r = http
        .post(&base)
        .bearer_auth(server.admin_token())
        .header("content-type", "application/json")
        .body(ok.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let warning = r
        .headers()
        .get("warning")
        .and_then(|w| w.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(
        warning.contains("unknown field") && warning.contains("metadata.junk"),
        "{warning}"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert!(
        v["metadata"].get("junk").is_none() && v["metadata"]["name"] == "ok",
        "{v}"
    );
    server.shutdown().await;
}

const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.select.kubepull.io}
spec:
  group: select.kubepull.io
  scope: Namespaced
  names: {plural: widgets, kind: Widget}
  versions:
  - name: v1beta1
    served: true
    storage: false
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
  - name: v1
    served: true
    storage: true
    selectableFields:
    - {jsonPath: .spec.color}
    - {jsonPath: .spec.round}
    - {jsonPath: .spec.size}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              color: {type: string}
              round: {type: boolean}
              size: {type: integer}
              sizes: {type: array, items: {type: integer}}
"#;

/// `selectableFields`: a version selects its custom resources by the fields it declares (lists
/// and watches), refuses the labels it does not declare, and a CRD declaring an invalid one is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectable_fields_with_kubectl() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let d3 = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ki = |args: &[&str], stdin: &str| kubectl(&admin, &home, args, Some(stdin));
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let (ok, out) = ki(&["apply", "-f", "-"], WIDGET_CRD);
        assert!(ok, "{out}");
        let (ok, out) = k(&["wait", "--for=condition=Established", "crd/widgets.select.kubepull.io"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "crd", "widgets.select.kubepull.io", "-o", "jsonpath={.spec.versions[1].selectableFields[*].jsonPath}"]);
        assert!(ok && out.trim() == ".spec.color .spec.round .spec.size", "{out}");
        for (name, spec) in [("w1", "{color: blue, round: true}"), ("w2", "{color: red}")] {
            let w = format!("apiVersion: select.kubepull.io/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: default}}\nspec: {spec}\n");
            let (ok, out) = ki(&["create", "-f", "-"], &w);
            assert!(ok, "{out}");
        }
        let (ok, out) = k(&["get", "widgets", "--field-selector", "spec.color=blue", "-o", "name"]);
        assert!(ok && out.trim() == "widget.select.kubepull.io/w1", "{out}");
        let (ok, out) = k(&["get", "widgets", "-A", "--field-selector", "spec.color!=blue,metadata.namespace=default", "-o", "name"]);
        assert!(ok && out.trim() == "widget.select.kubepull.io/w2", "{out}");
        let (ok, out) = k(&["get", "widgets", "--field-selector", "spec.round=true", "-o", "name"]);
        assert!(ok && out.trim() == "widget.select.kubepull.io/w1", "{out}");
        // a whole number sent as `1.0` is stored as the integer 1 (Go's JSON round trip), so
        // it is selected as `1`
        let raw = d3.join("w3.json");
        std::fs::write(&raw, r#"{"apiVersion":"select.kubepull.io/v1","kind":"Widget","metadata":{"name":"w3"},"spec":{"color":"green","size":1.0}}"#).unwrap();
        let (ok, out) = k(&["create", "--raw", "/apis/select.kubepull.io/v1/namespaces/default/widgets", "-f", raw.to_str().unwrap()]);
        assert!(ok && out.contains(r#""size":1}"#), "{out}");
        let (ok, out) = k(&["get", "widgets", "--field-selector", "spec.size=1", "-o", "name"]);
        assert!(ok && out.trim() == "widget.select.kubepull.io/w3", "{out}");
        // the version's OpenAPI names them; the other version's lists none
        let (ok, out) = k(&["get", "--raw", "/openapi/v3/apis/select.kubepull.io/v1"]);
        assert!(ok && out.contains(r#""x-kubernetes-selectable-fields":[{"fieldPath":"spec.color"},{"fieldPath":"spec.round"},{"fieldPath":"spec.size"}]"#), "{out}");
        let (ok, out) = k(&["get", "--raw", "/openapi/v3/apis/select.kubepull.io/v1beta1"]);
        assert!(ok && out.contains(r#""x-kubernetes-selectable-fields":[]"#), "{out}");
        // a watch selects by them too (the initial events of a watch from "now")
        let (ok, out) = k(&["get", "--raw", "/apis/select.kubepull.io/v1/namespaces/default/widgets?watch=1&timeoutSeconds=1&fieldSelector=spec.color%3Dred"]);
        assert!(ok && out.contains("\"name\":\"w2\"") && !out.contains("\"name\":\"w1\""), "{out}");
        // a label no version declares, and one the asked version (v1beta1) does not declare
        let (ok, out) = k(&["get", "widgets", "--field-selector", "spec.sizes=1"]);
        assert!(!ok && out.contains("field label not supported: spec.sizes"), "{out}");
        let (ok, out) = k(&["get", "widgets.v1beta1.select.kubepull.io", "--field-selector", "spec.color=blue"]);
        assert!(!ok && out.contains("field label not supported: spec.color"), "{out}");
        // an invalid selectable field: the CRD is refused and nothing changes
        let bad = WIDGET_CRD.replace("- {jsonPath: .spec.round}", "- {jsonPath: .spec.round}\n    - {jsonPath: '.spec.sizes'}\n    - {jsonPath: .metadata.name}");
        let (ok, out) = ki(&["apply", "-f", "-"], &bad);
        assert!(!ok, "{out}");
        assert!(out.contains(r#"The CustomResourceDefinition "widgets.select.kubepull.io" is invalid: "#), "{out}");
        assert!(out.contains(r#"spec.versions[1].selectableFields[2].jsonPath: Invalid value: ".spec.sizes": must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed."#), "{out}");
        assert!(out.contains(r#"spec.versions[1].selectableFields[3].jsonPath: Invalid value: ".metadata.name": is an invalid path: does not refer to a valid field"#), "{out}");
        let (ok, out) = ki(&["create", "-f", "-"], &bad.replace("widgets.select", "gadgets.select").replace("widgets", "gadgets").replace("Widget", "Gadget"));
        assert!(!ok && out.contains("spec.versions[1].selectableFields[2].jsonPath: Invalid value: \".spec.sizes\""), "{out}");
        let (ok, out) = k(&["get", "crd", "gadgets.select.kubepull.io"]);
        assert!(!ok && out.contains("NotFound"), "{out}");
        let (ok, out) = k(&["get", "crd", "widgets.select.kubepull.io", "-o", "jsonpath={.spec.versions[1].selectableFields[*].jsonPath}"]);
        assert!(ok && out.trim() == ".spec.color .spec.round .spec.size", "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A custom resource whose kind has a built-in kind's name (`Event`, `Secret`) gets its schema's
/// checks only, not the built-in kind's: an `Event` of another group whose `involvedObject` is
/// in another namespace, and a cluster-scoped one, are stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_kinds_named_as_built_in_kinds_get_only_their_schema() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ki = |args: &[&str], stdin: &str| kubectl(&admin, &home, args, Some(stdin));
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        for (plural, kind, scope) in [("events", "Event", "Namespaced"), ("secrets", "Secret", "Cluster"), ("services", "Service", "Namespaced"), ("namespaces", "Namespace", "Cluster")] {
            let crd = format!("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {{name: {plural}.audit.kubepull.io}}\nspec:\n  group: audit.kubepull.io\n  scope: {scope}\n  names: {{plural: {plural}, kind: {kind}}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}\n");
            let (ok, out) = ki(&["apply", "-f", "-"], &crd);
            assert!(ok, "{out}");
            let (ok, out) = k(&["wait", "--for=condition=Established", &format!("crd/{plural}.audit.kubepull.io")]);
            assert!(ok, "{out}");
        }
        let (ok, out) = k(&["create", "namespace", "team"]);
        assert!(ok, "{out}");
        // a core Event so made would be refused: its involvedObject's namespace is not its own
        let ev = "apiVersion: audit.kubepull.io/v1\nkind: Event\nmetadata: {name: Login.1, namespace: team}\ninvolvedObject: {kind: Pod, name: p, namespace: other}\n";
        let (ok, out) = ki(&["create", "-f", "-"], ev);
        assert!(!ok && out.contains("metadata.name: Invalid value: \"Login.1\": a lowercase RFC 1123 subdomain"), "{out}");
        let (ok, out) = ki(&["create", "-f", "-"], &ev.replace("Login.1", "login.1"));
        assert!(ok, "{out}");
        // a core Secret's type and data rules do not apply either
        let (ok, out) = ki(&["create", "-f", "-"], "apiVersion: audit.kubepull.io/v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/dockerconfigjson\ndata: {x: not-base64}\n");
        assert!(ok, "{out}");
        // a Service of another group gets no cluster IP; a Namespace of another group is a
        // subdomain-named object deleted at once, with no default ServiceAccount made for it
        let (ok, out) = ki(&["create", "-f", "-"], "apiVersion: audit.kubepull.io/v1\nkind: Service\nmetadata: {name: web, namespace: team}\nspec: {ports: [{port: 80}]}\n");
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "services.audit.kubepull.io", "web", "-n", "team", "-o", "jsonpath={.spec}"]);
        assert!(ok && !out.contains("clusterIP"), "{out}");
        let (ok, out) = ki(&["create", "-f", "-"], "apiVersion: audit.kubepull.io/v1\nkind: Namespace\nmetadata: {name: a.b}\n");
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "serviceaccounts", "-n", "a.b", "-o", "name"]);
        assert!(ok && out.trim().is_empty(), "{out}");
        let (ok, out) = k(&["delete", "namespaces.audit.kubepull.io", "a.b", "--wait=false"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "namespaces.audit.kubepull.io", "a.b"]);
        assert!(!ok && out.contains("NotFound"), "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A watch of custom resources ends when its CRD's definition changes (kube-apiserver replaces
/// the CRD's storage, which closes the watches on it), so clients watch again under the new
/// definition; a change of the CRD's labels does not end it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_watches_end_when_their_crd_changes() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    let k = move |args: &'static [&'static str], stdin: Option<&'static str>| {
        let (admin, home) = (admin.clone(), home.clone());
        tokio::task::spawn_blocking(move || {
            let (ok, out) = kubectl(&admin, &home, args, stdin);
            assert!(ok, "kubectl {args:?}: {out}");
        })
    };
    k(&["apply", "-f", "-"], Some(WIDGET_CRD)).await.unwrap();
    k(
        &[
            "wait",
            "--for=condition=Established",
            "crd/widgets.select.kubepull.io",
        ],
        None,
    )
    .await
    .unwrap();
    let http = http_client(&server.ca_pem());
    let mut w = http
        .get(format!(
            "{}/apis/select.kubepull.io/v1/namespaces/default/widgets?watch=1&timeoutSeconds=60",
            server.url()
        ))
        .bearer_auth(server.admin_token())
        .send()
        .await
        .unwrap();
    assert_eq!(w.status(), 200);
    k(
        &["label", "crd", "widgets.select.kubepull.io", "team=a"],
        None,
    )
    .await
    .unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(1500), w.chunk()).await;
    assert!(
        quiet.is_err(),
        "the watch ended on a label change: {quiet:?}"
    );
    k(
        &[
            "patch",
            "crd",
            "widgets.select.kubepull.io",
            "--type=json",
            "-p",
            r#"[{"op": "add", "path": "/spec/versions/0/deprecated", "value": true}]"#,
        ],
        None,
    )
    .await
    .unwrap();
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Ok(Some(_)) = w.chunk().await {}
    })
    .await;
    assert!(end.is_ok(), "the watch outlived its CRD's change");
    server.shutdown().await;
}

/// Deleting a namespace deletes the custom resources in it (the namespace controller walks the
/// served CRDs too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_custom_resources() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), true)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let ki = |args: &[&str], stdin: &str| kubectl(&admin, &home, args, Some(stdin));
        let k = |args: &[&str]| kubectl(&admin, &home, args, None);
        let (ok, out) = ki(&["apply", "-f", "-"], MIRROR_CRD);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "namespace", "gone"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["create", "namespace", "kept"]);
        assert!(ok, "{out}");
        for ns in ["gone", "kept"] {
            let m = format!("apiVersion: test.kubepull.io/v1\nkind: Mirror\nmetadata: {{name: m, namespace: {ns}}}\nspec: {{}}\n");
            let (ok, out) = ki(&["create", "-f", "-"], &m);
            assert!(ok, "{out}");
        }
        let (ok, out) = k(&["delete", "namespace", "gone", "--timeout=60s"]);
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "mirrors", "-A", "-o", "name"]);
        assert!(ok && out.trim() == "mirror.test.kubepull.io/m", "{out}");
        let (ok, out) = k(&["get", "mirror", "m", "-n", "kept", "-o", "name"]);
        assert!(ok, "{out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// A custom resource is never updated unconditionally (`customResourceStrategy`'s
/// `AllowUnconditionalUpdate` is false): a PUT without a resourceVersion gets the storage's 422,
/// one with it replaces (kubectl replace fills it in; `--raw` sends the body as it is); a
/// built-in object without one is replaced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_replaced_only_with_a_resource_version() {
    let d = tempfile::tempdir().unwrap();
    let server = start(server_config(d.path(), false)).await.unwrap();
    let admin = server.kubeconfig_path();
    let home = d.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let k = |args: &[&str], stdin: Option<&str>| kubectl(&admin, &home, args, stdin);
        let (ok, out) = k(&["apply", "-f", "-"], Some(CLUSTER_PULL_SECRET_CRD));
        assert!(ok, "{out}");
        let (ok, out) = k(&["wait", "--for=condition=Established", "crd/clusterpullsecrets.kubepull.io"], None);
        assert!(ok, "{out}");
        let cps = |registry: &str, rv: Option<&str>| {
            let mut v = serde_json::json!({"apiVersion": "kubepull.io/v1alpha1", "kind": "ClusterPullSecret",
                "metadata": {"name": "corp"},
                "spec": {"registry": registry, "secretRef": {"name": "regcred", "namespace": "kube-system"}}});
            if let Some(rv) = rv {
                v["metadata"]["resourceVersion"] = serde_json::json!(rv);
            }
            v.to_string()
        };
        let url = "/apis/kubepull.io/v1alpha1/clusterpullsecrets/corp";
        let (ok, out) = k(&["create", "-f", "-"], Some(&cps("a.example", None)));
        assert!(ok, "{out}");
        let (ok, out) = k(&["replace", "--raw", url, "-f", "-"], Some(&cps("b.example", None)));
        assert!(!ok, "{out}");
        // kubectl words a 422 from its details: the resource stands as the kind
        assert!(out.contains("The clusterpullsecrets \"corp\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update"), "{out}");
        let (ok, rv) = k(&["get", "cps", "corp", "-o", "jsonpath={.metadata.resourceVersion}"], None);
        assert!(ok, "{rv}");
        let (ok, out) = k(&["replace", "--raw", url, "-f", "-"], Some(&cps("b.example", Some(rv.trim()))));
        assert!(ok, "{out}");
        let (ok, out) = k(&["replace", "-f", "-"], Some(&cps("c.example", None)));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cps", "corp", "-o", "jsonpath={.spec.registry}"], None);
        assert_eq!((ok, out.trim()), (true, "c.example"));
        // a ConfigMap may be replaced without one
        let cm = |v: &str| serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "default"}, "data": {"a": v}}).to_string();
        let (ok, out) = k(&["create", "-f", "-"], Some(&cm("1")));
        assert!(ok, "{out}");
        let (ok, out) = k(&["replace", "--raw", "/api/v1/namespaces/default/configmaps/c", "-f", "-"], Some(&cm("2")));
        assert!(ok, "{out}");
        let (ok, out) = k(&["get", "cm", "c", "-o", "jsonpath={.data.a}"], None);
        assert_eq!((ok, out.trim()), (true, "2"));
    })
    .await
    .unwrap();
    server.shutdown().await;
}
