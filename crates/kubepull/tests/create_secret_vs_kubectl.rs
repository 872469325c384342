//! Differential test: `kubepull create secret docker-registry ...` against the real `kubectl`
//! (1.32) on the same arguments, files and environment; stdout, stderr and the exit code must be
//! identical byte for byte.
//!
//! Cases: a hand-written list of edge cases (YAML quoting, folding and literal blocks, Go JSON
//! escaping, `--from-file` keys and contents, pflag/cobra syntax and errors, validation order)
//! plus a deterministic pseudo-random batch (fixed seed) that mixes odd names, namespaces,
//! credentials, servers, files, flag spellings and error cases.
//!
//! Every run gets a fresh working directory with the same files, an empty `HOME`, no
//! `KUBECONFIG` and an empty stdin. klog header prefixes (time and pid) are masked.
//!
//! kubectl is taken from `$KUBECTL`, else `PATH`, else `/usr/bin/kubectl`. Without it the test
//! fails, unless `KUBEPULL_SKIP_KUBECTL=1` is set (then it is skipped, saying why).
//!
//! Excluded on purpose (documented divergences, see `create_secret.rs`): runs without
//! `--dry-run=client` (kubectl contacts a server), template output formats, `--context`,
//! `--cluster`, `--user` and `-s` (kubectl resolves them against a kubeconfig), `-h/--help`
//! texts. Also excluded: arguments that make the packaged kubectl "dispatcher" build installed
//! here dump its own flag usage to stderr (a single-dash argument containing `h`, or
//! `--help=...`); upstream kubectl has no such output.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Clone)]
struct Case {
    label: String,
    args: Vec<Vec<u8>>,
    /// Extra files (name, contents); `None` makes a directory.
    files: Vec<(String, Option<Vec<u8>>)>,
}

const CONFIG_JSON: &str = "{\n  \"auths\": {\n    \"https://index.docker.io/v1/\": {\n      \"auth\": \"aHVidXNlcjpodWJwYXNz\"\n    }\n  }\n}\n";

/// Files present in every run's working directory.
fn base_files() -> Vec<(String, Option<Vec<u8>>)> {
    vec![
        ("config.json".into(), Some(CONFIG_JSON.as_bytes().to_vec())),
        ("other.json".into(), Some(b"{\"auths\":{}}".to_vec())),
        ("notjson.txt".into(), Some(b"not json at all".to_vec())),
        ("empty".into(), Some(Vec::new())),
        ("digits.bin".into(), Some(vec![0xd7, 0x6d, 0xf8])), // base64 "1234"
        ("all.bin".into(), Some((0u8..=255).collect())),
        ("a,b".into(), Some(b"comma".to_vec())),
        ("dir".into(), None),
        ("dir/inner.json".into(), Some(b"{}".to_vec())),
    ]
}

fn find_kubectl() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KUBECTL") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("kubectl");
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let p = PathBuf::from("/usr/bin/kubectl");
    p.is_file().then_some(p)
}

#[cfg(unix)]
fn os(b: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b).to_os_string()
}

#[cfg(not(unix))]
fn os(b: &[u8]) -> OsString {
    OsString::from(String::from_utf8_lossy(b).into_owned())
}

fn materialise(dir: &Path, files: &[(String, Option<Vec<u8>>)]) {
    for (name, content) in files {
        let p = dir.join(name);
        match content {
            None => std::fs::create_dir_all(&p).unwrap(),
            Some(bytes) => {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).unwrap();
                }
                std::fs::write(&p, bytes).unwrap();
            }
        }
    }
}

type Outcome = (i32, Vec<u8>, Vec<u8>);

fn run_one(program: &Path, case: &Case) -> Outcome {
    let tmp = tempfile::tempdir().expect("temp dir");
    let home = tmp.path().join("home");
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    materialise(&cwd, &base_files());
    materialise(&cwd, &case.files);
    let mut argv: Vec<OsString> = vec!["create".into()];
    argv.extend(case.args.iter().map(|a| os(a)));
    let out = Command::new(program)
        .args(&argv)
        .current_dir(&cwd)
        .env_remove("KUBECONFIG")
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        mask_klog(&out.stderr),
    )
}

