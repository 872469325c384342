#![no_main]
//! The store's tar reader (`kubepull_store::list_tar`, the reader `unpack_layer` uses) against
//! the `tar` crate: the same entries (names, link names, types, sizes) in the same order, or
//! both reject.
//!
//! The store's reader follows Go's `archive/tar` (what containerd unpacks layers with); where
//! the `tar` crate reads differently, Go's reading is kept and the difference is allowed here,
//! each one named:
//!
//! 1. header-only types (links, devices, directories, fifos) carry no data whatever their size
//!    field says (Go `isHeaderOnlyType`); the `tar` crate skips `size` bytes after them, so the
//!    two streams part ways after such an entry: comparison stops there.
//! 2. `g` (global PAX) headers are consumed, not listed.
//! 3. GNU long names and links are C strings: cut at the first NUL (Go `parseString`); the
//!    `tar` crate drops only one trailing NUL.
//! 4. A GNU long name or link takes priority over PAX `path`/`linkpath`; the last PAX record
//!    for a key wins; an empty PAX value keeps the header's field (Go `mergePAX`). The `tar`
//!    crate takes the first PAX record and an empty value.
//! 5. A `ustar\0` magic means a USTAR prefix whatever the version field; with the star trailer
//!    `tar\0` the prefix is 131 bytes (Go `getFormat`). The `tar` crate wants version `00`.
//! 6. Typeflag NUL with a name ending in `/` is a directory (Go `Reader.next`).
//! 7. Meta headers (`L`, `K`, `x`) are honoured whatever the magic, a later one replaces an
//!    earlier one, and pending ones at the end of the archive are ignored (Go); the `tar`
//!    crate lists them as entries under a V7 magic and refuses the others.
//! 8. Checksums summed over signed bytes, empty or NUL-led numeric fields (0), negative
//!    base-256 times, and an end of stream inside the last entry's padding are accepted (Go);
//!    the `tar` crate refuses them. Conversely the store refuses what Go refuses and the `tar`
//!    crate lets through: malformed PAX records, numeric fields with a sign or whitespace other
//!    than spaces, base-256 overflow, and entry types it does not unpack (sparse, volume
//!    labels, anything unknown), plus its own bounds (long names over 4096 bytes).
//!
//! So: while neither side has reached a point named above, the entries must be equal; when one
//! side fails there, the other must have listed the same entries up to it.
use std::io::Read;

use kubepull_store::{list_tar, TarEntryInfo, TarEntryKind, UnpackError, UnpackOptions};
use libfuzzer_sys::fuzz_target;

#[derive(Debug)]
struct Theirs {
    name: Vec<u8>,
    link: Vec<u8>,
    kind: Option<TarEntryKind>,
    typeflag: u8,
    size: u64,
    /// The name or link is read differently (differences 3 to 5): not compared.
    name_differs: bool,
    /// The type or size is read differently (differences 4, 6, 7): the streams part here.
    parts_before: bool,
    /// A header-only type with a size (difference 1): the streams part after this entry.
    parts_after: bool,
}

fn theirs(data: &[u8]) -> (Vec<Theirs>, Option<String>) {
    let mut out = Vec::new();
    let mut a = tar::Archive::new(data);
    let entries = match a.entries() {
        Ok(e) => e,
        Err(e) => return (out, Some(e.to_string())),
    };
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(err) => return (out, Some(err.to_string())),
        };
        let raw = *e.header().as_bytes();
        let typeflag = raw[156];
        let name = e.path_bytes().into_owned();
        let link = e
            .link_name_bytes()
            .map(|l| l.into_owned())
            .unwrap_or_default();
        let size = e.size();
        let kind = match typeflag {
            b'0' | b'\0' | b'7' => Some(TarEntryKind::File),
            b'1' => Some(TarEntryKind::HardLink),
            b'2' => Some(TarEntryKind::Symlink),
            b'3' => Some(TarEntryKind::Char),
            b'4' => Some(TarEntryKind::Block),
            b'5' => Some(TarEntryKind::Dir),
            b'6' => Some(TarEntryKind::Fifo),
            _ => None,
        };
        // PAX records: duplicates and empty values are read differently (4)
        let mut keys: Vec<Vec<u8>> = Vec::new();
        let mut pax_odd = false;
        let mut pax_size_odd = false;
        // (on a PAX header itself, `pax_extensions` would read its data away)
        let pax = if matches!(typeflag, b'x' | b'g') {
            None
        } else {
            e.pax_extensions().ok().flatten()
        };
        if let Some(pax) = pax {
            for rec in pax {
                let Ok(rec) = rec else {
                    pax_odd = true;
                    continue;
                };
                let k = rec.key_bytes().to_vec();
                if keys.contains(&k) || rec.value_bytes().is_empty() {
                    pax_odd = true;
                    pax_size_odd |= k == b"size";
                }
                keys.push(k);
            }
        }
        let magic = &raw[257..263];
        let version_00 = &raw[263..265] == b"00";
        let star = &raw[508..512] == b"tar\0";
        let name_differs = name.contains(&0)
            || link.contains(&0)
            || pax_odd
            || (magic == b"ustar\0" && (!version_00 || star) && raw[345] != 0);
        let parts_before =
            kind.is_none() || pax_size_odd || (typeflag == 0 && name.ends_with(b"/"));
        let parts_after = kind.is_some_and(|k| k != TarEntryKind::File)
            && raw[124..136].iter().any(|&b| !matches!(b, 0 | b'0' | b' '));
        let mut buf = Vec::new();
        let read = e.read_to_end(&mut buf);
        out.push(Theirs {
            name,
            link,
            kind,
            typeflag,
            size,
            name_differs,
            parts_before,
            parts_after,
        });
        if read.is_err() || buf.len() as u64 != size {
            return (out, Some("entry data truncated".into()));
        }
    }
    (out, None)
}

