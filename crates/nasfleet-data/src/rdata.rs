//! Just enough of R's serialization format to read a package's lazy-load data base.
//!
//! R stores a package's datasets as `data/Rdata.rdx` (an index) plus `data/Rdata.rdb`
//! (the objects). The index is a gzip'd serialization (format "X", big-endian XDR) of
//! `list(variables = list(NAME = c(offset, length), ...), references = list(),
//! compressed = TRUE)`. Each object is at `offset` in the `.rdb`: a 4-byte big-endian
//! *uncompressed* length, then (for `compressed = TRUE`) a zlib stream of that many bytes
//! of serialization; with `compressed = 2` or `3` a type byte (`Z` zlib, `2` bzip2, `X`
//! xz, `0` stored) follows the length.
//!
//! [`unserialize`] implements the reader of R's `serialize.c` for the types data uses —
//! vectors of every atomic kind, lists, pairlists (attributes), `CHARSXP` with its
//! encodings and `NA_character_`, symbols and the reference table, environments (read and
//! kept opaque), ALTREP compact sequences and wrappers — and fails with a message for the
//! rest (byte code, unknown ALTREP classes). It never trusts a length before checking it
//! against the bytes left, and bounds its recursion depth, so hostile input yields an
//! error rather than an allocation failure or a stack overflow.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{read_file, DataError, Result};

/// R's `NA_integer_` (and `NA` in a logical vector).
pub const NA_INTEGER: i32 = i32::MIN;

/// An R value: its payload and its attributes (`names`, `class`, …) in order.
#[derive(Debug, Clone, PartialEq)]
pub struct RObject {
    /// The value itself.
    pub value: RValue,
    /// Its attributes by tag, in the order of the serialization.
    pub attributes: Vec<(String, RObject)>,
}

