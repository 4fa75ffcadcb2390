//! GGUF reader over a memory map. Every count, length and offset read from the file is checked
//! against the bytes that remain before anything is allocated from it, so a hostile file gives an
//! `Error`, never a panic or a huge allocation. Format: ggml `docs/gguf.md`, versions 2 and 3.

use std::collections::HashMap;
use std::path::Path;

use super::types::GgmlType;
use super::value::{Value, ValueType};
use super::{Error, Result};

/// "GGUF" as the first four bytes of the file.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// `general.alignment` when the key is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_DIMS`.
pub const MAX_DIMS: usize = 4;
/// Arrays may nest (arrays of arrays); real files use at most one level.
pub(crate) const MAX_ARRAY_DEPTH: u32 = 8;
/// ggml's `GGML_MAX_NAME` is 64; allow longer names but not absurd ones.
const MAX_TENSOR_NAME: u64 = 1024;

/// One tensor's description: name, shape in ggml order (`dims[0]` is contiguous), type and
/// where its bytes are.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the row length (a Linear `[out, in]` weight has dims `[in, out]`).
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// Size of the data in bytes.
    pub n_bytes: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        // Checked at parse time not to overflow.
        self.dims.iter().product()
    }

    /// Length of one row (`dims[0]`).
    pub fn row_len(&self) -> u64 {
        self.dims[0]
    }

    /// Number of rows: the product of `dims[1..]`.
    pub fn n_rows(&self) -> u64 {
        self.dims[1..].iter().product()
    }

    /// Shape in ggml order, e.g. `[576, 49280]`.
    pub fn shape_string(&self) -> String {
        let dims: Vec<String> = self.dims.iter().map(u64::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// A parsed GGUF file: its metadata, its tensor table and its (memory-mapped) bytes.
pub struct Gguf {
    name: String,
    bytes: Bytes,
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    metadata_index: HashMap<String, usize>,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
}

impl std::fmt::Debug for Gguf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gguf")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("metadata", &self.metadata.len())
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Gguf {
    /// Memory-maps and parses a file. The map is read-only; tensor bytes are never copied here.
    pub fn open(path: impl AsRef<Path>) -> Result<Gguf> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let io = |source| Error::Io { file: name.clone(), source };
        let file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len == 0 {
            return Err(Error::malformed(&name, 0, "the file is empty"));
        }
        // SAFETY: the map is read-only and private to this process; if another process truncates
        // the file while it is mapped, reads may fault — the usual memmap caveat, accepted by
        // every mmap-based model loader (llama.cpp does the same).
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        Self::parse(name, Bytes::Mapped(map))
    }

    /// Parses a file held in memory; `name` is used in error messages.
    pub fn from_bytes(name: impl Into<String>, bytes: Vec<u8>) -> Result<Gguf> {
        Self::parse(name.into(), Bytes::Owned(bytes))
    }

    fn parse(name: String, bytes: Bytes) -> Result<Gguf> {
        let header = Header::parse(&name, &bytes)?;
        let metadata_index = header.metadata.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)).collect();
        let tensor_index = header.tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Gguf {
            name,
            bytes,
            version: header.version,
            alignment: header.alignment,
            data_offset: header.data_offset,
            metadata: header.metadata,
            metadata_index,
            tensors: header.tensors,
            tensor_index,
        })
    }

    /// The name used in messages (the path for opened files).
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn version(&self) -> u32 {
        self.version
    }
    pub fn alignment(&self) -> u64 {
        self.alignment
    }
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }
    pub fn file_size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Metadata in file order.
    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata_index.get(key).map(|&i| &self.metadata[i].1)
    }

    /// A required value converted to `T`; the error names the key and the file.
    pub fn get_as<T: FromValue>(&self, key: &str) -> Result<T> {
        self.get_opt(key)?.ok_or_else(|| Error::MissingKey { file: self.name.clone(), key: key.to_string() })
    }

    /// An optional value converted to `T`: `Ok(None)` when absent, an error when of the wrong type.
    pub fn get_opt<T: FromValue>(&self, key: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => T::from_value(v).map(Some).ok_or_else(|| Error::WrongType {
                file: self.name.clone(),
                key: key.to_string(),
                expected: T::EXPECTED,
                found: v.type_name(),
            }),
        }
    }

    pub fn get_u32(&self, key: &str) -> Result<u32> {
        self.get_as(key)
    }
    pub fn get_i32(&self, key: &str) -> Result<i32> {
        self.get_as(key)
    }
    pub fn get_u64(&self, key: &str) -> Result<u64> {
        self.get_as(key)
    }
    pub fn get_f32(&self, key: &str) -> Result<f32> {
        self.get_as(key)
    }
    pub fn get_bool(&self, key: &str) -> Result<bool> {
        self.get_as(key)
    }
    pub fn get_str(&self, key: &str) -> Result<&str> {
        match self.get(key) {
            None => Err(Error::MissingKey { file: self.name.clone(), key: key.to_string() }),
            Some(Value::String(s)) => Ok(s),
            Some(v) => Err(Error::WrongType {
                file: self.name.clone(),
                key: key.to_string(),
                expected: "string",
                found: v.type_name(),
            }),
        }
    }

    /// Tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn find_tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    /// A required tensor; the error names it and the file.
    pub fn tensor(&self, name: &str) -> Result<&TensorInfo> {
        self.find_tensor(name).ok_or_else(|| Error::MissingTensor { file: self.name.clone(), name: name.to_string() })
    }

    /// The bytes of a tensor of this file (bounds were checked when the file was parsed).
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let start = (self.data_offset + info.offset) as usize;
        &self.bytes[start..start + info.n_bytes as usize]
    }

    /// The bytes of the file before the data section (header, metadata, tensor infos).
    pub fn header_bytes(&self) -> &[u8] {
        &self.bytes[..(self.data_offset as usize).min(self.bytes.len())]
    }
}

