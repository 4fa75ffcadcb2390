//! `read_peak.wgsl` (a benchmark kernel: the shader read rate `glimpse bench` compares the GEMV
//! with) against the XOR fold on the CPU: a pattern that skipped or repeated a load would flatter
//! the rate. The word after the output must survive. Also the profiled recorder `glimpse bench`
//! breaks a decode step down with.

use glimpse::gpu::Recorder;
use glimpse::gpu::kernels::peak::{ReadPattern, read_peak};

use crate::gpu::{Rng, gpu};

const SENTINEL: u32 = 0xdead_beef;

#[test]
fn read_peak_every_pattern_folds_what_it_reads() {
    let Some(gpu) = gpu() else { return };
    let (threads, per) = (128, 7);
    let mut rng = Rng(11);
    // One vec4 more than is read: it must not count.
    let words: Vec<u32> = (0..4 * (threads * per + 1)).map(|_| rng.next_u64() as u32).collect();
    let vec4 = |i: usize| words[4 * i] ^ words[4 * i + 1] ^ words[4 * i + 2] ^ words[4 * i + 3];
    for pattern in ReadPattern::ALL {
        let want: Vec<u32> = (0..threads)
            .map(|g| {
                (0..per)
                    .map(|i| match pattern {
                        ReadPattern::Runs => vec4(g * per + i),
                        ReadPattern::Strided => vec4(g + i * threads),
                    })
                    .fold(0, |a, b| a ^ b)
            })
            .collect();
        let src = gpu.upload_u32(&words, "src").unwrap();
        let dst = gpu.upload_u32(&vec![SENTINEL; threads + 1], "dst").unwrap();
        let mut rec = Recorder::new(gpu);
        read_peak(&mut rec, &src, &dst, threads, per, pattern).unwrap();
        let h = rec.read(&dst, 0, threads + 1);
        let got = rec.finish().unwrap().u32(h);
        assert_eq!(got[..threads], want[..], "read_peak {pattern:?}");
        assert_eq!(got[threads], SENTINEL, "read_peak {pattern:?} wrote past the end");
    }
    let mut rec = Recorder::new(gpu);
    let (src, dst) = (gpu.tensor(64, "src").unwrap(), gpu.tensor(64, "dst").unwrap());
    assert!(read_peak(&mut rec, &src, &dst, 60, 1, ReadPattern::Runs).is_err(), "threads not a multiple of 64");
    assert!(read_peak(&mut rec, &src, &dst, 64, 2, ReadPattern::Runs).is_err(), "src too short");
}

#[test]
fn profiled_recorder_times_each_dispatch_by_entry() {
    let Some(gpu) = gpu() else { return };
    let (src, dst) = (gpu.tensor(4 * 64, "src").unwrap(), gpu.tensor(64, "dst").unwrap());
    let mut rec = Recorder::profiled(gpu);
    rec.stage("ignored");
    for pattern in [ReadPattern::Runs, ReadPattern::Strided, ReadPattern::Runs] {
        read_peak(&mut rec, &src, &dst, 64, 1, pattern).unwrap();
    }
    let done = rec.finish().unwrap();
    if !gpu.caps.timestamps {
        assert!(done.stage_ms.is_empty());
        return;
    }
    let names: Vec<&str> = done.stage_ms.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["read_peak_runs", "read_peak_strided"]);
    assert_eq!(done.stage_passes, [2, 1]);
    assert!(done.stage_ms.iter().all(|(_, ms)| *ms >= 0.0));
}