/// The payload of an R value.
#[derive(Debug, Clone, PartialEq)]
pub enum RValue {
    /// `NULL` (`NILSXP`).
    Null,
    /// A symbol (`SYMSXP`), by its name.
    Symbol(String),
    /// A pairlist (`LISTSXP`): tagged cells in order.
    PairList(Vec<(Option<String>, RObject)>),
    /// A call (`LANGSXP`), as its cells: the function then the arguments.
    Language(Vec<(Option<String>, RObject)>),
    /// Logical vector: 0, 1, or [`NA_INTEGER`].
    Logical(Vec<i32>),
    /// Integer vector; [`NA_INTEGER`] is NA.
    Integer(Vec<i32>),
    /// Double vector (`REALSXP`), NA kept as the NaN R writes for it.
    Real(Vec<f64>),
    /// Complex vector (`CPLXSXP`): (real, imaginary) pairs.
    Complex(Vec<(f64, f64)>),
    /// Character vector; `None` is `NA_character_`.
    Str(Vec<Option<String>>),
    /// One string (`CHARSXP`), only ever seen inside a character vector or symbol.
    Char(Option<String>),
    /// Generic vector (`VECSXP`).
    List(Vec<RObject>),
    /// Expression vector (`EXPRSXP`).
    Expression(Vec<RObject>),
    /// Raw byte vector (`RAWSXP`).
    Raw(Vec<u8>),
    /// An environment, a closure, a promise, an S4 object, a built-in, an external or weak
    /// pointer, or a marker such as the missing argument: read past, contents not kept.
    Opaque(&'static str),
}

impl RObject {
    fn plain(value: RValue) -> Self {
        Self {
            value,
            attributes: Vec::new(),
        }
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&RObject> {
        self.attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The `names` attribute, when it is a character vector.
    pub fn names(&self) -> Option<&[Option<String>]> {
        match &self.attr("names")?.value {
            RValue::Str(names) => Some(names),
            _ => None,
        }
    }

    /// The element called `name` of a named list.
    pub fn get(&self, name: &str) -> Option<&RObject> {
        let RValue::List(items) = &self.value else {
            return None;
        };
        let i = self
            .names()?
            .iter()
            .position(|n| n.as_deref() == Some(name))?;
        items.get(i)
    }

    /// A short name of the R type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.value {
            RValue::Null => "NULL",
            RValue::Symbol(_) => "symbol",
            RValue::PairList(_) => "pairlist",
            RValue::Language(_) => "language",
            RValue::Logical(_) => "logical",
            RValue::Integer(_) => "integer",
            RValue::Real(_) => "double",
            RValue::Complex(_) => "complex",
            RValue::Str(_) => "character",
            RValue::Char(_) => "CHARSXP",
            RValue::List(_) => "list",
            RValue::Expression(_) => "expression",
            RValue::Raw(_) => "raw",
            RValue::Opaque(what) => what,
        }
    }
}

/// Why a serialization could not be read; `offset` is in the uncompressed stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail} (at byte {offset} of the serialization)")]
pub struct UnserializeError {
    /// Byte offset in the uncompressed stream where reading failed.
    pub offset: usize,
    /// What was expected there and what was found.
    pub detail: String,
}

type UResult<T> = std::result::Result<T, UnserializeError>;

// SEXP type codes and the special codes of serialize.c.
const NILSXP: u8 = 0;
const SYMSXP: u8 = 1;
const LISTSXP: u8 = 2;
const CLOSXP: u8 = 3;
const ENVSXP: u8 = 4;
const PROMSXP: u8 = 5;
const LANGSXP: u8 = 6;
const SPECIALSXP: u8 = 7;
const BUILTINSXP: u8 = 8;
const CHARSXP: u8 = 9;
const LGLSXP: u8 = 10;
const INTSXP: u8 = 13;
const REALSXP: u8 = 14;
const CPLXSXP: u8 = 15;
const STRSXP: u8 = 16;
const DOTSXP: u8 = 17;
const VECSXP: u8 = 19;
const EXPRSXP: u8 = 20;
const BCODESXP: u8 = 21;
const EXTPTRSXP: u8 = 22;
const WEAKREFSXP: u8 = 23;
const RAWSXP: u8 = 24;
const S4SXP: u8 = 25;
const ALTREP_SXP: u8 = 238;
const ATTRLISTSXP: u8 = 239;
const ATTRLANGSXP: u8 = 240;
const BASEENV_SXP: u8 = 241;
const EMPTYENV_SXP: u8 = 242;
const BCREPREF: u8 = 243;
const BCREPDEF: u8 = 244;
const GENERICREFSXP: u8 = 245;
const CLASSREFSXP: u8 = 246;
const PERSISTSXP: u8 = 247;
const PACKAGESXP: u8 = 248;
const NAMESPACESXP: u8 = 249;
const BASENAMESPACE_SXP: u8 = 250;
const MISSINGARG_SXP: u8 = 251;
const UNBOUNDVALUE_SXP: u8 = 252;
const GLOBALENV_SXP: u8 = 253;
const NILVALUE_SXP: u8 = 254;
const REFSXP: u8 = 255;

// Bits of the `levels` field of a CHARSXP that say how its bytes are encoded.
const LATIN1_MASK: i32 = 1 << 2;
const UTF8_MASK: i32 = 1 << 3;
const ASCII_MASK: i32 = 1 << 6;

/// Nesting bound: R data is shallow; this keeps a crafted file from overflowing the stack.
const MAX_DEPTH: usize = 256;

/// The decoded flags word that starts every item.
#[derive(Debug, Clone, Copy)]
struct Flags {
    raw: i32,
    ty: u8,
    levels: i32,
    has_attr: bool,
    has_tag: bool,
}

impl Flags {
    fn new(raw: i32) -> Self {
        Self {
            raw,
            ty: (raw & 0xff) as u8,
            levels: raw >> 12,
            has_attr: raw & (1 << 9) != 0,
            has_tag: raw & (1 << 10) != 0,
        }
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
    refs: Vec<RObject>,
    latin1_native: bool,
}

/// An opaque marker value without attributes.
fn opaque(what: &'static str) -> RObject {
    RObject::plain(RValue::Opaque(what))
}

impl<'a> Reader<'a> {
    fn fail<T>(&self, detail: impl Into<String>) -> UResult<T> {
        Err(UnserializeError {
            offset: self.pos,
            detail: detail.into(),
        })
    }

