//! A request body's content coding read back for the WAF, as the origins that inflate request bodies read it:
//! `gzip` (every member, as Node's gunzip, .NET's `GZipStream` and Go read it) and `deflate` (zlib-wrapped as RFC
//! 9110 §8.4.1.2 and Node read it, and raw as ASP.NET Core's `DeflateStream` reads it — a body can decode both ways,
//! so both readings are returned). Pure and bounded: at most `cap` bytes are inflated per reading, and the caller
//! reads at most [`read_bound`] coded bytes. Built on miniz_oxide's core inflater (the one flate2's `rust_backend` runs) rather than flate2's readers or
//! the runtime's `DecompressionStream`: it says how many coded bytes a stream took (trailing bytes are seen) and
//! tells input that stops short (a prefix of a long body) from input that is wrong, which a reader that returns
//! end-of-file at either cannot.

use miniz_oxide::inflate::core::inflate_flags::{
    TINFL_FLAG_HAS_MORE_INPUT, TINFL_FLAG_PARSE_ZLIB_HEADER, TINFL_FLAG_STOP_ON_BLOCK_BOUNDARY,
    TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF,
};
use miniz_oxide::inflate::core::{decompress, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

/// A content coding the WAF reads through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Deflate,
}

/// What a `Content-Encoding` leaves the WAF to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coded {
    /// No coding (none named, or only `identity`).
    Identity,
    Screened(Coding),
    /// A coding the WAF cannot read back (br, zstd, compress, unknown tokens) or a stack of codings.
    Unreadable,
}

/// The coding a `Content-Encoding` names: `identity` and empty members dropped (Apache's mod_deflate drops them
/// too), then exactly one of `gzip`, `x-gzip`, `deflate` (any case); anything else, and two codings stacked
/// (`gzip, gzip`: the origin would inflate once and read gzip), is [`Coded::Unreadable`].
pub fn coding(content_encoding: Option<&str>) -> Coded {
    let named: Vec<&str> = content_encoding
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"))
        .collect();
    match named.as_slice() {
        [] => Coded::Identity,
        [gzip] if gzip.eq_ignore_ascii_case("gzip") || gzip.eq_ignore_ascii_case("x-gzip") => {
            Coded::Screened(Coding::Gzip)
        }
        [deflate] if deflate.eq_ignore_ascii_case("deflate") => Coded::Screened(Coding::Deflate),
        _ => Coded::Unreadable,
    }
}

/// How many coded bytes are read to inflate an inspection cap of `cap` bytes: the cap, plus an eighth for the
/// worst a compressor makes of bytes it cannot compress (fixed Huffman codes spend 9 bits on a byte; stored
/// blocks 5 bytes per 64 KiB), plus headers. A coded prefix this long that inflates to less than the cap is no
/// body a compressor makes (a flood of empty blocks or members, a header with a huge name) and is not read on.
pub fn read_bound(cap: usize) -> usize {
    cap.saturating_add(cap / 8).saturating_add(1024)
}

/// One reading of the coded bytes.
#[derive(Debug, PartialEq, Eq)]
pub struct Reading {
    /// What it inflated, at most `cap` bytes — up to where it stopped, when it failed.
    pub output: Vec<u8>,
    /// It inflated the cap, or read the whole body as one well-formed stream (checksums matching, nothing after
    /// it). A reading that is not sound is one its decoder refuses (or one past the read bound).
    pub sound: bool,
    /// It stopped at this reading's own bounds, not at its decoder's refusal: more blocks or members than their
    /// output pays for, or the end of a prefix before the cap. An origin that reads the body this way reads on,
    /// past what was checked, so another reading being sound does not make up for it.
    pub cut_short: bool,
    /// The gzip headers' FEXTRA, FNAME and FCOMMENT fields, each on a line of its own: never inflated, but there in
    /// the coded bytes an origin that does not inflate reads. One text, checked once however many members hold
    /// them.
    pub header_text: Vec<u8>,
}

/// Every reading an origin may take of `coded` in `coding` (gzip: one; deflate: zlib, then raw). `whole` says
/// `coded` is the whole body; otherwise it is a prefix (of at most [`read_bound`] bytes), and a reading that did
/// not inflate the cap from it is not sound.
pub fn readings(coding: Coding, coded: &[u8], whole: bool, cap: usize) -> Vec<Reading> {
    match coding {
        Coding::Gzip => vec![gzip(coded, whole, cap)],
        Coding::Deflate => vec![
            deflate(coded, whole, cap, TINFL_FLAG_PARSE_ZLIB_HEADER),
            deflate(coded, whole, cap, 0),
        ],
    }
}

fn flags(whole: bool, extra: u32) -> u32 {
    let more = if whole { 0 } else { TINFL_FLAG_HAS_MORE_INPUT };
    TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF | TINFL_FLAG_STOP_ON_BLOCK_BOUNDARY | more | extra
}

