//! Diffie-Hellman: MODP-2048/3072/4096 (groups 14, 15, 16; constant time with crypto-bigint),
//! ECP-256 and ECP-384 (groups 19, 20, ring), ECP-521 (group 21, RustCrypto's p521, because ring
//! has no P-521) and Curve25519 (group 31, ring).
//!
//! Public values are in IKEv2 encoding: MODP big-endian padded to the prime's length; ECP is
//! x | y (each coordinate padded to the field's length: 32, 48, 66 bytes, no 0x04 prefix,
//! RFC 5903); Curve25519 is the 32-byte u-coordinate (RFC 8031). Shared secrets: MODP g^xy
//! padded to the prime's length; ECP the x coordinate; X25519 32 bytes.

use super::{Error, Rng, Secret};
use crypto_bigint::modular::{ConstMontyForm, ConstMontyParams};
use crypto_bigint::{U256, U384, U2048, U3072, U4096, Uint};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhGroup {
    Modp2048,
    Modp3072,
    Modp4096,
    Ecp256,
    Ecp384,
    Ecp521,
    Curve25519,
}

impl DhGroup {
    /// Every group we implement, in no particular order (for tests and listings).
    pub const ALL: [DhGroup; 7] = [
        DhGroup::Modp2048,
        DhGroup::Modp3072,
        DhGroup::Modp4096,
        DhGroup::Ecp256,
        DhGroup::Ecp384,
        DhGroup::Ecp521,
        DhGroup::Curve25519,
    ];

    pub fn from_id(id: u16) -> Option<DhGroup> {
        DhGroup::ALL.into_iter().find(|g| g.id() == id)
    }
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Modp3072 => 15,
            DhGroup::Modp4096 => 16,
            DhGroup::Ecp256 => 19,
            DhGroup::Ecp384 => 20,
            DhGroup::Ecp521 => 21,
            DhGroup::Curve25519 => 31,
        }
    }
    /// Cheap checks of a peer's public value, to run before any expensive DH computation (a
    /// MODP exponentiation costs milliseconds, and a spoofed IKE_SA_INIT can ask for one):
    /// the length for all groups, 1 < y < p-1 for MODP, and for ECP that (x, y) is a point on
    /// the curve. X25519 takes every 32-byte string (low-order points are refused by the
    /// agreement itself, which costs about as little as this check would).
    pub fn check_public(self, peer: &[u8]) -> Result<(), Error> {
        match self {
            DhGroup::Modp2048 => {
                parse_modp_public::<Modp2048Prime, { U2048::LIMBS }>(peer).map(|_| ())
            }
            DhGroup::Modp3072 => {
                parse_modp_public::<Modp3072Prime, { U3072::LIMBS }>(peer).map(|_| ())
            }
            DhGroup::Modp4096 => {
                parse_modp_public::<Modp4096Prime, { U4096::LIMBS }>(peer).map(|_| ())
            }
            DhGroup::Ecp256 => on_curve::<P256Field, { U256::LIMBS }>(peer, &P256_B),
            DhGroup::Ecp384 => on_curve::<P384Field, { U384::LIMBS }>(peer, &P384_B),
            DhGroup::Ecp521 => p521_public(peer).map(|_| ()),
            DhGroup::Curve25519 => {
                if peer.len() == 32 {
                    Ok(())
                } else {
                    Err(Error::InvalidPublicValue)
                }
            }
        }
    }

    /// The prime of a MODP group, big-endian and as long as a public value (None for the
    /// elliptic curves): for tests and diagnostics that need p - 1 or p.
    pub fn modp_prime(self) -> Option<Vec<u8>> {
        let p = match self {
            DhGroup::Modp2048 => modulus::<Modp2048Prime, { U2048::LIMBS }>()
                .to_be_bytes()
                .as_ref()
                .to_vec(),
            DhGroup::Modp3072 => modulus::<Modp3072Prime, { U3072::LIMBS }>()
                .to_be_bytes()
                .as_ref()
                .to_vec(),
            DhGroup::Modp4096 => modulus::<Modp4096Prime, { U4096::LIMBS }>()
                .to_be_bytes()
                .as_ref()
                .to_vec(),
            _ => return None,
        };
        Some(p)
    }

    /// Length of a public value on the wire.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => 256,
            DhGroup::Modp3072 => 384,
            DhGroup::Modp4096 => 512,
            DhGroup::Ecp256 => 64,
            DhGroup::Ecp384 => 96,
            DhGroup::Ecp521 => 2 * P521_COORD,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// Bytes of a MODP private exponent: twice the group's strength in bits (RFC 3526 section 8,
/// NIST SP 800-57: 2048 and 3072 bits give at most 128 bits, 4096 about 150), rounded up to
/// a size crypto-bigint has. The exponent's length is public, its bits are not.
const MODP_EXP_LEN: usize = 32;
const MODP4096_EXP_LEN: usize = 48;

// The MODP groups of RFC 3526 (sections 3, 4, 5), generator 2:
// p = 2^n - 2^(n-64) - 1 + 2^64 * ( [2^(n-130) pi] + k ). The constants were computed from
// this formula and checked against the RFC's text; the tests check that each is a safe prime.
crypto_bigint::const_monty_params!(
    Modp2048Prime,
    U2048,
    concat!(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
        "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
        "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
        "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
        "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
        "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
        "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
        "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
        "15728E5A8AACAA68FFFFFFFFFFFFFFFF",
    ),
    "The RFC 3526 2048-bit MODP prime"
);
crypto_bigint::const_monty_params!(
    Modp3072Prime,
    U3072,
    concat!(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
        "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
        "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
        "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
        "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
        "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
        "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
        "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
        "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64",
        "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B",
        "F12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
        "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31",
        "43DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF",
    ),
    "The RFC 3526 3072-bit MODP prime"
);
crypto_bigint::const_monty_params!(
    Modp4096Prime,
    U4096,
    concat!(
        "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1",
        "29024E088A67CC74020BBEA63B139B22514A08798E3404DD",
        "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245",
        "E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED",
        "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D",
        "C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F",
        "83655D23DCA3AD961C62F356208552BB9ED529077096966D",
        "670C354E4ABC9804F1746C08CA18217C32905E462E36CE3B",
        "E39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9",
        "DE2BCBF6955817183995497CEA956AE515D2261898FA0510",
        "15728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64",
        "ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7",
        "ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6B",
        "F12FFA06D98A0864D87602733EC86A64521F2B18177B200C",
        "BBE117577A615D6C770988C0BAD946E208E24FA074E5AB31",
        "43DB5BFCE0FD108E4B82D120A92108011A723C12A787E6D7",
        "88719A10BDBA5B2699C327186AF4E23C1A946834B6150BDA",
        "2583E9CA2AD44CE8DBBBC2DB04DE8EF92E8EFC141FBECAA6",
        "287C59474E6BC05D99B2964FA090C3A2233BA186515BE7ED",
        "1F612970CEE2D7AFB81BDD762170481CD0069127D5B05AA9",
        "93B4EA988D8FDDC186FFB7DC90A6C08F4DF435C934063199",
        "FFFFFFFFFFFFFFFF",
    ),
    "The RFC 3526 4096-bit MODP prime"
);