    fn take(&mut self, n: usize, what: &str) -> UResult<&'a [u8]> {
        match self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
        {
            Some(end) => {
                let s = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => self.fail(format!(
                "unexpected end of data: {what} needs {n} bytes, {} left",
                self.bytes.len() - self.pos
            )),
        }
    }

    fn int(&mut self, what: &str) -> UResult<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn double(&mut self, what: &str) -> UResult<f64> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(f64::from_be_bytes(a))
    }

    /// A vector length; `-1` announces a long length in two more ints. The length is
    /// checked against the bytes left, given the smallest size of one element.
    fn length(&mut self, min_elem_bytes: usize, what: &str) -> UResult<usize> {
        let len = match self.int(what)? {
            -1 => {
                let hi = self.int(what)? as u32 as u64;
                let lo = self.int(what)? as u32 as u64;
                (hi << 32) | lo
            }
            n if n < 0 => return self.fail(format!("negative length {n} of {what}")),
            n => n as u64,
        };
        let left = (self.bytes.len() - self.pos) as u64;
        if len.saturating_mul(min_elem_bytes as u64) > left {
            return self.fail(format!(
                "{what} claims {len} elements, more than the {left} bytes left can hold"
            ));
        }
        Ok(len as usize)
    }

    fn flags(&mut self) -> UResult<Flags> {
        Ok(Flags::new(self.int("an item's flags")?))
    }

    fn item(&mut self) -> UResult<RObject> {
        let flags = self.flags()?;
        self.item_with(flags)
    }

    fn item_with(&mut self, flags: Flags) -> UResult<RObject> {
        if self.depth >= MAX_DEPTH {
            return self.fail(format!("objects nested deeper than {MAX_DEPTH} levels"));
        }
        self.depth += 1;
        let result = self.item_inner(flags);
        self.depth -= 1;
        result
    }

    /// Dispatches on the item type. Every arm is a call, so that this function's stack
    /// frame stays small: it is on the stack once per nesting level, and an unoptimised
    /// build would otherwise reserve room for the locals of every arm.
    fn item_inner(&mut self, flags: Flags) -> UResult<RObject> {
        match flags.ty {
            NILVALUE_SXP | NILSXP => Ok(RObject::plain(RValue::Null)),
            EMPTYENV_SXP => Ok(opaque("emptyenv()")),
            BASEENV_SXP => Ok(opaque("baseenv()")),
            GLOBALENV_SXP => Ok(opaque("globalenv()")),
            UNBOUNDVALUE_SXP => Ok(opaque("unbound value")),
            MISSINGARG_SXP => Ok(opaque("missing argument")),
            BASENAMESPACE_SXP => Ok(opaque("base namespace")),
            REFSXP => self.reference(flags),
            PERSISTSXP | PACKAGESXP | NAMESPACESXP => self.named_reference(flags),
            SYMSXP => self.symbol(),
            ENVSXP => self.environment(),
            LISTSXP | LANGSXP | DOTSXP => self.pairlist(flags),
            CLOSXP | PROMSXP => self.closure_or_promise(flags),
            EXTPTRSXP | WEAKREFSXP => self.pointer(flags),
            SPECIALSXP | BUILTINSXP => self.builtin(flags),
            ALTREP_SXP => self.altrep(),
            CHARSXP => self.standalone_charsxp(flags),
            LGLSXP | INTSXP => self.int_vector(flags),
            REALSXP => self.real_vector(flags),
            CPLXSXP => self.complex_vector(flags),
            STRSXP => self.string_vector(flags),
            VECSXP | EXPRSXP => self.list(flags),
            RAWSXP => self.raw_vector(flags),
            S4SXP => self.with_attributes(flags, RValue::Opaque("S4 object")),
            BCODESXP | BCREPDEF | BCREPREF | ATTRLANGSXP | ATTRLISTSXP | CLASSREFSXP
            | GENERICREFSXP => self.fail(format!(
                "R byte code or a reference-class object (type {}), which data files do not \
                 contain and this reader does not support",
                flags.ty
            )),
            other => self.fail(format!(
                "unknown item type {other} (flags 0x{:08x})",
                flags.raw
            )),
        }
    }