/// Whether `blocks` deflate blocks of codes and gzip members are few enough for `written` bytes of output: 64, and
/// one more for each 64 bytes. Each block of codes (or member) costs building its Huffman tables, microseconds
/// (3.6 µs natively), whatever it holds: a flood of empty ones (10 bits each) took 157 ms of CPU for the 74 KB read
/// at the default cap, 2.3 s at a cap of 1 MiB. A stored block builds none (an empty one is 36 ns) and is not
/// counted: it is the marker a sync or full flush ends with. A compressor starts a block every few kilobytes, and
/// one that flushes each write adds a block of codes and an empty stored block per write: writes of 64 bytes or
/// more pass.
fn within_budget(blocks: usize, written: usize) -> bool {
    blocks <= 64 + written / 64
}

/// Inflates one stream (zlib, raw, or a gzip member's deflate data) from `coded` into `out`, whose `start` is the
/// stream's window start and `end` its output so far, block by block against [`within_budget`] (`blocks` counts
/// across a body's members). Returns the status, the coded bytes taken and the output's new end; `None` for the
/// status once over the budget (the decoder did not refuse the bytes: the WAF stopped reading them).
fn inflate_blocks(
    state: &mut DecompressorOxide,
    coded: &[u8],
    out: &mut [u8],
    (start, mut end): (usize, usize),
    flags: u32,
    blocks: &mut usize,
) -> (Option<TINFLStatus>, usize, usize) {
    let mut read = 0;
    loop {
        let (status, took, wrote) =
            decompress(state, &coded[read..], &mut out[start..], end - start, flags);
        read += took;
        end += wrote;
        if status != TINFLStatus::BlockBoundary {
            return (Some(status), read, end);
        }
        if stored_next(state, &coded[read..]) {
            continue;
        }
        *blocks += 1;
        if !within_budget(*blocks, end) {
            return (None, read, end);
        }
    }
}

/// Whether the block that `coded` goes on with at a block boundary is a stored one (BTYPE 00), which builds no
/// tables: its header's three bits are the bits the decoder kept from the last byte it took, then `coded`'s first
/// byte. Not when they are not all there (the prefix ends).
fn stored_next(state: &DecompressorOxide, coded: &[u8]) -> bool {
    let Some(kept) = state.block_boundary_state() else {
        return false;
    };
    let (mut bits, mut known) = (u32::from(kept.bit_buf), u32::from(kept.num_bits));
    if let Some(&byte) = coded.first() {
        bits |= u32::from(byte) << known;
        known += 8;
    }
    known >= 3 && (bits >> 1) & 3 == 0
}

/// Whether a reading that stopped with `status` (`None`: over the budget) after `written` bytes stopped at its own
/// bounds rather than at bytes its decoder refuses: over the budget, or out of a prefix's bytes short of the cap.
fn cut_short(status: Option<TINFLStatus>, whole: bool, written: usize, cap: usize) -> bool {
    match status {
        None => true,
        Some(TINFLStatus::NeedsMoreInput) => !whole && written < cap,
        Some(_) => false,
    }
}

/// A zlib (`zlib` set: header and Adler-32 checked) or raw deflate stream.
fn deflate(coded: &[u8], whole: bool, cap: usize, zlib: u32) -> Reading {
    let mut state = Box::<DecompressorOxide>::default();
    let mut out = vec![0; cap];
    let (status, read, written) = inflate_blocks(
        &mut state,
        coded,
        &mut out,
        (0, 0),
        flags(whole, zlib),
        &mut 0,
    );
    out.truncate(written);
    let sound = match status {
        Some(TINFLStatus::HasMoreOutput) => true,
        Some(TINFLStatus::Done) => written == cap || (whole && read == coded.len()),
        _ => false,
    };
    Reading {
        output: out,
        sound,
        cut_short: cut_short(status, whole, written, cap),
        header_text: Vec::new(),
    }
}

