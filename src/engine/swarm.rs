//! A swarm (all agents of one tier) and the runner that picks an execution backend.

use super::EngineError;
use super::cpu::{CpuKernel, CpuSwarm};
use super::gpu::GpuSwarm;
use super::net::MapShape;
use super::quant::{QuantNet, QuantParams};

/// All agents of one tier. They read the same input map (same channel count and quantisation).
#[derive(Clone, Debug, PartialEq)]
pub struct Swarm {
    agents: Vec<QuantNet>,
}

impl Swarm {
    /// Checks that the agents agree on the input channels and quantisation.
    pub fn new(agents: Vec<QuantNet>) -> Result<Self, EngineError> {
        let first = agents
            .first()
            .ok_or_else(|| EngineError::Shape("swarm has no agents".into()))?;
        let (c, q) = (first.in_c(), first.input_q());
        if let Some(i) = agents
            .iter()
            .position(|a| a.in_c() != c || a.input_q() != q)
        {
            return Err(EngineError::Shape(format!(
                "agent {i} reads a different input (channels or quantisation) than agent 0"
            )));
        }
        Ok(Self { agents })
    }

    pub fn agents(&self) -> &[QuantNet] {
        &self.agents
    }

    pub fn len(&self) -> usize {
        self.agents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    pub fn in_c(&self) -> usize {
        self.agents[0].in_c()
    }

    pub fn input_q(&self) -> QuantParams {
        self.agents[0].input_q()
    }

    pub fn param_count(&self) -> usize {
        self.agents.iter().map(QuantNet::param_count).sum()
    }
}

/// Requested execution backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// A hardware GPU adapter when found, otherwise CPU SIMD (see [`SwarmRunner::status`]).
    /// Software adapters (lavapipe) are skipped: they are much slower than the SIMD kernel.
    #[default]
    Auto,
    /// CPU SIMD (rayon across agents for large frames).
    Cpu,
    /// CPU scalar reference kernel.
    CpuScalar,
    /// wgpu; an error when there is no adapter.
    Gpu,
}

/// Backend actually in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActiveBackend {
    CpuScalar,
    CpuSimd,
    Gpu,
}

enum Engine {
    Cpu(Box<CpuSwarm>),
    Gpu(Box<GpuSwarm>),
}

/// Runs a swarm over input maps of a fixed shape. Output: every agent's f32 map
/// `[H', W', out_c]` (HWC), concatenated in agent order; see [`Self::offsets`].
pub struct SwarmRunner {
    engine: Engine,
    status: String,
}

impl SwarmRunner {
    pub fn new(swarm: &Swarm, input: MapShape, backend: Backend) -> Result<Self, EngineError> {
        // The status names the instruction set the SIMD kernel picked on this CPU.
        let cpu = |kernel, status: String| {
            let cpu = CpuSwarm::new(swarm, input, kernel)?;
            let status = match kernel {
                CpuKernel::Scalar => status,
                _ => format!("{status} ({})", cpu.isa_name()),
            };
            Ok(Self {
                engine: Engine::Cpu(Box::new(cpu)),
                status,
            })
        };
        match backend {
            Backend::Cpu => cpu(CpuKernel::Simd, "cpu simd".into()),
            Backend::CpuScalar => cpu(CpuKernel::Scalar, "cpu scalar".into()),
            Backend::Gpu => {
                let gpu = GpuSwarm::new(swarm, input)?;
                let status = format!("gpu: {}", gpu.adapter_name());
                Ok(Self {
                    engine: Engine::Gpu(Box::new(gpu)),
                    status,
                })
            }
            Backend::Auto => match GpuSwarm::new(swarm, input) {
                Ok(gpu) if gpu.is_software() => cpu(
                    CpuKernel::Simd,
                    format!(
                        "warning: only a software GPU adapter ({}); using cpu simd",
                        gpu.adapter_name()
                    ),
                ),
                Ok(gpu) => {
                    let status = format!("gpu: {}", gpu.adapter_name());
                    Ok(Self {
                        engine: Engine::Gpu(Box::new(gpu)),
                        status,
                    })
                }
                Err(e @ (EngineError::NoGpuAdapter(_) | EngineError::Gpu(_))) => cpu(
                    CpuKernel::Simd,
                    format!("warning: falling back to cpu simd ({e})"),
                ),
                Err(e) => Err(e),
            },
        }
    }

    /// Human-readable backend description; starts with `warning:` after a GPU fallback.
    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn active(&self) -> ActiveBackend {
        match &self.engine {
            Engine::Cpu(c) if c.kernel() == CpuKernel::Scalar => ActiveBackend::CpuScalar,
            Engine::Cpu(_) => ActiveBackend::CpuSimd,
            Engine::Gpu(_) => ActiveBackend::Gpu,
        }
    }

    /// `offsets()[a]..offsets()[a + 1]` is agent `a`'s range in the output.
    pub fn offsets(&self) -> &[usize] {
        match &self.engine {
            Engine::Cpu(c) => c.offsets(),
            Engine::Gpu(g) => g.offsets(),
        }
    }

    pub fn output_len(&self) -> usize {
        let o = self.offsets();
        o[o.len() - 1]
    }

    /// Whether agent `a` panicked during the last run (CPU backends isolate panicking
    /// agents, see [`super::cpu`]; a GPU dispatch has no per-agent failure: always false).
    pub fn agent_failed(&self, a: usize) -> bool {
        match &self.engine {
            Engine::Cpu(c) => c.agent_failed(a),
            Engine::Gpu(_) => false,
        }
    }

    /// Makes the listed agents panic on every run (fault injection, CPU backends only);
    /// returns false where the backend cannot (GPU).
    pub fn set_sabotaged(&mut self, agents: &[usize]) -> bool {
        match &mut self.engine {
            Engine::Cpu(c) => {
                c.set_sabotaged(agents);
                true
            }
            Engine::Gpu(_) => agents.is_empty(),
        }
    }

    /// Lets a CPU run spread over the rayon threads (the default for large swarms and
    /// layers) or keeps it on the calling thread, e.g. while other work fills the other
    /// threads. A GPU ignores it.
    pub fn set_parallel(&mut self, on: bool) {
        if let Engine::Cpu(c) = &mut self.engine {
            c.set_parallel(on);
        }
    }

    /// Evaluates every agent at every position of `input` (HWC int8, quantised with the
    /// swarm's input parameters) into `out` (length [`Self::output_len`]).
    pub fn run(&mut self, input: &[i8], out: &mut [f32]) -> Result<(), EngineError> {
        match &mut self.engine {
            Engine::Cpu(c) => c.run(input, out),
            Engine::Gpu(g) => g.run(input, out),
        }
    }
}