/// Replaces klog headers (`Lmmdd hh:mm:ss.uuuuuu PID `) with `L<klog> `.
fn mask_klog(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&c| c == b'\n') {
        let shape = b"Xdddd dd:dd:dd.dddddd ";
        let header_ok = line.len() > shape.len()
            && b"IWEF".contains(&line[0])
            && shape.iter().enumerate().skip(1).all(|(i, &s)| match s {
                b'd' => line[i].is_ascii_digit(),
                other => line[i] == other,
            });
        if header_ok {
            let mut i = shape.len();
            while i < line.len() && line[i] == b' ' {
                i += 1;
            }
            let digits = line[i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits > 0 && line.get(i + digits) == Some(&b' ') {
                out.push(line[0]);
                out.extend_from_slice(b"<klog> ");
                out.extend_from_slice(&line[i + digits + 1..]);
                continue;
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// Whether the packaged kubectl's dispatcher would print its own usage for these arguments.
fn dispatcher_safe(args: &[Vec<u8>]) -> bool {
    args.iter().all(|a| {
        let single_dash_with_h = a.len() > 1
            && a[0] == b'-'
            && a[1] != b'-'
            && !a.starts_with(b"-n")
            && !a.starts_with(b"-s")
            && a.contains(&b'h');
        !single_dash_with_h && !a.starts_with(b"--help=") && !a.starts_with(b"--help ")
    })
}

fn case(label: &str, args: &[&str]) -> Case {
    Case {
        label: label.to_string(),
        args: args.iter().map(|a| a.as_bytes().to_vec()).collect(),
        files: Vec::new(),
    }
}

fn secret(args: &[&str]) -> Vec<String> {
    let mut v = vec!["secret".to_string(), "docker-registry".to_string()];
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

fn owned(label: &str, args: Vec<String>) -> Case {
    Case {
        label: label.to_string(),
        args: args.into_iter().map(String::into_bytes).collect(),
        files: Vec::new(),
    }
}

/// The hand-written edge cases (kept as a table, hence not rustfmt-formatted).
#[rustfmt::skip]
fn handwritten() -> Vec<Case> {
    let creds = ["--docker-username=a", "--docker-password=b", "--dry-run=client"];
    let mut cases = Vec::new();

    // Names that exercise every YAML scalar style, resolution rule and folding path.
    let names: Vec<String> = [
        "regcred", "123", "true", "yes", "~", "null", "0x1F", "1e3", "1e400", ".5", "+1",
        "2024-01-02", "2024-1-2T10:00:00Z", "2024-01-02 10:00:00", "2024-02-30", "2024-13-01",
        "1:20", "190:20:30", "1_000", " lead", "trail ", "a: b", "a #b", "a#b", "#x", "it's",
        "'q", "---", "...", "x:", "é密", "🔑", "a\tb", "\u{feff}ab", "a\nb", "a\nb\n", "a\n\n",
        " a\nb", "a \nb", "a\n b", "\u{2028}x", "x\u{2028}y", "\u{85}x", "x\u{85}\u{85}y",
        "a\u{85}--- x", "a\u{85}...", "\"quoted\"", "back\\slash", "a<b>&c", "<<", "=", "@x",
        "`x", "%x", "!x", "&x", "*x", "|x", ">x", "[x", "{x", "?x", "? x", ":x", ": x",
        "x,y", "0b101", "0o17", "08", "0x", "y1", "on", "Off", "N", ".inf", "-.inf", ".NaN",
        "._1", ".1_0", "1_", "0.", "1.e5", "+.5", "\u{1}", "\u{1b}", "a\u{a0}b", "a\u{200b}b",
        "\u{e000}", "a\u{7f}b", "a\u{80}b",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "word ".repeat(30) + "end",
        "x".repeat(200),
        "ab ".repeat(40),
        format!("a{}b", " ".repeat(90)),
        format!("a {} c", "b".repeat(85)),
        format!("\"{}\"", "x ".repeat(50)),
        format!("{} y z", "x".repeat(79)),
        format!("'{}", "q ".repeat(45)),
        format!("{}\n{}", "l ".repeat(50), "m".repeat(100)),
    ])
    .collect();
    for n in &names {
        let mut a = secret(&[n.as_str()]);
        a.extend(creds.iter().map(|s| s.to_string()));
        a.extend(["-o".to_string(), "yaml".to_string()]);
        cases.push(owned(&format!("yaml name {n:?}"), a.clone()));
        if n.len() < 40 {
            a.pop();
            a.push("json".into());
            cases.push(owned(&format!("json name {n:?}"), a));
        }
    }

    // Credentials through Go JSON escaping, into the payload, the hash and the annotation.
    for pw in ["p\"w", "p\\w", "p<>&w", "pä🔑", "p\nw", "p\tw\r\u{1}\u{7f}", "p\u{2028}\u{2029}", "p:w", "  "] {
        let mut a = secret(&["x", "--docker-username=u:s\"<", "--docker-email=e&<>@x"]);
        a.push(format!("--docker-password={pw}"));
        a.extend(["--docker-server=https://r.io:5000/v2/?a=b&c".into(), "--dry-run=client".into(), "-o".into(), "json".into()]);
        cases.push(owned(&format!("password {pw:?} json"), a));
        let mut a = secret(&["x", "--docker-username=u", "--append-hash", "--save-config", "--dry-run=client", "-o", "yaml"]);
        a.push(format!("--docker-password={pw}"));
        cases.push(owned(&format!("password {pw:?} yaml+hash+annotation"), a));
    }
    for ns in ["team-a", "a: b", "a\u{85}b", "123", " sp"] {
        let mut a = secret(&["x", "--save-config", "-n", ns]);
        a.extend(creds.iter().map(|s| s.to_string()));
        a.extend(["-o".into(), "yaml".into()]);
        cases.push(owned(&format!("namespace {ns:?}"), a));
    }
    let mut long_ann = secret(&["--save-config", "--append-hash"]);
    long_ann.push("x y ".repeat(20));
    long_ann.extend(creds.iter().map(|s| s.to_string()));
    long_ann.extend(["-o".into(), "yaml".into()]);
    cases.push(owned("annotation with spaces", long_ann));

    // Flag syntax (pflag) and command resolution (cobra).
    fn s<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec!["secret", "docker-registry"];
        v.extend_from_slice(extra);
        v
    }
    let list: Vec<(&str, Vec<&str>)> = vec![
        ("unknown long flag", s(&["x", "--bogus", "--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("unknown shorthand", s(&["x", "-z", "--dry-run=client"])),
        ("bad syntax ---x", s(&["x", "---x"])),
        ("bad syntax --=x", s(&["x", "--=x"])),
        ("-n needs an argument", s(&["x", "--docker-username=a", "-n"])),
        ("-nfoo", s(&["x", "-nfoo", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "yaml"])),
        ("-n=foo -oyaml", s(&["x", "-n=foo", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-oyaml"])),
        ("--namespace foo --output=json", s(&["x", "--namespace", "foo", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--output=json"])),
        ("-n empty", s(&["x", "-n", "", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "yaml"])),
        ("bool bad", s(&["x", "--append-hash=maybe"])),
        ("bool forms", s(&["x", "--append-hash=1", "--save-config=T", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "yaml"])),
        ("bool false", s(&["x", "--append-hash", "--append-hash=F", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "name"])),
        ("string flag needs arg", s(&["x", "--docker-username=a", "--docker-password=b", "--docker-email"])),
        ("value taken even if dash", s(&["x", "--docker-username", "--docker-password=b", "--dry-run=client", "-o", "json"])),
        ("underscores", s(&["x", "--docker_username=a", "--docker_password", "b", "--dry_run=client", "-o", "yaml"])),
        ("-- before name", s(&["--", "x", "--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("-- after name", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--", "y"])),
        ("-- at end", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--"])),
        ("name after --", s(&["--docker-username=a", "--docker-password=b", "--dry-run=client", "--", "x"])),
        ("dash name", s(&["-", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "yaml"])),
        ("no name", s(&["--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("two names", s(&["a", "b", "--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("empty name", s(&["", "--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("flags before secret", vec!["-n", "ns", "secret", "docker-registry", "x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "yaml"]),
        ("flags between", vec!["secret", "-n", "ns", "docker-registry", "x", "--docker-username", "a", "--docker-password=b", "--dry-run=client", "-o", "yaml"]),
        ("unknown flag at secret level", vec!["secret", "--bogus", "docker-registry", "x", "--dry-run=client"]),
        ("unknown flag at create level", vec!["--bogus", "secret", "docker-registry", "x"]),
        ("secret unknown command", vec!["secret", "x", "y"]),
        ("secret bad flag", vec!["secret", "--dry-run=client"]),
        ("create bad flag", vec!["-z"]),
        ("-test.v ignored", s(&["x", "-test.v", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "name"])),
        ("dry-run bad", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=foo"])),
        ("dry-run bare", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run", "-o", "yaml"])),
        ("dry-run true", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=true"])),
        ("dry-run=1 bad -o", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=1", "-o", "xml"])),
        ("validate bad", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--validate=foo"])),
        ("validate bare", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--validate", "-o", "name"])),
        ("validate 0", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--validate=0", "-o", "name"])),
        ("output xml", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "xml"])),
        ("output YAML", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "YAML"])),
        ("output Name", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "Name"])),
        ("output empty", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", ""])),
        ("jsonpath without template", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "jsonpath"])),
        ("go-template= empty", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "go-template="])),
        ("jsonpath-file missing", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "jsonpath-file=nofile"])),
        ("templatefile missing", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "templatefile", "--template=nofile"])),
        ("empty template with -o", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--template=", "-o", "yaml"])),
        ("template ignored with -o yaml", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--template=x", "-o", "yaml"])),
        ("-v bad", s(&["x", "--dry-run=client", "-v=abc"])),
        ("-v range", s(&["x", "--dry-run=client", "-v", "99999999999"])),
        ("-v ok", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--v=-3", "-v5", "-o", "name"])),
        ("vmodule bad", s(&["x", "--dry-run=client", "--vmodule=abc"])),
        ("vmodule negative", s(&["x", "--dry-run=client", "--vmodule=a=-1"])),
        ("vmodule ok", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--vmodule=a=2,", "-o", "name"])),
        ("log-flush-frequency bad", s(&["x", "--log-flush-frequency=abc"])),
        ("log-flush-frequency ok", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--log-flush-frequency=1.5s", "-o", "name"])),
        ("request-timeout bad", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--request-timeout=abc"])),
        ("request-timeout negative", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--request-timeout=-5"])),
        ("request-timeout ok", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--request-timeout=-5s", "-o", "name"])),
        ("kubeconfig missing", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--kubeconfig=nofile"])),
        ("kubeconfig missing no name", s(&["--kubeconfig=nofile", "--dry-run=client"])),
        ("kubeconfig empty", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--kubeconfig=", "-o", "name"])),
        ("profile bad", s(&["x", "--profile=bogus"])),
        ("globals accepted", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "--as-group=a", "--as-group=b", "--as=u", "--token=t", "--insecure-skip-tls-verify", "--warnings-as-errors=false", "--cache-dir=/nonexistent", "--field-manager=m", "--show-managed-fields", "--allow-missing-template-keys=false", "-o", "name"])),
        ("global bool bad", s(&["x", "--insecure-skip-tls-verify=x"])),
        ("missing password", s(&["x", "--docker-username=a", "--dry-run=client", "-o", "yaml"])),
        ("empty server", s(&["x", "--docker-username=a", "--docker-password=b", "--docker-server=", "--dry-run=client"])),
        ("missing password, bad -o", s(&["x", "--docker-username=a", "-o", "xml", "--dry-run=client"])),
        ("no dry-run, validation first", s(&["x", "--docker-username=a"])),
        ("from-file default key", s(&["x", "--from-file=config.json", "--dry-run=client", "-o", "yaml"])),
        ("from-file csv pair", s(&["x", "--from-file=config.json,other.json", "--dry-run=client"])),
        ("from-file keyed csv", s(&["x", "--from-file=a=config.json,b=other.json", "--dry-run=client", "-o", "yaml"])),
        ("from-file repeated", s(&["x", "--from-file", "a=config.json", "--from-file", "b=empty", "--dry-run=client", "-o", "json"])),
        ("from-file directory", s(&["x", "--from-file=dir", "--dry-run=client"])),
        ("from-file keyed directory", s(&["x", "--from-file=k=dir", "--dry-run=client"])),
        ("from-file missing in dir", s(&["x", "--from-file=dir/nope", "--dry-run=client"])),
        ("from-file not a directory", s(&["x", "--from-file=config.json/x", "--dry-run=client"])),
        ("from-file quoted comma", s(&["x", "--from-file=\"a,b\"", "--dry-run=client", "-o", "json"])),
        ("from-file empty value", s(&["x", "--from-file=", "--dry-run=client"])),
        ("from-file empty value with creds", s(&["x", "--from-file=", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "name"])),
        ("from-file empty csv item", s(&["x", "--from-file=,config.json", "--dry-run=client"])),
        ("from-file key only", s(&["x", "--from-file=k=", "--dry-run=client"])),
        ("from-file two =", s(&["x", "--from-file=a=b=c", "--dry-run=client"])),
        ("from-file ==", s(&["x", "--from-file==", "--dry-run=client"])),
        ("from-file key .", s(&["x", "--from-file=.=config.json", "--dry-run=client"])),
        ("from-file key ..x", s(&["x", "--from-file=..x=config.json", "--dry-run=client"])),
        ("from-file odd keys sorted", s(&["x", "--from-file=123=config.json", "--from-file=true=digits.bin", "--from-file=a10=empty", "--from-file=a9=all.bin", "--from-file=A_1=other.json", "--from-file=-x=notjson.txt", "--dry-run=client", "-o", "yaml"])),
        ("from-file digits base64", s(&["x", "--from-file=digits.bin", "--dry-run=client", "-o", "yaml"])),
        ("from-file binary json", s(&["x", "--from-file=all.bin", "--dry-run=client", "-o", "json", "--append-hash", "--save-config"])),
        ("from-file newline value", s(&["x", "--from-file=\n", "--dry-run=client"])),
        ("from-file open quote", s(&["x", "--from-file=\"ab", "--dry-run=client"])),
        ("from-file stray quote", s(&["x", "--from-file=\"a\"b", "--dry-run=client"])),
        ("from-file bare quote", s(&["x", "--from-file=a\"b", "--dry-run=client"])),
        ("from-file order 1", s(&["x", "--from-file=nofile", "--from-file=bad key=config.json", "--dry-run=client"])),
        ("from-file order 2", s(&["x", "--from-file=bad key=config.json", "--from-file=nofile", "--dry-run=client"])),
        ("from-file duplicate", s(&["x", "--from-file=config.json", "--from-file=.dockerconfigjson=other.json", "--dry-run=client"])),
        ("from-file ignores creds", s(&["x", "--from-file=notjson.txt", "--docker-username=u", "--docker-password=p", "--dry-run=client", "-o", "yaml"])),
        ("from-file name check first", s(&["", "--from-file=nofile", "--dry-run=client"])),
        ("from-file two names first", s(&["x", "y", "--from-file=nofile", "--dry-run=client"])),
        ("from-file + no dry-run, file error first", s(&["x", "--from-file=nofile", "--dry-run=none"])),
        ("no -o", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client"])),
        ("-o name hash", s(&["x", "--docker-username=a", "--docker-password=b", "--dry-run=client", "-o", "name", "--append-hash"])),
    ];
    for (label, args) in list {
        cases.push(case(label, &args));
    }
    let long_key = format!("--from-file={}=config.json", "k".repeat(200));
    cases.push(owned("200-char key (complex YAML key)", secret(&["x", &long_key, "--dry-run=client", "-o", "yaml"])));
    let too_long = format!("--from-file={}=config.json", "k".repeat(254));
    cases.push(owned("254-char key", secret(&["x", &too_long, "--dry-run=client"])));

    // Invalid UTF-8 in argv.
    let raw = |label: &str, args: Vec<&[u8]>| Case {
        label: label.to_string(),
        args: args.into_iter().map(<[u8]>::to_vec).collect(),
        files: Vec::new(),
    };
    let dr: &[u8] = b"docker-registry";
    cases.push(raw("invalid utf-8 name yaml", vec![b"secret", dr, b"a\xffb\xe2\x82", b"--docker-username=a", b"--docker-password=b", b"--dry-run=client", b"-o", b"yaml"]));
    cases.push(raw("invalid utf-8 name json", vec![b"secret", dr, b"a\xffb\xed\xa0\x80", b"--docker-username=a", b"--docker-password=b", b"--dry-run=client", b"-o", b"json"]));
    cases.push(raw("invalid utf-8 name default", vec![b"secret", dr, b"a\xffb", b"--docker-username=a", b"--docker-password=b", b"--dry-run=client"]));
    cases.push(raw("invalid utf-8 password", vec![b"secret", dr, b"x", b"--docker-username=\xc3", b"--docker-password=\xff\xfe", b"--append-hash", b"--dry-run=client", b"-o", b"yaml"]));
    cases.push(raw("invalid utf-8 key", vec![b"secret", dr, b"x", b"--from-file=k\xff=config.json", b"--dry-run=client"]));
    cases.push(raw("invalid utf-8 flag", vec![b"secret", dr, b"x", b"--bogus\xff"]));
    cases.push(raw("invalid utf-8 shorthand", vec![b"secret", dr, b"x", b"-\xe9"]));
    cases.push(raw("invalid utf-8 bool", vec![b"secret", dr, b"x", b"--append-hash=\xff"]));
    cases.push(raw("invalid utf-8 -o", vec![b"secret", dr, b"x", b"--docker-username=a", b"--docker-password=b", b"--dry-run=client", b"-o", b"x\xff"]));
    cases
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn text(&mut self, max_len: usize) -> String {
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            "a", "b", "z", "Q", "0", "1", "9", " ", " ", "  ", "-", "_", ".", ":", ": ", "#",
            " #", "'", "\"", "\\", "<", ">", "&", "/", "@", "%", "!", "*", "?", ",", "[", "]",
            "{", "}", "|", "=", "~", "\n", "\t", "\r", "é", "ü", "密", "🔑", "\u{85}", "\u{a0}",
            "\u{2028}", "\u{feff}", "\u{1}", "\u{7f}", "true", "null", "yes", "0x1", "1e3",
            "---", "2024-01-02", "word ",
        ];
        let len = self.below(max_len + 1);
        let mut s = String::new();
        for _ in 0..len {
            let piece: &str = PIECES[self.below(PIECES.len())];
            s.push_str(piece);
        }
        s
    }
}

/// Makes an argument safe from the packaged kubectl's dispatcher usage dump (see module docs).
fn dispatcher_proof(mut a: Vec<u8>) -> Vec<u8> {
    if !dispatcher_safe(std::slice::from_ref(&a)) {
        a[0] = b'x';
    }
    a
}

fn generated(seed: u64, count: usize) -> Vec<Case> {
    let mut r = Rng(seed);
    let mut cases = Vec::new();
    let simple_names = ["regcred", "my-secret", "a", "pull.secret", "x1"];
    let servers = [
        "https://index.docker.io/v1/",
        "docker.io",
        "quay.io",
        "myregistry.example.com:5000",
        "http://registry.local/v2/",
        "https://r.io/a?b=c&d=<e>",
        "localhost",
        "[::1]:5000",
        "",
        "ÿ.example",
        "a b",
    ];
    let keys = [
        ".dockerconfigjson",
        ".dockercfg",
        "config.json",
        "a",
        "A_1",
        "123",
        "true",
        "a10",
        "a9",
        "-",
        "..",
        "bad key",
        "k=v",
        "",
    ];
    let files = [
        "config.json",
        "other.json",
        "notjson.txt",
        "empty",
        "digits.bin",
        "all.bin",
        "nofile",
        "dir",
        "rand.bin",
    ];
    for n in 0..count {
        let mut flags: Vec<Vec<u8>> = Vec::new();
        let mut positionals: Vec<Vec<u8>> = Vec::new();
        let push_value = |r: &mut Rng, flags: &mut Vec<Vec<u8>>, name: &str, value: &str| {
            if r.chance(70) || value.starts_with('-') && value.contains('h') {
                flags.push(format!("--{name}={value}").into_bytes());
            } else {
                flags.push(format!("--{name}").into_bytes());
                flags.push(value.as_bytes().to_vec());
            }
        };
        // NAME (sometimes none, sometimes two).
        let name = match r.below(10) {
            0..=4 => r.pick(&simple_names).to_string(),
            5..=8 => r.text(12),
            _ => r.text(40),
        };
        positionals.push(name.into_bytes());
        if r.chance(4) {
            positionals.push(b"second".to_vec());
        }
        if r.chance(3) {
            positionals.clear();
        }
        // Namespace.
        if r.chance(30) {
            let ns = if r.chance(60) {
                "team-a".to_string()
            } else {
                r.text(8)
            };
            match r.below(5) {
                0 => flags.extend([b"-n".to_vec(), ns.into_bytes()]),
                1 if !ns.is_empty() => flags.push(format!("-n{ns}").into_bytes()),
                2 => flags.push(format!("-n={ns}").into_bytes()),
                _ => push_value(&mut r, &mut flags, "namespace", &ns),
            }
        }
        // Credentials or files.
        let use_files = r.chance(25);
        if !use_files || r.chance(20) {
            if r.chance(95) {
                let u = if r.chance(50) {
                    "alice".to_string()
                } else {
                    r.text(10)
                };
                push_value(&mut r, &mut flags, "docker-username", &u);
            }
            if r.chance(95) {
                let p = if r.chance(30) {
                    "s3cret".to_string()
                } else {
                    r.text(16)
                };
                push_value(&mut r, &mut flags, "docker-password", &p);
            }
            if r.chance(40) {
                let e = if r.chance(50) {
                    "me@example.com".to_string()
                } else {
                    r.text(6)
                };
                push_value(&mut r, &mut flags, "docker-email", &e);
            }
            if r.chance(50) {
                let s = r.pick(&servers).to_string();
                push_value(&mut r, &mut flags, "docker-server", &s);
            }
        }
        let mut case_files = Vec::new();
        if use_files {
            let rand_len = r.below(64);
            let content: Vec<u8> = (0..rand_len).map(|_| r.next() as u8).collect();
            case_files.push(("rand.bin".to_string(), Some(content)));
            for _ in 0..(1 + r.below(2)) {
                let f = r.pick(&files).to_string();
                let v = if r.chance(50) {
                    f
                } else {
                    format!("{}={f}", r.pick(&keys))
                };
                push_value(&mut r, &mut flags, "from-file", &v);
            }
        }
        if r.chance(30) {
            flags.push(
                r.pick(&[
                    "--append-hash",
                    "--append-hash=true",
                    "--append-hash=false",
                    "--append-hash=1",
                ])
                .as_bytes()
                .to_vec(),
            );
        }
        if r.chance(25) {
            flags.push(
                r.pick(&["--save-config", "--save-config=true", "--save-config=F"])
                    .as_bytes()
                    .to_vec(),
            );
        }
        // Output.
        let fmt = *r.pick(&["yaml", "yaml", "json", "name", "", "YAML"]);
        if !fmt.is_empty() {
            match r.below(4) {
                0 => flags.extend([b"-o".to_vec(), fmt.as_bytes().to_vec()]),
                1 => flags.push(format!("-o{fmt}").into_bytes()),
                2 => flags.push(format!("--output={fmt}").into_bytes()),
                _ => flags.extend([b"--output".to_vec(), fmt.as_bytes().to_vec()]),
            }
        }
        flags.push(
            r.pick(&[
                "--dry-run=client",
                "--dry-run=client",
                "--dry-run=client",
                "--dry-run",
                "--dry-run=true",
            ])
            .as_bytes()
            .to_vec(),
        );
        // Occasional errors.
        match r.below(40) {
            0 => flags.push(b"--bogus-flag".to_vec()),
            1 => flags.push(b"-o=xml".to_vec()),
            2 => flags.push(b"--validate=maybe".to_vec()),
            3 => flags.push(b"--append-hash=maybe".to_vec()),
            _ => {}
        }
        // Shuffle flags and intersperse the positionals (keeping flag/value pairs together is
        // not needed: a separated value directly follows its flag in `flags`).
        let mut groups: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut i = 0;
        while i < flags.len() {
            let f = &flags[i];
            let separate = (f.starts_with(b"--") && !f.contains(&b'=') && is_value_flag(f))
                || f.as_slice() == b"-n"
                || f.as_slice() == b"-o";
            if separate && i + 1 < flags.len() {
                groups.push(vec![f.clone(), flags[i + 1].clone()]);
                i += 2;
            } else {
                groups.push(vec![f.clone()]);
                i += 1;
            }
        }
        for p in positionals {
            groups.push(vec![p]);
        }
        for j in (1..groups.len()).rev() {
            let k = r.below(j + 1);
            groups.swap(j, k);
        }
        let mut args: Vec<Vec<u8>> = vec![b"secret".to_vec(), b"docker-registry".to_vec()];
        args.extend(groups.into_iter().flatten().map(|a| {
            if a.first() == Some(&b'-') {
                dispatcher_proof(a)
            } else {
                a
            }
        }));
        cases.push(Case {
            label: format!("generated #{n} (seed {seed:#x})"),
            args,
            files: case_files,
        });
    }
    cases
}

fn is_value_flag(f: &[u8]) -> bool {
    [
        "--namespace",
        "--docker-username",
        "--docker-password",
        "--docker-email",
        "--docker-server",
        "--from-file",
        "--output",
    ]
    .iter()
    .any(|n| n.as_bytes() == f)
}

fn printable(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| format!("{:?}", String::from_utf8_lossy(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn kubepull_matches_kubectl() {
    if std::env::var_os("KUBEPULL_SKIP_KUBECTL").is_some_and(|v| v == "1") {
        eprintln!("skipping the kubectl differential test: KUBEPULL_SKIP_KUBECTL=1");
        return;
    }
    let Some(kubectl) = find_kubectl() else {
        panic!(
            "kubectl not found ($KUBECTL, PATH, /usr/bin/kubectl): this differential test needs \
             kubectl 1.32 to compare against; install it or set KUBEPULL_SKIP_KUBECTL=1 to skip"
        );
    };
    let kubepull = PathBuf::from(env!("CARGO_BIN_EXE_kubepull"));

    let mut cases = handwritten();
    cases.extend(generated(0x6b75_6265_7075_6c6c, 150));
    for c in &cases {
        assert!(
            dispatcher_safe(&c.args),
            "case {} is not dispatcher-safe",
            c.label
        );
    }

    let workers = 2;
    let chunk = cases.len().div_ceil(workers);
    let results: Vec<(Case, Outcome, Outcome)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .chunks(chunk)
            .map(|part| {
                let (kubectl, kubepull) = (&kubectl, &kubepull);
                s.spawn(move || {
                    part.iter()
                        .map(|c| (c.clone(), run_one(kubectl, c), run_one(kubepull, c)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker panicked"))
            .collect()
    });

    let total = results.len();
    let mut report = String::new();
    let mut failures = 0;
    for (c, want, got) in &results {
        if want == got {
            continue;
        }
        failures += 1;
        report.push_str(&format!(
            "\n  {}\n    args: {}\n    kubectl:  exit {} stdout {:?}\n              stderr {:?}\n    kubepull: exit {} stdout {:?}\n              stderr {:?}\n",
            c.label,
            printable(&c.args),
            want.0,
            String::from_utf8_lossy(&want.1),
            String::from_utf8_lossy(&want.2),
            got.0,
            String::from_utf8_lossy(&got.1),
            String::from_utf8_lossy(&got.2),
        ));
    }
    assert!(total >= 300, "only {total} cases ran");
    if failures > 0 {
        let version = Command::new(&kubectl)
            .args(["version", "--client"])
            .env_remove("KUBECONFIG")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "{failures} of {total} cases differ from {} ({}):{report}",
            kubectl.display(),
            version.lines().next().unwrap_or("unknown version")
        );
    }
    eprintln!("{total} cases identical to {}", kubectl.display());
}

#[test]
fn generator_is_deterministic() {
    let a = generated(7, 20);
    let b = generated(7, 20);
    assert_eq!(
        a.iter().map(|c| c.args.clone()).collect::<Vec<_>>(),
        b.iter().map(|c| c.args.clone()).collect::<Vec<_>>()
    );
}
