//! `kubepull create secret docker-registry NAME ...`: kubectl's command, byte for byte.
//!
//! With `--dry-run=client`, stdout, stderr and the exit code are identical to
//! `kubectl create secret docker-registry ... --dry-run=client` of kubectl 1.32.4. That covers:
//!
//! - command resolution as cobra does it (`Command.Find`: flags may come before `secret` and
//!   `docker-registry`; `stripFlags`/`argsMinusFirstX` decide what is a flag value);
//! - flag parsing as pflag v1.0.5 does it: `--flag=v`, `--flag v`, `-n v`, `-nv`, `-n=v`,
//!   bool flags with optional `=value`, `--` ending the flags, interspersed positionals,
//!   `_` accepted for `-` in long names, comma-separated (CSV) `--from-file` values, typed global
//!   flags (`-v` is an int32, `--log-flush-frequency` a Go duration, `--vmodule` klog's list),
//!   and every parse error text, with cobra's `Error: ...` / `See '... --help' for usage.` frame;
//! - the order in which kubectl checks things (`Complete`, `Validate`, `Run` in
//!   `create_secret_docker.go`), with kubectl's error texts and exit code 1;
//! - the klog warnings of the deprecated `--dry-run` forms (same text; the header has this
//!   process's time and pid, as kubectl's has its own).
//!
//! The rules themselves (payload, hash, annotation, printers, YAML/JSON encoding) live in
//! `kubepull_core::secret`, `kubepull_core::goyaml` and `kubepull_core::gojson`.
//!
//! Global kubectl flags are accepted with their types (so malformed values fail as in kubectl)
//! and otherwise ignored, because a client dry run talks to no cluster. Two checks kubectl makes
//! while loading the client configuration are reproduced: `--kubeconfig` naming a missing file,
//! and a malformed `--request-timeout`. Not reproduced (kubectl reads the kubeconfig for them):
//! unknown `--context`/`--cluster`/`--user`, malformed kubeconfig files, bad `--server` URLs and
//! unreadable certificate files; `--profile` does not write a profile.
//!
//! Without `--dry-run=client` the Secret is created on the API server named by the kubeconfig,
//! as kubectl does (see `server_create`). Template printers (`-o jsonpath=...`,
//! `-o go-template=...`) are not implemented and fail clearly.
//!
//! kubepull-only flags (documented in `--help`): `--docker-password-stdin` and
//! `--docker-password-file PATH` read the password so that it stays out of the shell history.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;

use kubepull_core::secret::{
    check_new_key, go_quote_bytes, parse_file_source, DockerRegistrySecretOptions, SecretError,
};

/// The command path kubectl prints in its hints. The requirement is byte-identical output, so
/// the hints name `kubectl` even though this binary is kubepull.
const COMMAND_PATH: &str = "kubectl create secret docker-registry";

/// Runs `create ARGS...` (everything after `kubepull create`); returns the exit code.
pub fn run_create(args: Vec<OsString>) -> u8 {
    let args: Vec<Vec<u8>> = args.into_iter().map(os_to_bytes).collect();
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let mut io = Io {
        stdin: &mut stdin.lock(),
        out: &mut stdout.lock(),
        err: &mut stderr.lock(),
    };
    let code = run(&args, &mut io);
    let _ = io.out.flush();
    let _ = io.err.flush();
    code
}

#[cfg(unix)]
fn os_to_bytes(s: OsString) -> Vec<u8> {
    use std::os::unix::ffi::OsStringExt;
    s.into_vec()
}

#[cfg(not(unix))]
fn os_to_bytes(s: OsString) -> Vec<u8> {
    s.to_string_lossy().into_owned().into_bytes()
}

#[cfg(unix)]
fn bytes_to_path(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

#[cfg(not(unix))]
fn bytes_to_path(b: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(b).into_owned())
}

struct Io<'a> {
    stdin: &'a mut dyn Read,
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

const OK: u8 = 0;
const FAILED: u8 = 1;
const USAGE: u8 = 2;

// ---------------------------------------------------------------------------------------------
// Flag tables.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Bool,
    /// pflag `StringSlice`: each value is parsed as one CSV record.
    StrSlice,
    /// pflag `StringArray`: each value is appended as is.
    StrArray,
    /// Go `flag.Duration` wrapped by pflag (its error text is `parse error`).
    GoDuration,
    /// `klog.Level` (`strconv.ParseInt(v, 10, 32)`).
    KlogLevel,
    /// klog's `-vmodule` list.
    VModule,
}

#[derive(Debug)]
struct FlagDef {
    name: &'static str,
    short: Option<u8>,
    kind: Kind,
    /// pflag `NoOptDefVal`: the value of `--flag` without `=value`.
    no_opt: Option<&'static str>,
}

const fn flag(name: &'static str, short: Option<u8>, kind: Kind) -> FlagDef {
    let no_opt = match kind {
        Kind::Bool => Some("true"),
        _ => None,
    };
    FlagDef {
        name,
        short,
        kind,
        no_opt,
    }
}

const fn flag_opt(name: &'static str, kind: Kind, no_opt: &'static str) -> FlagDef {
    FlagDef {
        name,
        short: None,
        kind,
        no_opt: Some(no_opt),
    }
}

/// `kubectl create secret docker-registry`'s own flags (NewCmdCreateSecretDockerRegistry,
/// PrintFlags.AddFlags, AddApplyAnnotationFlags, AddValidateFlags, AddDryRunFlag,
/// AddFieldManagerFlagVar), cobra's help flag, and the kubepull-only password flags.
static DOCKER_REGISTRY_FLAGS: &[FlagDef] = &[
    flag("allow-missing-template-keys", None, Kind::Bool),
    flag("append-hash", None, Kind::Bool),
    flag("docker-email", None, Kind::Str),
    flag("docker-password", None, Kind::Str),
    flag("docker-server", None, Kind::Str),
    flag("docker-username", None, Kind::Str),
    flag_opt("dry-run", Kind::Str, "unchanged"),
    flag("field-manager", None, Kind::Str),
    flag("from-file", None, Kind::StrSlice),
    flag("output", Some(b'o'), Kind::Str),
    flag("save-config", None, Kind::Bool),
    flag("show-managed-fields", None, Kind::Bool),
    flag("template", None, Kind::Str),
    flag_opt("validate", Kind::Str, "strict"),
    flag("help", Some(b'h'), Kind::Bool),
    // kubepull only:
    flag("docker-password-stdin", None, Kind::Bool),
    flag("docker-password-file", None, Kind::Str),
];

/// cobra's help flag, for the parent commands.
static HELP_FLAG: &[FlagDef] = &[flag("help", Some(b'h'), Kind::Bool)];

/// `kubectl create`'s local flags; only their `NoOptDefVal` matters here (for `stripFlags`).
static CREATE_FLAGS: &[FlagDef] = &[
    flag("allow-missing-template-keys", None, Kind::Bool),
    flag_opt("dry-run", Kind::Str, "unchanged"),
    flag("edit", None, Kind::Bool),
    flag("field-manager", None, Kind::Str),
    flag("filename", Some(b'f'), Kind::StrSlice),
    flag("kustomize", Some(b'k'), Kind::Str),
    flag("output", Some(b'o'), Kind::Str),
    flag("raw", None, Kind::Str),
    flag("recursive", Some(b'R'), Kind::Bool),
    flag("save-config", None, Kind::Bool),
    flag("selector", Some(b'l'), Kind::Str),
    flag("show-managed-fields", None, Kind::Bool),
    flag("template", None, Kind::Str),
    flag_opt("validate", Kind::Str, "strict"),
    flag("windows-line-endings", None, Kind::Bool),
];