    /// A back-reference to a symbol or environment read earlier. The index is packed in
    /// the flags, or follows them when it does not fit.
    fn reference(&mut self, flags: Flags) -> UResult<RObject> {
        let packed = flags.raw >> 8;
        let index = if packed == 0 {
            self.int("a reference index")?
        } else {
            packed
        };
        match usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| self.refs.get(i))
        {
            Some(obj) => Ok(obj.clone()),
            None => self.fail(format!(
                "reference {index} to an object not yet read ({} known)",
                self.refs.len()
            )),
        }
    }

    /// A persistent, package or namespace reference: names, kept opaque.
    fn named_reference(&mut self, flags: Flags) -> UResult<RObject> {
        self.string_vec()?;
        let obj = opaque(match flags.ty {
            PERSISTSXP => "persistent reference",
            PACKAGESXP => "package environment",
            _ => "namespace",
        });
        self.refs.push(obj.clone());
        Ok(obj)
    }

    fn symbol(&mut self) -> UResult<RObject> {
        let name = self.item()?;
        let RValue::Char(Some(name)) = name.value else {
            return self.fail(format!(
                "a symbol's name is a {}, not a string",
                name.type_name()
            ));
        };
        let obj = RObject::plain(RValue::Symbol(name));
        self.refs.push(obj.clone());
        Ok(obj)
    }

    fn environment(&mut self) -> UResult<RObject> {
        let _locked = self.int("an environment's lock flag")?;
        // Registered before its contents, which may refer back to it.
        let obj = opaque("environment");
        self.refs.push(obj.clone());
        for _ in 0..4 {
            // enclosure, frame, hash table, attributes
            self.item()?;
        }
        Ok(obj)
    }

    fn closure_or_promise(&mut self, flags: Flags) -> UResult<RObject> {
        let attributes = if flags.has_attr {
            self.attributes()?
        } else {
            Vec::new()
        };
        if flags.has_tag {
            self.item()?;
        }
        self.item()?;
        self.item()?;
        let what = if flags.ty == CLOSXP {
            "closure"
        } else {
            "promise"
        };
        Ok(RObject {
            value: RValue::Opaque(what),
            attributes,
        })
    }

    fn pointer(&mut self, flags: Flags) -> UResult<RObject> {
        let what = if flags.ty == EXTPTRSXP {
            "external pointer"
        } else {
            "weak reference"
        };
        self.refs.push(opaque(what));
        if flags.ty == EXTPTRSXP {
            self.item()?; // protected value
            self.item()?; // tag
        }
        self.with_attributes(flags, RValue::Opaque(what))
    }

    fn builtin(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(1, "a built-in's name")?;
        self.take(len, "a built-in's name")?;
        self.with_attributes(flags, RValue::Opaque("built-in function"))
    }

    fn standalone_charsxp(&mut self, flags: Flags) -> UResult<RObject> {
        let s = self.charsxp(flags)?;
        // A CHARSXP's attributes, if any, are read and dropped, as R does.
        if flags.has_attr {
            self.item()?;
        }
        Ok(RObject::plain(RValue::Char(s)))
    }

