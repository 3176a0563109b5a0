//! A structural check of the Yjs v1 bytes a client sends (updates and state vectors) before yrs decodes them. yrs
//! reserves memory for every count a message declares before reading its elements, and decodes nested values
//! recursively: seven bytes declaring 2^23 state-vector entries made it reserve ~285 MB (a wasm memory never
//! shrinks; an object past 128 MB is reset), and a 200 KB update of nested arrays overflowed the stack. Here each
//! declared count must fit in the bytes left (every element takes at least one byte) and values nest at most
//! [`MAX_NESTING`] deep, so whatever passes decodes with allocations in proportion to its length. It only walks the
//! format (lib0 v1, as yrs 0.28 reads it), reading every integer yrs reads as 32-bit as at most 5 bytes and 32 bits
//! (yrs wraps longer ones around, and would read a different structure from the same bytes); whether the content
//! makes sense is still for yrs to say. Legacy JSON content (kind 2) is refused: yrs reads one more string than
//! Yjs and yrs write, so a room holding it could not decode its own snapshot. Pure.

/// How deep `Any` values (arrays and maps) may nest in an update: as deep as serde_json parses JSON (a document
/// model's JSON set into a map nests a few dozen levels), far below what overflowed the stack (1,990).
pub const MAX_NESTING: usize = 128;

use super::order::{Link, Needs, Run, Struct};

/// Why the bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// What a checked update carries, counted while checking it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shape {
    /// Structs (items, GC and skip ranges): 0 when the update only deletes.
    pub structs: usize,
    /// Ranges of its delete set.
    pub delete_ranges: usize,
    /// Items that create a shared type (a map, array, text or XML node inside the document).
    pub types: usize,
}

/// Checks a v1 update: its structs, their contents and its delete set, and that nothing follows them. Besides what
/// yrs would refuse or misread, it refuses what yrs accepts but Yjs cannot read — an info byte with bit 4 set (Yjs
/// takes five bits for the content kind, yrs four), type kinds Yjs does not know or reads differently (above 6, and
/// the XML hook), client ids past 2^53 − 1 (JavaScript numbers) — since the room would store and relay it to every
/// client, none of which could then sync — and BigInt values yrs would write back as numbers (see `Reader::bigint`).
pub fn check_update(bytes: &[u8]) -> Result<Shape, Refused> {
    check_update_needs(bytes).map(|(shape, _)| shape)
}

/// [`check_update`], with what the update needs to be integrated in Yjs' order (see [`super::order`]).
pub fn check_update_needs(bytes: &[u8]) -> Result<(Shape, Needs), Refused> {
    let mut r = Reader { bytes, at: 0 };
    let mut shape = Shape::default();
    let mut needs = Needs::default();
    let clients = r.count(3)?;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..clients {
        let structs = r.count(1)?;
        shape.structs += structs;
        let client = r.client()?;
        // yrs would lay a second list of one client's structs over the first.
        if !seen.insert(client) {
            return Err(Refused("a client's structs are listed twice"));
        }
        let mut clock = r.var32()?;
        let mut run = Run {
            client,
            structs: Vec::with_capacity(structs),
        };
        for _ in 0..structs {
            let at = r.at;
            let deps_from = needs.deps.len();
            let block = r.block(&mut needs.deps)?;
            if block.creates_type {
                shape.types += 1;
            }
            let link = if block.len == 0 {
                // yrs drops empty items: what they depend on does not matter.
                needs.deps.truncate(deps_from);
                Link::None
            } else {
                block.link
            };
            run.structs.push(Struct {
                clock,
                len: block.len,
                bytes: (at, r.at),
                skip: block.skip,
                deps: (deps_from, needs.deps.len()),
                link,
                creates_type: block.creates_type,
                keyed: block.keyed,
                origin: block.origin,
                right_origin: block.right_origin,
            });
            clock = clock
                .checked_add(block.len)
                .ok_or(Refused("clocks past 2^32"))?;
        }
        needs.runs.push(run);
    }
    // The delete set: per client, its id and ranges of (clock, length).
    needs.delete_set_at = r.at;
    let clients = r.count(2)?;
    for _ in 0..clients {
        r.client()?;
        let ranges = r.count(2)?;
        shape.delete_ranges += ranges;
        for _ in 0..ranges {
            r.var32()?;
            // A range of no length deletes nothing, yet yrs (as Yjs) splits the item it falls inside — inside a
            // surrogate pair, into two U+FFFD — while the room, finding nothing changed, stores and relays nothing:
            // its memory (`/state`, its next snapshot, newcomers) then read another text than storage and members.
            // No Yjs client writes one.
            if r.var32()? == 0 {
                return Err(Refused("a deleted range of no length"));
            }
        }
    }
    if r.left() > 0 {
        return Err(Refused("bytes after the delete set"));
    }
    Ok((shape, needs))
}