/// Conversion of a metadata value to a Rust type for the typed accessors. Integers convert
/// between widths only when the value fits.
pub trait FromValue: Sized {
    const EXPECTED: &'static str;
    fn from_value(v: &Value) -> Option<Self>;
}

macro_rules! integer_from_value {
    ($($t:ty => $name:literal),*) => {$(
        impl FromValue for $t {
            const EXPECTED: &'static str = $name;
            fn from_value(v: &Value) -> Option<Self> {
                v.as_integer().and_then(|i| <$t>::try_from(i).ok())
            }
        }
    )*};
}
integer_from_value!(u32 => "u32", i32 => "i32", u64 => "u64", i64 => "i64", usize => "unsigned integer");

impl FromValue for f32 {
    const EXPECTED: &'static str = "f32";
    fn from_value(v: &Value) -> Option<Self> {
        match *v {
            Value::F32(x) => Some(x),
            Value::F64(x) => Some(x as f32),
            _ => None,
        }
    }
}

impl FromValue for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(v: &Value) -> Option<Self> {
        match *v {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

impl FromValue for String {
    const EXPECTED: &'static str = "string";
    fn from_value(v: &Value) -> Option<Self> {
        v.as_str().map(str::to_string)
    }
}

impl<T: FromValue> FromValue for Vec<T> {
    const EXPECTED: &'static str = "array";
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Array(_, items) => items.iter().map(T::from_value).collect(),
            _ => None,
        }
    }
}

/// Everything before the tensor data.
struct Header {
    version: u32,
    alignment: u64,
    data_offset: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
}

