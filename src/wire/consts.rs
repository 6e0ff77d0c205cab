//! IANA code points used by this crate (IKEv2 registries; RFC 7296 section 3 and later RFCs).

// Exchange types.
pub const IKE_SA_INIT: u8 = 34;
pub const IKE_AUTH: u8 = 35;
pub const CREATE_CHILD_SA: u8 = 36;
pub const INFORMATIONAL: u8 = 37;

// Header flags.
pub const FLAG_INITIATOR: u8 = 0x08;
pub const FLAG_VERSION: u8 = 0x10;
pub const FLAG_RESPONSE: u8 = 0x20;
/// Version byte: major 2, minor 0.
pub const IKE_VERSION: u8 = 0x20;

// Payload types.
pub const PL_NONE: u8 = 0;
pub const PL_SA: u8 = 33;
pub const PL_KE: u8 = 34;
pub const PL_IDI: u8 = 35;
pub const PL_IDR: u8 = 36;
pub const PL_CERT: u8 = 37;
pub const PL_CERTREQ: u8 = 38;
pub const PL_AUTH: u8 = 39;
pub const PL_NONCE: u8 = 40;
pub const PL_NOTIFY: u8 = 41;
pub const PL_DELETE: u8 = 42;
pub const PL_VENDOR: u8 = 43;
pub const PL_TSI: u8 = 44;
pub const PL_TSR: u8 = 45;
pub const PL_SK: u8 = 46;
pub const PL_CP: u8 = 47;
pub const PL_EAP: u8 = 48;
pub const PL_SKF: u8 = 53;

// Protocol IDs.
pub const PROTO_IKE: u8 = 1;
pub const PROTO_AH: u8 = 2;
pub const PROTO_ESP: u8 = 3;

// Transform types.
pub const TRANS_ENCR: u8 = 1;
pub const TRANS_PRF: u8 = 2;
pub const TRANS_INTEG: u8 = 3;
pub const TRANS_DH: u8 = 4;
pub const TRANS_ESN: u8 = 5;

// Encryption algorithms.
pub const ENCR_AES_CBC: u16 = 12;
pub const ENCR_AES_GCM_16: u16 = 20;
// PRFs.
pub const PRF_HMAC_SHA2_256: u16 = 5;
pub const PRF_HMAC_SHA2_384: u16 = 6;
pub const PRF_HMAC_SHA2_512: u16 = 7;
// Integrity algorithms.
pub const AUTH_NONE: u16 = 0;
pub const AUTH_HMAC_SHA2_256_128: u16 = 12;
pub const AUTH_HMAC_SHA2_384_192: u16 = 13;
pub const AUTH_HMAC_SHA2_512_256: u16 = 14;
// Diffie-Hellman groups.
pub const DH_NONE: u16 = 0;
pub const DH_MODP_2048: u16 = 14;
pub const DH_ECP_256: u16 = 19;
pub const DH_CURVE25519: u16 = 31;
// Extended sequence numbers.
pub const ESN_NO: u16 = 0;
pub const ESN_YES: u16 = 1;

/// Transform attribute: Key Length in bits (TV format).
pub const ATTR_KEY_LENGTH: u16 = 14;

// Identification types.
pub const ID_IPV4_ADDR: u8 = 1;
pub const ID_FQDN: u8 = 2;
pub const ID_RFC822_ADDR: u8 = 3;
pub const ID_IPV6_ADDR: u8 = 5;
pub const ID_DER_ASN1_DN: u8 = 9;
pub const ID_KEY_ID: u8 = 11;

// Certificate encodings.
pub const CERT_X509_SIGNATURE: u8 = 4;

// Authentication methods.
pub const AUTH_RSA_SIG: u8 = 1;
pub const AUTH_SHARED_KEY: u8 = 2;
pub const AUTH_ECDSA_SHA256_P256: u8 = 9;
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;

// Traffic selector types.
pub const TS_IPV4_ADDR_RANGE: u8 = 7;
pub const TS_IPV6_ADDR_RANGE: u8 = 8;

// Configuration payload types and attributes.
pub const CFG_REQUEST: u8 = 1;
pub const CFG_REPLY: u8 = 2;
pub const CFG_SET: u8 = 3;
pub const CFG_ACK: u8 = 4;
pub const CFG_INTERNAL_IP4_ADDRESS: u16 = 1;
pub const CFG_INTERNAL_IP6_ADDRESS: u16 = 8;
/// RFC 5026: MIP6_HOME_PREFIX.
pub const CFG_MIP6_HOME_PREFIX: u16 = 16;