/// A gzip body: members one after another (RFC 1952), each with its header checked as zlib checks it (no
/// reserved flag, the header CRC when flagged) and its CRC-32 and length; nothing but members after the first.
fn gzip(coded: &[u8], whole: bool, cap: usize) -> Reading {
    let mut state = Box::<DecompressorOxide>::default();
    let mut out = vec![0; cap];
    let mut reading = Reading {
        output: Vec::new(),
        sound: false,
        cut_short: false,
        header_text: Vec::new(),
    };
    let (mut at, mut written, mut blocks) = (0, 0, 0);
    let sound = loop {
        let Some(start) = member_header(&coded[at..], &mut reading.header_text) else {
            break false;
        };
        at += start;
        blocks += 1;
        if !within_budget(blocks, written) {
            break false;
        }
        state.init();
        // Each member's window starts with it: a member that reaches back into the one before is refused, as zlib
        // refuses it.
        let member = written;
        let (status, read, end) = inflate_blocks(
            &mut state,
            &coded[at..],
            &mut out,
            (member, member),
            flags(whole, 0),
            &mut blocks,
        );
        written = end;
        at += read;
        reading.cut_short = cut_short(status, whole, written, cap);
        match status {
            Some(TINFLStatus::Done) => {}
            Some(TINFLStatus::HasMoreOutput) => break true,
            _ => break false,
        }
        let Some(trailer) = coded.get(at..at + 8) else {
            break false;
        };
        let crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
        let size = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
        if crc != crc32(&out[member..written]) || size != (written - member) as u32 {
            break false;
        }
        at += 8;
        if written == cap {
            break true;
        }
        if at == coded.len() {
            break whole;
        }
    };
    out.truncate(written);
    reading.output = out;
    reading.sound = sound;
    reading
}

/// The CRC-32 of gzip (ISO 3309, reflected, polynomial 0xEDB88320), by a 1 KiB table built at compile time: the
/// crc32fast crate's sixteen tables (16 KiB in the wasm) buy speed this cap-bounded reading does not need.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    !bytes.iter().fold(!0u32, |crc, &b| {
        TABLE[usize::from((crc as u8) ^ b)] ^ (crc >> 8)
    })
}

/// The length of the gzip member header `bytes` starts with, its text fields noted; `None` for anything but a
/// well-formed header (or one cut off).
fn member_header(bytes: &[u8], text: &mut Vec<u8>) -> Option<usize> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    let fixed = bytes.get(..10)?;
    let flags = fixed[3];
    if fixed[..3] != [0x1f, 0x8b, 8] || flags & 0xe0 != 0 {
        return None;
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        let length = bytes.get(at..at + 2)?;
        let end = at + 2 + usize::from(u16::from_le_bytes([length[0], length[1]]));
        // The extra field is binary (subfields of an id and a length: BGZF's is `BC 02 00` and a block size), so
        // its text is read between its control bytes, as a binary type's content is read up to one: a NUL in a
        // length is no null-byte attack, any more than the NULs of the header's MTIME are.
        text.extend(bytes.get(at + 2..end)?.iter().map(|&b| match b {
            0..0x20 if !matches!(b, b'\t' | b'\r' | b'\n') => b'\n',
            _ => b,
        }));
        text.push(b'\n');
        at = end;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let field = bytes.get(at..)?;
            let end = memchr::memchr(0, field)?;
            text.extend_from_slice(&field[..end]);
            text.push(b'\n');
            at += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        let crc = bytes.get(at..at + 2)?;
        if u16::from_le_bytes([crc[0], crc[1]]) != crc32(&bytes[..at]) as u16 {
            return None;
        }
        at += 2;
    }
    Some(at)
}

/// Deflate streams made by hand for tests, bit by bit: what no compressor makes but a client can send.
#[cfg(test)]
pub(crate) mod craft {
    /// Bits in deflate's order: fields least significant bit first, Huffman codes most significant bit first.
    #[derive(Default)]
    struct Bits(Vec<u8>);

    impl Bits {
        fn field(&mut self, value: u32, length: u32) {
            self.0.extend((0..length).map(|i| ((value >> i) & 1) as u8));
        }
        fn code(&mut self, code: (u32, u32)) {
            self.0
                .extend((0..code.1).rev().map(|i| ((code.0 >> i) & 1) as u8));
        }
        fn bytes(&self) -> Vec<u8> {
            let mut out = vec![0u8; self.0.len().div_ceil(8)];
            for (i, bit) in self.0.iter().enumerate() {
                out[i / 8] |= bit << (i % 8);
            }
            out
        }
    }

    /// The canonical Huffman codes (code, length) of code lengths `lengths` (RFC 1951 §3.2.2).
    fn canonical(lengths: &[u32]) -> Vec<(u32, u32)> {
        let mut count = [0u32; 16];
        for &l in lengths.iter().filter(|&&l| l > 0) {
            count[l as usize] += 1;
        }
        let mut next = [0u32; 16];
        for bits in 1..16 {
            next[bits] = (next[bits - 1] + count[bits - 1]) << 1;
        }
        lengths
            .iter()
            .map(|&l| {
                if l == 0 {
                    return (0, 0);
                }
                let code = next[l as usize];
                next[l as usize] += 1;
                (code, l)
            })
            .collect()
    }

    /// A final raw deflate block of `data` as literals in fixed Huffman codes (never a stored block, which would
    /// show `data` as it is).
    pub(crate) fn fixed_codes(data: &[u8]) -> Vec<u8> {
        let mut bits = Bits::default();
        bits.field(1, 1);
        bits.field(1, 2);
        for &byte in data {
            bits.code(match byte {
                0..=143 => (0x30 + u32::from(byte), 8),
                _ => (0x190 + u32::from(byte) - 144, 9),
            });
        }
        bits.code((0, 7));
        bits.bytes()
    }

