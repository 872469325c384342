//! Builds the protobuf descriptors the API server transcodes with, from the vendored upstream
//! sources in `proto/` (see `proto/README.md`):
//!
//! - `k8s.fds`: a `FileDescriptorSet` of every `generated.proto`, compiled with `protox` (no
//!   `protoc`).
//! - `k8s-fields.tsv`: what the Go structs behind those messages say about each protobuf field
//!   (the `json:` and `protobuf:` struct tags of the `types.go` files next to them): its JSON
//!   name, whether it is inlined (`json:",inline"`), whether the Go field is a pointer, and
//!   whether its JSON is `omitempty`. Upstream's go-to-protobuf derives the messages from these
//!   structs, so the tags are the mapping between the two encodings.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let proto = root.join("proto");
    println!("cargo:rerun-if-changed=proto");
    let mut protos = vec![];
    let mut dirs = vec![];
    walk(&proto, &mut protos, &mut dirs);
    protos.sort();
    dirs.sort();
    let rel: Vec<String> = protos
        .iter()
        .map(|p| {
            p.strip_prefix(&proto)
                .expect("below proto/")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let fds = protox::Compiler::new([&proto])
        .and_then(|mut c| {
            c.include_source_info(false);
            c.open_files(&rel)?;
            Ok(c.encode_file_descriptor_set())
        })
        .unwrap_or_else(|e| panic!("compiling proto/: {e:?}"));
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("k8s.fds"), fds).expect("writing k8s.fds");

    let mut tsv = String::new();
    for dir in &dirs {
        let gp = dir.join("generated.proto");
        let Ok(text) = std::fs::read_to_string(&gp) else {
            continue;
        };
        let package = text
            .lines()
            .find_map(|l| l.strip_prefix("package "))
            .map(|p| p.trim_end_matches(';').trim().to_string())
            .unwrap_or_else(|| panic!("{} has no package", gp.display()));
        let mut gos: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("read_dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "go"))
            .collect();
        gos.sort();
        for go in gos {
            let src = std::fs::read_to_string(&go).expect("reading a .go file");
            go_fields(&package, &src, &mut tsv);
        }
    }
    std::fs::write(out.join("k8s-fields.tsv"), tsv).expect("writing k8s-fields.tsv");
}

fn walk(dir: &Path, protos: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
    let mut has_proto = false;
    for e in std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
    {
        let p = e.path();
        if p.is_dir() {
            walk(&p, protos, dirs);
        } else if p.extension().is_some_and(|x| x == "proto") {
            protos.push(p);
            has_proto = true;
        }
    }
    if has_proto {
        dirs.push(dir.to_path_buf());
    }
}

/// One line per struct field with a `protobuf:` tag:
/// `<package>.<Struct>\t<number>\t<json name>\t<flags>` where flags are `i` (inline), `p` (Go
/// pointer), `o` (omitempty).
fn go_fields(package: &str, src: &str, out: &mut String) {
    let mut current: Option<String> = None;
    for line in src.lines() {
        if let Some(rest) = line.strip_prefix("type ") {
            let mut it = rest.split_whitespace();
            current = match (it.next(), it.next()) {
                (Some(name), Some("struct")) => Some(name.to_string()),
                _ => None,
            };
            continue;
        }
        if line.starts_with('}') {
            current = None;
            continue;
        }
        let Some(strukt) = &current else { continue };
        let t = line.trim();
        if t.starts_with("//") {
            continue;
        }
        let Some((decl, tag)) = t.split_once('`') else {
            continue;
        };
        let tag = tag.trim_end_matches('`');
        let (Some(pb), Some(js)) = (tag_value(tag, "protobuf"), tag_value(tag, "json")) else {
            continue;
        };
        let Some(number) = pb.split(',').nth(1) else {
            continue;
        };
        let toks: Vec<&str> = decl.split_whitespace().collect();
        let ty = match toks.as_slice() {
            [ty] => *ty,
            [_, ty, ..] => *ty,
            [] => continue,
        };
        let mut jparts = js.split(',');
        let jname = jparts.next().unwrap_or("");
        let opts: Vec<&str> = jparts.collect();
        let mut flags = String::new();
        if opts.contains(&"inline") {
            flags.push('i');
        }
        if ty.starts_with('*') {
            flags.push('p');
        }
        if opts.contains(&"omitempty") {
            flags.push('o');
        }
        let _ = writeln!(out, "{package}.{strukt}\t{number}\t{jname}\t{flags}");
    }
}

/// The value of `key:"…"` in a Go struct tag.
fn tag_value<'a>(tag: &'a str, key: &str) -> Option<&'a str> {
    let pat = format!("{key}:\"");
    let mut rest = tag;
    while let Some(i) = rest.find(&pat) {
        // `protobuf_key:"…"` must not match `protobuf:"…"`
        if i == 0 || rest.as_bytes()[i - 1] == b' ' {
            let v = &rest[i + pat.len()..];
            return v.find('"').map(|end| &v[..end]);
        }
        rest = &rest[i + pat.len()..];
    }
    None
}