// Notify message types: errors (< 16384).
pub const N_UNSUPPORTED_CRITICAL_PAYLOAD: u16 = 1;
pub const N_INVALID_IKE_SPI: u16 = 4;
pub const N_INVALID_MAJOR_VERSION: u16 = 5;
pub const N_INVALID_SYNTAX: u16 = 7;
pub const N_INVALID_MESSAGE_ID: u16 = 9;
pub const N_INVALID_SPI: u16 = 11;
pub const N_NO_PROPOSAL_CHOSEN: u16 = 14;
pub const N_INVALID_KE_PAYLOAD: u16 = 17;
pub const N_AUTHENTICATION_FAILED: u16 = 24;
pub const N_SINGLE_PAIR_REQUIRED: u16 = 34;
pub const N_NO_ADDITIONAL_SAS: u16 = 35;
pub const N_INTERNAL_ADDRESS_FAILURE: u16 = 36;
pub const N_FAILED_CP_REQUIRED: u16 = 37;
pub const N_TS_UNACCEPTABLE: u16 = 38;
pub const N_INVALID_SELECTORS: u16 = 39;
pub const N_TEMPORARY_FAILURE: u16 = 43;
pub const N_CHILD_SA_NOT_FOUND: u16 = 44;
/// RFC 4877 / 5026: USE_ASSIGNED_HoA.
pub const N_USE_ASSIGNED_HOA: u16 = 42;

// Notify message types: status (>= 16384).
pub const N_INITIAL_CONTACT: u16 = 16384;
pub const N_SET_WINDOW_SIZE: u16 = 16385;
pub const N_ADDITIONAL_TS_POSSIBLE: u16 = 16386;
pub const N_IPCOMP_SUPPORTED: u16 = 16387;
pub const N_NAT_DETECTION_SOURCE_IP: u16 = 16388;
pub const N_NAT_DETECTION_DESTINATION_IP: u16 = 16389;
pub const N_COOKIE: u16 = 16390;
pub const N_USE_TRANSPORT_MODE: u16 = 16391;
pub const N_HTTP_CERT_LOOKUP_SUPPORTED: u16 = 16392;
pub const N_REKEY_SA: u16 = 16393;
pub const N_ESP_TFC_PADDING_NOT_SUPPORTED: u16 = 16394;
pub const N_NON_FIRST_FRAGMENTS_ALSO: u16 = 16395;
pub const N_MOBIKE_SUPPORTED: u16 = 16396;
pub const N_MULTIPLE_AUTH_SUPPORTED: u16 = 16404;
pub const N_EAP_ONLY_AUTHENTICATION: u16 = 16417;
pub const N_IKEV2_MESSAGE_ID_SYNC_SUPPORTED: u16 = 16420;
pub const N_IKEV2_FRAGMENTATION_SUPPORTED: u16 = 16430;
pub const N_SIGNATURE_HASH_ALGORITHMS: u16 = 16431;

// Hash algorithm identifiers for SIGNATURE_HASH_ALGORITHMS (RFC 7427).
pub const HASH_SHA2_256: u16 = 2;
pub const HASH_SHA2_384: u16 = 3;
pub const HASH_SHA2_512: u16 = 4;

// IP protocol numbers used in selectors.
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_MH: u8 = 135;

/// Names of the error (and mobility) notify types, for control answers, stats and logs (RFC 7296 3.10.1, RFC 5026, RFC 4877).
pub fn notify_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "UNSUPPORTED_CRITICAL_PAYLOAD",
        4 => "INVALID_IKE_SPI",
        5 => "INVALID_MAJOR_VERSION",
        7 => "INVALID_SYNTAX",
        9 => "INVALID_MESSAGE_ID",
        11 => "INVALID_SPI",
        14 => "NO_PROPOSAL_CHOSEN",
        17 => "INVALID_KE_PAYLOAD",
        24 => "AUTHENTICATION_FAILED",
        34 => "SINGLE_PAIR_REQUIRED",
        35 => "NO_ADDITIONAL_SAS",
        36 => "INTERNAL_ADDRESS_FAILURE",
        37 => "FAILED_CP_REQUIRED",
        38 => "TS_UNACCEPTABLE",
        39 => "INVALID_SELECTORS",
        42 => "USE_ASSIGNED_HoA",
        43 => "TEMPORARY_FAILURE",
        44 => "CHILD_SA_NOT_FOUND",
        _ => return None,
    })
}