/// kubectl's persistent (global) flags: `kubectl options`, from ConfigFlags, the profiling and
/// warnings flags (pkg/cmd/cmd.go) and component-base's logging flags.
static GLOBAL_FLAGS: &[FlagDef] = &[
    flag("as", None, Kind::Str),
    flag("as-group", None, Kind::StrArray),
    flag("as-uid", None, Kind::Str),
    flag("cache-dir", None, Kind::Str),
    flag("certificate-authority", None, Kind::Str),
    flag("client-certificate", None, Kind::Str),
    flag("client-key", None, Kind::Str),
    flag("cluster", None, Kind::Str),
    flag("context", None, Kind::Str),
    flag("disable-compression", None, Kind::Bool),
    flag("insecure-skip-tls-verify", None, Kind::Bool),
    flag("kubeconfig", None, Kind::Str),
    flag("log-flush-frequency", None, Kind::GoDuration),
    flag("match-server-version", None, Kind::Bool),
    flag("namespace", Some(b'n'), Kind::Str),
    flag("password", None, Kind::Str),
    flag("profile", None, Kind::Str),
    flag("profile-output", None, Kind::Str),
    flag("request-timeout", None, Kind::Str),
    flag("server", Some(b's'), Kind::Str),
    flag("tls-server-name", None, Kind::Str),
    flag("token", None, Kind::Str),
    flag("user", None, Kind::Str),
    flag("username", None, Kind::Str),
    flag("v", Some(b'v'), Kind::KlogLevel),
    flag("vmodule", None, Kind::VModule),
    flag("warnings-as-errors", None, Kind::Bool),
];

/// A command's flag set: its local flags plus the inherited persistent ones.
struct FlagSet<'a> {
    sets: &'a [&'static [FlagDef]],
}

impl FlagSet<'_> {
    /// `FlagSet.Lookup` with kubectl's `WordSepNormalizeFunc` (`_` means `-`).
    fn lookup(&self, name: &[u8]) -> Option<&'static FlagDef> {
        let norm: Vec<u8> = name
            .iter()
            .map(|&c| if c == b'_' { b'-' } else { c })
            .collect();
        self.sets
            .iter()
            .flat_map(|s| s.iter())
            .find(|f| f.name.as_bytes() == norm.as_slice())
    }

    fn lookup_short(&self, c: u8) -> Option<&'static FlagDef> {
        self.sets
            .iter()
            .flat_map(|s| s.iter())
            .find(|f| f.short == Some(c))
    }

    /// cobra `hasNoOptDefVal`.
    fn has_no_opt(&self, name: &[u8]) -> bool {
        self.lookup(name).is_some_and(|f| f.no_opt.is_some())
    }

    /// cobra `shortHasNoOptDefVal`.
    fn short_has_no_opt(&self, name: &[u8]) -> bool {
        name.first()
            .and_then(|&c| self.lookup_short(c))
            .is_some_and(|f| f.no_opt.is_some())
    }

    /// Whether `s` is `--flag` or `-f` (no `=`) that consumes the next argument as its value,
    /// by cobra's approximation in `stripFlags` and `argsMinusFirstX`.
    fn takes_next(&self, s: &[u8]) -> bool {
        if s.contains(&b'=') {
            return false;
        }
        if s.starts_with(b"--") {
            return !self.has_no_opt(&s[2..]);
        }
        s.len() == 2 && s[0] == b'-' && !self.short_has_no_opt(&s[1..])
    }
}

// ---------------------------------------------------------------------------------------------
// cobra command resolution (spf13/cobra v1.8.1 command.go: Find, stripFlags, argsMinusFirstX).

/// cobra `stripFlags`: the non-flag words of `args`, skipping flag values.
fn strip_flags(args: &[Vec<u8>], fs: &FlagSet) -> Vec<Vec<u8>> {
    let mut commands = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s == b"--" {
            break;
        }
        if fs.takes_next(s) && s.first() == Some(&b'-') {
            if args.len() - i <= 1 {
                break;
            }
            i += 1;
            continue;
        }
        if !s.is_empty() && s[0] != b'-' {
            commands.push(s.clone());
        }
    }
    commands
}

/// cobra `argsMinusFirstX`: `args` without the first non-flag occurrence of `x`.
fn args_minus_first_x(args: &[Vec<u8>], x: &[u8], fs: &FlagSet) -> Vec<Vec<u8>> {
    let mut pos = 0;
    while pos < args.len() {
        let s = &args[pos];
        if s == b"--" {
            break;
        }
        if s.first() == Some(&b'-') && fs.takes_next(s) {
            pos += 2;
            continue;
        }
        if s.first() != Some(&b'-') && s.as_slice() == x {
            let mut ret = args[..pos].to_vec();
            ret.extend_from_slice(&args[pos + 1..]);
            return ret;
        }
        pos += 1;
    }
    args.to_vec()
}

/// `kubectl create`'s subcommands and their aliases (kubectl v0.32.4 pkg/cmd/create).
const CREATE_SUBCOMMANDS: &[&str] = &[
    "clusterrole",
    "clusterrolebinding",
    "configmap",
    "cm",
    "cronjob",
    "cj",
    "deployment",
    "deploy",
    "ingress",
    "ing",
    "job",
    "namespace",
    "ns",
    "poddisruptionbudget",
    "pdb",
    "priorityclass",
    "pc",
    "quota",
    "resourcequota",
    "role",
    "rolebinding",
    "secret",
    "service",
    "svc",
    "serviceaccount",
    "sa",
    "token",
];

/// `kubectl create secret`'s subcommands.
const SECRET_SUBCOMMANDS: &[&str] = &["docker-registry", "generic", "tls"];

/// Where cobra's `Find` lands for `kubectl create ARGS`.
enum Resolved {
    /// `create secret docker-registry`, with the arguments left for its flag parsing.
    DockerRegistry(Vec<Vec<u8>>),
    /// `create` itself.
    Create(Vec<Vec<u8>>),
    /// `create secret` itself.
    Secret(Vec<Vec<u8>>),
    /// Another command: its path words after `create`.
    Other(Vec<Vec<u8>>),
}

fn resolve(args: &[Vec<u8>]) -> Resolved {
    let create_fs = FlagSet {
        sets: &[CREATE_FLAGS, GLOBAL_FLAGS],
    };
    let global_fs = FlagSet {
        sets: &[GLOBAL_FLAGS],
    };
    let words = strip_flags(args, &create_fs);
    match words.first() {
        Some(w) if w == b"secret" => {}
        Some(w)
            if CREATE_SUBCOMMANDS
                .iter()
                .any(|c| c.as_bytes() == w.as_slice()) =>
        {
            return Resolved::Other(vec![w.clone()])
        }
        _ => return Resolved::Create(args.to_vec()),
    }
    let args = args_minus_first_x(args, b"secret", &create_fs);
    let words = strip_flags(&args, &global_fs);
    match words.first() {
        Some(w) if w == b"docker-registry" => {}
        Some(w)
            if SECRET_SUBCOMMANDS
                .iter()
                .any(|c| c.as_bytes() == w.as_slice()) =>
        {
            return Resolved::Other(vec![b"secret".to_vec(), w.clone()])
        }
        _ => return Resolved::Secret(args),
    }
    Resolved::DockerRegistry(args_minus_first_x(&args, b"docker-registry", &global_fs))
}

