//! `get_rows.wgsl` against the CPU dequantisation (`gguf::quant::dequantize_to_vec`) of the same
//! rows, for every GGUF type, split weights, and ids with no row.

use glimpse::gguf::{GgmlType, quant};
use glimpse::gpu::kernels::get_rows;
use glimpse::gpu::{Gpu, Recorder};

use crate::gpu::{POISON, Rng, assert_close, gpu, gpu_with_binding_limit};

/// The GPU decoder does the CPU's arithmetic (scale times quant, plus min): a rounding or a
/// fused multiply-add apart at most.
const GET_ROWS_TOL: f32 = 1e-6;

/// Gathers `ids` from a random `[n_out, n_in]` weight of type `ty`; ids >= n_out must give zeros.
fn run_get_rows(gpu: &Gpu, ty: GgmlType, n_in: usize, n_out: usize, ids: &[u32], seed: u64) {
    let mut rng = Rng(seed);
    let raw = rng.vec(n_out * n_in, 0.5);
    let bytes = quant::quantize(ty, &raw).expect("quantize");
    let table = quant::dequantize_to_vec(ty, &bytes).expect("dequantize");
    let want: Vec<f32> = ids
        .iter()
        .flat_map(|&id| match table.get(id as usize * n_in..(id as usize + 1) * n_in) {
            Some(row) if (id as usize) < n_out => row.to_vec(),
            _ => vec![0.0; n_in],
        })
        .collect();
    let w = gpu.upload_weight("token_embd", ty, &[n_in as u64, n_out as u64], &bytes).unwrap();
    let idt = gpu.upload_u32(ids, "ids").unwrap();
    let yt = gpu.upload_f32(&vec![POISON; ids.len() * n_in + 1], "y").unwrap();
    let mut rec = Recorder::new(gpu);
    get_rows(&mut rec, &w, &idt, &yt, ids.len()).unwrap();
    let h = rec.read(&yt, 0, ids.len() * n_in + 1);
    let got = rec.finish().unwrap().f32(h);
    let what = format!("get_rows {ty} n_in={n_in} n_out={n_out} n_ids={} parts={}", ids.len(), w.parts.len());
    assert_eq!(got[ids.len() * n_in], POISON, "{what} wrote past the end");
    assert_close(&what, &got[..ids.len() * n_in], &want, GET_ROWS_TOL);
}

#[test]
fn get_rows_every_type() {
    let Some(gpu) = gpu() else { return };
    for (i, ty) in GgmlType::ALL.into_iter().enumerate() {
        // Widths of one and several blocks (8 and 24 for the unblocked types); repeated ids,
        // the first and last rows, and ids past the end (a zero row each).
        let unit = ty.block_size().max(8);
        for (j, n_in) in [unit, 3 * unit].into_iter().enumerate() {
            let n_out = 37;
            let ids = [5, 0, 36, 5, 37, 12, u32::MAX, 20];
            run_get_rows(gpu, ty, n_in, n_out, &ids, (10 * i + j) as u64);
        }
    }
}

#[test]
fn get_rows_split_weight() {
    // 1 KiB parts: a [576, 40] Q8_0 table (612 bytes per row) has one row per part, a
    // [96, 50] F16 one (192 bytes per row) five rows per part.
    let Some(gpu) = gpu_with_binding_limit(1024) else { return };
    let ids: Vec<u32> = (0..23).map(|i| (i * 7919 % 45) as u32).collect();
    run_get_rows(&gpu, GgmlType::Q8_0, 576, 40, &ids, 1);
    run_get_rows(&gpu, GgmlType::F16, 96, 50, &ids, 2);
}
