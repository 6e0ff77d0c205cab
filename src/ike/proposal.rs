//! Proposals: strongSwan-style strings -> configuration, configuration -> SA payloads, and the
//! responder's selection (RFC 7296 2.7, 3.3.6).

use super::config::{EspProposal, IkeProposal};
use crate::crypto::{DhGroup, EncrAlg, IntegAlg, PrfAlg};
use crate::wire::consts::*;
use crate::wire::{Proposal, Transform};

/// The algorithms of an established IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub prf: PrfAlg,
    pub dh: DhGroup,
}

/// The algorithms of a CHILD_SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    pub encr: EncrAlg,
    pub integ: Option<IntegAlg>,
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

/// The algorithms a proposal string names, before the IKE or ESP rules apply.
struct Tokens {
    encr: Vec<EncrAlg>,
    integ: Vec<IntegAlg>,
    prf: Vec<PrfAlg>,
    dh: Vec<DhGroup>,
    esn: Option<bool>,
}

/// Splits a strongSwan-style proposal (`aes128-sha256-x25519`) into algorithms and checks the
/// rules IKE and ESP share (a cipher; AEAD xor integrity).
fn tokens(s: &str) -> Result<Tokens, String> {
    let mut t = Tokens {
        encr: Vec::new(),
        integ: Vec::new(),
        prf: Vec::new(),
        dh: Vec::new(),
        esn: None,
    };
    for tok in s.split('-') {
        match tok {
            "aes128" | "aes128cbc" => t.encr.push(EncrAlg::AesCbc128),
            "aes256" | "aes256cbc" => t.encr.push(EncrAlg::AesCbc256),
            "aes128gcm16" | "aes128gcm128" => t.encr.push(EncrAlg::AesGcm16_128),
            "aes256gcm16" | "aes256gcm128" => t.encr.push(EncrAlg::AesGcm16_256),
            "chacha20poly1305" => t.encr.push(EncrAlg::ChaCha20Poly1305),
            "sha256" | "sha2_256" => t.integ.push(IntegAlg::HmacSha256_128),
            "sha384" | "sha2_384" => t.integ.push(IntegAlg::HmacSha384_192),
            "sha512" | "sha2_512" => t.integ.push(IntegAlg::HmacSha512_256),
            "prfsha256" => t.prf.push(PrfAlg::HmacSha256),
            "prfsha384" => t.prf.push(PrfAlg::HmacSha384),
            "prfsha512" => t.prf.push(PrfAlg::HmacSha512),
            "modp2048" => t.dh.push(DhGroup::Modp2048),
            "modp3072" => t.dh.push(DhGroup::Modp3072),
            "modp4096" => t.dh.push(DhGroup::Modp4096),
            "ecp256" => t.dh.push(DhGroup::Ecp256),
            "ecp384" => t.dh.push(DhGroup::Ecp384),
            "ecp521" => t.dh.push(DhGroup::Ecp521),
            "x25519" | "curve25519" => t.dh.push(DhGroup::Curve25519),
            "esn" => t.esn = Some(true),
            "noesn" => t.esn = Some(false),
            other => {
                return Err(format!(
                    "unknown algorithm '{other}' in proposal '{s}' (known: aes128, aes256, aes128gcm16, \
                     aes256gcm16, chacha20poly1305, sha256, sha384, sha512, prfsha256, prfsha384, \
                     prfsha512, modp2048, modp3072, modp4096, ecp256, ecp384, ecp521, x25519, esn, \
                     noesn)"
                ));
            }
        }
    }
    if t.encr.is_empty() {
        return Err(format!(
            "proposal '{s}' names no encryption algorithm (e.g. aes128 or aes128gcm16)"
        ));
    }
    let aead = t.encr.iter().all(|e| e.is_aead());
    if t.encr.iter().any(|e| e.is_aead()) && !aead {
        return Err(format!(
            "proposal '{s}' mixes AEAD and non-AEAD ciphers; write two proposals"
        ));
    }
    if aead && !t.integ.is_empty() {
        return Err(format!(
            "proposal '{s}': an AEAD cipher takes no integrity algorithm"
        ));
    }
    if !aead && t.integ.is_empty() {
        return Err(format!(
            "proposal '{s}' needs an integrity algorithm (e.g. sha256)"
        ));
    }
    Ok(t)
}