// ---------------------------------------------------------------------------------------------
// pflag parsing (spf13/pflag v1.0.5 flag.go: parseArgs, parseLongArg, parseSingleShortArg).

#[derive(Default)]
struct Parsed {
    values: Vec<(&'static str, Vec<u8>)>,
    lists: Vec<(&'static str, Vec<Vec<u8>>)>,
    changed: Vec<&'static str>,
    args: Vec<Vec<u8>>,
    args_len_at_dash: Option<usize>,
}

impl Parsed {
    fn get(&self, name: &str) -> Option<&[u8]> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn string(&self, name: &str, default: &str) -> Vec<u8> {
        self.get(name)
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| default.as_bytes().to_vec())
    }

    fn bool(&self, name: &str) -> bool {
        self.get(name).is_some_and(|v| parse_bool(v) == Some(true))
    }

    fn list(&self, name: &str) -> Vec<Vec<u8>> {
        self.lists
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn changed(&self, name: &str) -> bool {
        self.changed.contains(&name)
    }

    /// `FlagSet.Set`: converts `value` by the flag's type.
    fn set(&mut self, f: &'static FlagDef, value: &[u8]) -> Result<(), Vec<u8>> {
        let result: Result<(), Vec<u8>> = match f.kind {
            Kind::Str => {
                self.values.push((f.name, value.to_vec()));
                Ok(())
            }
            Kind::Bool => match parse_bool(value) {
                Some(_) => {
                    self.values.push((f.name, value.to_vec()));
                    Ok(())
                }
                None => Err(num_error("ParseBool", value, "invalid syntax")),
            },
            Kind::StrSlice => match read_csv_record(value) {
                Ok(items) => {
                    match self.lists.iter_mut().find(|(n, _)| *n == f.name) {
                        Some((_, list)) => list.extend(items),
                        None => self.lists.push((f.name, items)),
                    }
                    Ok(())
                }
                Err(e) => Err(e.into_bytes()),
            },
            Kind::StrArray => {
                match self.lists.iter_mut().find(|(n, _)| *n == f.name) {
                    Some((_, list)) => list.push(value.to_vec()),
                    None => self.lists.push((f.name, vec![value.to_vec()])),
                }
                Ok(())
            }
            Kind::GoDuration => {
                if go_parse_duration(value) {
                    Ok(())
                } else {
                    Err(b"parse error".to_vec())
                }
            }
            Kind::KlogLevel => parse_int32(value).map(|_| ()),
            Kind::VModule => check_vmodule(value),
        };
        match result {
            Ok(()) => {
                if !self.changed.contains(&f.name) {
                    self.changed.push(f.name);
                }
                Ok(())
            }
            Err(e) => {
                let display = match f.short {
                    Some(c) => format!("-{}, --{}", c as char, f.name),
                    None => format!("--{}", f.name),
                };
                let mut msg = b"invalid argument ".to_vec();
                msg.extend_from_slice(&go_quote_bytes(value));
                msg.extend_from_slice(b" for ");
                msg.extend_from_slice(&go_quote_bytes(display.as_bytes()));
                msg.extend_from_slice(b" flag: ");
                msg.extend_from_slice(&e);
                Err(msg)
            }
        }
    }
}

/// pflag's parse of `args` against `fs`; the error is pflag's message.
fn parse_flags(args: &[Vec<u8>], fs: &FlagSet) -> Result<Parsed, Vec<u8>> {
    let mut p = Parsed::default();
    let mut i = 0;
    while i < args.len() {
        let s = &args[i];
        i += 1;
        if s.len() < 2 || s[0] != b'-' {
            p.args.push(s.clone());
            continue;
        }
        if s[1] == b'-' {
            if s.len() == 2 {
                p.args_len_at_dash = Some(p.args.len());
                p.args.extend_from_slice(&args[i..]);
                break;
            }
            // parseLongArg
            let name = &s[2..];
            if name.is_empty() || name[0] == b'-' || name[0] == b'=' {
                return Err(cat(&[b"bad flag syntax: ", s]));
            }
            let (name, inline) = match name.iter().position(|&c| c == b'=') {
                Some(eq) => (&name[..eq], Some(&name[eq + 1..])),
                None => (name, None),
            };
            let Some(f) = fs.lookup(name) else {
                return Err(cat(&[b"unknown flag: --", name]));
            };
            let value: Vec<u8> = if let Some(v) = inline {
                v.to_vec()
            } else if let Some(d) = f.no_opt {
                d.as_bytes().to_vec()
            } else if i < args.len() {
                i += 1;
                args[i - 1].clone()
            } else {
                return Err(cat(&[b"flag needs an argument: ", s]));
            };
            p.set(f, &value)?;
        } else {
            // parseShortArg / parseSingleShortArg
            let mut shorthands: &[u8] = &s[1..];
            while !shorthands.is_empty() {
                if shorthands.starts_with(b"test.") {
                    // pflag silently ignores Go test flags such as -test.v.
                    break;
                }
                let c = shorthands[0];
                let Some(f) = fs.lookup_short(c) else {
                    return Err(cat(&[
                        b"unknown shorthand flag: ",
                        &quote_rune(c),
                        b" in -",
                        shorthands,
                    ]));
                };
                let value: Vec<u8>;
                let mut rest: &[u8] = &shorthands[1..];
                if shorthands.len() > 2 && shorthands[1] == b'=' {
                    value = shorthands[2..].to_vec();
                    rest = b"";
                } else if let Some(d) = f.no_opt {
                    value = d.as_bytes().to_vec();
                } else if shorthands.len() > 1 {
                    value = shorthands[1..].to_vec();
                    rest = b"";
                } else if i < args.len() {
                    value = args[i].clone();
                    i += 1;
                } else {
                    return Err(cat(&[
                        b"flag needs an argument: ",
                        &quote_rune(c),
                        b" in -",
                        shorthands,
                    ]));
                }
                p.set(f, &value)?;
                shorthands = rest;
            }
        }
    }
    Ok(p)
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Go `strconv.ParseBool`.
fn parse_bool(v: &[u8]) -> Option<bool> {
    match v {
        b"1" | b"t" | b"T" | b"TRUE" | b"true" | b"True" => Some(true),
        b"0" | b"f" | b"F" | b"FALSE" | b"false" | b"False" => Some(false),
        _ => None,
    }
}

/// Go's `*strconv.NumError` text.
fn num_error(func: &str, value: &[u8], err: &str) -> Vec<u8> {
    cat(&[
        b"strconv.",
        func.as_bytes(),
        b": parsing ",
        &go_quote_bytes(value),
        b": ",
        err.as_bytes(),
    ])
}

/// Go `strconv.ParseInt(v, 10, 32)` (klog's `Level.Set`).
fn parse_int32(v: &[u8]) -> Result<i64, Vec<u8>> {
    let syntax = || num_error("ParseInt", v, "invalid syntax");
    let range = || num_error("ParseInt", v, "value out of range");
    let (neg, digits) = match v.first() {
        None => return Err(syntax()),
        Some(b'+') => (false, &v[1..]),
        Some(b'-') => (true, &v[1..]),
        _ => (false, v),
    };
    if digits.is_empty() {
        return Err(syntax());
    }
    let max_u32: u64 = u32::MAX as u64;
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return Err(syntax());
        }
        n = n * 10 + (c - b'0') as u64;
        if n > max_u32 {
            return Err(range());
        }
    }
    let cutoff: u64 = 1 << 31;
    if (!neg && n >= cutoff) || (neg && n > cutoff) {
        return Err(range());
    }
    Ok(if neg { -(n as i64) } else { n as i64 })
}

/// klog `parseModuleSpec` (klog.go, v2.130.1).
fn check_vmodule(v: &[u8]) -> Result<(), Vec<u8>> {
    const SYNTAX: &[u8] = b"syntax error: expect comma-separated list of filename=N";
    for pat in v.split(|&c| c == b',') {
        if pat.is_empty() {
            continue;
        }
        let parts: Vec<&[u8]> = pat.split(|&c| c == b'=').collect();
        if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
            return Err(SYNTAX.to_vec());
        }
        match parse_int32(parts[1]) {
            Err(_) => return Err(SYNTAX.to_vec()),
            Ok(n) if n < 0 => return Err(b"negative value for vmodule level".to_vec()),
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Go `time.ParseDuration` succeeds.
fn go_parse_duration(v: &[u8]) -> bool {
    let mut s = v;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            s = &s[1..];
        }
    }
    if s == b"0" {
        return true;
    }
    if s.is_empty() {
        return false;
    }
    let limit: u128 = 1 << 63;
    let mut total: u128 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return false;
        }
        // leadingInt
        let mut int: u128 = 0;
        let start = s.len();
        while let Some(&c) = s.first() {
            if !c.is_ascii_digit() {
                break;
            }
            if int > (limit - 1) / 10 {
                return false;
            }
            int = int * 10 + (c - b'0') as u128;
            if int > limit {
                return false;
            }
            s = &s[1..];
        }
        let pre = start != s.len();
        // leadingFraction
        let mut frac: u128 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let start = s.len();
            let mut overflow = false;
            while let Some(&c) = s.first() {
                if !c.is_ascii_digit() {
                    break;
                }
                if !overflow {
                    if frac > ((1u128 << 63) - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = frac * 10 + (c - b'0') as u128;
                        if y > 1 << 63 {
                            overflow = true;
                        } else {
                            frac = y;
                            scale *= 10.0;
                        }
                    }
                }
                s = &s[1..];
            }
            post = start != s.len();
        }
        if !pre && !post {
            return false;
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return false;
        }
        let unit: u128 = match &s[..unit_len] {
            b"ns" => 1,
            b"us" => 1_000,
            b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60 * 1_000_000_000,
            b"h" => 3600 * 1_000_000_000,
            _ => return false,
        };
        s = &s[unit_len..];
        if int > limit / unit {
            return false;
        }
        let mut value = int * unit;
        if frac > 0 {
            value += (frac as f64 * (unit as f64 / scale)) as u128;
            if value > limit {
                return false;
            }
        }
        total += value;
        if total > limit {
            return false;
        }
    }
    // Go rejects exactly 1<<63 only for non-negative durations.
    let neg = v.first() == Some(&b'-');
    neg || total < limit
}