    fn int_vector(&mut self, flags: Flags) -> UResult<RObject> {
        let what = if flags.ty == LGLSXP {
            "a logical vector"
        } else {
            "an integer vector"
        };
        let len = self.length(4, what)?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(self.int(what)?);
        }
        let value = if flags.ty == LGLSXP {
            RValue::Logical(v)
        } else {
            RValue::Integer(v)
        };
        self.with_attributes(flags, value)
    }

    fn real_vector(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(8, "a double vector")?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(self.double("a double vector")?);
        }
        self.with_attributes(flags, RValue::Real(v))
    }

    fn complex_vector(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(16, "a complex vector")?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            let re = self.double("a complex vector")?;
            let im = self.double("a complex vector")?;
            v.push((re, im));
        }
        self.with_attributes(flags, RValue::Complex(v))
    }

    fn string_vector(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(8, "a character vector")?;
        let mut v = Vec::with_capacity(len);
        for i in 0..len {
            let f = self.flags()?;
            if f.ty != CHARSXP {
                return self.fail(format!(
                    "element {i} of a character vector has type {}, not CHARSXP",
                    f.ty
                ));
            }
            v.push(self.charsxp(f)?);
        }
        self.with_attributes(flags, RValue::Str(v))
    }

    fn list(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(4, "a list")?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            v.push(self.item()?);
        }
        let value = if flags.ty == VECSXP {
            RValue::List(v)
        } else {
            RValue::Expression(v)
        };
        self.with_attributes(flags, value)
    }

    fn raw_vector(&mut self, flags: Flags) -> UResult<RObject> {
        let len = self.length(1, "a raw vector")?;
        let bytes = self.take(len, "a raw vector")?.to_vec();
        self.with_attributes(flags, RValue::Raw(bytes))
    }

    fn with_attributes(&mut self, flags: Flags, value: RValue) -> UResult<RObject> {
        let attributes = if flags.has_attr {
            self.attributes()?
        } else {
            Vec::new()
        };
        Ok(RObject { value, attributes })
    }

    /// An attribute list: a pairlist whose cells all have symbol tags.
    fn attributes(&mut self) -> UResult<Vec<(String, RObject)>> {
        let list = self.item()?;
        let RValue::PairList(cells) = list.value else {
            return self.fail(format!(
                "attributes are a {}, not a pairlist",
                list.type_name()
            ));
        };
        cells
            .into_iter()
            .map(|(tag, value)| match tag {
                Some(tag) => Ok((tag, value)),
                None => self.fail("an attribute without a name"),
            })
            .collect()
    }

    /// A pairlist-like chain. The CDR chain is read in a loop, not by recursion, because
    /// pairlists can be long.
    fn pairlist(&mut self, first: Flags) -> UResult<RObject> {
        let kind = first.ty;
        let mut cells = Vec::new();
        let mut attributes = Vec::new();
        let mut flags = first;
        loop {
            let attrs = if flags.has_attr {
                self.attributes()?
            } else {
                Vec::new()
            };
            // The head cell's attributes are the object's; R keeps those of later cells
            // too, but nothing in data uses them.
            if cells.is_empty() {
                attributes = attrs;
            }
            let tag = if flags.has_tag {
                let tag = self.item()?;
                match tag.value {
                    RValue::Symbol(name) => Some(name),
                    RValue::Null => None,
                    _ => {
                        return self.fail(format!(
                            "a pairlist tag is a {}, not a symbol",
                            tag.type_name()
                        ))
                    }
                }
            } else {
                None
            };
            let car = self.item()?;
            cells.push((tag, car));
            let next = self.flags()?;
            match next.ty {
                NILVALUE_SXP => break,
                LISTSXP | LANGSXP | DOTSXP => flags = next,
                _ => {
                    // A dotted pair; keep the CDR as a final untagged cell.
                    let cdr = self.item_with(next)?;
                    cells.push((None, cdr));
                    break;
                }
            }
        }
        let value = match kind {
            LANGSXP => RValue::Language(cells),
            _ => RValue::PairList(cells),
        };
        Ok(RObject { value, attributes })
    }

    /// A CHARSXP's payload (its flags already read): a length (`-1` for NA) and bytes.
    fn charsxp(&mut self, flags: Flags) -> UResult<Option<String>> {
        let len = self.int("a string's length")?;
        if len == -1 {
            return Ok(None);
        }
        let Ok(len) = usize::try_from(len) else {
            return self.fail(format!("negative string length {len}"));
        };
        let start = self.pos;
        let bytes = self.take(len, "a string")?;
        let latin1 = flags.levels & LATIN1_MASK != 0
            || (self.latin1_native && flags.levels & (UTF8_MASK | ASCII_MASK) == 0);
        if latin1 {
            return Ok(Some(bytes.iter().map(|&b| char::from(b)).collect()));
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Some(s.to_string())),
            Err(e) => Err(UnserializeError {
                offset: start + e.valid_up_to(),
                detail: "a string that is marked UTF-8 (or native UTF-8) but is not valid UTF-8"
                    .into(),
            }),
        }
    }

    /// `InStringVec`: a 0, a count, then that many CHARSXP items.
    fn string_vec(&mut self) -> UResult<Vec<Option<String>>> {
        if self.int("a string vector's marker")? != 0 {
            return self.fail("names of a package or namespace reference are not in R's format");
        }
        let len = self.length(8, "a string vector")?;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            match self.item()?.value {
                RValue::Char(s) => v.push(s),
                _ => return self.fail("a reference's name is not a string"),
            }
        }
        Ok(v)
    }

    /// An ALTREP object: class info, state, attributes. The compact sequences R makes for
    /// `1:n` and the wrappers it makes around modified vectors are expanded to ordinary
    /// vectors; other classes cannot be reconstructed without their package.
    fn altrep(&mut self) -> UResult<RObject> {
        let info = self.item()?;
        let state = self.item()?;
        let attr = self.item()?;
        let class = match &info.value {
            RValue::PairList(cells) => match cells.first() {
                Some((
                    _,
                    RObject {
                        value: RValue::Symbol(s),
                        ..
                    },
                )) => s.clone(),
                _ => return self.fail("ALTREP class information without a class name"),
            },
            _ => return self.fail("ALTREP class information is not a pairlist"),
        };
        let value = match class.as_str() {
            "compact_intseq" | "compact_realseq" => {
                let RValue::Real(s) = &state.value else {
                    return self.fail(format!("{class} state is not a double vector"));
                };
                let [n, start, step] = s[..] else {
                    return self.fail(format!("{class} state has {} numbers, not 3", s.len()));
                };
                // A sequence can claim any length for free; cap it so a crafted file cannot
                // make us allocate without bound.
                if !(0.0..=1e8).contains(&n) || n.fract() != 0.0 {
                    return self.fail(format!("{class} of implausible length {n}"));
                }
                let values = (0..n as usize).map(|i| start + step * i as f64);
                if class == "compact_intseq" {
                    RValue::Integer(values.map(|x| x as i32).collect())
                } else {
                    RValue::Real(values.collect())
                }
            }
            c if c.starts_with("wrap_") => {
                let wrapped = match state.value {
                    RValue::PairList(cells) => cells.into_iter().next().map(|(_, v)| v),
                    RValue::List(items) => items.into_iter().next(),
                    _ => None,
                };
                match wrapped {
                    Some(obj) => obj.value,
                    None => return self.fail(format!("{class} state holds no wrapped vector")),
                }
            }
            "deferred_string" => {
                // State: (argument vector . scalar info); strings are made from integers.
                let arg = match state.value {
                    RValue::PairList(cells) => cells.into_iter().next().map(|(_, v)| v),
                    _ => None,
                };
                match arg.map(|a| a.value) {
                    Some(RValue::Integer(v)) => RValue::Str(
                        v.into_iter()
                            .map(|x| (x != NA_INTEGER).then(|| x.to_string()))
                            .collect(),
                    ),
                    _ => {
                        return self.fail(
                            "deferred_string over doubles needs R's number formatting, which \
                             this reader does not implement",
                        )
                    }
                }
            }
            other => {
                return self.fail(format!("ALTREP class {other:?} is not supported"));
            }
        };
        let attributes = match attr.value {
            RValue::Null => Vec::new(),
            RValue::PairList(cells) => cells
                .into_iter()
                .map(|(tag, v)| tag.map(|t| (t, v)))
                .collect::<Option<Vec<_>>>()
                .map_or_else(|| self.fail("an ALTREP attribute without a name"), Ok)?,
            _ => return self.fail("ALTREP attributes are not a pairlist"),
        };
        Ok(RObject { value, attributes })
    }
}

