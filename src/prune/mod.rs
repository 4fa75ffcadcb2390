//! Visual-token pruning: the plan a request carries, the selections (VisionZip, the learned
//! trimmer, baselines), what
//! a frame's pruning did (the report and its overlay), and the FLOPs accounting.

pub mod flops;
pub mod frame;
pub mod llm;
pub mod overlay;
pub mod plan;
pub mod report;
pub mod select;
pub mod tokens;
pub mod trimmer;
pub mod windows;