/// An IKE proposal written as strongSwan does (`aes128-sha256-x25519`,
/// `aes128gcm16-prfsha256-ecp256`, `aes256-sha384-modp2048`). A `shaN` integrity algorithm also
/// gives PRF `prfshaN` unless a PRF is named. The error says what to write.
pub fn parse_ike_proposal(s: &str) -> Result<IkeProposal, String> {
    let Tokens {
        encr,
        integ,
        mut prf,
        dh,
        esn,
    } = tokens(s)?;
    if esn.is_some() {
        return Err(format!("IKE proposal '{s}' cannot name esn/noesn"));
    }
    if prf.is_empty() {
        prf = integ
            .iter()
            .map(|i| match i {
                IntegAlg::HmacSha256_128 => PrfAlg::HmacSha256,
                IntegAlg::HmacSha384_192 => PrfAlg::HmacSha384,
                IntegAlg::HmacSha512_256 => PrfAlg::HmacSha512,
            })
            .collect();
    }
    if prf.is_empty() {
        return Err(format!("AEAD proposal '{s}' needs a PRF (e.g. prfsha256)"));
    }
    if dh.is_empty() {
        return Err(format!(
            "IKE proposal '{s}' needs a DH group (x25519, ecp256, ecp384, ecp521, modp2048, \
             modp3072 or modp4096)"
        ));
    }
    Ok(IkeProposal {
        encr,
        integ,
        prf,
        dh,
    })
}

/// An ESP proposal written as strongSwan does (`aes128-sha256`, `aes128gcm16-esn`, with a DH
/// group for PFS: `aes128-sha256-x25519`).
pub fn parse_esp_proposal(s: &str) -> Result<EspProposal, String> {
    let Tokens {
        encr,
        integ,
        prf,
        dh,
        esn,
    } = tokens(s)?;
    if !prf.is_empty() {
        return Err(format!("ESP proposal '{s}' cannot name a PRF"));
    }
    Ok(EspProposal {
        encr,
        integ,
        dh,
        esn: esn.unwrap_or(false),
    })
}

/// An encryption transform: with the Key Length attribute for AES, without it for
/// ChaCha20-Poly1305, whose key length is fixed (RFC 7634 section 2: it MUST NOT be sent).
fn encr_transform(e: EncrAlg) -> Transform {
    let (id, bits) = e.id();
    if e.has_key_length_attr() {
        Transform::with_key_length(TRANS_ENCR, id, bits)
    } else {
        Transform::new(TRANS_ENCR, id)
    }
}

/// SA payload content for our IKE proposals. `first_dh` (the group of our KE) is moved to the
/// front of each proposal's DH list so that the responder prefers it.
pub fn ike_to_wire(props: &[IkeProposal], spi: &[u8], first_dh: Option<DhGroup>) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| encr_transform(*e)).collect();
            t.extend(p.prf.iter().map(|f| Transform::new(TRANS_PRF, f.id())));
            t.extend(p.integ.iter().map(|a| Transform::new(TRANS_INTEG, a.id())));
            let mut groups = p.dh.clone();
            if let Some(g) = first_dh
                && let Some(pos) = groups.iter().position(|x| *x == g)
            {
                groups.remove(pos);
                groups.insert(0, g);
            }
            t.extend(groups.iter().map(|g| Transform::new(TRANS_DH, g.id())));
            Proposal {
                number: (i + 1) as u8,
                protocol_id: PROTO_IKE,
                spi: spi.to_vec(),
                transforms: t,
            }
        })
        .collect()
}

