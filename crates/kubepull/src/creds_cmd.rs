//! `kubepull creds IMAGE --pull-secret FILE... [--docker-config FILE]`: which credentials the
//! kubelet would try for an image, in order, and where each comes from. Passwords are never
//! printed.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use base64::Engine as _;
use clap::{Arg, ArgAction, ArgMatches, Command};
use kubepull_core::dockerconfig::{self, DockerConfig};
use kubepull_core::keyring::{self, Credential, PullSecret};
use serde_json::{json, Value};

use crate::exit;

/// Largest input file read, so a wrong path to a huge file fails fast instead of filling memory.
const MAX_INPUT_BYTES: u64 = 64 << 20;

pub fn command() -> Command {
    Command::new("creds")
        .about("Which credentials the kubelet would try for an image, in order, with passwords redacted")
        .long_about(
            "Which credentials the kubelet would try for an image, in order, from which secret and \
             config key, with passwords redacted: the offline half of \"why can't my pod pull\".\n\n\
             Pull secrets come first, in the order given (as the pod's imagePullSecrets), then the \
             node's docker config. When nothing matches, the kubelet pulls anonymously; when anything \
             matches, it never falls back to anonymous.",
        )
        .arg(Arg::new("image").required(true).help("The container image as written in the pod spec"))
        .arg(
            Arg::new("pull-secret")
                .long("pull-secret")
                .action(ArgAction::Append)
                .value_name("FILE")
                .help("YAML/JSON with Secret manifests (all Secrets in the file, in order), or a bare docker config.json / .dockerconfigjson file"),
        )
        .arg(
            Arg::new("docker-config")
                .long("docker-config")
                .value_name("FILE")
                .help("The node's docker config.json (only `auths` is used, as on a kubelet)"),
        )
        .arg(
            Arg::new("output")
                .short('o')
                .long("output")
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Output format"),
        )
        .after_help(
            "Exit codes: 0 explained (credentials found or anonymous pull); 1 the kubelet would fail \
             before pulling (invalid image, malformed secret); 2 unreadable input.",
        )
}

