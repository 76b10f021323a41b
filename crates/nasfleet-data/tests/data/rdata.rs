//! The R XDR unserializer and lazy-load data base reader, on serializations built here
//! byte by byte following R's serialize.c, including every truncation of them.

use std::io::Write;

use nasfleet_data::rdata::{unserialize, LazyLoadDb, RValue, NA_INTEGER};

/// A minimal writer of R's XDR serialization format, for building test inputs.
#[derive(Default)]
struct W(Vec<u8>);

const ASCII: i32 = 1 << 6;
const UTF8: i32 = 1 << 3;
const LATIN1: i32 = 1 << 2;

impl W {
    fn header() -> W {
        let mut w = W(b"X\n".to_vec());
        w.int(3).int(0x0004_0201).int(0x0003_0500);
        w.int(5).bytes(b"UTF-8");
        w
    }
    fn int(&mut self, i: i32) -> &mut Self {
        self.0.extend_from_slice(&i.to_be_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    fn flags(&mut self, ty: u8, levels: i32, attr: bool, tag: bool) -> &mut Self {
        let f = i32::from(ty) | (levels << 12) | (i32::from(attr) << 9) | (i32::from(tag) << 10);
        self.int(f)
    }
    fn charsxp(&mut self, s: Option<&[u8]>, levels: i32) -> &mut Self {
        self.flags(9, levels, false, false);
        match s {
            None => self.int(-1),
            Some(b) => self.int(b.len() as i32).bytes(b),
        }
    }
    fn strsxp(&mut self, items: &[&str], attr: bool) -> &mut Self {
        self.flags(16, 0, attr, false).int(items.len() as i32);
        for s in items {
            self.charsxp(Some(s.as_bytes()), ASCII);
        }
        self
    }
    fn symbol(&mut self, name: &str) -> &mut Self {
        self.flags(1, 0, false, false)
            .charsxp(Some(name.as_bytes()), ASCII)
    }
    fn reference(&mut self, index: i32) -> &mut Self {
        self.int((index << 8) | 0xff)
    }
    fn nil(&mut self) -> &mut Self {
        self.int(0xfe)
    }
}

/// `list(a = 1:2, b = c(TRUE, NA), c = 2.5, d = as.raw(7))`, then the `names` symbol is
/// reused by reference in a second attribute list on the double.
fn sample() -> Vec<u8> {
    let mut w = W::header();
    w.flags(19, 0, true, false).int(4);
    w.flags(13, 0, false, false).int(2).int(1).int(2);
    w.flags(10, 0, false, false).int(2).int(1).int(NA_INTEGER);
    // c = structure(2.5, names = "x"): the first use of the `names` symbol (reference 1).
    w.flags(14, 0, true, false)
        .int(1)
        .bytes(&2.5f64.to_be_bytes());
    w.flags(2, 0, false, true)
        .symbol("names")
        .strsxp(&["x"], false)
        .nil();
    w.flags(24, 0, false, false).int(1).bytes(&[7]);
    // attributes of the list: names = c("a", "b", "c", "d"), via reference 1.
    w.flags(2, 0, false, true)
        .reference(1)
        .strsxp(&["a", "b", "c", "d"], false)
        .nil();
    w.0
}

#[test]
fn named_list_of_atomic_vectors() {
    let obj = unserialize(&sample()).unwrap();
    let names: Vec<_> = obj
        .names()
        .unwrap()
        .iter()
        .map(|n| n.as_deref().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(obj.get("a").unwrap().value, RValue::Integer(vec![1, 2]));
    assert_eq!(
        obj.get("b").unwrap().value,
        RValue::Logical(vec![1, NA_INTEGER])
    );
    let c = obj.get("c").unwrap();
    assert_eq!(c.value, RValue::Real(vec![2.5]));
    assert_eq!(
        c.attr("names").unwrap().value,
        RValue::Str(vec![Some("x".into())])
    );
    assert_eq!(obj.get("d").unwrap().value, RValue::Raw(vec![7]));
    assert!(obj.get("e").is_none());
}

#[test]
fn strings_na_and_encodings() {
    let mut w = W::header();
    w.flags(16, 0, false, false).int(4);
    w.charsxp(Some(b"plain"), ASCII);
    w.charsxp(None, 0);
    w.charsxp(Some("£5 café".as_bytes()), UTF8);
    w.charsxp(Some(b"\xa3 latin"), LATIN1);
    let obj = unserialize(&w.0).unwrap();
    assert_eq!(
        obj.value,
        RValue::Str(vec![
            Some("plain".into()),
            None,
            Some("£5 café".into()),
            Some("£ latin".into())
        ])
    );

    let mut w = W::header();
    w.flags(16, 0, false, false)
        .int(1)
        .charsxp(Some(b"bad \xff"), UTF8);
    let err = unserialize(&w.0).unwrap_err();
    assert!(err.detail.contains("not valid UTF-8"), "{err}");
}

#[test]
fn every_truncation_is_an_error_not_a_panic() {
    let full = sample();
    for len in 0..full.len() {
        let err = unserialize(&full[..len]);
        assert!(err.is_err(), "prefix of {len} bytes parsed");
    }
    let mut extra = full.clone();
    extra.push(0);
    let err = unserialize(&extra).unwrap_err();
    assert!(err.detail.contains("1 bytes after the object"), "{err}");
}

#[test]
fn corrupted_bytes_never_panic() {
    let full = sample();
    // A small deterministic generator: every run flips the same bytes.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..2_000 {
        let mut bytes = full.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % bytes.len() as u64) as usize;
            bytes[i] ^= (state >> 32) as u8 | 1;
        }
        let _ = unserialize(&bytes);
    }
}

