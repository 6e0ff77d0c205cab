//! What a mobile node remembers outside its IKE SAs: the home agents it initiated to (their
//! addresses, expected identity and the plan, so that a home agent's own IKE_SA_INIT, a
//! reauthentication by RFC 7296 2.8.3, is recognised and authenticated by the same rules), and
//! where mip6d last said it is (the local KMADDRESS of the latest MIGRATE per home address and
//! home agent), which every new initiation starts from.
//!
//! Both are small and bounded: a mobile node has a handful of home agents and home addresses,
//! and the kernel (the only source of MIGRATEs) is trusted but may be noisy.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use tracing::info;

use super::HomeAddress;
use super::endpoint::Endpoint;
use super::sa::Plan;
use crate::kernel::Selector;

/// Home agents remembered at most (the oldest goes first).
const MAX_HOME_AGENTS: usize = 16;
/// (home address, home agent) pairs whose KMADDRESS is remembered at most.
const MAX_KMADDRESSES: usize = 256;

/// A home agent this mobile node initiated to.
#[derive(Debug, Clone)]
pub(crate) struct HomeAgentRecord {
    /// Where IKE went, with the ports of the initiation (a restart uses them again even if the
    /// IKE SA floated to the NAT-T port since).
    pub remote: SocketAddr,
    pub local_port: u16,
    /// What the mobile node wants from it (home address, classes, expected identity).
    pub plan: Plan,
}

#[derive(Debug, Default)]
pub(crate) struct MobileNodeMemory {
    home_agents: Vec<HomeAgentRecord>,
    /// (home address, home agent) -> (local KMADDRESS, order of arrival).
    kmaddress: HashMap<(IpAddr, IpAddr), (IpAddr, u64)>,
    km_seq: u64,
}

impl MobileNodeMemory {
    /// An initiation to `remote` with `plan`: replaces what we knew of that home agent.
    pub fn remember(&mut self, remote: SocketAddr, local_port: u16, plan: &Plan) {
        self.home_agents.retain(|r| r.remote.ip() != remote.ip());
        if self.home_agents.len() >= MAX_HOME_AGENTS {
            self.home_agents.remove(0);
        }
        let mut plan = plan.clone();
        plan.ike_rekey_at = None;
        self.home_agents.push(HomeAgentRecord {
            remote,
            local_port,
            plan,
        });
    }

    /// The home agent at `addr` (its IKE address or the address in its selectors).
    pub fn home_agent(&self, addr: IpAddr) -> Option<&HomeAgentRecord> {
        self.home_agents
            .iter()
            .rev()
            .find(|r| r.remote.ip() == addr || IpAddr::V6(r.plan.home_agent) == addr)
    }

    /// The home agent gave us a dynamic home address: a reauthentication keeps it.
    pub fn set_assigned_hoa(&mut self, ha: IpAddr, hoa: Ipv6Addr) {
        if let Some(r) = self.home_agents.iter_mut().find(|r| r.remote.ip() == ha) {
            r.plan.assigned_hoa = Some(hoa);
        }
    }

    /// A MIGRATE's KMADDRESS: for every single address in its selector other than the home
    /// agent (the home address; mip6d's selectors are HoA/128 with HA/128 or ::/0), remember
    /// where mip6d says we are now.
    pub fn note_kmaddress(&mut self, sel: &Selector, km_local: IpAddr, km_remote: IpAddr) {
        if km_local.is_unspecified() || km_remote.is_unspecified() {
            return;
        }
        self.km_seq += 1;
        for (addr, prefix) in [(sel.src, sel.src_prefix), (sel.dst, sel.dst_prefix)] {
            if !addr.is_ipv6() || prefix != 128 || addr == km_remote {
                continue;
            }
            let key = (addr, km_remote);
            if !self.kmaddress.contains_key(&key) && self.kmaddress.len() >= MAX_KMADDRESSES {
                // Forget the stalest pair.
                if let Some(old) = self
                    .kmaddress
                    .iter()
                    .min_by_key(|(_, (_, seq))| *seq)
                    .map(|(k, _)| *k)
                {
                    self.kmaddress.remove(&old);
                }
            }
            self.kmaddress.insert(key, (km_local, self.km_seq));
        }
    }

    /// The local KMADDRESS of the latest MIGRATE about `hoa` (None: about any home address)
    /// towards the home agent `ha`.
    pub fn kmaddress(&self, hoa: Option<Ipv6Addr>, ha: IpAddr) -> Option<IpAddr> {
        match hoa {
            Some(h) => self.kmaddress.get(&(IpAddr::V6(h), ha)).map(|(l, _)| *l),
            None => self
                .kmaddress
                .iter()
                .filter(|((_, r), _)| *r == ha)
                .max_by_key(|(_, (_, seq))| *seq)
                .map(|(_, (l, _))| *l),
        }
    }
}

/// The home address a plan is about, when known (a dynamic one once assigned).
pub(super) fn plan_hoa(plan: &Plan) -> Option<Ipv6Addr> {
    match plan.home_address {
        HomeAddress::Static(a) => Some(a),
        HomeAddress::Dynamic => plan.assigned_hoa,
    }
}

