//! Batches kernel dispatches into one submit: parameters go into one uniform arena, each named
//! stage becomes a compute pass (timed with timestamp queries when the device has them), and
//! readbacks are copied out at the end. The CPU waits once, in `finish`. A profiled recorder
//! times every dispatch instead, each in a pass of its own named by its entry point.

use bytemuck::Pod;

use super::{Error, Gpu, PipelineKey, Tensor};

struct Dispatch {
    pipeline: std::sync::Arc<wgpu::ComputePipeline>,
    buffers: Vec<wgpu::Buffer>,
    params_offset: u64,
    params_size: u64,
    groups: [u32; 3],
}

enum Op {
    Stage(String),
    Dispatch(Dispatch),
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
}

/// What `finish` returns: GPU milliseconds per stage (when timestamps exist) and readback bytes.
#[derive(Debug, Default)]
pub struct Finished {
    pub stage_ms: Vec<(String, f64)>,
    /// Passes summed into each `stage_ms` entry (a profiled recorder's dispatches per entry).
    pub stage_passes: Vec<usize>,
    readbacks: Vec<Vec<u8>>,
}

impl Finished {
    pub fn f32(&self, handle: ReadHandle) -> Vec<f32> {
        bytemuck::pod_collect_to_vec(&self.readbacks[handle.0])
    }
    pub fn u32(&self, handle: ReadHandle) -> Vec<u32> {
        bytemuck::pod_collect_to_vec(&self.readbacks[handle.0])
    }
}

/// Names one readback of a recorder.
#[derive(Clone, Copy, Debug)]
pub struct ReadHandle(usize);

pub struct Recorder<'g> {
    gpu: &'g Gpu,
    uniforms: Vec<u8>,
    ops: Vec<Op>,
    reads: Vec<(wgpu::Buffer, u64, u64)>,
    n_dispatches: usize,
    profiled: bool,
}

impl<'g> Recorder<'g> {
    pub fn new(gpu: &'g Gpu) -> Self {
        Recorder { gpu, uniforms: Vec::new(), ops: Vec::new(), reads: Vec::new(), n_dispatches: 0, profiled: false }
    }

    /// A recorder that times each dispatch in a pass of its own, summed per entry point in
    /// `Finished::stage_ms`; its `stage` calls are ignored. Where a forward pass spends its time,
    /// at the cost of one pass per dispatch (slower in all than the batched stages).
    pub fn profiled(gpu: &'g Gpu) -> Self {
        Recorder { profiled: true, ..Recorder::new(gpu) }
    }

    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Starts a named stage; its dispatches run in their own compute pass and are timed together.
    pub fn stage(&mut self, name: impl Into<String>) {
        if !self.profiled {
            self.ops.push(Op::Stage(name.into()));
        }
    }

