//! `edgehub_count` on one interface: a pass-through tcx program that counts packets.
//!
//! It checks that the build chain, the kernel and the attachment work before the NAT is
//! involved, and `edgehub probe` uses it to show whether an interface sees traffic.

use aya::{
    EbpfLoader,
    maps::PerCpuArray,
    programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, tc::TcAttachOptions},
};
use hub_common::PacketCounter;

use crate::ebpf::{self, LoadError};

const PROGRAM: &str = "edgehub_count";
const MAP: &str = "PASS_COUNTER";

/// Why the probe could not be set up or read.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("the object has no {0}")]
    Missing(&'static str),
    #[error("loading or attaching {PROGRAM} to {iface}")]
    Attach {
        iface: String,
        #[source]
        source: ProgramError,
    },
    #[error("reading {MAP}")]
    Map(#[source] aya::maps::MapError),
}

/// The counting program attached to an interface's ingress. Dropping it detaches it.
pub struct Probe {
    // Keeps the program and its tcx link alive.
    ebpf: aya::Ebpf,
}

impl Probe {
    /// Loads `edgehub_count` and attaches it at tcx ingress of `iface`, in the calling
    /// thread's network namespace.
    pub fn attach(iface: &str) -> Result<Self, ProbeError> {
        let mut ebpf = ebpf::load(&mut EbpfLoader::new())?;
        let program: &mut SchedClassifier = ebpf
            .program_mut(PROGRAM)
            .ok_or(ProbeError::Missing(PROGRAM))?
            .try_into()
            .map_err(|source| ProbeError::Attach {
                iface: iface.to_owned(),
                source,
            })?;
        let attach = |program: &mut SchedClassifier| {
            program.load()?;
            let options = TcAttachOptions::TcxOrder(LinkOrder::default());
            program.attach_with_options(iface, TcAttachType::Ingress, options)
        };
        attach(program).map_err(|source| ProbeError::Attach {
            iface: iface.to_owned(),
            source,
        })?;
        tracing::info!(iface, program = PROGRAM, "attached at tcx ingress");
        Ok(Self { ebpf })
    }

    /// Packets and bytes counted so far, summed over CPUs.
    pub fn read(&self) -> Result<PacketCounter, ProbeError> {
        let map = self.ebpf.map(MAP).ok_or(ProbeError::Missing(MAP))?;
        let counters: PerCpuArray<_, PacketCounter> =
            PerCpuArray::try_from(map).map_err(ProbeError::Map)?;
        let per_cpu = counters.get(&0, 0).map_err(ProbeError::Map)?;
        Ok(per_cpu
            .iter()
            .fold(PacketCounter::default(), |sum, c| sum.merged(*c)))
    }
}