#[test]
fn absurd_lengths_and_depth_are_refused() {
    let mut w = W::header();
    w.flags(16, 0, false, false).int(i32::MAX);
    let err = unserialize(&w.0).unwrap_err();
    assert!(err.detail.contains("claims 2147483647 elements"), "{err}");

    let mut w = W::header();
    for _ in 0..10_000 {
        w.flags(19, 0, false, false).int(1);
    }
    w.nil();
    let err = unserialize(&w.0).unwrap_err();
    assert!(err.detail.contains("nested deeper"), "{err}");

    let mut w = W::header();
    w.reference(5);
    let err = unserialize(&w.0).unwrap_err();
    assert!(err.detail.contains("reference 5"), "{err}");
}

#[test]
fn long_pairlists_are_read_without_recursion() {
    let mut w = W::header();
    for i in 0..50_000 {
        w.flags(2, 0, false, false)
            .flags(13, 0, false, false)
            .int(1)
            .int(i);
    }
    w.nil();
    let obj = unserialize(&w.0).unwrap();
    let RValue::PairList(cells) = obj.value else {
        panic!("not a pairlist: {:?}", obj.type_name())
    };
    assert_eq!(cells.len(), 50_000);
    assert_eq!(cells[49_999].1.value, RValue::Integer(vec![49_999]));
}

#[test]
fn altrep_compact_sequence_is_expanded() {
    let mut w = W::header();
    w.int(238);
    // info: pairlist(compact_intseq, base, 13L)
    w.flags(2, 0, false, false).symbol("compact_intseq");
    w.flags(2, 0, false, false).symbol("base");
    w.flags(2, 0, false, false)
        .flags(13, 0, false, false)
        .int(1)
        .int(13)
        .nil();
    // state: c(n, start, step)
    w.flags(14, 0, false, false).int(3);
    for x in [4.0f64, 3.0, 2.0] {
        w.bytes(&x.to_be_bytes());
    }
    w.nil();
    let obj = unserialize(&w.0).unwrap();
    assert_eq!(obj.value, RValue::Integer(vec![3, 5, 7, 9]));
}