    /// A non-final raw deflate block of dynamic codes holding `n` spaces in 15 bits each: more coded bytes than
    /// output, which no compressor makes (the code is complete: A to N take lengths 1 to 14, space and the end of
    /// the block 15); then an empty stored block, to end on a byte.
    pub(crate) fn spaces_in_long_codes(n: usize) -> Vec<u8> {
        let mut lengths = vec![0u32; 258];
        lengths[usize::from(b' ')] = 15;
        for (i, length) in (1..=14).enumerate() {
            lengths[usize::from(b'A') + i] = length;
        }
        lengths[256] = 15;
        lengths[257] = 1; // the one distance code
                          // The code lengths' code: 18 (a run of zeros) in 1 bit, 1 in 4, 2 to 15 in 5.
        let mut clen = [0u32; 19];
        clen[18] = 1;
        clen[1] = 4;
        clen[2..=15].fill(5);
        let clen_codes = canonical(&clen);
        let mut bits = Bits::default();
        bits.field(0, 1); // not final
        bits.field(2, 2); // dynamic codes
        bits.field(0, 5); // HLIT: 257
        bits.field(0, 5); // HDIST: 1
        bits.field(15, 4); // HCLEN: 19
        for symbol in [
            16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
        ] {
            bits.field(clen[symbol], 3);
        }
        let mut at = 0;
        while at < lengths.len() {
            let zeros = lengths[at..]
                .iter()
                .take_while(|&&l| l == 0)
                .count()
                .min(138);
            if zeros >= 11 {
                bits.code(clen_codes[18]);
                bits.field(zeros as u32 - 11, 7);
                at += zeros;
            } else {
                bits.code(clen_codes[lengths[at] as usize]);
                at += 1;
            }
        }
        let codes = canonical(&lengths[..257]);
        for _ in 0..n {
            bits.code(codes[usize::from(b' ')]);
        }
        bits.code(codes[256]);
        // An empty stored block (as a sync flush ends), which brings the stream to a byte boundary.
        bits.field(0, 3);
        let mut out = bits.bytes();
        out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        out
    }

    /// `n` empty non-final blocks of fixed codes (10 bits each), then an empty stored block, to end on a byte.
    pub(crate) fn empty_fixed_blocks(n: usize) -> Vec<u8> {
        let mut bits = Bits::default();
        for _ in 0..n {
            bits.field(0, 1);
            bits.field(1, 2);
            bits.code((0, 7));
        }
        bits.field(0, 3);
        let mut out = bits.bytes();
        out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        out
    }