/// The modulus p of a MODP group as a plain integer (for range checks of public values).
fn modulus<P: ConstMontyParams<L>, const L: usize>() -> Uint<L> {
    *P::PARAMS.modulus().as_ref()
}

/// base^exp mod p, constant time in `exp` (crypto-bigint's non-vartime windowed exponentiation
/// selects table entries with constant-time selects), big-endian padded to p's length.
fn modp_pow<P: ConstMontyParams<L>, const L: usize, const E: usize>(
    base: &Uint<L>,
    exp: &[u8],
) -> Secret {
    let mut x = Uint::<E>::from_be_slice(exp);
    let mut r = ConstMontyForm::<P, L>::new(base).pow(&x).retrieve();
    let mut bytes = r.to_be_bytes();
    let out = Zeroizing::new(bytes.as_ref().to_vec());
    x.zeroize();
    r.zeroize();
    bytes.zeroize();
    out
}

/// Checks a peer's MODP value: exactly p's length and 1 < y < p-1 (RFC 6989 section 2.1, enough
/// for a safe-prime group: rejects 0, 1, p-1 and anything not reduced mod p, which leaves no
/// element of order 1 or 2).
fn parse_modp_public<P: ConstMontyParams<L>, const L: usize>(
    peer: &[u8],
) -> Result<Uint<L>, Error> {
    if peer.len() != Uint::<L>::BYTES {
        return Err(Error::InvalidPublicValue);
    }
    let y = Uint::<L>::from_be_slice(peer);
    let p_minus_1 = modulus::<P, L>().wrapping_sub(&Uint::ONE);
    // Public data: an ordinary (variable-time) comparison is fine.
    if y > Uint::ONE && y < p_minus_1 {
        Ok(y)
    } else {
        Err(Error::InvalidPublicValue)
    }
}

// The field primes of NIST P-256 and P-384 (FIPS 186-4 D.1.2.3, D.1.2.4), for the on-curve
// check of peer points.
crypto_bigint::const_monty_params!(
    P256Field,
    U256,
    "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF",
    "The NIST P-256 field prime"
);
crypto_bigint::const_monty_params!(
    P384Field,
    U384,
    concat!(
        "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF",
        "FFFFFFFFFFFFFFFEFFFFFFFF0000000000000000FFFFFFFF"
    ),
    "The NIST P-384 field prime"
);

/// The curve coefficient b of P-256 (a = -3).
const P256_B: U256 =
    U256::from_be_hex("5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B");
/// The curve coefficient b of P-384 (a = -3).
const P384_B: U384 = U384::from_be_hex(concat!(
    "B3312FA7E23EE7E4988E056BE3F82D19181D9C6EFE814112",
    "0314088F5013875AC656398D8A2ED19D2A85C8EDD3EC2AEF"
));

/// Whether `peer` (x | y, each coordinate the field's length) is a point on the NIST curve
/// with field `P` and coefficient `b` (a = -3): x, y < p and y² = x³ - 3x + b. The point at
/// infinity has no such encoding. A handful of field operations on public data.
fn on_curve<P: ConstMontyParams<L>, const L: usize>(peer: &[u8], b: &Uint<L>) -> Result<(), Error> {
    let n = Uint::<L>::BYTES;
    if peer.len() != 2 * n {
        return Err(Error::InvalidPublicValue);
    }
    let p = modulus::<P, L>();
    let (x, y) = (
        Uint::<L>::from_be_slice(&peer[..n]),
        Uint::<L>::from_be_slice(&peer[n..]),
    );
    if x >= p || y >= p {
        return Err(Error::InvalidPublicValue);
    }
    type F<P, const L: usize> = ConstMontyForm<P, L>;
    let (x, y) = (F::<P, L>::new(&x), F::<P, L>::new(&y));
    let three = F::<P, L>::new(&Uint::from_u8(3));
    let b = F::<P, L>::new(b);
    let rhs = x.square() * x - three * x + b;
    if y.square().retrieve() == rhs.retrieve() {
        Ok(())
    } else {
        Err(Error::InvalidPublicValue)
    }
}

/// Bytes of a P-521 coordinate (ceil(521 / 8)).
const P521_COORD: usize = 66;

/// A peer's ECP-521 value (x | y, 132 bytes) as a point: p521 checks that the coordinates are
/// reduced and that the point is on the curve (the uncompressed form has no identity).
fn p521_public(peer: &[u8]) -> Result<p521::PublicKey, Error> {
    if peer.len() != 2 * P521_COORD {
        return Err(Error::InvalidPublicValue);
    }
    let mut sec1 = [0u8; 1 + 2 * P521_COORD];
    sec1[0] = 0x04;
    sec1[1..].copy_from_slice(peer);
    p521::PublicKey::from_sec1_bytes(&sec1).map_err(|_| Error::InvalidPublicValue)
}

/// A private key for one exchange.
pub struct DhPrivate(Inner);

/// Shows only the group: the key itself is never printed.
impl std::fmt::Debug for DhPrivate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DhPrivate").field(&self.group()).finish()
    }
}

enum Inner {
    /// The group and its private exponent, big-endian; never zero.
    Modp(DhGroup, Zeroizing<Vec<u8>>),
    /// ring's ephemeral keys zeroize themselves and can be used once (agree consumes them).
    Ecp256(EphemeralPrivateKey),
    Ecp384(EphemeralPrivateKey),
    /// p521's secret key zeroizes itself on drop.
    Ecp521(p521::SecretKey),
    Curve25519(EphemeralPrivateKey),
}

