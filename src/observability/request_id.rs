//! Request ids: a well-formed incoming `x-request-id` is kept so a trace spans the client, the edge and the origin;
//! anything else is replaced by a fresh UUIDv4 built from random bytes the caller supplies.

/// Longest incoming id we keep; longer ones are replaced rather than echoed.
pub const MAX_LEN: usize = 128;

/// Whether an incoming id is safe to keep: 1 to 128 characters of `A-Z a-z 0-9 - _ . :`.
pub fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The id for this request: the incoming one when well formed, else a UUIDv4 from `random`.
pub fn accept_or_generate(incoming: Option<&str>, random: [u8; 16]) -> String {
    match incoming.map(str::trim) {
        Some(id) if is_well_formed(id) => id.to_owned(),
        _ => uuid::Builder::from_random_bytes(random)
            .into_uuid()
            .hyphenated()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_kept_and_others_replaced() {
        let random = [7u8; 16];
        let generated = accept_or_generate(None, random);
        assert_eq!(generated.len(), 36);
        assert_eq!(&generated[14..15], "4", "UUID version 4: {generated}");
        let cases: &[(&str, bool)] = &[
            ("abc-123", true),
            ("0f8fad5b-d9cb-469f-a165-70867728950e", true),
            ("trace:span.1_x", true),
            ("", false),
            ("has space", false),
            ("<script>", false),
            ("a\r\nset-cookie: x", false),
            ("ünïcode", false),
        ];
        for (incoming, kept) in cases {
            let id = accept_or_generate(Some(incoming), random);
            assert_eq!(id == *incoming, *kept, "{incoming:?} -> {id}");
        }
        let long = "a".repeat(MAX_LEN + 1);
        assert_eq!(accept_or_generate(Some(&long), random), generated);
        assert_eq!(
            accept_or_generate(Some(&long[..MAX_LEN]), random),
            long[..MAX_LEN]
        );
    }
}
