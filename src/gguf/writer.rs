//! GGUF writer (version 3), used by `glimpse forge` and the tests. Tensor data may be produced
//! lazily, one tensor at a time, so writing a large model never holds all of it in memory.

use std::io::{self, Write};
use std::path::Path;

use super::reader::{DEFAULT_ALIGNMENT, MAX_ARRAY_DEPTH};
use super::types::GgmlType;
use super::value::Value;

/// Tensor bytes, either ready or made on demand when the file is written.
pub enum TensorData {
    Bytes(Vec<u8>),
    Lazy(Box<dyn FnOnce() -> Vec<u8> + Send>),
}

struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    n_bytes: u64,
    data: TensorData,
}

/// Collects metadata and tensors, then writes them in one pass.
pub struct GgufWriter {
    alignment: u64,
    metadata: Vec<(String, Value)>,
    tensors: Vec<PendingTensor>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    pub fn new() -> Self {
        GgufWriter { alignment: DEFAULT_ALIGNMENT, metadata: Vec::new(), tensors: Vec::new() }
    }

    /// Sets a metadata value, replacing an earlier one with the same key (order of first set is kept).
    /// `general.alignment` also sets the data alignment.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        if key == "general.alignment"
            && let Some(a) = value.as_integer().filter(|&a| a > 0 && (a & (a - 1)) == 0)
        {
            self.alignment = a as u64;
        }
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    pub fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }

    /// Adds a tensor with its bytes. `dims` are in ggml order (`dims[0]` contiguous).
    pub fn add_tensor(&mut self, name: &str, dims: &[u64], ty: GgmlType, data: Vec<u8>) -> io::Result<()> {
        let n_bytes = tensor_bytes(name, dims, ty)?;
        if data.len() as u64 != n_bytes {
            return Err(invalid(format!("tensor '{name}': {} bytes given, {ty} {dims:?} needs {n_bytes}", data.len())));
        }
        self.push(name, dims, ty, n_bytes, TensorData::Bytes(data))
    }

    /// Adds a tensor whose bytes are made by `make` when the file is written.
    pub fn add_tensor_lazy(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        make: impl FnOnce() -> Vec<u8> + Send + 'static,
    ) -> io::Result<()> {
        let n_bytes = tensor_bytes(name, dims, ty)?;
        self.push(name, dims, ty, n_bytes, TensorData::Lazy(Box::new(make)))
    }

    fn push(&mut self, name: &str, dims: &[u64], ty: GgmlType, n_bytes: u64, data: TensorData) -> io::Result<()> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid(format!("tensor '{name}' added twice")));
        }
        self.tensors.push(PendingTensor { name: name.to_string(), dims: dims.to_vec(), ty, n_bytes, data });
        Ok(())
    }

    /// Writes the file to `path` atomically: a temporary file beside it is renamed into place on
    /// success, so a failed write never leaves a half-written model under the final name.
    pub fn write_file(self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let tmp = path.with_extension("gguf.partial");
        let result = (|| {
            let mut out = io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
            self.write_to(&mut out)?;
            out.into_inner().map_err(|e| e.into_error())?.sync_all()
        })();
        match result {
            Ok(()) => std::fs::rename(&tmp, path),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    /// Writes the whole file to `out`.
    pub fn write_to(self, out: &mut impl Write) -> io::Result<()> {
        self.check_metadata()?;
        let mut out = Counting { inner: out, pos: 0 };
        out.put(b"GGUF")?;
        out.put(&3u32.to_le_bytes())?;
        out.put(&(self.tensors.len() as u64).to_le_bytes())?;
        out.put(&(self.metadata.len() as u64).to_le_bytes())?;
        for (key, value) in &self.metadata {
            let mut buf = Vec::new();
            encode_string(&mut buf, key);
            buf.extend(value.value_type().id().to_le_bytes());
            encode_value(&mut buf, value);
            out.put(&buf)?;
        }
        let mut offset = 0u64;
        for t in &self.tensors {
            let mut buf = Vec::new();
            encode_string(&mut buf, &t.name);
            buf.extend((t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                buf.extend(d.to_le_bytes());
            }
            buf.extend(t.ty.id().to_le_bytes());
            buf.extend(offset.to_le_bytes());
            out.put(&buf)?;
            offset = (offset + t.n_bytes).next_multiple_of(self.alignment);
        }
        out.pad_to(self.alignment)?;
        for t in self.tensors {
            let bytes = match t.data {
                TensorData::Bytes(b) => b,
                TensorData::Lazy(make) => make(),
            };
            if bytes.len() as u64 != t.n_bytes {
                return Err(invalid(format!(
                    "tensor '{}': generator made {} bytes, expected {}",
                    t.name,
                    bytes.len(),
                    t.n_bytes
                )));
            }
            out.put(&bytes)?;
            out.pad_to(self.alignment)?;
        }
        Ok(())
    }
}

impl GgufWriter {
    /// Refuses metadata the reader (or llama.cpp) would reject, before writing anything: an array
    /// item not of its array's element type (it would be encoded as garbage), arrays nested deeper
    /// than the reader allows, and a `general.alignment` that is not a u32 power of two up to 1 MiB
    /// (llama.cpp reads the key with `gguf_get_val_u32`, which asserts the type).
    fn check_metadata(&self) -> io::Result<()> {
        fn check_items(v: &Value, depth: u32) -> Result<(), String> {
            let Value::Array(ty, items) = v else { return Ok(()) };
            if depth >= MAX_ARRAY_DEPTH {
                return Err(format!("arrays nested deeper than {MAX_ARRAY_DEPTH} levels"));
            }
            for item in items {
                if item.value_type() != *ty {
                    return Err(format!("an array<{ty}> holds a {} item", item.type_name()));
                }
                check_items(item, depth + 1)?;
            }
            Ok(())
        }
        for (key, value) in &self.metadata {
            check_items(value, 0).map_err(|what| invalid(format!("metadata key '{key}': {what}")))?;
            if key == "general.alignment" {
                match *value {
                    Value::U32(a) if a.is_power_of_two() && a <= 1 << 20 => {}
                    _ => {
                        let found = format!("{} {}", value.type_name(), value.summary(40));
                        let what = "must be a u32 power of two up to 1 MiB";
                        return Err(invalid(format!("general.alignment {what}, found {found}")));
                    }
                }
            }
        }
        Ok(())
    }
}

/// A writer that knows its position, for alignment padding.
struct Counting<'a, W: Write> {
    inner: &'a mut W,
    pos: u64,
}

impl<W: Write> Counting<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.pos += bytes.len() as u64;
        self.inner.write_all(bytes)
    }

    fn pad_to(&mut self, alignment: u64) -> io::Result<()> {
        let n = self.pos.next_multiple_of(alignment) - self.pos;
        self.put(&vec![0u8; n as usize])
    }
}

