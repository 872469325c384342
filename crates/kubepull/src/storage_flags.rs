//! The storage flags of `kubepull server` and `kubepull up`: the embedded store by default, or
//! etcd with kube-apiserver's flag names (`--etcd-servers`, `--etcd-cafile`, `--etcd-certfile`,
//! `--etcd-keyfile`, `--etcd-prefix`, `--etcd-compaction-interval`), plus etcd user/password
//! authentication. The password is read from a file or the environment, never from a flag (a
//! flag's value is visible to every user in `ps`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Arg, ArgMatches};
use kubepull_datastore::etcd_store::{EtcdOptions, Password, DEFAULT_PREFIX, PASSWORD_ENV};
use kubepull_datastore::StoreConfig;

/// The storage flags.
pub fn storage_args() -> Vec<Arg> {
    vec![
        Arg::new("datastore")
            .long("datastore")
            .value_name("SPEC")
            .default_value("")
            .help("Storage: empty for the embedded redb file in the data dir; etcd://host:2379[,host:2379...] is the older spelling of --etcd-servers"),
        Arg::new("etcd-servers")
            .long("etcd-servers")
            .value_name("URLS")
            .help("Store in etcd: its members' client URLs, comma-separated (https://host:2379; http:// without TLS)"),
        Arg::new("etcd-cafile")
            .long("etcd-cafile")
            .value_name("FILE")
            .help("SSL Certificate Authority file used to secure etcd communication (the CA of the members' serving certificates)"),
        Arg::new("etcd-certfile")
            .long("etcd-certfile")
            .value_name("FILE")
            .requires("etcd-keyfile")
            .help("SSL certification file used to secure etcd communication (client certificate, PEM)"),
        Arg::new("etcd-keyfile")
            .long("etcd-keyfile")
            .value_name("FILE")
            .requires("etcd-certfile")
            .help("SSL key file used to secure etcd communication (the client certificate's key, PEM)"),
        Arg::new("etcd-prefix")
            .long("etcd-prefix")
            .value_name("PREFIX")
            .default_value(DEFAULT_PREFIX)
            .help("The prefix to prepend to all resource paths in etcd"),
        Arg::new("etcd-username")
            .long("etcd-username")
            .value_name("USER")
            .help(format!("etcd user (etcd's password authentication); the password comes from --etcd-password-file or the {PASSWORD_ENV} environment variable")),
        Arg::new("etcd-password-file")
            .long("etcd-password-file")
            .value_name("FILE")
            .help("A file holding the etcd user's password (one line)"),
        Arg::new("etcd-compaction-interval")
            .long("etcd-compaction-interval")
            .value_name("DURATION")
            .default_value("5m0s")
            .help("The interval of compaction requests (etcd history older than one interval is dropped; API servers sharing etcd take turns). 0 disables compaction from this server"),
    ]
}

/// A Go-style duration: `5m0s`, `300s`, `1h`, `500ms`, `0`.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        bail!("an empty duration");
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            bail!("{s:?} is not a duration (like 5m0s, 300s, 1h, 500ms, or 0)");
        }
        let n: f64 = rest[..digits]
            .parse()
            .with_context(|| format!("{s:?} is not a duration (like 5m0s, 300s, 1h, 500ms)"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            u => bail!("{s:?}: unknown unit {u:?} (use h, m, s or ms, like 5m0s)"),
        };
        rest = &rest[unit_len..];
        total += Duration::from_secs_f64(n * secs);
    }
    Ok(total)
}