/// `rng` bytes into `buf`, retried while all zero (a zero exponent or scalar would be useless;
/// drawing one has negligible probability, so seeing it repeatedly means the generator is
/// broken).
fn fill_nonzero(rng: &mut dyn Rng, buf: &mut [u8], mask_first: u8) -> Result<(), Error> {
    for _ in 0..4 {
        rng.fill(buf);
        buf[0] &= mask_first;
        if buf.iter().any(|&b| b != 0) {
            return Ok(());
        }
    }
    Err(Error::Random)
}

impl DhPrivate {
    /// Generates a key pair; returns the private part and the public value to put in KE.
    /// MODP exponents and P-521 scalars come from `rng`; ring's groups use ring's own generator
    /// (its RNG trait is sealed).
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<(DhPrivate, Vec<u8>), Error> {
        match group {
            DhGroup::Modp2048 | DhGroup::Modp3072 | DhGroup::Modp4096 => {
                let len = if group == DhGroup::Modp4096 {
                    MODP4096_EXP_LEN
                } else {
                    MODP_EXP_LEN
                };
                let mut exp = Zeroizing::new(vec![0u8; len]);
                fill_nonzero(rng, &mut exp, 0xff)?;
                let public = modp_base_pow(group, 2, &exp)?;
                Ok((DhPrivate(Inner::Modp(group, exp)), public.to_vec()))
            }
            DhGroup::Ecp256 | DhGroup::Ecp384 => {
                let alg = if group == DhGroup::Ecp256 {
                    &agreement::ECDH_P256
                } else {
                    &agreement::ECDH_P384
                };
                let (key, public) = ring_generate(alg)?;
                // ring gives the SEC1 uncompressed point 0x04 | x | y; IKEv2 sends x | y
                // (RFC 5903 section 7).
                let xy = match public.split_first() {
                    Some((0x04, xy)) if xy.len() == group.public_len() => xy.to_vec(),
                    _ => return Err(Error::Unsupported),
                };
                let inner = if group == DhGroup::Ecp256 {
                    Inner::Ecp256(key)
                } else {
                    Inner::Ecp384(key)
                };
                Ok((DhPrivate(inner), xy))
            }
            DhGroup::Ecp521 => {
                // A scalar of 521 bits, drawn until it is below the group order (almost always
                // at once: the order is just under 2^521).
                let mut bytes = Zeroizing::new([0u8; P521_COORD]);
                for _ in 0..16 {
                    fill_nonzero(rng, &mut bytes[..], 0x01)?;
                    if let Ok(key) = p521::SecretKey::from_slice(&bytes[..]) {
                        let public = p521_xy(&key.public_key())?;
                        return Ok((DhPrivate(Inner::Ecp521(key)), public));
                    }
                }
                Err(Error::Random)
            }
            DhGroup::Curve25519 => {
                let (key, public) = ring_generate(&agreement::X25519)?;
                Ok((DhPrivate(Inner::Curve25519(key)), public))
            }
        }
    }

    /// A P-521 key from a given scalar (big-endian, 66 bytes): for RFC 5903's known answers.
    #[cfg(test)]
    fn ecp521_from_scalar(scalar: &[u8]) -> (DhPrivate, Vec<u8>) {
        let key = p521::SecretKey::from_slice(scalar).unwrap();
        let public = p521_xy(&key.public_key()).unwrap();
        (DhPrivate(Inner::Ecp521(key)), public)
    }

    pub fn group(&self) -> DhGroup {
        match &self.0 {
            Inner::Modp(g, _) => *g,
            Inner::Ecp256(_) => DhGroup::Ecp256,
            Inner::Ecp384(_) => DhGroup::Ecp384,
            Inner::Ecp521(_) => DhGroup::Ecp521,
            Inner::Curve25519(_) => DhGroup::Curve25519,
        }
    }
    /// Computes the shared secret; checks the peer value (length, range, point on curve,
    /// non-zero X25519 result).
    pub fn agree(self, peer_public: &[u8]) -> Result<Secret, Error> {
        let group = self.group();
        match self.0 {
            Inner::Modp(g, exp) => {
                g.check_public(peer_public)?;
                modp_peer_pow(g, peer_public, &exp)
            }
            Inner::Ecp256(key) | Inner::Ecp384(key) => {
                if peer_public.len() != group.public_len() {
                    return Err(Error::InvalidPublicValue);
                }
                // Back to SEC1 uncompressed form for ring, which checks the point is on the
                // curve and not the point at infinity.
                let mut sec1 = Vec::with_capacity(1 + peer_public.len());
                sec1.push(0x04);
                sec1.extend_from_slice(peer_public);
                let alg = if group == DhGroup::Ecp256 {
                    &agreement::ECDH_P256
                } else {
                    &agreement::ECDH_P384
                };
                ring_agree(key, alg, &sec1)
            }
            Inner::Ecp521(key) => {
                let peer = p521_public(peer_public)?;
                // The shared secret wipes itself on drop; we keep a wiped copy of its x.
                let shared = key.diffie_hellman(&peer);
                Ok(Zeroizing::new(shared.raw_secret_bytes().to_vec()))
            }
            Inner::Curve25519(key) => {
                if peer_public.len() != 32 {
                    return Err(Error::InvalidPublicValue);
                }
                // ring refuses an all-zero result (low-order peer points, RFC 7748 6.1).
                ring_agree(key, &agreement::X25519, peer_public)
            }
        }
    }
}

/// base^exp in a MODP group, base a small integer (the generator).
fn modp_base_pow(group: DhGroup, base: u8, exp: &[u8]) -> Result<Secret, Error> {
    Ok(match group {
        DhGroup::Modp2048 => {
            modp_pow::<Modp2048Prime, { U2048::LIMBS }, { U256::LIMBS }>(&Uint::from_u8(base), exp)
        }
        DhGroup::Modp3072 => {
            modp_pow::<Modp3072Prime, { U3072::LIMBS }, { U256::LIMBS }>(&Uint::from_u8(base), exp)
        }
        DhGroup::Modp4096 => {
            modp_pow::<Modp4096Prime, { U4096::LIMBS }, { U384::LIMBS }>(&Uint::from_u8(base), exp)
        }
        _ => return Err(Error::Unsupported),
    })
}