fn tensor_bytes(name: &str, dims: &[u64], ty: GgmlType) -> io::Result<u64> {
    if dims.is_empty() || dims.len() > super::reader::MAX_DIMS {
        return Err(invalid(format!("tensor '{name}': {} dimensions", dims.len())));
    }
    if !dims[0].is_multiple_of(ty.block_size() as u64) {
        let n = dims[0];
        return Err(invalid(format!("tensor '{name}': row length {n} is not a multiple of the {ty} block size")));
    }
    dims.iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d.max(1)))
        .filter(|&n| n <= i64::MAX as u64)
        .and_then(|_| ty.row_bytes(dims[0])?.checked_mul(dims[1..].iter().product()))
        .ok_or_else(|| invalid(format!("tensor '{name}': dimensions {dims:?} overflow")))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

fn encode_string(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u64).to_le_bytes());
    buf.extend(s.as_bytes());
}

fn encode_value(buf: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => buf.push(*x),
        Value::I8(x) => buf.push(*x as u8),
        Value::U16(x) => buf.extend(x.to_le_bytes()),
        Value::I16(x) => buf.extend(x.to_le_bytes()),
        Value::U32(x) => buf.extend(x.to_le_bytes()),
        Value::I32(x) => buf.extend(x.to_le_bytes()),
        Value::F32(x) => buf.extend(x.to_le_bytes()),
        Value::Bool(x) => buf.push(*x as u8),
        Value::String(s) => encode_string(buf, s),
        Value::Array(ty, items) => {
            buf.extend(ty.id().to_le_bytes());
            buf.extend((items.len() as u64).to_le_bytes());
            for item in items {
                encode_value(buf, item);
            }
        }
        Value::U64(x) => buf.extend(x.to_le_bytes()),
        Value::I64(x) => buf.extend(x.to_le_bytes()),
        Value::F64(x) => buf.extend(x.to_le_bytes()),
    }
}
