//! An in-memory kernel: keeps the SAs it is given, for engine tests and the demo.

use std::collections::HashMap;
use std::net::IpAddr;

use super::{Kernel, KernelOp, SaCounters, SaSpec};

#[derive(Default)]
pub struct MemoryKernel {
    sas: HashMap<(IpAddr, u32), SaSpec>,
    /// What each SA "received" (tests drive it with `count_packets`); gone with the SA.
    counted: HashMap<(IpAddr, u32), SaCounters>,
    /// How many of the next AddSa operations to refuse (tests of kernel failures).
    refuse_adds: usize,
}

impl MemoryKernel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn get(&self, dst: IpAddr, spi: u32) -> Option<&SaSpec> {
        self.sas.get(&(dst, spi))
    }
    pub fn sas(&self) -> impl Iterator<Item = &SaSpec> {
        self.sas.values()
    }
    pub fn len(&self) -> usize {
        self.sas.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }
    /// Models ESP traffic: the SA (dst, spi) counts `packets` more packets of `bytes` more
    /// bytes, as the kernel does for packets whose ICV verified. False when there is no such SA.
    pub fn count_packets(&mut self, dst: IpAddr, spi: u32, packets: u64, bytes: u64) -> bool {
        if !self.sas.contains_key(&(dst, spi)) {
            return false;
        }
        let c = self.counted.entry((dst, spi)).or_default();
        c.packets += packets;
        c.bytes += bytes;
        true
    }
    /// Refuses the next `n` AddSa operations, as a kernel without the algorithm would.
    pub fn refuse_next_adds(&mut self, n: usize) {
        self.refuse_adds = n;
    }
}

impl Kernel for MemoryKernel {
    fn apply(&mut self, op: &KernelOp) -> Result<(), String> {
        match op {
            KernelOp::AddSa(spec) => {
                if self.refuse_adds > 0 {
                    self.refuse_adds -= 1;
                    return Err(format!("SA {:08x} to {} refused", spec.spi, spec.dst));
                }
                let key = (spec.dst, spec.spi);
                if self.sas.contains_key(&key) {
                    return Err(format!("SA {:08x} to {} exists", spec.spi, spec.dst));
                }
                self.sas.insert(key, spec.clone());
            }
            KernelOp::DelSa { dst, spi } => {
                self.sas
                    .remove(&(*dst, *spi))
                    .ok_or_else(|| format!("no SA {spi:08x} to {dst}"))?;
                self.counted.remove(&(*dst, *spi));
            }
            KernelOp::UpdateSaAddrs {
                old_dst,
                spi,
                src,
                dst,
            } => {
                let mut spec = self
                    .sas
                    .remove(&(*old_dst, *spi))
                    .ok_or_else(|| format!("no SA {spi:08x}"))?;
                spec.src = *src;
                spec.dst = *dst;
                self.sas.insert((*dst, *spi), spec);
                if let Some(c) = self.counted.remove(&(*old_dst, *spi)) {
                    self.counted.insert((*dst, *spi), c);
                }
            }
            KernelOp::UpdateSaEncap { dst, spi, encap } => {
                let spec = self
                    .sas
                    .get_mut(&(*dst, *spi))
                    .ok_or_else(|| format!("no SA {spi:08x}"))?;
                spec.encap = Some(*encap);
            }
        }
        Ok(())
    }
    fn installed(&self) -> Vec<(IpAddr, u32)> {
        self.sas.keys().copied().collect()
    }
    /// Only SAs that `count_packets` gave traffic: the others count nothing here (listings
    /// show no counters for them, as before).
    fn counters(&self) -> Vec<(IpAddr, u32, SaCounters)> {
        self.counted.iter().map(|(k, c)| (k.0, k.1, *c)).collect()
    }
}