/// Go `encoding/csv` `Reader.Read` of the first record of `val`, as pflag's `readAsCSV` does
/// (an empty value is an empty list). Errors are csv's texts.
fn read_csv_record(val: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if val.is_empty() {
        return Ok(Vec::new());
    }
    // Split into lines the way readLine does (ReadSlice('\n'), CRLF -> LF, drop a trailing CR
    // before EOF).
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = val;
    while !rest.is_empty() {
        let (mut line, next) = match rest.iter().position(|&c| c == b'\n') {
            Some(p) => (rest[..=p].to_vec(), &rest[p + 1..]),
            None => {
                let mut l = rest.to_vec();
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                (l, &rest[rest.len()..])
            }
        };
        let n = line.len();
        if n >= 2 && line[n - 2] == b'\r' && line[n - 1] == b'\n' {
            line.truncate(n - 1);
            line[n - 2] = b'\n';
        }
        lines.push(line);
        rest = next;
    }
    let length_nl = |l: &[u8]| usize::from(l.last() == Some(&b'\n'));
    let mut num_line = 0usize;
    let mut next_line = 0usize;
    // readLine: (line, eof)
    let mut read_line = |num_line: &mut usize| -> Option<Vec<u8>> {
        if next_line < lines.len() {
            next_line += 1;
            *num_line += 1;
            Some(lines[next_line - 1].clone())
        } else {
            None
        }
    };
    // Skip empty lines.
    let mut line = loop {
        match read_line(&mut num_line) {
            None => return Err("EOF".to_string()),
            Some(l) if l.len() == length_nl(&l) => continue,
            Some(l) => break l,
        }
    };
    let rec_line = num_line;
    let mut record: Vec<Vec<u8>> = Vec::new();
    let mut field: Vec<u8> = Vec::new();
    let (mut pos_line, mut pos_col) = (num_line, 1usize);
    let parse_error = |start: usize, line: usize, col: usize, what: &str| {
        if start != line {
            format!("record on line {start}; parse error on line {line}, column {col}: {what}")
        } else {
            format!("parse error on line {line}, column {col}: {what}")
        }
    };
    const BARE: &str = "bare \" in non-quoted-field";
    const QUOTE: &str = "extraneous or missing \" in quoted-field";
    'field: loop {
        if line.first() != Some(&b'"') {
            let comma = line.iter().position(|&c| c == b',');
            let f: &[u8] = match comma {
                Some(i) => &line[..i],
                None => &line[..line.len() - length_nl(&line)],
            };
            if let Some(j) = f.iter().position(|&c| c == b'"') {
                return Err(parse_error(rec_line, num_line, pos_col + j, BARE));
            }
            record.push(f.to_vec());
            match comma {
                Some(i) => {
                    line = line[i + 1..].to_vec();
                    pos_col += i + 1;
                    continue 'field;
                }
                None => break 'field,
            }
        }
        // Quoted field.
        line = line[1..].to_vec();
        pos_col += 1;
        let mut eof = false;
        loop {
            if let Some(i) = line.iter().position(|&c| c == b'"') {
                field.extend_from_slice(&line[..i]);
                line = line[i + 1..].to_vec();
                pos_col += i + 1;
                match line.first() {
                    Some(b'"') => {
                        field.push(b'"');
                        line = line[1..].to_vec();
                        pos_col += 1;
                    }
                    Some(b',') => {
                        line = line[1..].to_vec();
                        pos_col += 1;
                        record.push(std::mem::take(&mut field));
                        continue 'field;
                    }
                    _ if length_nl(&line) == line.len() => {
                        record.push(std::mem::take(&mut field));
                        break 'field;
                    }
                    _ => {
                        return Err(parse_error(rec_line, num_line, pos_col - 1, QUOTE));
                    }
                }
            } else if !line.is_empty() {
                field.extend_from_slice(&line);
                pos_col += line.len();
                match read_line(&mut num_line) {
                    Some(l) => {
                        if !l.is_empty() {
                            pos_line += 1;
                            pos_col = 1;
                        }
                        line = l;
                    }
                    None => {
                        line = Vec::new();
                        eof = true;
                    }
                }
            } else {
                // Abrupt end of input inside quotes (errRead was reset from EOF to nil).
                let _ = eof;
                return Err(parse_error(rec_line, pos_line, pos_col, QUOTE));
            }
        }
    }
    Ok(record)
}