    pub(crate) fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    /// Bytes that are a whole zlib stream of one stored block (its output: `raw`'s bytes as they are, padded with
    /// spaces to 65,534) and a raw deflate stream that, after a stored block of one byte and an empty one, goes on
    /// with `raw` as blocks (`78` is a stored block to raw deflate, of the length `01 00` the zlib header's flag byte
    /// and the stored block's first byte make, whose complement the zlib block's length `fe ff` is).
    pub(crate) fn zlib_raw_polyglot(raw: &[u8]) -> Vec<u8> {
        let mut stored = vec![0x00, 0x00, 0xff, 0xff];
        stored.extend_from_slice(raw);
        assert!(stored.len() <= 0xfffe);
        stored.resize(0xfffe, b' ');
        let mut coded = vec![0x78, 0x01, 0x00, 0xfe, 0xff, 0x01, 0x00];
        coded.extend_from_slice(&stored);
        // The zlib reading's final block: fixed codes, nothing but end-of-block; then its Adler-32.
        coded.extend_from_slice(&[0x03, 0x00]);
        coded.extend_from_slice(&adler32(&stored).to_be_bytes());
        coded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use craft::{fixed_codes, spaces_in_long_codes, zlib_raw_polyglot};
    use miniz_oxide::deflate::{compress_to_vec, compress_to_vec_zlib};

    const CAP: usize = 64 * 1024;

    /// A gzip member of `data` with the header flags and fields given (`extra`, `name`, `comment`, header CRC).
    fn member(data: &[u8], name: Option<&[u8]>, comment: Option<&[u8]>, hcrc: bool) -> Vec<u8> {
        let mut flags = 0;
        flags |= if name.is_some() { 8 } else { 0 };
        flags |= if comment.is_some() { 16 } else { 0 };
        flags |= if hcrc { 2 } else { 0 };
        let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        for field in [name, comment].into_iter().flatten() {
            out.extend_from_slice(field);
            out.push(0);
        }
        if hcrc {
            let crc = crc32(&out) as u16;
            out.extend_from_slice(&crc.to_le_bytes());
        }
        out.extend(compress_to_vec(data, 6));
        out.extend_from_slice(&crc32(data).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        member(data, None, None, false)
    }

    fn one(coding: Coding, coded: &[u8], whole: bool, cap: usize) -> (Vec<u8>, bool) {
        let mut r = readings(coding, coded, whole, cap);
        let first = r.remove(0);
        (first.output, first.sound)
    }

    /// Whether some reading is sound, and every reading's output.
    fn deflated(coded: &[u8], whole: bool, cap: usize) -> (bool, Vec<Vec<u8>>) {
        let r = readings(Coding::Deflate, coded, whole, cap);
        (
            r.iter().any(|r| r.sound),
            r.into_iter().map(|r| r.output).collect(),
        )
    }

    #[test]
    fn crc32_is_gzips() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn content_encoding_names_one_coding_the_waf_reads_or_is_unreadable() {
        for (value, expected) in [
            (None, Coded::Identity),
            (Some(""), Coded::Identity),
            (Some(" Identity "), Coded::Identity),
            (Some("identity, identity"), Coded::Identity),
            (Some("gzip"), Coded::Screened(Coding::Gzip)),
            (Some("GZIP"), Coded::Screened(Coding::Gzip)),
            (Some("x-gzip"), Coded::Screened(Coding::Gzip)),
            (Some(" gzip , identity"), Coded::Screened(Coding::Gzip)),
            (Some("identity, deflate"), Coded::Screened(Coding::Deflate)),
            (Some("Deflate"), Coded::Screened(Coding::Deflate)),
            (Some("br"), Coded::Unreadable),
            (Some("zstd"), Coded::Unreadable),
            (Some("compress"), Coded::Unreadable),
            (Some("x-custom"), Coded::Unreadable),
            (Some("gzip, gzip"), Coded::Unreadable),
            (Some("deflate, gzip"), Coded::Unreadable),
            (Some("gzip;q=1"), Coded::Unreadable),
        ] {
            assert_eq!(coding(value), expected, "{value:?}");
        }
    }

    #[test]
    fn gzip_is_read_member_by_member_to_the_last() {
        let data = br#"{"q":"hello"}"#;
        assert_eq!(
            one(Coding::Gzip, &gz(data), true, CAP),
            (data.to_vec(), true)
        );
        // The attack in the second member is in the output, as Node's gunzip hands it on.
        let attack = br#"{"q":"x' union select password from users--"}"#;
        let two = [gz(data), gz(attack)].concat();
        let (output, sound) = one(Coding::Gzip, &two, true, CAP);
        assert!(sound);
        assert_eq!(output, [&data[..], &attack[..]].concat());
        // An empty member, then a member: both read.
        let (output, sound) = one(Coding::Gzip, &[gz(b""), gz(data)].concat(), true, CAP);
        assert_eq!((output, sound), (data.to_vec(), true));
    }

    #[test]
    fn gzip_header_fields_are_read_over_and_kept_as_text() {
        let data = b"plain";
        let coded = member(
            data,
            Some(b"report.json"),
            Some(b"&q=' union select 1--&"),
            true,
        );
        let r = readings(Coding::Gzip, &coded, true, CAP);
        assert_eq!((r[0].output.as_slice(), r[0].sound), (&data[..], true));
        assert_eq!(r[0].header_text, b"report.json\n&q=' union select 1--&\n");
        // A header CRC that does not match is refused, as zlib refuses it.
        let mut bad = coded.clone();
        let at = 10 + b"report.json".len() + 1 + b"&q=' union select 1--&".len() + 1;
        bad[at] ^= 1;
        assert!(!one(Coding::Gzip, &bad, true, CAP).1);
        // A reserved flag, another method, another magic.
        for (at, byte) in [(3, 0x20), (2, 7), (0, 0x1e)] {
            let mut bad = gz(data);
            bad[at] = byte;
            assert!(!one(Coding::Gzip, &bad, true, CAP).1, "byte {at} = {byte}");
        }
    }

    #[test]
    fn corrupt_truncated_or_trailed_gzip_is_not_sound() {
        let data = "a sentence, said again and again. ".repeat(50);
        let coded = gz(data.as_bytes());
        let mut crc = coded.clone();
        let n = crc.len();
        crc[n - 8] ^= 1;
        let mut size = coded.clone();
        size[n - 1] ^= 1;
        let mut body = coded.clone();
        body[12] ^= 0x55;
        for (label, bad) in [
            ("crc", crc),
            ("size", size),
            ("body", body),
            ("cut in the body", coded[..coded.len() / 2].to_vec()),
            ("cut in the trailer", coded[..n - 3].to_vec()),
            ("cut in the header", coded[..6].to_vec()),
            ("empty", Vec::new()),
            ("trailing garbage", [&coded[..], b"garbage"].concat()),
            ("trailing zeros", [&coded[..], &[0, 0][..]].concat()),
            ("a stray magic byte", [&coded[..], &[0x1f][..]].concat()),
        ] {
            assert!(!one(Coding::Gzip, &bad, true, CAP).1, "{label}");
        }
    }

    #[test]
    fn a_prefix_is_sound_once_it_inflates_the_cap_and_not_before() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 1000).into_bytes())
            .collect();
        let cap = 4096;
        let coded = gz(&data);
        assert!(coded.len() > read_bound(cap));
        let prefix = &coded[..read_bound(cap)];
        let (output, sound) = one(Coding::Gzip, prefix, false, cap);
        assert_eq!((output.as_slice(), sound), (&data[..cap], true));
        let zlib = compress_to_vec_zlib(&data, 6);
        let (sound, outputs) = deflated(&zlib[..read_bound(cap)], false, cap);
        assert!(sound);
        assert_eq!(outputs[0], &data[..cap]);
        // A prefix that has not inflated the cap by the read bound: the members or blocks are no compressor's.
        let short = gz(b"short");
        assert!(!one(Coding::Gzip, &short, false, cap).1);
    }

    #[test]
    fn zlib_and_raw_deflate_are_both_read() {
        let data = br#"{"q":"x' union select password from users--"}"#;
        let (sound, outputs) = deflated(&compress_to_vec_zlib(data, 1), true, CAP);
        assert!(sound);
        assert_eq!(outputs[0], data);
        let (sound, outputs) = deflated(&compress_to_vec(data, 1), true, CAP);
        assert!(sound);
        assert_eq!(outputs[1], data, "raw deflate, as ASP.NET Core reads it");
        // A wrong Adler-32, a preset dictionary, trailing bytes, a gzip body sent as deflate: no reading sound.
        let zlib = compress_to_vec_zlib(data, 1);
        let mut adler = zlib.clone();
        let n = adler.len();
        adler[n - 1] ^= 1;
        for (label, bad) in [
            ("adler", adler),
            ("dictionary", [&[0x78, 0xbb][..], &zlib[2..]].concat()),
            ("trailing", [&zlib[..], b"xx"].concat()),
            ("gzip", gz(data)),
            ("cut", zlib[..n - 6].to_vec()),
            ("empty", Vec::new()),
        ] {
            assert!(!deflated(&bad, true, CAP).0, "{label}");
        }
    }

    /// Bytes that read as zlib (a stored block holding a raw stream's bytes, which inflate to other text) and as
    /// raw deflate (a stored block of one byte, an empty one, then the raw stream): each reading's output is
    /// returned, so the WAF screens what either origin reads.
    #[test]
    fn a_zlib_raw_polyglot_is_read_both_ways() {
        let attack = b" ' union select password from users--";
        let hidden = craft::fixed_codes(attack);
        // zlib: 78 01 (CM 8, no dictionary), then a non-final stored block: 00, LEN fffe, NLEN 0001, 65534 bytes.
        // raw: 78 is a non-final stored block, LEN 0001 (01 00), NLEN fffe: one byte (01); then 00, a stored block
        // of 0x2020 spaces, then the hidden stream.
        let mut stored = vec![0x20, 0x20, 0xdf, 0xdf];
        stored.extend(std::iter::repeat_n(b' ', 0x2020));
        stored.extend_from_slice(&hidden);
        stored.resize(0xfffe, b' ');
        let mut coded = vec![0x78, 0x01, 0x00, 0xfe, 0xff, 0x01, 0x00];
        coded.extend_from_slice(&stored);
        // The zlib reading's final block: fixed codes, nothing but end-of-block; then its Adler-32.
        coded.extend_from_slice(&[0x03, 0x00]);
        coded.extend_from_slice(&craft::adler32(&stored).to_be_bytes());
        let (sound, outputs) = deflated(&coded, true, 0x20000);
        assert!(sound, "the zlib reading is whole and well-formed");
        assert_eq!(outputs[0], stored, "zlib reads the stored block");
        assert!(
            !outputs[0].windows(6).any(|w| w == b"union "),
            "and no attack"
        );
        let raw = &outputs[1];
        assert!(
            raw.ends_with(attack),
            "raw reading ends with the attack: {:?}",
            String::from_utf8_lossy(&raw[raw.len().saturating_sub(60)..])
        );
    }

    /// A reading that stops at the WAF's own bounds (over the block budget, or out of a prefix short of the cap) is
    /// cut short, whatever the other reading makes of the bytes; one whose decoder refuses the bytes is not.
    #[test]
    fn a_reading_stopped_at_the_wafs_bounds_is_cut_short() {
        let attack = br#"{"q":"x' union select password from users--"}"#;
        // The raw reading: 100 empty fixed-code blocks, over the budget for one byte of output, then the attack.
        let empty_blocks = craft::empty_fixed_blocks(100);
        let flood = zlib_raw_polyglot(&[&empty_blocks[..], &fixed_codes(attack)].concat());
        let r = readings(Coding::Deflate, &flood, true, CAP);
        assert!(r[0].sound && !r[0].cut_short, "zlib reads its stored block");
        assert!(r[1].cut_short, "raw is over the budget");
        assert!(!r[1].output.ends_with(attack));
        // The raw reading: 4,000 spaces in 15-bit codes, then the attack. Whole, it reads to the attack.
        let long =
            zlib_raw_polyglot(&[&spaces_in_long_codes(4000)[..], &fixed_codes(attack)].concat());
        let r = readings(Coding::Deflate, &long, true, CAP);
        assert!(r[1].output.ends_with(attack) && !r[1].cut_short);
        // At the read bound of a 4 KiB cap, zlib has inflated the cap and raw has neither done so nor failed.
        let cap = 4096;
        let r = readings(Coding::Deflate, &long[..read_bound(cap)], false, cap);
        assert!(r[0].sound && !r[0].cut_short);
        assert!(r[1].cut_short && r[1].output.len() < cap);
        // Bytes a decoder refuses are not cut short: a zlib body read raw, a raw body read as zlib, a long zlib
        // body's prefix read raw.
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| format!("{} ", i.wrapping_mul(2_654_435_761) % 1000).into_bytes())
            .collect();
        let zlib = compress_to_vec_zlib(&data, 6);
        for (coded, whole) in [
            (compress_to_vec_zlib(attack, 6), true),
            (compress_to_vec(attack, 6), true),
            (zlib[..read_bound(cap)].to_vec(), false),
        ] {
            let r = readings(Coding::Deflate, &coded, whole, cap);
            assert!(r.iter().all(|r| !r.cut_short) && r.iter().any(|r| r.sound));
        }
    }

    #[test]
    fn floods_huge_headers_and_bombs_stay_bounded() {
        let cap = 1024;
        let bound = read_bound(cap);
        // Empty stored blocks: no output however many; the prefix at the bound is not sound.
        let flood: Vec<u8> = std::iter::repeat_n([0u8, 0, 0, 0xff, 0xff], bound / 5 + 10)
            .flatten()
            .collect();
        assert!(!deflated(&flood[..bound], false, cap).0);
        // Empty gzip members.
        let members: Vec<u8> = std::iter::repeat_n(gz(b""), bound / 20 + 10)
            .flatten()
            .collect();
        assert!(!one(Coding::Gzip, &members[..bound], false, cap).1);
        // A name longer than the bound.
        let name = vec![b'a'; 2 * bound];
        let huge = member(b"x", Some(&name), None, false);
        assert!(!one(Coding::Gzip, &huge[..bound], false, cap).1);
        // A bomb: 10 MB of spaces inflate only to the cap, which is sound.
        let bomb = gz(&vec![b' '; 10 * 1024 * 1024]);
        let (output, sound) = one(Coding::Gzip, &bomb, true, cap);
        assert_eq!((output.len(), sound), (cap, true));
        let (sound, outputs) = deflated(&compress_to_vec_zlib(&vec![b' '; 1 << 20], 6), true, cap);
        assert!(sound);
        assert_eq!(outputs[0].len(), cap);
    }

    #[test]
    fn any_byte_changed_or_cut_reads_without_a_panic_and_within_the_cap() {
        let data = br#"{"q":"a fine day","n":[1,2,3],"t":"again and again and again"}"#;
        let cap = 40;
        let streams = [
            (
                Coding::Gzip,
                member(data, Some(b"n.json"), Some(b"c"), true),
            ),
            (Coding::Deflate, compress_to_vec_zlib(data, 6)),
            (Coding::Deflate, compress_to_vec(data, 0)),
        ];
        for (coding, coded) in streams {
            for at in 0..coded.len() {
                for flip in [0x01u8, 0x80, 0xff] {
                    let mut changed = coded.clone();
                    changed[at] ^= flip;
                    for whole in [true, false] {
                        for r in readings(coding, &changed, whole, cap) {
                            assert!(r.output.len() <= cap);
                        }
                    }
                }
                for r in readings(coding, &coded[..at], false, cap) {
                    assert!(r.output.len() <= cap);
                }
            }
        }
    }

    #[test]
    fn more_blocks_or_members_than_their_output_pays_for_are_not_sound() {
        // Whole, well-formed streams: 2,000 empty fixed-code blocks (10 bits each), then a final stored block; and
        // 2,000 empty gzip members, then one with data. Each block or member costs building its tables however
        // empty, so a flood is refused once over the budget (it was read to its end: 157 ms for a 74 KB body).
        let data = b"hello";
        let blocks = |n: usize| {
            let mut bits = Vec::new();
            for _ in 0..n {
                bits.extend([0u8, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
            }
            let mut out = vec![0u8; bits.len().div_ceil(8)];
            for (i, bit) in bits.iter().enumerate() {
                out[i / 8] |= bit << (i % 8);
            }
            // Then a final stored block: BFINAL 1, BTYPE 00, padded to the byte, LEN, NLEN, the bytes.
            out.push(1);
            out.extend_from_slice(&(data.len() as u16).to_le_bytes());
            out.extend_from_slice(&(!(data.len() as u16)).to_le_bytes());
            out.extend_from_slice(data);
            out
        };
        let members = |n: usize| -> Vec<u8> {
            std::iter::repeat_n(gz(b""), n)
                .flatten()
                .chain(gz(data))
                .collect()
        };
        let (sound, outputs) = deflated(&blocks(2000), true, CAP);
        assert!(!sound, "{outputs:?}");
        assert!(!one(Coding::Gzip, &members(2000), true, CAP).1);
        // Within the budget: 60 empty blocks, or members, before the data.
        let (sound, outputs) = deflated(&blocks(60), true, CAP);
        assert!(sound);
        assert_eq!(outputs[1], data);
        assert_eq!(
            one(Coding::Gzip, &members(60), true, CAP),
            (data.to_vec(), true)
        );
    }

    /// A client that gzips a stream of records and flushes after each (Node's `flush()`, Go's `Flush`): each
    /// record ends a block of codes and adds an empty stored block, two blocks per 80-byte record, which the budget
    /// of one block per 64 bytes refused (body-encoding) after 64 records. Stored blocks build no tables and are
    /// not counted; a flood of empty fixed-code blocks between the records still is.
    #[test]
    fn a_stream_flushed_after_every_record_is_read() {
        use miniz_oxide::deflate::core::{
            compress_to_output, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush,
        };
        let records: Vec<Vec<u8>> = (0..300)
            .map(|i| {
                format!(
                    r#"{{"ts":{},"level":"info","msg":"request served","path":"/api/items/{i}"}}"#,
                    1_700_000_000 + i
                )
                .into_bytes()
            })
            .collect();
        let data = records.concat();
        let mut raw = Vec::new();
        let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
        for (record, flush) in records
            .iter()
            .map(|r| (r.as_slice(), TDEFLFlush::Sync))
            .chain([(&[][..], TDEFLFlush::Finish)])
        {
            compress_to_output(&mut c, record, flush, |b| {
                raw.extend_from_slice(b);
                true
            });
        }
        let mut coded = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        coded.extend_from_slice(&raw);
        coded.extend_from_slice(&crc32(&data).to_le_bytes());
        coded.extend_from_slice(&(data.len() as u32).to_le_bytes());
        assert_eq!(one(Coding::Gzip, &coded, true, CAP), (data.clone(), true));
        let (sound, outputs) = deflated(&raw, true, CAP);
        assert!(sound);
        assert_eq!(outputs[1], data);
        // The same records with an empty fixed-code block (a partial flush's marker, 10 bits) after each: counted.
        let mut flooded = Vec::new();
        let mut c = CompressorOxide::new(create_comp_flags_from_zip_params(6, -15, 0));
        for record in &records {
            compress_to_output(&mut c, record, TDEFLFlush::Sync, |b| {
                flooded.extend_from_slice(b);
                true
            });
            flooded
                .extend(std::iter::repeat_n([0x02u8, 0x00, 0x00, 0x00, 0xff, 0xff], 2).flatten());
        }
        flooded.extend_from_slice(&[0x03, 0x00]);
        assert!(!deflated(&flooded, true, CAP).0);
    }

    #[test]
    fn a_member_that_reaches_into_the_one_before_is_refused() {
        // Member 2: a fixed-codes block copying 3 bytes from distance 1 with no output of its own before it.
        // Literal/length 257 (length 3) is 7 bits 0000001; distance code 0 (distance 1) is 5 bits 00000; EOB 0000000.
        let mut bits: Vec<u8> = vec![1, 1, 0]; // BFINAL, BTYPE=01 (LSB first)
        bits.extend([0, 0, 0, 0, 0, 0, 1]); // Huffman codes are sent most significant bit first
        bits.extend([0, 0, 0, 0, 0]);
        bits.extend([0; 7]);
        let mut block = vec![0u8; bits.len().div_ceil(8)];
        for (i, bit) in bits.iter().enumerate() {
            block[i / 8] |= bit << (i % 8);
        }
        let mut second = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        second.extend_from_slice(&block);
        second.extend_from_slice(&crc32(b"aaa").to_le_bytes());
        second.extend_from_slice(&3u32.to_le_bytes());
        let coded = [gz(b"a"), second].concat();
        assert!(!one(Coding::Gzip, &coded, true, CAP).1);
    }
}