/// One struct, as far as the room needs it.
struct Block {
    /// Clocks it takes.
    len: u32,
    /// A skip: a range the sender did not have.
    skip: bool,
    creates_type: bool,
    /// Where its parent comes from.
    link: Link,
    /// It names a map key (parent sub) of the parent it names.
    keyed: bool,
    /// Its origin, if it names one.
    origin: Option<(u64, u32)>,
    /// Its right origin, if it names one.
    right_origin: Option<(u64, u32)>,
}

/// Checks a v1 state vector: pairs of (client, clock).
pub fn check_state_vector(bytes: &[u8]) -> Result<(), Refused> {
    let mut r = Reader { bytes, at: 0 };
    let entries = r.count(2)?;
    for _ in 0..entries {
        r.client()?;
        r.var32()?;
    }
    Ok(())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

const TRUNCATED: Refused = Refused("message ends inside a value");

impl Reader<'_> {
    fn left(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn u8(&mut self) -> Result<u8, Refused> {
        let b = *self.bytes.get(self.at).ok_or(TRUNCATED)?;
        self.at += 1;
        Ok(b)
    }

    fn advance(&mut self, n: usize) -> Result<(), Refused> {
        if n > self.left() {
            return Err(TRUNCATED);
        }
        self.at += n;
        Ok(())
    }

    /// A variable-length integer (unsigned or lib0's signed form: both end at the first byte below 0x80).
    fn var(&mut self) -> Result<u64, Refused> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let b = self.u8()?;
            value |= u64::from(b & 0x7f).checked_shl(7 * i).unwrap_or(0);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refused("variable-length integer too long"))
    }

    /// An integer yrs reads as 32 bits: at most 5 bytes and `u32::MAX` (yrs wraps longer encodings around).
    fn var32(&mut self) -> Result<u32, Refused> {
        let start = self.at;
        let value = self.var()?;
        match u32::try_from(value) {
            Ok(v) if self.at - start <= 5 => Ok(v),
            _ => Err(Refused("a 32-bit integer out of range")),
        }
    }

    /// A client id: at most 2^53 − 1, the largest integer a JavaScript client reads exactly (lib0 throws past it).
    fn client(&mut self) -> Result<u64, Refused> {
        const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
        match self.var()? {
            id if id <= MAX_SAFE_INTEGER => Ok(id),
            _ => Err(Refused("a client id past 2^53 - 1")),
        }
    }

    /// A declared count of elements taking at least `min_bytes` each, which must fit in what is left.
    fn count(&mut self, min_bytes: usize) -> Result<usize, Refused> {
        let n = self.var32()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_bytes) <= self.left() => Ok(n),
            _ => Err(Refused("a declared count exceeds the message")),
        }
    }

    /// A length-prefixed byte string (also a string: yrs checks its UTF-8).
    fn buf(&mut self) -> Result<(), Refused> {
        let n = self.count(1)?;
        self.advance(n)
    }

    /// One struct: a GC or skip range, or an item with its origins, parent and content; the ids an item depends on
    /// are added to `deps`.
    fn block(&mut self, deps: &mut Vec<(u64, u32)>) -> Result<Block, Refused> {
        const HAS_ORIGIN: u8 = 0x80;
        const HAS_RIGHT_ORIGIN: u8 = 0x40;
        const HAS_PARENT_SUB: u8 = 0x20;
        const KIND_BIT_4: u8 = 0x10;
        let info = self.u8()?;
        if info == 0 || info == 10 {
            // GC or skip: a length.
            return Ok(Block {
                len: self.var32()?,
                skip: info == 10,
                creates_type: false,
                link: Link::None,
                keyed: false,
                origin: None,
                right_origin: None,
            });
        }
        if info & KIND_BIT_4 != 0 {
            return Err(Refused("unknown content kind"));
        }
        let mut origin = None;
        if info & HAS_ORIGIN != 0 {
            let id = (self.client()?, self.var32()?);
            origin = Some(id);
            deps.push(id);
        }
        let mut right_origin = None;
        if info & HAS_RIGHT_ORIGIN != 0 {
            let right = (self.client()?, self.var32()?);
            right_origin = Some(right);
            // No item sits between one id and itself: Yjs and yrs place such an item differently by the path it
            // arrives by (applied live, from a snapshot, in a newcomer's sync), and the room's copies would differ
            // for good under equal state vectors.
            if info & HAS_ORIGIN != 0 && deps.last() == Some(&right) {
                return Err(Refused("an item's left and right origin are the same id"));
            }
            deps.push(right);
        }
        let mut link = Link::Neighbour;
        let mut keyed = false;
        if info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0 {
            if self.var32()? == 1 {
                self.buf()?; // a root type's name
                link = Link::Root;
            } else {
                deps.push((self.client()?, self.var32()?)); // the parent item's id
                link = Link::Parent;
            }
            if info & HAS_PARENT_SUB != 0 {
                self.buf()?;
                keyed = true;
            }
        }
        let kind = info & 0x0f;
        Ok(Block {
            len: self.content(kind)?,
            skip: false,
            creates_type: kind == 7,
            link,
            keyed,
            origin,
            right_origin,
        })
    }

    /// An item's content; returns the clocks it takes (as Yjs counts them: a string by its UTF-16 code units).
    fn content(&mut self, kind: u8) -> Result<u32, Refused> {
        match kind {
            1 => self.var32(), // deleted: a length
            2 => Err(Refused("legacy JSON content is not supported")),
            3 | 5 => self.buf().map(|()| 1), // binary, embed (a JSON string)
            4 => self.utf16_len(),
            6 => {
                self.buf()?; // format: key and JSON value
                self.buf().map(|()| 1)
            }
            7 => match self.u8()? {
                // Array, map, text, XML fragment and XML text: the kind alone; an XML element: its tag name. The
                // XML hook (5) is refused: Yjs reads a name after it and yrs does not, so they would part ways.
                0 | 1 | 2 | 4 | 6 => Ok(1),
                3 => self.buf().map(|()| 1),
                _ => Err(Refused("unknown shared type")),
            },
            8 => {
                let n = self.count(1)?;
                for _ in 0..n {
                    self.any(0)?;
                }
                u32::try_from(n).map_err(|_| Refused("a declared count exceeds the message"))
            }
            9 => {
                self.buf()?; // a subdocument: its guid and options
                self.any(0).map(|()| 1)
            }
            _ => Err(Refused("unknown content kind")),
        }
    }

    /// A string's length in UTF-16 code units.
    fn utf16_len(&mut self) -> Result<u32, Refused> {
        let n = self.count(1)?;
        let start = self.at;
        self.advance(n)?;
        let text = std::str::from_utf8(&self.bytes[start..self.at])
            .map_err(|_| Refused("a string is not UTF-8"))?;
        u32::try_from(text.encode_utf16().count()).map_err(|_| Refused("a string is too long"))
    }

    /// A lib0 BigInt (tag 122), refused when yrs would write it back as a number: it reads every integer as one
    /// `i64` and writes it as the smallest number kind that holds it (int32, float32, float64), a BigInt only past
    /// those. Taken, the sender would keep a BigInt (`1700000000000n`) where every other member, every newcomer and
    /// the room's snapshot read a number, under equal state vectors (and `/state` an integer before a restart, a
    /// float after).
    fn bigint(&mut self) -> Result<(), Refused> {
        let start = self.at;
        self.advance(8)?;
        let mut be = [0; 8];
        be.copy_from_slice(&self.bytes[start..self.at]);
        let n = i64::from_be_bytes(be);
        // yrs' own test (`Any::encode`): within int32, or a float64 that converts back to it (which float32 implies).
        if (-0x7FFF_FFFF..=0x7FFF_FFFF).contains(&n) || (n as f64) as i64 == n {
            return Err(Refused(
                "a BigInt value a number holds: the room would store and relay it as a number",
            ));
        }
        Ok(())
    }

    /// A lib0 `Any` value.
    fn any(&mut self, depth: usize) -> Result<(), Refused> {
        match self.u8()? {
            120 | 121 | 126 | 127 => Ok(()), // true, false, null, undefined
            125 => self.var().map(drop),     // integer
            124 => self.advance(4),          // float32
            122 => self.bigint(),            // bigint
            123 => self.advance(8),          // float64
            119 | 116 => self.buf(),         // string, buffer
            tag @ (117 | 118) => {
                if depth >= MAX_NESTING {
                    return Err(Refused("values nest too deep"));
                }
                let map = tag == 118;
                let n = self.count(if map { 2 } else { 1 })?;
                for _ in 0..n {
                    if map {
                        self.buf()?;
                    }
                    self.any(depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Refused("unknown value type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yrs::updates::encoder::Encode;
    use yrs::{Any, Array, Doc, Map, ReadTxn, StateVector, Text, Transact, XmlFragment};

    #[test]
    fn an_item_between_one_id_and_itself_is_refused() {
        // Client 5 types 'h', 'e' into root "text", then 'x' with origin 5#1 and right origin 5#1 (the review's case:
        // members, the room's memory and its storage read three different texts from it).
        let crafted: &[u8] = &[
            1, 3, 5, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'h', 0x84, 5, 0, 1, b'e', 0xC4, 5, 1,
            5, 1, 1, b'x', 0,
        ];
        assert_eq!(
            check_update(crafted),
            Err(Refused("an item's left and right origin are the same id"))
        );
        // The honest 'x' (origin 5#1 only) and one between two ids pass.
        let honest: &[u8] = &[
            1, 3, 5, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'h', 0x84, 5, 0, 1, b'e', 0x84, 5, 1,
            1, b'x', 0,
        ];
        assert!(check_update(honest).is_ok());
        let between: &[u8] = &[
            1, 3, 5, 0, 4, 1, 4, b't', b'e', b'x', b't', 1, b'h', 0x84, 5, 0, 1, b'e', 0xC4, 5, 0,
            5, 1, 1, b'x', 0,
        ];
        assert!(check_update(between).is_ok());
    }

    #[test]
    fn a_client_listed_twice_is_refused() {
        // Two lists of client 7's structs, each one string item in root "t": yrs would lay the second over the first.
        let item = [4, 1, 1, b't', 1, b'a'];
        let mut update = vec![2];
        for clock in [0, 1] {
            update.extend([1, 7, clock]);
            update.extend(item);
        }
        update.push(0);
        assert_eq!(
            check_update(&update),
            Err(Refused("a client's structs are listed twice"))
        );
        let once = [&[1u8, 1, 7, 0][..], &item, &[0]].concat();
        assert!(check_update(&once).is_ok());
    }

    #[test]
    fn what_yjs_writes_passes() {
        let doc = Doc::with_client_id(7);
        let text = doc.get_or_insert_text("text");
        let map = doc.get_or_insert_map("map");
        let array = doc.get_or_insert_array("array");
        let xml = doc.get_or_insert_xml_fragment("xml");
        {
            let mut txn = doc.transact_mut();
            text.insert(&mut txn, 0, "héllo wörld 😀");
        }
        {
            let mut txn = doc.transact_mut();
            text.remove_range(&mut txn, 0, 1);
            map.insert(&mut txn, "n", 42);
            map.insert(&mut txn, "f", 1.5);
            map.insert(&mut txn, "big", i64::MAX);
            map.insert(
                &mut txn,
                "nested",
                Any::from(vec![Any::from(vec![Any::Null, Any::Bool(true)])]),
            );
            map.insert(&mut txn, "bytes", Any::Buffer(vec![1u8, 2, 3].into()));
            array.insert(&mut txn, 0, "x");
            array.insert(&mut txn, 1, yrs::MapPrelim::default());
            xml.insert(&mut txn, 0, yrs::XmlElementPrelim::empty("p"));
        }
        let txn = doc.transact();
        let update = txn.encode_state_as_update_v1(&StateVector::default());
        assert!(check_update(&update)
            .is_ok_and(|s| s.structs > 0 && s.types == 2 && s.delete_ranges == 1));
        assert_eq!(check_state_vector(&txn.state_vector().encode_v1()), Ok(()));
        assert_eq!(
            check_update(&[0, 0]),
            Ok(Shape::default()),
            "the empty update"
        );
        assert_eq!(
            check_update(&[0, 1, 7, 1, 0, 2]),
            Ok(Shape {
                delete_ranges: 1,
                ..Shape::default()
            }),
            "a deletion only"
        );
        assert_eq!(check_state_vector(&[0]), Ok(()), "the empty state vector");
    }

    #[test]
    fn what_yrs_accepts_but_yjs_cannot_read_is_refused() {
        let cases: &[(&str, &[u8], &str)] = &[
            // Info 0x14: a string to yrs (four bits of kind), contentRefs[20] to Yjs (five).
            (
                "info bit 4",
                &[1, 1, 1, 0, 0x14, 1, 1, b'x', 1, b'a', 0],
                "unknown content kind",
            ),
            (
                "type kind 15",
                &[1, 1, 1, 0, 0x07, 1, 1, b'x', 15, 0],
                "unknown shared type",
            ),
            (
                "type kind 9",
                &[1, 1, 1, 0, 0x07, 1, 1, b'x', 9, 0],
                "unknown shared type",
            ),
            (
                "the XML hook",
                &[1, 1, 1, 0, 0x07, 1, 1, b'x', 5, 0],
                "unknown shared type",
            ),
            (
                "client id 2^57 - 1",
                &[
                    1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0, 4, 1, 1, b'x',
                    1, b'a', 0,
                ],
                "client id",
            ),
            (
                "a deleting client id 2^57 - 1",
                &[
                    0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1, 0, 1,
                ],
                "client id",
            ),
            (
                "bytes after the delete set",
                &[0, 0, 7],
                "after the delete set",
            ),
        ];
        for (what, bytes, why) in cases {
            let refused = check_update(bytes).expect_err(what);
            assert!(refused.0.contains(why), "{what}: {refused:?}");
        }
        assert!(
            check_state_vector(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 1])
                .is_err(),
            "a state vector naming such a client"
        );
    }

    #[test]
    fn declared_counts_beyond_the_message_and_deep_nesting_are_refused() {
        let count = Refused("a declared count exceeds the message");
        // Sync step 1 declaring 2^23 entries in four bytes.
        assert_eq!(
            check_state_vector(&[0x80, 0x80, 0x80, 0x04]),
            Err(count.clone())
        );
        assert_eq!(
            check_update(&[0x80, 0x80, 0x80, 0x04, 0]),
            Err(count.clone()),
            "2^23 clients"
        );
        assert_eq!(
            check_update(&[1, 0x80, 0x80, 0x80, 0x04, 7, 0, 0]),
            Err(count.clone()),
            "2^23 structs"
        );
        // One Any item in root "t" holding arrays nested `levels` deep.
        let nested = |levels: usize| {
            let mut bytes = vec![1, 1, 1, 0, 8, 1, 1, b't', 1];
            for _ in 0..levels {
                bytes.extend_from_slice(&[117, 1]);
            }
            bytes.extend_from_slice(&[126, 0]);
            bytes
        };
        assert_eq!(check_update(&nested(MAX_NESTING)).map(|s| s.structs), Ok(1));
        assert_eq!(
            check_update(&nested(MAX_NESTING + 1)),
            Err(Refused("values nest too deep"))
        );
        assert_eq!(
            check_update(&nested(100_000)),
            Err(Refused("values nest too deep"))
        );
        assert_eq!(
            check_update(&[1, 1, 1, 0, 4, 1, 9, b't']),
            Err(count),
            "a name longer than the message"
        );
        // Parent info 2^32 + 1: "1" (a root name) to yrs, which wraps 32-bit integers, but an id to a 64-bit reading,
        // from where the two would read different structures (yrs then met a count of 2^24 + 8 and reserved 256 MB).
        let wrapped = [
            1, 2, 1, 0, 8, 0x81, 0x80, 0x80, 0x80, 0x10, 2, 0, 0, 0x88, 0x80, 0x80, 8, 0, 0, 0,
        ];
        assert_eq!(
            check_update(&wrapped),
            Err(Refused("a 32-bit integer out of range"))
        );
        assert_eq!(
            check_update(&[1, 1, 5, 0, 2, 1, 1, b't', 0, 1, b'1', 0]),
            Err(Refused("legacy JSON content is not supported"))
        );
    }
}