impl Header {
    fn parse(name: &str, bytes: &[u8]) -> Result<Header> {
        let mut c = Cursor { name, bytes, pos: 0 };
        if bytes.len() < 4 {
            return Err(c.error(format!("the file is only {} bytes, too short for a GGUF header", bytes.len())));
        }
        let magic = c.array4("magic")?;
        if magic != GGUF_MAGIC {
            return Err(Error::BadMagic { file: name.to_string(), found: magic });
        }
        let version = c.u32("version")?;
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(Error::Version {
                file: name.to_string(),
                version,
                note: " (a big-endian GGUF; glimpse reads little-endian files)",
            });
        }
        if version != 2 && version != 3 {
            return Err(Error::Version { file: name.to_string(), version, note: "" });
        }
        let n_tensors = c.u64("tensor count")?;
        let n_kv = c.u64("metadata count")?;
        // A metadata pair takes at least a key length, a type and a one-byte value.
        c.check_count(n_kv, 8 + 4 + 1, "metadata count")?;
        let mut metadata: Vec<(String, Value)> = Vec::with_capacity(n_kv as usize);
        let mut seen = HashMap::with_capacity(n_kv as usize);
        for i in 0..n_kv {
            let at = c.pos;
            let key = c.string(&format!("key of metadata pair {i}"))?;
            let ty = c.value_type(&format!("type of '{key}'"))?;
            let value = c.value(ty, &key, 0)?;
            if seen.insert(key.clone(), ()).is_some() {
                return Err(Error::malformed(name, at, format!("metadata key '{key}' appears twice")));
            }
            metadata.push((key, value));
        }
        let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some((_, v)) => match v.as_integer() {
                Some(a) if a > 0 && a <= 1 << 20 && (a & (a - 1)) == 0 => a as u64,
                _ => {
                    return Err(c.error(format!(
                        "general.alignment must be a power of two up to 1 MiB, found {}",
                        v.summary(40)
                    )));
                }
            },
        };

        // A tensor info takes at least a name length, n_dims, one dim, a type and an offset.
        c.check_count(n_tensors, 8 + 4 + 8 + 4 + 8, "tensor count")?;
        let mut tensors: Vec<TensorInfo> = Vec::with_capacity(n_tensors as usize);
        let mut tensor_names = HashMap::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let at = c.pos;
            let t = c.tensor_info(i, alignment)?;
            if tensor_names.insert(t.name.clone(), ()).is_some() {
                return Err(Error::malformed(name, at, format!("tensor '{}' appears twice", t.name)));
            }
            tensors.push(t);
        }

        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let file_len = bytes.len() as u64;
        if !tensors.is_empty() && data_offset > file_len {
            return Err(Error::malformed(
                name,
                file_len,
                format!("the file ends before its tensor data section (which starts at byte {data_offset})"),
            ));
        }
        for t in &tensors {
            let end = data_offset.checked_add(t.offset).and_then(|s| s.checked_add(t.n_bytes));
            match end {
                Some(end) if end <= file_len => {}
                _ => {
                    return Err(Error::Tensor {
                        file: name.to_string(),
                        name: t.name.clone(),
                        what: format!(
                            "data [{}..+{}) runs past the end of the file ({} bytes); the file is truncated or the offset is wrong",
                            data_offset.saturating_add(t.offset),
                            t.n_bytes,
                            file_len
                        ),
                    });
                }
            }
        }
        let mut by_offset: Vec<&TensorInfo> = tensors.iter().filter(|t| t.n_bytes > 0).collect();
        by_offset.sort_by_key(|t| t.offset);
        for pair in by_offset.windows(2) {
            if pair[0].offset + pair[0].n_bytes > pair[1].offset {
                return Err(Error::Tensor {
                    file: name.to_string(),
                    name: pair[1].name.clone(),
                    what: format!("data overlaps tensor '{}'", pair[0].name),
                });
            }
        }
        Ok(Header { version, alignment, data_offset, metadata, tensors })
    }
}

/// A bounds-checked little-endian reader over the file bytes.
struct Cursor<'a> {
    name: &'a str,
    bytes: &'a [u8],
    pos: u64,
}

