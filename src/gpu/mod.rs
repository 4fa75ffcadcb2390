//! The GPU layer: a wgpu device, buffers, a dispatch recorder, and one wrapper per WGSL kernel.
//! It knows ops, not models or pruning methods.

mod buffer;
mod context;
pub mod kernels;
mod recorder;

pub use buffer::{Tensor, Weight, WeightPart};
pub use context::{Caps, Gpu, GpuOptions, PipelineKey, describe};
pub use recorder::{Finished, ReadHandle, Recorder};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", no_adapter_message(.wanted, .available))]
    NoAdapter { wanted: Option<String>, available: Vec<String> },
    #[error("cannot open a device on {adapter}: {message}")]
    Device { adapter: String, message: String },
    #[error("shader {shader} failed to compile: {message}")]
    Shader { shader: String, message: String },
    #[error("{what} needs {bytes} bytes, over the device's {limit}-byte storage binding limit")]
    TooLarge { what: String, bytes: u64, limit: u64 },
    #[error("kernel {kernel}: {groups:?} workgroups exceed the device limit of {max} per dimension")]
    Dispatch { kernel: String, groups: [u32; 3], max: u32 },
    #[error("GPU error: {0}")]
    Wgpu(String),
    /// Arguments a kernel cannot take (shapes from a model file that glimpse cannot run).
    #[error("kernel {kernel}: {what}")]
    Invalid { kernel: &'static str, what: String },
    #[error("a GPU lock was poisoned by an earlier panic")]
    Poisoned,
}

fn no_adapter_message(wanted: &Option<String>, available: &[String]) -> String {
    let list = if available.is_empty() {
        "none found (on Linux, install Mesa's Vulkan drivers: apt-get install mesa-vulkan-drivers)".to_string()
    } else {
        available.join("; ")
    };
    match wanted {
        Some(w) => format!("no GPU adapter matches '{w}' (GLIMPSE_ADAPTER / --adapter); available: {list}"),
        None => format!("no GPU adapter found; available: {list}"),
    }
}
