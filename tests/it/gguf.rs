//! GGUF reader and writer: round trips of every value type, tensor type and alignment; typed
//! accessors; the malformed files under `tests/data/gguf-bad/`; every truncation and single-byte
//! corruption of a small file; and a cross-check against gguf-py (`tests/py/gguf_dump.py`).
//!
//! The malformed files are made by `bad_files()` below. After changing it, regenerate them (and
//! their README.md) with
//! `cargo test --test it gguf::regenerate_gguf_bad_files -- --ignored`;
//! `gguf_bad_files_match_generator` fails until you do.

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use glimpse::gguf::{Error, GgmlType, Gguf, GgufWriter, Value, ValueType};
use serde_json::json;

use crate::util::{repo_path, required, temp_dir};

const BAD_DIR: &str = "tests/data/gguf-bad";
/// Random specs checked by `gguf_round_trip_random_specs`.
const N_RANDOM_SPECS: u64 = 300;
/// Random specs also cross-checked against gguf-py (each costs a Python start-up when run alone).
const N_RANDOM_PY_SPECS: u64 = 12;

// ---------------------------------------------------------------------------------------------
// A file described in memory, written with `GgufWriter`

/// What a test writes: metadata in order, tensors `(name, dims in ggml order, type, bytes)`.
#[derive(Clone, Debug, Default)]
struct Spec {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType, Vec<u8>)>,
}

impl Spec {
    fn writer(&self) -> GgufWriter {
        let mut w = GgufWriter::new();
        for (k, v) in &self.metadata {
            w.set(k, v.clone());
        }
        for (name, dims, ty, data) in &self.tensors {
            w.add_tensor(name, dims, *ty, data.clone()).expect("add_tensor");
        }
        w
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.writer().write_to(&mut out).expect("write_to");
        out
    }

    /// The alignment a reader must find: `general.alignment` if set, else 32.
    fn alignment(&self) -> u64 {
        self.metadata
            .iter()
            .find(|(k, _)| k == "general.alignment")
            .map_or(32, |(_, v)| v.as_integer().expect("integer alignment") as u64)
    }
}

/// Values compared bit for bit, so NaN payloads and -0.0 must survive.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::Array(ta, a), Value::Array(tb, b)) => {
            ta == tb && a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        (a, b) => a == b,
    }
}

/// Checks that `g` holds exactly what `spec` wrote.
fn check_matches_spec(spec: &Spec, g: &Gguf) {
    let name = g.name();
    assert_eq!(g.version(), 3, "{name}");
    let alignment = spec.alignment();
    assert_eq!(g.alignment(), alignment, "{name}");
    assert_eq!(g.data_offset() % alignment, 0, "{name}: data offset {}", g.data_offset());
    assert!(g.data_offset() <= g.file_size(), "{name}");

    assert_eq!(g.metadata().len(), spec.metadata.len(), "{name}: metadata count");
    for ((k, v), (gk, gv)) in spec.metadata.iter().zip(g.metadata()) {
        assert_eq!(k, gk, "{name}: metadata order");
        assert!(same_value(v, gv), "{name}: '{k}': wrote {v:?}, read {gv:?}");
        assert!(same_value(v, g.get(k).expect("get")), "{name}: get('{k}')");
    }

    assert_eq!(g.tensors().len(), spec.tensors.len(), "{name}: tensor count");
    let mut end = 0;
    for ((tname, dims, ty, data), info) in spec.tensors.iter().zip(g.tensors()) {
        assert_eq!(&info.name, tname, "{name}: tensor order");
        assert_eq!(&info.dims, dims, "{name}: '{tname}' dims");
        assert_eq!(info.ty, *ty, "{name}: '{tname}' type");
        assert_eq!(info.n_bytes, data.len() as u64, "{name}: '{tname}' n_bytes");
        assert_eq!(info.offset % alignment, 0, "{name}: '{tname}' offset {}", info.offset);
        assert!(info.offset >= end, "{name}: '{tname}' offsets must increase");
        end = info.offset + info.n_bytes;
        assert!(g.tensor_data(info) == data.as_slice(), "{name}: '{tname}' data differs");
        assert_eq!(g.tensor(tname).expect("tensor by name"), info, "{name}");
    }
}

/// Reads every part of a parsed file, as the fuzz target does; nothing here may panic.
fn touch_all(g: &Gguf) {
    fn touch_value(v: &Value) -> usize {
        let mut n = v.type_name().len() + v.summary(60).len() + v.to_json().is_null() as usize;
        n += v.as_integer().is_some() as usize + v.as_f64().is_some() as usize + v.as_str().map_or(0, str::len);
        if let Value::Array(_, items) = v {
            n += items.iter().map(touch_value).sum::<usize>();
        }
        n
    }
    let mut n = g.version() as usize + g.alignment() as usize + g.header_bytes().len();
    for (k, v) in g.metadata() {
        n += touch_value(v) + g.get(k).is_some() as usize;
        n += g.get_u32(k).is_ok() as usize + g.get_i32(k).is_ok() as usize + g.get_u64(k).is_ok() as usize;
        n += g.get_f32(k).is_ok() as usize + g.get_bool(k).is_ok() as usize + g.get_str(k).is_ok() as usize;
        n += g.get_as::<Vec<u32>>(k).is_ok() as usize + g.get_as::<Vec<String>>(k).is_ok() as usize;
    }
    for t in g.tensors() {
        n += (t.n_elements() + t.row_len() + t.n_rows()) as usize + t.shape_string().len();
        let data = g.tensor_data(t);
        assert_eq!(data.len() as u64, t.n_bytes, "{}: '{}'", g.name(), t.name);
        n += data.iter().map(|&b| b as usize).sum::<usize>();
        n += g.tensor(&t.name).is_ok() as usize;
    }
    std::hint::black_box(n);
}

/// Deterministic filler bytes for tensor data.
fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.next() as u8).collect()
}

fn tensor(name: &str, dims: &[u64], ty: GgmlType, seed: u64) -> (String, Vec<u64>, GgmlType, Vec<u8>) {
    let rows: u64 = dims[1..].iter().product();
    let n = ty.row_bytes(dims[0]).expect("whole blocks") * rows;
    (name.to_string(), dims.to_vec(), ty, pattern(n as usize, seed))
}

