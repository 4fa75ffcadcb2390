//! Which tensors each part of a model reads, with their expected shapes (ggml order) — resolved
//! once from the config, shared by the GPU loader and the CPU reference so a name is written in
//! one place. Handles the presence checks (biases, CLS, pre/post LN) and the legacy FFN swap.

use crate::gguf::{Error, Gguf, Result, TensorInfo};
use crate::model::config::{ProjectorKind, TextConfig, VisionConfig};
use crate::model::names::*;

/// A Linear layer: weight ggml `[n_in, n_out]` (n_out rows of n_in), optional bias `[n_out]`.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearDesc {
    pub weight: String,
    pub bias: Option<String>,
    pub n_in: usize,
    pub n_out: usize,
}

/// A LayerNorm (weight + bias) or RMSNorm (weight only) over `n` values.
#[derive(Clone, Debug, PartialEq)]
pub struct NormDesc {
    pub weight: String,
    pub bias: Option<String>,
    pub n: usize,
}

/// One ViT block (pre-LN): x += out(attn(ln1(x))); x += down(act(up(ln2(x)))).
#[derive(Clone, Debug, PartialEq)]
pub struct VitBlockDesc {
    pub ln1: NormDesc,
    pub q: LinearDesc,
    pub k: LinearDesc,
    pub v: LinearDesc,
    pub out: LinearDesc,
    pub ln2: NormDesc,
    pub up: LinearDesc,
    pub down: LinearDesc,
}

/// The vision tower's tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct VisionDesc {
    /// Conv kernel ggml `[p, p, 3, n_embd]`, used as a Linear over im2col patches `[3*p*p]`.
    pub patch: LinearDesc,
    pub class_embd: Option<String>,
    /// `[n_embd, n_pos]`.
    pub position: String,
    pub pre_ln: Option<NormDesc>,
    /// The blocks that run (the feature layer's depth).
    pub blocks: Vec<VitBlockDesc>,
    pub post_ln: Option<NormDesc>,
}

/// The projector's tensors.
#[derive(Clone, Debug, PartialEq)]
pub enum ProjectorDesc {
    /// LLaVA: mm.0, GELU, mm.2.
    Mlp { fc1: LinearDesc, fc2: LinearDesc },
    /// idefics3: pixel shuffle by `scale`, then one bias-free Linear `[n_embd * s * s, n_text]`.
    Idefics3 { fc: LinearDesc, scale: usize },
}

/// One decoder layer (llama / qwen2).
#[derive(Clone, Debug, PartialEq)]
pub struct TextLayerDesc {
    pub attn_norm: NormDesc,
    pub q: LinearDesc,
    pub k: LinearDesc,
    pub v: LinearDesc,
    pub out: LinearDesc,
    pub ffn_norm: NormDesc,
    pub gate: LinearDesc,
    pub up: LinearDesc,
    pub down: LinearDesc,
}

/// The text model's tensors.
#[derive(Clone, Debug, PartialEq)]
pub struct TextDesc {
    /// `[n_embd, n_vocab]`: the embedding table, and the output projection when tied.
    pub token_embd: LinearDesc,
    pub layers: Vec<TextLayerDesc>,
    pub output_norm: NormDesc,
    /// `None`: tied to `token_embd`.
    pub output: Option<LinearDesc>,
}

/// Checks that `name` exists with ggml dims `dims` (trailing 1s ignored).
pub fn expect_tensor<'g>(g: &'g Gguf, name: &str, dims: &[usize]) -> Result<&'g TensorInfo> {
    let t = g.tensor(name)?;
    let mut got: Vec<u64> = t.dims.clone();
    while got.len() > dims.len() && got.last() == Some(&1) {
        got.pop();
    }
    let want: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    if got != want {
        return Err(Error::Tensor {
            file: g.name().to_string(),
            name: name.to_string(),
            what: format!("has shape {}, expected {want:?}", t.shape_string()),
        });
    }
    Ok(t)
}

fn linear(g: &Gguf, name: &str, n_in: usize, n_out: usize) -> Result<LinearDesc> {
    expect_tensor(g, &format!("{name}.weight"), &[n_in, n_out])?;
    let bias = format!("{name}.bias");
    let bias = match g.find_tensor(&bias) {
        Some(_) => {
            expect_tensor(g, &bias, &[n_out])?;
            Some(bias)
        }
        None => None,
    };
    Ok(LinearDesc { weight: format!("{name}.weight"), bias, n_in, n_out })
}

fn norm(g: &Gguf, name: &str, n: usize) -> Result<NormDesc> {
    expect_tensor(g, &format!("{name}.weight"), &[n])?;
    let bias = format!("{name}.bias");
    let bias = match g.find_tensor(&bias) {
        Some(_) => {
            expect_tensor(g, &bias, &[n])?;
            Some(bias)
        }
        None => None,
    };
    Ok(NormDesc { weight: format!("{name}.weight"), bias, n })
}

fn strip_weight(name: &str) -> &str {
    name.strip_suffix(".weight").unwrap_or(name)
}

