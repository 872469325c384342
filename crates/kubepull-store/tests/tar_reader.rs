//! The layer tar reader read as Go's `archive/tar` reads (what containerd unpacks layers with):
//! regressions found by the `tar` fuzz target (fuzz/fuzz_targets/tar.rs), which compares the
//! reader with the `tar` crate, and by reading Go's reader.go/strconv.go/format.go next to it.

mod common;

use common::{header, Tar, H};
use kubepull_store::{list_tar, TarEntryInfo, TarEntryKind, UnpackError, UnpackOptions};

fn list(data: &[u8]) -> Result<Vec<TarEntryInfo>, UnpackError> {
    let (entries, res) = list_tar(data, &UnpackOptions::default());
    res.map(|()| entries)
}

fn names(data: &[u8]) -> Vec<String> {
    list(data)
        .unwrap()
        .iter()
        .map(|e| String::from_utf8_lossy(&e.name).into_owned())
        .collect()
}

/// A header block edited after `common::header` wrote it, with its checksum recomputed.
fn edited(h: &H, edit: impl FnOnce(&mut [u8; 512])) -> [u8; 512] {
    let mut b = header(h);
    edit(&mut b);
    b[148..156].fill(b' ');
    let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b
}

fn archive(blocks: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for b in blocks {
        v.extend_from_slice(b);
        v.resize(v.len().div_ceil(512) * 512, 0);
    }
    v.extend_from_slice(&[0u8; 1024]);
    v
}

fn pax_record(k: &str, v: &str) -> String {
    let body = format!(" {k}={v}\n");
    let mut len = body.len() + 1;
    while format!("{len}").len() + body.len() != len {
        len += 1;
    }
    format!("{len}{body}")
}

fn meta(typeflag: u8, data: &[u8]) -> Vec<u8> {
    let mut h = H::new("././@LongLink", typeflag);
    h.size = data.len() as u64;
    [header(&h).as_slice(), data].concat()
}

#[test]
fn list_tar_reads_real_entries() {
    let data = Tar::default()
        .dir("etc", 0o755)
        .file("etc/hosts", b"127.0.0.1 localhost\n", 0o644)
        .symlink("bin/sh", "/bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .file(&format!("deep/{}", "d".repeat(150)), b"long", 0o600)
        .finish();
    let e = list(&data).unwrap();
    let kinds: Vec<TarEntryKind> = e.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            TarEntryKind::Dir,
            TarEntryKind::File,
            TarEntryKind::Symlink,
            TarEntryKind::HardLink,
            TarEntryKind::File
        ]
    );
    assert_eq!(e[1].size, 20);
    assert_eq!(e[1].mode, 0o644);
    assert_eq!(e[2].link, b"/bin/busybox");
    assert_eq!(e[4].name, format!("deep/{}", "d".repeat(150)).as_bytes());
}

#[test]
fn gnu_long_name_takes_priority_over_pax_path() {
    // Go reader.go, Reader.next: "gnuLongName != \"\"" overrides what mergePAX set
    let pax = pax_record("path", "from-pax") + &pax_record("linkpath", "pax-target");
    let data = archive(&[
        &meta(b'x', pax.as_bytes()),
        &meta(b'L', b"from-gnu-long-name\0"),
        &meta(b'K', b"gnu-target\0"),
        &header(&H::new("from-header", b'2')),
    ]);
    let e = list(&data).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].name, b"from-gnu-long-name");
    assert_eq!(e[0].link, b"gnu-target");
}

#[test]
fn empty_pax_value_keeps_the_header_field() {
    // Go reader.go, mergePAX: `if v == "" { continue // Keep the original USTAR value }`
    let pax = pax_record("path", "") + &pax_record("size", "");
    let mut h = H::new("header-name", b'0');
    h.size = 3;
    let data = archive(&[&meta(b'x', pax.as_bytes()), &header(&h), b"abc"]);
    let e = list(&data).unwrap();
    assert_eq!(e[0].name, b"header-name");
    assert_eq!(e[0].size, 3);
}

#[test]
fn pax_records_with_an_empty_key_or_a_nul_are_refused() {
    // Go strconv.go, parsePAXRecord (n < 5) and validPAXRecord
    for bad in ["5 =x\n", "4 =\n", "12 path=a\0b\n"] {
        let data = archive(&[&meta(b'x', bad.as_bytes()), &header(&H::new("f", b'0'))]);
        let err = list(&data).unwrap_err();
        assert!(
            matches!(&err, UnpackError::Malformed { reason, .. } if reason.starts_with("pax header")),
            "{bad:?}: {err}"
        );
    }
}