/// Every metadata value type (and the awkward ones: NaN payloads, -0.0, unicode, NUL, empty and
/// nested arrays), and tensors of several types with 1 to 4 dims.
fn every_type_spec() -> Spec {
    use Value as V;
    let s = |x: &str| V::String(x.to_string());
    let metadata = vec![
        ("general.architecture", s("llama")),
        ("test.u8", V::U8(255)),
        ("test.i8", V::I8(-128)),
        ("test.u16", V::U16(65535)),
        ("test.i16", V::I16(-32768)),
        ("test.u32", V::U32(u32::MAX)),
        ("test.i32", V::I32(i32::MIN)),
        ("test.f32", V::F32(std::f32::consts::PI)),
        ("test.f32.neg_zero", V::F32(-0.0)),
        ("test.f32.nan_payload", V::F32(f32::from_bits(0x7fc0_1234))),
        ("test.f32.inf", V::F32(f32::NEG_INFINITY)),
        ("test.bool.true", V::Bool(true)),
        ("test.bool.false", V::Bool(false)),
        ("test.string", s("héllo, 世界 🦀\u{0}end")),
        ("test.string.empty", s("")),
        ("test.u64", V::U64(u64::MAX)),
        ("test.i64", V::I64(i64::MIN)),
        ("test.f64", V::F64(std::f64::consts::E)),
        ("test.f64.subnormal", V::F64(f64::from_bits(1))),
        ("test.ключ.🔑", s("unicode key")),
        ("test.arr.u8", V::Array(ValueType::U8, vec![V::U8(0), V::U8(1), V::U8(255)])),
        ("test.arr.i8", V::Array(ValueType::I8, vec![V::I8(-1), V::I8(127)])),
        ("test.arr.u16", V::Array(ValueType::U16, vec![V::U16(1), V::U16(65535)])),
        ("test.arr.i16", V::Array(ValueType::I16, vec![V::I16(-2), V::I16(300)])),
        ("test.arr.u32", V::Array(ValueType::U32, vec![V::U32(7), V::U32(u32::MAX)])),
        ("test.arr.i32", V::from(vec![-1, 0, 1, i32::MAX])),
        ("test.arr.f32", V::from(vec![0.5f32, -1.25, f32::INFINITY])),
        ("test.arr.bool", V::Array(ValueType::Bool, vec![V::Bool(true), V::Bool(false)])),
        ("test.arr.string", V::from(vec!["<s>".to_string(), "".to_string(), "▁héllo".to_string()])),
        ("test.arr.u64", V::Array(ValueType::U64, vec![V::U64(1 << 40)])),
        ("test.arr.i64", V::Array(ValueType::I64, vec![V::I64(-(1 << 40)), V::I64(i64::MAX)])),
        ("test.arr.f64", V::Array(ValueType::F64, vec![V::F64(-0.0), V::F64(1e300)])),
        ("test.arr.empty.u32", V::Array(ValueType::U32, vec![])),
        ("test.arr.empty.string", V::Array(ValueType::String, vec![])),
        ("test.arr.empty.array", V::Array(ValueType::Array, vec![])),
        (
            "test.arr.nested",
            V::Array(
                ValueType::Array,
                vec![
                    V::from(vec![1, 2]),
                    V::Array(ValueType::I32, vec![]),
                    V::from(vec!["a".to_string()]),
                    V::Array(ValueType::Bool, vec![V::Bool(true)]),
                ],
            ),
        ),
        (
            "test.arr.nested3",
            V::Array(
                ValueType::Array,
                vec![V::Array(ValueType::Array, vec![V::Array(ValueType::U8, vec![V::U8(1), V::U8(2)])])],
            ),
        ),
    ];
    let tensors = vec![
        tensor("f32.1d", &[4], GgmlType::F32, 1),
        tensor("f16.2d", &[3, 2], GgmlType::F16, 2),
        tensor("bf16.4d", &[2, 2, 2, 2], GgmlType::BF16, 3),
        tensor("q4_0.4d", &[32, 1, 1, 3], GgmlType::Q4_0, 4),
        tensor("q4_1", &[64], GgmlType::Q4_1, 5),
        tensor("q5_0.2d", &[32, 3], GgmlType::Q5_0, 6),
        tensor("q5_1", &[32, 2], GgmlType::Q5_1, 7),
        tensor("q8_0.2d", &[64, 2], GgmlType::Q8_0, 8),
        tensor("q4_k.3d", &[256, 1, 2], GgmlType::Q4K, 9),
        tensor("q5_k", &[256], GgmlType::Q5K, 10),
        tensor("q6_k.2d", &[512, 2], GgmlType::Q6K, 11),
        tensor("blk.0.ффн.🦀", &[1], GgmlType::F32, 12),
    ];
    Spec { metadata: metadata.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), tensors }
}

fn with_alignment(mut spec: Spec, alignment: u32) -> Spec {
    spec.metadata.insert(1, ("general.alignment".to_string(), Value::U32(alignment)));
    spec
}

// ---------------------------------------------------------------------------------------------
// Round trips

#[test]
fn gguf_round_trip_every_value_type_in_memory() {
    let spec = every_type_spec();
    let g = Gguf::from_bytes("every-type", spec.to_bytes()).expect("parse");
    check_matches_spec(&spec, &g);
    touch_all(&g);
}

#[test]
fn gguf_round_trip_every_value_type_via_file() {
    let dir = temp_dir("gguf_round_trip_every_value_type_via_file");
    let spec = every_type_spec();
    let path = dir.join("every-type.gguf");
    spec.writer().write_file(&path).expect("write_file");
    assert!(!path.with_extension("gguf.partial").exists(), "temporary file left behind");
    let g = Gguf::open(&path).expect("open");
    assert_eq!(g.name(), path.display().to_string());
    check_matches_spec(&spec, &g);
    // The file on disk is byte for byte what write_to makes.
    assert_eq!(std::fs::read(&path).unwrap(), spec.to_bytes());
}

#[test]
fn gguf_round_trip_custom_alignment() {
    let dir = temp_dir("gguf_round_trip_custom_alignment");
    for alignment in [1u32, 8, 64, 256, 4096] {
        let spec = with_alignment(every_type_spec(), alignment);
        let g = Gguf::from_bytes(format!("align-{alignment}"), spec.to_bytes()).expect("parse");
        check_matches_spec(&spec, &g);
        let path = dir.join(format!("align-{alignment}.gguf"));
        spec.writer().write_file(&path).expect("write_file");
        check_matches_spec(&spec, &Gguf::open(&path).expect("open"));
    }
}

#[test]
fn gguf_round_trip_no_metadata_no_tensors() {
    let spec = Spec::default();
    let bytes = spec.to_bytes();
    let g = Gguf::from_bytes("empty-spec", bytes).expect("parse");
    check_matches_spec(&spec, &g);
}

#[test]
fn gguf_round_trip_random_specs() {
    for seed in 0..N_RANDOM_SPECS {
        let spec = random_spec(seed);
        let g = Gguf::from_bytes(format!("random-{seed}"), spec.to_bytes())
            .unwrap_or_else(|e| panic!("seed {seed}: {e}\n{spec:#?}"));
        check_matches_spec(&spec, &g);
        touch_all(&g);
    }
}