/// Go `strconv.QuoteRune` of a byte taken as a code point (pflag formats the unknown shorthand
/// byte with `%q`).
fn quote_rune(c: u8) -> Vec<u8> {
    let ch = c as char;
    let body: String = match c {
        b'\'' => "\\'".into(),
        b'\\' => "\\\\".into(),
        0x07 => "\\a".into(),
        0x08 => "\\b".into(),
        0x0c => "\\f".into(),
        b'\n' => "\\n".into(),
        b'\r' => "\\r".into(),
        b'\t' => "\\t".into(),
        0x0b => "\\v".into(),
        0x00..=0x1f | 0x7f => format!("\\x{c:02x}"),
        0x80..=0xa0 | 0xad => format!("\\u{c:04x}"),
        _ => ch.to_string(),
    };
    let mut out = b"'".to_vec();
    out.extend_from_slice(body.as_bytes());
    out.push(b'\'');
    out
}

// ---------------------------------------------------------------------------------------------
// Output helpers.

/// kubectl's `CheckErr` for plain errors: `error: ` unless the message has it, newline added.
fn fail(io: &mut Io, msg: &[u8]) -> u8 {
    let mut line = Vec::with_capacity(msg.len() + 8);
    if !msg.starts_with(b"error: ") {
        line.extend_from_slice(b"error: ");
    }
    line.extend_from_slice(msg);
    if !line.ends_with(b"\n") {
        line.push(b'\n');
    }
    let _ = io.err.write_all(&line);
    FAILED
}

/// cobra's report of a flag error, with kubectl's `FlagErrorFunc` hint.
fn flag_error(io: &mut Io, command_path: &str, msg: &[u8]) -> u8 {
    let mut line = b"Error: ".to_vec();
    line.extend_from_slice(msg);
    line.extend_from_slice(format!("\nSee '{command_path} --help' for usage.\n").as_bytes());
    let _ = io.err.write_all(&line);
    FAILED
}

/// A klog header line: `Lmmdd hh:mm:ss.uuuuuu PID file:line] ` (UTC; klog uses local time).
fn klog_line(severity: char, file_line: &str, msg: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (_, month, day) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    format!(
        "{severity}{month:02}{day:02} {:02}:{:02}:{:02}.{:06} {:>7} {file_line}] {msg}\n",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        now.subsec_micros(),
        std::process::id()
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Go's text for an OS error: strerror with a lower-case first letter.
fn errno_text(e: &std::io::Error) -> String {
    let s = e.to_string();
    let s = match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    };
    let mut chars = s.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
        None => s,
    }
}

// ---------------------------------------------------------------------------------------------
// The command.

#[derive(Clone, Copy, PartialEq, Eq)]
enum DryRun {
    None,
    Client,
    Server,
}

enum Printer {
    Yaml,
    Json,
    Name { short: bool },
}

