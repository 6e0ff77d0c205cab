//! Diffie-Hellman: MODP-2048 (group 14, constant-time with crypto-bigint, 256-bit exponents),
//! ECP-256 (group 19, ring) and Curve25519 (group 31, ring).
//!
//! Public values are in IKEv2 encoding: MODP big-endian padded to 256 bytes; ECP-256 is x | y
//! (64 bytes, no 0x04 prefix, RFC 5903); Curve25519 is the 32-byte u-coordinate (RFC 8031).
//! Shared secrets: MODP g^xy padded to 256 bytes; ECP-256 the x coordinate; X25519 32 bytes.

use super::{Error, Rng, Secret};
use crypto_bigint::modular::ConstMontyForm;
use crypto_bigint::{U256, U2048};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use zeroize::{Zeroize, Zeroizing};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DhGroup {
    Modp2048,
    Ecp256,
    Curve25519,
}

impl DhGroup {
    pub fn from_id(id: u16) -> Option<DhGroup> {
        match id {
            14 => Some(DhGroup::Modp2048),
            19 => Some(DhGroup::Ecp256),
            31 => Some(DhGroup::Curve25519),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        match self {
            DhGroup::Modp2048 => 14,
            DhGroup::Ecp256 => 19,
            DhGroup::Curve25519 => 31,
        }
    }
    /// Cheap checks of a peer's public value, to run before any expensive DH computation (a
    /// MODP-2048 exponentiation costs milliseconds, and a spoofed IKE_SA_INIT can ask for one):
    /// the length for all groups, 1 < y < p-1 for MODP, and for ECP-256 that (x, y) is a point
    /// on the curve. X25519 takes every 32-byte string (low-order points are refused by the
    /// agreement itself, which costs about as little as this check would).
    pub fn check_public(self, peer: &[u8]) -> Result<(), Error> {
        match self {
            DhGroup::Modp2048 => parse_modp_public(peer).map(|_| ()),
            DhGroup::Ecp256 => ecp256_on_curve(peer),
            DhGroup::Curve25519 => {
                if peer.len() == 32 {
                    Ok(())
                } else {
                    Err(Error::InvalidPublicValue)
                }
            }
        }
    }

    /// Length of a public value on the wire.
    pub fn public_len(self) -> usize {
        match self {
            DhGroup::Modp2048 => MODP_LEN,
            DhGroup::Ecp256 => 64,
            DhGroup::Curve25519 => 32,
        }
    }
}

/// Bytes of a MODP-2048 public value or shared secret.
const MODP_LEN: usize = 256;
/// Bytes of a MODP private exponent: 256 bits, twice the 128-bit strength of the group
/// (RFC 3526 section 8, NIST SP 800-57).
const MODP_EXP_LEN: usize = 32;

// The 2048-bit MODP group of RFC 3526 section 3 (IKE group 14), generator 2.
// p = 2^2048 - 2^1984 - 1 + 2^64 * ( [2^1918 pi] + 124476 ).
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

type ModpElement = ConstMontyForm<Modp2048Prime, { U2048::LIMBS }>;

/// base^exp mod p, constant time in `exp` (crypto-bigint's non-vartime windowed exponentiation
/// selects table entries with constant-time selects), big-endian padded to 256 bytes.
fn modp_pow(base: &U2048, exp: &[u8; MODP_EXP_LEN]) -> Secret {
    let mut x = U256::from_be_slice(exp);
    let mut r = ModpElement::new(base).pow(&x).retrieve();
    let mut bytes = r.to_be_bytes();
    let out = Zeroizing::new(bytes.as_ref().to_vec());
    x.zeroize();
    r.zeroize();
    bytes.zeroize();
    out
}

// The field prime of NIST P-256 (FIPS 186-4 D.1.2.3), for the on-curve check of peer points.
crypto_bigint::const_monty_params!(
    P256Field,
    U256,
    "FFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF",
    "The NIST P-256 field prime"
);

type P256Element = ConstMontyForm<P256Field, { U256::LIMBS }>;

/// The curve coefficient b of P-256 (a = -3).
const P256_B: U256 =
    U256::from_be_hex("5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B");

/// Whether `peer` (x | y, 64 bytes) is a point on P-256: x, y < p and y² = x³ - 3x + b. The
/// point at infinity has no such encoding. A handful of field operations on public data.
fn ecp256_on_curve(peer: &[u8]) -> Result<(), Error> {
    use crypto_bigint::modular::ConstMontyParams;
    if peer.len() != 64 {
        return Err(Error::InvalidPublicValue);
    }
    let p = *P256Field::PARAMS.modulus().as_ref();
    let (x, y) = (
        U256::from_be_slice(&peer[..32]),
        U256::from_be_slice(&peer[32..]),
    );
    if x >= p || y >= p {
        return Err(Error::InvalidPublicValue);
    }
    let (x, y) = (P256Element::new(&x), P256Element::new(&y));
    let three = P256Element::new(&U256::from_u8(3));
    let b = P256Element::new(&P256_B);
    let rhs = x.square() * x - three * x + b;
    if y.square().retrieve() == rhs.retrieve() {
        Ok(())
    } else {
        Err(Error::InvalidPublicValue)
    }
}

/// The modulus p as a plain integer (for range checks of public values).
fn modp_p() -> U2048 {
    use crypto_bigint::modular::ConstMontyParams;
    *Modp2048Prime::PARAMS.modulus().as_ref()
}

/// Checks a peer's MODP value: exactly 256 bytes and 1 < y < p-1 (RFC 6989 section 2.1, enough
/// for a safe-prime group: rejects 0, 1, p-1 and anything not reduced mod p, which leaves no
/// element of order 1 or 2).
fn parse_modp_public(peer: &[u8]) -> Result<U2048, Error> {
    if peer.len() != MODP_LEN {
        return Err(Error::InvalidPublicValue);
    }
    let y = U2048::from_be_slice(peer);
    let p_minus_1 = modp_p().wrapping_sub(&U2048::ONE);
    // Public data: an ordinary (variable-time) comparison is fine.
    if y > U2048::ONE && y < p_minus_1 {
        Ok(y)
    } else {
        Err(Error::InvalidPublicValue)
    }
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
    /// The private exponent, big-endian; never zero.
    Modp(Zeroizing<[u8; MODP_EXP_LEN]>),
    /// ring's ephemeral keys zeroize themselves and can be used once (agree consumes them).
    Ecp256(EphemeralPrivateKey),
    Curve25519(EphemeralPrivateKey),
}

impl DhPrivate {
    /// Generates a key pair; returns the private part and the public value to put in KE.
    /// MODP exponents come from `rng`; ring's groups use ring's own generator (its RNG trait is
    /// sealed).
    pub fn generate(group: DhGroup, rng: &mut dyn Rng) -> Result<(DhPrivate, Vec<u8>), Error> {
        match group {
            DhGroup::Modp2048 => {
                let mut exp = Zeroizing::new([0u8; MODP_EXP_LEN]);
                // A zero exponent would make the public value 1; drawing it has probability
                // 2^-256, so seeing it repeatedly means the generator is broken.
                let mut tries = 0;
                loop {
                    rng.fill(&mut exp[..]);
                    if exp.iter().any(|&b| b != 0) {
                        break;
                    }
                    tries += 1;
                    if tries == 4 {
                        return Err(Error::Random);
                    }
                }
                let public = modp_pow(&U2048::from_u8(2), &exp);
                Ok((DhPrivate(Inner::Modp(exp)), public.to_vec()))
            }
            DhGroup::Ecp256 => {
                let (key, public) = ring_generate(&agreement::ECDH_P256)?;
                // ring gives the SEC1 uncompressed point 0x04 | x | y; IKEv2 sends x | y
                // (RFC 5903 section 7).
                match public.split_first() {
                    Some((0x04, xy)) if xy.len() == 64 => {
                        Ok((DhPrivate(Inner::Ecp256(key)), xy.to_vec()))
                    }
                    _ => Err(Error::Unsupported),
                }
            }
            DhGroup::Curve25519 => {
                let (key, public) = ring_generate(&agreement::X25519)?;
                Ok((DhPrivate(Inner::Curve25519(key)), public))
            }
        }
    }
    pub fn group(&self) -> DhGroup {
        match self.0 {
            Inner::Modp(_) => DhGroup::Modp2048,
            Inner::Ecp256(_) => DhGroup::Ecp256,
            Inner::Curve25519(_) => DhGroup::Curve25519,
        }
    }
    /// Computes the shared secret; checks the peer value (length, range, point on curve,
    /// non-zero X25519 result).
    pub fn agree(self, peer_public: &[u8]) -> Result<Secret, Error> {
        match self.0 {
            Inner::Modp(exp) => {
                let y = parse_modp_public(peer_public)?;
                Ok(modp_pow(&y, &exp))
            }
            Inner::Ecp256(key) => {
                if peer_public.len() != 64 {
                    return Err(Error::InvalidPublicValue);
                }
                // Back to SEC1 uncompressed form for ring, which checks the point is on the
                // curve and not the point at infinity.
                let mut sec1 = [0u8; 65];
                sec1[0] = 0x04;
                sec1[1..].copy_from_slice(peer_public);
                ring_agree(key, &agreement::ECDH_P256, &sec1)
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
        for id in [0, 1, 2, 5, 15, 20, 21, 32] {
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
        let got = modp_pow(&U2048::from_u8(2), &x);
        assert_eq!(*got, unhex(MODP_2_POW_X));
        // Small exponent: 2^5 = 32, padded to 256 bytes.
        let mut five = [0u8; 32];
        five[31] = 5;
        let got = modp_pow(&U2048::from_u8(2), &five);
        assert_eq!(got.len(), 256);
        assert!(got[..255].iter().all(|&b| b == 0));
        assert_eq!(got[255], 32);
        // (p-2)^x, a base near the top of the range.
        let base = U2048::from_be_slice(&p_plus(-2));
        assert_eq!(*modp_pow(&base, &x), unhex(MODP_PM2_POW_X));
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
}