    /// Records one dispatch. `buffers` bind to `@binding(0..n)` of group 0 in order; `params`
    /// binds to `@binding(n)` as a uniform.
    pub fn dispatch<P: Pod>(
        &mut self,
        key: &PipelineKey,
        buffers: &[&wgpu::Buffer],
        params: &P,
        groups: [u32; 3],
    ) -> Result<(), Error> {
        let max = self.gpu.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(Error::Dispatch { kernel: key.entry.to_string(), groups, max });
        }
        if groups.contains(&0) {
            return Ok(());
        }
        let pipeline = self.gpu.pipeline(key)?;
        if self.profiled {
            self.ops.push(Op::Stage(key.entry.to_string()));
        }
        let align = self.gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        let params_offset = self.uniforms.len().next_multiple_of(align);
        self.uniforms.resize(params_offset, 0);
        self.uniforms.extend_from_slice(bytemuck::bytes_of(params));
        self.ops.push(Op::Dispatch(Dispatch {
            pipeline,
            buffers: buffers.iter().map(|b| (*b).clone()).collect(),
            params_offset: params_offset as u64,
            params_size: (std::mem::size_of::<P>() as u64).next_multiple_of(16),
            groups,
        }));
        self.n_dispatches += 1;
        Ok(())
    }

    /// Copies `len` elements of `src` from `src_offset` to `dst` at `dst_offset` (element units).
    pub fn copy(&mut self, src: &Tensor, src_offset: usize, dst: &Tensor, dst_offset: usize, len: usize) {
        if len > 0 {
            self.ops.push(Op::Copy {
                src: src.buffer.clone(),
                src_offset: src_offset as u64 * 4,
                dst: dst.buffer.clone(),
                dst_offset: dst_offset as u64 * 4,
                size: len as u64 * 4,
            });
        }
    }

    /// Reads `len` elements of `t` from `offset` back to the CPU when the recorder finishes.
    pub fn read(&mut self, t: &Tensor, offset: usize, len: usize) -> ReadHandle {
        self.reads.push((t.buffer.clone(), offset as u64 * 4, len as u64 * 4));
        ReadHandle(self.reads.len() - 1)
    }

    pub fn dispatch_count(&self) -> usize {
        self.n_dispatches
    }

    /// Submits everything and waits for it.
    pub fn finish(self) -> Result<Finished, Error> {
        let gpu = self.gpu;
        let device = &gpu.device;
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: (self.uniforms.len() as u64).next_multiple_of(16).max(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        if !self.uniforms.is_empty() {
            let padded_len = self.uniforms.len().next_multiple_of(4);
            let mut bytes = self.uniforms;
            bytes.resize(padded_len, 0);
            gpu.queue.write_buffer(&arena, 0, &bytes);
        }

        let segments = segments(self.ops);
        let n_stages = segments.iter().filter(|s| matches!(s, Segment::Pass { stage: Some(_), .. })).count();
        let timing = gpu.caps.timestamps && n_stages > 0;
        let queries = timing.then(|| {
            device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("stages"),
                ty: wgpu::QueryType::Timestamp,
                count: (2 * n_stages) as u32,
            })
        });

        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("glimpse") });
        let mut stage_names = Vec::new();
        for segment in segments {
            match segment {
                Segment::Copy { src, src_offset, dst, dst_offset, size } => {
                    encoder.copy_buffer_to_buffer(&src, src_offset, &dst, dst_offset, size);
                }
                Segment::Pass { stage, dispatches } => {
                    let timestamp_writes = match (&queries, &stage) {
                        (Some(q), Some(_)) => {
                            let i = stage_names.len() as u32;
                            Some(wgpu::ComputePassTimestampWrites {
                                query_set: q,
                                beginning_of_pass_write_index: Some(2 * i),
                                end_of_pass_write_index: Some(2 * i + 1),
                            })
                        }
                        _ => None,
                    };
                    stage_names.extend(stage);
                    let mut pass =
                        encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
                    for d in dispatches {
                        let group = bind_group(device, &d, &arena);
                        pass.set_pipeline(&d.pipeline);
                        pass.set_bind_group(0, &group, &[]);
                        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
                    }
                }
            }
        }

        let timestamp_buffer = queries.as_ref().map(|q| {
            let resolve = device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("timestamps"),
                size: (16 * n_stages) as u64,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            encoder.resolve_query_set(q, 0..(2 * stage_names.len()) as u32, &resolve, 0);
            resolve
        });
        let mut reads = self.reads;
        if let Some(ts) = &timestamp_buffer {
            reads.push((ts.clone(), 0, ts.size()));
        }
        let staging: Vec<wgpu::Buffer> = reads
            .iter()
            .map(|(src, offset, size)| {
                let dst = device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("readback"),
                    size: (*size).next_multiple_of(4).max(4),
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                if *size > 0 {
                    encoder.copy_buffer_to_buffer(src, *offset, &dst, 0, *size);
                }
                dst
            })
            .collect();
        gpu.queue.submit([encoder.finish()]);
        for s in &staging {
            s.map_async(wgpu::MapMode::Read, .., |_| {});
        }
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Wgpu(e.to_string()))?;
        gpu.check_errors()?;
        let mut readbacks = Vec::with_capacity(staging.len());
        for (s, (_, _, size)) in staging.iter().zip(&reads) {
            let view = s.get_mapped_range(..).map_err(|e| Error::Wgpu(e.to_string()))?;
            readbacks.push(view[..*size as usize].to_vec());
        }
        let (mut stage_ms, mut stage_passes) = (Vec::new(), Vec::new());
        if timestamp_buffer.is_some() {
            let raw: Vec<u64> = bytemuck::pod_collect_to_vec(&readbacks.pop().unwrap_or_default());
            let period = gpu.queue.get_timestamp_period() as f64;
            for (i, name) in stage_names.into_iter().enumerate() {
                let (t0, t1) = (raw.get(2 * i).copied().unwrap_or(0), raw.get(2 * i + 1).copied().unwrap_or(0));
                let ms = t1.saturating_sub(t0) as f64 * period / 1e6;
                // A stage split by copies is several passes: one entry, their sum.
                match stage_ms.iter().position(|(n, _): &(String, f64)| *n == name) {
                    Some(at) => {
                        stage_ms[at].1 += ms;
                        stage_passes[at] += 1;
                    }
                    None => {
                        stage_ms.push((name, ms));
                        stage_passes.push(1);
                    }
                }
            }
        }
        Ok(Finished { stage_ms, stage_passes, readbacks })
    }
}

/// A run of dispatches in one compute pass (optionally a named stage), or a buffer copy.
enum Segment {
    Pass { stage: Option<String>, dispatches: Vec<Dispatch> },
    Copy { src: wgpu::Buffer, src_offset: u64, dst: wgpu::Buffer, dst_offset: u64, size: u64 },
}

/// Groups recorded ops into passes: a stage marker or a copy ends the current pass. Dispatches
/// after a copy continue the stage they were recorded in (a pass of their own, timed under the
/// same name).
fn segments(ops: Vec<Op>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::new();
    let mut open = false;
    let mut current: Option<String> = None;
    for op in ops {
        match op {
            Op::Stage(name) => {
                current = Some(name.clone());
                out.push(Segment::Pass { stage: Some(name), dispatches: Vec::new() });
                open = true;
            }
            Op::Copy { src, src_offset, dst, dst_offset, size } => {
                out.push(Segment::Copy { src, src_offset, dst, dst_offset, size });
                open = false;
            }
            Op::Dispatch(d) => match out.last_mut() {
                Some(Segment::Pass { dispatches, .. }) if open => dispatches.push(d),
                _ => {
                    out.push(Segment::Pass { stage: current.clone(), dispatches: vec![d] });
                    open = true;
                }
            },
        }
    }
    out
}

fn bind_group(device: &wgpu::Device, d: &Dispatch, arena: &wgpu::Buffer) -> wgpu::BindGroup {
    let layout = d.pipeline.get_bind_group_layout(0);
    let mut entries: Vec<wgpu::BindGroupEntry> = d
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() })
        .collect();
    entries.push(wgpu::BindGroupEntry {
        binding: d.buffers.len() as u32,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: arena,
            offset: d.params_offset,
            size: wgpu::BufferSize::new(d.params_size),
        }),
    });
    device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &layout, entries: &entries })
}
