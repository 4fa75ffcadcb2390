//! GPU buffers: f32/u32 activation tensors, and GGUF weights uploaded as their raw blocks, split
//! by rows when a tensor is larger than one storage binding may be.

use wgpu::util::DeviceExt;

use super::{Error, Gpu};
use crate::gguf::GgmlType;

/// A storage buffer of 4-byte elements (f32 activations, u32 ids). Cheap to clone (a handle).
#[derive(Clone, Debug)]
pub struct Tensor {
    pub(crate) buffer: wgpu::Buffer,
    len: usize,
}

impl Tensor {
    /// Number of 4-byte elements.
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
    pub fn bytes(&self) -> u64 {
        self.buffer.size()
    }
}

const STORAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

/// One row range of a weight, in its own buffer: rows `row_start..row_start + n_rows`.
#[derive(Clone, Debug)]
pub struct WeightPart {
    pub(crate) buffer: wgpu::Buffer,
    pub row_start: usize,
    pub n_rows: usize,
}

/// A weight matrix in its GGUF encoding: `n_out` rows of `n_in` elements (ggml `ne = [n_in, n_out]`;
/// higher ggml dims fold into the rows). Split into parts that each fit one storage binding.
#[derive(Clone, Debug)]
pub struct Weight {
    pub name: String,
    pub ty: GgmlType,
    pub n_in: usize,
    pub n_out: usize,
    pub parts: Vec<WeightPart>,
}

impl Weight {
    pub fn row_bytes(&self) -> usize {
        self.n_in / self.ty.block_size() * self.ty.block_bytes()
    }
    pub fn bytes(&self) -> u64 {
        (self.row_bytes() * self.n_out) as u64
    }
}

impl Gpu {
    /// An uninitialised tensor of `len` 4-byte elements.
    pub fn tensor(&self, len: usize, label: &str) -> Result<Tensor, Error> {
        let size = (len.max(1) * 4) as u64;
        if size > self.max_binding_bytes() {
            return Err(Error::TooLarge { what: label.to_string(), bytes: size, limit: self.max_binding_bytes() });
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: STORAGE,
            mapped_at_creation: false,
        });
        self.count_allocation(size);
        Ok(Tensor { buffer, len })
    }

    fn tensor_from_bytes(&self, bytes: &[u8], len: usize, label: &str) -> Result<Tensor, Error> {
        if bytes.len() as u64 > self.max_binding_bytes() {
            return Err(Error::TooLarge {
                what: label.to_string(),
                bytes: bytes.len() as u64,
                limit: self.max_binding_bytes(),
            });
        }
        let contents: &[u8] = if bytes.is_empty() { &[0; 4] } else { bytes };
        let buffer = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: STORAGE,
        });
        self.count_allocation(buffer.size());
        Ok(Tensor { buffer, len })
    }

    pub fn upload_f32(&self, data: &[f32], label: &str) -> Result<Tensor, Error> {
        self.tensor_from_bytes(bytemuck::cast_slice(data), data.len(), label)
    }

    pub fn upload_u32(&self, data: &[u32], label: &str) -> Result<Tensor, Error> {
        self.tensor_from_bytes(bytemuck::cast_slice(data), data.len(), label)
    }

    /// Overwrites elements of `t` from `offset` with `data` (ordered before the next submit).
    pub fn write_f32(&self, t: &Tensor, offset: usize, data: &[f32]) {
        self.queue.write_buffer(&t.buffer, (offset * 4) as u64, bytemuck::cast_slice(data));
    }

    /// Overwrites elements of `t` from `offset` with `data` (ordered before the next submit).
    pub fn write_u32(&self, t: &Tensor, offset: usize, data: &[u32]) {
        self.queue.write_buffer(&t.buffer, (offset * 4) as u64, bytemuck::cast_slice(data));
    }

    /// Uploads a GGUF tensor's bytes as-is. `dims` in ggml order: `dims[0]` is the row length and
    /// the rest fold into rows (so a conv kernel must be given as `[p * p * 3, n]`).
    /// Tensors larger than one binding are split by whole rows (rows hold whole blocks).
    pub fn upload_weight(&self, name: &str, ty: GgmlType, dims: &[u64], bytes: &[u8]) -> Result<Weight, Error> {
        let n_in = dims[0] as usize;
        let n_out = dims[1..].iter().product::<u64>() as usize;
        let row_bytes = n_in / ty.block_size() * ty.block_bytes();
        if row_bytes * n_out != bytes.len() {
            return Err(Error::TooLarge {
                what: format!("{name}: size mismatch"),
                bytes: bytes.len() as u64,
                limit: 0,
            });
        }
        // Keep 4-byte slack so a part's size can be rounded up to whole u32 words.
        let rows_per_part =
            ((self.max_weight_part_bytes() as usize).saturating_sub(4) / row_bytes.max(1)).min(n_out.max(1));
        if rows_per_part == 0 {
            return Err(Error::TooLarge {
                what: format!("one row of weight '{name}'"),
                bytes: row_bytes as u64,
                limit: self.max_weight_part_bytes(),
            });
        }
        let mut parts = Vec::new();
        let mut row_start = 0;
        while row_start < n_out.max(1) {
            let n_rows = rows_per_part.min(n_out - row_start);
            let chunk = &bytes[row_start * row_bytes..(row_start + n_rows) * row_bytes];
            let size = (chunk.len() as u64).next_multiple_of(4).max(4);
            let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(name),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: true,
            });
            {
                let mut view = buffer.get_mapped_range_mut(..).map_err(|e| Error::Wgpu(e.to_string()))?;
                view.slice(..chunk.len()).copy_from_slice(chunk);
            }
            buffer.unmap();
            self.count_allocation(size);
            parts.push(WeightPart { buffer, row_start, n_rows });
            row_start += n_rows;
            if n_out == 0 {
                break;
            }
        }
        Ok(Weight { name: name.to_string(), ty, n_in, n_out, parts })
    }
}