#[test]
fn headers_other_than_xdr_are_named() {
    let err = unserialize(b"A\n3\n").unwrap_err();
    assert!(err.detail.contains("ASCII"), "{err}");
    let err = unserialize(b"\x1f\x8b\x08").unwrap_err();
    assert!(err.detail.contains("not an R serialization"), "{err}");
    let mut w = W(b"X\n".to_vec());
    w.int(9).int(0).int(0);
    let err = unserialize(&w.0).unwrap_err();
    assert!(err.detail.contains("version 9"), "{err}");
}

fn zlib(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An entry of a `.rdb`: the uncompressed length, then the zlib stream.
fn rdb_entry(serialized: &[u8]) -> Vec<u8> {
    let mut e = (serialized.len() as u32).to_be_bytes().to_vec();
    e.extend(zlib(serialized));
    e
}

/// The index R writes: list(variables = list(NAME = c(offset, length), ...),
/// references = list(), compressed = TRUE).
fn rdx(entries: &[(&str, usize, usize)]) -> Vec<u8> {
    let mut w = W::header();
    w.flags(19, 0, true, false).int(3);
    w.flags(19, 0, true, false).int(entries.len() as i32);
    for &(_, off, len) in entries {
        w.flags(13, 0, false, false)
            .int(2)
            .int(off as i32)
            .int(len as i32);
    }
    let names: Vec<&str> = entries.iter().map(|e| e.0).collect();
    w.flags(2, 0, false, true)
        .symbol("names")
        .strsxp(&names, false)
        .nil();
    w.flags(19, 0, false, false).int(0);
    w.flags(10, 0, false, false).int(1).int(1);
    w.flags(2, 0, false, true)
        .reference(1)
        .strsxp(&["variables", "references", "compressed"], false)
        .nil();
    gzip(&w.0)
}

#[test]
fn lazy_load_database_round_trip_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut one = W::header();
    one.strsxp(&["first line", "", "third"], false);
    let mut two = W::header();
    two.flags(13, 0, false, false).int(1).int(42);
    let (e1, e2) = (rdb_entry(&one.0), rdb_entry(&two.0));
    let mut rdb = e1.clone();
    rdb.extend(&e2);
    std::fs::write(dir.path().join("Rdata.rdb"), &rdb).unwrap();
    std::fs::write(
        dir.path().join("Rdata.rdx"),
        rdx(&[
            ("book", 0, e1.len()),
            ("answer", e1.len(), e2.len()),
            ("beyond", rdb.len(), 10),
        ]),
    )
    .unwrap();

    let db = LazyLoadDb::open_dir(dir.path()).unwrap();
    assert_eq!(db.names().collect::<Vec<_>>(), ["book", "answer", "beyond"]);
    assert_eq!(
        db.get("book").unwrap().value,
        RValue::Str(vec![
            Some("first line".into()),
            Some(String::new()),
            Some("third".into())
        ])
    );
    assert_eq!(db.get("answer").unwrap().value, RValue::Integer(vec![42]));

    let msg = db.get("missing").unwrap_err().to_string();
    assert!(
        msg.contains("Rdata.rdb") && msg.contains("`missing`: not in the index"),
        "{msg}"
    );
    let msg = db.get("beyond").unwrap_err().to_string();
    assert!(
        msg.contains("truncated: entry `beyond` spans bytes"),
        "{msg}"
    );

    // An entry whose length header disagrees with its stream.
    let mut bad = e1.clone();
    bad[3] ^= 1;
    std::fs::write(dir.path().join("Rdata.rdb"), &bad).unwrap();
    std::fs::write(dir.path().join("Rdata.rdx"), rdx(&[("book", 0, bad.len())])).unwrap();
    let msg = LazyLoadDb::open_dir(dir.path())
        .unwrap()
        .get("book")
        .unwrap_err()
        .to_string();
    assert!(msg.contains("uncompressed bytes"), "{msg}");

    let msg = LazyLoadDb::open_dir(&dir.path().join("nowhere"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("Rdata.rdx: not found"), "{msg}");
}
