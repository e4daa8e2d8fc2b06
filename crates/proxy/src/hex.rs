//! Lower-case hex (fingerprints, flow ids, digests): a leaf every module
//! may use.

/// Lower-case hex of `bytes`.
pub fn lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