/// Reads one R serialization in XDR format (`X\n`, versions 2 and 3), as written by
/// `serialize()`/`saveRDS()` (after decompression).
pub fn unserialize(bytes: &[u8]) -> UResult<RObject> {
    let mut r = Reader {
        bytes,
        pos: 0,
        depth: 0,
        refs: Vec::new(),
        latin1_native: false,
    };
    let format = r.take(2, "the format header")?;
    match format {
        b"X\n" => {}
        b"A\n" | b"B\n" => {
            return Err(UnserializeError {
                offset: 0,
                detail: format!(
                    "R {} serialization; only the XDR (binary, big-endian) format is supported",
                    if format == b"A\n" {
                        "ASCII"
                    } else {
                        "native binary"
                    }
                ),
            })
        }
        _ => {
            return Err(UnserializeError {
                offset: 0,
                detail: format!(
                    "not an R serialization (starts with {:02x} {:02x}, expected \"X\\n\")",
                    format[0], format[1]
                ),
            })
        }
    }
    let version = r.int("the format version")?;
    let _writer = r.int("the writer's R version")?;
    let _min_reader = r.int("the minimal reader's R version")?;
    match version {
        2 => {}
        3 => {
            let len = r.length(1, "the native encoding")?;
            let enc = r.take(len, "the native encoding")?;
            let enc = String::from_utf8_lossy(enc).to_ascii_lowercase();
            r.latin1_native = enc.contains("latin1") || enc.contains("8859-1");
        }
        v => {
            return r.fail(format!(
                "serialization format version {v}; versions 2 and 3 are supported"
            ))
        }
    }
    let obj = r.item()?;
    if r.pos != bytes.len() {
        return r.fail(format!("{} bytes after the object", bytes.len() - r.pos));
    }
    Ok(obj)
}