/// SA payload content for our ESP proposals. With `pfs` the DH transforms are included
/// (CREATE_CHILD_SA), otherwise left out (IKE_AUTH, where no KE is possible).
pub fn esp_to_wire(props: &[EspProposal], spi: u32, pfs: bool) -> Vec<Proposal> {
    props
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut t: Vec<Transform> = p.encr.iter().map(|e| encr_transform(*e)).collect();
            t.extend(p.integ.iter().map(|a| Transform::new(TRANS_INTEG, a.id())));
            if pfs {
                t.extend(p.dh.iter().map(|g| Transform::new(TRANS_DH, g.id())));
            }
            t.push(Transform::new(
                TRANS_ESN,
                if p.esn { ESN_YES } else { ESN_NO },
            ));
            Proposal {
                number: (i + 1) as u8,
                protocol_id: PROTO_ESP,
                spi: spi.to_be_bytes().to_vec(),
                transforms: t,
            }
        })
        .collect()
}

/// Transforms of one type in a received proposal, skipping transforms with attributes we do
/// not understand (RFC 7296 3.3.6).
fn of_type(p: &Proposal, ty: u8) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| {
        t.transform_type == ty
            && t.attributes.iter().all(|a| matches!(a, crate::wire::TransformAttribute::Tv { attr_type, .. } if *attr_type == ATTR_KEY_LENGTH))
    })
}

/// Which side's order decides among acceptable proposals and transforms when we answer.
/// strongSwan's default (`prefer_configured_proposals = yes`) is ours: an operator who lists
/// AES-GCM first gets it even from a peer that lists AES-CBC first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefer {
    Ours,
    Peer,
}

/// The first of `ours` that `theirs` offers (our order), or the first of `theirs` that we
/// accept (the peer's order).
fn pick<T: PartialEq + Copy>(theirs: &[T], ours: &[T], prefer: Prefer) -> Option<T> {
    match prefer {
        Prefer::Ours => ours.iter().find(|o| theirs.contains(o)).copied(),
        Prefer::Peer => theirs.iter().find(|t| ours.contains(t)).copied(),
    }
}

fn pick_encr(p: &Proposal, ours: &[EncrAlg], prefer: Prefer) -> Option<EncrAlg> {
    let theirs: Vec<EncrAlg> = of_type(p, TRANS_ENCR)
        .filter_map(|t| EncrAlg::from_id(t.transform_id, t.key_length()))
        .collect();
    pick(&theirs, ours, prefer)
}

fn pick_integ(
    p: &Proposal,
    ours: &[IntegAlg],
    aead: bool,
    prefer: Prefer,
) -> Option<Option<IntegAlg>> {
    let mut integs = of_type(p, TRANS_INTEG).peekable();
    if aead {
        // AEAD: no integrity transform, or only NONE.
        return integs.all(|t| t.transform_id == AUTH_NONE).then_some(None);
    }
    let theirs: Vec<IntegAlg> = integs
        .filter_map(|t| IntegAlg::from_id(t.transform_id))
        .collect();
    pick(&theirs, ours, prefer).map(Some)
}

/// (theirs, ours) pairs in the order that `prefer` gives them.
fn pairs<'a, O>(
    theirs: &'a [Proposal],
    ours: &'a [O],
    protocol: u8,
    prefer: Prefer,
) -> Vec<(&'a Proposal, &'a O)> {
    let theirs: Vec<&Proposal> = theirs
        .iter()
        .filter(|p| p.protocol_id == protocol)
        .collect();
    let mut v = Vec::with_capacity(theirs.len() * ours.len());
    match prefer {
        Prefer::Peer => {
            for p in &theirs {
                v.extend(ours.iter().map(|o| (*p, o)));
            }
        }
        Prefer::Ours => {
            for o in ours {
                v.extend(theirs.iter().map(|p| (*p, o)));
            }
        }
    }
    v
}