impl Endpoint {
    /// Mobile node: the ends of a new IKE SA that replaces one between `local` and `remote`
    /// (after a move): the ports of our original initiation to that home agent, so that a
    /// successor of an IKE SA that floated to the NAT-T port starts on the IKE port again.
    pub(super) fn restart_ends(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> (SocketAddr, SocketAddr) {
        match self.mn.home_agent(remote.ip()) {
            Some(r) if r.remote.ip() == remote.ip() => {
                (SocketAddr::new(local.ip(), r.local_port), r.remote)
            }
            _ => (local, remote),
        }
    }

    /// Mobile node: where mip6d last said we are, for an IKE SA to the home agent `ha` about
    /// `hoa` (None: any home address): the local KMADDRESS of its latest MIGRATE. The daemon may
    /// use it to bind a socket there before it initiates.
    pub fn latest_kmaddress(&self, ha: IpAddr, hoa: Option<Ipv6Addr>) -> Option<IpAddr> {
        if self.is_home_agent() {
            return None;
        }
        hoa.and_then(|h| self.mn.kmaddress(Some(h), ha))
            .or_else(|| self.mn.kmaddress(None, ha))
    }

    /// Mobile node: the local address a new IKE SA to `remote` starts from. mip6d's latest
    /// KMADDRESS beats whatever the caller chose (a configured care-of address, the address
    /// of the last IKE SA): at start-up mip6d first registers a transient home-link address and
    /// then the home address, and after a move the old care-of address may be gone.
    pub(super) fn initiation_local(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        plan: &Plan,
    ) -> SocketAddr {
        let km = self
            .latest_kmaddress(remote.ip(), plan_hoa(plan))
            .or_else(|| self.latest_kmaddress(IpAddr::V6(plan.home_agent), plan_hoa(plan)));
        match km {
            Some(km) if km != local.ip() && km.is_ipv4() == local.is_ipv4() => {
                info!(chosen = %local.ip(), kmaddress = %km, %remote,
                      "initiating from mip6d's latest KMADDRESS instead of the chosen address");
                SocketAddr::new(km, local.port())
            }
            _ => local,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(src: &str, sp: u8, dst: &str, dp: u8) -> Selector {
        Selector::new(src.parse().unwrap(), sp, dst.parse().unwrap(), dp, 135)
    }

    #[test]
    fn kmaddress_is_remembered_per_home_address_and_home_agent() {
        let mut m = MobileNodeMemory::default();
        let ha: IpAddr = "2001:db8:1::1".parse().unwrap();
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let hoa2: Ipv6Addr = "2001:db8:1::200".parse().unwrap();
        let slaac: IpAddr = "2001:db8:1::ff:fe00:102".parse().unwrap();
        m.note_kmaddress(
            &sel("2001:db8:1::100", 128, "2001:db8:1::1", 128),
            slaac,
            ha,
        );
        assert_eq!(m.kmaddress(Some(hoa), ha), Some(slaac));
        // The tunnel selector (HoA/128 -> ::/0) names the home address too.
        m.note_kmaddress(&sel("2001:db8:1::100", 128, "::", 0), IpAddr::V6(hoa), ha);
        assert_eq!(m.kmaddress(Some(hoa), ha), Some(IpAddr::V6(hoa)));
        assert_eq!(m.kmaddress(Some(hoa2), ha), None);
        let coa2: IpAddr = "2001:db8:3::5".parse().unwrap();
        m.note_kmaddress(&sel("2001:db8:1::200", 128, "::", 0), coa2, ha);
        assert_eq!(
            m.kmaddress(None, ha),
            Some(coa2),
            "the latest of any home address"
        );
        assert_eq!(m.kmaddress(Some(hoa), ha), Some(IpAddr::V6(hoa)));
        // The home agent's own address is never taken for a home address; unspecified
        // KMADDRESSes are not remembered.
        assert_eq!(
            m.kmaddress(Some("2001:db8:1::1".parse().unwrap()), ha),
            None
        );
        m.note_kmaddress(
            &sel("2001:db8:1::100", 128, "::", 0),
            "::".parse().unwrap(),
            ha,
        );
        assert_eq!(m.kmaddress(Some(hoa), ha), Some(IpAddr::V6(hoa)));
    }

    #[test]
    fn memory_stays_bounded() {
        let mut m = MobileNodeMemory::default();
        let ha: IpAddr = "2001:db8:1::1".parse().unwrap();
        for i in 0..(MAX_KMADDRESSES as u128 + 50) {
            let hoa = Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0001_0000u128 + i);
            let s = Selector::new(IpAddr::V6(hoa), 128, "::".parse().unwrap(), 0, 0);
            m.note_kmaddress(&s, "2001:db8:2::1".parse().unwrap(), ha);
        }
        assert_eq!(m.kmaddress.len(), MAX_KMADDRESSES);
        let plan = Plan {
            home_agent: "2001:db8:1::1".parse().unwrap(),
            home_address: HomeAddress::Dynamic,
            classes: vec![],
            remote_identity: None,
            assigned_hoa: None,
            ike_rekey_at: None,
            retire: Vec::new(),
        };
        for i in 0..40u16 {
            let remote = SocketAddr::new(
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, i, 0, 0, 0, 0, 1)),
                500,
            );
            m.remember(remote, 500, &plan);
        }
        assert_eq!(m.home_agents.len(), MAX_HOME_AGENTS);
    }
}
