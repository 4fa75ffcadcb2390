//! A forged file before it is written: metadata in order, and each tensor's name, ggml shape,
//! type and how its values are drawn. Cheap to build (no tensor data), so tests compare a plan
//! with llama.cpp's layout without writing hundreds of megabytes; `into_writer` then attaches
//! lazy generators so writing holds one tensor in memory at a time.

use std::collections::HashMap;
use std::sync::Arc;

use crate::gguf::{GgmlType, GgufWriter, Value, quant};

use super::ForgeError;
use super::rng::Rng;

/// How a tensor's values are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// normal(0, std): weights (std = gain / sqrt(fan_in)), embeddings, biases.
    Normal { std: f32 },
    /// normal(1, std): norm weights.
    Ones { std: f32 },
}

/// One tensor of a plan. `dims` are in ggml order (`dims[0]` contiguous).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub init: Init,
}

/// One file of a plan.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FilePlan {
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorPlan>,
}

impl FilePlan {
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.metadata.push((key.to_string(), value.into()));
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A 1-D tensor (norm, bias, class embedding): always F32, as every converter writes them
    /// (base.py prepare_tensors: `n_dims <= 1` -> F32).
    pub fn vector(&mut self, name: String, n: u32, init: Init) {
        self.tensors.push(TensorPlan { name, dims: vec![n as u64], ty: GgmlType::F32, init });
    }

    /// A weight of type `ty`, or the type llama.cpp would use when `ty` cannot divide its rows.
    pub fn weight(&mut self, name: String, dims: &[u32], ty: GgmlType, init: Init) {
        let ty = fit_type(ty, dims[0] as u64);
        self.tensors.push(TensorPlan { name, dims: dims.iter().map(|&d| d as u64).collect(), ty, init });
    }

    /// A writer holding this plan's metadata and lazily generated tensors.
    pub fn into_writer(self, seed: u64) -> Result<GgufWriter, ForgeError> {
        self.writer_with(|t| {
            let (name, n, init) = (t.name.clone(), t.n_elements(), t.init);
            Ok(Box::new(move || values(seed, &name, n, init)))
        })
    }

    /// A writer holding this plan's metadata and the given values (ggml order, by tensor name) of
    /// every tensor: how a trained model is written in exactly the forged layout.
    pub fn into_writer_from(self, trained: Arc<HashMap<String, Vec<f32>>>) -> Result<GgufWriter, ForgeError> {
        self.writer_with(|t| match trained.get(&t.name) {
            Some(v) if v.len() == t.n_elements() => {
                let (trained, name) = (trained.clone(), t.name.clone());
                Ok(Box::new(move || trained[&name].clone()))
            }
            Some(v) => Err(ForgeError::Plan(format!("{}: {} values for {} elements", t.name, v.len(), t.n_elements()))),
            None => Err(ForgeError::Plan(format!("no values for tensor {}", t.name))),
        })
    }

    /// The writer, each tensor's f32 values made (lazily) by the generator `source` returns.
    fn writer_with(self, source: impl Fn(&TensorPlan) -> Result<Values, ForgeError>) -> Result<GgufWriter, ForgeError> {
        let mut w = GgufWriter::new();
        for (key, value) in self.metadata {
            w.set(&key, value);
        }
        for t in self.tensors {
            check_quantizer(t.ty)?;
            let make = source(&t)?;
            let ty = t.ty;
            w.add_tensor_lazy(&t.name, &t.dims, ty, move || encode(ty, &make()))
                .map_err(|e| ForgeError::Plan(e.to_string()))?;
        }
        Ok(w)
    }
}

/// Makes one tensor's f32 values when the writer gets to it.
type Values = Box<dyn FnOnce() -> Vec<f32> + Send>;

impl TensorPlan {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
}

/// Normal(mean, std) weight = gain / sqrt(fan_in): keeps activations O(1) through the layers.
pub fn linear(fan_in: u32, gain: f32) -> Init {
    Init::Normal { std: gain / (fan_in as f32).sqrt() }
}

/// The type a tensor with rows of `ne0` elements gets when `ty` is asked for. Follows
/// llama.cpp `src/llama-quant.cpp` (`llama_tensor_get_type`, "convert_incompatible_tensor"):
/// a K-quant whose 256-block does not divide the row falls back Q4_K -> Q5_0, Q5_K -> Q5_1,
/// Q6_K -> Q8_0, and to F16 if that block size does not divide it either. llama-quant throws for
/// other types that do not divide; forge writes F16 there so any dims still forge.
pub fn fit_type(ty: GgmlType, ne0: u64) -> GgmlType {
    use GgmlType::*;
    if ne0.is_multiple_of(ty.block_size() as u64) {
        return ty;
    }
    let fallback = match ty {
        Q4K => Q5_0,
        Q5K => Q5_1,
        Q6K => Q8_0,
        _ => F16,
    };
    if ne0.is_multiple_of(fallback.block_size() as u64) { fallback } else { F16 }
}

/// `general.file_type`: llama.cpp's `llama_ftype` for a requested type. K types map to their
/// `_M` recipe ids, as llama-quantize writes them (Q4_K -> MOSTLY_Q4_K_M = 15).
pub fn llama_ftype(ty: GgmlType) -> u32 {
    use GgmlType::*;
    match ty {
        F32 => 0,
        F16 => 1,
        Q4_0 => 2,
        Q4_1 => 3,
        Q8_0 => 7,
        Q5_0 => 8,
        Q5_1 => 9,
        Q4K => 15,
        Q5K => 17,
        Q6K => 18,
        BF16 => 32,
    }
}

/// The values of one tensor: a pure function of (seed, name, init).
fn values(seed: u64, name: &str, n: usize, init: Init) -> Vec<f32> {
    let mut v = vec![0f32; n];
    let mut rng = Rng::for_name(seed, name);
    match init {
        Init::Normal { std } => rng.fill_normal(&mut v, 0.0, std),
        Init::Ones { std } => rng.fill_normal(&mut v, 1.0, std),
    }
    v
}

fn encode(ty: GgmlType, v: &[f32]) -> Vec<u8> {
    match ty {
        GgmlType::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        GgmlType::F16 => v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect(),
        GgmlType::BF16 => v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect(),
        // `check_quantizer` ran for this type before the generator was built, and every row
        // length was fitted to the block size by `fit_type`.
        _ => quant::quantize(ty, v).expect("quantizer checked in into_writer"),
    }
}

/// Fails early, with a clear error, if the CPU quantiser cannot make `ty` (rather than inside
/// a lazy generator halfway through writing).
fn check_quantizer(ty: GgmlType) -> Result<(), ForgeError> {
    if ty.is_quantized() {
        quant::quantize(ty, &vec![0.5; ty.block_size()])
            .map_err(|e| ForgeError::Quantize { ty, msg: e.to_string() })?;
    }
    Ok(())
}