/// Responder: the IKE proposal we accept (in `prefer`'s order), reduced to one transform per
/// type.
pub fn select_ike(
    ours: &[IkeProposal],
    theirs: &[Proposal],
    prefer: Prefer,
) -> Option<(Proposal, IkeSuite)> {
    for (p, o) in pairs(theirs, ours, PROTO_IKE, prefer) {
        let Some(encr) = pick_encr(p, &o.encr, prefer) else {
            continue;
        };
        let Some(integ) = pick_integ(p, &o.integ, encr.is_aead(), prefer) else {
            continue;
        };
        let prfs: Vec<PrfAlg> = of_type(p, TRANS_PRF)
            .filter_map(|t| PrfAlg::from_id(t.transform_id))
            .collect();
        let Some(prf) = pick(&prfs, &o.prf, prefer) else {
            continue;
        };
        let groups: Vec<DhGroup> = of_type(p, TRANS_DH)
            .filter_map(|t| DhGroup::from_id(t.transform_id))
            .collect();
        let Some(dh) = pick(&groups, &o.dh, prefer) else {
            continue;
        };
        let suite = IkeSuite {
            encr,
            integ,
            prf,
            dh,
        };
        return Some((ike_suite_to_wire(&suite, p.number, &p.spi), suite));
    }
    None
}

/// Responder with the peer's KE of `ke_group` in hand: a proposal with that group if any is
/// acceptable (no INVALID_KE_PAYLOAD round trip when the peer guessed a group we accept, even
/// if it is not our first); otherwise `Err` with the suite we would take (its group goes into
/// INVALID_KE_PAYLOAD), or `Err(None)` when nothing is acceptable.
pub fn select_ike_for_ke(
    ours: &[IkeProposal],
    theirs: &[Proposal],
    ke_group: u16,
    prefer: Prefer,
) -> Result<(Proposal, IkeSuite), Option<IkeSuite>> {
    if let Some(g) = DhGroup::from_id(ke_group) {
        let only_g: Vec<Proposal> = theirs
            .iter()
            .map(|p| {
                let mut p = p.clone();
                p.transforms
                    .retain(|t| t.transform_type != TRANS_DH || t.transform_id == g.id());
                p
            })
            .collect();
        if let Some(x) = select_ike(ours, &only_g, prefer) {
            return Ok(x);
        }
    }
    Err(select_ike(ours, theirs, prefer).map(|(_, s)| s))
}

/// The single-transform proposal describing `s`.
pub fn ike_suite_to_wire(s: &IkeSuite, number: u8, spi: &[u8]) -> Proposal {
    let mut t = vec![
        encr_transform(s.encr),
        Transform::new(TRANS_PRF, s.prf.id()),
    ];
    if let Some(i) = s.integ {
        t.push(Transform::new(TRANS_INTEG, i.id()));
    }
    t.push(Transform::new(TRANS_DH, s.dh.id()));
    Proposal {
        number,
        protocol_id: PROTO_IKE,
        spi: spi.to_vec(),
        transforms: t,
    }
}

/// Initiator: checks that the responder's answer is one proposal, with one transform of each
/// type, drawn from what we offered.
pub fn accept_ike(ours: &[IkeProposal], answer: &[Proposal]) -> Option<IkeSuite> {
    let [p] = answer else { return None };
    let (_, suite) = select_ike(ours, std::slice::from_ref(p), Prefer::Peer)?;
    let single = |ty| {
        p.transforms
            .iter()
            .filter(|t| t.transform_type == ty)
            .count()
            <= 1
    };
    (single(TRANS_ENCR) && single(TRANS_PRF) && single(TRANS_INTEG) && single(TRANS_DH))
        .then_some(suite)
}

/// Responder: the first ESP proposal we accept. `ke_group` is the group of the KE payload in a
/// CREATE_CHILD_SA (None in IKE_AUTH or without PFS). Returns the answer proposal (with our
/// inbound SPI), the suite and the peer's SPI.
pub fn select_esp(
    ours: &[EspProposal],
    theirs: &[Proposal],
    our_spi: u32,
    ke_group: Option<DhGroup>,
) -> Option<(Proposal, EspSuite, u32)> {
    select_esp_pfs(ours, theirs, our_spi, ke_group, false, Prefer::Peer)
}