/// Decompresses gzip or zlib data, whichever it is (R writes `.rdx` files with gzip, but
/// `.rdb` entries as zlib streams).
fn inflate(path: &Path, bytes: &[u8], expected_len: Option<usize>, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(expected_len.unwrap_or(0).min(1 << 28));
    let res = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out)
    } else {
        flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out)
    };
    res.map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        detail: format!("{what}: decompression failed: {e}"),
    })?;
    if let Some(n) = expected_len {
        if out.len() != n {
            return Err(DataError::Invalid {
                path: path.to_path_buf(),
                detail: format!(
                    "{what}: header says {n} uncompressed bytes, stream gives {}",
                    out.len()
                ),
            });
        }
    }
    Ok(out)
}

/// How `.rdb` entries are compressed, from the index's `compressed` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    /// `TRUE`: length + zlib.
    Zlib,
    /// `2` or `3`: length + a type byte, then the data.
    Typed,
}

/// An opened lazy-load data base (`NAME.rdx` + `NAME.rdb`).
#[derive(Debug, Clone)]
pub struct LazyLoadDb {
    rdb_path: PathBuf,
    rdb: Vec<u8>,
    /// Variable name → (offset, length) in the `.rdb`.
    variables: Vec<(String, usize, usize)>,
    compression: Compression,
}

impl LazyLoadDb {
    /// Opens `DIR/Rdata.rdx` and `DIR/Rdata.rdb` (a package's `data` directory).
    pub fn open_dir(dir: &Path) -> Result<Self> {
        Self::open(&dir.join("Rdata.rdx"), &dir.join("Rdata.rdb"))
    }

