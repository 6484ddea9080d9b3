//! wgpu execution of a swarm: the integer contract of [`super::quant`] in WGSL (`gpu.wgsl`).
//!
//! Everything is created once in [`GpuSwarm::new`]: weights, per-channel requantisation data,
//! lookup tables and per-(layer, agent) descriptors are uploaded once; the ping-pong activation
//! buffers, the output and the readback buffer are preallocated. A frame is one
//! `queue.write_buffer` of the input, one dispatch per layer index (all agents at once), a copy to
//! the readback buffer and a map. Results are bit-identical to the CPU kernels: integer math up
//! to the final `(q - zp) as f32 * scale`, a single correctly rounded multiply in both.

use super::EngineError;
use super::net::MapShape;
use super::swarm::Swarm;
use wgpu::util::DeviceExt;

const WORKGROUP: u32 = 64;
/// i32 fields per (layer, agent) descriptor, see `gpu.wgsl`.
const DESC_LEN: usize = 26;

/// Descriptor field indices (must match `gpu.wgsl`).
mod desc {
    pub const VALID: usize = 0;
    pub const IN_H: usize = 1;
    pub const IN_W: usize = 2;
    pub const IN_C: usize = 3;
    pub const OUT_H: usize = 4;
    pub const OUT_W: usize = 5;
    pub const OUT_C: usize = 6;
    pub const KERNEL: usize = 7;
    pub const STRIDE: usize = 8;
    pub const IN_PER_GROUP: usize = 9;
    pub const OUT_PER_GROUP: usize = 10;
    pub const IN_ZP: usize = 11;
    pub const TARGET_ZP: usize = 12;
    pub const CLAMP_LO: usize = 13;
    pub const CLAMP_HI: usize = 14;
    pub const W_OFF: usize = 15;
    pub const CH_OFF: usize = 16;
    pub const LUT_OFF: usize = 17;
    pub const SRC_OFF: usize = 18;
    pub const DST_OFF: usize = 19;
    pub const IS_LAST: usize = 20;
    pub const OUT_ZP: usize = 21;
    pub const OUT_SCALE_BITS: usize = 22;
    pub const PAD_Y: usize = 23;
    pub const PAD_X: usize = 24;
}

/// Per-dispatch uniform (matches `Params` in `gpu.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    layer: u32,
    n_agents: u32,
    per_agent: u32,
    row_threads: u32,
}

struct Pass {
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
}

/// A swarm prepared on a wgpu device for one input shape.
pub struct GpuSwarm {
    device: wgpu::Device,
    queue: wgpu::Queue,
    pipeline: wgpu::ComputePipeline,
    passes: Vec<Pass>,
    input_buf: wgpu::Buffer,
    out_buf: wgpu::Buffer,
    readback: wgpu::Buffer,
    input_i32: Vec<i32>,
    offsets: Vec<usize>,
    adapter_name: String,
    software: bool,
}

fn to_i32(v: usize) -> Result<i32, EngineError> {
    i32::try_from(v).map_err(|_| EngineError::Gpu(format!("{v} does not fit the shader's i32")))
}

/// Finds an adapter (default backends, no forced fallback) and opens a device.
fn open_device() -> Result<(wgpu::Device, wgpu::Queue, String, bool), EngineError> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        apply_limit_buckets: false,
    }))
    .map_err(|e| EngineError::NoGpuAdapter(e.to_string()))?;
    let info = adapter.get_info();
    let name = format!("{} ({:?}, {})", info.name, info.backend, info.driver);
    let software = info.device_type == wgpu::DeviceType::Cpu;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("swarmpose-engine"),
        required_features: wgpu::Features::empty(),
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::default(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| EngineError::Gpu(format!("request_device on {name}: {e}")))?;
    Ok((device, queue, name, software))
}

/// Whether a GPU adapter can be opened (for tests deciding to skip).
pub fn adapter_available() -> Result<String, EngineError> {
    open_device().map(|(_, _, name, _)| name)
}

