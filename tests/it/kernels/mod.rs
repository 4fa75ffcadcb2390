//! Every WGSL kernel against its `reference::ops` twin on random inputs of awkward sizes (and,
//! for weight readers, every GGUF type). Outputs are poisoned first so unwritten elements show.
//! One file per shader.

mod matmul;