#[test]
fn typeflag_nul_with_a_trailing_slash_is_a_directory() {
    // Go reader.go, Reader.next: "Legacy archives use trailing slash for directories"
    let data = archive(&[
        &header(&H::new("legacy-dir/", 0)),
        &header(&H::new("file", 0)),
    ]);
    let e = list(&data).unwrap();
    assert_eq!(e[0].kind, TarEntryKind::Dir);
    assert_eq!(e[1].kind, TarEntryKind::File);
}

#[test]
fn numeric_fields_are_trimmed_of_nuls_and_spaces_on_both_sides() {
    // Go strconv.go, parseOctal: leading NULs (unused fields are NUL-filled) and spaces are
    // trimmed before the text is cut at a NUL; an empty field is 0
    let h = H::new("f", b'0');
    let b = edited(&h, |b| {
        b[100..108].copy_from_slice(b"\0\0 0644 ");
        b[108..116].fill(0); // uid: empty
        b[124..136].copy_from_slice(b"  0000003\0xy");
    });
    let data = archive(&[&b, b"abc"]);
    let e = list(&data).unwrap();
    assert_eq!((e[0].mode, e[0].uid, e[0].size), (0o644, 0, 3));
}

#[test]
fn signed_or_non_octal_numeric_fields_are_refused() {
    // strconv.ParseUint takes no sign; Rust's from_str_radix would take "+17"
    for field in [
        &b"+0000017\0\0\0\0"[..],
        b"0000017 x\0\0\0",
        b"\t0000017\0\0\0\0",
    ] {
        let b = edited(&H::new("f", b'0'), |b| b[124..136].copy_from_slice(field));
        let err = list(&archive(&[&b])).unwrap_err();
        assert!(
            err.to_string().contains("size field is not a number"),
            "{err}"
        );
    }
}

#[test]
fn base256_fields_follow_go() {
    // Go strconv.go, parseNumeric: two's complement; a negative mtime is a time before 1970,
    // a negative size is refused, and more than 63 bits is an overflow
    let mut neg = [0xffu8; 12];
    neg[11] = 0xfe; // -2
    let b = edited(&H::new("old", b'0'), |b| b[136..148].copy_from_slice(&neg));
    assert_eq!(names(&archive(&[&b])), ["old"]);

    let b = edited(&H::new("f", b'0'), |b| b[124..136].copy_from_slice(&neg));
    assert!(list(&archive(&[&b])).is_err(), "negative size");

    let mut big = [0u8; 12];
    big[0] = 0x80;
    big[4] = 0x80; // bit 63 set
    let b = edited(&H::new("f", b'0'), |b| b[124..136].copy_from_slice(&big));
    assert!(list(&archive(&[&b])).is_err(), "size over 63 bits");
}

#[test]
fn star_headers_have_a_131_byte_prefix() {
    // Go format.go, getFormat: "ustar\0" with the trailer "tar\0" is star, whose prefix is 131
    // bytes (the rest holds atime and ctime)
    let b = edited(&H::new("name", b'0'), |b| {
        b[345..352].copy_from_slice(b"prefix/");
        b[345 + 131..345 + 155].fill(b'7'); // star atime/ctime, not prefix text
        b[508..512].copy_from_slice(b"tar\0");
    });
    assert_eq!(names(&archive(&[&b])), ["prefix//name"]);
    let b = edited(&H::new("name", b'0'), |b| {
        b[345..348].copy_from_slice(b"pre")
    });
    assert_eq!(names(&archive(&[&b])), ["pre/name"]);
}

#[test]
fn a_stream_ending_inside_the_last_padding_is_complete() {
    // Go reader.go, Reader.next: the padding is read with tryReadFull, whose io.EOF ends the
    // archive; data cut short is still an error
    let mut h = H::new("f", b'0');
    h.size = 3;
    let mut data = header(&h).to_vec();
    data.extend_from_slice(b"abc");
    let e = list(&data).unwrap();
    assert_eq!(e[0].size, 3);
    data.extend_from_slice(&[0; 100]);
    assert_eq!(list(&data).unwrap().len(), 1);
    data.truncate(512 + 2);
    assert!(matches!(list(&data), Err(UnpackError::Truncated { .. })));
}

#[test]
fn unpack_accepts_what_the_listing_accepts() {
    // the listing and the unpacker share one header reader
    let b = edited(&H::new("legacy-dir/", 0), |b| {
        b[100..108].copy_from_slice(b"\0\x00000755")
    });
    let data = archive(&[&b, &header(&H::new("legacy-dir/f", b'0'))]);
    let dir = tempfile::tempdir().unwrap();
    let stats = kubepull_store::unpack_layer(
        &data[..],
        "application/vnd.oci.image.layer.v1.tar",
        dir.path(),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!((stats.dirs, stats.files), (1, 1));
    assert!(dir.path().join("legacy-dir").is_dir());
}
