//! PRF_HMAC_SHA2_256/384/512 (RFC 4868) and prf+ (RFC 7296 2.13).

use super::Secret;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Sha256, Sha384, Sha512};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrfAlg {
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

/// HMAC of the concatenation of `parts` (so callers need not copy secrets into one buffer).
pub(crate) fn hmac_parts<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Secret {
    // HMAC takes keys of any length (longer ones are hashed), so this never fails.
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    // The CtOutput wipes itself on drop; only the copy in the Secret survives.
    Zeroizing::new(mac.finalize().as_bytes().to_vec())
}

impl PrfAlg {
    /// From the IKEv2 transform ID (PRF_HMAC_SHA2_*), None when unsupported.
    pub fn from_id(id: u16) -> Option<PrfAlg> {
        match id {
            5 => Some(PrfAlg::HmacSha256),
            6 => Some(PrfAlg::HmacSha384),
            7 => Some(PrfAlg::HmacSha512),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        match self {
            PrfAlg::HmacSha256 => 5,
            PrfAlg::HmacSha384 => 6,
            PrfAlg::HmacSha512 => 7,
        }
    }
    /// Output length in bytes (also the preferred key length).
    pub fn output_len(self) -> usize {
        match self {
            PrfAlg::HmacSha256 => 32,
            PrfAlg::HmacSha384 => 48,
            PrfAlg::HmacSha512 => 64,
        }
    }
    /// prf(key, data).
    pub fn prf(self, key: &[u8], data: &[u8]) -> Secret {
        self.prf_parts(key, &[data])
    }
    /// prf(key, part1 | part2 | ...), without building the concatenation.
    pub fn prf_parts(self, key: &[u8], parts: &[&[u8]]) -> Secret {
        match self {
            PrfAlg::HmacSha256 => hmac_parts::<Hmac<Sha256>>(key, parts),
            PrfAlg::HmacSha384 => hmac_parts::<Hmac<Sha384>>(key, parts),
            PrfAlg::HmacSha512 => hmac_parts::<Hmac<Sha512>>(key, parts),
        }
    }
    /// Largest `len` that [`PrfAlg::prf_plus`] can produce: the one-octet counter of RFC 7296
    /// 2.13 stops at 255 blocks.
    pub fn prf_plus_max_len(self) -> usize {
        255 * self.output_len()
    }
    /// prf+(key, seed) truncated to `len` bytes. `len` is bounded by 255 * output_len.
    ///
    /// # Panics
    /// If `len > self.prf_plus_max_len()`. Lengths come from the negotiated transforms (a few
    /// hundred bytes at most), never from the network, so a larger request is a caller bug and
    /// silently returning fewer bytes would hand out short keys.
    pub fn prf_plus(self, key: &[u8], seed: &[u8], len: usize) -> Secret {
        assert!(
            len <= self.prf_plus_max_len(),
            "prf+ asked for {len} bytes, more than 255 blocks"
        );
        let out_len = self.output_len();
        let blocks = len.div_ceil(out_len);
        let mut out: Secret = Zeroizing::new(Vec::with_capacity(blocks * out_len));
        // T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n). The previous block is read back from
        // `out` so that no extra copy of key material is made.
        for n in 1..=blocks {
            let counter = [n as u8]; // n <= 255, checked above
            let start = out.len();
            let block = if n == 1 {
                self.prf_parts(key, &[seed, &counter])
            } else {
                self.prf_parts(key, &[&out[start - out_len..], seed, &counter])
            };
            out.extend_from_slice(&block);
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testutil::hex as unhex;

    const ALL: [PrfAlg; 3] = [PrfAlg::HmacSha256, PrfAlg::HmacSha384, PrfAlg::HmacSha512];

    #[test]
    fn ids_round_trip_and_lengths() {
        for alg in ALL {
            assert_eq!(PrfAlg::from_id(alg.id()), Some(alg));
        }
        assert_eq!(PrfAlg::HmacSha256.id(), 5);
        assert_eq!(PrfAlg::HmacSha384.id(), 6);
        assert_eq!(PrfAlg::HmacSha512.id(), 7);
        // PRF_HMAC_MD5 (1), PRF_HMAC_SHA1 (2), PRF_AES128_XCBC (4) are not supported.
        for id in [0, 1, 2, 3, 4, 8, 0xffff] {
            assert_eq!(PrfAlg::from_id(id), None, "id {id}");
        }
        assert_eq!(PrfAlg::HmacSha256.output_len(), 32);
        assert_eq!(PrfAlg::HmacSha384.output_len(), 48);
        assert_eq!(PrfAlg::HmacSha512.output_len(), 64);
    }

    /// RFC 4231 section 4: (key, data, HMAC-SHA-256, HMAC-SHA-384, HMAC-SHA-512).
    type Rfc4231Case = (Vec<u8>, Vec<u8>, &'static str, &'static str, &'static str);

    fn rfc4231_cases() -> Vec<Rfc4231Case> {
        vec![
            // 4.2 Test Case 1
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
                "afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c\
                 faea9ea9076ede7f4af152e8b2fa9cb6",
                "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde\
                 daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
            ),
            // 4.3 Test Case 2 (key shorter than the output)
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
                "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e\
                 8e2240ca5e69e2c78b3239ecfab21649",
                "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554\
                 9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
            ),
            // 4.4 Test Case 3
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
                "88062608d3e6ad8a0aa2ace014c8a86f0aa635d947ac9febe83ef4e55966144b\
                 2a5ab39dc13814b94e3ab6e101a34f27",
                "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39\
                 bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
            ),
            // 4.5 Test Case 4
            (
                (1..=25).collect(),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
                "3e8a69b7783c25851933ab6290af6ca77a9981480850009cc5577c6e1f573b4e\
                 6801dd23c4a7d679ccf8a386c674cffb",
                "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3db\
                 a91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
            ),
            // 4.7 Test Case 6 (key longer than the hash block: hashed first)
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
                "4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6\
                 0c2ef6ab4030fe8296248df163f44952",
                "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352\
                 6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
            ),
            // 4.8 Test Case 7
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than \
                  block-size data. The key needs to be hashed before being used by the \
                  HMAC algorithm."
                    .to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
                "6617178e941f020d351e2f254e8fd32c602420feb0b8fb9adccebb82461e99c5\
                 a678cc31e799176d3860e6110c46523e",
                "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944\
                 b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
            ),
        ]
    }

    #[test]
    fn prf_matches_rfc4231() {
        for (i, (key, data, h256, h384, h512)) in rfc4231_cases().into_iter().enumerate() {
            assert_eq!(
                *PrfAlg::HmacSha256.prf(&key, &data),
                unhex(h256),
                "case {i} 256"
            );
            assert_eq!(
                *PrfAlg::HmacSha384.prf(&key, &data),
                unhex(h384),
                "case {i} 384"
            );
            assert_eq!(
                *PrfAlg::HmacSha512.prf(&key, &data),
                unhex(h512),
                "case {i} 512"
            );
        }
    }

    #[test]
    fn prf_matches_rfc4868_keys_of_output_length() {
        // RFC 4868 section 2.7.2 test case 1: the key is 0x0b repeated to the preferred key
        // length (32/48/64 bytes), data "Hi There"; the full, untruncated HMAC is the PRF output.
        let cases = [
            (
                PrfAlg::HmacSha256,
                "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7",
            ),
            (
                PrfAlg::HmacSha384,
                "b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc\
                 4c5df61d5b3297b4fb68dab9f1b582c2",
            ),
            (
                PrfAlg::HmacSha512,
                "637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8\
                 ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b",
            ),
        ];
        for (alg, expected) in cases {
            let key = vec![0x0b; alg.output_len()];
            assert_eq!(*alg.prf(&key, b"Hi There"), unhex(expected), "{alg:?}");
        }
    }

    #[test]
    fn prf_parts_is_prf_of_the_concatenation() {
        for alg in ALL {
            assert_eq!(
                alg.prf_parts(b"key", &[b"Hi ", b"", b"There"]),
                alg.prf(b"key", b"Hi There")
            );
        }
    }

    /// prf+ written the slow, obvious way: build each input buffer explicitly.
    fn reference_prf_plus(alg: PrfAlg, key: &[u8], seed: &[u8], len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev: Vec<u8> = Vec::new();
        let mut n: u8 = 1;
        while out.len() < len {
            let mut input = prev.clone();
            input.extend_from_slice(seed);
            input.push(n);
            prev = alg.prf(key, &input).to_vec();
            out.extend_from_slice(&prev);
            n = n.wrapping_add(1);
        }
        out.truncate(len);
        out
    }

    #[test]
    fn prf_plus_matches_the_definition() {
        let key = b"a prf+ key";
        let seed = b"Ni | Nr | SPIi | SPIr";
        for alg in ALL {
            let o = alg.output_len();
            for len in [0, 1, o - 1, o, o + 1, 2 * o, 3 * o + 5, 255 * o] {
                let got = alg.prf_plus(key, seed, len);
                assert_eq!(got.len(), len);
                assert_eq!(
                    *got,
                    reference_prf_plus(alg, key, seed, len),
                    "{alg:?} {len}"
                );
            }
            // The first block is prf(K, S | 0x01) and shorter requests are prefixes.
            let t1 = alg.prf(key, b"Ni | Nr | SPIi | SPIr\x01");
            assert_eq!(*alg.prf_plus(key, seed, o), *t1);
            let long = alg.prf_plus(key, seed, 5 * o);
            assert_eq!(long[..o + 7], alg.prf_plus(key, seed, o + 7)[..]);
        }
    }

    #[test]
    fn prf_plus_known_answer() {
        // Computed independently with Python 3's hmac/hashlib:
        // T1 = HMAC-SHA-256(k, s|01), T2 = HMAC-SHA-256(k, T1|s|02), first 40 bytes.
        let got = PrfAlg::HmacSha256.prf_plus(b"key", b"seed", 40);
        assert_eq!(
            *got,
            unhex(
                "a2392e429a99b173341b368bb5ce320bfd483d89567c14ec187c2d77e3c0a208\
                 ba45d21d42611712"
            )
        );
    }

    #[test]
    fn prf_plus_max_is_255_blocks() {
        for alg in ALL {
            assert_eq!(alg.prf_plus_max_len(), 255 * alg.output_len());
        }
    }

    #[test]
    #[should_panic(expected = "more than 255 blocks")]
    fn prf_plus_refuses_a_256th_block() {
        let _ = PrfAlg::HmacSha256.prf_plus(b"k", b"s", 255 * 32 + 1);
    }
}