/// peer^exp in a MODP group, the peer's value checked (1 < y < p-1).
fn modp_peer_pow(group: DhGroup, peer: &[u8], exp: &[u8]) -> Result<Secret, Error> {
    Ok(match group {
        DhGroup::Modp2048 => modp_pow::<Modp2048Prime, { U2048::LIMBS }, { U256::LIMBS }>(
            &parse_modp_public::<Modp2048Prime, { U2048::LIMBS }>(peer)?,
            exp,
        ),
        DhGroup::Modp3072 => modp_pow::<Modp3072Prime, { U3072::LIMBS }, { U256::LIMBS }>(
            &parse_modp_public::<Modp3072Prime, { U3072::LIMBS }>(peer)?,
            exp,
        ),
        DhGroup::Modp4096 => modp_pow::<Modp4096Prime, { U4096::LIMBS }, { U384::LIMBS }>(
            &parse_modp_public::<Modp4096Prime, { U4096::LIMBS }>(peer)?,
            exp,
        ),
        _ => return Err(Error::Unsupported),
    })
}

/// x | y of a P-521 public key (SEC1 uncompressed without its 0x04).
fn p521_xy(key: &p521::PublicKey) -> Result<Vec<u8>, Error> {
    use p521::elliptic_curve::sec1::ToSec1Point;
    let point = key.to_sec1_point(false);
    match point.as_bytes().split_first() {
        Some((0x04, xy)) if xy.len() == 2 * P521_COORD => Ok(xy.to_vec()),
        _ => Err(Error::Unsupported),
    }
}

fn ring_generate(
    alg: &'static agreement::Algorithm,
) -> Result<(EphemeralPrivateKey, Vec<u8>), Error> {
    let rng = ring::rand::SystemRandom::new();
    let key = EphemeralPrivateKey::generate(alg, &rng).map_err(|_| Error::Random)?;
    let public = key.compute_public_key().map_err(|_| Error::Random)?;
    Ok((key, public.as_ref().to_vec()))
}

