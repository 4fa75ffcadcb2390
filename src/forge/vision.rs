//! The mmproj file: keys and tensors as llama.cpp's converters write them — conversion/base.py
//! `MmprojModel` + conversion/smolvlm.py for idefics3 (and a modern `mlp` file), or the legacy
//! LLaVA script tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py when `legacy` is set.
//! Names: tools/mtmd/clip-impl.h; shapes in ggml order (shared-notes/smolvlm-gguf.md §1b, §5).

use crate::model::names::*;

use crate::gguf::GgmlType;

use super::plan::{FilePlan, Init, linear, llama_ftype};
use super::spec::{Projector, VisionSpec};

const RESIDUAL_GAIN: f32 = 0.5;
const EMBD_STD: f32 = 0.02;
const NORM_STD: f32 = 0.05;
const BIAS_STD: f32 = 0.02;

/// `n_text` is the text model's width (`clip.vision.projection_dim`, the projector's output) and
/// `n_vocab` its vocabulary (a trimmer's question table has a row per token).
pub fn mmproj_plan(v: &VisionSpec, n_text: u32, n_vocab: u32) -> FilePlan {
    let mut f = FilePlan::default();
    let projector = v.projector.name();
    f.set(GENERAL_ARCHITECTURE, ARCH_CLIP);
    if v.legacy {
        // The legacy script's 19 keys, in its order (no general.type: it predates it).
        f.set(CLIP_HAS_TEXT_ENCODER, false);
        f.set(CLIP_HAS_VISION_ENCODER, true);
        f.set(CLIP_HAS_LLAVA_PROJECTOR, true);
        f.set(GENERAL_FILE_TYPE, llama_ftype(v.qtype.attn));
        f.set(GENERAL_NAME, v.name.as_str());
        f.set(GENERAL_DESCRIPTION, "image encoder for LLaVA");
        f.set(CLIP_PROJECTOR_TYPE, projector);
        f.set(CLIP_VISION_IMAGE_SIZE, v.image_size);
        f.set(CLIP_VISION_PATCH_SIZE, v.patch_size);
        f.set(CLIP_VISION_EMBEDDING_LENGTH, v.n_embd);
        f.set(CLIP_VISION_FEED_FORWARD_LENGTH, v.n_ff);
        f.set(CLIP_VISION_PROJECTION_DIM, n_text);
        f.set(CLIP_VISION_HEAD_COUNT, v.n_head);
        f.set(CLIP_VISION_LN_EPS, v.eps);
        f.set(CLIP_VISION_BLOCK_COUNT, v.n_layer);
        f.set(CLIP_VISION_IMAGE_MEAN, v.image_mean.to_vec());
        f.set(CLIP_VISION_IMAGE_STD, v.image_std.to_vec());
        f.set(CLIP_USE_GELU, v.use_gelu);
    } else {
        f.set(GENERAL_TYPE, TYPE_MMPROJ);
        f.set(GENERAL_NAME, v.name.as_str());
        f.set(GENERAL_FILE_TYPE, llama_ftype(v.qtype.attn));
        f.set(CLIP_HAS_VISION_ENCODER, true);
        f.set(CLIP_VISION_PROJECTION_DIM, n_text);
        f.set(CLIP_VISION_IMAGE_SIZE, v.image_size);
        f.set(CLIP_VISION_PATCH_SIZE, v.patch_size);
        f.set(CLIP_VISION_EMBEDDING_LENGTH, v.n_embd);
        f.set(CLIP_VISION_FEED_FORWARD_LENGTH, v.n_ff);
        f.set(CLIP_VISION_BLOCK_COUNT, v.n_layer);
        f.set(CLIP_VISION_HEAD_COUNT, v.n_head);
        f.set(CLIP_VISION_IMAGE_MEAN, v.image_mean.to_vec());
        f.set(CLIP_VISION_IMAGE_STD, v.image_std.to_vec());
        f.set(CLIP_PROJECTOR_TYPE, projector);
        f.set(CLIP_VISION_LN_EPS, v.eps);
        if v.projector == Projector::Idefics3 {
            f.set(CLIP_VISION_SCALE_FACTOR, v.scale_factor);
        }
        f.set(CLIP_USE_GELU, v.use_gelu);
        if let Some(size) = v.preproc_image_size {
            f.set(CLIP_VISION_PREPROC_IMAGE_SIZE, size);
        }
    }
    f.set(GENERAL_QUANTIZATION_VERSION, 2u32);

    let (d, ff, p) = (v.n_embd, v.n_ff, v.patch_size);
    let q = v.qtype;
    let norm = Init::Ones { std: NORM_STD };
    let bias = Init::Normal { std: BIAS_STD };
    let ln = |f: &mut FilePlan, prefix: &str| {
        f.vector(format!("{prefix}.weight"), d, norm);
        f.vector(format!("{prefix}.bias"), d, bias);
    };
    if v.cls {
        f.vector(V_CLASS_EMBD.into(), d, Init::Normal { std: EMBD_STD });
    }
    // Conv kernel [out = n_embd, in = 3, p, p] in PyTorch; ggml ne = [p, p, 3, n_embd].
    f.weight(V_PATCH_EMBD.into(), &[p, p, 3, d], q.embd, linear(p * p * 3, 1.0));
    if v.patch_bias {
        f.vector(V_PATCH_EMBD_BIAS.into(), d, bias);
    }
    // ne = [n_embd, n_pos]; with CLS, row 0 is the class token's.
    f.weight(V_POSITION_EMBD.into(), &[d, v.n_pos()], q.embd, Init::Normal { std: EMBD_STD });
    if v.pre_ln {
        ln(&mut f, V_PRE_LN);
    }
    // The legacy script stores mlp.fc1 ([n_embd -> n_ff]) as `ffn_down` and fc2 as `ffn_up`;
    // clip.cpp swaps them back when `ffn_down.ne[0] == n_embd` (DESIGN.md trap).
    let (fc1, fc2) = if v.legacy { (V_FFN_DOWN, V_FFN_UP) } else { (V_FFN_UP, V_FFN_DOWN) };
    for i in 0..v.n_layer as usize {
        for (name, gain) in [(V_ATTN_Q, 1.0), (V_ATTN_K, 1.0), (V_ATTN_V, 1.0), (V_ATTN_OUT, RESIDUAL_GAIN)] {
            f.weight(vblk(i, name, "weight"), &[d, d], q.attn, linear(d, gain));
            f.vector(vblk(i, name, "bias"), d, bias);
        }
        ln(&mut f, &format!("v.blk.{i}.{V_LN1}"));
        f.weight(vblk(i, fc1, "weight"), &[d, ff], q.ffn, linear(d, 1.0));
        f.vector(vblk(i, fc1, "bias"), ff, bias);
        f.weight(vblk(i, fc2, "weight"), &[ff, d], q.ffn, linear(ff, RESIDUAL_GAIN));
        f.vector(vblk(i, fc2, "bias"), d, bias);
        ln(&mut f, &format!("v.blk.{i}.{V_LN2}"));
    }
    if v.post_ln {
        ln(&mut f, V_POST_LN);
    }
    match v.projector {
        Projector::Idefics3 => {
            // Pixel shuffle concatenates s x s patches: ne = [n_embd * s * s, n_text], no bias.
            let d_in = d * v.scale_factor * v.scale_factor;
            f.weight(MM_IDEFICS3_FC.into(), &[d_in, n_text], q.proj, linear(d_in, 1.0));
        }
        Projector::Mlp => {
            f.weight(mm(0, "weight"), &[d, n_text], q.proj, linear(d, 1.0));
            f.vector(mm(0, "bias"), n_text, bias);
            f.weight(mm(2, "weight"), &[n_text, n_text], q.proj, linear(n_text, 1.0));
            f.vector(mm(2, "bias"), n_text, bias);
        }
    }
    if let Some(hidden) = v.trimmer {
        let width = v.candidate_width();
        // Large: the question mean averages several rows, and a forged trimmer's pick should
        // depend on the question.
        f.weight(TRIM_TOKEN_EMBD.into(), &[hidden, n_vocab], GgmlType::F32, Init::Normal { std: 4.0 });
        f.weight(TRIM_FC1.into(), &[width, hidden], GgmlType::F32, linear(width, 1.0));
        f.vector(TRIM_FC1_BIAS.into(), hidden, bias);
        f.weight(TRIM_FC2.into(), &[hidden, 1], GgmlType::F32, linear(hidden, 1.0));
    }
    f
}