/// The store the flags name.
pub fn store_config(m: &ArgMatches) -> anyhow::Result<StoreConfig> {
    let get = |n: &str| m.get_one::<String>(n).cloned();
    let spec = get("datastore").unwrap_or_default();
    let servers = match (get("etcd-servers"), spec.starts_with("etcd://")) {
        (Some(_), true) => {
            bail!("--datastore etcd://... and --etcd-servers both name etcd: keep --etcd-servers")
        }
        (Some(s), false) if !spec.is_empty() => {
            bail!("--datastore {spec:?} and --etcd-servers {s} name two stores: drop --datastore")
        }
        (Some(s), false) => Some(s),
        (None, true) => Some(spec.clone()),
        (None, false) => None,
    };
    let etcd_only = [
        "etcd-cafile",
        "etcd-certfile",
        "etcd-keyfile",
        "etcd-username",
        "etcd-password-file",
    ];
    let Some(servers) = servers else {
        if let Some(f) = etcd_only.iter().find(|f| m.get_one::<String>(f).is_some()) {
            bail!("--{f} is for etcd: add --etcd-servers https://host:2379");
        }
        return StoreConfig::parse(&spec).map_err(anyhow::Error::from);
    };
    let password = match (get("etcd-password-file"), std::env::var(PASSWORD_ENV)) {
        (Some(f), _) => {
            let p =
                std::fs::read_to_string(&f).with_context(|| format!("--etcd-password-file {f}"))?;
            let p = p.trim_end_matches(['\n', '\r']).to_string();
            if p.is_empty() {
                bail!("--etcd-password-file {f} is empty: write the etcd user's password in it");
            }
            Some(Password::new(p))
        }
        (None, Ok(p)) if !p.is_empty() => Some(Password::new(p)),
        _ => None,
    };
    let interval = get("etcd-compaction-interval").unwrap_or_else(|| "5m0s".into());
    Ok(StoreConfig::Etcd(EtcdOptions {
        ca_file: get("etcd-cafile").map(PathBuf::from),
        cert_file: get("etcd-certfile").map(PathBuf::from),
        key_file: get("etcd-keyfile").map(PathBuf::from),
        prefix: get("etcd-prefix").unwrap_or_else(|| DEFAULT_PREFIX.into()),
        username: get("etcd-username"),
        password,
        compaction_interval: parse_duration(&interval)
            .with_context(|| "--etcd-compaction-interval".to_string())?,
        ..EtcdOptions::with_servers(&servers)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Command;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m").is_err());
    }

    fn matches(args: &[&str]) -> ArgMatches {
        Command::new("server")
            .args(storage_args())
            .try_get_matches_from(std::iter::once("server").chain(args.iter().copied()))
            .unwrap()
    }

    #[test]
    fn flags_to_config() {
        assert!(matches!(
            store_config(&matches(&[])).unwrap(),
            StoreConfig::Embedded
        ));
        let d = tempfile::tempdir().unwrap();
        let pw = d.path().join("pw");
        std::fs::write(&pw, "s3cret-pass\n").unwrap();
        let c = store_config(&matches(&[
            "--etcd-servers",
            "https://a:2379,https://b:2379",
            "--etcd-cafile",
            "/ca.pem",
            "--etcd-prefix",
            "/kp",
            "--etcd-username",
            "kp",
            "--etcd-password-file",
            pw.to_str().unwrap(),
            "--etcd-compaction-interval",
            "0",
        ]))
        .unwrap();
        let StoreConfig::Etcd(o) = c else {
            panic!("etcd expected")
        };
        assert_eq!(o.servers, ["https://a:2379", "https://b:2379"]);
        assert_eq!(o.prefix, "/kp");
        assert_eq!(o.compaction_interval, Duration::ZERO);
        assert_eq!(o.password, Some(Password::new("s3cret-pass")));
        assert!(!format!("{o:?}").contains("s3cret-pass"));
        // the older spelling still works
        let StoreConfig::Etcd(o) = store_config(&matches(&["--datastore", "etcd://h:1"])).unwrap()
        else {
            panic!("etcd expected")
        };
        assert_eq!(o.servers, ["h:1"]);
        // etcd flags without etcd, and two stores at once, are refused with the fix
        let e = store_config(&matches(&["--etcd-cafile", "/ca.pem"])).unwrap_err();
        assert!(e.to_string().contains("--etcd-servers"), "{e}");
        let e = store_config(&matches(&[
            "--datastore",
            "etcd://h:1",
            "--etcd-servers",
            "h:2",
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("keep --etcd-servers"), "{e}");
    }
}
