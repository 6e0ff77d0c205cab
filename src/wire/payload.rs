//! Parse and emit of individual payload bodies (everything after the 4-byte generic header).