pub fn run(m: &ArgMatches) -> u8 {
    let image = m.get_one::<String>("image").cloned().unwrap_or_default();
    let json_out = m.get_one::<String>("output").map(String::as_str) == Some("json");
    let (secrets, node) = match credential_inputs(m, "pull-secret") {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::USAGE;
        }
    };
    let skipped: Vec<&PullSecret> = secrets
        .iter()
        .filter(|s| dockerconfig::usable_pull_secret_payload(&s.secret_type, &s.data).is_none())
        .collect();
    let result = keyring::resolve(&image, &secrets, node.as_ref());
    match result {
        Err(e) => {
            if json_out {
                let v = json!({ "image": image, "error": e.to_string(), "credentials": [] });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("image:  {image}");
                println!("the kubelet fails this pull before contacting the registry:");
                println!("  {e}");
            }
            exit::FAILURE
        }
        Ok(res) => {
            if json_out {
                let creds: Vec<Value> = res
                    .credentials
                    .iter()
                    .enumerate()
                    .map(|(i, c)| cred_json(i, c))
                    .collect();
                let v = json!({
                    "image": image,
                    "lookup_key": res.lookup_key,
                    "matched_keyring_keys": res.matched_keys,
                    "anonymous": res.credentials.is_empty(),
                    "credentials": creds,
                    "skipped_secrets": skipped.iter().map(|s| json!({
                        "name": s.name, "type": s.secret_type, "reason": skip_reason(s),
                    })).collect::<Vec<_>>(),
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                println!("image:       {image}");
                println!("lookup key:  {}", res.lookup_key);
                for s in &skipped {
                    println!("skipped:     secret/{} ({})", s.name, skip_reason(s));
                }
                if res.credentials.is_empty() {
                    println!("no credential matches: the kubelet pulls anonymously");
                } else {
                    println!("the kubelet tries these credentials in order (the first success wins; no anonymous fallback):");
                    for (i, c) in res.credentials.iter().enumerate() {
                        println!(
                            "  {}. {:<20} config key {:<32} user {:<16} password {}",
                            i + 1,
                            c.source.to_string(),
                            format!("{:?}", c.config_key),
                            if c.username.is_empty() {
                                "(empty)".to_string()
                            } else {
                                c.username.clone()
                            },
                            if c.password.is_empty() {
                                "(empty)"
                            } else {
                                "(set, redacted)"
                            },
                        );
                        if c.username.is_empty() && c.password.is_empty() {
                            println!(
                                "     note: no username or password: the registry will refuse it (a token-only or \
                                 credsStore entry? the kubelet reads only username, password and auth)"
                            );
                        }
                    }
                }
            }
            exit::OK
        }
    }
}

fn cred_json(i: usize, c: &Credential) -> Value {
    json!({
        "index": i + 1,
        "source": c.source.to_string(),
        "config_key": c.config_key,
        "keyring_key": c.keyring_key,
        "username": c.username,
        "password_set": !c.password.is_empty(),
        "email": c.email,
    })
}

fn skip_reason(s: &PullSecret) -> String {
    match s.secret_type.as_str() {
        dockerconfig::DOCKER_CONFIG_JSON_TYPE => format!(
            "type {} needs a non-empty {} key; the kubelet ignores it",
            s.secret_type,
            dockerconfig::DOCKER_CONFIG_JSON_KEY
        ),
        dockerconfig::DOCKERCFG_TYPE => format!(
            "type {} needs a non-empty {} key; the kubelet ignores it",
            s.secret_type,
            dockerconfig::DOCKERCFG_KEY
        ),
        t => format!("type {t:?} is not a pull-secret type; the kubelet ignores it"),
    }
}

fn read_capped(path: &Path) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    if meta.len() > MAX_INPUT_BYTES {
        bail!(
            "{}: {} bytes is more than the {} MiB limit for an input file",
            path.display(),
            meta.len(),
            MAX_INPUT_BYTES >> 20
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// The Secret manifests named by `--SECRET_FLAG` (in order) and the `--docker-config` file: the
/// credential sources of `creds`, `pull` and `push`. Errors name the flag.
pub(crate) fn credential_inputs(
    m: &ArgMatches,
    secret_flag: &str,
) -> anyhow::Result<(Vec<PullSecret>, Option<DockerConfig>)> {
    let mut secrets = Vec::new();
    for f in m.get_many::<String>(secret_flag).into_iter().flatten() {
        let mut s = load_pull_secrets(Path::new(f))
            .map_err(|e| anyhow::anyhow!("--{secret_flag}: {e:#}"))?;
        secrets.append(&mut s);
    }
    let node = match m.get_one::<String>("docker-config") {
        None => None,
        Some(f) => Some(
            load_node_config(Path::new(f))
                .map_err(|e| anyhow::anyhow!("--docker-config: {e:#}"))?,
        ),
    };
    Ok((secrets, node))
}

pub(crate) fn load_node_config(path: &Path) -> anyhow::Result<DockerConfig> {
    let bytes = read_capped(path)?;
    // The kubelet reads a node config.json with the same decoder as a .dockerconfigjson.
    dockerconfig::decode_dockerconfigjson(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a docker config.json: {e}", path.display()))
}

/// Reads Secrets from a manifest file, or a bare docker config as one dockerconfigjson secret
/// named after the file.
pub(crate) fn load_pull_secrets(path: &Path) -> anyhow::Result<Vec<PullSecret>> {
    let bytes = read_capped(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not UTF-8 text: {e}", path.display()))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let values: Vec<Value> = docs.iter().map(yaml_to_json).collect();
    let is_manifest = values.iter().any(|v| v.get("kind").is_some());
    if !is_manifest {
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "config".into());
        let mut data = BTreeMap::new();
        data.insert(
            dockerconfig::DOCKER_CONFIG_JSON_KEY.to_string(),
            bytes.clone(),
        );
        out.push(PullSecret {
            name,
            secret_type: dockerconfig::DOCKER_CONFIG_JSON_TYPE.to_string(),
            data,
        });
        return Ok(out);
    }
    for v in values {
        collect_secrets(&v, path, &mut out)?;
    }
    if out.is_empty() {
        bail!("{}: holds no Secret", path.display());
    }
    Ok(out)
}

fn collect_secrets(v: &Value, path: &Path, out: &mut Vec<PullSecret>) -> anyhow::Result<()> {
    match v.get("kind").and_then(Value::as_str) {
        Some("List") | Some("SecretList") => {
            for item in v
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                collect_secrets(item, path, out)?;
            }
        }
        Some("Secret") => {
            let name = v
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let secret_type = v
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("Opaque")
                .to_string();
            let mut data = BTreeMap::new();
            if let Some(map) = v.get("data").and_then(Value::as_object) {
                for (k, val) in map {
                    let s = val.as_str().unwrap_or_default();
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(s.trim())
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "{}: secret {name:?}: data[{k}] is not valid base64 ({e}); the API server rejects it",
                                path.display()
                            )
                        })?;
                    data.insert(k.clone(), decoded);
                }
            }
            if let Some(map) = v.get("stringData").and_then(Value::as_object) {
                for (k, val) in map {
                    data.insert(
                        k.clone(),
                        val.as_str().unwrap_or_default().as_bytes().to_vec(),
                    );
                }
            }
            out.push(PullSecret {
                name,
                secret_type,
                data,
            });
        }
        _ => {}
    }
    Ok(())
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        Yaml::Real(r) => r.clone(),
                        _ => String::new(),
                    };
                    (key, yaml_to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}