impl VisionDesc {
    pub fn resolve(g: &Gguf, c: &VisionConfig) -> Result<VisionDesc> {
        let d = c.n_embd;
        let p = c.patch_size;
        expect_tensor(g, V_PATCH_EMBD, &[p, p, 3, d])?;
        let patch_bias = g.find_tensor(V_PATCH_EMBD_BIAS).map(|_| V_PATCH_EMBD_BIAS.to_string());
        if patch_bias.is_some() {
            expect_tensor(g, V_PATCH_EMBD_BIAS, &[d])?;
        }
        let patch = LinearDesc { weight: V_PATCH_EMBD.to_string(), bias: patch_bias, n_in: 3 * p * p, n_out: d };
        let class_embd = match g.find_tensor(V_CLASS_EMBD) {
            Some(_) => {
                expect_tensor(g, V_CLASS_EMBD, &[d])?;
                Some(V_CLASS_EMBD.to_string())
            }
            None => None,
        };
        expect_tensor(g, V_POSITION_EMBD, &[d, c.n_pos()])?;
        let pre_ln = if c.has_pre_ln { Some(norm(g, V_PRE_LN, d)?) } else { None };
        let post_ln = if c.has_post_ln && c.n_layer_run == c.n_layer { Some(norm(g, V_POST_LN, d)?) } else { None };
        let mut blocks = Vec::with_capacity(c.n_layer_run);
        for il in 0..c.n_layer_run {
            let name = |t: &str| strip_weight(&vblk(il, t, "weight")).to_string();
            // Trap: old mmproj files have ffn_up / ffn_down swapped (config.ffn_swapped).
            let (up, down) = if c.ffn_swapped { (V_FFN_DOWN, V_FFN_UP) } else { (V_FFN_UP, V_FFN_DOWN) };
            blocks.push(VitBlockDesc {
                ln1: norm(g, &name(V_LN1), d)?,
                q: linear(g, &name(V_ATTN_Q), d, d)?,
                k: linear(g, &name(V_ATTN_K), d, d)?,
                v: linear(g, &name(V_ATTN_V), d, d)?,
                out: linear(g, &name(V_ATTN_OUT), d, d)?,
                ln2: norm(g, &name(V_LN2), d)?,
                up: linear(g, &name(up), d, c.n_ff)?,
                down: linear(g, &name(down), c.n_ff, d)?,
            });
        }
        Ok(VisionDesc { patch, class_embd, position: V_POSITION_EMBD.to_string(), pre_ln, blocks, post_ln })
    }
}

impl ProjectorDesc {
    pub fn resolve(g: &Gguf, c: &VisionConfig) -> Result<ProjectorDesc> {
        Ok(match c.projector {
            ProjectorKind::Mlp => {
                let fc1 = g.tensor(&mm(0, "weight"))?;
                let hidden = fc1.dims.get(1).copied().unwrap_or(0) as usize;
                ProjectorDesc::Mlp {
                    fc1: linear(g, "mm.0", c.n_embd, hidden)?,
                    fc2: linear(g, "mm.2", hidden, c.projection_dim)?,
                }
            }
            ProjectorKind::Idefics3 => {
                let s = c.scale_factor;
                let fc = linear(g, strip_weight(MM_IDEFICS3_FC), c.n_embd * s * s, c.projection_dim)?;
                ProjectorDesc::Idefics3 { fc, scale: s }
            }
        })
    }
}

impl TextDesc {
    pub fn resolve(g: &Gguf, c: &TextConfig) -> Result<TextDesc> {
        let d = c.n_embd;
        let q_dim = c.n_head * c.head_dim;
        let kv_dim = c.n_head_kv * c.head_dim;
        let mut layers = Vec::with_capacity(c.n_layer);
        for il in 0..c.n_layer {
            let name = |t: &str| strip_weight(&blk(il, t, "weight")).to_string();
            layers.push(TextLayerDesc {
                attn_norm: norm(g, &name(ATTN_NORM), d)?,
                q: linear(g, &name(ATTN_Q), d, q_dim)?,
                k: linear(g, &name(ATTN_K), d, kv_dim)?,
                v: linear(g, &name(ATTN_V), d, kv_dim)?,
                out: linear(g, &name(ATTN_OUTPUT), q_dim, d)?,
                ffn_norm: norm(g, &name(FFN_NORM), d)?,
                gate: linear(g, &name(FFN_GATE), d, c.n_ff)?,
                up: linear(g, &name(FFN_UP), d, c.n_ff)?,
                down: linear(g, &name(FFN_DOWN), c.n_ff, d)?,
            });
        }
        let output = if c.tied_embeddings { None } else { Some(linear(g, strip_weight(OUTPUT), d, c.n_vocab)?) };
        Ok(TextDesc {
            token_embd: linear(g, strip_weight(TOKEN_EMBD), d, c.n_vocab)?,
            layers,
            output_norm: norm(g, strip_weight(OUTPUT_NORM), d)?,
            output,
        })
    }
}