/// `select_esp` for a CREATE_CHILD_SA (`create_child`): there, a request without KE matches
/// only our proposals that name no DH group. Ours with a group demand PFS (RFC 7296 1.3.1),
/// and taking a request without KE would quietly derive the keys from SK_d alone. In IKE_AUTH
/// the first CHILD_SA's keys never have a DH of their own, so the groups do not count there.
pub fn select_esp_pfs(
    ours: &[EspProposal],
    theirs: &[Proposal],
    our_spi: u32,
    ke_group: Option<DhGroup>,
    create_child: bool,
    prefer: Prefer,
) -> Option<(Proposal, EspSuite, u32)> {
    for (p, o) in pairs(theirs, ours, PROTO_ESP, prefer) {
        let Ok(spi_bytes) = <[u8; 4]>::try_from(p.spi.as_slice()) else {
            continue;
        };
        if u32::from_be_bytes(spi_bytes) < 256 {
            // SPI 0 and 1-255 are reserved (RFC 4303 2.1): the kernel refuses such an SA, so
            // a proposal carrying one is not acceptable.
            continue;
        }
        {
            let Some(encr) = pick_encr(p, &o.encr, prefer) else {
                continue;
            };
            let Some(integ) = pick_integ(p, &o.integ, encr.is_aead(), prefer) else {
                continue;
            };
            let esn_ids: Vec<u16> = of_type(p, TRANS_ESN).map(|t| t.transform_id).collect();
            let want = if o.esn { ESN_YES } else { ESN_NO };
            let esn = if esn_ids.is_empty() {
                false
            } else if esn_ids.contains(&want) {
                o.esn
            } else {
                continue;
            };
            let their_dh: Vec<DhGroup> = of_type(p, TRANS_DH)
                .filter_map(|t| DhGroup::from_id(t.transform_id))
                .collect();
            let dh = match ke_group {
                Some(g) if their_dh.contains(&g) && (o.dh.contains(&g) || o.dh.is_empty()) => {
                    Some(g)
                }
                Some(_) => continue,
                None if create_child && !o.dh.is_empty() => continue,
                None => None,
            };
            let suite = EspSuite {
                encr,
                integ,
                dh,
                esn,
            };
            return Some((
                esp_suite_to_wire(&suite, p.number, our_spi),
                suite,
                u32::from_be_bytes(spi_bytes),
            ));
        }
    }
    None
}

pub fn esp_suite_to_wire(s: &EspSuite, number: u8, spi: u32) -> Proposal {
    let mut t = vec![encr_transform(s.encr)];
    if let Some(i) = s.integ {
        t.push(Transform::new(TRANS_INTEG, i.id()));
    }
    if let Some(g) = s.dh {
        t.push(Transform::new(TRANS_DH, g.id()));
    }
    t.push(Transform::new(
        TRANS_ESN,
        if s.esn { ESN_YES } else { ESN_NO },
    ));
    Proposal {
        number,
        protocol_id: PROTO_ESP,
        spi: spi.to_be_bytes().to_vec(),
        transforms: t,
    }
}

/// Initiator: the responder's ESP answer, checked against our offer; returns the suite and the
/// peer's SPI.
pub fn accept_esp(
    ours: &[EspProposal],
    answer: &[Proposal],
    ke_group: Option<DhGroup>,
) -> Option<(EspSuite, u32)> {
    let [p] = answer else { return None };
    let (_, suite, spi) = select_esp(ours, std::slice::from_ref(p), 0, ke_group)?;
    Some((suite, spi))
}

