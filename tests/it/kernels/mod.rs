//! Every WGSL kernel against its `reference::ops` twin on random inputs of awkward sizes (and,
//! for weight readers, every GGUF type). Outputs are poisoned first so unwritten elements show.
//! One file per shader.

mod attention;
mod matmul;
mod matvec;

mod argmax;
mod binary;
mod get_rows;
mod im2col;
mod norm;
mod pixel_shuffle;
mod prune;
mod read_peak;
mod rope;
mod topk;
mod unary;