#[test]
fn gguf_writer_rejects_inconsistent_input() {
    let mut w = GgufWriter::new();
    w.add_tensor("t", &[4], GgmlType::F32, vec![0; 16]).unwrap();
    let e = w.add_tensor("t", &[4], GgmlType::F32, vec![0; 16]).unwrap_err().to_string();
    assert!(e.contains("tensor 't' added twice"), "{e}");
    let e = w.add_tensor("u", &[4], GgmlType::F32, vec![0; 15]).unwrap_err().to_string();
    assert!(e.contains("15 bytes given"), "{e}");
    let e = w.add_tensor("q", &[33], GgmlType::Q8_0, vec![]).unwrap_err().to_string();
    assert!(e.contains("not a multiple of the Q8_0 block size"), "{e}");
    let e = w.add_tensor("d0", &[], GgmlType::F32, vec![]).unwrap_err().to_string();
    assert!(e.contains("0 dimensions"), "{e}");
    let e = w.add_tensor("d5", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4]).unwrap_err().to_string();
    assert!(e.contains("5 dimensions"), "{e}");
    let e = w.add_tensor("huge", &[1 << 40, 1 << 40], GgmlType::F32, vec![]).unwrap_err().to_string();
    assert!(e.contains("overflow"), "{e}");

    // An array whose items are not of its element type would be written as garbage.
    let mut w = GgufWriter::new();
    w.set("bad.array", Value::Array(ValueType::U32, vec![Value::U32(1), Value::String("x".into())]));
    let e = w.write_to(&mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("'bad.array'") && e.contains("string"), "{e}");

    // An alignment the reader would reject.
    for bad in [Value::U32(0), Value::U32(3), Value::U32(1 << 21), Value::String("32".into())] {
        let mut w = GgufWriter::new();
        w.set("general.alignment", bad.clone());
        let e = w.write_to(&mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("general.alignment"), "{bad:?}: {e}");
    }

    // A lazy tensor whose generator makes the wrong number of bytes.
    let mut w = GgufWriter::new();
    w.add_tensor_lazy("lazy", &[4], GgmlType::F32, || vec![0; 3]).unwrap();
    let e = w.write_to(&mut Vec::new()).unwrap_err().to_string();
    assert!(e.contains("generator made 3 bytes, expected 16"), "{e}");
}

#[test]
fn gguf_writer_set_replaces_and_keeps_order() {
    let mut w = GgufWriter::new();
    w.set("a", 1u32).set("b", "x").set("a", 2u32);
    w.add_tensor_lazy("lazy", &[2, 2], GgmlType::F16, || vec![7; 8]).unwrap();
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    let g = Gguf::from_bytes("set", bytes).unwrap();
    let keys: Vec<&str> = g.metadata().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
    assert_eq!(g.get_u32("a").unwrap(), 2);
    assert_eq!(g.tensor_data(g.tensor("lazy").unwrap()), [7; 8]);
}

// ---------------------------------------------------------------------------------------------
// Typed accessors

fn accessor_file() -> Gguf {
    let mut w = GgufWriter::new();
    w.set("s", "text")
        .set("u8", Value::U8(200))
        .set("i32.pos", 5i32)
        .set("i32.neg", -1i32)
        .set("u32.max", u32::MAX)
        .set("u64.big", Value::U64(1 << 40))
        .set("i64.neg", Value::I64(-5))
        .set("f32", 1.5f32)
        .set("f64", Value::F64(0.25))
        .set("bool", true)
        .set("arr.i32", vec![1, -2, 3])
        .set("arr.u32", Value::Array(ValueType::U32, vec![Value::U32(4), Value::U32(5)]))
        .set("arr.str", vec!["a".to_string(), "b".to_string()]);
    let mut bytes = Vec::new();
    w.write_to(&mut bytes).unwrap();
    Gguf::from_bytes("accessors.gguf", bytes).unwrap()
}