impl Cursor<'_> {
    fn error(&self, what: impl Into<String>) -> Error {
        Error::malformed(self.name, self.pos, what)
    }

    fn remaining(&self) -> u64 {
        self.bytes.len() as u64 - self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&[u8]> {
        if n > self.remaining() {
            return Err(self.error(format!("truncated: {what} needs {n} bytes but only {} remain", self.remaining())));
        }
        let start = self.pos as usize;
        self.pos += n;
        Ok(&self.bytes[start..start + n as usize])
    }

    /// Rejects a count whose smallest possible encoding would not fit in the rest of the file.
    fn check_count(&self, count: u64, min_item_bytes: u64, what: &str) -> Result<()> {
        if count.saturating_mul(min_item_bytes) > self.remaining() {
            return Err(self.error(format!(
                "{what} {count} is impossible: {count} items need at least {} bytes but only {} remain",
                count.saturating_mul(min_item_bytes),
                self.remaining()
            )));
        }
        Ok(())
    }

    fn array4(&mut self, what: &str) -> Result<[u8; 4]> {
        let b = self.take(4, what)?;
        Ok([b[0], b[1], b[2], b[3]])
    }
    fn array8(&mut self, what: &str) -> Result<[u8; 8]> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array4(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array8(what)?))
    }

    fn string(&mut self, what: &str) -> Result<String> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.remaining() {
            return Err(Error::malformed(
                self.name,
                at,
                format!("{what}: string length {len} is larger than the {} bytes left in the file", self.remaining()),
            ));
        }
        let bytes = self.take(len, what)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(Error::malformed(self.name, at, format!("{what}: string is not valid UTF-8 ({e})"))),
        }
    }

    fn value_type(&mut self, what: &str) -> Result<ValueType> {
        let at = self.pos;
        let id = self.u32(what)?;
        ValueType::from_id(id)
            .ok_or_else(|| Error::malformed(self.name, at, format!("{what}: unknown metadata value type {id}")))
    }

    fn value(&mut self, ty: ValueType, key: &str, depth: u32) -> Result<Value> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.u8(key)?),
            ValueType::I8 => Value::I8(self.u8(key)? as i8),
            ValueType::U16 => Value::U16(self.u16(key)?),
            ValueType::I16 => Value::I16(self.u16(key)? as i16),
            ValueType::U32 => Value::U32(self.u32(key)?),
            ValueType::I32 => Value::I32(self.u32(key)? as i32),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array4(key)?)),
            ValueType::U64 => Value::U64(self.u64(key)?),
            ValueType::I64 => Value::I64(self.u64(key)? as i64),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array8(key)?)),
            ValueType::Bool => {
                let at = self.pos;
                match self.u8(key)? {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => {
                        return Err(Error::malformed(
                            self.name,
                            at,
                            format!("'{key}': bool value {b} is neither 0 nor 1"),
                        ));
                    }
                }
            }
            ValueType::String => Value::String(self.string(&format!("value of '{key}'"))?),
            ValueType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(self.error(format!("'{key}': arrays nested deeper than {MAX_ARRAY_DEPTH} levels")));
                }
                let elem = self.value_type(&format!("element type of '{key}'"))?;
                let n = self.u64(&format!("length of '{key}'"))?;
                self.check_count(n, elem.min_encoded_size(), &format!("'{key}': array length"))?;
                let mut items = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    items.push(self.value(elem, key, depth + 1)?);
                }
                Value::Array(elem, items)
            }
        })
    }

    fn tensor_info(&mut self, index: u64, alignment: u64) -> Result<TensorInfo> {
        let at = self.pos;
        let len_peek = self.u64(&format!("name length of tensor {index}"))?;
        if len_peek > MAX_TENSOR_NAME {
            return Err(Error::malformed(
                self.name,
                at,
                format!("tensor {index}: name length {len_peek} is absurd (limit {MAX_TENSOR_NAME})"),
            ));
        }
        self.pos = at;
        let name = self.string(&format!("name of tensor {index}"))?;
        let err = |what: String| Error::Tensor { file: self.name.to_string(), name: name.clone(), what };
        let n_dims = self.u32(&format!("dimension count of tensor '{name}'"))?;
        if n_dims == 0 || n_dims as usize > MAX_DIMS {
            return Err(err(format!("has {n_dims} dimensions; GGUF tensors have 1 to {MAX_DIMS}")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(self.u64(&format!("dimension {d} of tensor '{name}'"))?);
        }
        let type_id = self.u32(&format!("type of tensor '{name}'"))?;
        let offset = self.u64(&format!("offset of tensor '{name}'"))?;
        let ty = match GgmlType::from_id(type_id) {
            Ok(t) => t,
            Err(Some(known)) => {
                return Err(err(format!("has type {known} (id {type_id}), which glimpse does not support")));
            }
            Err(None) => return Err(err(format!("has unknown ggml type id {type_id}"))),
        };
        // ggml counts elements in i64; the product must fit. Zero dims count as 1 here, so that a
        // zero cannot hide an overflowing product of the others (`n_rows()` multiplies `dims[1..]`).
        dims.iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
            .filter(|&n| n <= i64::MAX as u64)
            .ok_or_else(|| err(format!("dimensions {dims:?} overflow the element count")))?;
        let n_rows: u64 = dims[1..].iter().product(); // cannot overflow: bounded just above
        if !dims[0].is_multiple_of(ty.block_size() as u64) {
            let bs = ty.block_size();
            return Err(err(format!("row length {} is not a multiple of the {ty} block size {bs}", dims[0])));
        }
        let n_bytes = ty
            .row_bytes(dims[0])
            .and_then(|row| row.checked_mul(n_rows))
            .ok_or_else(|| err(format!("dimensions {dims:?} overflow the byte size")))?;
        if offset % alignment != 0 {
            return Err(err(format!("data offset {offset} is not a multiple of the alignment {alignment}")));
        }
        Ok(TensorInfo { name, dims, ty, offset, n_bytes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_inputs_are_errors() {
        for len in 0..24 {
            let mut bytes = b"GGUF\x03\0\0\0".to_vec();
            bytes.resize(24, 0);
            bytes.truncate(len);
            assert!(Gguf::from_bytes("t", bytes).is_err(), "length {len}");
        }
    }

    #[test]
    fn header_with_no_tensors_parses() {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        let g = Gguf::from_bytes("t", bytes).unwrap();
        assert_eq!(g.version(), 3);
        assert!(g.tensors().is_empty());
    }

    #[test]
    fn huge_counts_are_rejected_before_allocating() {
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(u64::MAX.to_le_bytes());
        bytes.extend(u64::MAX.to_le_bytes());
        let e = Gguf::from_bytes("t", bytes).unwrap_err().to_string();
        assert!(e.contains("impossible"), "{e}");
    }
}