fn run(args: &[Vec<u8>], io: &mut Io) -> u8 {
    let args = match resolve(args) {
        Resolved::DockerRegistry(a) => a,
        Resolved::Create(a) => return parent_command(false, &a, io),
        Resolved::Secret(a) => return parent_command(true, &a, io),
        Resolved::Other(path) => return other_command(&path, args, io),
    };
    let fs = FlagSet {
        sets: &[DOCKER_REGISTRY_FLAGS, GLOBAL_FLAGS],
    };
    let p = match parse_flags(&args, &fs) {
        Ok(p) => p,
        Err(msg) => return flag_error(io, COMMAND_PATH, &msg),
    };
    if p.bool("help") {
        let _ = io.out.write_all(HELP.as_bytes());
        return OK;
    }

    // PersistentPreRunE: initProfiling (pkg/cmd/profiling.go).
    let profile = p.string("profile", "none");
    if !matches!(
        profile.as_slice(),
        b"none"
            | b"cpu"
            | b"block"
            | b"mutex"
            | b"goroutine"
            | b"threadcreate"
            | b"heap"
            | b"allocs"
    ) {
        let err = format!("unknown profile '{}'", String::from_utf8_lossy(&profile));
        let quoted = String::from_utf8_lossy(&go_quote_bytes(err.as_bytes())).into_owned();
        let line = klog_line(
            'E',
            "run.go:72",
            &format!("\"command failed\" err={quoted}"),
        );
        let _ = io.err.write_all(line.as_bytes());
        return FAILED;
    }

    // Complete: NameFromCommandArgs (pkg/cmd/create/create.go).
    let args_len = p.args_len_at_dash.unwrap_or(p.args.len());
    if args_len != 1 {
        // Byte-identical to kubectl, so the hint names kubectl's command path.
        let msg = format!(
            "exactly one NAME is required, got {args_len}\nSee '{COMMAND_PATH} -h' for help and examples"
        );
        return fail(io, msg.as_bytes());
    }
    let name = p.args[0].clone();

    // Complete: f.ToRESTConfig() (client-go clientcmd): an explicit kubeconfig must exist, and
    // --request-timeout must parse (ParseTimeout).
    let kubeconfig = p.string("kubeconfig", "");
    if !kubeconfig.is_empty() {
        if let Err(e) = std::fs::metadata(bytes_to_path(&kubeconfig)) {
            if e.kind() == std::io::ErrorKind::NotFound {
                let msg = cat(&[b"stat ", &kubeconfig, b": ", errno_text(&e).as_bytes()]);
                return fail(io, &msg);
            }
        }
    }
    let timeout = p.string("request-timeout", "0");
    if !timeout.is_empty() && !valid_timeout(&timeout) {
        return fail(
            io,
            b"Invalid timeout value. Timeout must be a single integer in seconds, or an integer \
              followed by a corresponding time unit (e.g. 1s | 2m | 3h)",
        );
    }

    // Complete: GetDryRunStrategy (pkg/cmd/util/helpers.go).
    let dry_run_flag = p.string("dry-run", "none");
    let dry_run = match parse_bool(&dry_run_flag) {
        Some(b) => {
            let (line, replacement, mode) = if b {
                ("716", "client", DryRun::Client)
            } else {
                ("719", "none", DryRun::None)
            };
            let msg = format!(
                "--dry-run={} is deprecated (boolean value) and can be replaced with --dry-run={replacement}.",
                String::from_utf8_lossy(&dry_run_flag)
            );
            let _ = io
                .err
                .write_all(klog_line('W', &format!("helpers.go:{line}"), &msg).as_bytes());
            mode
        }
        None => match dry_run_flag.as_slice() {
            b"unchanged" => {
                let msg = "--dry-run is deprecated and can be replaced with --dry-run=client.";
                let _ = io
                    .err
                    .write_all(klog_line('W', "helpers.go:702", msg).as_bytes());
                DryRun::Client
            }
            b"client" => DryRun::Client,
            b"server" => DryRun::Server,
            b"none" => DryRun::None,
            other => {
                let msg = cat(&[
                    b"Invalid dry-run value (",
                    other,
                    b"). Must be \"none\", \"server\", or \"client\".",
                ]);
                return fail(io, &msg);
            }
        },
    };

    // Complete: ToRawKubeConfigLoader().Namespace(): only an explicit, non-empty -n is enforced.
    let namespace = p
        .get("namespace")
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec);

    // Complete: PrintFlags.ToPrinter (cli-runtime genericclioptions).
    let printer = match choose_printer(&p) {
        Ok(pr) => pr,
        Err(msg) => return fail(io, &msg),
    };

    // Complete: GetValidationDirective.
    let validate = p.string("validate", "strict");
    if parse_bool(&validate).is_none()
        && !matches!(validate.as_slice(), b"strict" | b"warn" | b"ignore")
    {
        let msg = cat(&[
            b"invalid - validate option ",
            &go_quote_bytes(&validate),
            b"; must be one of: strict (or true), warn, ignore (or false)",
        ]);
        return fail(io, &msg);
    }

    let sources = p.list("from-file");
    let mut opts = DockerRegistrySecretOptions::new(name);
    opts.namespace = namespace;
    opts.server = p.string(
        "docker-server",
        kubepull_core::secret::DEFAULT_DOCKER_SERVER,
    );
    opts.username = p.string("docker-username", "");
    opts.email = p.string("docker-email", "");
    opts.append_hash = p.bool("append-hash");
    opts.save_config = p.bool("save-config");

    // kubepull only: the password from stdin or a file (ignored with --from-file, like every
    // --docker-* flag).
    let password_sources = [
        p.changed("docker-password"),
        p.bool("docker-password-stdin"),
        p.changed("docker-password-file"),
    ];
    if password_sources.iter().filter(|&&b| b).count() > 1 {
        return fail(
            io,
            b"only one of --docker-password, --docker-password-stdin and --docker-password-file may be given",
        );
    }
    opts.password = p.string("docker-password", "");
    if sources.is_empty() {
        if p.bool("docker-password-stdin") {
            let mut buf = Vec::new();
            if let Err(e) = io.stdin.read_to_end(&mut buf) {
                let msg = format!("reading the password from stdin: {}", errno_text(&e));
                return fail(io, msg.as_bytes());
            }
            opts.password = strip_newline(buf);
        } else if p.changed("docker-password-file") {
            let path = p.string("docker-password-file", "");
            match std::fs::read(bytes_to_path(&path)) {
                Ok(buf) => opts.password = strip_newline(buf),
                Err(e) => {
                    let msg = cat(&[
                        b"error reading --docker-password-file ",
                        &path,
                        b": ",
                        errno_text(&e).as_bytes(),
                    ]);
                    return fail(io, &msg);
                }
            }
        }
    }

    // Validate.
    if let Err(e) = opts.validate_before_reading(sources.len()) {
        return fail(io, &e.message());
    }

    // Run: createSecretDockerRegistry -> handleSecretFromFileSources (create_secret.go).
    for source in &sources {
        match read_source(source, &opts.from_files) {
            Ok(entry) => opts.from_files.push(entry),
            Err(msg) => return fail(io, &msg),
        }
    }
    let secret = match opts.build() {
        Ok(s) => s,
        Err(e) => return fail(io, &e.message()),
    };

    if dry_run != DryRun::Client {
        // Send the Secret to the API server named by the kubeconfig, as kubectl does.
        let target = crate::server_create::Target {
            kubeconfig: (!kubeconfig.is_empty()).then(|| bytes_to_path(&kubeconfig).to_path_buf()),
            context: p
                .get("context")
                .filter(|c| !c.is_empty())
                .map(|c| String::from_utf8_lossy(c).into_owned()),
            namespace: p
                .get("namespace")
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned()),
            server_dry_run: dry_run == DryRun::Server,
            save_config: opts.save_config,
        };
        let fmt = match printer {
            Printer::Json => crate::server_create::Output::Json,
            Printer::Yaml => crate::server_create::Output::Yaml,
            Printer::Name { short: true } => crate::server_create::Output::Name,
            Printer::Name { short: false } => crate::server_create::Output::Created,
        };
        return match crate::server_create::create(&secret.render_json(), &target, fmt) {
            Ok(out) => {
                if io.out.write_all(&out).is_err() {
                    return FAILED;
                }
                OK
            }
            Err(msg) => fail(io, msg.as_bytes()),
        };
    }

    let output = match printer {
        Printer::Json => secret.render_json(),
        Printer::Yaml => match secret.render_yaml() {
            Ok(y) => y,
            Err(e) => return fail(io, &e.message()),
        },
        Printer::Name { short: true } => secret.render_name(None),
        Printer::Name { short: false } => secret.render_name(Some("created (dry run)")),
    };
    if io.out.write_all(&output).is_err() {
        return FAILED;
    }
    OK
}

/// One `--from-file` source: parse, stat, refuse directories, read, check the key.
fn read_source(
    source: &[u8],
    existing: &[(Vec<u8>, Vec<u8>)],
) -> Result<(Vec<u8>, Vec<u8>), Vec<u8>> {
    let (key, path) = parse_file_source(source).map_err(|e| e.message())?;
    let fs_path = bytes_to_path(&path);
    let meta = std::fs::metadata(&fs_path)
        .map_err(|e| cat(&[b"error reading ", &path, b": ", errno_text(&e).as_bytes()]))?;
    if meta.is_dir() {
        // Every source names a key once kubectl has prefixed `.dockerconfigjson=`.
        return Err(SecretError::DirectoryWithKey.message());
    }
    let contents = std::fs::read(&fs_path)
        .map_err(|e| cat(&[b"open ", &path, b": ", errno_text(&e).as_bytes()]))?;
    check_new_key(existing.iter().map(|(k, _)| k), &key).map_err(|e| e.message())?;
    Ok((key, contents))
}

fn strip_newline(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    buf
}

/// clientcmd `ParseTimeout`: a non-negative integer (seconds) or a Go duration.
fn valid_timeout(v: &[u8]) -> bool {
    let is_int = {
        let digits = v.strip_prefix(b"+").unwrap_or(v);
        !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(digits)
                .ok()
                .and_then(|d| d.parse::<i64>().ok())
                .is_some()
    };
    is_int || go_parse_duration(v)
}

/// cli-runtime `PrintFlags.ToPrinter` for this command.
fn choose_printer(p: &Parsed) -> Result<Printer, Vec<u8>> {
    let output = p.string("output", "");
    let template = p.string("template", "");
    let format: Vec<u8> = if !template.is_empty() && !p.changed("output") {
        b"go-template".to_vec()
    } else {
        output.clone()
    };
    match format.to_ascii_lowercase().as_slice() {
        b"json" => return Ok(Printer::Json),
        b"yaml" => return Ok(Printer::Yaml),
        b"name" => return Ok(Printer::Name { short: true }),
        b"" => return Ok(Printer::Name { short: false }),
        _ => {}
    }
    // KubeTemplatePrintFlags: JSONPath first, then Go templates.
    for formats in [
        &["jsonpath", "jsonpath-file", "jsonpath-as-json"][..],
        &[
            "template",
            "go-template",
            "go-template-file",
            "templatefile",
        ][..],
    ] {
        let (fmt, value): (Vec<u8>, Vec<u8>) = if template.is_empty() {
            formats
                .iter()
                .find_map(|f| {
                    let prefix = format!("{f}=");
                    format
                        .strip_prefix(prefix.as_bytes())
                        .map(|v| (f.as_bytes().to_vec(), v.to_vec()))
                })
                .unwrap_or((format.clone(), Vec::new()))
        } else {
            (format.clone(), template.clone())
        };
        let Some(fmt) = formats.iter().find(|f| f.as_bytes() == fmt.as_slice()) else {
            continue;
        };
        if value.is_empty() {
            return Err(b"template format specified but no template given".to_vec());
        }
        if fmt.ends_with("-file") || *fmt == "templatefile" {
            if let Err(e) = std::fs::read(bytes_to_path(&value)) {
                return Err(cat(&[
                    b"error reading --template ",
                    &value,
                    b", open ",
                    &value,
                    b": ",
                    errno_text(&e).as_bytes(),
                ]));
            }
        }
        return Err(format!(
            "kubepull does not support the {fmt} output format yet; use -o json, -o yaml or -o name"
        )
        .into_bytes());
    }
    let mut msg = b"unable to match a printer suitable for the output format ".to_vec();
    msg.extend_from_slice(&go_quote_bytes(&output));
    msg.extend_from_slice(
        b", allowed formats are: go-template,go-template-file,json,jsonpath,jsonpath-as-json,\
          jsonpath-file,name,template,templatefile,yaml",
    );
    Err(msg)
}

