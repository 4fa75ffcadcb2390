//! Visual-token pruning (to come: VisionZip, MustDrop, adaptive trimming, baselines) and the
//! FLOPs accounting every frame report uses. Pure: no model files, no GPU imports here yet.

pub mod flops;