/// Readable names for listings, e.g. "AES_CBC_128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519".
pub fn encr_name(e: EncrAlg) -> &'static str {
    match e {
        EncrAlg::AesCbc128 => "AES_CBC_128",
        EncrAlg::AesCbc256 => "AES_CBC_256",
        EncrAlg::AesGcm16_128 => "AES_GCM_16_128",
        EncrAlg::AesGcm16_256 => "AES_GCM_16_256",
        EncrAlg::ChaCha20Poly1305 => "CHACHA20_POLY1305",
    }
}
pub fn integ_name(i: IntegAlg) -> &'static str {
    match i {
        IntegAlg::HmacSha256_128 => "HMAC_SHA2_256_128",
        IntegAlg::HmacSha384_192 => "HMAC_SHA2_384_192",
        IntegAlg::HmacSha512_256 => "HMAC_SHA2_512_256",
    }
}
pub fn prf_name(p: PrfAlg) -> &'static str {
    match p {
        PrfAlg::HmacSha256 => "PRF_HMAC_SHA2_256",
        PrfAlg::HmacSha384 => "PRF_HMAC_SHA2_384",
        PrfAlg::HmacSha512 => "PRF_HMAC_SHA2_512",
    }
}
pub fn dh_name(g: DhGroup) -> &'static str {
    match g {
        DhGroup::Modp2048 => "MODP_2048",
        DhGroup::Modp3072 => "MODP_3072",
        DhGroup::Modp4096 => "MODP_4096",
        DhGroup::Ecp256 => "ECP_256",
        DhGroup::Ecp384 => "ECP_384",
        DhGroup::Ecp521 => "ECP_521",
        DhGroup::Curve25519 => "CURVE_25519",
    }
}

impl std::fmt::Display for IkeSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", encr_name(self.encr))?;
        if let Some(i) = self.integ {
            write!(f, "/{}", integ_name(i))?;
        }
        write!(f, "/{}/{}", prf_name(self.prf), dh_name(self.dh))
    }
}