    /// Opens an index and its data base.
    pub fn open(rdx_path: &Path, rdb_path: &Path) -> Result<Self> {
        let invalid = |detail: String| DataError::Invalid {
            path: rdx_path.to_path_buf(),
            detail,
        };
        let rdx = read_file(rdx_path, "an R lazy-load index (.rdx)")?;
        // The index is gzip'd; older R wrote it as a length + zlib stream, so take both.
        let raw = if rdx.starts_with(&[0x1f, 0x8b]) {
            inflate(rdx_path, &rdx, None, "the index")?
        } else if rdx.len() > 4 {
            let n = u32::from_be_bytes([rdx[0], rdx[1], rdx[2], rdx[3]]) as usize;
            inflate(rdx_path, &rdx[4..], Some(n), "the index")?
        } else {
            return Err(DataError::Truncated {
                path: rdx_path.to_path_buf(),
                detail: format!("{} bytes cannot hold an R lazy-load index", rdx.len()),
            });
        };
        let index = unserialize(&raw).map_err(|e| invalid(format!("the index: {e}")))?;
        let vars = index
            .get("variables")
            .ok_or_else(|| invalid("the index has no `variables` list".into()))?;
        let (RValue::List(entries), Some(names)) = (&vars.value, vars.names()) else {
            return Err(invalid(
                "the index's `variables` is not a named list".into(),
            ));
        };
        let mut variables = Vec::with_capacity(entries.len());
        for (entry, name) in entries.iter().zip(names) {
            let name = name.clone().unwrap_or_default();
            match &entry.value {
                RValue::Integer(v) if v.len() == 2 && v[0] >= 0 && v[1] >= 0 => {
                    variables.push((name, v[0] as usize, v[1] as usize))
                }
                _ => {
                    return Err(invalid(format!(
                        "the index entry of `{name}` is not two non-negative integers"
                    )))
                }
            }
        }
        let compression = match index.get("compressed").map(|c| &c.value) {
            Some(RValue::Logical(v)) if v.first() == Some(&1) => Compression::Zlib,
            Some(RValue::Integer(v)) if matches!(v.first(), Some(2 | 3)) => Compression::Typed,
            Some(RValue::Real(v)) if matches!(v.first(), Some(&x) if x == 2.0 || x == 3.0) => {
                Compression::Typed
            }
            other => {
                return Err(invalid(format!(
                    "unsupported `compressed` setting {other:?}; expected TRUE, 2 or 3"
                )))
            }
        };
        let rdb = read_file(rdb_path, "an R lazy-load data base (.rdb)")?;
        Ok(Self {
            rdb_path: rdb_path.to_path_buf(),
            rdb,
            variables,
            compression,
        })
    }

    /// The variable names, in index order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.variables.iter().map(|(n, _, _)| n.as_str())
    }

    /// Reads and unserializes the variable `name`.
    pub fn get(&self, name: &str) -> Result<RObject> {
        let path = &self.rdb_path;
        let invalid = |detail: String| DataError::Invalid {
            path: path.clone(),
            detail: format!("entry `{name}`: {detail}"),
        };
        let &(_, offset, len) = self
            .variables
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| {
                invalid(format!(
                    "not in the index (it has: {})",
                    self.names().collect::<Vec<_>>().join(", ")
                ))
            })?;
        let entry = offset
            .checked_add(len)
            .and_then(|end| self.rdb.get(offset..end))
            .ok_or_else(|| DataError::Truncated {
                path: path.clone(),
                detail: format!(
                    "entry `{name}` spans bytes {offset}..{}, the file has {}",
                    offset.saturating_add(len),
                    self.rdb.len()
                ),
            })?;
        if entry.len() < 4 {
            return Err(invalid(format!(
                "{} bytes, too short for the length header",
                entry.len()
            )));
        }
        let n = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]) as usize;
        let what = format!("entry `{name}`");
        let raw = match self.compression {
            Compression::Zlib => inflate(path, &entry[4..], Some(n), &what)?,
            Compression::Typed => match entry.get(4) {
                Some(b'Z') => inflate(path, &entry[5..], Some(n), &what)?,
                Some(b'0') => entry[5..].to_vec(),
                Some(b'2') => {
                    return Err(invalid("bzip2-compressed; only zlib is supported".into()))
                }
                Some(b'X') => return Err(invalid("xz-compressed; only zlib is supported".into())),
                other => return Err(invalid(format!("unknown compression type byte {other:?}"))),
            },
        };
        unserialize(&raw).map_err(|e| invalid(e.to_string()))
    }
}
