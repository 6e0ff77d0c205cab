//! SKEYSEED, SK_d/ai/ar/ei/er/pi/pr (RFC 7296 2.14), rekeyed SKEYSEED (2.18), KEYMAT (2.17).

use super::{PrfAlg, Secret};
use zeroize::Zeroizing;

/// The seven IKE SA keys. For AEAD ciphers `sk_ai`/`sk_ar` are empty and `sk_ei`/`sk_er` include
/// the salt (RFC 5282).
#[derive(Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

/// Shows only the key lengths.
impl std::fmt::Debug for IkeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "IkeKeys {{ d: {}, ai/ar: {}, ei/er: {}, pi/pr: {} bytes }}",
            self.sk_d.len(),
            self.sk_ai.len(),
            self.sk_ei.len(),
            self.sk_pi.len()
        )
    }
}

/// SKEYSEED = prf(Ni | Nr, g^ir).
pub fn skeyseed(prf: PrfAlg, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Secret {
    // The key is the nonces' concatenation (RFC 7296 2.14); for HMAC the full nonces are used
    // (only fixed-key-length PRFs such as AES-XCBC take half of each).
    let key = Zeroizing::new([ni, nr].concat());
    prf.prf(&key, g_ir)
}

/// SKEYSEED for a rekeyed IKE SA = prf(SK_d (old), g^ir (new) | Ni | Nr).
pub fn rekey_skeyseed(prf: PrfAlg, old_sk_d: &[u8], g_ir: &[u8], ni: &[u8], nr: &[u8]) -> Secret {
    prf.prf_parts(old_sk_d, &[g_ir, ni, nr])
}

/// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
/// `encr_key_len` includes any salt; `integ_key_len` is 0 for AEAD.
///
/// SK_d, SK_pi and SK_pr take the PRF's preferred key length (its output length, RFC 7296 2.14).
///
/// # Panics
/// If the total exceeds prf+'s 255 blocks (see [`PrfAlg::prf_plus`]); real transforms need at
/// most 3 * 64 + 2 * 64 + 2 * 36 bytes, far below the limit.
#[allow(clippy::too_many_arguments)]
pub fn derive_ike_keys(
    prf: PrfAlg,
    skeyseed: &[u8],
    ni: &[u8],
    nr: &[u8],
    spi_i: u64,
    spi_r: u64,
    encr_key_len: usize,
    integ_key_len: usize,
) -> IkeKeys {
    let prf_len = prf.output_len();
    let total = 3 * prf_len + 2 * integ_key_len + 2 * encr_key_len;
    let seed = [ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()].concat();
    let material = prf.prf_plus(skeyseed, &seed, total);

    // Cut the stream in RFC order; `total` was computed from these very lengths, so the split
    // always has enough bytes.
    let mut rest: &[u8] = &material;
    let mut take = |n: usize| -> Secret {
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Zeroizing::new(head.to_vec())
    };
    IkeKeys {
        sk_d: take(prf_len),
        sk_ai: take(integ_key_len),
        sk_ar: take(integ_key_len),
        sk_ei: take(encr_key_len),
        sk_er: take(encr_key_len),
        sk_pi: take(prf_len),
        sk_pr: take(prf_len),
    }
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr), `len` bytes.
///
/// # Panics
/// If `len` exceeds prf+'s 255 blocks (see [`PrfAlg::prf_plus`]).
pub fn child_keymat(
    prf: PrfAlg,
    sk_d: &[u8],
    g_ir: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Secret {
    // The seed holds g^ir, a secret, when PFS is used: keep it in wiped memory.
    let seed = Zeroizing::new([g_ir.unwrap_or(&[]), ni, nr].concat());
    prf.prf_plus(sk_d, &seed, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::hex as unhex;

    fn concat(k: &IkeKeys) -> Vec<u8> {
        [
            &k.sk_d[..],
            &k.sk_ai,
            &k.sk_ar,
            &k.sk_ei,
            &k.sk_er,
            &k.sk_pi,
            &k.sk_pr,
        ]
        .concat()
    }

    /// One NIST CAVS IKEv2 KDF sample (the SP 800-135 KDF validation "ikev2" test file), as
    /// reproduced in Mozilla NSS gtests/common/testvectors/ike-sha256-vectors.h and
    /// ike-sha384-vectors.h (entries 6-8, "from NIST samples").
    struct Cavs {
        prf: PrfAlg,
        ni: &'static str,
        nr: &'static str,
        g_ir: &'static str,
        g_ir_new: &'static str,
        spi_i: u64,
        spi_r: u64,
        skeyseed: &'static str,
        dkm: &'static str, // 132 bytes
        skeyseed_rekey: &'static str,
    }

    const CAVS: [Cavs; 2] = [
        Cavs {
            prf: PrfAlg::HmacSha256,
            ni: "3f302be1abcb28e1",
            nr: "8c332ee006064c9b",
            g_ir: "0f4d257d7a58fc4545c7d7a88119eee5d5c9690c5b4c989171d3abbfd99d1d29",
            g_ir_new: "25f3b12d6f282739256e39bf54eda53b60ffcf379bb7bcc90c27b4c4c578616c",
            spi_i: 0x40dac39e1e1a8640,
            spi_r: 0x8619a1cf9a6e4c07,
            skeyseed: "5f00d1bd2c58ec224b1e6b71fa0f19a1faa7a193952c444411b47c1a9d8ba6fe",
            dkm: "0b137d669b0947d7d026d593f0305ad401ff0c471357d695778a9c7f4b4869ec\
                  e98aca531188d16041b3bb936d2dbb3b4993a6e768a809160de45d0283f273a6\
                  cdf6854379e31be72b8d3d1fa990cf9c5b015ca9f918a7df6253c958114a09d4\
                  e1c19bdcd4db14b29d98db1a74ad405c588662c14a04d0d36aa4ab55e90f8986\
                  d12d4aad",
            skeyseed_rekey: "2d63f6debc92048b4fef3889c4c99ca67d6496e0fac14a2bca9a2d6566ff2398",
        },
        Cavs {
            prf: PrfAlg::HmacSha384,
            ni: "fd1b572a8e735591",
            nr: "6013b0ef88dacd3d",
            g_ir: "d3288cd87565101e88fe3bad918f31939d8dd26ff1071f8b2d7f447524e58d7c",
            g_ir_new: "3358f620539473aee8d07e779764c4c6a9aabddc79a28e136b3bac021dbde44a",
            spi_i: 0x2116ad07ce61f749,
            spi_r: 0x24880e55f11a65b7,
            skeyseed: "69fe7a1ac94adaeb711295f5fe004b1a8d6a0b65d05692758ce8ad2f7a45f59d\
                       7d0b596f51f7dfcf3330061888f6a94f",
            dkm: "4f904c2025c90c817ea5ff9b662a6fdb445a73b57cdf09eacd379b95e1f03cac\
                  b04cd6deeda4f952191dd9bc1f7a9502471a648d74dc06d38112de48a42501f6\
                  b1a3ad55c2099cd9a648e5f17e5bf3e34bf9b5953decb768a34f875fe2b78dca\
                  0c2fcca81ec1a412006dfaed38fa06882e61f4c148105fb8e231fdb33c4d484c\
                  001721d4",
            skeyseed_rekey: "e0548c1682e13bce454026b3b1bdf42985b24e4e7408095a7c529de38c3d1fcb\
                             04c9fe6868042a34c9614c6c99e3fcea",
        },
    ];

    #[test]
    fn nist_cavs_ikev2_kdf_samples() {
        for v in &CAVS {
            let (ni, nr) = (unhex(v.ni), unhex(v.nr));
            let seed = skeyseed(v.prf, &ni, &nr, &unhex(v.g_ir));
            assert_eq!(*seed, unhex(v.skeyseed), "{:?} SKEYSEED", v.prf);

            // DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr), 132 bytes; derive_ike_keys cuts the
            // same stream, so its concatenation is a prefix of (or equal to) the DKM.
            let dkm = unhex(v.dkm);
            assert_eq!(dkm.len(), 132);
            // SHA-256: 3*32 + 2*2 + 2*16 = 132; SHA-384: 3*48 = 144 > 132, compare the prefix.
            let (encr, integ) = if v.prf == PrfAlg::HmacSha256 {
                (16, 2)
            } else {
                (0, 0)
            };
            let keys = derive_ike_keys(v.prf, &seed, &ni, &nr, v.spi_i, v.spi_r, encr, integ);
            let all = concat(&keys);
            let n = all.len().min(132);
            assert_eq!(all[..n], dkm[..n], "{:?} DKM", v.prf);
            assert_eq!(keys.sk_d.len(), v.prf.output_len());
            assert_eq!(*keys.sk_d, dkm[..v.prf.output_len()]);

            // SKEYSEED (rekey) = prf(SK_d, g^ir (new) | Ni | Nr) with SK_d from this DKM.
            let rekey = rekey_skeyseed(v.prf, &keys.sk_d, &unhex(v.g_ir_new), &ni, &nr);
            assert_eq!(*rekey, unhex(v.skeyseed_rekey), "{:?} rekey", v.prf);
        }
    }

    #[test]
    fn child_keymat_known_answers() {
        // The CAVS file also lists DKM(Child SA) and DKM(Child SA D-H), but the NSS copy does
        // not; these were computed with Python 3's hmac/hashlib from the CAVS SHA-256 sample's
        // SK_d (first 32 bytes of its DKM), nonces and g^ir (new), 132 bytes each.
        let v = &CAVS[0];
        let (ni, nr) = (unhex(v.ni), unhex(v.nr));
        let sk_d = &unhex(v.dkm)[..32];
        let child = child_keymat(v.prf, sk_d, None, &ni, &nr, 132);
        assert_eq!(
            *child,
            unhex(
                "7d808e2b44635300e7025f1b640c431b13a9b3b891cd45a15261f4f3c4a7e39b\
                 3a3c8017ccc2b74610faf52ba3faf6d9e83c859b448217b24dadc82c9887460b\
                 7bd724236b9885914cc93b39d6c749e92f36b30c9eb6a9f59e396bc7c0ac4878\
                 512639cc612c5660ddb1a1fed360ac8b9b3f548f13482d0431b38eca293ef976\
                 81e179fc"
            )
        );
        let g_new = unhex(v.g_ir_new);
        let child_dh = child_keymat(v.prf, sk_d, Some(&g_new), &ni, &nr, 132);
        assert_eq!(
            *child_dh,
            unhex(
                "67edd256e64542436173e3ca39ef1fdec3c8240b860df26f84caf5258578ff35\
                 df40ddc31ea210e0523988b7531c9dc3207e0e98e256214999c7712f73ff044a\
                 9cf6e3a5e421862b9ba140862f460ea5236527cf8346db9ac23feb6636e21fc7\
                 a18a94a2e9d4ad95356e278f46ac3fa53a75a058c87293cf38dd863e879f84d0\
                 e0935da3"
            )
        );
        // SHA-384 sample, same method.
        let v = &CAVS[1];
        let (ni, nr) = (unhex(v.ni), unhex(v.nr));
        let sk_d = &unhex(v.dkm)[..48];
        let child = child_keymat(v.prf, sk_d, None, &ni, &nr, 132);
        assert_eq!(
            *child,
            unhex(
                "06126cc023ac8aabb3ae1ae2d583005a16d39e889efd09d588f2995883261e55\
                 f44f959072d25ea2f035a64ee8e2341421e7a2d95344282f6ff1f2a9ef236b5e\
                 c7eae4bb1074ce1f206461209c19dc05a61bbc10a5ec0391bdcd1d25831f8d11\
                 99af467359a13cb5f9b11187ad97379469f8a1ff3d612b18f165d32e3b5fc644\
                 0f447321"
            )
        );
    }

    #[test]
    fn sha512_known_answers_with_gcm_lengths() {
        // Computed with Python 3's hmac/hashlib (HMAC-SHA-512) on the CAVS SHA-256 sample's
        // inputs, with AES-GCM-256 key lengths (36 bytes each way, no integrity keys).
        let v = &CAVS[0];
        let (ni, nr) = (unhex(v.ni), unhex(v.nr));
        let prf = PrfAlg::HmacSha512;
        let seed = skeyseed(prf, &ni, &nr, &unhex(v.g_ir));
        assert_eq!(
            *seed,
            unhex(
                "74fb685d92c6985f64e98c139a691f7b61518d5a98e562d4b66041438c0e1928\
                 b278676e0f834cc016633fed6d23959c81dbdcf4edc1224e1d5024918b0b108a"
            )
        );
        let keys = derive_ike_keys(prf, &seed, &ni, &nr, v.spi_i, v.spi_r, 36, 0);
        let dkm = unhex(
            "e9233c438dd915075b72c82b12d238a5dc4aade0b85d14906b939ae23b9a4447\
             246674eb1754db88f725f29e2076199e3a61976477eb9e1700c550b996871af6\
             749b1bb5a1ee2c82489f6fb89c20981f8df83176c4239acd02470ac0ce844840\
             0589662ea98201287f544e87f431c732ad39d70353a9f96516c52b722abb7c87\
             24ee34eef2850926eb6a75b92df765def7e7aa1201664096531cb0a60e4afb5c\
             dd2f119663f4a2b2e5af503a29b5d4bc55a047d72edda57ab6c3e6dec95a4116\
             12f0842fbe03a6342ddea1696ecc24b2fb8cb5d0b7d0979c564b0489fe10e9d4\
             f94634c519435416890b542a2d9ee9ccdf63a17e8929c702d1c8649c85e78700\
             bbe15e9060c2407b",
        );
        assert_eq!(concat(&keys), dkm);
        // The cut: SK_d 64 | SK_ai 0 | SK_ar 0 | SK_ei 36 | SK_er 36 | SK_pi 64 | SK_pr 64.
        assert_eq!(*keys.sk_d, dkm[..64]);
        assert!(keys.sk_ai.is_empty() && keys.sk_ar.is_empty());
        assert_eq!(*keys.sk_ei, dkm[64..100]);
        assert_eq!(*keys.sk_er, dkm[100..136]);
        assert_eq!(*keys.sk_pi, dkm[136..200]);
        assert_eq!(*keys.sk_pr, dkm[200..264]);

        let g_new = unhex(v.g_ir_new);
        assert_eq!(
            *rekey_skeyseed(prf, &keys.sk_d, &g_new, &ni, &nr),
            unhex(
                "b504dda241be5d85e1fee06a9217c7c9bc57d17b91e33bac04f76801f9362602\
                 65ea73ff39d1312115f5f938d20b29812ce062cf127d3cbe69a668d605e69346"
            )
        );
        assert_eq!(
            *child_keymat(prf, &keys.sk_d, None, &ni, &nr, 72),
            unhex(
                "36570091ddd21fdabd93bc97da9b96bf3bacf350556da029c90ec7c5e761817a\
                 e5173c52d399742eee40014fc399f4f1a724e8e68aa125513f20b26a902f25b8\
                 4a45e53d895279e6"
            )
        );
        assert_eq!(
            *child_keymat(prf, &keys.sk_d, Some(&g_new), &ni, &nr, 72),
            unhex(
                "5bdee14c4434494ca997232c2879d597ae45631eacd5bcb0d9c69740a4ac7f2d\
                 19128ddf04c9cbde83371856dd2841b9e1f5a958cf9cb2b42b8ae14a1f1ba542\
                 e6a5515e871f7508"
            )
        );
    }

    #[test]
    fn key_lengths_follow_the_transforms() {
        let prf = PrfAlg::HmacSha256;
        // AES-CBC-256 with HMAC-SHA-384-192: 32-byte encryption keys, 48-byte integrity keys.
        let k = derive_ike_keys(prf, &[7; 32], b"ni", b"nr", 1, 2, 32, 48);
        let lens = [
            k.sk_d.len(),
            k.sk_ai.len(),
            k.sk_ar.len(),
            k.sk_ei.len(),
            k.sk_er.len(),
            k.sk_pi.len(),
            k.sk_pr.len(),
        ];
        assert_eq!(lens, [32, 48, 48, 32, 32, 32, 32]);
        assert_eq!(
            format!("{k:?}"),
            "IkeKeys { d: 32, ai/ar: 48, ei/er: 32, pi/pr: 32 bytes }"
        );
        // Initiator and responder keys differ, and SPIs are part of the seed.
        assert_ne!(k.sk_ai, k.sk_ar);
        assert_ne!(k.sk_ei, k.sk_er);
        assert_ne!(k.sk_pi, k.sk_pr);
        let swapped = derive_ike_keys(prf, &[7; 32], b"ni", b"nr", 2, 1, 32, 48);
        assert_ne!(swapped.sk_d, k.sk_d);
    }
}
