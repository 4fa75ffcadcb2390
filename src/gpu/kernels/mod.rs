//! One Rust wrapper per WGSL kernel. Each mirrors its shader's header: a `#[repr(C)]` params
//! struct with the WGSL fields in order, the binding order, and the dispatch arithmetic.

use super::{Caps, Error};

/// The WGSL source of a shader, with the shared block decoders prepended to those that read
/// GGUF weights.
pub fn source(shader: &str, _caps: Caps) -> Result<String, Error> {
    const DEQUANT: &str = include_str!("../../../shaders/dequant.wgsl");
    let (body, reads_blocks) = match shader {
        "matmul" => (include_str!("../../../shaders/matmul.wgsl"), true),
        other => return Err(Error::Shader { shader: other.to_string(), message: "no such shader".into() }),
    };
    Ok(if reads_blocks { format!("{DEQUANT}\n{body}") } else { body.to_string() })
}

pub mod matmul;
pub use matmul::{MatmulOpts, matmul};