fn same(o: &TarEntryInfo, t: &Theirs) -> bool {
    Some(o.kind) == t.kind
        && o.size == t.size
        && (t.name_differs || (o.name == t.name && o.link == t.link))
}

/// Rewrites the checksum of every non-zero 512-byte block, so that mutated headers get past
/// the checksum (which a fuzzer rarely satisfies by itself) to the fields behind it.
fn fix_checksums(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    for b in v.chunks_exact_mut(512) {
        if b.iter().all(|&x| x == 0) {
            continue;
        }
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    }
    v
}

fuzz_target!(|data: &[u8]| {
    // inputs starting with an odd byte (most names) get valid checksums
    let fixed;
    let data = if data.first().is_some_and(|b| b & 1 == 1) {
        fixed = fix_checksums(data);
        &fixed[..]
    } else {
        data
    };
    let opts = UnpackOptions {
        max_entries: 10_000,
        max_unpacked_bytes: 1 << 20,
        ..UnpackOptions::default()
    };
    let (ours, ours_res) = list_tar(data, &opts);
    for e in &ours {
        assert!(e.mode <= 0o7777);
    }
    let (theirs, theirs_err) = theirs(data);
    // 2: global headers are not entries of ours
    let theirs: Vec<Theirs> = theirs.into_iter().filter(|t| t.typeflag != b'g').collect();

    let mut i = 0;
    loop {
        match (ours.get(i), theirs.get(i)) {
            (Some(o), Some(t)) => {
                if t.parts_before {
                    return; // 4, 6, 7: the two read this entry and what follows differently
                }
                if t.name_differs && t.typeflag == 0 && o.kind == TarEntryKind::Dir {
                    // 6 under a name the two read differently (3, 4): only ours sees the name
                    // that ends in `/`, so only ours takes the entry for a directory
                    return;
                }
                assert!(
                    same(o, t),
                    "entry {i} differs:\n ours   {o:?}\n theirs {t:?}\n(ours: {ours_res:?}, theirs: {theirs_err:?})"
                );
                if t.parts_after {
                    return; // 1
                }
                i += 1;
            }
            (None, None) => {
                // both stopped after the same entries: both at the end, both refusing, or one
                // refusing what it is allowed to refuse
                match (&ours_res, &theirs_err) {
                    (Ok(()), None) | (Err(_), Some(_)) => {}
                    (Ok(()), Some(e)) => assert!(
                        allowed_theirs_err(Some(e)),
                        "the tar crate refuses after {i} entries: {e}"
                    ),
                    (Err(e), None) => assert!(
                        allowed_ours_err(&ours_res),
                        "the store refuses after {i} entries: {e}"
                    ),
                }
                return;
            }
            (Some(o), None) => {
                // the tar crate stopped first: it must have refused what Go accepts
                assert!(
                    allowed_theirs_err(theirs_err.as_deref()),
                    "the tar crate stops before entry {i} ({o:?}): {theirs_err:?}; ours {ours_res:?}; theirs {theirs:?}"
                );
                return;
            }
            (None, Some(t)) => {
                // the store stopped first: it must have refused what Go refuses
                if t.parts_before {
                    return;
                }
                assert!(
                    allowed_ours_err(&ours_res),
                    "the store stops before entry {i} ({t:?}): {ours_res:?}; theirs {theirs_err:?}"
                );
                return;
            }
        }
    }
});

/// 7 and 8: what the `tar` crate refuses and Go reads.
fn allowed_theirs_err(e: Option<&str>) -> bool {
    let Some(e) = e else { return false };
    [
        "checksum mismatch",
        "numeric field",
        "members found describing a future member",
        "two long name entries",
        "two pax extensions",
        "unexpected EOF during skip",
    ]
    .iter()
    .any(|m| e.contains(m))
}

/// 8: what the store refuses that the `tar` crate reads.
fn allowed_ours_err(r: &Result<(), UnpackError>) -> bool {
    match r {
        Ok(()) => false,
        Err(UnpackError::UnsupportedType { .. }) => true,
        Err(UnpackError::Malformed { reason, .. }) => {
            reason.starts_with("pax header")
                || reason.contains("is larger than")
                || reason.contains("is not a number")
                || reason.contains("checksum")
        }
        Err(_) => false,
    }
}
