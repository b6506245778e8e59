//! A stable 64-bit fingerprint (FNV-1a) of canonical text: the same across processes and
//! releases, so it can be stored and compared after a restart.

pub fn fingerprint(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::fingerprint;

    #[test]
    fn separates_parts_and_is_stable() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
        assert_eq!(fingerprint(&["psa", "x"]), fingerprint(&["psa", "x"]));
        // Stored fingerprints must not change between releases.
        assert_eq!(fingerprint(&["psa", "x"]), 0xfec188eaad7465a5);
    }
}