fn ring_agree(
    key: EphemeralPrivateKey,
    alg: &'static agreement::Algorithm,
    peer: &[u8],
) -> Result<Secret, Error> {
    agreement::agree_ephemeral(key, &UnparsedPublicKey::new(alg, peer), |shared| {
        Zeroizing::new(shared.to_vec())
    })
    .map_err(|_| Error::InvalidPublicValue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::TestRng;

    use crate::testutil::hex as unhex;

    type ModpElement = ConstMontyForm<Modp2048Prime, { U2048::LIMBS }>;

    fn modp_p() -> U2048 {
        modulus::<Modp2048Prime, { U2048::LIMBS }>()
    }

    fn modp2048_pow(base: &U2048, exp: &[u8]) -> Secret {
        modp_pow::<Modp2048Prime, { U2048::LIMBS }, { U256::LIMBS }>(base, exp)
    }

    fn p_bytes() -> Vec<u8> {
        modp_p().to_be_bytes().as_ref().to_vec()
    }

    /// p + k as 256 big-endian bytes (k may be negative), computed byte-wise without bignums.
    fn p_plus(k: i16) -> Vec<u8> {
        let mut v = p_bytes();
        let mut carry = k as i32;
        for b in v.iter_mut().rev() {
            let x = *b as i32 + carry;
            *b = x.rem_euclid(256) as u8;
            carry = x.div_euclid(256);
        }
        assert_eq!(carry, 0);
        v
    }

    #[test]
    fn ids_and_lengths() {
        for g in [DhGroup::Modp2048, DhGroup::Ecp256, DhGroup::Curve25519] {
            assert_eq!(DhGroup::from_id(g.id()), Some(g));
        }
        assert_eq!(
            [
                DhGroup::Modp2048.id(),
                DhGroup::Ecp256.id(),
                DhGroup::Curve25519.id()
            ],
            [14, 19, 31]
        );
        for id in [0, 1, 2, 5, 17, 18, 22, 32] {
            assert_eq!(DhGroup::from_id(id), None, "{id}");
        }
        assert_eq!(DhGroup::Modp2048.public_len(), 256);
        assert_eq!(DhGroup::Ecp256.public_len(), 64);
        assert_eq!(DhGroup::Curve25519.public_len(), 32);
    }

    #[test]
    fn modp_prime_is_a_safe_prime() {
        // The constant was checked offline against RFC 3526's formula
        // p = 2^2048 - 2^1984 - 1 + 2^64 * ([2^1918 pi] + 124476). Here: a typo anywhere would
        // almost surely break Fermat's test for p and for q = (p-1)/2.
        use crypto_bigint::Odd;
        use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
        let p = modp_p();
        let p_bytes = p.to_be_bytes();
        assert_eq!(p_bytes.as_ref()[..8], [0xff; 8]);
        assert_eq!(p_bytes.as_ref()[248..], [0xff; 8]);
        let two = U2048::from_u8(2);
        // 2^(p-1) = 1 mod p.
        let fermat_p = ModpElement::new(&two)
            .pow(&p.wrapping_sub(&U2048::ONE))
            .retrieve();
        assert_eq!(fermat_p, U2048::ONE);
        // 2^(q-1) = 1 mod q.
        let q = p.shr_vartime(1);
        let q_params = FixedMontyParams::new_vartime(Odd::new(q).unwrap());
        let fermat_q = FixedMontyForm::new(&two, &q_params)
            .pow(&q.wrapping_sub(&U2048::ONE))
            .retrieve();
        assert_eq!(fermat_q, U2048::ONE);
    }

    #[test]
    fn modp_pow_known_answers() {
        // Expected values computed independently with Python's built-in pow(b, x, p) on the
        // RFC 3526 prime.
        // 2^x for x = 0x01..20 (bytes 1..=32): a full 256-bit exponent, heavily reduced.
        let x: [u8; 32] = core::array::from_fn(|i| i as u8 + 1);
        let got = modp2048_pow(&U2048::from_u8(2), &x);
        assert_eq!(*got, unhex(MODP_2_POW_X));
        // Small exponent: 2^5 = 32, padded to 256 bytes.
        let mut five = [0u8; 32];
        five[31] = 5;
        let got = modp2048_pow(&U2048::from_u8(2), &five);
        assert_eq!(got.len(), 256);
        assert!(got[..255].iter().all(|&b| b == 0));
        assert_eq!(got[255], 32);
        // (p-2)^x, a base near the top of the range.
        let base = U2048::from_be_slice(&p_plus(-2));
        assert_eq!(*modp2048_pow(&base, &x), unhex(MODP_PM2_POW_X));
    }

    // pow(2, int.from_bytes(bytes(range(1, 33)), 'big'), p)
    const MODP_2_POW_X: &str = "\
     ce8736a3ad7c8260e0c5e5a457931ad19966d693e5c32414496b73d7f4e8bdaf\
     51763d49d07a56b0a188048d61d52bd2a06e706a7a46664113e794057474d04c\
     96b5bb151a50b27818a513cd8d6ecf037fc638b3b2f1084c58d4419735ba12c9\
     a4391e2b3133bd660785e468569be85c7ad4f904d98a13f5e8695ff8cc5e2283\
     4228a8ea2c082ff49a07607e8e5c1278ce8091725678fde112491091bf4cf3b1\
     759ccb32c1de0b90a074b1e3ffe179d71a292ff29ce9580c3a978793598c0e00\
     8289e7ab7783b2b75caf9152267e8c981dbb28fde07f2e11ffe1e3984097d160\
     2c61ffd0714d9523455377c177df3be6b3c81e69f762c04be910a225f323882d";
    // pow(p - 2, int.from_bytes(bytes(range(1, 33)), 'big'), p): the exponent is even, so
    // (p - 2)^x = (-2)^x = 2^x mod p, the same value.
    const MODP_PM2_POW_X: &str = MODP_2_POW_X;

    #[test]
    fn modp_generate_with_test_rng_known_answer() {
        // TestRng(7)'s first 32 bytes are SHA-256(7 as u64 BE | 0 as u64 BE); the expected public
        // value 2^x mod p was computed with Python's hashlib and pow.
        let (key, public) = DhPrivate::generate(DhGroup::Modp2048, &mut TestRng::new(7)).unwrap();
        assert_eq!(key.group(), DhGroup::Modp2048);
        assert_eq!(format!("{key:?}"), "DhPrivate(Modp2048)");
        assert_eq!(public, unhex(MODP_TESTRNG7_PUBLIC));
    }

    const MODP_TESTRNG7_PUBLIC: &str = "\
     cfac90235a4cd5084a24240477108ec9354f17512074db623e0fb80bfcabdc92\
     9c154021ccbf8fb8609082d1e78960486ca91e480f6f58e37e92492f5af47729\
     dee9635d6e02d6f961667aceb56f29751c708fcaa6ab8b4a98c6e4f6437e3b2d\
     e0ef93c334c55ea85952ae39eccc6a5b5e96e31b3f63fcac5d800f87663f1d88\
     72a16b613a054d909c1813b6576a5b0d4ceeaf7370abcafbe955cfd7299e94e7\
     27248004a2f08aabf18b3c6c40ddf5823e24df8282e3fa94f4e688c1875508f9\
     535a5d486a7876d73793d65d53b69895ac5135e1ef34b829920f1ad8736e586d\
     d51b1dd6286a6a5466675a306ee6839d8951972b43ce2d21fae12ba585781070";

    #[test]
    fn modp_two_keys_agree() {
        let mut rng = TestRng::new(1);
        let (a, pa) = DhPrivate::generate(DhGroup::Modp2048, &mut rng).unwrap();
        let (b, pb) = DhPrivate::generate(DhGroup::Modp2048, &mut rng).unwrap();
        assert_eq!(pa.len(), 256);
        assert_eq!(pb.len(), 256);
        assert_ne!(pa, pb);
        let sa = a.agree(&pb).unwrap();
        let sb = b.agree(&pa).unwrap();
        assert_eq!(sa.len(), 256);
        assert_eq!(sa, sb);
    }

    #[test]
    fn modp_refuses_bad_peer_values() {
        let mut bad: Vec<Vec<u8>> = vec![vec![0; 256]]; // 0
        let mut one = vec![0; 256];
        one[255] = 1;
        bad.push(one);
        bad.push(p_plus(-1)); // p-1
        bad.push(p_plus(0)); // p
        bad.push(p_plus(1)); // p+1
        bad.push(vec![0xff; 256]); // 2^2048-1
        bad.push(vec![]);
        bad.push(vec![2]); // the generator, but not padded
        let mut long = vec![0; 257];
        long[256] = 2;
        bad.push(long); // padded one byte too far
        bad.push(vec![0x42; 255]);
        for (i, peer) in bad.iter().enumerate() {
            let (key, _) = DhPrivate::generate(DhGroup::Modp2048, &mut TestRng::new(3)).unwrap();
            assert_eq!(
                key.agree(peer).err(),
                Some(Error::InvalidPublicValue),
                "case {i}"
            );
        }
        // The extremes of the allowed range work: 2 and p-2.
        let mut two = vec![0; 256];
        two[255] = 2;
        for peer in [two, p_plus(-2)] {
            let (key, _) = DhPrivate::generate(DhGroup::Modp2048, &mut TestRng::new(3)).unwrap();
            assert_eq!(key.agree(&peer).unwrap().len(), 256);
        }
    }

    /// An Rng that only ever returns zeros.
    struct ZeroRng;
    impl Rng for ZeroRng {
        fn fill(&mut self, buf: &mut [u8]) {
            buf.fill(0);
        }
    }

    #[test]
    fn modp_refuses_a_generator_of_zeros() {
        assert_eq!(
            DhPrivate::generate(DhGroup::Modp2048, &mut ZeroRng).err(),
            Some(Error::Random)
        );
    }

    // RFC 5903 section 8.1, responder's public value gr = (grx, gry).
    const RFC5903_GRX: &str = "D12DFB5289C8D4F81208B70270398C342296970A0BCCB74C736FC7554494BF63";
    const RFC5903_GRY: &str = "56FBF3CA366CC23E8157854C13C58D6AAC23F046ADA30F8353E74F33039872AB";

    #[test]
    fn ecp256_accepts_rfc5903_public_value_and_two_keys_agree() {
        let mut rng = TestRng::new(1);
        let gr = unhex(&format!("{RFC5903_GRX}{RFC5903_GRY}"));
        assert_eq!(gr.len(), 64);
        let (key, public) = DhPrivate::generate(DhGroup::Ecp256, &mut rng).unwrap();
        assert_eq!(key.group(), DhGroup::Ecp256);
        assert_eq!(public.len(), 64);
        let s = key.agree(&gr).unwrap();
        assert_eq!(s.len(), 32);

        let (a, pa) = DhPrivate::generate(DhGroup::Ecp256, &mut rng).unwrap();
        let (b, pb) = DhPrivate::generate(DhGroup::Ecp256, &mut rng).unwrap();
        assert_ne!(pa, pb);
        let sa = a.agree(&pb).unwrap();
        let sb = b.agree(&pa).unwrap();
        assert_eq!(sa, sb);
        assert_eq!(sa.len(), 32);
    }

    #[test]
    fn check_public_is_the_cheap_part_of_agree() {
        let mut rng = TestRng::new(5);
        for g in [DhGroup::Modp2048, DhGroup::Ecp256, DhGroup::Curve25519] {
            let (_, public) = DhPrivate::generate(g, &mut rng).unwrap();
            assert!(g.check_public(&public).is_ok(), "{g:?}");
            assert!(g.check_public(&public[1..]).is_err(), "{g:?} short");
        }
        // MODP: 0, 1, p-1, p are out of range.
        for v in [p_plus(-1), p_plus(0), vec![0; 256], {
            let mut one = vec![0; 256];
            one[255] = 1;
            one
        }] {
            assert!(DhGroup::Modp2048.check_public(&v).is_err());
        }
        // ECP-256: a point moved off the curve, and coordinates >= p.
        let (_, mut public) = DhPrivate::generate(DhGroup::Ecp256, &mut rng).unwrap();
        public[63] ^= 1;
        assert!(DhGroup::Ecp256.check_public(&public).is_err());
        assert!(DhGroup::Ecp256.check_public(&[0xff; 64]).is_err());
        assert!(DhGroup::Ecp256.check_public(&[0; 64]).is_err());
    }

    #[test]
    fn ecp256_refuses_bad_peer_values() {
        let gr = unhex(&format!("{RFC5903_GRX}{RFC5903_GRY}"));
        let mut off_curve = gr.clone();
        off_curve[63] ^= 1;
        let mut with_prefix = vec![0x04];
        with_prefix.extend_from_slice(&gr);
        let bad = [
            vec![],
            gr[..63].to_vec(),
            with_prefix, // SEC1 form is not the IKEv2 encoding
            off_curve,
            vec![0; 64], // (0, 0) is not on the curve
            vec![0xff; 64],
        ];
        for (i, peer) in bad.iter().enumerate() {
            let (key, _) = DhPrivate::generate(DhGroup::Ecp256, &mut TestRng::new(1)).unwrap();
            assert_eq!(
                key.agree(peer).err(),
                Some(Error::InvalidPublicValue),
                "case {i}"
            );
        }
    }

    // RFC 7748 section 6.1: Alice's and Bob's public keys.
    const RFC7748_ALICE: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const RFC7748_BOB: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

    #[test]
    fn x25519_accepts_rfc7748_public_values_and_two_keys_agree() {
        let mut rng = TestRng::new(1);
        for peer in [RFC7748_ALICE, RFC7748_BOB] {
            let (key, public) = DhPrivate::generate(DhGroup::Curve25519, &mut rng).unwrap();
            assert_eq!(key.group(), DhGroup::Curve25519);
            assert_eq!(public.len(), 32);
            let s = key.agree(&unhex(peer)).unwrap();
            assert_eq!(s.len(), 32);
            assert!(s.iter().any(|&b| b != 0));
        }
        let (a, pa) = DhPrivate::generate(DhGroup::Curve25519, &mut rng).unwrap();
        let (b, pb) = DhPrivate::generate(DhGroup::Curve25519, &mut rng).unwrap();
        assert_ne!(pa, pb);
        assert_eq!(a.agree(&pb).unwrap(), b.agree(&pa).unwrap());
    }

    #[test]
    fn x25519_refuses_low_order_and_wrong_length() {
        let mut one = vec![0u8; 32];
        one[0] = 1;
        let bad = [
            vec![0; 32], // u = 0
            one,         // u = 1
            // A point of order 8 (listed among the small-order points in the literature on
            // X25519 validation, e.g. the libsodium blocklist).
            unhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
            vec![],
            unhex(RFC7748_ALICE)[..31].to_vec(),
            [unhex(RFC7748_ALICE), vec![0]].concat(),
        ];
        for (i, peer) in bad.iter().enumerate() {
            let (key, _) = DhPrivate::generate(DhGroup::Curve25519, &mut TestRng::new(1)).unwrap();
            assert_eq!(
                key.agree(peer).err(),
                Some(Error::InvalidPublicValue),
                "case {i}"
            );
        }
    }

    /// p + k of a MODP group as big-endian bytes (k may be negative).
    fn group_p_plus(g: DhGroup, k: i16) -> Vec<u8> {
        let mut v = g.modp_prime().unwrap();
        let mut carry = k as i32;
        for b in v.iter_mut().rev() {
            let x = *b as i32 + carry;
            *b = x.rem_euclid(256) as u8;
            carry = x.div_euclid(256);
        }
        v
    }

    #[test]
    fn new_groups_ids_and_lengths() {
        let want = [
            (DhGroup::Modp3072, 15, 384),
            (DhGroup::Modp4096, 16, 512),
            (DhGroup::Ecp384, 20, 96),
            (DhGroup::Ecp521, 21, 132),
        ];
        for (g, id, len) in want {
            assert_eq!((g.id(), g.public_len()), (id, len), "{g:?}");
            assert_eq!(DhGroup::from_id(id), Some(g));
        }
    }

    #[test]
    fn modp3072_and_4096_primes_are_safe_primes() {
        use crypto_bigint::Odd;
        use crypto_bigint::modular::{FixedMontyForm, FixedMontyParams};
        fn check<P: ConstMontyParams<L>, const L: usize>() {
            let p = modulus::<P, L>();
            let bytes = p.to_be_bytes();
            // RFC 3526: the top and bottom 64 bits are all ones.
            assert_eq!(bytes.as_ref()[..8], [0xff; 8]);
            assert_eq!(bytes.as_ref()[bytes.as_ref().len() - 8..], [0xff; 8]);
            let two = Uint::<L>::from_u8(2);
            let fermat_p = ConstMontyForm::<P, L>::new(&two)
                .pow_vartime(&p.wrapping_sub(&Uint::ONE))
                .retrieve();
            assert_eq!(fermat_p, Uint::ONE);
            let q = p.shr_vartime(1);
            let q_params = FixedMontyParams::new_vartime(Odd::new(q).unwrap());
            let fermat_q = FixedMontyForm::new(&two, &q_params)
                .pow_vartime(&q.wrapping_sub(&Uint::ONE))
                .retrieve();
            assert_eq!(fermat_q, Uint::ONE);
        }
        check::<Modp3072Prime, { U3072::LIMBS }>();
        check::<Modp4096Prime, { U4096::LIMBS }>();
    }

    #[test]
    fn modp3072_and_4096_known_answers() {
        // Computed independently with Python's pow(2, x, p) on the RFC 3526 primes, x = the
        // bytes 1, 2, ... (32 bytes for 3072, 48 for 4096: the exponent lengths we draw).
        let x3: Vec<u8> = (1..=32).collect();
        assert_eq!(
            *modp_base_pow(DhGroup::Modp3072, 2, &x3).unwrap(),
            unhex(MODP3072_2_POW_X)
        );
        let x4: Vec<u8> = (1..=48).collect();
        assert_eq!(
            *modp_base_pow(DhGroup::Modp4096, 2, &x4).unwrap(),
            unhex(MODP4096_2_POW_X)
        );
    }

    const MODP3072_2_POW_X: &str = "\
     708862b0cffa71fe166cc12799c8f990817c8bac6984bc27964320f740f0f4c0\
     eb9d72a62b2b27d191ff6b21f9afd12b8003c232c5ad30d106fff0d87bdb806b\
     7d2df476b395259c0297af4da6cbebfd4f4a3c42c710e8ada5b1cbdc06a877a8\
     3299787d35b7cd57978e60b2ef73ccf3d7369079715181f3cbde33d94970d315\
     398681d1a36e5f6ceec78660f1f8eb1500eb805dffc38ff8811ba7611b95eb70\
     53660d3cef6b5aee38d16cfbfd678626cd81fb187f3314eb8c9b4332a4a0aec1\
     8d9e2f228f773def0a05f2a615912166242ab9ac86b4f6f6244dac5ddb93b656\
     cd9df19c3d82eef7a3c0fcbf8f105b9a9257875ce5b48b460bd771e208793a09\
     3db63492f01b0a40c4580abe41fda00e758f1a0b07cb945281a083824bf44e84\
     d1a64652bf372b34d17460ff698bf8bebef274902ce1b91f7ea2193b7bdcbe89\
     13e27fab4160748bf5d499fc2ffb99326980ef5856e1eea957c42b724ad53467\
     de7038e0ade707435611b35ac34e5cec3fb2feabe8a8ca4fdba666377c3803dc";
    const MODP4096_2_POW_X: &str = "\
     ead0c342b3c69c72ba3a1ed56dff2ee94f89b4bebb71336c85d94a43788f6ec6\
     2186e78767e244640573448863ad4bb756fc32e653936fdbdc0b909c743db71d\
     6fc2b89ca4e8d9e27ab600636dd6f1d4d9fd3c035bdde07c3b08c78301ca0c8a\
     51d7c28413e68c9acc60d7172db34182dfbe8a825e7506cac46c80caf9f555c5\
     8532a1321c7b58845218eb35b0edbe990dc10099452c00d59d1dca5a3dc3e763\
     a0d23618d7bbfb15cdeaf48662643ed426bd5be1c30db72bf1b636351fdafb14\
     e0a96c7f46031b8350918f331bdabbf9b08eeb05776d3a7f4d6ce6a8416596b6\
     f1f479d66315c4ad59297ed38c390e38780a948b0f8b6c1cd86ec31bb958631b\
     65c9756f9610a1f60ac99b0c797f1decbe78329536d14727fed71db15a0d8de3\
     4c37424fd2f03ad063b58988823e61979992a02707644e67abb14f6e45b85cf8\
     33eafc4e142214990597bae901e6e36cff52351e9b4c8c09e4251d2a0051f691\
     b3b057398adb5dee595cda783ffb95e05312b4aafd06f588214ebc666f0cfa3a\
     be7462280098cee359fcd7b765f90aae2813aa35f3d721681ef4ebcaa8934a5c\
     5e56b3bba5fdef33fd418cc77fd1ec4b2d53c9a0b72827f663c18a88adf3baa0\
     59050ba698cd2e6f6b627449868e988dbe00e677248d464413971e9bcf924e85\
     2184fa093ac241e1b6032455ab4933a8485fc2db355a133308e9c085d81ef9f1";

    #[test]
    fn modp3072_and_4096_agree_and_refuse_bad_peer_values() {
        for g in [DhGroup::Modp3072, DhGroup::Modp4096] {
            let len = g.public_len();
            let mut rng = TestRng::new(11);
            let (a, pa) = DhPrivate::generate(g, &mut rng).unwrap();
            let (b, pb) = DhPrivate::generate(g, &mut rng).unwrap();
            assert_eq!((a.group(), pa.len(), pb.len()), (g, len, len));
            let (sa, sb) = (a.agree(&pb).unwrap(), b.agree(&pa).unwrap());
            assert_eq!(sa.len(), len);
            assert_eq!(sa, sb, "{g:?}");

            let mut one = vec![0; len];
            one[len - 1] = 1;
            let bad = [
                vec![0; len],
                one,
                group_p_plus(g, -1),
                group_p_plus(g, 0),
                group_p_plus(g, 1),
                vec![0xff; len],
                vec![],
                pa[1..].to_vec(),
                [pa.clone(), vec![0]].concat(),
                // A 2048-bit value of the right size for group 14, not for this group.
                group_p_plus(DhGroup::Modp2048, -2),
            ];
            for (i, peer) in bad.iter().enumerate() {
                assert!(g.check_public(peer).is_err(), "{g:?} case {i}");
                let (key, _) = DhPrivate::generate(g, &mut TestRng::new(3)).unwrap();
                assert_eq!(
                    key.agree(peer).err(),
                    Some(Error::InvalidPublicValue),
                    "{g:?} case {i}"
                );
            }
            // The extremes of the range: 2 and p-2.
            let mut two = vec![0; len];
            two[len - 1] = 2;
            for peer in [two, group_p_plus(g, -2)] {
                assert!(g.check_public(&peer).is_ok());
                let (key, _) = DhPrivate::generate(g, &mut TestRng::new(3)).unwrap();
                assert_eq!(key.agree(&peer).unwrap().len(), len);
            }
        }
    }

    // RFC 5903 section 8.2 (384-bit random ECP group): gi, gr and the shared x coordinate.
    const RFC5903_384_GI: &str = "\
     667842D7D180AC2CDE6F74F37551F55755C7645C20EF73E31634FE72B4C55EE6DE3AC808ACB4BDB4C88732AEE95F41AA\
     9482ED1FC0EEB9CAFC4984625CCFC23F65032149E0E144ADA024181535A0F38EEB9FCFF3C2C947DAE69B4C634573A81C";
    const RFC5903_384_GR: &str = "\
     E558DBEF53EECDE3D3FCCFC1AEA08A89A987475D12FD950D83CFA41732BC509D0D1AC43A0336DEF96FDA41D0774A3571\
     DCFBEC7AACF3196472169E838430367F66EEBE3C6E70C416DD5F0C68759DD1FFF83FA40142209DFF5EAAD96DB9E6386C";

    #[test]
    fn ecp384_accepts_rfc5903_values_and_two_keys_agree() {
        // ring's ephemeral keys cannot be given a scalar, so RFC 5903's known shared secret is
        // out of reach; its public values must pass our check and ring's.
        for v in [RFC5903_384_GI, RFC5903_384_GR] {
            let v = unhex(v);
            assert!(DhGroup::Ecp384.check_public(&v).is_ok());
            let (key, _) = DhPrivate::generate(DhGroup::Ecp384, &mut TestRng::new(1)).unwrap();
            assert_eq!(key.agree(&v).unwrap().len(), 48);
        }
        let mut rng = TestRng::new(2);
        let (a, pa) = DhPrivate::generate(DhGroup::Ecp384, &mut rng).unwrap();
        let (b, pb) = DhPrivate::generate(DhGroup::Ecp384, &mut rng).unwrap();
        assert_eq!((a.group(), pa.len()), (DhGroup::Ecp384, 96));
        assert!(DhGroup::Ecp384.check_public(&pa).is_ok());
        assert_eq!(a.agree(&pb).unwrap(), b.agree(&pa).unwrap());
    }

    // RFC 5903 section 8.3 (521-bit random ECP group).
    const RFC5903_521_I: &str = "\
     0037ADE9319A89F4DABDB3EF411AACCCA5123C61ACAB57B5393DCE47608172A0\
     95AA85A30FE1C2952C6771D937BA9777F5957B2639BAB072462F68C27A57382D4A52";
    const RFC5903_521_GI: &str = "\
     0015417E84DBF28C0AD3C278713349DC7DF153C897A1891BD98BAB4357C9ECBE\
     E1E3BF42E00B8E380AEAE57C2D107564941885942AF5A7F4601723C4195D176CED3E\
     017CAE20B6641D2EEB695786D8C946146239D099E18E1D5A514C739D7CB4A10A\
     D8A788015AC405D7799DC75E7B7D5B6CF2261A6A7F1507438BF01BEB6CA3926F9582";
    const RFC5903_521_R: &str = "\
     0145BA99A847AF43793FDD0E872E7CDFA16BE30FDC780F97BCCC3F078380201E\
     9C677D600B343757A3BDBF2A3163E4C2F869CCA7458AA4A4EFFC311F5CB151685EB9";
    const RFC5903_521_GR: &str = "\
     00D0B3975AC4B799F5BEA16D5E13E9AF971D5E9B984C9F39728B5E5739735A21\
     9B97C356436ADC6E95BB0352F6BE64A6C2912D4EF2D0433CED2B6171640012D9460F\
     015C68226383956E3BD066E797B623C27CE0EAC2F551A10C2C724D9852077B87\
     220B6536C5C408A1D2AEBB8E86D678AE49CB57091F4732296579AB44FCD17F0FC56A";
    const RFC5903_521_GIRX: &str = "\
     01144C7D79AE6956BC8EDB8E7C787C4521CB086FA64407F97894E5E6B2D79B04\
     D1427E73CA4BAA240A34786859810C06B3C715A3A8CC3151F2BEE417996D19F3DDEA";

    #[test]
    fn ecp521_rfc5903_known_answer() {
        let (i, gi) = DhPrivate::ecp521_from_scalar(&unhex(RFC5903_521_I));
        let (r, gr) = DhPrivate::ecp521_from_scalar(&unhex(RFC5903_521_R));
        assert_eq!(gi, unhex(RFC5903_521_GI), "gi in IKEv2 encoding");
        assert_eq!(gr, unhex(RFC5903_521_GR), "gr in IKEv2 encoding");
        assert_eq!(*i.agree(&gr).unwrap(), unhex(RFC5903_521_GIRX));
        assert_eq!(*r.agree(&gi).unwrap(), unhex(RFC5903_521_GIRX));
        // And keys drawn from the engine's generator: deterministic with a seeded one.
        let (a, pa) = DhPrivate::generate(DhGroup::Ecp521, &mut TestRng::new(4)).unwrap();
        let (_, pa2) = DhPrivate::generate(DhGroup::Ecp521, &mut TestRng::new(4)).unwrap();
        let (b, pb) = DhPrivate::generate(DhGroup::Ecp521, &mut TestRng::new(5)).unwrap();
        assert_eq!(pa, pa2);
        assert_eq!((a.group(), pa.len()), (DhGroup::Ecp521, 132));
        assert_eq!(a.agree(&pb).unwrap(), b.agree(&pa).unwrap());
    }

    #[test]
    fn ecp384_and_521_refuse_bad_peer_values() {
        for (g, good) in [
            (DhGroup::Ecp384, unhex(RFC5903_384_GR)),
            (DhGroup::Ecp521, unhex(RFC5903_521_GR)),
        ] {
            let len = g.public_len();
            let mut off_curve = good.clone();
            off_curve[len - 1] ^= 1;
            let bad = [
                vec![],
                good[..len - 1].to_vec(),
                [vec![0x04], good.clone()].concat(), // SEC1 form is not the IKEv2 encoding
                [good.clone(), vec![0]].concat(),
                off_curve,
                vec![0; len],    // (0, 0): not on the curve, and no encoding of infinity
                vec![0xff; len], // coordinates >= p
                {
                    let mut one = vec![0; len];
                    one[len - 1] = 1;
                    one
                },
            ];
            for (i, peer) in bad.iter().enumerate() {
                assert_eq!(
                    g.check_public(peer).err(),
                    Some(Error::InvalidPublicValue),
                    "{g:?} check case {i}"
                );
                let (key, _) = DhPrivate::generate(g, &mut TestRng::new(1)).unwrap();
                assert_eq!(
                    key.agree(peer).err(),
                    Some(Error::InvalidPublicValue),
                    "{g:?} agree case {i}"
                );
            }
        }
    }
}
