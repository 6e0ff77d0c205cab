//! `[pools.<name>]` of the global file: home-address pools (`range` or `prefix`) and prefix pools
//! (`prefix` with `delegate`). User files name them with `pool = "<name>"` and
//! `prefix_pool = "<name>"`.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::sync::Arc;

use toml::Spanned;

use super::error::{ConfigError, Doc};
use super::schema::PoolSection;
use crate::mobility::pool::{DEFAULT_PREFIX_LIFETIME, prefix_span};
use crate::mobility::{Pool, PoolKind};

pub type Pools = BTreeMap<String, Arc<Pool>>;

/// `p/len` as an IPv6 prefix; `what` names the setting.
pub(crate) fn parse_prefix(
    doc: &Doc,
    v: &Spanned<String>,
    what: &str,
) -> Result<(Ipv6Addr, u8), ConfigError> {
    let bad = || {
        doc.at(
            v.span(),
            format!(
                "{what} = \"{}\" is not an IPv6 prefix; write e.g. \"2001:db8:1:100::/64\"",
                v.get_ref()
            ),
        )
    };
    let (a, l) = v.get_ref().trim().split_once('/').ok_or_else(bad)?;
    let a: Ipv6Addr = a.trim().parse().map_err(|_| bad())?;
    let l: u8 = l.trim().parse().map_err(|_| bad())?;
    if l > 128 {
        return Err(bad());
    }
    let (start, _) = prefix_span(a, l);
    if u128::from(a) != start {
        return Err(doc.at(
            v.span(),
            format!(
                "{what} = \"{}\" has host bits set; write \"{}/{l}\"",
                v.get_ref(),
                Ipv6Addr::from(start)
            ),
        ));
    }
    Ok((a, l))
}

fn pool(doc: &Doc, name: &str, p: &Spanned<PoolSection>) -> Result<Pool, ConfigError> {
    let sec = p.get_ref();
    let lifetime = sec
        .lifetime
        .as_ref()
        .map_or(DEFAULT_PREFIX_LIFETIME, |l| *l.get_ref());
    let kind = match (&sec.range, &sec.prefix, &sec.delegate) {
        (Some(r), None, None) => {
            let bad = || {
                doc.at(
                    r.span(),
                    format!(
                        "range = \"{}\" is not an address range; write e.g. range = \"2001:db8:1::1000-2001:db8:1::1fff\"",
                        r.get_ref()
                    ),
                )
            };
            let (a, b) = r.get_ref().split_once('-').ok_or_else(bad)?;
            let first: Ipv6Addr = a.trim().parse().map_err(|_| bad())?;
            let last: Ipv6Addr = b.trim().parse().map_err(|_| bad())?;
            if first > last {
                return Err(doc.at(
                    r.span(),
                    format!("range: {first} comes after {last}; write the lower address first"),
                ));
            }
            PoolKind::Addresses { first, last }
        }
        (None, Some(pr), None) => {
            let (base, len) = parse_prefix(doc, pr, "prefix")?;
            let (a, b) = prefix_span(base, len);
            // The prefix's first address is its Subnet-Router anycast address (RFC 4291
            // 2.6.1) when the prefix is the home link's: never a home address.
            let first = if len < 127 {
                a.saturating_add(1)
            } else {
                a.max(1)
            };
            PoolKind::Addresses {
                first: Ipv6Addr::from(first),
                last: Ipv6Addr::from(b),
            }
        }
        (None, Some(pr), Some(d)) => {
            let (base, base_len) = parse_prefix(doc, pr, "prefix")?;
            let len = *d.get_ref();
            if len <= base_len || len > 128 {
                return Err(doc.at(
                    d.span(),
                    format!(
                        "delegate = {len} must be longer than the pool prefix /{base_len} and at most 128; write e.g. delegate = 64"
                    ),
                ));
            }
            PoolKind::Prefixes {
                base,
                base_len,
                len,
            }
        }
        (Some(r), Some(_), _) => {
            return Err(doc.at(r.span(), "range and prefix are both set; keep one"));
        }
        (Some(_), None, Some(d)) | (None, None, Some(d)) => {
            return Err(doc.at(
                d.span(),
                "delegate needs prefix = \"<prefix>/<len>\" to carve prefixes from",
            ));
        }
        (None, None, None) => {
            return Err(doc.at(
                p.span(),
                format!(
                    "[pools.{name}] needs range = \"<first>-<last>\", prefix = \"<prefix>/<len>\", or prefix with delegate = <len> for prefix delegation"
                ),
            ));
        }
    };
    Ok(Pool {
        name: name.to_string(),
        kind,
        lifetime,
    })
}