/// `kubepull create` or `kubepull create secret` without a supported subcommand. Flag errors
/// are reported as kubectl reports them for these commands, and so is `create secret` with
/// stray arguments; otherwise kubepull explains what it supports.
fn parent_command(secret: bool, args: &[Vec<u8>], io: &mut Io) -> u8 {
    let (path, sets): (&str, &[&'static [FlagDef]]) = if secret {
        ("kubectl create secret", &[GLOBAL_FLAGS, HELP_FLAG])
    } else {
        ("kubectl create", &[CREATE_FLAGS, GLOBAL_FLAGS, HELP_FLAG])
    };
    let p = match parse_flags(args, &FlagSet { sets }) {
        Ok(p) => p,
        Err(msg) => return flag_error(io, path, &msg),
    };
    if p.bool("help") {
        let _ = io.out.write_all(CREATE_HELP.as_bytes());
        return OK;
    }
    if secret {
        // cmdutil.DefaultSubCommandRun: RequireNoArguments, else the help on stderr, exit 1.
        if !p.args.is_empty() {
            let mut msg = b"unknown command ".to_vec();
            msg.extend_from_slice(&go_quote_bytes(&p.args.join(&b' ')));
            msg.extend_from_slice(b"\nSee 'kubectl create secret -h' for help and examples");
            return fail(io, &msg);
        }
        let _ = io.err.write_all(CREATE_HELP.as_bytes());
        return FAILED;
    }
    other_command(&p.args, args, io)
}

/// `kubepull create` resolved to something other than `secret docker-registry`.
fn other_command(path: &[Vec<u8>], args: &[Vec<u8>], io: &mut Io) -> u8 {
    let wants_help = args.iter().any(|a| a == b"-h" || a == b"--help");
    if wants_help {
        let _ = io.out.write_all(CREATE_HELP.as_bytes());
        return OK;
    }
    if path.is_empty() && args.is_empty() {
        let _ = io.err.write_all(CREATE_HELP.as_bytes());
        return USAGE;
    }
    let got = if path.is_empty() {
        "create".to_string()
    } else {
        format!(
            "create {}",
            path.iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        )
    };
    let msg = format!(
        "error: kubepull create supports only `secret docker-registry` (got `{got}`); \
         see `kubepull create secret docker-registry --help`\n"
    );
    let _ = io.err.write_all(msg.as_bytes());
    USAGE
}

const CREATE_HELP: &str = "\
Create a resource, the way kubectl does. kubepull supports one resource:

  kubepull create secret docker-registry NAME [flags]

Run `kubepull create secret docker-registry --help` for its flags.
";

const HELP: &str = "\
Create a secret for use with a Docker registry (kubectl-compatible).

With --dry-run=client the output, errors and exit codes are byte-identical to
`kubectl create secret docker-registry ... --dry-run=client` (kubectl 1.32).
Without --dry-run=client the Secret is created on the API server named by the
kubeconfig (--kubeconfig, KUBECONFIG, ~/.kube/config; --context, -n), as kubectl does.

Usage:
  kubepull create secret docker-registry NAME --docker-username=user --docker-password=password
      [--docker-email=email] [--docker-server=string] [--from-file=[key=]source]
      [--dry-run=server|client|none] [options]

Examples:
  # Print a pull secret for Docker Hub
  kubepull create secret docker-registry my-secret --docker-username=USER \\
      --docker-password-stdin --dry-run=client -o yaml < password.txt

  # Print a pull secret from an existing ~/.docker/config.json
  kubepull create secret docker-registry my-secret --from-file=path/to/.docker/config.json \\
      --dry-run=client -o yaml

Options:
  --docker-server=URL       Server location for the Docker registry, used verbatim as the
                            auths key (default 'https://index.docker.io/v1/').
  --docker-username=USER    Username for Docker registry authentication.
  --docker-password=PASS    Password for Docker registry authentication.
  --docker-email=EMAIL      Email for the Docker registry (optional).
  --from-file=[KEY=]PATH    Use the file's bytes verbatim as the secret data, under KEY
                            (default .dockerconfigjson). Repeatable; comma-separated values are
                            split as CSV. When given, the --docker-* flags are ignored.
  --append-hash[=BOOL]      Append a hash of the secret to its name.
  --save-config[=BOOL]      Store the object in the kubectl.kubernetes.io/last-applied-configuration
                            annotation.
  --dry-run=none|client|server
                            Only `client` is available: print the object without sending it.
  -o, --output=FORMAT       json, yaml or name. Without -o: `secret/NAME created (dry run)`.
                            Template formats (jsonpath, go-template) are not supported yet.
  -n, --namespace=NS        Write metadata.namespace (only when given explicitly).
  --field-manager, --validate, --template, --show-managed-fields,
  --allow-missing-template-keys
                            Accepted as kubectl accepts them; no effect on a client dry run.
  -h, --help                Show this help.

kubepull-only options (keep the password out of the shell history):
  --docker-password-stdin   Read the password from standard input; one trailing newline is
                            removed. Like every --docker-* flag, ignored with --from-file.
  --docker-password-file=PATH
                            Read the password from PATH; one trailing newline is removed.
  At most one of --docker-password, --docker-password-stdin and --docker-password-file.

Global kubectl flags (--kubeconfig, --context, --cluster, --user, -s/--server, --token,
--as, --as-group, --as-uid, --request-timeout, -v, --vmodule, ...) are accepted and
checked for syntax; a client dry run does not contact a cluster. An explicit --kubeconfig
must exist.

Exit codes: 0 success, 1 any error (as kubectl).
";

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str], stdin: &[u8]) -> (u8, Vec<u8>, Vec<u8>) {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        let mut out = Vec::new();
        let mut err = Vec::new();
        let mut input = stdin;
        let code = {
            let mut io = Io {
                stdin: &mut input,
                out: &mut out,
                err: &mut err,
            };
            run(&args, &mut io)
        };
        (code, out, err)
    }

    #[test]
    fn resolves_flags_before_subcommands() {
        let a = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        match resolve(&a(&[
            "-n",
            "x",
            "secret",
            "--docker-username",
            "u",
            "docker-registry",
            "n",
        ])) {
            Resolved::DockerRegistry(rest) => {
                assert_eq!(rest, a(&["-n", "x", "--docker-username", "u", "n"]))
            }
            _ => panic!("not resolved"),
        }
        assert!(matches!(
            resolve(&a(&["secret", "generic", "x"])),
            Resolved::Other(_)
        ));
        assert!(matches!(
            resolve(&a(&["--bogus", "secret", "docker-registry"])),
            Resolved::Create(_)
        ));
        assert!(matches!(
            resolve(&a(&["secret", "--bogus", "docker-registry", "x"])),
            Resolved::Secret(_)
        ));
        assert!(matches!(resolve(&a(&["cm", "x"])), Resolved::Other(_)));
    }

    #[test]
    fn pflag_errors() {
        let (c, _, e) = run_args(&["secret", "docker-registry", "x", "--bogus"], b"");
        assert_eq!(c, 1);
        assert_eq!(e, b"Error: unknown flag: --bogus\nSee 'kubectl create secret docker-registry --help' for usage.\n");
        let (_, _, e) = run_args(&["secret", "docker-registry", "x", "-z"], b"");
        assert!(e.starts_with(b"Error: unknown shorthand flag: 'z' in -z\n"));
        let (_, _, e) = run_args(
            &["secret", "docker-registry", "x", "--append-hash=maybe"],
            b"",
        );
        assert!(e.starts_with(b"Error: invalid argument \"maybe\" for \"--append-hash\" flag: strconv.ParseBool: parsing \"maybe\": invalid syntax\n"));
        let (_, _, e) = run_args(&["secret", "docker-registry", "x", "-v=abc"], b"");
        assert!(e.starts_with(b"Error: invalid argument \"abc\" for \"-v, --v\" flag: strconv.ParseInt: parsing \"abc\": invalid syntax\n"));
        let (_, _, e) = run_args(&["secret", "docker-registry", "x", "--from-file=a\"b"], b"");
        assert!(e.starts_with(b"Error: invalid argument \"a\\\"b\" for \"--from-file\" flag: parse error on line 1, column 2: bare \" in non-quoted-field\n"));
    }

    #[test]
    fn csv_like_go() {
        let ok = |s: &str| read_csv_record(s.as_bytes()).unwrap();
        let s = |v: &[&str]| v.iter().map(|x| x.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(ok("a,b"), s(&["a", "b"]));
        assert_eq!(ok("\"a,b\",c"), s(&["a,b", "c"]));
        assert_eq!(ok("a,"), s(&["a", ""]));
        assert_eq!(ok("\n\nx\ny"), s(&["x"]));
        assert_eq!(ok("\"a\nb\""), s(&["a\nb"]));
        assert_eq!(ok("\"a\"\"b\""), s(&["a\"b"]));
        assert_eq!(read_csv_record(b"\n").unwrap_err(), "EOF");
        assert_eq!(
            read_csv_record(b"\"a\"b").unwrap_err(),
            "parse error on line 1, column 3: extraneous or missing \" in quoted-field"
        );
        assert_eq!(
            read_csv_record(b"\"ab").unwrap_err(),
            "parse error on line 1, column 4: extraneous or missing \" in quoted-field"
        );
        assert!(ok("").is_empty());
    }

    #[test]
    fn durations_and_ints() {
        for ok in [
            "0", "1s", "1.5h", "-2m3s", "100ms", "1µs", ".5s", "2562047h",
        ] {
            assert!(go_parse_duration(ok.as_bytes()), "{ok}");
        }
        for bad in ["", "1", "abc", "1x", "s", ".s", "2562048h", "-"] {
            assert!(!go_parse_duration(bad.as_bytes()), "{bad}");
        }
        assert_eq!(parse_int32(b"2147483647"), Ok(2147483647));
        assert_eq!(parse_int32(b"-2147483648"), Ok(-2147483648));
        assert!(String::from_utf8(parse_int32(b"2147483648").unwrap_err())
            .unwrap()
            .ends_with("value out of range"));
        assert!(String::from_utf8(parse_int32(b"99999999999x").unwrap_err())
            .unwrap()
            .ends_with("value out of range"));
        assert!(check_vmodule(b"foo=2,bar=1,").is_ok());
        assert!(check_vmodule(b"foo").is_err());
        assert_eq!(
            check_vmodule(b"foo=-1").unwrap_err(),
            b"negative value for vmodule level"
        );
    }

    #[test]
    fn password_from_stdin_and_never_in_errors() {
        let (c, out, _) = run_args(
            &[
                "secret",
                "docker-registry",
                "x",
                "--docker-username=u",
                "--docker-password-stdin",
                "--dry-run=client",
                "-o",
                "json",
            ],
            b"pa55\n",
        );
        assert_eq!(c, 0);
        let out = String::from_utf8(out).unwrap();
        // {"auths":{"https://index.docker.io/v1/":{"username":"u","password":"pa55","auth":"dTpwYTU1"}}}
        assert!(out.contains("eyJhdXRocyI6eyJodHRwczovL2luZGV4LmRvY2tlci5pby92MS8iOnsidXNlcm5hbWUiOiJ1IiwicGFzc3dvcmQiOiJwYTU1IiwiYXV0aCI6ImRUcHdZVFUxIn19fQ=="), "{out}");
        let (c, _, e) = run_args(
            &[
                "secret",
                "docker-registry",
                "x",
                "--docker-password=Hunter2Secret",
                "--docker-password-stdin",
            ],
            b"",
        );
        assert_eq!(c, 1);
        assert!(!String::from_utf8_lossy(&e).contains("Hunter2Secret"));
        let (_, _, e) = run_args(
            &[
                "secret",
                "docker-registry",
                "x",
                "y",
                "--docker-password=Hunter2Secret",
            ],
            b"",
        );
        assert!(!String::from_utf8_lossy(&e).contains("Hunter2Secret"));
    }

    #[test]
    fn no_dry_run_needs_a_reachable_server() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("missing-cluster.kubeconfig");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:1\ncontexts:\n- name: c\n  context: {cluster: c, user: u1}\ncurrent-context: c\nusers:\n- name: u1\n  user:\n    token: t\n",
        )
        .unwrap();
        let (c, out, e) = run_args(
            &[
                "secret",
                "docker-registry",
                "x",
                "--docker-username=u",
                "--docker-password=Hunter2Secret",
                &format!("--kubeconfig={}", kc.display()),
            ],
            b"",
        );
        assert_eq!(c, 1);
        assert!(out.is_empty());
        let e = String::from_utf8_lossy(&e);
        assert!(e.starts_with("error: failed to create secret"), "{e}");
        assert!(!e.contains("Hunter2Secret"));
    }

    #[test]
    fn other_resources_are_refused_clearly() {
        let (c, _, e) = run_args(&["configmap", "x"], b"");
        assert_eq!(c, USAGE);
        assert!(String::from_utf8_lossy(&e).contains("supports only `secret docker-registry`"));
        let (c, out, _) = run_args(&["secret", "--help"], b"");
        assert_eq!(c, OK);
        assert!(!out.is_empty());
    }

    #[test]
    fn quote_rune_like_go() {
        assert_eq!(quote_rune(b'z'), b"'z'");
        assert_eq!(quote_rune(b'\''), b"'\\''");
        assert_eq!(quote_rune(0x01), b"'\\x01'");
        assert_eq!(quote_rune(0x85), b"'\\u0085'");
        assert_eq!(quote_rune(0xe9), "'é'".as_bytes());
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