impl std::fmt::Display for EspSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", encr_name(self.encr))?;
        if let Some(i) = self.integ {
            write!(f, "/{}", integ_name(i))?;
        }
        if let Some(g) = self.dh {
            write!(f, "/{}", dh_name(g))?;
        }
        if self.esn {
            write!(f, "/ESN")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ike(list: &[&str]) -> Vec<IkeProposal> {
        list.iter()
            .map(|s| parse_ike_proposal(s).unwrap())
            .collect()
    }
    fn esp(list: &[&str]) -> Vec<EspProposal> {
        list.iter()
            .map(|s| parse_esp_proposal(s).unwrap())
            .collect()
    }

    #[test]
    fn the_responder_takes_its_own_order_unless_told_otherwise() {
        // The peer lists CBC first, we list GCM first (HA-initiated rekeys once moved ESP from
        // GCM to CBC this way).
        let theirs = esp_to_wire(&esp(&["aes128-sha256", "aes128gcm16"]), 0x1234, false);
        let ours = esp(&["aes128gcm16", "aes128-sha256"]);
        let (_, s, spi) =
            select_esp_pfs(&ours, &theirs, 0x5678, None, false, Prefer::Ours).unwrap();
        assert_eq!((s.encr, spi), (EncrAlg::AesGcm16_128, 0x1234));
        let (_, s, _) = select_esp_pfs(&ours, &theirs, 0x5678, None, false, Prefer::Peer).unwrap();
        assert_eq!(s.encr, EncrAlg::AesCbc128);
        // One proposal with several transforms: the transform order follows the same rule.
        let theirs = ike_to_wire(&ike(&["aes128-aes256-sha256-x25519"]), &[], None);
        let ours = ike(&["aes256-aes128-sha256-x25519"]);
        let (_, s) = select_ike(&ours, &theirs, Prefer::Ours).unwrap();
        assert_eq!(s.encr, EncrAlg::AesCbc256);
        let (_, s) = select_ike(&ours, &theirs, Prefer::Peer).unwrap();
        assert_eq!(s.encr, EncrAlg::AesCbc128);
    }

    #[test]
    fn a_ke_group_we_accept_is_taken_even_when_it_is_not_our_first() {
        let theirs = ike_to_wire(
            &ike(&["aes128-sha256-x25519", "aes128-sha256-ecp256"]),
            &[],
            None,
        );
        let ours = ike(&["aes128-sha256-ecp256", "aes128-sha256-x25519"]);
        for prefer in [Prefer::Ours, Prefer::Peer] {
            let (answer, s) =
                select_ike_for_ke(&ours, &theirs, DhGroup::Curve25519.id(), prefer).unwrap();
            assert_eq!(
                s.dh,
                DhGroup::Curve25519,
                "{prefer:?}: no INVALID_KE round trip"
            );
            assert_eq!(of_type(&answer, TRANS_DH).count(), 1);
        }
        // A KE of a group we do not take: INVALID_KE_PAYLOAD names ours (our first, by default).
        let ours = ike(&["aes128-sha256-ecp256"]);
        let err = select_ike_for_ke(&ours, &theirs, DhGroup::Curve25519.id(), Prefer::Ours);
        assert_eq!(
            err.err(),
            Some(Some(select_ike(&ours, &theirs, Prefer::Ours).unwrap().1))
        );
        let none = ike(&["aes256gcm16-prfsha384-ecp256"]);
        let theirs_cbc = ike_to_wire(&ike(&["aes128-sha256-x25519"]), &[], None);
        assert_eq!(
            select_ike_for_ke(&none, &theirs_cbc, DhGroup::Curve25519.id(), Prefer::Ours).err(),
            Some(None)
        );
    }

    #[test]
    fn strongswan_tokens_of_the_default_proposals() {
        let p = parse_ike_proposal("chacha20poly1305-prfsha256-ecp384").unwrap();
        assert_eq!(p.encr, vec![EncrAlg::ChaCha20Poly1305]);
        assert!(p.integ.is_empty());
        assert_eq!(p.dh, vec![DhGroup::Ecp384]);
        let p =
            parse_ike_proposal("aes256gcm16-prfsha384-ecp384-ecp521-modp3072-modp4096").unwrap();
        assert_eq!(p.prf, vec![PrfAlg::HmacSha384]);
        assert_eq!(
            p.dh,
            vec![
                DhGroup::Ecp384,
                DhGroup::Ecp521,
                DhGroup::Modp3072,
                DhGroup::Modp4096
            ]
        );
        let e = parse_esp_proposal("chacha20poly1305-ecp521").unwrap();
        assert_eq!(
            (e.encr[0], e.dh[0]),
            (EncrAlg::ChaCha20Poly1305, DhGroup::Ecp521)
        );
        // AEAD rules hold for ChaCha20-Poly1305 too.
        assert!(
            parse_ike_proposal("chacha20poly1305-ecp384").is_err(),
            "needs a PRF"
        );
        assert!(parse_esp_proposal("chacha20poly1305-sha256").is_err());
        assert!(parse_esp_proposal("chacha20poly1305-aes128").is_err());
    }

    #[test]
    fn chacha20_poly1305_goes_without_key_length_and_refuses_one() {
        let ours = esp(&["chacha20poly1305"]);
        let wire = esp_to_wire(&ours, 0x1234, false);
        let encr: Vec<&Transform> = of_type(&wire[0], TRANS_ENCR).collect();
        assert_eq!(encr.len(), 1);
        assert_eq!(encr[0].transform_id, 28);
        assert!(encr[0].attributes.is_empty(), "RFC 7634 2: no Key Length");
        let (answer, s, _) = select_esp(&ours, &wire, 0x5678, None).unwrap();
        assert_eq!(s.encr, EncrAlg::ChaCha20Poly1305);
        assert!(of_type(&answer, TRANS_ENCR).all(|t| t.attributes.is_empty()));
        // A peer that adds a Key Length of 256 offers something we do not know.
        let mut odd = wire.clone();
        odd[0].transforms[0] = Transform::with_key_length(TRANS_ENCR, 28, 256);
        assert!(select_esp(&ours, &odd, 0x5678, None).is_none());
        // The IKE side likewise, and the answer names the suite.
        let ike_ours = ike(&["chacha20poly1305-prfsha256-ecp384"]);
        let theirs = ike_to_wire(&ike_ours, &[1; 8], None);
        let (answer, suite) = select_ike(&ike_ours, &theirs, Prefer::Ours).unwrap();
        assert_eq!(accept_ike(&ike_ours, &[answer]), Some(suite));
        assert_eq!(
            suite.to_string(),
            "CHACHA20_POLY1305/PRF_HMAC_SHA2_256/ECP_384"
        );
    }
}