#[test]
fn gguf_get_missing_key_names_key_and_file() {
    let g = accessor_file();
    let e = g.get_u32("clip.vision.block_count").unwrap_err();
    assert!(matches!(e, Error::MissingKey { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("accessors.gguf") && msg.contains("'clip.vision.block_count'"), "{msg}");
    assert!(g.get_str("nope").unwrap_err().to_string().contains("'nope' is missing"));
    assert!(g.get_opt::<u32>("nope").unwrap().is_none());
    assert!(g.get("nope").is_none());
    let e = g.tensor("v.blk.0.attn_q.weight").unwrap_err().to_string();
    assert!(e.contains("accessors.gguf") && e.contains("'v.blk.0.attn_q.weight' is missing"), "{e}");
}

#[test]
fn gguf_get_wrong_type_names_expected_and_found() {
    let g = accessor_file();
    let cases: Vec<(Error, &str)> = vec![
        (g.get_u32("s").unwrap_err(), "'s' is string, expected u32"),
        (g.get_str("u8").unwrap_err(), "'u8' is u8, expected string"),
        (g.get_f32("u8").unwrap_err(), "'u8' is u8, expected f32"),
        (g.get_bool("u8").unwrap_err(), "'u8' is u8, expected bool"),
        (g.get_u32("f32").unwrap_err(), "'f32' is f32, expected u32"),
        (g.get_as::<Vec<u32>>("arr.str").unwrap_err(), "'arr.str' is array<string>, expected array"),
        (g.get_as::<Vec<String>>("s").unwrap_err(), "'s' is string, expected array"),
        (g.get_opt::<bool>("s").unwrap_err(), "'s' is string, expected bool"),
    ];
    for (e, fragment) in cases {
        assert!(matches!(e, Error::WrongType { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.starts_with("accessors.gguf: ") && msg.contains(fragment), "{msg:?} lacks {fragment:?}");
    }
}

#[test]
fn gguf_get_integer_conversions_check_range() {
    let g = accessor_file();
    // Widening, and narrowing when the value fits.
    assert_eq!(g.get_u32("u8").unwrap(), 200);
    assert_eq!(g.get_i32("u8").unwrap(), 200);
    assert_eq!(g.get_u32("i32.pos").unwrap(), 5);
    assert_eq!(g.get_u64("i32.pos").unwrap(), 5);
    assert_eq!(g.get_i32("i64.neg").unwrap(), -5);
    assert_eq!(g.get_u64("u64.big").unwrap(), 1 << 40);
    assert_eq!(g.get_as::<i64>("u32.max").unwrap(), u32::MAX as i64);
    assert_eq!(g.get_as::<usize>("u8").unwrap(), 200);
    // Out of range: the error says what was found.
    let out_of_range = [
        (g.get_u32("i32.neg").unwrap_err(), "'i32.neg' is i32, expected u32"),
        (g.get_u64("i32.neg").unwrap_err(), "'i32.neg' is i32, expected u64"),
        (g.get_u32("u64.big").unwrap_err(), "'u64.big' is u64, expected u32"),
        (g.get_i32("u32.max").unwrap_err(), "'u32.max' is u32, expected i32"),
        (g.get_as::<usize>("i64.neg").unwrap_err(), "'i64.neg' is i64, expected unsigned integer"),
    ];
    for (e, fragment) in out_of_range {
        assert!(e.to_string().contains(fragment), "{e} lacks {fragment:?}");
    }
    // Floats: f32 reads f32 and f64, never integers; bools and strings never convert.
    assert_eq!(g.get_f32("f32").unwrap(), 1.5);
    assert_eq!(g.get_f32("f64").unwrap(), 0.25);
    assert!(g.get_bool("bool").unwrap());
    assert_eq!(g.get_str("s").unwrap(), "text");
    // Arrays convert item by item, with the same range rules.
    assert_eq!(g.get_as::<Vec<i32>>("arr.i32").unwrap(), [1, -2, 3]);
    assert_eq!(g.get_as::<Vec<u64>>("arr.u32").unwrap(), [4, 5]);
    assert_eq!(g.get_as::<Vec<String>>("arr.str").unwrap(), ["a", "b"]);
    assert!(g.get_as::<Vec<u32>>("arr.i32").is_err(), "-2 does not fit u32");
}

// ---------------------------------------------------------------------------------------------
// Malformed files: tests/data/gguf-bad/

/// One malformed file: what is wrong with it and a fragment its error message must contain.
struct BadFile {
    name: &'static str,
    defect: &'static str,
    bytes: Vec<u8>,
    fragment: String,
}

/// Files found by the fuzzer, checked in as they were found (not made by `bad_files`):
/// `(file name, fragment of the error)`.
const FUZZ_REGRESSIONS: &[(&str, &str)] = &[];

/// Little-endian GGUF bytes built field by field, for files the writer refuses to make.
#[derive(Clone, Default)]
struct Raw(Vec<u8>);

impl Raw {
    fn header(version: u32, n_tensors: u64, n_kv: u64) -> Raw {
        Raw::default().bytes(b"GGUF").u32(version).u64(n_tensors).u64(n_kv)
    }
    fn bytes(mut self, b: &[u8]) -> Raw {
        self.0.extend_from_slice(b);
        self
    }
    fn u8(self, v: u8) -> Raw {
        self.bytes(&[v])
    }
    fn u32(self, v: u32) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn u64(self, v: u64) -> Raw {
        self.bytes(&v.to_le_bytes())
    }
    fn str(self, s: &str) -> Raw {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }
    /// A key and its value type id; the value follows.
    fn key(self, key: &str, ty: ValueType) -> Raw {
        self.str(key).u32(ty.id())
    }
    fn kv_u32(self, key: &str, v: u32) -> Raw {
        self.key(key, ValueType::U32).u32(v)
    }
    fn kv_str(self, key: &str, v: &str) -> Raw {
        self.key(key, ValueType::String).str(v)
    }
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Raw {
        let mut r = self.str(name).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    fn pad(self, alignment: usize) -> Raw {
        let n = self.0.len().next_multiple_of(alignment) - self.0.len();
        self.zeros(n)
    }
    fn zeros(self, n: usize) -> Raw {
        self.bytes(&vec![0; n])
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn cut(mut self, len: usize) -> Vec<u8> {
        assert!(len <= self.0.len());
        self.0.truncate(len);
        self.0
    }
    fn done(self) -> Vec<u8> {
        self.0
    }
}

const F32: u32 = 0;

/// Two metadata pairs of a typical file.
fn base_kv(r: Raw) -> Raw {
    r.kv_str("general.architecture", "llama").kv_u32("test.n", 7)
}

/// A valid file: two metadata pairs and one F32 tensor 't' [4, 2] at data offset 0.
/// Layout: header 0..24, metadata 24..91, tensor info 91..132, padding to 160, data 160..192.
fn valid_raw() -> Raw {
    base_kv(Raw::header(3, 1, 2)).tensor("t", &[4, 2], F32, 0).pad(32).zeros(32)
}

/// A file whose only defect is one tensor info (metadata as in `valid_raw`, 64 bytes of data).
fn one_tensor(dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    base_kv(Raw::header(3, 1, 2)).tensor("t", dims, ty, offset).pad(32).zeros(64).done()
}

fn bad_files() -> Vec<BadFile> {
    let mut files = Vec::new();
    let mut add = |name, defect, bytes: Vec<u8>, fragment: &str| {
        files.push(BadFile { name, defect, bytes, fragment: fragment.to_string() })
    };
    let valid = valid_raw().done();
    assert_eq!(valid.len(), 192, "valid_raw layout changed; update the offsets below");
    let mut magic = valid.clone();
    magic[..4].copy_from_slice(b"GGML");
    add("bad_magic.gguf", "starts with GGML instead of GGUF", magic, "not a GGUF file (starts with \"GGML\"");
    add("empty.gguf", "zero bytes", vec![], "the file is empty");
    add("too_short.gguf", "three bytes: \"GGU\"", b"GGU".to_vec(), "the file is only 3 bytes, too short");
    let mut v1 = valid.clone();
    v1[4] = 1;
    add("version_1.gguf", "version 1 (GGUF v1 used u32 counts)", v1, "unsupported GGUF version 1 (glimpse reads");
    let mut v4 = valid.clone();
    v4[4] = 4;
    add("version_4.gguf", "version 4, from the future", v4, "unsupported GGUF version 4 (glimpse reads");
    add(
        "big_endian.gguf",
        "a big-endian GGUF v3 (version and counts byte-swapped)",
        Raw::default()
            .bytes(b"GGUF")
            .bytes(&3u32.to_be_bytes())
            .bytes(&0u64.to_be_bytes())
            .bytes(&0u64.to_be_bytes())
            .done(),
        "version 50331648 (a big-endian GGUF",
    );
    add(
        "truncated_in_header.gguf",
        "ends inside the tensor count",
        valid_raw().cut(12),
        "malformed GGUF at byte 8: truncated: tensor count needs 8 bytes but only 4 remain",
    );
    let r = Raw::header(3, 1, 2).kv_str("general.architecture", "llama");
    let at = r.len();
    add(
        "truncated_in_key.gguf",
        "ends inside the second key",
        r.str("test.n").cut(at + 8 + 3),
        "at byte 69: key of metadata pair 1: string length 6 is larger than the 3 bytes left",
    );
    let r = Raw::header(3, 0, 1).kv_str("general.architecture", "llama");
    add(
        "truncated_in_string.gguf",
        "ends inside a string value",
        r.clone().cut(r.len() - 3),
        "at byte 56: value of 'general.architecture': string length 5 is larger than the 2 bytes left",
    );
    let r = Raw::header(3, 0, 1)
        .key("tokenizer.ggml.tokens", ValueType::Array)
        .u32(ValueType::String.id())
        .u64(3)
        .str("alpha")
        .str("beta")
        .str("gamma");
    add(
        "truncated_in_array.gguf",
        "ends inside the last string of a string array",
        r.clone().cut(r.len() - 3),
        "value of 'tokenizer.ggml.tokens': string length 5 is larger than the 2 bytes left",
    );
    let r = Raw::header(3, 0, 1).key("tokenizer.ggml.scores", ValueType::Array).u32(ValueType::F32.id()).u64(4);
    add(
        "truncated_in_f32_array.gguf",
        "an f32 array of 4 with only 2 items present",
        r.zeros(8).done(),
        "'tokenizer.ggml.scores': array length 4 is impossible: 4 items need at least 16 bytes but only 8 remain",
    );
    // Two tensors, so that the tensor count alone does not already rule out the cut file.
    let r = base_kv(Raw::header(3, 2, 2)).tensor("token_embd.weight", &[4], F32, 0);
    let at = r.len();
    add(
        "truncated_in_tensor_infos.gguf",
        "ends inside the second dimension of the second tensor info",
        r.tensor("t", &[4, 2], F32, 32).cut(at + 8 + 1 + 4 + 8 + 3),
        "truncated: dimension 1 of tensor 't' needs 8 bytes but only 3 remain",
    );
    add(
        "truncated_in_tensor_data.gguf",
        "ends halfway through the tensor data",
        valid_raw().cut(176),
        "tensor 't' data [160..+32) runs past the end of the file (176 bytes)",
    );
    add(
        "truncated_before_tensor_data.gguf",
        "ends inside the padding before the data section",
        valid_raw().cut(140),
        "at byte 140: the file ends before its tensor data section (which starts at byte 160)",
    );
    add(
        "absurd_string_length.gguf",
        "a string value of length u64::MAX",
        Raw::header(3, 0, 1).key("general.name", ValueType::String).u64(u64::MAX).bytes(b"tiny").done(),
        "value of 'general.name': string length 18446744073709551615 is larger than the 4 bytes left",
    );
    add(
        "absurd_array_length.gguf",
        "an f32 array of length u64::MAX",
        Raw::header(3, 0, 1)
            .key("tokenizer.ggml.scores", ValueType::Array)
            .u32(ValueType::F32.id())
            .u64(u64::MAX)
            .zeros(16)
            .done(),
        "'tokenizer.ggml.scores': array length 18446744073709551615 is impossible",
    );
    add(
        "absurd_tensor_count.gguf",
        "tensor count u64::MAX",
        Raw::header(3, u64::MAX, 0).zeros(64).done(),
        "tensor count 18446744073709551615 is impossible",
    );
    add(
        "absurd_tensor_count_2_40.gguf",
        "tensor count 2^40: no overflow, just more than the file holds",
        Raw::header(3, 1 << 40, 0).zeros(64).done(),
        "tensor count 1099511627776 is impossible",
    );
    add(
        "absurd_kv_count.gguf",
        "metadata count u64::MAX",
        Raw::header(3, 0, u64::MAX).zeros(64).done(),
        "metadata count 18446744073709551615 is impossible",
    );
    add(
        "unknown_value_type.gguf",
        "metadata value type 13",
        Raw::header(3, 0, 1).str("test.x").u32(13).zeros(8).done(),
        "at byte 38: type of 'test.x': unknown metadata value type 13",
    );
    add(
        "unknown_array_element_type.gguf",
        "array element type 99",
        Raw::header(3, 0, 1).key("test.x", ValueType::Array).u32(99).u64(1).zeros(8).done(),
        "element type of 'test.x': unknown metadata value type 99",
    );
    add(
        "unknown_ggml_type.gguf",
        "tensor type id 200",
        one_tensor(&[4], 200, 0),
        "tensor 't' has unknown ggml type id 200",
    );
    add(
        "unsupported_type_q2_k.gguf",
        "tensor type Q2_K (id 10), known but not supported",
        one_tensor(&[256], 10, 0),
        "tensor 't' has type Q2_K (id 10), which glimpse does not support",
    );
    add("n_dims_0.gguf", "a tensor with 0 dimensions", one_tensor(&[], F32, 0), "tensor 't' has 0 dimensions");
    add(
        "n_dims_5.gguf",
        "a tensor with 5 dimensions",
        one_tensor(&[1, 1, 1, 1, 4], F32, 0),
        "tensor 't' has 5 dimensions; GGUF tensors have 1 to 4",
    );
    add(
        "dims_overflow.gguf",
        "dims [2^32, 2^32]: the element count overflows i64",
        one_tensor(&[1 << 32, 1 << 32], F32, 0),
        "tensor 't' dimensions [4294967296, 4294967296] overflow the element count",
    );
    add(
        "dims_overflow_after_zero_dim.gguf",
        "dims [0, 2^40, 2^40]: zero elements, but the row count overflows",
        one_tensor(&[0, 1 << 40, 1 << 40], F32, 0),
        "tensor 't' dimensions [0, 1099511627776, 1099511627776] overflow the element count",
    );
    add(
        "dims_byte_size_overflow.gguf",
        "dims [2^61, 2] F32: the element count fits i64 but the byte size overflows u64",
        one_tensor(&[1 << 61, 2], F32, 0),
        "tensor 't' dimensions [2305843009213693952, 2] overflow the byte size",
    );
    add(
        "row_byte_size_overflow.gguf",
        "dims [2^62] F32: one row's byte size overflows u64",
        one_tensor(&[1 << 62], F32, 0),
        "tensor 't' dimensions [4611686018427387904] overflow the byte size",
    );
    add(
        "row_not_block_multiple.gguf",
        "a Q8_0 tensor whose rows are 33 elements (blocks are 32)",
        one_tensor(&[33, 2], 8, 0),
        "tensor 't' row length 33 is not a multiple of the Q8_0 block size 32",
    );
    add(
        "tensor_data_out_of_bounds.gguf",
        "tensor offset 1024 in a 192-byte file",
        base_kv(Raw::header(3, 1, 2)).tensor("t", &[4, 2], F32, 1024).pad(32).zeros(32).done(),
        "tensor 't' data [1184..+32) runs past the end of the file (192 bytes)",
    );
    add(
        "tensor_offset_overflow.gguf",
        "tensor offset near u64::MAX (aligned), so data offset + offset overflows",
        one_tensor(&[4], F32, u64::MAX - 31),
        "tensor 't' data [18446744073709551615..+16) runs past the end of the file",
    );
    add(
        "overlapping_tensors.gguf",
        "tensor 'b' starts inside tensor 'a'",
        base_kv(Raw::header(3, 2, 2)).tensor("a", &[16], F32, 0).tensor("b", &[8], F32, 32).pad(32).zeros(64).done(),
        "tensor 'b' data overlaps tensor 'a'",
    );
    add(
        "misaligned_offset.gguf",
        "tensor offset 4 with alignment 32",
        one_tensor(&[4], F32, 4),
        "tensor 't' data offset 4 is not a multiple of the alignment 32",
    );
    add(
        "misaligned_offset_alignment_64.gguf",
        "tensor offset 32 with general.alignment 64",
        Raw::header(3, 1, 1).kv_u32("general.alignment", 64).tensor("t", &[4], F32, 32).pad(64).zeros(64).done(),
        "tensor 't' data offset 32 is not a multiple of the alignment 64",
    );
    add(
        "duplicate_tensor_name.gguf",
        "two tensors named 't'",
        base_kv(Raw::header(3, 2, 2)).tensor("t", &[4], F32, 0).tensor("t", &[4], F32, 32).pad(32).zeros(64).done(),
        "at byte 124: tensor 't' appears twice",
    );
    add(
        "duplicate_key.gguf",
        "the key 'test.n' twice",
        base_kv(Raw::header(3, 0, 3)).kv_u32("test.n", 8).done(),
        "at byte 91: metadata key 'test.n' appears twice",
    );
    add(
        "alignment_0.gguf",
        "general.alignment = 0",
        Raw::header(3, 0, 1).kv_u32("general.alignment", 0).done(),
        "general.alignment must be a power of two up to 1 MiB, found 0",
    );
    add(
        "alignment_3.gguf",
        "general.alignment = 3",
        Raw::header(3, 0, 1).kv_u32("general.alignment", 3).done(),
        "general.alignment must be a power of two up to 1 MiB, found 3",
    );
    add(
        "alignment_2_gib.gguf",
        "general.alignment = 2^31",
        Raw::header(3, 0, 1).kv_u32("general.alignment", 1 << 31).done(),
        "general.alignment must be a power of two up to 1 MiB, found 2147483648",
    );
    add(
        "alignment_string.gguf",
        "general.alignment is a string",
        Raw::header(3, 0, 1).kv_str("general.alignment", "32").done(),
        "general.alignment must be a power of two up to 1 MiB, found \"32\"",
    );
    add(
        "invalid_utf8_key.gguf",
        "a key with bytes ff fe",
        Raw::header(3, 0, 1).u64(4).bytes(b"a\xff\xfeb").u32(ValueType::U8.id()).u8(1).done(),
        "at byte 24: key of metadata pair 0: string is not valid UTF-8",
    );
    add(
        "invalid_utf8_string.gguf",
        "a string value that is a lone continuation byte",
        Raw::header(3, 0, 1).key("general.name", ValueType::String).u64(1).u8(0x80).done(),
        "value of 'general.name': string is not valid UTF-8",
    );
    add(
        "invalid_utf8_tensor_name.gguf",
        "a tensor name with byte c0",
        base_kv(Raw::header(3, 1, 2)).u64(2).bytes(b"t\xc0").u32(1).u64(4).u32(F32).u64(0).pad(32).zeros(32).done(),
        "at byte 91: name of tensor 0: string is not valid UTF-8",
    );
    add(
        "tensor_name_too_long.gguf",
        "a tensor name of 5000 bytes",
        base_kv(Raw::header(3, 1, 2)).str(&"x".repeat(5000)).u32(1).u64(4).u32(F32).u64(0).pad(32).zeros(32).done(),
        "tensor 0: name length 5000 is absurd",
    );
    add(
        "bool_value_2.gguf",
        "a bool stored as 2",
        Raw::header(3, 0, 1).key("clip.has_vision_encoder", ValueType::Bool).u8(2).done(),
        "'clip.has_vision_encoder': bool value 2 is neither 0 nor 1",
    );
    let mut deep = Raw::header(3, 0, 1).key("test.deep", ValueType::Array);
    for _ in 0..1000 {
        deep = deep.u32(ValueType::Array.id()).u64(1);
    }
    add(
        "nested_array_depth_bomb.gguf",
        "arrays of arrays nested 1000 deep",
        deep.u32(ValueType::U8.id()).u64(0).done(),
        "'test.deep': arrays nested deeper than 8 levels",
    );
    files
}

fn bad_dir() -> std::path::PathBuf {
    repo_path(BAD_DIR)
}

fn expected_fragment(files: &[BadFile], name: &str) -> Option<String> {
    files
        .iter()
        .find(|f| f.name == name)
        .map(|f| f.fragment.clone())
        .or_else(|| FUZZ_REGRESSIONS.iter().find(|(n, _)| *n == name).map(|(_, frag)| frag.to_string()))
}

#[test]
fn gguf_bad_files_are_errors() {
    let files = bad_files();
    let mut names: Vec<String> = std::fs::read_dir(bad_dir())
        .expect("tests/data/gguf-bad exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".gguf"))
        .collect();
    names.sort();
    assert!(names.len() >= files.len(), "run the regenerate test: {} files on disk, {} made", names.len(), files.len());
    for name in &names {
        let fragment = expected_fragment(&files, name)
            .unwrap_or_else(|| panic!("{BAD_DIR}/{name} is not in bad_files() or FUZZ_REGRESSIONS"));
        let path = bad_dir().join(name);
        let result = catch_unwind(|| Gguf::open(&path));
        let msg = match result {
            Err(_) => panic!("{name}: the reader panicked"),
            Ok(Ok(_)) => panic!("{name}: parsed without error"),
            Ok(Err(e)) => e.to_string(),
        };
        assert!(msg.contains(&fragment), "{name}: error\n  {msg}\nlacks\n  {fragment}");
        assert!(msg.starts_with(&path.display().to_string()), "{name}: error does not name the file: {msg}");
        // The in-memory path reports the same defect (an empty buffer has its own message).
        let bytes = std::fs::read(&path).unwrap();
        let e = Gguf::from_bytes(name.as_str(), bytes).expect_err(name).to_string();
        assert!(e.starts_with(name.as_str()), "{e}");
        assert!(name == "empty.gguf" || e.contains(&fragment), "{name}: from_bytes error {e}");
    }
}

#[test]
fn gguf_bad_files_match_generator() {
    let files = bad_files();
    let mut seen = HashSet::new();
    for f in &files {
        assert!(seen.insert(f.name), "{} listed twice", f.name);
        let path = bad_dir().join(f.name);
        let on_disk =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; run the regenerate test", path.display()));
        assert!(on_disk == f.bytes, "{}: differs from bad_files(); run the regenerate test", f.name);
    }
    let readme = std::fs::read_to_string(bad_dir().join("README.md")).expect("README.md");
    assert_eq!(readme, bad_files_readme(&files), "README.md is stale; run the regenerate test");
}

fn bad_files_readme(files: &[BadFile]) -> String {
    let mut s = String::from(
        "# Malformed GGUF files\n\n\
         One defect per file; each must make `Gguf::open` return an error (never panic) whose message\n\
         contains the fragment shown. `tests/it/gguf.rs` checks this (`gguf_bad_files_are_errors`).\n\n\
         The files are made by `bad_files()` in `tests/it/gguf.rs`. To regenerate them and this README:\n\n\
         ```\ncargo test --test it gguf::regenerate_gguf_bad_files -- --ignored\n```\n\n\
         Files named `fuzz-*` were found by the fuzzer (`fuzz/README.md`) and are checked in as found;\n\
         they are listed in `FUZZ_REGRESSIONS` in the same file.\n\n\
         | file | defect | error contains |\n|---|---|---|\n",
    );
    for f in files {
        s += &format!("| `{}` | {} | `{}` |\n", f.name, f.defect, f.fragment.replace('|', "\\|"));
    }
    for (name, fragment) in FUZZ_REGRESSIONS {
        s += &format!("| `{name}` | found by the fuzzer | `{fragment}` |\n");
    }
    s
}

/// Regenerates `tests/data/gguf-bad/*.gguf` and its README.md from `bad_files()`, and the valid
/// seed files of the fuzzer under `fuzz/seeds/gguf_reader/`.
#[test]
#[ignore = "writes checked-in files; run by hand after changing bad_files()"]
fn regenerate_gguf_bad_files() {
    let files = bad_files();
    let dir = bad_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for f in &files {
        std::fs::write(dir.join(f.name), &f.bytes).unwrap();
    }
    std::fs::write(dir.join("README.md"), bad_files_readme(&files)).unwrap();

    let seeds = repo_path("fuzz/seeds/gguf_reader");
    std::fs::create_dir_all(&seeds).unwrap();
    std::fs::write(seeds.join("valid_raw.gguf"), valid_raw().done()).unwrap();
    std::fs::write(seeds.join("small.gguf"), small_spec().to_bytes()).unwrap();
    std::fs::write(seeds.join("every_type.gguf"), every_type_spec().to_bytes()).unwrap();
    std::fs::write(seeds.join("every_type_align_64.gguf"), with_alignment(every_type_spec(), 64).to_bytes()).unwrap();
    std::fs::write(seeds.join("no_tensors.gguf"), Spec::default().to_bytes()).unwrap();
    for seed in 0..4 {
        std::fs::write(seeds.join(format!("random_{seed}.gguf")), random_spec(seed).to_bytes()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Truncation and corruption of a small valid file

/// A small file with a string, an array and two tensors (the second ends the data section).
fn small_spec() -> Spec {
    Spec {
        metadata: vec![
            ("general.architecture".into(), "llama".into()),
            ("general.alignment".into(), Value::U32(16)),
            ("test.arr".into(), Value::from(vec![1, 2, 3])),
            ("test.strs".into(), Value::from(vec!["a".to_string(), "bc".to_string()])),
            ("test.b".into(), Value::Bool(true)),
        ],
        tensors: vec![tensor("a", &[3, 2], GgmlType::F16, 1), tensor("b", &[32], GgmlType::Q8_0, 2)],
    }
}

#[test]
fn gguf_truncated_prefixes_are_errors() {
    let spec = small_spec();
    let bytes = spec.to_bytes();
    let full = Gguf::from_bytes("small", bytes.clone()).unwrap();
    // The writer pads after the last tensor too; cutting that padding leaves a valid file.
    let needed = full.tensors().iter().map(|t| full.data_offset() + t.offset + t.n_bytes).max().unwrap() as usize;
    assert!(needed < bytes.len(), "the test wants trailing padding to cut");
    for len in 0..bytes.len() {
        let name = format!("small-cut-{len}");
        let result = catch_unwind(|| Gguf::from_bytes(name.clone(), bytes[..len].to_vec()));
        match result {
            Err(_) => panic!("prefix of {len} bytes: the reader panicked"),
            Ok(Err(e)) => {
                assert!(len < needed, "prefix of {len} bytes (>= {needed}) should parse: {e}");
                assert!(e.to_string().starts_with(&name), "{e}");
            }
            Ok(Ok(g)) => {
                assert!(len >= needed, "prefix of {len} bytes (< {needed}) parsed");
                check_matches_spec(&spec, &g);
            }
        }
    }
}

#[test]
fn gguf_corrupt_bytes_never_panic() {
    for (label, bytes) in [("small", small_spec().to_bytes()), ("raw", valid_raw().done())] {
        let mut n_ok = 0;
        for at in 0..bytes.len() {
            for mask in [0x01u8, 0x80, 0xff, 0x7f] {
                let mut corrupt = bytes.clone();
                corrupt[at] ^= mask;
                let result = catch_unwind(AssertUnwindSafe(|| {
                    if let Ok(g) = Gguf::from_bytes("corrupt", corrupt) {
                        touch_all(&g);
                        n_ok += 1;
                    }
                }));
                assert!(result.is_ok(), "{label}: byte {at} ^ {mask:#04x}: the reader panicked");
            }
            // Also a byte set to each boundary value.
            for value in [0x00u8, 0x02, 0x0d, 0xff] {
                let mut corrupt = bytes.clone();
                corrupt[at] = value;
                let result = catch_unwind(|| Gguf::from_bytes("corrupt", corrupt).map(|g| touch_all(&g)));
                assert!(result.is_ok(), "{label}: byte {at} = {value:#04x}: the reader panicked");
            }
        }
        // Flips in tensor data and padding parse fine; most in the header do not.
        assert!(n_ok > 0, "{label}: no corruption parsed at all");
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-check against gguf-py

/// How `tests/py/gguf_dump.py` renders a value.
fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::F32(x) => json!({"t": "f32", "bits": x.to_bits()}),
        Value::F64(x) => json!({"t": "f64", "bits": x.to_bits()}),
        Value::String(s) => json!({"t": "string", "v": s}),
        Value::Bool(b) => json!({"t": "bool", "v": b}),
        Value::Array(ty, items) => {
            json!({"t": "array", "elem": ty.name(), "v": items.iter().map(value_json).collect::<Vec<_>>()})
        }
        Value::U64(x) => json!({"t": "u64", "v": x}),
        other => {
            let i = other.as_integer().expect("an integer type") as i64;
            json!({"t": other.value_type().name(), "v": i})
        }
    }
}

/// Our reader's view of a file, in the shape `gguf_dump.py` prints.
fn our_dump(g: &Gguf, path: &Path) -> serde_json::Value {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    json!({
        "file": path.display().to_string(),
        "version": g.version(),
        "alignment": g.alignment(),
        "data_offset": g.data_offset(),
        "metadata": g.metadata().iter().map(|(k, v)| json!({"key": k, "value": value_json(v)})).collect::<Vec<_>>(),
        "tensors": g.tensors().iter().map(|t| json!({
            "name": t.name,
            "dims": t.dims,
            "type": t.ty.id(),
            "offset": t.offset,
            "n_bytes": t.n_bytes,
            "data_hex": hex(g.tensor_data(t)),
        })).collect::<Vec<_>>(),
    })
}

fn python_has_gguf() -> bool {
    let ok =
        std::process::Command::new("python3").args(["-c", "import gguf"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(!required("PYTHON"), "GLIMPSE_REQUIRE_PYTHON=1 but `python3 -c 'import gguf'` fails");
        eprintln!("skipping: `python3 -c 'import gguf'` fails (pip install gguf; GLIMPSE_REQUIRE_PYTHON=1 to fail)");
    }
    ok
}

#[test]
fn gguf_matches_gguf_py() {
    if !python_has_gguf() {
        return;
    }
    let dir = temp_dir("gguf_matches_gguf_py");
    let mut specs = vec![
        ("every_type".to_string(), every_type_spec()),
        ("every_type_align_64".to_string(), with_alignment(every_type_spec(), 64)),
        ("every_type_align_256".to_string(), with_alignment(every_type_spec(), 256)),
        ("small".to_string(), small_spec()),
        ("no_tensors".to_string(), Spec::default()),
    ];
    specs.extend((0..N_RANDOM_PY_SPECS).map(|seed| (format!("random_{seed}"), random_spec(seed))));
    let paths: Vec<_> = specs
        .iter()
        .map(|(name, spec)| {
            let path = dir.join(format!("{name}.gguf"));
            spec.writer().write_file(&path).expect("write_file");
            path
        })
        .collect();

    let out = std::process::Command::new("python3")
        .arg(repo_path("tests/py/gguf_dump.py"))
        .args(&paths)
        .output()
        .expect("run python3");
    assert!(out.status.success(), "gguf_dump.py failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), paths.len(), "one JSON line per file");
    for ((path, line), (name, spec)) in paths.iter().zip(lines).zip(&specs) {
        let theirs: serde_json::Value = serde_json::from_str(line).expect("gguf_dump.py JSON");
        let g = Gguf::open(path).expect("open");
        check_matches_spec(spec, &g);
        let ours = our_dump(&g, path);
        if ours != theirs {
            // Point at the first differing item rather than printing two huge blobs.
            for field in ["version", "alignment", "data_offset", "metadata", "tensors"] {
                let (a, b) = (&ours[field], &theirs[field]);
                if let (Some(a), Some(b)) = (a.as_array(), b.as_array()) {
                    assert_eq!(a.len(), b.len(), "{name}: {field} count");
                    for (x, y) in a.iter().zip(b) {
                        assert_eq!(x, y, "{name}: {field} differ (left: glimpse, right: gguf-py)");
                    }
                }
                assert_eq!(a, b, "{name}: {field} differ (left: glimpse, right: gguf-py)");
            }
            assert_eq!(ours, theirs, "{name}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Random specs

/// SplitMix64: small, deterministic, good enough to pick shapes and values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const VALUE_TYPES: [ValueType; 13] = [
    ValueType::U8,
    ValueType::I8,
    ValueType::U16,
    ValueType::I16,
    ValueType::U32,
    ValueType::I32,
    ValueType::F32,
    ValueType::Bool,
    ValueType::String,
    ValueType::Array,
    ValueType::U64,
    ValueType::I64,
    ValueType::F64,
];

fn random_string(rng: &mut Rng) -> String {
    const CHARS: &[char] = &['a', 'z', '.', '_', ' ', '0', '\0', '\n', 'é', 'ß', '世', '界', '▁', '🦀', '\u{10ffff}'];
    let n = rng.below(12);
    (0..n).map(|_| *rng.pick(CHARS)).collect()
}

fn random_value(rng: &mut Rng, ty: ValueType, depth: u32) -> Value {
    let bits = rng.next();
    match ty {
        ValueType::U8 => Value::U8(bits as u8),
        ValueType::I8 => Value::I8(bits as i8),
        ValueType::U16 => Value::U16(bits as u16),
        ValueType::I16 => Value::I16(bits as i16),
        ValueType::U32 => Value::U32(bits as u32),
        ValueType::I32 => Value::I32(bits as i32),
        ValueType::U64 => Value::U64(bits),
        ValueType::I64 => Value::I64(bits as i64),
        // Raw bits: NaNs, infinities, subnormals and -0.0 all turn up.
        ValueType::F32 => Value::F32(f32::from_bits(bits as u32)),
        ValueType::F64 => Value::F64(f64::from_bits(bits)),
        ValueType::Bool => Value::Bool(bits & 1 == 1),
        ValueType::String => Value::String(random_string(rng)),
        ValueType::Array => {
            // Arrays of arrays only a few levels deep (the reader allows 8).
            let elem = loop {
                let t = *rng.pick(&VALUE_TYPES);
                if t != ValueType::Array || depth < 3 {
                    break t;
                }
            };
            let max = if rng.below(8) == 0 { 40 } else { 5 };
            let n = rng.below(max);
            Value::Array(elem, (0..n).map(|_| random_value(rng, elem, depth + 1)).collect())
        }
    }
}

fn random_spec(seed: u64) -> Spec {
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let mut spec = Spec::default();
    if rng.below(3) == 0 {
        let alignment = *rng.pick(&[1u32, 2, 8, 16, 32, 64, 128, 256, 1024]);
        spec.metadata.push(("general.alignment".into(), Value::U32(alignment)));
    }
    for i in 0..rng.below(12) {
        let ty = *rng.pick(&VALUE_TYPES);
        let key = format!("k{i}.{}", random_string(&mut rng));
        let value = random_value(&mut rng, ty, 0);
        spec.metadata.push((key, value));
    }
    for i in 0..rng.below(6) {
        let ty = *rng.pick(&GgmlType::ALL);
        let n_dims = 1 + rng.below(4) as usize;
        let mut dims: Vec<u64> = (0..n_dims).map(|_| 1 + rng.below(3)).collect();
        dims[0] *= ty.block_size() as u64;
        if rng.below(10) == 0 {
            // An empty tensor: zero bytes, any offset.
            let d = rng.below(n_dims as u64) as usize;
            dims[d] = 0;
        }
        let name = format!("t{i}{}", random_string(&mut rng));
        spec.tensors.push(tensor(&name, &dims, ty, rng.next()));
    }
    spec
}
