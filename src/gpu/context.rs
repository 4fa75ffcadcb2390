//! The wgpu device: adapter choice, the limits and optional features glimpse asks for, and the
//! pipeline cache. One `Gpu` per process is typical; it is `Send + Sync`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Error;

/// How to pick and set up the device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Adapter to use: a case-insensitive substring of its name, or a backend (`vulkan`, `metal`,
    /// `dx12`, `gl`). `None` reads `GLIMPSE_ADAPTER`, else takes the high-performance adapter.
    pub adapter: Option<String>,
    /// Caps the bytes of one weight part below the device's binding limit, so tests can
    /// exercise the splitting of large weights on any device.
    pub max_weight_part_bytes: Option<u64>,
    /// Ignore `shader-f16` / `subgroups` even when the adapter has them (to test fallbacks).
    pub disable_f16: bool,
    pub disable_subgroups: bool,
}

/// Optional capabilities found on the adapter and enabled on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Caps {
    pub f16: bool,
    pub subgroups: bool,
    pub timestamps: bool,
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
}

/// A compute pipeline identity: shader, entry point and override constants (as bits).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    pub shader: &'static str,
    pub entry: &'static str,
    pub constants: Vec<(&'static str, u64)>,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub caps: Caps,
    max_binding: u64,
    max_weight_part: u64,
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    errors: Arc<Mutex<Vec<String>>>,
    /// Bytes of every buffer created through this device (weights, activations, caches).
    allocated: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu({} on {:?})", self.info.name, self.info.backend)
    }
}

/// Short description of an adapter for messages: `llvmpipe (LLVM 15.0.6, 256 bits) [Vulkan, Cpu]`.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} [{:?}, {:?}]", info.name, info.backend, info.device_type)
}

fn matches(info: &wgpu::AdapterInfo, wanted: &str) -> bool {
    let w = wanted.to_ascii_lowercase();
    info.name.to_ascii_lowercase().contains(&w) || format!("{:?}", info.backend).to_ascii_lowercase() == w
}

impl Gpu {
    /// Opens a device. Fails with a message listing the adapters when none fits.
    pub fn new(opts: &GpuOptions) -> Result<Gpu, Error> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let wanted = opts.adapter.clone().or_else(|| std::env::var("GLIMPSE_ADAPTER").ok()).filter(|s| !s.is_empty());
        let list = || adapters.iter().map(|a| describe(&a.get_info())).collect::<Vec<_>>();
        let adapter = match &wanted {
            Some(w) => adapters.iter().find(|a| matches(&a.get_info(), w)).cloned(),
            None => {
                let preferred = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                    power_preference: wgpu::PowerPreference::HighPerformance,
                    force_fallback_adapter: false,
                    compatible_surface: None,
                    apply_limit_buckets: false,
                }))
                .ok();
                preferred.or_else(|| adapters.first().cloned())
            }
        };
        let adapter = adapter.ok_or_else(|| Error::NoAdapter { wanted: wanted.clone(), available: list() })?;
        let info = adapter.get_info();
        let features = adapter.features();
        let mut caps = Caps {
            f16: features.contains(wgpu::Features::SHADER_F16) && !opts.disable_f16,
            subgroups: features.contains(wgpu::Features::SUBGROUP) && !opts.disable_subgroups,
            timestamps: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        };
        if !caps.subgroups {
            caps.subgroup_min_size = 0;
            caps.subgroup_max_size = 0;
        }
        let mut required = wgpu::Features::empty();
        for (on, f) in [
            (caps.f16, wgpu::Features::SHADER_F16),
            (caps.subgroups, wgpu::Features::SUBGROUP),
            (caps.timestamps, wgpu::Features::TIMESTAMP_QUERY),
        ] {
            if on {
                required |= f;
            }
        }
        // The adapter's own limits, not WebGPU's defaults: those bind only 128 MiB per buffer.
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("glimpse"),
            required_features: required,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::Device { adapter: describe(&info), message: e.to_string() })?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let max_binding = limits.max_storage_buffer_binding_size.min(limits.max_buffer_size);
        let max_weight_part = opts.max_weight_part_bytes.map_or(max_binding, |m| m.min(max_binding));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            caps,
            max_binding,
            max_weight_part,
            modules: Mutex::default(),
            pipelines: Mutex::default(),
            errors,
            allocated: Default::default(),
        })
    }

    /// The most bytes one storage binding may cover.
    pub fn max_binding_bytes(&self) -> u64 {
        self.max_binding
    }

    /// The most bytes of one weight part (the binding limit, or a lower test cap).
    pub fn max_weight_part_bytes(&self) -> u64 {
        self.max_weight_part
    }

    /// Bytes of all buffers created so far (weights + KV caches + activation scratch).
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn count_allocation(&self, bytes: u64) {
        self.allocated.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Whether the adapter is a CPU (lavapipe, SwiftShader): where kernels have a variant that
    /// only a CPU adapter rewards, this picks it (docs/perf.md).
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Fails with the first validation or out-of-memory error wgpu reported since the last check.
    pub fn check_errors(&self) -> Result<(), Error> {
        let mut errors = self.errors.lock().map_err(|_| Error::Poisoned)?;
        if errors.is_empty() {
            return Ok(());
        }
        let all = std::mem::take(&mut *errors);
        Err(Error::Wgpu(all.join("\n")))
    }

    /// The pipeline for `key`, built on first use from the shader's WGSL source.
    pub fn pipeline(&self, key: &PipelineKey) -> Result<Arc<wgpu::ComputePipeline>, Error> {
        if let Some(p) = self.pipelines.lock().map_err(|_| Error::Poisoned)?.get(key) {
            return Ok(p.clone());
        }
        let module = self.module(key.shader)?;
        let constants: Vec<(&str, f64)> = key.constants.iter().map(|&(k, v)| (k, f64::from_bits(v))).collect();
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key.entry),
            layout: None,
            module: &module,
            entry_point: Some(key.entry),
            compilation_options: wgpu::PipelineCompilationOptions { constants: &constants, ..Default::default() },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader { shader: key.shader.to_string(), message: format!("{}: {e}", key.entry) });
        }
        let pipeline = Arc::new(pipeline);
        self.pipelines.lock().map_err(|_| Error::Poisoned)?.insert(key.clone(), pipeline.clone());
        Ok(pipeline)
    }

    fn module(&self, shader: &'static str) -> Result<Arc<wgpu::ShaderModule>, Error> {
        if let Some(m) = self.modules.lock().map_err(|_| Error::Poisoned)?.get(shader) {
            return Ok(m.clone());
        }
        let source = super::kernels::source(shader, self.caps)?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(shader),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Shader { shader: shader.to_string(), message: e.to_string() });
        }
        let module = Arc::new(module);
        self.modules.lock().map_err(|_| Error::Poisoned)?.insert(shader, module.clone());
        Ok(module)
    }
}