/// Every `[pools.*]`; overlapping pools are an error (a lease must be unique across users).
pub(crate) fn load_pools(
    doc: &Doc,
    sections: &BTreeMap<String, Spanned<PoolSection>>,
) -> Result<Pools, ConfigError> {
    let mut out: Pools = BTreeMap::new();
    for (name, sec) in sections {
        let p = pool(doc, name, sec)?;
        let (a, b) = p.span();
        if let Some(other) = out.values().find(|o| {
            let (c, d) = o.span();
            a <= d && c <= b
        }) {
            return Err(doc.at(
                sec.span(),
                format!(
                    "pool {name} overlaps pool {}; give each pool its own addresses",
                    other.name
                ),
            ));
        }
        out.insert(name.clone(), Arc::new(p));
    }
    Ok(out)
}

/// Refuses a pool that spans one of the home agent's own addresses (`[home_agent] address`,
/// `[listen] addresses`): it would hand that address, or a prefix holding it, to a mobile node.
pub(crate) fn check_ha_addresses(
    doc: &Doc,
    sections: &BTreeMap<String, Spanned<PoolSection>>,
    pools: &Pools,
    ha_addresses: &[Ipv6Addr],
) -> Result<(), ConfigError> {
    for (name, p) in pools {
        let Some(a) = ha_addresses.iter().find(|a| p.covers(**a)) else {
            continue;
        };
        let fix = match p.kind {
            PoolKind::Addresses { first, last } => format!(
                "write a range that leaves it out (e.g. start after it: range = \"{}-{last}\")",
                Ipv6Addr::from(u128::from(*a).saturating_add(1).max(u128::from(first)))
            ),
            PoolKind::Prefixes { .. } => {
                "delegate from a prefix that leaves out the home link".to_string()
            }
        };
        let span = sections.get(name).map_or(0..0, |s| s.span());
        return Err(doc.at(
            span,
            format!("pool {name} contains the home agent's own address {a}; {fix}"),
        ));
    }
    Ok(())
}

/// A pool named in a user file, of the wanted kind (`prefixes`: a delegation pool).
pub(crate) fn lookup(
    doc: &Doc,
    pools: &Pools,
    v: &Spanned<String>,
    key: &str,
    prefixes: bool,
) -> Result<Arc<Pool>, ConfigError> {
    let name = v.get_ref().trim();
    let Some(p) = pools.get(name) else {
        let known: Vec<&str> = pools
            .values()
            .filter(|p| matches!(p.kind, PoolKind::Prefixes { .. }) == prefixes)
            .map(|p| p.name.as_str())
            .collect();
        let hint = if known.is_empty() {
            format!("define [pools.{name}] in the global file")
        } else {
            format!(
                "define [pools.{name}] in the global file or write one of {}",
                known
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        return Err(doc.at(
            v.span(),
            format!("{key} = \"{name}\": no such pool; {hint}"),
        ));
    };
    let is_prefix = matches!(p.kind, PoolKind::Prefixes { .. });
    if is_prefix != prefixes {
        let msg = if prefixes {
            format!(
                "prefix_pool = \"{name}\" is a pool of home addresses; a prefix pool has delegate = <len> (or write pool = \"{name}\")"
            )
        } else {
            format!(
                "pool = \"{name}\" delegates prefixes; write prefix_pool = \"{name}\" for it, or name an address pool"
            )
        };
        return Err(doc.at(v.span(), msg));
    }
    Ok(p.clone())
}
