//! One Rust wrapper per WGSL kernel. Each mirrors its shader's header: a `#[repr(C)]` params
//! struct with the WGSL fields in order, the binding order, and the dispatch arithmetic.

use super::{Caps, Error};

/// The WGSL source of a shader, with the shared block decoders prepended to those that read
/// GGUF weights and the shared epilogue appended to the GEMM and the GEMV.
pub fn source(shader: &str, _caps: Caps) -> Result<String, Error> {
    if !SHADERS.contains(&shader) {
        return Err(Error::Shader { shader: shader.to_string(), message: "no such shader".into() });
    }
    const DEQUANT: &str = include_str!("../../../shaders/dequant.wgsl");
    let (body, reads_blocks) = match shader {
        "matmul" => (include_str!("../../../shaders/matmul.wgsl"), true),
        "norm" => (include_str!("../../../shaders/norm.wgsl"), false),
        "rope" => (include_str!("../../../shaders/rope.wgsl"), false),
        "unary" => (include_str!("../../../shaders/unary.wgsl"), false),
        "binary" => (include_str!("../../../shaders/binary.wgsl"), false),
        "im2col" => (include_str!("../../../shaders/im2col.wgsl"), false),
        "pixel_shuffle" => (include_str!("../../../shaders/pixel_shuffle.wgsl"), false),
        "get_rows" => (include_str!("../../../shaders/get_rows.wgsl"), true),
        "argmax" => (include_str!("../../../shaders/argmax.wgsl"), false),
        "topk" => (include_str!("../../../shaders/topk.wgsl"), false),
        "matvec" => (include_str!("../../../shaders/matvec.wgsl"), true),
        "attention" => (include_str!("../../../shaders/attention.wgsl"), false),
        "gemm_f32_peak" => (include_str!("../../../shaders/gemm_f32_peak.wgsl"), false),
        "read_peak" => (include_str!("../../../shaders/read_peak.wgsl"), false),
        "attention_received" => (include_str!("../../../shaders/attention_received.wgsl"), false),
        "token_pool" => (include_str!("../../../shaders/token_pool.wgsl"), false),
        "token_select" => (include_str!("../../../shaders/token_select.wgsl"), false),
        "token_assign" => (include_str!("../../../shaders/token_assign.wgsl"), false),
        "token_gather" => (include_str!("../../../shaders/token_gather.wgsl"), false),
        "token_windows" => (include_str!("../../../shaders/token_windows.wgsl"), false),
        "token_positions" => (include_str!("../../../shaders/token_positions.wgsl"), false),
        other => return Err(Error::Shader { shader: other.to_string(), message: "no such shader".into() }),
    };
    // The GEMM and the GEMV share their epilogue (and the bindings and Params it uses).
    let epilogue = match shader {
        "matmul" | "matvec" => include_str!("../../../shaders/store_y.wgsl"),
        _ => "",
    };
    let prefix = if reads_blocks { DEQUANT } else { "" };
    Ok(format!("{prefix}\n{body}\n{epilogue}"))
}

/// Every shader `source` knows.
pub const SHADERS: &[&str] = &[
    "matmul",
    "norm",
    "rope",
    "unary",
    "binary",
    "im2col",
    "pixel_shuffle",
    "get_rows",
    "argmax",
    "topk",
    "matvec",
    "attention",
    "gemm_f32_peak",
    "read_peak",
    "attention_received",
    "token_pool",
    "token_select",
    "token_assign",
    "token_gather",
    "token_windows",
    "token_positions",
];

/// Files `source` joins to other shaders rather than builds alone.
pub const SHADER_PARTS: &[&str] = &["dequant", "store_y"];

/// Workgroup counts for `n_groups` groups of a 1-D kernel. Past 65535 (WebGPU's guaranteed
/// per-dimension limit) they fold into a 2-D grid; shaders take the linear group id as
/// `wid.x + wid.y * num_workgroups.x` and guard their index (the grid may hold a few extra).
pub fn grid_1d(n_groups: u32) -> [u32; 3] {
    const MAX: u32 = 65535;
    if n_groups <= MAX {
        return [n_groups, 1, 1];
    }
    let rows = n_groups.div_ceil(MAX);
    [n_groups.div_ceil(rows), rows, 1]
}

pub mod matmul;
pub use matmul::{MatmulOpts, matmul};
pub mod norm;
pub use norm::{NormKind, NormOpts, layer_norm, norm, rms_norm};
pub mod rope;
pub use rope::{RopeArgs, rope};
pub mod unary;
pub use unary::{Unary, unary, unary_at};
pub mod binary;
pub use binary::{BinaryOpts, add, add_with};
pub mod im2col;
pub use im2col::im2col;
pub mod pixel_shuffle;
pub use pixel_shuffle::pixel_shuffle;
pub mod get_rows;
pub use get_rows::get_rows;
pub mod argmax;
pub use argmax::argmax;
pub mod topk;
pub use topk::{TOPK_MAX, topk};
pub mod matvec;
pub use matvec::{MATVEC_MAX_M, matvec};
pub mod attention;
pub use attention::{AttentionArgs, attention};
pub mod attention_received;
pub mod peak;
pub use attention_received::{
    ReceivedArgs, attention_received, attention_received_max, received_max_offset, received_stats_len,
};
pub mod token_pool;
pub use token_pool::{GroupMean, group_mean};
pub mod token_select;
pub use token_select::select_top_k;
pub mod token_assign;
pub use token_assign::assign_targets;
pub mod token_gather;
pub use token_gather::{GatherArgs, gather_merge, gather_rows};
pub mod token_positions;
pub use token_positions::{PositionArgs, token_positions};
pub mod token_windows;
pub use token_windows::window_similarity;