impl GpuSwarm {
    /// Uploads the swarm. `Err(NoGpuAdapter)` when no adapter exists.
    pub fn new(swarm: &Swarm, input: MapShape) -> Result<Self, EngineError> {
        let agents = swarm.agents();
        if input.c != swarm.in_c() {
            return Err(EngineError::Shape(format!(
                "input map has {} channels, swarm expects {}",
                input.c,
                swarm.in_c()
            )));
        }
        let n_agents = agents.len();
        let n_layers = agents.iter().map(|a| a.layers.len()).max().unwrap_or(0);
        // Shapes per agent per layer output.
        let shapes: Vec<Vec<MapShape>> = agents
            .iter()
            .map(|a| {
                let mut s = vec![input];
                for spec in a.specs() {
                    s.push(spec.out_shape(s[s.len() - 1])?);
                }
                Ok(s)
            })
            .collect::<Result<_, EngineError>>()?;
        let len = |s: &MapShape| s.h * s.w * s.c;
        let mut offsets = vec![0usize];
        for s in &shapes {
            offsets.push(offsets[offsets.len() - 1] + len(&s[s.len() - 1]));
        }
        // Intermediate outputs of layer l live in scratch[l % 2] at inter_off[l][a].
        let mut inter_off = vec![vec![0usize; n_agents]; n_layers];
        let mut scratch_len = [4usize; 2];
        for (l, offs) in inter_off.iter_mut().enumerate() {
            let mut total = 0;
            for (a, net) in agents.iter().enumerate() {
                if l + 1 < net.layers.len() {
                    offs[a] = total;
                    total += len(&shapes[a][l + 1]);
                }
            }
            scratch_len[l % 2] = scratch_len[l % 2].max(total);
        }

        let (mut weights, mut chans, mut luts) = (Vec::new(), Vec::new(), Vec::new());
        let mut descs = vec![0i32; n_layers * n_agents * DESC_LEN];
        for (a, net) in agents.iter().enumerate() {
            for (l, layer) in net.layers.iter().enumerate() {
                let spec = &layer.spec;
                let (s, o) = (shapes[a][l], shapes[a][l + 1]);
                let is_last = l + 1 == net.layers.len();
                let d = &mut descs[(l * n_agents + a) * DESC_LEN..][..DESC_LEN];
                let lut_off = match &layer.lut {
                    Some(lut) => {
                        let off = to_i32(luts.len())?;
                        luts.extend(lut.iter().map(|&v| i32::from(v)));
                        off
                    }
                    None => -1,
                };
                let fields = [
                    (desc::VALID, 1),
                    (desc::IN_H, to_i32(s.h)?),
                    (desc::IN_W, to_i32(s.w)?),
                    (desc::IN_C, to_i32(s.c)?),
                    (desc::OUT_H, to_i32(o.h)?),
                    (desc::OUT_W, to_i32(o.w)?),
                    (desc::OUT_C, to_i32(o.c)?),
                    (desc::KERNEL, to_i32(spec.kernel)?),
                    (desc::STRIDE, to_i32(spec.stride)?),
                    (desc::IN_PER_GROUP, to_i32(spec.in_per_group())?),
                    (desc::OUT_PER_GROUP, to_i32(spec.out_c / spec.groups)?),
                    (desc::IN_ZP, layer.input_q.zero_point),
                    (desc::TARGET_ZP, layer.target_zp),
                    (desc::CLAMP_LO, layer.clamp.0),
                    (desc::CLAMP_HI, layer.clamp.1),
                    (desc::W_OFF, to_i32(weights.len())?),
                    (desc::CH_OFF, to_i32(chans.len())?),
                    (desc::LUT_OFF, lut_off),
                    (
                        desc::SRC_OFF,
                        if l == 0 {
                            0
                        } else {
                            to_i32(inter_off[l - 1][a])?
                        },
                    ),
                    (
                        desc::DST_OFF,
                        to_i32(if is_last { offsets[a] } else { inter_off[l][a] })?,
                    ),
                    (desc::IS_LAST, i32::from(is_last)),
                    (desc::OUT_ZP, layer.output_q.zero_point),
                    (desc::OUT_SCALE_BITS, layer.output_q.scale.to_bits() as i32),
                    (desc::PAD_Y, to_i32(spec.pad_before(s.h))?),
                    (desc::PAD_X, to_i32(spec.pad_before(s.w))?),
                ];
                for (i, v) in fields {
                    d[i] = v;
                }
                weights.extend(layer.weights.iter().map(|&w| i32::from(w)));
                for (c, r) in layer.requant.iter().enumerate() {
                    chans.extend([layer.bias[c], r.multiplier, r.shift as i32]);
                }
            }
        }

        let (device, queue, adapter_name, software) = open_device()?;
        let limits = device.limits();
        let out_len = offsets[n_agents];
        let input_len = input
            .len()
            .ok_or_else(|| EngineError::Shape("input map too large".into()))?;
        let biggest = [
            input_len,
            scratch_len[0],
            scratch_len[1],
            out_len,
            weights.len(),
            descs.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0) as u64
            * 4;
        if biggest
            > limits
                .max_storage_buffer_binding_size
                .min(limits.max_buffer_size)
        {
            return Err(EngineError::Gpu(format!(
                "a {biggest}-byte storage buffer exceeds the device limit"
            )));
        }

        let storage = wgpu::BufferUsages::STORAGE;
        let init = |label: &str, data: &[i32]| {
            let padded = [0i32; 4];
            let contents: &[i32] = if data.is_empty() { &padded } else { data };
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents: bytemuck::cast_slice(contents),
                usage: storage,
            })
        };
        let descs_buf = init("descs", &descs);
        let weights_buf = init("weights", &weights);
        let chans_buf = init("chans", &chans);
        let luts_buf = init("luts", &luts);
        let buffer = |label: &str, n: usize, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: (n.max(4) * 4) as u64,
                usage,
                mapped_at_creation: false,
            })
        };
        let input_buf = buffer("input", input_len, storage | wgpu::BufferUsages::COPY_DST);
        let scratch = [
            buffer("scratch0", scratch_len[0], storage),
            buffer("scratch1", scratch_len[1], storage),
        ];
        let out_buf = buffer("out", out_len, storage | wgpu::BufferUsages::COPY_SRC);
        let readback = buffer(
            "readback",
            out_len,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );

        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("swarm"),
            source: wgpu::ShaderSource::Wgsl(include_str!("gpu.wgsl").into()),
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some("swarm"),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let layout = pipeline.get_bind_group_layout(0);
        let max_groups = limits.max_compute_workgroups_per_dimension.max(1);
        let mut passes = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let per_agent = shapes
                .iter()
                .filter(|s| s.len() > l + 1)
                .map(|s| len(&s[l + 1]))
                .max()
                .unwrap_or(0);
            let total = (per_agent as u64) * n_agents as u64;
            let total_groups = total.div_ceil(u64::from(WORKGROUP));
            let gx = total_groups.clamp(1, u64::from(max_groups)) as u32;
            let gy = total_groups.div_ceil(u64::from(gx)).max(1);
            if gy > u64::from(max_groups) {
                return Err(EngineError::Gpu(format!("layer {l}: too many invocations")));
            }
            let params = Params {
                layer: l as u32,
                n_agents: n_agents as u32,
                per_agent: per_agent.max(1) as u32,
                row_threads: gx * WORKGROUP,
            };
            let params_buf = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::bytes_of(&params),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let src = if l == 0 {
                &input_buf
            } else {
                &scratch[(l - 1) % 2]
            };
            let entries = [
                &params_buf,
                &descs_buf,
                &weights_buf,
                &chans_buf,
                &luts_buf,
                src,
                &scratch[l % 2],
                &out_buf,
            ];
            let entries: Vec<wgpu::BindGroupEntry> = entries
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("swarm-layer"),
                layout: &layout,
                entries: &entries,
            });
            passes.push(Pass {
                bind_group,
                groups: (gx, gy as u32),
            });
        }
        Ok(Self {
            device,
            queue,
            pipeline,
            passes,
            input_buf,
            out_buf,
            readback,
            input_i32: vec![0; input_len],
            offsets,
            adapter_name,
            software,
        })
    }

    pub fn adapter_name(&self) -> &str {
        &self.adapter_name
    }

    /// A software rasteriser (e.g. Mesa lavapipe): exact, but far slower than the CPU kernels.
    pub fn is_software(&self) -> bool {
        self.software
    }

    /// `offsets()[a]..offsets()[a + 1]` is agent `a`'s output range.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    pub fn output_len(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }

    /// Runs all agents on `input` (HWC int8) into `out` (length [`Self::output_len`]).
    pub fn run(&mut self, input: &[i8], out: &mut [f32]) -> Result<(), EngineError> {
        if input.len() != self.input_i32.len() {
            return Err(EngineError::InputLength {
                expected: self.input_i32.len(),
                got: input.len(),
            });
        }
        if out.len() != self.output_len() {
            return Err(EngineError::OutputLength {
                expected: self.output_len(),
                got: out.len(),
            });
        }
        for (d, &s) in self.input_i32.iter_mut().zip(input) {
            *d = i32::from(s);
        }
        self.queue
            .write_buffer(&self.input_buf, 0, bytemuck::cast_slice(&self.input_i32));
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: None,
                timestamp_writes: None,
            });
            pass.set_pipeline(&self.pipeline);
            for p in &self.passes {
                pass.set_bind_group(0, &p.bind_group, &[]);
                pass.dispatch_workgroups(p.groups.0, p.groups.1, 1);
            }
        }
        let bytes = (out.len() * 4) as u64;
        if bytes > 0 {
            encoder.copy_buffer_to_buffer(&self.out_buf, 0, &self.readback, 0, bytes);
        }
        self.queue.submit([encoder.finish()]);
        if bytes == 0 {
            return Ok(());
        }
        let slice = self.readback.slice(..bytes);
        slice.map_async(wgpu::MapMode::Read, |_| ());
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: None,
            })
            .map_err(|e| EngineError::Gpu(format!("poll: {e}")))?;
        {
            let view = slice
                .get_mapped_range()
                .map_err(|e| EngineError::Gpu(format!("readback map: {e}")))?;
            out.copy_from_slice(bytemuck::cast_slice(&view));
        }
        self.readback.unmap();
        Ok(())
    }
}
