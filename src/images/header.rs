//! The pixel size an image's header declares, read from its first bytes without decoding it: what an original served
//! in a variant's place is checked against (`geometry::servable_original`), since a few hundred bytes of PNG can
//! declare 50,000 × 50,000 px — a decompression bomb for the browser that decodes it — and no resizer makes a variant
//! of it to serve instead.

/// How many bytes [`declared`] reads first, and each further window a JPEG's segments or a GIF's blocks are
/// followed in: a JPEG's frame header follows its APPn segments (Exif, ICC profiles), each at most 64 KiB, and a
/// GIF's first frame its colour table and extensions; PNG and WebP say their size in their first 30 bytes, an AVIF
/// in its `meta` box or its tracks' headers, whose boxes are followed in such windows too.
pub const SIZE_BYTES: usize = 128 * 1024;

/// What an image's first bytes say of its pixel size.
#[derive(Debug, PartialEq, Eq)]
pub enum Declared {
    /// (width, height) as its header declares them.
    Size(u32, u32),
    /// Not said: another format, a header this does not read (an AVIF with no `ispe` in its `meta` and no track
    /// header, or one whose boxes break off or claim less than their own header), a PNG `IHDR` no decoder accepts
    /// (invalid, or its CRC wrong), or an image that ends first.
    Unknown,
    /// A PNG whose `IHDR` says its size, but that ends (cut short, or at `IEND`) or breaks (a chunk no decoder reads
    /// past, an indexed one with no `PLTE` or a `PLTE` of an invalid length or a wrong CRC, a `PLTE` of no entry
    /// taken as any image's palette) before its first `IDAT`: no pixel of it is drawn.
    NoPixels,
    /// A JPEG whose frame header lies past the bytes read: its segments go on at this offset of the image, to be
    /// followed with [`jpeg_segments`]. An encoder may put as many APPn segments before the frame header as it
    /// likes, so a bomb could otherwise hide its size past any fixed number of bytes; and one segment's length says
    /// where the next starts, so its contents need not be read.
    ReadOn(u64),
    /// An AVIF (ISO-BMFF) whose boxes go on past the bytes read (behind boxes an encoder, or a bomb, put before
    /// its sizes), or whose grids' data is yet to be read: to be followed from `at` with [`isobmff_boxes`].
    Boxes(Box<BoxWalk>),
    /// An AVIF naming more `grid` items than [`MAX_GRIDS`]: their sizes are not all read (no image has that many).
    TooManyGrids,
    /// A GIF whose blocks go on past the bytes read: to be followed with [`gif_blocks`] from `walk.at`. Every frame
    /// is counted, so the walk goes on to the trailer (or until the frames are too many, [`over_budget`]).
    GifFrom(GifWalk),
    /// An animated PNG (`acTL`) or WebP (`VP8X` with its animation flag) whose chunks go on past the bytes read:
    /// to be followed with [`chunks`] from `walk.at`, counting frames (`fcTL`, `ANMF`).
    Chunks(ChunkWalk),
    /// A PNG with a critical chunk (its type's first letter uppercase) other than `IHDR`, `PLTE`, `IDAT` and `IEND`
    /// before its first `IDAT` — Apple's `CgBI` after `IHDR`, say: the PNG specification (§5.4, "Chunk naming
    /// conventions") has a decoder that meets one refuse the image, as libpng and every browser's decoder do. Its type.
    UnknownCritical([u8; 4]),
    /// An animation: its canvas, and how many frames it has. A decoder composes each frame onto the whole canvas,
    /// so its cost is the canvas times the frames — Cloudflare counts "the sum of areas of all frames" of a GIF or
    /// WebP animation against its 100 megapixels too (Images, "Limits and formats").
    Animation(u32, u32, u64),
}

/// The size the header of the image in `head` (its first bytes; the image is `image_len` bytes) declares: PNG
/// (`IHDR`), GIF (logical screen), WebP (`VP8 `, `VP8L`, `VP8X`), JPEG (the first `SOFn` frame header) and AVIF/HEIF
/// (`ispe` or `tkhd`, see [`isobmff_boxes`]).
pub fn declared(head: &[u8], image_len: u64) -> Declared {
    short_of_the_end(
        declared_size(head, image_len).unwrap_or(Declared::Unknown),
        image_len,
    )
}

/// `declared`, with a read it asks for at or past the end of the image (a chunk, segment or box claiming to run past
/// it; an `iloc` whose contents start there) taken here on no bytes, as that read would be — so no walk asks for an
/// empty read. Each such step ends its walk or moves it back inside the image (each detour is taken once).
fn short_of_the_end(mut declared: Declared, image_len: u64) -> Declared {
    loop {
        declared = match declared {
            Declared::Boxes(walk) if walk.at >= image_len => boxes_step(&[], *walk, image_len),
            Declared::ReadOn(at) if at >= image_len => jpeg_segments_in(&[], at, 0, true),
            Declared::GifFrom(walk) if walk.at >= image_len => gif_blocks_in(&[], true, walk),
            Declared::Chunks(walk) if walk.at >= image_len => chunks_in(&[], true, walk),
            declared => return declared,
        }
    }
}

/// Whether `window`, the image's bytes from `window_at`, holds the rest of the image (`image_len` bytes): shorter
/// than a read asks for, or reaching its end. A walk that runs off such a window is at the image's end, not at a
/// further window's start, which would be read empty — an image exactly a read long, too.
fn holds_the_end(window_at: u64, window: &[u8], image_len: u64) -> bool {
    window.len() < SIZE_BYTES || window_at.saturating_add(window.len() as u64) >= image_len
}

fn declared_size(head: &[u8], image_len: u64) -> Option<Declared> {
    // A first read that holds the whole image: a walk that runs off it is at the image's end.
    let ended = holds_the_end(0, head, image_len);
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes([
            *head.get(at)?,
            *head.get(at + 1)?,
        ])))
    };
    let le24 = |at: usize| {
        Some(u32::from_le_bytes([
            *head.get(at)?,
            *head.get(at + 1)?,
            *head.get(at + 2)?,
            0,
        ]))
    };
    // An Apple-optimised PNG (iOS app bundles, Xcode's `pngcrush -iphone`): a `CgBI` chunk before `IHDR`, then raw
    // deflate and premultiplied BGRA pixels. It has a PNG's signature, but no browser or resizer reads it (libpng
    // refuses it, as does every browser's decoder): the unknown critical chunk it is after `IHDR` too.
    if head.starts_with(b"\x89PNG\r\n\x1a\n") && head.get(12..16) == Some(b"CgBI") {
        return Some(Declared::UnknownCritical(*b"CgBI"));
    }
    if head.starts_with(b"\x89PNG\r\n\x1a\n") && head.get(12..16) == Some(b"IHDR") {
        let be32 = |at: usize| Some(u32::from_be_bytes(head.get(at..at + 4)?.try_into().ok()?));
        // An IHDR no decoder accepts (libpng's png_check_IHDR, "Invalid IHDR data"; the png crate alike): its
        // data 13 bytes, sides of 1 to 2^31 - 1, a bit depth its colour type has, compression and filter method 0,
        // interlace method 0 or 1. No pixel of it is drawn.
        let (width, height) = (be32(16)?, be32(20)?);
        let [depth, colour, compression, filter, interlace] = *head.get(24..29)? else {
            return None;
        };
        let depth_fits = match colour {
            0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
            3 => matches!(depth, 1 | 2 | 4 | 8),
            2 | 4 | 6 => matches!(depth, 8 | 16),
            _ => false,
        };
        let side = 1..=MAX_PNG_CHUNK_LENGTH as u32;
        if be32(8)? != 13
            || !side.contains(&width)
            || !side.contains(&height)
            || !depth_fits
            || compression != 0
            || filter != 0
            || interlace > 1
        {
            return Some(Declared::Unknown);
        }
        // An IHDR whose CRC is not its data's: every browser refuses the image before any pixel — libpng's
        // png_crc_finish makes a critical chunk's CRC error a chunk error (Firefox sets no other CRC action), the
        // png crate (Chrome's) a CrcMismatch for any critical chunk — so, like an IHDR no decoder accepts, it says
        // no size. A first read too short to hold the CRC is an image cut short, which the walk finds so.
        if head.get(8..33).is_some_and(|ihdr| !png_crc_intact(ihdr)) {
            return Some(Declared::Unknown);
        }
        // An animated PNG says so in an `acTL` chunk before its first `IDAT`: its chunks are followed from `IHDR`.
        return Some(chunks_in(
            &head[8..],
            ended,
            ChunkWalk {
                at: 8,
                kind: ChunkKind::Png,
                canvas: (width, height),
                animated: false,
                frames: 0,
                past_idat: false,
                palette: Palette::of_colour_type(colour),
            },
        ));
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        // A decoder shows the logical screen grown to hold the first frame (Wuffs, Chrome's GIF decoder, by default:
        // its quirk_image_bounds_are_strict is off), so a 1 x 1 screen can frame 50,000 x 50,000 px: that frame
        // counts. Blocks after the screen's colour table: extensions (a label, then sub-blocks), then the frame.
        let screen = (le16(6)?, le16(8)?);
        let packed = *head.get(10)?;
        let colours = if packed & 0x80 != 0 {
            3 << ((packed & 7) + 1)
        } else {
            0
        };
        let start = 13 + colours;
        let walk = GifWalk {
            at: start as u64,
            in_sub_blocks: false,
            screen,
            frames: 0,
        };
        return Some(gif_blocks_in(
            head.get(start..).unwrap_or_default(),
            ended,
            walk,
        ));
    }
    if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        return match head.get(12..16)? {
            // Lossy: a 3-byte frame tag, the start code 9d 01 2a, then 14-bit width and height (2 bits of scale).
            b"VP8 " => Some(Declared::Size(le16(26)? & 0x3fff, le16(28)? & 0x3fff)),
            // Lossless: the signature 0x2f, then 14 bits width - 1 and 14 bits height - 1.
            b"VP8L" => {
                let bits = u32::from_le_bytes(head.get(21..25)?.try_into().ok()?);
                Some(Declared::Size(
                    (bits & 0x3fff) + 1,
                    ((bits >> 14) & 0x3fff) + 1,
                ))
            }
            // Extended: flags, then the canvas' 24-bit width - 1 and height - 1. An animation (flag 0x02) has its
            // frames in `ANMF` chunks after this one (at 12 + 8 + 10), each counted.
            b"VP8X" => {
                let canvas = (le24(24)? + 1, le24(27)? + 1);
                if head.get(20)? & 0x02 == 0 {
                    return Some(Declared::Size(canvas.0, canvas.1));
                }
                let walk = ChunkWalk {
                    at: 30,
                    kind: ChunkKind::Webp,
                    canvas,
                    animated: true,
                    frames: 0,
                    past_idat: false,
                    palette: Palette::Settled,
                };
                Some(chunks_in(head.get(30..).unwrap_or_default(), ended, walk))
            }
            _ => None,
        };
    }
    if head.starts_with(&[0xFF, 0xD8]) {
        return Some(jpeg_segments_in(head, 0, 2, ended));
    }
    if head.get(4..8) == Some(b"ftyp") {
        return Some(isobmff_boxes(head, BoxWalk::default(), image_len));
    }
    None
}

/// How many `grid` items' ImageGrid data [`isobmff_boxes`] reads: each costs a few reads of the image (one per
/// extent of its first [`GRID_BYTES`]), so a file naming more is [`Declared::TooManyGrids`]. An image has one for
/// its colour, and maybe one each for its alpha and gain map.
pub const MAX_GRIDS: usize = 8;

/// An ImageGrid's bytes (ISO/IEC 23008-12 §6.6.2.3): version, flags, rows - 1, columns - 1, then the output width
/// and height, 16-bit, or 32-bit when flags & 1.
const GRID_BYTES: usize = 12;

/// Where a walk of an AVIF's (or any HEIF's) boxes stands between two windows of the image: the offset of the next
/// read, the containers it is inside (kind and end offset, outermost first), the largest size found so far and
/// what `meta` says of its grids.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BoxWalk {
    pub at: u64,
    open: Vec<([u8; 4], u64)>,
    largest: Option<(u32, u32)>,
    /// The item ids `iinf` gives the type `grid` (at most [`MAX_GRIDS`]), and whether it named more.
    grids: Vec<u32>,
    too_many: bool,
    /// Where the contents of `meta`'s first `iloc` and `idat` start and end.
    iloc: Option<(u64, u64)>,
    idat: Option<(u64, u64)>,
    /// Whether the first `meta`'s grids are read: only they are (libavif reads the first `meta`, stops there once it
    /// has what an image needs, and refuses a second one it reaches).
    grids_read: bool,
    detour: Detour,
    /// The size the current track's `tkhd` said and the samples its `stsz` counted (in either order), and the
    /// track whose frames (its size times its samples) are the most pixels.
    track: (Option<(u32, u32)>, Option<u64>),
    frames: Option<(u32, u32, u64)>,
}

/// Once `meta` ends (at `back`, or with the image: `None`), a walk that found grids reads their `iloc` entries,
/// then their data, then goes on with the boxes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
enum Detour {
    #[default]
    None,
    Iloc {
        table: Iloc,
        back: Option<u64>,
    },
    Data {
        grids: Vec<Located>,
        bytes: Vec<u8>,
        back: Option<u64>,
    },
}

/// Where a read of an `iloc` box (ISO/IEC 14496-12 §8.11.3) stands: its end, its field sizes once its header is
/// read, the items and the current item's extents left, and what it says of the grid items.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Iloc {
    end: u64,
    fields: Option<IlocFields>,
    items: u32,
    extents: u16,
    item: Option<Located>,
    found: Vec<Located>,
}

/// An `iloc` box's version and its sizes in bytes of an extent's offset, length and index and of a base offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct IlocFields {
    version: u8,
    offset: usize,
    length: usize,
    index: usize,
    base: usize,
}

/// The first [`GRID_BYTES`] of a grid item's data: (offset, length) extents, inside `idat` or of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Located {
    in_idat: bool,
    base: u64,
    extents: Vec<(u64, u64)>,
    bytes: u64,
}

impl BoxWalk {
    fn saw(&mut self, (w, h): (u32, u32)) {
        let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
        if self
            .largest
            .is_none_or(|largest| area((w, h)) > area(largest))
        {
            self.largest = Some((w, h));
        }
    }

    /// `meta` (or the image) ended at `back`: reads the grids' `iloc` entries next, when it named any.
    fn detour(&mut self, back: Option<u64>) -> bool {
        let read = self.grids.is_empty() || self.too_many || self.grids_read;
        let (Some((start, end)), false) = (self.iloc, read) else {
            return false;
        };
        self.grids_read = true;
        self.at = start;
        self.detour = Detour::Iloc {
            table: Iloc {
                end,
                fields: None,
                items: 0,
                extents: 0,
                item: None,
                found: Vec::new(),
            },
            back,
        };
        true
    }

    /// The current track's frames, once both its size and its samples are known.
    fn track_frames(&mut self) {
        let (Some((w, h)), Some(samples)) = self.track else {
            return;
        };
        let total = |(w, h, n): (u32, u32, u64)| {
            u64::from(w).saturating_mul(u64::from(h)).saturating_mul(n)
        };
        if self
            .frames
            .is_none_or(|most| total((w, h, samples)) > total(most))
        {
            self.frames = Some((w, h, samples));
        }
    }

    /// What the image declares, once its boxes are walked.
    fn size(&self) -> Declared {
        match self.largest {
            _ if self.too_many => Declared::TooManyGrids,
            // A sequence whose frames together are too many pixels (each within the largest size).
            _ if self
                .frames
                .is_some_and(|(w, h, n)| n > 1 && over_budget((w, h), n)) =>
            {
                let (w, h, n) = self.frames.unwrap_or_default();
                Declared::Animation(w, h, n)
            }
            Some((w, h)) => Declared::Size(w, h),
            None => Declared::Unknown,
        }
    }
}

/// An unsigned big-endian number of 0 to 8 bytes.
fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |n, &b| n << 8 | u64::from(b))
}

/// An AVIF's (or any HEIF's) size, from its boxes in `window` (bytes of the image from `walk.at`): the largest of
/// the image spatial extents (`ispe`, ISO/IEC 23008-12 §6.5.3: `meta` → `iprp` → `ipco` → `ispe`, which every image
/// item must have), of its grids' canvases and of its tracks' sizes (an image sequence, brand `avis`: `moov` →
/// `trak` → `tkhd`, what libavif sizes a track's frames by; such a file needs no `meta`; its frames are the samples
/// its `mdia` → `minf` → `stbl` → `stsz` counts, [`Declared::Animation`] when they pass the budget, as a GIF's
/// frames do: AV1 codes an unchanged frame in a few bytes). The largest, not the
/// primary item's: a grid's canvas is larger than its tiles, and a bomb gains nothing by declaring a small
/// thumbnail beside it. A grid (an item `iinf` → `infe` types `grid`) is sized by its ImageGrid data, as libavif
/// sizes it, not by its `ispe`: once `meta` ends, its `iloc` entry is read again for where that data is (in `idat`
/// or anywhere in the file), then the data ([`MAX_GRIDS`] of them at most). Every other box is stepped over by its
/// size, its contents never read, so no number of bytes before (or inside) these containers hides a size:
/// [`Declared::Boxes`] where the window ends first. Each step moves at least a box header on; a box that claims
/// less than its header ends the walk where it stands, and a child is cut at its parent's end.
pub fn isobmff_boxes(window: &[u8], walk: BoxWalk, image_len: u64) -> Declared {
    short_of_the_end(boxes_step(window, walk, image_len), image_len)
}

/// [`isobmff_boxes`] on one window, which may ask for a read at or past the end of the image.
fn boxes_step(window: &[u8], mut walk: BoxWalk, image_len: u64) -> Declared {
    match walk.detour {
        Detour::None => {}
        Detour::Iloc { .. } => return iloc_entries(window, walk, image_len),
        Detour::Data { .. } => return grid_data(window, walk, image_len),
    }
    let window_at = walk.at;
    let ended = holds_the_end(window_at, window, image_len);
    let done = |mut walk: BoxWalk| {
        if walk.detour(None) {
            return Declared::Boxes(Box::new(walk));
        }
        walk.size()
    };
    let mut pos = 0usize;
    loop {
        let at = window_at.saturating_add(pos as u64);
        while let Some((kind, _)) = walk.open.pop_if(|&mut (_, end)| at >= end) {
            if &kind == b"meta" && walk.detour(Some(at)) {
                return Declared::Boxes(Box::new(walk));
            }
        }
        let read_on = |mut walk: BoxWalk| {
            if pos == 0 || ended {
                // The image ends here.
                return done(walk);
            }
            walk.at = at;
            Declared::Boxes(Box::new(walk))
        };
        let long_size = window.get(pos..pos + 4) == Some(&[0, 0, 0, 1]);
        if window.len() < pos.saturating_add(if long_size { 16 } else { 8 }) {
            return read_on(walk);
        }
        let Some((kind, header_len, size)) = box_header(window, pos) else {
            return done(walk);
        };
        let parent = walk.open.last().map(|&(kind, _)| kind);
        let parent_end = walk.open.last().map_or(u64::MAX, |&(_, end)| end);
        // A size of 0 runs to the end of the image (or of the box it is in).
        let to_end = window.get(pos..pos + 4) == Some(&[0, 0, 0, 0]);
        let end = if to_end {
            parent_end
        } else {
            at.saturating_add(size).min(parent_end)
        };
        let contents = pos + header_len;
        // The bytes of this box's contents from `from` to `to`, or `None` where the window ends first.
        let fields = |from: usize, to: usize| window.get(contents + from..contents + to);
        let within = |to: usize| at.saturating_add((header_len + to) as u64) <= end;
        match (parent.as_ref(), &kind) {
            // Containers: `meta` is a full box (a version and flags word before its children).
            (None, b"meta")
            | (Some(b"meta"), b"iprp")
            | (Some(b"iprp"), b"ipco")
            | (None, b"moov")
            | (Some(b"moov"), b"trak")
            | (Some(b"trak"), b"mdia")
            | (Some(b"mdia"), b"minf")
            | (Some(b"minf"), b"stbl") => {
                if &kind == b"trak" {
                    walk.track = (None, None);
                }
                walk.open.push((kind, end));
                pos = contents + if &kind == b"meta" { 4 } else { 0 };
                continue;
            }
            // Item information: a full box whose entry count is 16-bit (version 0) or 32-bit (1), then `infe`s.
            (Some(b"meta"), b"iinf") => {
                let count = match window.get(contents) {
                    Some(0) => 2,
                    Some(1) => 4,
                    Some(_) => 0, // no version libavif reads: stepped over
                    None => return read_on(walk),
                };
                if count > 0 {
                    walk.open.push((kind, end));
                    pos = contents + 4 + count;
                    continue;
                }
            }
            // An item's entry (ISO/IEC 14496-12 §8.11.6): version 2 or 3 (an item_ID of 16 or 32 bits), then a
            // 16-bit protection index and the item type.
            (Some(b"iinf"), b"infe") => {
                let id = match window.get(contents) {
                    Some(2) => 2,
                    Some(3) => 4,
                    Some(_) => 0,
                    None => return read_on(walk),
                };
                if id > 0 {
                    let Some(entry) = fields(4, 4 + id + 6) else {
                        return read_on(walk);
                    };
                    if &entry[id + 2..] == b"grid" && within(4 + id + 6) && !walk.grids_read {
                        let id = be(&entry[..id]) as u32;
                        if walk.grids.len() == MAX_GRIDS {
                            walk.too_many = true;
                        } else if !walk.grids.contains(&id) {
                            walk.grids.push(id);
                        }
                    }
                }
            }
            // Where items' data lies, and the data stored in `meta`: read once `meta` ends, for the grids.
            (Some(b"meta"), b"iloc") => {
                let contents = at + header_len as u64;
                walk.iloc.get_or_insert((contents, end));
            }
            (Some(b"meta"), b"idat") => {
                let contents = at + header_len as u64;
                walk.idat.get_or_insert((contents, end));
            }
            // Full boxes: a version and flags word; `ispe` then says width and height; `tkhd` says them last, in
            // 16.16 fixed point, after times and ids of 4 (version 0) or 8 bytes (version 1) and a 36-byte matrix.
            (Some(b"ipco"), b"ispe") | (Some(b"trak"), b"tkhd") => {
                let from = if &kind == b"ispe" {
                    Some(4)
                } else {
                    match window.get(contents) {
                        Some(0) => Some(76),
                        Some(1) => Some(88),
                        Some(_) => None,
                        None => return read_on(walk),
                    }
                };
                if let Some(from) = from {
                    let Some(size) = fields(from, from + 8) else {
                        return read_on(walk);
                    };
                    // Fields past the box's own end are not its size.
                    if within(from + 8) {
                        let shift = if &kind == b"ispe" { 0 } else { 16 };
                        let size = (
                            (be(&size[..4]) >> shift) as u32,
                            (be(&size[4..]) >> shift) as u32,
                        );
                        walk.saw(size);
                        if &kind == b"tkhd" {
                            walk.track.0 = Some(size);
                            walk.track_frames();
                        }
                    }
                }
            }
            // A track's samples, its frames (libavif counts them so): a full box, then a sample size (`stsz`; a
            // field size in `stz2`) and the sample count.
            (Some(b"stbl"), b"stsz" | b"stz2") => {
                let Some(count) = fields(8, 12) else {
                    return read_on(walk);
                };
                if within(12) {
                    walk.track.1 = Some(be(count));
                    walk.track_frames();
                }
            }
            _ => {}
        }
        if end == u64::MAX {
            // To the end of the image: nothing follows it.
            return done(walk);
        }
        match usize::try_from(end - window_at)
            .ok()
            .filter(|&e| e <= window.len())
        {
            Some(next) => pos = next,
            None if ended => return done(walk),
            None => {
                walk.at = end;
                return Declared::Boxes(Box::new(walk));
            }
        }
    }
}

/// The `iloc` entries of the grids a walk found, from `window` (bytes of the image from `walk.at`): one field group
/// (the header, an item's, an extent's: at most 24 bytes) per step, each moving at least a byte on (extents of no
/// bytes are not stepped through); [`Declared::Boxes`] where the window ends first. A table that breaks off, or that
/// libavif does not read (a version above 2, a field size other than 0, 4 or 8), locates nothing more. The image is
/// `image_len` bytes: a window that holds its end is the last (no empty read after it).
fn iloc_entries(window: &[u8], mut walk: BoxWalk, image_len: u64) -> Declared {
    let Detour::Iloc { mut table, back } = std::mem::take(&mut walk.detour) else {
        return walk.size();
    };
    let ended = holds_the_end(walk.at, window, image_len);
    let mut pos = 0usize;
    let located = loop {
        let at = walk.at.saturating_add(pos as u64);
        let group = match table.fields {
            None => match window.get(pos) {
                Some(0 | 1) => 8,
                Some(2) => 10,
                Some(_) => break table.found,
                None => 8,
            },
            Some(f) if table.extents > 0 => f.index + f.offset + f.length,
            Some(f) if table.items > 0 => {
                let id = if f.version < 2 { 2 } else { 4 };
                id + if f.version > 0 { 2 } else { 0 } + 2 + f.base + 2
            }
            Some(_) => break table.found,
        };
        let Some(bytes) = window.get(pos..pos + group) else {
            if pos == 0 || ended {
                // The image ends first.
                break table.found;
            }
            walk.at = at;
            walk.detour = Detour::Iloc { table, back };
            return Declared::Boxes(Box::new(walk));
        };
        if at.saturating_add(group as u64) > table.end {
            break table.found;
        }
        pos += group;
        match table.fields {
            // Version and flags; sizes of offset, length, base offset and (versions 1 and 2) index, in 4 bits each;
            // the item count, 16-bit (32-bit in version 2).
            None => {
                let sizes = [bytes[4] >> 4, bytes[4] & 15, bytes[5] >> 4, bytes[5] & 15];
                let f = IlocFields {
                    version: bytes[0],
                    offset: usize::from(sizes[0]),
                    length: usize::from(sizes[1]),
                    base: usize::from(sizes[2]),
                    index: if bytes[0] > 0 {
                        usize::from(sizes[3])
                    } else {
                        0
                    },
                };
                if [f.offset, f.length, f.base, f.index]
                    .iter()
                    .any(|s| ![0, 4, 8].contains(s))
                {
                    break table.found;
                }
                table.items = be(&bytes[6..]) as u32;
                table.fields = Some(f);
            }
            Some(f) if table.extents > 0 => {
                table.extents -= 1;
                let (offset, length) = (
                    be(&bytes[f.index..f.index + f.offset]),
                    be(&bytes[f.index + f.offset..]),
                );
                if let Some(item) = table.item.as_mut() {
                    match item.base.checked_add(offset) {
                        Some(offset) if item.bytes < GRID_BYTES as u64 && length > 0 => {
                            item.extents.push((offset, length));
                            item.bytes = item.bytes.saturating_add(length);
                        }
                        Some(_) => {}
                        None => table.item = None,
                    }
                }
                if table.extents == 0 {
                    table.found.extend(table.item.take());
                }
            }
            // An item: its id, (versions 1 and 2) 12 reserved bits and a 4-bit construction method (0: at an offset
            // of the file, 1: of `idat`), a data reference index, its base offset and extent count.
            Some(f) => {
                table.items -= 1;
                let id_len = if f.version < 2 { 2 } else { 4 };
                let id = be(&bytes[..id_len]) as u32;
                let method = if f.version > 0 {
                    bytes[id_len + 1] & 15
                } else {
                    0
                };
                let rest = &bytes[id_len + if f.version > 0 { 2 } else { 0 } + 2..];
                table.extents = be(&rest[f.base..]) as u16;
                let grid = walk.grids.contains(&id) && table.found.len() < MAX_GRIDS;
                table.item = (grid && method <= 1).then(|| Located {
                    in_idat: method == 1,
                    base: be(&rest[..f.base]),
                    extents: Vec::new(),
                    bytes: 0,
                });
                if table.extents == 0 || group_is_empty(f) {
                    // Extents of no bytes say nothing: not stepped through one by one.
                    table.extents = 0;
                    table.item = None;
                }
            }
        }
    };
    walk.detour = Detour::Data {
        grids: located,
        bytes: Vec::new(),
        back,
    };
    grid_data(window, walk, image_len)
}

/// Whether an `iloc`'s extents are of no bytes (every field size 0): each says an empty extent.
fn group_is_empty(f: IlocFields) -> bool {
    f.index + f.offset + f.length == 0
}

/// The grids' ImageGrid data, from `window` (bytes of the image from `walk.at`): each extent is read where
/// `window` holds it, else from a window at its offset ([`Declared::Boxes`]), so a grid costs a read per extent at
/// most; one cut off by the end of the image (`image_len` bytes) or of `idat` is not read, nor asked for. Then the
/// walk goes on after `meta`, unless `meta` ended with the image.
fn grid_data(window: &[u8], mut walk: BoxWalk, image_len: u64) -> Declared {
    let Detour::Data {
        mut grids,
        mut bytes,
        back,
    } = std::mem::take(&mut walk.detour)
    else {
        return walk.size();
    };
    while let Some(grid) = grids.last_mut() {
        let Some(&(offset, length)) = grid.extents.first() else {
            // Version 0; flags (bit 0: 32-bit fields); rows and columns; output width and height.
            let wide = bytes.get(1).is_some_and(|flags| flags & 1 == 1);
            let half = if wide { 4 } else { 2 };
            if let (Some(0), Some(w), Some(h)) = (
                bytes.first(),
                bytes.get(4..4 + half),
                bytes.get(4 + half..4 + 2 * half),
            ) {
                walk.saw((be(w) as u32, be(h) as u32));
            }
            grids.pop();
            bytes.clear();
            continue;
        };
        let want = length.min((GRID_BYTES - bytes.len()) as u64);
        let from = if grid.in_idat {
            walk.idat
                .filter(|&(start, end)| offset.saturating_add(want) <= end.saturating_sub(start))
                .map(|(start, _)| start + offset)
        } else {
            Some(offset)
        };
        let held = from.and_then(|from| {
            let start = usize::try_from(from.checked_sub(walk.at)?).ok()?;
            window.get(start..start.checked_add(want as usize)?)
        });
        match (from, held) {
            (_, Some(held)) => {
                bytes.extend(held);
                grid.extents.remove(0);
                if bytes.len() == GRID_BYTES {
                    grid.extents.clear();
                }
            }
            (Some(from), None) if from != walk.at && from.saturating_add(want) <= image_len => {
                walk.at = from;
                walk.detour = Detour::Data { grids, bytes, back };
                return Declared::Boxes(Box::new(walk));
            }
            // Past the end of the image, or of `idat`: no decoder reads this grid.
            _ => {
                grids.pop();
                bytes.clear();
            }
        }
    }
    (walk.grids, walk.iloc, walk.idat) = (Vec::new(), None, None);
    match back {
        Some(at) if at < image_len => {
            walk.at = at;
            Declared::Boxes(Box::new(walk))
        }
        _ => walk.size(),
    }
}

/// A box header at `at` of `within`: its type, header length and size (header included; a size of 0, "to the end",
/// as what `within` holds). `None` where the header does not fit or the size is smaller than it.
fn box_header(within: &[u8], at: usize) -> Option<([u8; 4], usize, u64)> {
    let header = within.get(at..at.checked_add(8)?)?;
    let kind: [u8; 4] = header[4..8].try_into().ok()?;
    let (size, header_len) = match u32::from_be_bytes(header[..4].try_into().ok()?) {
        0 => ((within.len() - at) as u64, 8),
        1 => (
            u64::from_be_bytes(within.get(at + 8..at + 16)?.try_into().ok()?),
            16,
        ),
        size => (u64::from(size), 8),
    };
    (size >= header_len as u64).then_some((kind, header_len, size))
}

/// Where a walk of a GIF's blocks stands between two windows of the image: the offset of the next read, whether
/// it is inside sub-blocks (an extension's, or a frame's image data), the logical screen (grown to hold the first
/// frame once it was seen) and the frames seen so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GifWalk {
    pub at: u64,
    pub in_sub_blocks: bool,
    pub screen: (u32, u32),
    pub frames: u64,
}

/// Whether `frames` frames of a `width` x `height` canvas are more pixels than a variant can be made from: a walk
/// that finds so many stops there (the rest of the image cannot make it servable).
pub fn over_budget((width, height): (u32, u32), frames: u64) -> bool {
    u64::from(width)
        .saturating_mul(u64::from(height))
        .saturating_mul(frames.max(1))
        > super::geometry::MAX_SOURCE_PIXELS
}

/// What a walk that found `frames` frames of `canvas` says: its size, or the animation it is.
fn sized(canvas: (u32, u32), frames: u64) -> Declared {
    if frames > 1 {
        Declared::Animation(canvas.0, canvas.1, frames)
    } else {
        Declared::Size(canvas.0, canvas.1)
    }
}

/// A GIF's size, from its blocks in `window` (bytes of the image from offset `walk.at`): the logical screen grown to
/// hold the first frame (the screen alone when the image has no frame), and every frame counted — a few kilobytes of
/// LZW can say a 100-megapixel frame, and a GIF may hold thousands — or [`Declared::GifFrom`] where the window ends
/// first. Each step moves at least a byte on; the walk ends at the trailer, at bytes that are no block, with the
/// image, or once the frames are [`over_budget`].
pub fn gif_blocks(window: &[u8], walk: GifWalk, image_len: u64) -> Declared {
    let ended = holds_the_end(walk.at, window, image_len);
    short_of_the_end(gif_blocks_in(window, ended, walk), image_len)
}

/// [`gif_blocks`] in `window`, which holds the rest of the image when `ended` ([`holds_the_end`]).
fn gif_blocks_in(window: &[u8], ended: bool, mut walk: GifWalk) -> Declared {
    let from = walk.at;
    let le16 = |at: usize| {
        Some(u32::from(u16::from_le_bytes([
            *window.get(at)?,
            *window.get(at + 1)?,
        ])))
    };
    let read_on = |at: usize, walk: GifWalk| {
        if at == 0 || ended {
            // The image ends here.
            sized(walk.screen, walk.frames)
        } else {
            Declared::GifFrom(GifWalk {
                at: from + at as u64,
                ..walk
            })
        }
    };
    let mut at = 0;
    loop {
        if walk.frames > 0 && over_budget(walk.screen, walk.frames) {
            return sized(walk.screen, walk.frames);
        }
        if walk.in_sub_blocks {
            // A sub-block: its length, then that many bytes; a length of 0 ends them.
            let Some(&length) = window.get(at) else {
                return read_on(at, walk);
            };
            at += 1 + usize::from(length);
            walk.in_sub_blocks = length != 0;
            continue;
        }
        match window.get(at) {
            None => return read_on(at, walk),
            Some(0x21) if window.get(at + 1).is_some() => {
                at += 2;
                walk.in_sub_blocks = true;
            }
            Some(0x21) => return read_on(at, walk),
            // The image descriptor: left, top, width, height, packed flags; then the local colour table, the LZW
            // minimum code size and the image data's sub-blocks.
            Some(0x2C) => {
                let frame = (le16(at + 1), le16(at + 3), le16(at + 5), le16(at + 7));
                let (Some(left), Some(top), Some(width), Some(height), Some(&packed)) =
                    (frame.0, frame.1, frame.2, frame.3, window.get(at + 9))
                else {
                    return read_on(at, walk);
                };
                if walk.frames == 0 {
                    walk.screen = (
                        walk.screen.0.max(left + width),
                        walk.screen.1.max(top + height),
                    );
                }
                walk.frames += 1;
                let colours = if packed & 0x80 != 0 {
                    3 << ((packed & 7) + 1)
                } else {
                    0
                };
                at += 10 + colours + 1;
                walk.in_sub_blocks = true;
            }
            // The trailer, or bytes that are no block: what was seen is all it says.
            Some(_) => return sized(walk.screen, walk.frames),
        }
    }
}

/// The chunked formats whose animations [`chunks`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkKind {
    /// PNG: a 4-byte big-endian length, the type, the data, a 4-byte CRC.
    Png,
    /// WebP (RIFF): the type, a 4-byte little-endian length, the data padded to an even length.
    Webp,
}

/// Where a walk of a PNG's or WebP's chunks stands between two windows of the image: the offset of the next chunk,
/// the format, the canvas, whether the image said it is animated, the frames seen so far, whether a PNG's first
/// `IDAT` was passed, and where a PNG's `PLTE` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkWalk {
    pub at: u64,
    pub kind: ChunkKind,
    pub canvas: (u32, u32),
    pub animated: bool,
    pub frames: u64,
    pub past_idat: bool,
    pub palette: Palette,
}

/// Where a PNG's `PLTE` stands before its first `IDAT`, as libpng (1.6.47 on: `png_handle_PLTE`, `png_set_PLTE`)
/// reads it. In an indexed PNG every `PLTE` error is a chunk error, which stops the decoder. In another colour type
/// the palette is only a suggestion and its errors are benign — warnings, on read — so Firefox draws the image:
/// a `PLTE` in a greyscale PNG ("ignored"), a second one ("duplicate"), one after a `tRNS` libpng took ("out of
/// place"), one of a length past 768 or not a multiple of 3 ("invalid", skipped). Served, as Firefox draws them
/// (Chrome's png crate 0.18.1 refuses only a second, `DuplicateChunk`, and one of no entry or past 768 bytes,
/// `ChunkLengthWrong`). But a truecolour PNG's first `PLTE` of a valid length is taken, and one of no entry is
/// `png_set_PLTE`'s "Invalid palette", which stops libpng whatever the colour type. libpng also makes a `PLTE` after a `bKGD` out of place, but Firefox's
/// libpng reads no `bKGD` (its `pnglibconf.h` leaves `PNG_READ_bKGD_SUPPORTED` out: the chunk is discarded as
/// unknown, never recorded), so there a `bKGD` changes nothing.
///
/// The 502 for that empty `PLTE` holds because no current browser draws it (checked December 2026):
/// - Chrome decodes PNG with Skia's Rust codec (`SkPngRustCodec`) only: Chromium's `skia/rusty_png_feature.h` has
///   `IsRustyPngEnabled()` return `true` (the `RustyPng` feature, enabled by default before, is gone), and
///   `SkPngCodec`'s libpng path would refuse it as Firefox does. Its png crate is 0.18.1
///   (`third_party/rust/chromium_crates_io/vendor/png-v0_18`), whose `StreamingDecoder::start_chunk` allows a
///   `PLTE` of 3 to 768 bytes and fails any other with `ChunkLengthWrong` — fatal, `PLTE` being critical — in
///   every colour type and at every place before `IDAT` (image-png #630, first in 0.18.1; 0.18.0 and earlier
///   checked no `PLTE` length, so a Chrome that shipped one of those drew such an image).
/// - Firefox: libpng, as above (`png_set_PLTE` has refused no entry throughout 1.6; Firefox permits no MNG
///   features, which alone would allow it).
/// - Safari decodes with ImageIO, whose source is not public: not checked. If it draws such an image, this rule
///   must serve it again.
///
/// A `PLTE` whose CRC is wrong follows the same split. The png crate refuses any critical chunk whose CRC is wrong
/// (`CrcMismatch`; Skia ignores checksums only in fuzzing builds): headless Chromium 148 (Debian's) fired `onerror`
/// for an indexed, an RGB and a greyscale PNG with one, and for an `IHDR` with one (December 2026). libpng stops at an
/// indexed PNG's (`png_crc_finish_critical`, critical there), but handles a truecolour or greyscale PNG's as
/// ancillary — a warning, and a truecolour one's entries are still taken — so Firefox draws those: only the indexed
/// PNG's stops every browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Palette {
    /// Nothing more to check: not a PNG, a greyscale one, or a truecolour one past the point where a `PLTE` could
    /// stop libpng (one was taken, or a `tRNS` it took came first).
    Settled,
    /// Indexed colour with no `PLTE` yet: one of 1 to 256 entries must come before `IDAT`.
    Needed,
    /// Indexed colour with its `PLTE`: a second before `IDAT` is libpng's "duplicate", a chunk error.
    Taken,
    /// Truecolour (with an `alpha` channel or not) with no palette taken yet: a `PLTE` of no entry stops libpng.
    Suggested { alpha: bool },
}

impl Palette {
    /// Where a PNG of IHDR colour type `colour` starts.
    fn of_colour_type(colour: u8) -> Self {
        match colour {
            3 => Palette::Needed,
            2 => Palette::Suggested { alpha: false },
            6 => Palette::Suggested { alpha: true },
            _ => Palette::Settled,
        }
    }

    /// Whether a chunk of type `kind` and data `length` is one whose CRC decides the image, so that whether it is
    /// intact is read: an indexed PNG's first `PLTE` of a valid length (a wrong CRC stops every browser), and a
    /// `tRNS` that would settle the palette if libpng took it — an RGB PNG's, before any `PLTE` was taken — which
    /// libpng discards when its CRC is wrong.
    fn crc_decides(self, kind: &[u8], length: u64) -> bool {
        match (self, kind) {
            (Palette::Needed, b"PLTE") => valid_palette_length(length),
            (Palette::Suggested { alpha: false }, b"tRNS") => length == TRNS_RGB_BYTES as u64,
            _ => false,
        }
    }

    /// After a chunk of type `kind` and data `length` before the first `IDAT`, `intact` unless it is one whose CRC
    /// decides the image ([`Self::crc_decides`]) and that CRC is wrong: the next state, or `None` where the decoder
    /// stops (no pixel is drawn).
    fn after(self, kind: &[u8], length: u64, intact: bool) -> Option<Self> {
        let invalid = length > MAX_PALETTE_BYTES || !length.is_multiple_of(3);
        Some(match (self, kind) {
            // libpng's "invalid" (a chunk error in an indexed PNG), png_set_PLTE's "Invalid palette" for no entry.
            (Palette::Needed, b"PLTE") if invalid || length == 0 => return None,
            // A CRC error in the palette an indexed PNG needs: libpng's "CRC error" (a chunk error: it is critical
            // there), the png crate's CrcMismatch.
            (Palette::Needed, b"PLTE") if !intact => return None,
            (Palette::Needed, b"PLTE") => Palette::Taken,
            (Palette::Taken, b"PLTE") => return None,
            // "invalid": skipped, a warning; the next PLTE is still the first taken.
            (Palette::Suggested { .. }, b"PLTE") if invalid => self,
            (Palette::Suggested { .. }, b"PLTE") if length == 0 => return None,
            (Palette::Suggested { .. }, b"PLTE") => Palette::Settled,
            // A tRNS that libpng took (of the 6 bytes an RGB one has; in a PNG with an alpha channel it is invalid,
            // skipped; one whose CRC is wrong is discarded, a warning) makes any later PLTE "out of place": skipped,
            // a warning. A bKGD does not in Firefox, whose libpng is built without reading it (see above).
            (Palette::Suggested { alpha: false }, b"tRNS")
                if length == TRNS_RGB_BYTES as u64 && intact =>
            {
                Palette::Settled
            }
            // libpng's "Missing PLTE before IDAT", the png crate's PaletteRequired.
            (Palette::Needed, b"IDAT") => return None,
            _ => self,
        })
    }
}

/// The bytes of an RGB PNG's `tRNS`: one 16-bit sample per channel (§11.3.2.1).
const TRNS_RGB_BYTES: usize = 6;

/// Whether `chunk`, a whole PNG chunk (length, type, data, CRC), has the CRC-32 of its type and data (§5.3).
fn png_crc_intact(chunk: &[u8]) -> bool {
    let Some((framed, crc)) = chunk.split_last_chunk::<4>() else {
        return false;
    };
    framed.len() >= 8 && crate::gateway::inflate::crc32(&framed[4..]) == u32::from_be_bytes(*crc)
}

/// The most bytes a PNG's `PLTE` may hold: 256 entries of 3 bytes (§11.2.3).
const MAX_PALETTE_BYTES: u64 = 3 * 256;

/// Whether a `PLTE` of `length` bytes holds 1 to 256 whole entries.
fn valid_palette_length(length: u64) -> bool {
    (1..=MAX_PALETTE_BYTES).contains(&length) && length.is_multiple_of(3)
}

/// The largest length a PNG chunk may say: a PNG four-byte unsigned integer is at most 2^31 - 1 (§7.1).
const MAX_PNG_CHUNK_LENGTH: u64 = 0x7FFF_FFFF;

/// Whether a PNG chunk of type `kind` is critical — the first letter uppercase: a decoder cannot show the image
/// without understanding it — and none of the four a PNG decoder knows (`IHDR`, `PLTE`, `IDAT`, `IEND`).
pub fn unknown_critical_png_chunk(kind: &[u8]) -> bool {
    kind.first().is_some_and(u8::is_ascii_uppercase)
        && !matches!(kind, b"IHDR" | b"PLTE" | b"IDAT" | b"IEND")
}

/// A PNG's or an animated WebP's size, from its chunks in `window` (bytes of the image from offset `walk.at`, which
/// starts a chunk): the canvas, and for an animation (a PNG with `acTL` before its first `IDAT`, a WebP whose `VP8X`
/// says so) every frame counted (`fcTL`, `ANMF`), or [`Declared::Chunks`] where the window ends first. A still PNG
/// ends the walk at its first `IDAT`; a PNG with an unknown critical chunk before it is
/// [`Declared::UnknownCritical`], and one with a chunk type that is not four letters, a chunk length past
/// 2^31 - 1 or a second `IHDR` there, that ends (cut short, or at `IEND`) before it, or whose `PLTE` stops libpng
/// there ([`Palette`]), [`Declared::NoPixels`]. Each step moves at least
/// a chunk header on; the walk ends with the image, at `IEND`, or once the frames are [`over_budget`].
pub fn chunks(window: &[u8], walk: ChunkWalk, image_len: u64) -> Declared {
    let ended = holds_the_end(walk.at, window, image_len);
    short_of_the_end(chunks_in(window, ended, walk), image_len)
}

/// [`chunks`] in `window`, which holds the rest of the image when `ended` (see [`gif_blocks_in`]).
fn chunks_in(window: &[u8], ended: bool, mut walk: ChunkWalk) -> Declared {
    let done = |walk: &ChunkWalk| {
        if walk.kind == ChunkKind::Png && !walk.past_idat {
            // The image ends (cut short, or at an `IEND` out of place) before its first IDAT: a decoder stops
            // there, before any pixel, as at a chunk that is no chunk.
            Declared::NoPixels
        } else if walk.animated {
            Declared::Animation(walk.canvas.0, walk.canvas.1, walk.frames.max(1))
        } else {
            Declared::Size(walk.canvas.0, walk.canvas.1)
        }
    };
    let mut at = 0usize;
    loop {
        if walk.animated && over_budget(walk.canvas, walk.frames) {
            return Declared::Animation(walk.canvas.0, walk.canvas.1, walk.frames.max(1));
        }
        let Some(header) = window.get(at..at + 8) else {
            return if at == 0 || ended {
                done(&walk)
            } else {
                Declared::Chunks(ChunkWalk {
                    at: walk.at + at as u64,
                    ..walk
                })
            };
        };
        let (kind, length, framing) = match walk.kind {
            ChunkKind::Png => (
                &header[4..8],
                u64::from(u32::from_be_bytes([
                    header[0], header[1], header[2], header[3],
                ])),
                12,
            ),
            ChunkKind::Webp => {
                let length = u64::from(u32::from_le_bytes([
                    header[4], header[5], header[6], header[7],
                ]));
                (&header[0..4], length + (length & 1), 8)
            }
        };
        if walk.kind == ChunkKind::Png && !walk.past_idat {
            // No chunk at all (a type is four ASCII letters, §5.4; a length at most 2^31 - 1, §5.3 — libpng's
            // png_read_chunk_header checks both), or an IHDR after the image's first (libpng's "out of place"): a
            // decoder stops here, before any pixel.
            let second_header = kind == b"IHDR" && walk.at.saturating_add(at as u64) != 8;
            if !kind.iter().all(u8::is_ascii_alphabetic)
                || length > MAX_PNG_CHUNK_LENGTH
                || second_header
            {
                return Declared::NoPixels;
            }
            if unknown_critical_png_chunk(kind) {
                return Declared::UnknownCritical([kind[0], kind[1], kind[2], kind[3]]);
            }
            // Past the first IDAT the first frame's pixels are drawn, whatever a later PLTE is (in an indexed
            // APNG libpng's "duplicate" then ends the animation, not the image): the palette is checked before it.
            // An indexed PNG's PLTE, or a tRNS that would spare a later PLTE, counts only with its CRC intact:
            // libpng stops at a critical chunk whose CRC is wrong and discards an ancillary one (png_crc_finish's
            // chunk error and warning, by default), never recording it. Where its bytes run past this window, the
            // walk goes on from it with the next (a window holds far more than one: these are at most 780 bytes).
            let intact = if walk.palette.crc_decides(kind, length) {
                match window.get(at..at + 12 + length as usize) {
                    Some(chunk) => png_crc_intact(chunk),
                    None if at != 0 && !ended => {
                        return Declared::Chunks(ChunkWalk {
                            at: walk.at + at as u64,
                            ..walk
                        })
                    }
                    // Cut short before its first IDAT: no pixel is drawn, whatever the palette.
                    None => false,
                }
            } else {
                true
            };
            match walk.palette.after(kind, length, intact) {
                Some(palette) => walk.palette = palette,
                None => return Declared::NoPixels,
            }
        }
        match kind {
            b"acTL" => walk.animated = true,
            b"fcTL" | b"ANMF" => walk.frames += 1,
            b"IDAT" => {
                walk.past_idat = true;
                if !walk.animated {
                    return done(&walk);
                }
            }
            b"IEND" => return done(&walk),
            _ => {}
        }
        let Some(next) = usize::try_from(length + framing)
            .ok()
            .and_then(|step| at.checked_add(step))
        else {
            return done(&walk);
        };
        at = next;
    }
}

/// A JPEG's size, from its segments in `window` (bytes of the image from offset `window_at`), the first starting at
/// `start`: [`Declared::ReadOn`] where the window ends before a segment's header, unless that is `start` itself
/// (the image ends there), or the window is shorter than a read asks for (it holds the rest of the image: a further
/// window would be read empty).
pub fn jpeg_segments(window: &[u8], window_at: u64, start: usize, image_len: u64) -> Declared {
    let ended = holds_the_end(window_at, window, image_len);
    short_of_the_end(jpeg_segments_in(window, window_at, start, ended), image_len)
}

/// [`jpeg_segments`] in `window`, which holds the rest of the image when `ended` (see [`gif_blocks_in`]).
fn jpeg_segments_in(window: &[u8], window_at: u64, start: usize, ended: bool) -> Declared {
    let be16 = |at: usize| {
        Some(u32::from(u16::from_be_bytes([
            *window.get(at)?,
            *window.get(at + 1)?,
        ])))
    };
    let read_on = |at: usize| {
        if at == start || ended {
            Declared::Unknown
        } else {
            Declared::ReadOn(window_at + at as u64)
        }
    };
    // Segments: FF, a marker, then (except for markers that stand alone) a 2-byte length that counts itself.
    let mut at = start;
    loop {
        let (Some(&first), Some(&marker)) = (window.get(at), window.get(at + 1)) else {
            return read_on(at);
        };
        if first != 0xFF {
            // Bytes that are no marker: libjpeg skips them to the next `FF` (with a warning) and decodes on.
            match memchr::memchr(0xFF, &window[at..]) {
                Some(skip) => at += skip,
                None => return read_on(window.len()),
            }
            continue;
        }
        match marker {
            0xFF => at += 1, // fill byte
            // `FF 00` is no marker either (a stuffed byte), skipped as such.
            0x00 | 0x01 | 0xD0..=0xD8 => at += 2,
            // SOF0–SOF15 (not DHT C4, JPG C8, DAC CC): length, precision, height, width.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                return match (be16(at + 7), be16(at + 5)) {
                    (Some(width), Some(height)) => Declared::Size(width, height),
                    _ => read_on(at),
                };
            }
            // Start of scan or end of image before any frame header: none to read.
            0xDA | 0xD9 => return Declared::Unknown,
            _ => match be16(at + 2) {
                Some(length) => at += 2 + length as usize,
                None => return read_on(at),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`declared`] finds in `image`, read whole.
    fn whole(image: &[u8]) -> Declared {
        let image = ihdr_sealed(image);
        declared(&image, image.len() as u64)
    }

    /// `image` with a PNG's `IHDR` CRC made its data's, as an encoder writes it: the tests build an `IHDR` and
    /// change its bytes, and every reading helper takes the image so; a wrong CRC is read by its own test, which
    /// calls [`declared`] itself. Anything else is kept as it is.
    fn ihdr_sealed(image: &[u8]) -> Vec<u8> {
        let mut image = image.to_vec();
        if image.starts_with(b"\x89PNG\r\n\x1a\n") && image.get(12..16) == Some(b"IHDR") {
            if let Some(data) = image.get(12..29) {
                let crc = crate::gateway::inflate::crc32(data).to_be_bytes();
                if let Some(at) = image.get_mut(29..33) {
                    at.copy_from_slice(&crc);
                }
            }
        }
        image
    }

    fn png(width: u32, height: u32) -> Vec<u8> {
        let mut head = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        head.extend(width.to_be_bytes());
        head.extend(height.to_be_bytes());
        head.extend([8, 2, 0, 0, 0]);
        head
    }

    fn jpeg(segments_before: &[(u8, usize)], width: u16, height: u16) -> Vec<u8> {
        let mut head = vec![0xFF, 0xD8];
        for &(marker, len) in segments_before {
            head.extend([0xFF, marker]);
            head.extend((len as u16 + 2).to_be_bytes());
            head.extend(std::iter::repeat_n(0u8, len));
        }
        head.extend([0xFF, 0xC2, 0, 17, 8]);
        head.extend(height.to_be_bytes());
        head.extend(width.to_be_bytes());
        head.extend([3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
        head
    }

    #[test]
    fn each_format_says_its_declared_size() {
        // A PNG's header, then its first IDAT's.
        let png =
            |width, height| [png(width, height), vec![0; 4], b"\0\0\0\x01IDAT".to_vec()].concat();
        assert_eq!(
            walked(&png(50_000, 50_000)).0,
            Declared::Size(50_000, 50_000)
        );
        assert_eq!(walked(&png(300, 200)).0, Declared::Size(300, 200));
        let gif = [b"GIF89a".as_slice(), &[0x2c, 0x01, 0xc8, 0x00, 0, 0, 0]].concat();
        assert_eq!(whole(&gif), Declared::Size(300, 200));
        assert_eq!(
            whole(&gif_framing(300, 200, &[], (0, 0, 300, 200))),
            Declared::Size(300, 200)
        );
        // An Exif segment and a DQT before the (progressive) frame header, and a fill byte.
        let exif = jpeg(&[(0xE1, 60_000), (0xDB, 67)], 4000, 3000);
        assert_eq!(whole(&exif), Declared::Size(4000, 3000));
        let mut filled = jpeg(&[], 65_535, 65_535);
        filled.insert(2, 0xFF);
        assert_eq!(whole(&filled), Declared::Size(65_535, 65_535));
        let mut lossy = b"RIFF\0\0\0\0WEBPVP8 \0\0\0\0\x30\x01\0\x9d\x01\x2a".to_vec();
        lossy.extend([0x2c, 0x01 | 0x40, 0xc8, 0x00]); // 300 (scale bits set), 200
        assert_eq!(whole(&lossy), Declared::Size(300, 200));
        let mut lossless = b"RIFF\0\0\0\0WEBPVP8L\0\0\0\0\x2f".to_vec();
        lossless.extend(((299u32) | (199 << 14) | (1 << 28)).to_le_bytes());
        assert_eq!(whole(&lossless), Declared::Size(300, 200));
        let mut extended = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x10\0\0\0".to_vec();
        extended.extend([0x4f, 0xc3, 0x00, 0x4f, 0xc3, 0x00]); // 49999 + 1 each
        assert_eq!(whole(&extended), Declared::Size(50_000, 50_000));
    }

    #[test]
    fn a_header_that_does_not_say_gives_none() {
        for (head, why) in [
            (png(300, 200)[..20].to_vec(), "cut inside IHDR"),
            (b"<!doctype html>".to_vec(), "not an image"),
            (
                vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2],
                "a scan before any frame header",
            ),
            (
                vec![0xFF, 0xD8, 0x00, 0x00, 0xFF, 0xDA, 0, 2],
                "bytes that are no segment, then a scan",
            ),
            (Vec::new(), "empty"),
        ] {
            assert_eq!(whole(&head), Declared::Unknown, "{why}");
        }
    }

    /// An ISO-BMFF box: its size (header included), type and contents.
    fn bmff(kind: &[u8; 4], contents: &[u8]) -> Vec<u8> {
        let mut b = ((contents.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend(kind);
        b.extend(contents);
        b
    }

    /// An AVIF as encoders lay it out: `ftyp`, then `meta` (version/flags, `hdlr`, `pitm`, `iprp` → `ipco` with an
    /// `ispe` per size given, and a `pixi`), then `mdat`.
    fn avif(sizes: &[(u32, u32)]) -> Vec<u8> {
        let mut ipco = bmff(b"pixi", &[0, 0, 0, 0, 3, 8, 8, 8]);
        for &(w, h) in sizes {
            let mut ispe = vec![0, 0, 0, 0];
            ispe.extend(w.to_be_bytes());
            ispe.extend(h.to_be_bytes());
            ipco.extend(bmff(b"ispe", &ispe));
        }
        let iprp = bmff(b"iprp", &bmff(b"ipco", &ipco));
        let meta = [
            &[0u8, 0, 0, 0][..],
            &bmff(b"hdlr", &[0; 24]),
            &bmff(b"pitm", &[0, 0, 0, 0, 0, 1]),
            &iprp,
        ]
        .concat();
        [
            bmff(b"ftyp", b"avif\0\0\0\0mif1miaf"),
            bmff(b"meta", &meta),
            bmff(b"mdat", &[0; 64]),
        ]
        .concat()
    }

    /// What the handler finds in `image`: [`declared`] on its first window, then each further window it asks for,
    /// counted.
    fn followed(image: &[u8]) -> (Declared, usize) {
        let window = |at: u64, len: usize| {
            let from = (at as usize).min(image.len());
            &image[from..(from + len).min(image.len())]
        };
        let mut size = declared(window(0, SIZE_BYTES), image.len() as u64);
        let mut windows = 1;
        loop {
            size = match size {
                Declared::Boxes(walk) => {
                    isobmff_boxes(window(walk.at, SIZE_BYTES), *walk, image.len() as u64)
                }
                other => return (other, windows),
            };
            windows += 1;
        }
    }

    #[test]
    fn an_avif_says_its_size_in_its_ispe_box() {
        assert_eq!(whole(&avif(&[(400, 300)])), Declared::Size(400, 300));
        assert_eq!(
            whole(&avif(&[(50_000, 50_000)])),
            Declared::Size(50_000, 50_000)
        );
        // A grid and its tiles, or a thumbnail beside the image: the largest counts, wherever it stands.
        assert_eq!(
            whole(&avif(&[(512, 512), (60_000, 40_000), (160, 120)])),
            Declared::Size(60_000, 40_000)
        );
        // A box with a 64-bit size, and a last box of size 0 (to the end).
        let mut large = avif(&[(50_000, 50_000)]);
        let meta_at = 24; // after ftyp's 8-byte header and 16 bytes of brands
        let meta_len = u32::from_be_bytes(large[meta_at..meta_at + 4].try_into().unwrap());
        large.splice(
            meta_at..meta_at + 8,
            [[0, 0, 0, 1], *b"meta"]
                .concat()
                .into_iter()
                .chain((u64::from(meta_len) + 8).to_be_bytes()),
        );
        assert_eq!(whole(&large), Declared::Size(50_000, 50_000));
        let mut to_end = avif(&[(50_000, 50_000)]);
        to_end[meta_at..meta_at + 4].copy_from_slice(&[0; 4]);
        assert_eq!(whole(&to_end), Declared::Size(50_000, 50_000));
    }

    #[test]
    fn a_truncated_or_looping_avif_says_nothing_and_ends() {
        let image = avif(&[(50_000, 50_000)]);
        // Every cut: no panic; the size once the ispe is whole, nothing before.
        let ispe_end = image.windows(4).position(|w| w == b"ispe").unwrap() + 4 + 12;
        for cut in 0..image.len() {
            let (size, _) = followed(&image[..cut]);
            if cut >= ispe_end {
                assert_eq!(size, Declared::Size(50_000, 50_000), "cut at {cut}");
            } else {
                assert_eq!(size, Declared::Unknown, "cut at {cut}");
            }
        }
        // Boxes that claim less than their own header (a walk by their sizes would stand still, or go back).
        for size in [1u32, 4, 7] {
            let mut looping = image.clone();
            looping[24..28].copy_from_slice(&size.to_be_bytes());
            assert_eq!(
                followed(&looping).0,
                Declared::Unknown,
                "meta of size {size}"
            );
            let mut ftyp = image.clone();
            ftyp[0..4].copy_from_slice(&size.to_be_bytes());
            assert_eq!(followed(&ftyp).0, Declared::Unknown, "ftyp of size {size}");
        }
        let mut zero_child = image.clone();
        let ipco = zero_child.windows(4).position(|w| w == b"ipco").unwrap();
        zero_child[ipco + 4..ipco + 8].copy_from_slice(&3u32.to_be_bytes());
        assert_eq!(whole(&zero_child), Declared::Unknown, "a child of size 3");
        // Sizes far past the data, and a 64-bit size near u64::MAX: cut where the bytes end.
        let mut huge = image.clone();
        huge[24..28].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(followed(&huge).0, Declared::Size(50_000, 50_000));
        let mut largest = bmff(b"ftyp", b"avif\0\0\0\0");
        largest.extend([0, 0, 0, 1]);
        largest.extend(b"meta");
        largest.extend(u64::MAX.to_be_bytes());
        largest.extend(&image[32..]);
        assert_eq!(followed(&largest).0, Declared::Size(50_000, 50_000));
        // Many tiny boxes: each step moves at least a header on.
        let mut many = bmff(b"ftyp", b"avif\0\0\0\0");
        for _ in 0..SIZE_BYTES / 4 {
            many.extend(bmff(b"free", &[]));
        }
        assert_eq!(followed(&many), (Declared::Unknown, 3));
        many.extend(&image[24..]);
        assert_eq!(followed(&many).0, Declared::Size(50_000, 50_000));
    }

    /// A bomb cannot hide its size past the first window: behind a large box before `meta` (followed box by box,
    /// without reading their contents), or inside a `meta` longer than a window.
    #[test]
    fn an_avif_meta_box_past_the_first_window_is_followed() {
        let image = avif(&[(50_000, 50_000)]);
        let (ftyp, rest) = image.split_at(24);
        let padded = [ftyp, &bmff(b"free", &vec![0; 3 * SIZE_BYTES]), rest].concat();
        assert!(matches!(
            declared(&padded[..SIZE_BYTES], padded.len() as u64),
            Declared::Boxes(_)
        ));
        assert_eq!(followed(&padded), (Declared::Size(50_000, 50_000), 2));
        // Several boxes straddling windows.
        let boxes: Vec<u8> = (0..5)
            .flat_map(|_| bmff(b"skip", &vec![1; SIZE_BYTES - 100]))
            .collect();
        let straddling = [ftyp, &boxes, rest].concat();
        assert_eq!(followed(&straddling).0, Declared::Size(50_000, 50_000));
        // A meta whose XMP comes before its item properties, 300 KB of it.
        let mut ispe = vec![0, 0, 0, 0];
        ispe.extend(50_000u32.to_be_bytes());
        ispe.extend(40_000u32.to_be_bytes());
        let meta = [
            &[0u8, 0, 0, 0][..],
            &bmff(b"xml ", &vec![b' '; 300_000]),
            &bmff(b"iprp", &bmff(b"ipco", &bmff(b"ispe", &ispe))),
        ]
        .concat();
        let long_meta = [ftyp, &bmff(b"meta", &meta), &bmff(b"mdat", &[0; 8])].concat();
        assert_eq!(followed(&long_meta), (Declared::Size(50_000, 40_000), 2));
        // The same meta with a size of 0 (to the end of the image, which decoders read whole): not cut at the
        // first window's end, first in the image's first window or behind padding.
        let mut to_end = [ftyp, &bmff(b"meta", &meta)].concat();
        to_end[24..28].copy_from_slice(&[0; 4]);
        assert_eq!(followed(&to_end).0, Declared::Size(50_000, 40_000));
        let padded_to_end = [
            ftyp,
            &bmff(b"free", &vec![0; 3 * SIZE_BYTES]),
            &to_end[24..],
        ]
        .concat();
        assert_eq!(followed(&padded_to_end).0, Declared::Size(50_000, 40_000));
    }

    /// A track header (`tkhd`) of the given version saying `width` x `height` px (16.16 fixed point).
    fn tkhd(version: u8, width: u32, height: u32) -> Vec<u8> {
        let mut contents = vec![version, 0, 0, 7];
        // Times, track id, reserved, duration; then reserved, layer, group, volume, reserved and the matrix.
        contents.extend(vec![0; if version == 1 { 32 } else { 20 }]);
        contents.extend([0; 52]);
        contents.extend((width << 16).to_be_bytes());
        contents.extend((height << 16).to_be_bytes());
        bmff(b"tkhd", &contents)
    }

    /// An AVIF image sequence as libavif writes one without a still image: `ftyp` (`avis`), `moov` → `trak` →
    /// `tkhd`, then `mdat`; `before_trak` goes in `moov` first.
    fn sequence(before_trak: &[u8], tkhd: &[u8]) -> Vec<u8> {
        let trak = bmff(b"trak", &[tkhd, &bmff(b"mdia", &[0; 40])].concat());
        let moov = bmff(
            b"moov",
            &[&bmff(b"mvhd", &[0; 100]), before_trak, &trak].concat(),
        );
        [
            bmff(b"ftyp", b"avis\0\0\0\0avisavifmsf1"),
            moov,
            bmff(b"mdat", &[0; 64]),
        ]
        .concat()
    }

    #[test]
    fn an_avif_sequence_says_its_size_in_its_track_header() {
        // No `meta` at all: the frames' size is the track's (libavif sizes a track's frames by its `tkhd`).
        for version in [0, 1] {
            let bomb = sequence(&[], &tkhd(version, 50_000, 50_000));
            assert_eq!(whole(&bomb), Declared::Size(50_000, 50_000), "v{version}");
        }
        assert_eq!(
            whole(&sequence(&[], &tkhd(0, 640, 480))),
            Declared::Size(640, 480)
        );
        // A still image saying 40 x 30 beside a track of 50,000 x 50,000 px: the largest counts.
        let still = avif(&[(40, 30)]);
        let both = [&still[..], &sequence(&[], &tkhd(0, 50_000, 50_000))[28..]].concat();
        assert_eq!(followed(&both).0, Declared::Size(50_000, 50_000));
        // Behind padding inside `moov`, past the first window.
        let padded = sequence(
            &bmff(b"udta", &vec![0; 3 * SIZE_BYTES]),
            &tkhd(0, 50_000, 50_000),
        );
        assert!(matches!(
            declared(&padded[..SIZE_BYTES], padded.len() as u64),
            Declared::Boxes(_)
        ));
        assert_eq!(followed(&padded).0, Declared::Size(50_000, 50_000));
        // A track header cut short, or an unknown version, says nothing.
        let whole = sequence(&[], &tkhd(0, 50_000, 50_000));
        let tkhd_at = whole.windows(4).position(|w| w == b"tkhd").unwrap() - 4;
        assert_eq!(followed(&whole[..tkhd_at + 90]).0, Declared::Unknown);
        let mut unknown = whole.clone();
        unknown[tkhd_at + 8] = 2;
        assert_eq!(followed(&unknown).0, Declared::Unknown);
    }

    /// An AVIF image sequence whose track says `width` x `height` px and holds `frames` samples (`stsz`, in
    /// `mdia` → `minf` → `stbl`, as libavif counts a track's frames).
    fn sequence_of_frames(width: u32, height: u32, frames: u32) -> Vec<u8> {
        let mut stsz = vec![0u8; 8];
        stsz.extend(frames.to_be_bytes());
        let stbl = bmff(
            b"stbl",
            &[bmff(b"stsd", &[0; 16]), bmff(b"stsz", &stsz)].concat(),
        );
        let mdia = bmff(
            b"mdia",
            &[bmff(b"mdhd", &[0; 24]), bmff(b"minf", &stbl)].concat(),
        );
        let trak = bmff(b"trak", &[tkhd(0, width, height), mdia].concat());
        let moov = bmff(b"moov", &[bmff(b"mvhd", &[0; 100]), trak].concat());
        [
            bmff(b"ftyp", b"avis\0\0\0\0avisavifmsf1"),
            moov,
            bmff(b"mdat", &[0; 64]),
        ]
        .concat()
    }

    #[test]
    fn every_frame_of_an_avif_sequence_counts() {
        // A few kilobytes of AV1 can hold thousands of frames (an unchanged frame costs a few bytes): its track's
        // samples count as a GIF's frames do.
        assert_eq!(
            followed(&sequence_of_frames(1000, 1000, 2000)).0,
            Declared::Animation(1000, 1000, 2000)
        );
        // Under 100 megapixels in all: its size, as before.
        assert_eq!(
            followed(&sequence_of_frames(640, 480, 30)).0,
            Declared::Size(640, 480)
        );
        // Behind padding in `stbl`, past the first window.
        let mut stsz = vec![0u8; 8];
        stsz.extend(2000u32.to_be_bytes());
        let stbl = bmff(
            b"stbl",
            &[
                bmff(b"stco", &vec![0; 3 * SIZE_BYTES]),
                bmff(b"stsz", &stsz),
            ]
            .concat(),
        );
        let trak = bmff(
            b"trak",
            &[tkhd(0, 1000, 1000), bmff(b"mdia", &bmff(b"minf", &stbl))].concat(),
        );
        let padded = [
            bmff(b"ftyp", b"avis\0\0\0\0avisavifmsf1"),
            bmff(b"moov", &trak),
        ]
        .concat();
        assert_eq!(followed(&padded).0, Declared::Animation(1000, 1000, 2000));
        // The track header after the sample table: the same track.
        let late = [
            bmff(b"ftyp", b"avis\0\0\0\0avisavifmsf1"),
            bmff(
                b"moov",
                &bmff(
                    b"trak",
                    &[bmff(b"mdia", &bmff(b"minf", &stbl)), tkhd(0, 1000, 1000)].concat(),
                ),
            ),
        ]
        .concat();
        assert_eq!(followed(&late).0, Declared::Animation(1000, 1000, 2000));
        // A sample count outside a track's sample table is none.
        let stray = [
            bmff(b"ftyp", b"avis\0\0\0\0avisavifmsf1"),
            bmff(
                b"moov",
                &bmff(
                    b"trak",
                    &[tkhd(0, 1000, 1000), bmff(b"stsz", &stsz)].concat(),
                ),
            ),
        ]
        .concat();
        assert_eq!(followed(&stray).0, Declared::Size(1000, 1000));
    }

    /// No number of bytes inside `meta`, `iprp` or `ipco` before the `ispe` hides it (they are stepped over by
    /// their sizes, never read), where reading `meta` whole up to a bound let 4 MiB of XMP hide a bomb's size.
    #[test]
    fn an_ispe_behind_megabytes_inside_meta_is_found() {
        let mut ispe = vec![0, 0, 0, 0];
        ispe.extend(50_000u32.to_be_bytes());
        ispe.extend(40_000u32.to_be_bytes());
        let ipco = [
            &bmff(b"colr", &vec![7; 2 * SIZE_BYTES])[..],
            &bmff(b"ispe", &ispe),
        ]
        .concat();
        let meta = [
            &[0u8, 0, 0, 0][..],
            &bmff(b"xml ", &vec![b' '; 5 * 1024 * 1024]),
            &bmff(b"iprp", &bmff(b"ipco", &ipco)),
        ]
        .concat();
        let image = [
            bmff(b"ftyp", b"avif\0\0\0\0mif1miaf"),
            bmff(b"meta", &meta),
            bmff(b"mdat", &[0; 8]),
        ]
        .concat();
        let (size, windows) = followed(&image);
        assert_eq!(size, Declared::Size(50_000, 40_000));
        assert!(windows <= 5, "stepped over, not read: {windows} windows");
        // An ispe outside ipco is no item property; nor is a tkhd outside a track.
        let stray = [
            bmff(b"ftyp", b"avif\0\0\0\0mif1miaf"),
            bmff(
                b"meta",
                &[&[0u8, 0, 0, 0][..], &bmff(b"ispe", &ispe)].concat(),
            ),
            tkhd(0, 50_000, 50_000),
        ]
        .concat();
        assert_eq!(followed(&stray).0, Declared::Unknown);
    }

    /// ImageGrid data (ISO/IEC 23008-12 §6.6.2.3): version 0, 2 x 2 tiles, a `width` x `height` canvas in 16-bit
    /// fields, or 32-bit ones when `wide`.
    fn image_grid(width: u32, height: u32, wide: bool) -> Vec<u8> {
        let mut data = vec![0, u8::from(wide), 1, 1];
        if wide {
            data.extend(width.to_be_bytes());
            data.extend(height.to_be_bytes());
        } else {
            data.extend((width as u16).to_be_bytes());
            data.extend((height as u16).to_be_bytes());
        }
        data
    }

    /// An item entry, version 2 (a 16-bit id) or 3 (32-bit), of item `id` typed `kind`.
    fn infe(version: u8, id: u32, kind: &[u8; 4]) -> Vec<u8> {
        let mut contents = vec![version, 0, 0, 0];
        if version == 2 {
            contents.extend((id as u16).to_be_bytes());
        } else {
            contents.extend(id.to_be_bytes());
        }
        contents.extend([0, 0]);
        contents.extend(kind);
        contents.push(0);
        bmff(b"infe", &contents)
    }

    /// An item's location: id, construction method, base offset and (offset, length) extents.
    type Item<'a> = (u32, u8, u64, &'a [(u64, u64)]);

    /// An `iloc` box of the given version and field sizes (offset, length, base offset, index; in bytes).
    fn iloc(version: u8, [offset, length, base, index]: [usize; 4], items: &[Item]) -> Vec<u8> {
        let n = |v: u64, len: usize| v.to_be_bytes()[8 - len..].to_vec();
        let mut contents = vec![version, 0, 0, 0];
        contents.push((offset << 4 | length) as u8);
        contents.push((base << 4 | if version > 0 { index } else { 0 }) as u8);
        contents.extend(n(items.len() as u64, if version < 2 { 2 } else { 4 }));
        for &(id, method, base_offset, extents) in items {
            contents.extend(n(u64::from(id), if version < 2 { 2 } else { 4 }));
            if version > 0 {
                contents.extend([0, method]);
            }
            contents.extend([0, 0]);
            contents.extend(n(base_offset, base));
            contents.extend(n(extents.len() as u64, 2));
            for &(extent_offset, extent_length) in extents {
                if version > 0 {
                    contents.extend(n(1, index));
                }
                contents.extend(n(extent_offset, offset));
                contents.extend(n(extent_length, length));
            }
        }
        bmff(b"iloc", &contents)
    }

    /// An AVIF whose primary item 1 is a grid whose `ispe` says 40 x 30 (its tiles' items left out): `meta` with
    /// `iloc` (made by `iloc`, given where `mdat`'s contents start), `iinf` (the `infe`s given, item 1's first),
    /// `iprp` and, when given, `idat`; then `mdat` holding `mdat`.
    fn grid_avif(
        iloc: impl Fn(u64) -> Vec<u8>,
        infes: &[Vec<u8>],
        idat: Option<&[u8]>,
        mdat: &[u8],
    ) -> Vec<u8> {
        let build = |mdat_at: u64| {
            let mut iinf = vec![0, 0, 0, 0];
            iinf.extend((infes.len() as u16).to_be_bytes());
            iinf.extend(infes.concat());
            let ispe = [&[0u8; 4][..], &40u32.to_be_bytes(), &30u32.to_be_bytes()].concat();
            let meta = [
                &[0u8, 0, 0, 0][..],
                &bmff(b"hdlr", &[0; 24]),
                &bmff(b"pitm", &[0, 0, 0, 0, 0, 1]),
                &iloc(mdat_at),
                &bmff(b"iinf", &iinf),
                &bmff(b"iprp", &bmff(b"ipco", &bmff(b"ispe", &ispe))),
                &idat.map(|idat| bmff(b"idat", idat)).unwrap_or_default(),
            ]
            .concat();
            [
                bmff(b"ftyp", b"avif\0\0\0\0mif1miaf"),
                bmff(b"meta", &meta),
                bmff(b"mdat", mdat),
            ]
            .concat()
        };
        let mdat_at = (build(0).len() - mdat.len()) as u64;
        build(mdat_at)
    }

    #[test]
    fn an_avif_grid_is_sized_by_its_image_grid_data_not_its_ispe() {
        let grid = || vec![infe(2, 1, b"grid")];
        // In `idat` (construction method 1), 16-bit fields: 16,000 x 16,000 px behind an ispe of 40 x 30.
        let data = image_grid(16_000, 16_000, false);
        let in_idat = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &grid(),
            Some(&data),
            &[0; 64],
        );
        assert_eq!(followed(&in_idat).0, Declared::Size(16_000, 16_000));
        // In `mdat` (an offset of the file), 32-bit fields, after 100 bytes of tiles.
        let mut mdat = vec![0; 100];
        mdat.extend(image_grid(50_000, 40_000, true));
        let in_mdat = grid_avif(
            |at| iloc(0, [4, 4, 0, 0], &[(1, 0, 0, &[(at + 100, 12)])]),
            &grid(),
            None,
            &mdat,
        );
        assert_eq!(followed(&in_mdat).0, Declared::Size(50_000, 40_000));
        // Version 2 (32-bit ids and count), 8-byte offsets and lengths, a base offset and 4-byte indexes, the
        // data in three extents (one of no bytes), out of order in `mdat`; the item named by an `infe` version 3.
        let data = image_grid(60_000, 20_000, true);
        let mut mdat = vec![0; 300];
        mdat[200..205].copy_from_slice(&data[..5]);
        mdat[10..17].copy_from_slice(&data[5..]);
        let split = grid_avif(
            |at| {
                let items: &[Item] = &[
                    (7, 0, at, &[(50, 30)]),
                    (70_000, 0, at, &[(200, 5), (0, 0), (10, 7)]),
                ];
                iloc(2, [8, 8, 8, 4], items)
            },
            &[infe(2, 7, b"av01"), infe(3, 70_000, b"grid")],
            None,
            &mdat,
        );
        assert_eq!(followed(&split).0, Declared::Size(60_000, 20_000));
        // Offsets and lengths of no bytes (sizes 0): the data is the base offset's, of no length: none is read.
        let empty = grid_avif(
            |at| iloc(1, [0, 0, 4, 0], &[(1, 0, at, &[(0, 0); 3])]),
            &grid(),
            None,
            &image_grid(50_000, 50_000, false),
        );
        assert_eq!(followed(&empty).0, Declared::Size(40, 30));
        // An honest grid says its ispe; a grid that is not the primary item counts too; so does `iinf` after
        // `iloc` or before it (the walk reads `iloc` again once `meta` ends).
        let honest = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &grid(),
            Some(&image_grid(40, 30, false)),
            &[0; 64],
        );
        assert_eq!(followed(&honest).0, Declared::Size(40, 30));
        let two = [image_grid(40, 30, false), image_grid(30_000, 30_000, false)].concat();
        let second = grid_avif(
            |_| {
                iloc(
                    1,
                    [4, 4, 0, 0],
                    &[(1, 1, 0, &[(0, 8)]), (2, 1, 0, &[(8, 8)])],
                )
            },
            &[infe(2, 1, b"grid"), infe(2, 2, b"grid")],
            Some(&two),
            &[0; 64],
        );
        assert_eq!(followed(&second).0, Declared::Size(30_000, 30_000));
    }

    #[test]
    fn an_avif_grid_data_anywhere_in_the_file_is_read_with_few_reads() {
        let grid = vec![infe(2, 1, b"grid")];
        // Past the first window, in `mdat` after `meta`: the walk reads `iloc` again, then the data, then goes on
        // after `meta` (1 window without a grid: the first; none at the image's end after `mdat`).
        let mut mdat = vec![0; 3 * SIZE_BYTES];
        mdat.extend(image_grid(50_000, 50_000, false));
        let far = grid_avif(
            |at| {
                iloc(
                    0,
                    [4, 4, 0, 0],
                    &[(1, 0, 0, &[(at + 3 * SIZE_BYTES as u64, 8)])],
                )
            },
            &grid,
            None,
            &mdat,
        );
        let (size, windows) = followed(&far);
        assert_eq!(size, Declared::Size(50_000, 50_000));
        assert_eq!(windows, 4);
        // In an `mdat` before `meta` (a read back).
        let data = image_grid(50_000, 50_000, false);
        let image = grid_avif(
            |_| iloc(0, [4, 4, 0, 0], &[(1, 0, 0, &[(32, 8)])]),
            &grid,
            None,
            &[],
        );
        let before = [&image[..24], &bmff(b"mdat", &data), &image[24..]].concat();
        assert_eq!(followed(&before).0, Declared::Size(50_000, 50_000));
        // Eight grids, each in 12 extents of a byte, each a window apart: a read per extent, no more.
        let mut mdat = vec![0; 8 * 12 * SIZE_BYTES + 12];
        let ids: Vec<u32> = (1..=8).collect();
        let extents: Vec<Vec<(u64, u64)>> = (0..8u64)
            .map(|g| {
                (0..12u64)
                    .map(|b| ((g * 12 + b) * SIZE_BYTES as u64, 1))
                    .collect()
            })
            .collect();
        for g in 0..8 {
            let data = image_grid(1_000 * (g as u32 + 1), 20_000, true);
            for b in 0..12 {
                mdat[(g * 12 + b) * SIZE_BYTES] = data[b];
            }
        }
        let scattered = grid_avif(
            |at| {
                let shifted: Vec<Vec<(u64, u64)>> = extents
                    .iter()
                    .map(|e| e.iter().map(|&(o, l)| (o + at, l)).collect())
                    .collect();
                let items: Vec<Item> = ids
                    .iter()
                    .zip(&shifted)
                    .map(|(&id, e)| (id, 0, 0, &e[..]))
                    .collect();
                iloc(1, [8, 4, 0, 0], &items)
            },
            &ids.iter()
                .map(|&id| infe(2, id, b"grid"))
                .collect::<Vec<_>>(),
            None,
            &mdat,
        );
        let (size, windows) = followed(&scattered);
        assert_eq!(size, Declared::Size(8_000, 20_000));
        assert!(windows <= 8 * 12 + 4, "{windows} windows");
        // A grid in each of many `meta` boxes: the first one's is read (the one libavif reads).
        let one = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &grid,
            Some(&image_grid(40, 30, false)),
            &[],
        );
        let meta = &one[24..one.len() - 8];
        let many = [&one[..24], &meta.repeat(3 * SIZE_BYTES / meta.len())].concat();
        let (size, windows) = followed(&many);
        assert_eq!(size, Declared::Size(40, 30));
        assert!(windows <= 8, "{windows} windows");
        // A ninth grid: not all read, refused.
        let nine: Vec<Vec<u8>> = (1..=9).map(|id| infe(2, id, b"grid")).collect();
        let too_many = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &nine,
            Some(&image_grid(40, 30, false)),
            &[],
        );
        assert_eq!(followed(&too_many).0, Declared::TooManyGrids);
    }

    /// Where each window [`followed`] would ask for starts, past the first.
    fn reads_of(image: &[u8]) -> Vec<u64> {
        let window = |at: u64, len: usize| {
            let from = (at as usize).min(image.len());
            &image[from..(from + len).min(image.len())]
        };
        let mut size = declared(window(0, SIZE_BYTES), image.len() as u64);
        let mut reads = Vec::new();
        while let Declared::Boxes(walk) = size {
            reads.push(walk.at);
            size = isobmff_boxes(window(walk.at, SIZE_BYTES), *walk, image.len() as u64);
        }
        reads
    }

    #[test]
    fn an_avif_grid_walk_never_reads_at_or_past_the_end_of_the_image() {
        let grid = || vec![infe(2, 1, b"grid")];
        // `meta` (its grid data in `idat`) is the image's last box: once the grid is read, nothing follows.
        let with_mdat = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &grid(),
            Some(&image_grid(16_000, 16_000, false)),
            &[],
        );
        let meta_last = &with_mdat[..with_mdat.len() - 8];
        assert!(meta_last.len() < SIZE_BYTES);
        assert_eq!(followed(meta_last).0, Declared::Size(16_000, 16_000));
        let reads = reads_of(meta_last);
        assert!(
            reads.iter().all(|&at| at < meta_last.len() as u64),
            "reads at {reads:?} of {} bytes",
            meta_last.len()
        );
        // A grid whose data `iloc` places past the end of the image: no decoder reads it, nor does the walk.
        let past = grid_avif(
            |at| iloc(0, [4, 4, 0, 0], &[(1, 0, 0, &[(at + 1_000, 8)])]),
            &grid(),
            None,
            &[0; 16],
        );
        assert_eq!(followed(&past).0, Declared::Size(40, 30));
        let reads = reads_of(&past);
        assert!(
            reads.iter().all(|&at| at < past.len() as u64),
            "reads at {reads:?} of {} bytes",
            past.len()
        );
    }

    #[test]
    fn no_avif_walk_reads_at_or_past_the_end_of_the_image() {
        let never_past = |image: &[u8], why: &str| {
            let reads = reads_of(image);
            assert!(
                reads.iter().all(|&at| at < image.len() as u64),
                "{why}: reads at {reads:?} of {} bytes",
                image.len()
            );
        };
        // A grid's `iloc` of no entries, the last box of `meta`, itself the image's last: its contents start at
        // the image's end, so there is nothing to re-read.
        let mut iinf = vec![0, 0, 0, 0, 0, 1];
        iinf.extend(infe(2, 1, b"grid"));
        let ispe = [&[0u8; 4][..], &40u32.to_be_bytes(), &30u32.to_be_bytes()].concat();
        let meta = [
            &[0u8, 0, 0, 0][..],
            &bmff(b"iinf", &iinf),
            &bmff(b"iprp", &bmff(b"ipco", &bmff(b"ispe", &ispe))),
            &bmff(b"iloc", &[]),
        ]
        .concat();
        let empty_iloc_last =
            [bmff(b"ftyp", b"avif\0\0\0\0mif1miaf"), bmff(b"meta", &meta)].concat();
        assert_eq!(followed(&empty_iloc_last).0, Declared::Size(40, 30));
        never_past(&empty_iloc_last, "an empty iloc last");
        // A box that claims to run far past the end of an image longer than the first window: nothing follows it.
        let mut free = bmff(b"free", &vec![0; SIZE_BYTES]);
        free[..4].copy_from_slice(&0x0100_0000u32.to_be_bytes());
        let claims_past = [avif(&[(400, 300)]), free].concat();
        assert_eq!(followed(&claims_past).0, Declared::Size(400, 300));
        never_past(&claims_past, "a box claiming past the end");
    }

    #[test]
    fn a_hostile_avif_grid_location_ends_the_walk_with_what_it_found() {
        let grid = || vec![infe(2, 1, b"grid")];
        let data = image_grid(50_000, 50_000, false);
        let with = |iloc_box: Vec<u8>, idat: Option<&[u8]>| {
            followed(&grid_avif(|_| iloc_box.clone(), &grid(), idat, &data)).0
        };
        let ispe = Declared::Size(40, 30);
        for (iloc_box, idat, why) in [
            (
                iloc(3, [4, 4, 0, 0], &[(1, 0, 0, &[(0, 8)])]),
                None,
                "iloc version 3",
            ),
            (
                iloc(1, [2, 4, 0, 0], &[(1, 0, 0, &[(0, 8)])]),
                None,
                "a 2-byte offset",
            ),
            (
                iloc(1, [4, 4, 0, 0], &[(1, 2, 0, &[(0, 8)])]),
                None,
                "construction method 2",
            ),
            (
                iloc(1, [4, 4, 0, 0], &[(1, 0, 0, &[(1 << 30, 8)])]),
                None,
                "past the image",
            ),
            (
                iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(4, 8)])]),
                Some(&data[..]),
                "past idat",
            ),
            (
                iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
                None,
                "no idat",
            ),
            (
                iloc(1, [4, 4, 8, 0], &[(1, 0, u64::MAX, &[(8, 8)])]),
                None,
                "an offset that overflows",
            ),
        ] {
            assert_eq!(with(iloc_box, idat), ispe, "{why}");
        }
        // A grid version other than 0 is not one libavif reads.
        let mut v1 = image_grid(50_000, 50_000, false);
        v1[0] = 1;
        let image = grid_avif(
            |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
            &grid(),
            Some(&v1),
            &[],
        );
        assert_eq!(followed(&image).0, ispe);
        // An iloc claiming 2^32 - 1 items and 65,535 extents of no bytes each, in a few bytes.
        let mut endless = iloc(2, [0, 0, 0, 0], &[(1, 0, 0, &[(0, 0)])]);
        endless[14..18].copy_from_slice(&u32::MAX.to_be_bytes());
        endless[26..28].copy_from_slice(&u16::MAX.to_be_bytes());
        assert_eq!(with(endless, None), ispe);
        // Every cut of a grid in idat and of one in mdat: no panic, an end, and the canvas once all is there.
        for image in [
            grid_avif(
                |_| iloc(1, [4, 4, 0, 0], &[(1, 1, 0, &[(0, 8)])]),
                &grid(),
                Some(&data),
                &[0; 16],
            ),
            grid_avif(
                |at| iloc(1, [4, 4, 0, 0], &[(1, 0, 0, &[(at + 8, 8)])]),
                &grid(),
                None,
                &[[0; 8].as_slice(), &data].concat(),
            ),
        ] {
            for cut in 0..image.len() {
                let (size, windows) = followed(&image[..cut]);
                assert!(windows < 8, "cut at {cut}");
                assert!(
                    matches!(
                        size,
                        Declared::Unknown | Declared::Size(40, 30) | Declared::Size(50_000, 50_000)
                    ),
                    "cut at {cut}: {size:?}"
                );
            }
            assert_eq!(followed(&image).0, Declared::Size(50_000, 50_000));
        }
    }

    #[test]
    fn a_jpeg_frame_header_behind_bytes_that_are_no_segment_is_found() {
        // libjpeg (Chrome's, sharp's) skips bytes between segments that are not a marker, and `FF 00`, with a
        // warning, and decodes the image: a bomb's frame header behind them must still be read.
        let mut image = jpeg(&[(0xE1, 100)], 50_000, 50_000);
        let frame = 2 + 104;
        image.splice(frame..frame, *b"\0\0junk\xFF\0");
        assert_eq!(whole(&image), Declared::Size(50_000, 50_000));
        // Skipped within a window, and followed on from the window's end.
        let (at, window) = (frame + 2, &image[frame + 2..]);
        assert_eq!(
            jpeg_segments(window, at as u64, 0, image.len() as u64),
            Declared::Size(50_000, 50_000)
        );
        // (A window that is not the image's last: a read asks for more than these bytes.)
        assert_eq!(
            jpeg_segments_in(&image[..frame + 4], 0, 2, false),
            Declared::ReadOn(frame as u64 + 4)
        );
    }

    #[test]
    fn a_jpeg_frame_header_past_the_bytes_read_is_followed_in_further_windows() {
        // A bomb behind three APP segments, 195 KB: past the first read, which a fixed look would have let through.
        let image = jpeg(
            &[(0xE1, 65_000), (0xE2, 65_000), (0xE2, 65_000)],
            50_000,
            50_000,
        );
        let frame = 2 + 3 * 65_004;
        assert_eq!(
            declared(&image[..SIZE_BYTES], image.len() as u64),
            Declared::ReadOn(frame as u64)
        );
        assert_eq!(
            jpeg_segments(&image[frame..], frame as u64, 0, image.len() as u64),
            Declared::Size(50_000, 50_000)
        );
        // A window that ends inside a segment's header goes on from that header (when it is not the image's last).
        assert_eq!(
            jpeg_segments_in(&image[2..65_007], 2, 0, false),
            Declared::ReadOn(65_006)
        );
        assert_eq!(
            jpeg_segments(&image[2..65_007], 2, 0, 65_007),
            Declared::Unknown,
            "the image's last window"
        );
        // An image that ends where its next segment should start says nothing: no endless re-reading.
        assert_eq!(
            jpeg_segments(&image[frame..frame + 3], frame as u64, 0, frame as u64 + 3),
            Declared::Unknown
        );
        assert_eq!(jpeg_segments(&[], 10, 0, 10), Declared::Unknown);
    }

    /// A GIF: a `screen_w` x `screen_h` logical screen with a 2-colour table, extensions with sub-blocks of the
    /// given lengths, then a frame at (left, top) of width x height.
    fn gif_framing(
        screen_w: u16,
        screen_h: u16,
        extensions: &[&[u8]],
        (left, top, width, height): (u16, u16, u16, u16),
    ) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend(screen_w.to_le_bytes());
        gif.extend(screen_h.to_le_bytes());
        gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
        for sub_blocks in extensions {
            gif.extend([0x21, 0xFE]);
            for &length in *sub_blocks {
                gif.push(length);
                gif.extend(std::iter::repeat_n(b'x', usize::from(length)));
            }
            gif.push(0);
        }
        gif.push(0x2C);
        for v in [left, top, width, height] {
            gif.extend(v.to_le_bytes());
        }
        gif.extend([0, 2, 2, 0x4c, 0x01, 0, 0x3b]);
        gif
    }

    #[test]
    fn a_gif_frame_larger_than_its_screen_counts() {
        // A 1 x 1 screen framing 50,000 x 50,000 px: Chrome's decoder grows the screen to the first frame.
        let bomb = gif_framing(1, 1, &[&[255, 255, 10]], (0, 0, 50_000, 50_000));
        assert_eq!(whole(&bomb), Declared::Size(50_000, 50_000));
        let offset = gif_framing(100, 100, &[], (60_000, 10, 5_000, 10));
        assert_eq!(whole(&offset), Declared::Size(65_000, 100));
        // Behind comment blocks past the first read, followed in further windows.
        let padded = gif_framing(1, 1, &[&[255; 600]], (0, 0, 50_000, 50_000));
        let mut size = declared(&padded[..SIZE_BYTES], padded.len() as u64);
        let mut windows = 0;
        while let Declared::GifFrom(walk) = size {
            let from = walk.at as usize;
            let end = (from + SIZE_BYTES).min(padded.len());
            size = gif_blocks(&padded[from.min(end)..end], walk, padded.len() as u64);
            windows += 1;
        }
        assert_eq!(size, Declared::Size(50_000, 50_000));
        assert!(windows >= 1);
        // A GIF that ends before any frame is its screen; one cut inside its blocks too.
        let frameless = &gif_framing(300, 200, &[], (0, 0, 1, 1))[..19];
        assert_eq!(whole(frameless), Declared::Size(300, 200));
        let walk = GifWalk {
            at: 19,
            in_sub_blocks: true,
            screen: (3, 2),
            frames: 0,
        };
        assert_eq!(gif_blocks(&[], walk, 19), Declared::Size(3, 2));
    }

    /// `image` followed as the handler follows it: window by window of [`SIZE_BYTES`] from where each walk says,
    /// with the number of windows read.
    fn walked(image: &[u8]) -> (Declared, usize) {
        let image = &ihdr_sealed(image)[..];
        let window = |at: u64| {
            let from = (at as usize).min(image.len());
            &image[from..(from + SIZE_BYTES).min(image.len())]
        };
        let len = image.len() as u64;
        let mut size = declared(window(0), len);
        let mut windows = 1;
        loop {
            size = match size {
                Declared::GifFrom(walk) => gif_blocks(window(walk.at), walk, len),
                Declared::Chunks(walk) => chunks(window(walk.at), walk, len),
                Declared::ReadOn(at) => jpeg_segments(window(at), at, 0, len),
                done => return (done, windows),
            };
            windows += 1;
        }
    }

    /// Where each window [`walked`] would ask for starts, past the first.
    fn walked_reads(image: &[u8]) -> Vec<u64> {
        let image = &ihdr_sealed(image)[..];
        let window = |at: u64| {
            let from = (at as usize).min(image.len());
            &image[from..(from + SIZE_BYTES).min(image.len())]
        };
        let len = image.len() as u64;
        let mut size = declared(window(0), len);
        let mut reads = Vec::new();
        loop {
            size = match size {
                Declared::GifFrom(walk) => {
                    reads.push(walk.at);
                    gif_blocks(window(walk.at), walk, len)
                }
                Declared::Chunks(walk) => {
                    reads.push(walk.at);
                    chunks(window(walk.at), walk, len)
                }
                Declared::ReadOn(at) => {
                    reads.push(at);
                    jpeg_segments(window(at), at, 0, len)
                }
                _ => return reads,
            };
        }
    }

    #[test]
    fn a_chunk_or_segment_claiming_to_run_past_the_end_costs_no_read_there() {
        // A PNG text chunk of 2^31 - 1 bytes (the most a length may say) in an image longer than a window: the
        // walk is at the image's end, and says what it says there, without an empty read.
        let mut png = png_then(&[(b"tEXt", SIZE_BYTES), (b"IDAT", 100)]);
        let text_at = png.len() - SIZE_BYTES - 24 - 100;
        assert_eq!(&png[text_at + 4..text_at + 8], b"tEXt");
        png[text_at..text_at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_be_bytes());
        assert_eq!(
            walked(&png).0,
            Declared::NoPixels,
            "it ends before its IDAT"
        );
        let reads = walked_reads(&png);
        assert!(
            reads.iter().all(|&at| at < png.len() as u64),
            "PNG reads at {reads:?} of {}",
            png.len()
        );
        // A JPEG whose last APP1 starts near the end of the first window and claims 64 KiB, in an image only a
        // few bytes longer than the window: no frame header.
        let mut jpeg = vec![0xFF, 0xD8];
        let app1 = |jpeg: &mut Vec<u8>, total: usize| {
            jpeg.extend([0xFF, 0xE1]);
            jpeg.extend(((total - 2) as u16).to_be_bytes());
            jpeg.extend(vec![0; total - 4]);
        };
        app1(&mut jpeg, 0xFFFF + 2);
        let rest = SIZE_BYTES - 100 - jpeg.len();
        app1(&mut jpeg, rest);
        jpeg.extend([0xFF, 0xE1, 0xFF, 0xFF]);
        jpeg.resize(SIZE_BYTES + 10, 0);
        assert_eq!(walked(&jpeg).0, Declared::Unknown);
        let reads = walked_reads(&jpeg);
        assert!(
            reads.iter().all(|&at| at < jpeg.len() as u64),
            "JPEG reads at {reads:?} of {}",
            jpeg.len()
        );
    }

    /// A GIF: a `width` x `height` screen with a 2-colour table, then `frames` frames filling it, each behind a
    /// graphic control extension, with a local colour table and `data` bytes of image data in 255-byte sub-blocks.
    fn animated_gif(width: u16, height: u16, frames: usize, data: usize) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend(width.to_le_bytes());
        gif.extend(height.to_le_bytes());
        gif.extend([0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
        gif.extend([0x21, 0xFF, 11]);
        gif.extend(b"NETSCAPE2.0");
        gif.extend([3, 1, 0, 0, 0]);
        for _ in 0..frames {
            gif.extend([0x21, 0xF9, 4, 0, 10, 0, 0, 0]);
            gif.push(0x2C);
            for v in [0, 0, width, height] {
                gif.extend(v.to_le_bytes());
            }
            gif.extend([0x80, 0, 0, 0, 255, 255, 255, 2]);
            let mut left = data;
            while left > 0 {
                let length = left.min(255);
                gif.push(length as u8);
                gif.extend(std::iter::repeat_n(0x4c, length));
                left -= length;
            }
            gif.push(0);
        }
        gif.push(0x3B);
        gif
    }

    #[test]
    fn every_frame_of_an_animated_gif_counts() {
        assert_eq!(
            walked(&animated_gif(400, 300, 1, 600)).0,
            Declared::Size(400, 300),
            "one frame: a still image"
        );
        assert_eq!(
            walked(&animated_gif(400, 300, 10, 600)).0,
            Declared::Animation(400, 300, 10)
        );
        // Each frame 0.12 megapixels, 1,000 of them: 120 megapixels to decode, in a few hundred kilobytes. The walk
        // stops at the frame that passes 100 megapixels, following the image data over several windows.
        let many = animated_gif(400, 300, 1_000, 300);
        assert!(many.len() > 2 * SIZE_BYTES);
        let (size, windows) = walked(&many);
        assert_eq!(size, Declared::Animation(400, 300, 834));
        assert!(over_budget((400, 300), 834) && !over_budget((400, 300), 833));
        assert!(windows >= 2, "followed past the first window");
        // Cut inside a frame's data: the frames seen so far.
        let cut = &animated_gif(400, 300, 3, 600)[..1_000];
        assert_eq!(walked(cut).0, Declared::Animation(400, 300, 2));
    }

    /// A PNG of `width` x `height` with an `acTL` (when `animated`) and `frames` frames (`fcTL`, then `IDAT` or
    /// `fdAT` of `data` bytes each), then `IEND`. CRCs are left zero: nothing here reads them.
    fn apng(width: u32, height: u32, animated: bool, frames: usize, data: usize) -> Vec<u8> {
        let chunk = |kind: &[u8; 4], body: &[u8]| {
            let mut c = (body.len() as u32).to_be_bytes().to_vec();
            c.extend(kind);
            c.extend(body);
            c.extend([0; 4]);
            c
        };
        let mut image = png(width, height);
        image.extend([0; 4]);
        if animated {
            image.extend(chunk(b"acTL", &[0, 0, 0, 1, 0, 0, 0, 0]));
        }
        for frame in 0..frames {
            if animated {
                image.extend(chunk(b"fcTL", &[0; 26]));
            }
            let kind = if frame == 0 { b"IDAT" } else { b"fdAT" };
            image.extend(chunk(kind, &vec![0; data]));
        }
        image.extend(chunk(b"IEND", &[]));
        image
    }

    #[test]
    fn every_frame_of_an_animated_png_counts() {
        assert_eq!(
            walked(&apng(1000, 1000, false, 1, 300_000)),
            (Declared::Size(1000, 1000), 1),
            "a still PNG: its size, from the first window"
        );
        assert_eq!(
            walked(&apng(1000, 1000, true, 20, 100)).0,
            Declared::Animation(1000, 1000, 20)
        );
        // acTL says 1 frame; its fcTL chunks, which a decoder shows, say 200: counted, past the first window.
        let (size, windows) = walked(&apng(1000, 1000, true, 200, 2_000));
        assert_eq!(size, Declared::Animation(1000, 1000, 101));
        assert!(windows >= 2);
    }

    /// A PNG of 40 x 30 whose `IHDR` is followed by `after` (type, data length), each a chunk of zeros.
    fn png_then(after: &[(&[u8; 4], usize)]) -> Vec<u8> {
        let mut image = png(40, 30);
        image.extend([0; 4]);
        for (kind, length) in after {
            image.extend((*length as u32).to_be_bytes());
            let mut typed = kind.to_vec();
            typed.extend(vec![0; *length]);
            let crc = crate::gateway::inflate::crc32(&typed);
            image.extend(typed);
            image.extend(crc.to_be_bytes());
        }
        image
    }

    #[test]
    fn an_apple_png_with_cgbi_before_its_ihdr_is_the_unknown_critical_chunk_it_is_after_it() {
        let mut apple = b"\x89PNG\r\n\x1a\n".to_vec();
        apple.extend_from_slice(&[0, 0, 0, 4]);
        apple.extend_from_slice(b"CgBI");
        apple.extend_from_slice(&[0x50, 0x00, 0x20, 0x06, 0, 0, 0, 0]);
        let after = png_then(&[(b"IDAT", 100), (b"IEND", 0)]);
        apple.extend_from_slice(&after[8..]);
        let len = apple.len() as u64;
        assert_eq!(declared(&apple, len), Declared::UnknownCritical(*b"CgBI"));
    }

    #[test]
    fn a_png_with_an_unknown_critical_chunk_before_its_pixels_is_refused() {
        // Critical (first letter uppercase) and none of IHDR, PLTE, IDAT, IEND: no decoder shows the image.
        for (what, image, kind) in [
            (
                "Apple's CgBI after IHDR",
                png_then(&[(b"CgBI", 4), (b"IDAT", 100), (b"IEND", 0)]),
                *b"CgBI",
            ),
            (
                "an unknown critical chunk behind ancillary ones",
                png_then(&[
                    (b"gAMA", 4),
                    (b"iCCP", 3_000),
                    (b"XXXX", 10),
                    (b"IDAT", 100),
                ]),
                *b"XXXX",
            ),
            (
                "one past the first window",
                png_then(&[(b"zTXt", SIZE_BYTES), (b"QQQQ", 0), (b"IDAT", 100)]),
                *b"QQQQ",
            ),
            (
                "in an animated PNG, before its first IDAT",
                png_then(&[(b"acTL", 8), (b"fcTL", 26), (b"CgBI", 4), (b"IDAT", 10)]),
                *b"CgBI",
            ),
        ] {
            assert_eq!(walked(&image).0, Declared::UnknownCritical(kind), "{what}");
        }
        // The four known critical chunks, ancillary ones (lowercase first letter, `fdAT`, `acTL`, private `vpAg`),
        // and anything past the first IDAT (not read for a still PNG; pixels were decodable up to there) pass.
        for (what, image, size) in [
            (
                "a plain PNG",
                png_then(&[(b"PLTE", 6), (b"IDAT", 100), (b"IEND", 0)]),
                Declared::Size(40, 30),
            ),
            (
                "ancillary chunks",
                png_then(&[(b"vpAg", 9), (b"eXIf", 20), (b"IDAT", 100), (b"IEND", 0)]),
                Declared::Size(40, 30),
            ),
            (
                "a critical chunk after IDAT",
                png_then(&[(b"IDAT", 100), (b"XXXX", 4), (b"IEND", 0)]),
                Declared::Size(40, 30),
            ),
            (
                "an animated PNG",
                png_then(&[
                    (b"acTL", 8),
                    (b"fcTL", 26),
                    (b"IDAT", 10),
                    (b"fcTL", 26),
                    (b"fdAT", 10),
                ]),
                Declared::Animation(40, 30, 2),
            ),
            (
                "an animated PNG with a critical chunk after its first IDAT",
                png_then(&[
                    (b"acTL", 8),
                    (b"fcTL", 26),
                    (b"IDAT", 10),
                    (b"XXXX", 0),
                    (b"IEND", 0),
                ]),
                Declared::Animation(40, 30, 1),
            ),
        ] {
            assert_eq!(walked(&image).0, size, "{what}");
        }
        assert!(unknown_critical_png_chunk(b"CgBI") && unknown_critical_png_chunk(b"ABCD"));
        for known in [
            b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fdAT", b"cgBI",
        ] {
            assert!(!unknown_critical_png_chunk(known), "{known:?}");
        }
    }

    #[test]
    fn an_image_exactly_one_read_long_costs_no_empty_read() {
        // Each image ends exactly where the first window does, with no terminator the walk stops at: that window is
        // as long as a read asks for, so only the image's length says nothing follows it (an empty window was read).
        let webp = animated_webp(100, 100, 2, 65_506);
        let mut unterminated_apng = apng(100, 100, true, 1, 130_969);
        unterminated_apng.truncate(unterminated_apng.len() - 12); // no IEND
        let jpeg_cut = jpeg(&[(0xE1, 65_000), (0xE2, 65_000), (0xE3, 65_000)], 400, 300)
            [..SIZE_BYTES]
            .to_vec();
        // A GIF without its trailer: its one frame's data runs to the end.
        let base = animated_gif(40, 30, 1, 0).len();
        let mut gif = (SIZE_BYTES - base - 600..SIZE_BYTES - base)
            .map(|data| animated_gif(40, 30, 1, data))
            .find(|gif| gif.len() == SIZE_BYTES + 1)
            .expect("some data length makes the GIF one byte longer than a read");
        gif.pop();
        for (what, image, size) in [
            ("an animated WebP", webp, Declared::Animation(100, 100, 2)),
            (
                "an animated PNG without IEND",
                unterminated_apng,
                Declared::Animation(100, 100, 1),
            ),
            (
                "a JPEG cut before its frame header",
                jpeg_cut,
                Declared::Unknown,
            ),
            ("a GIF without its trailer", gif, Declared::Size(40, 30)),
        ] {
            assert_eq!(image.len(), SIZE_BYTES, "{what}");
            assert_eq!(walked(&image), (size, 1), "{what}");
        }
        let mut avif = avif(&[(400, 300)]);
        let mdat = SIZE_BYTES - (avif.len() - 72) - 8;
        avif.truncate(avif.len() - 72);
        avif.extend(bmff(b"mdat", &vec![0; mdat]));
        assert_eq!(avif.len(), SIZE_BYTES);
        assert_eq!(followed(&avif), (Declared::Size(400, 300), 1), "an AVIF");
    }

    #[test]
    fn a_png_chunk_type_that_is_not_four_letters_before_its_pixels_is_corrupt() {
        // A chunk type is four ASCII letters (PNG specification §5.4); a decoder stops at any other (libpng's
        // "invalid chunk type"), so the image is no image: its header says nothing a browser would show.
        for (what, kind) in [
            ("NULs", b"\0\0\0\0"),
            ("a digit", b"a1bc"),
            ("a space", b"tEX "),
        ] {
            let image = png_then(&[(kind, 4), (b"IDAT", 100), (b"IEND", 0)]);
            assert_eq!(walked(&image).0, Declared::NoPixels, "{what}");
        }
        // Past the first IDAT a still PNG's chunks are not read.
        let after = png_then(&[(b"IDAT", 100), (b"\0\0\0\0", 4)]);
        assert_eq!(walked(&after).0, Declared::Size(40, 30));
        // libpng's png_read_chunk_header refuses a length over 2^31 - 1 as it refuses such a type, and an IEND before
        // any IDAT is "out of place": no pixel either way.
        let mut over_long = png_then(&[(b"tEXt", 4), (b"IDAT", 100), (b"IEND", 0)]);
        let at = png_then(&[]).len();
        over_long[at..at + 4].copy_from_slice(&0x8000_0000u32.to_be_bytes());
        assert_eq!(walked(&over_long).0, Declared::NoPixels, "a length of 2^31");
        let cut = png_then(&[(b"tEXt", 4), (b"IDAT", 100), (b"IEND", 0)]);
        // Cut short before IDAT: after a chunk, inside a chunk's header, or with no chunk after IHDR.
        let idat = cut.windows(4).position(|w| w == b"IDAT").unwrap() - 4;
        for end in [idat, idat + 5, at, at + 3] {
            assert_eq!(walked(&cut[..end]).0, Declared::NoPixels, "cut at {end}");
        }
        assert_eq!(
            walked(&cut[..idat + 8]).0,
            Declared::Size(40, 30),
            "its IDAT's header came"
        );
        let second = png_then(&[(b"IHDR", 13), (b"IDAT", 100)]);
        assert_eq!(walked(&second).0, Declared::NoPixels, "a second IHDR");
        let ended = png_then(&[(b"IEND", 0), (b"IDAT", 100)]);
        assert_eq!(walked(&ended).0, Declared::NoPixels, "IEND before IDAT");
        let animated_ended = png_then(&[(b"acTL", 8), (b"fcTL", 26), (b"IEND", 0)]);
        assert_eq!(
            walked(&animated_ended).0,
            Declared::NoPixels,
            "an APNG's IEND before IDAT"
        );
    }

    #[test]
    fn a_png_chunk_length_past_2_31_is_no_chunk_even_where_more_of_the_image_follows() {
        // In a whole image a length of 2^31 also runs past its end, which is refused as an image that ends before
        // IDAT: only a window with more of the image after it tells the length check from that.
        let mut window = vec![0; SIZE_BYTES];
        window[..8].copy_from_slice(b"\x80\0\0\0tEXt");
        let walk = ChunkWalk {
            at: 33,
            kind: ChunkKind::Png,
            canvas: (40, 30),
            animated: false,
            frames: 0,
            past_idat: false,
            palette: Palette::Settled,
        };
        assert_eq!(chunks(&window, walk, u64::MAX), Declared::NoPixels);
        window[0] = 0x7F;
        assert!(
            matches!(chunks(&window, walk, u64::MAX), Declared::Chunks(next) if next.at == 33 + 0x7F00_0000 + 12),
            "2^31 - 1 and under is a length, stepped over"
        );
    }

    #[test]
    fn a_png_whose_ihdr_no_decoder_accepts_is_unknown() {
        let image = png_then(&[(b"IDAT", 100), (b"IEND", 0)]);
        let with = |at: usize, value: &[u8]| {
            let mut image = image.clone();
            image[at..at + value.len()].copy_from_slice(value);
            image
        };
        for (what, changed) in [
            ("a zero width", with(16, &[0; 4])),
            ("a zero height", with(20, &[0; 4])),
            ("a width of 2^31", with(16, &[0x80, 0, 0, 0])),
            ("bit depth 3", with(24, &[3])),
            ("RGB of bit depth 4", with(24, &[4])),
            ("indexed of bit depth 16", with(24, &[16, 3])),
            ("colour type 5", with(25, &[5])),
            ("compression method 1", with(26, &[1])),
            ("filter method 64 (MNG's)", with(27, &[64])),
            ("interlace method 2", with(28, &[2])),
            ("an IHDR of 14 bytes", with(8, &[0, 0, 0, 14])),
        ] {
            assert_eq!(walked(&changed).0, Declared::Unknown, "{what}");
        }
        for (colour, depths) in [
            (0, [1, 2, 4, 8, 16].as_slice()),
            (2, &[8, 16]),
            (3, &[1, 2, 4, 8]),
            (4, &[8, 16]),
            (6, &[8, 16]),
        ] {
            for &depth in depths {
                let image = with(24, &[depth, colour]);
                let image = with_palette(&image);
                assert_eq!(walked(&image).0, Declared::Size(40, 30), "{colour}/{depth}");
            }
        }
        assert_eq!(walked(&with(28, &[1])).0, Declared::Size(40, 30), "Adam7");
    }

    #[test]
    fn an_indexed_png_with_a_second_palette_before_its_pixels_has_none() {
        // libpng refuses a second PLTE before IDAT in an indexed PNG ("duplicate", a chunk error there), as the png
        // crate does (DuplicateChunk): no browser draws a pixel of it, whatever a resizer makes of it. In another
        // colour type libpng's "duplicate" is benign (1.6.47 on): Firefox draws it.
        for colour in [0, 2, 3, 4, 6] {
            let refused = if colour == 3 {
                Declared::NoPixels
            } else {
                Declared::Size(40, 30)
            };
            let mut two = png_then(&[(b"PLTE", 6), (b"PLTE", 6), (b"IDAT", 100), (b"IEND", 0)]);
            two[25] = colour;
            assert_eq!(walked(&two).0, refused, "colour type {colour}");
            // Apart, behind a large text chunk (the second past the first window).
            let mut apart = png_then(&[
                (b"PLTE", 6),
                (b"iTXt", SIZE_BYTES + 10),
                (b"PLTE", 6),
                (b"IDAT", 100),
            ]);
            apart[25] = colour;
            assert_eq!(walked(&apart).0, refused, "apart, type {colour}");
            let mut one = png_then(&[(b"PLTE", 6), (b"IDAT", 100), (b"PLTE", 6), (b"IEND", 0)]);
            one[25] = colour;
            assert_eq!(
                walked(&one).0,
                Declared::Size(40, 30),
                "one after IDAT: its pixels are drawn before it is read"
            );
        }
    }

    #[test]
    fn an_rgb_png_whose_trns_crc_is_wrong_has_no_pixels_at_an_empty_palette_after_it() {
        // libpng discards an ancillary chunk whose CRC is wrong (a warning, by default; Firefox sets no other CRC
        // action), so it never records that tRNS: the empty PLTE after it is taken, png_set_PLTE's "Invalid
        // palette". Chrome's png crate refuses any empty PLTE. No browser draws it.
        let with = |crc_intact: bool, before: usize| {
            let mut image = png_then(&[
                (b"tEXt", before),
                (b"tRNS", 6),
                (b"PLTE", 0),
                (b"IDAT", 100),
                (b"IEND", 0),
            ]);
            image[25] = 2;
            if !crc_intact {
                // The tRNS's CRC: after the IHDR (33 bytes), the tEXt (12 + before) and the tRNS's 8 + 6.
                image[33 + 12 + before + 14] ^= 1;
            }
            image
        };
        // Within the first window, and straddling its end (the tRNS's CRC in the next window).
        for before in [4, SIZE_BYTES - 33 - 12 - 10] {
            assert_eq!(
                walked(&with(true, before)).0,
                Declared::Size(40, 30),
                "{before}"
            );
            assert_eq!(
                walked(&with(false, before)).0,
                Declared::NoPixels,
                "{before}"
            );
        }
        // Without the empty PLTE, the CRC decides nothing.
        let mut plain = png_then(&[(b"tRNS", 6), (b"IDAT", 100), (b"IEND", 0)]);
        plain[25] = 2;
        plain[33 + 14] ^= 1;
        assert_eq!(walked(&plain).0, Declared::Size(40, 30));
    }

    #[test]
    fn a_png_whose_ihdr_crc_is_wrong_says_no_size() {
        // Chrome's png crate refuses a critical chunk whose CRC is wrong (CrcMismatch), and Firefox's libpng too (its
        // "CRC error" is a chunk error for one): no browser reads the size, as for an IHDR no decoder accepts.
        let image = ihdr_sealed(&png_then(&[(b"IDAT", 100), (b"IEND", 0)]));
        let read = |image: &[u8]| declared(image, image.len() as u64);
        assert_eq!(read(&image), Declared::Size(40, 30), "intact");
        // A changed width or height byte, or a changed CRC byte.
        for at in [19, 23, 29, 32] {
            let mut wrong = image.clone();
            wrong[at] ^= 1;
            assert_eq!(read(&wrong), Declared::Unknown, "byte {at} changed");
        }
        // Cut inside the CRC: cut short before its pixels, whatever the CRC would have said.
        assert_eq!(read(&image[..31]), Declared::NoPixels);
    }

    #[test]
    fn an_indexed_png_whose_palette_crc_is_wrong_has_no_pixels_while_other_colour_types_are_drawn()
    {
        // A PLTE's CRC error stops libpng in an indexed PNG (critical there) and the png crate in any: no browser
        // draws it. In a truecolour or greyscale PNG libpng handles it as ancillary (a warning; a truecolour one's
        // entries still taken), so Firefox draws it, though Chromium does not.
        let with = |colour: u8, before: usize, crc_intact: bool| {
            let mut image = png_then(&[
                (b"tEXt", before),
                (b"PLTE", 6),
                (b"IDAT", 100),
                (b"IEND", 0),
            ]);
            image[25] = colour;
            if !crc_intact {
                // The PLTE's CRC: after the IHDR (33 bytes), the tEXt (12 + before) and the PLTE's 8 + 6.
                image[33 + 12 + before + 14] ^= 1;
            }
            image
        };
        // Within the first window, and straddling its end (the PLTE's data and CRC in the next window).
        for before in [4, SIZE_BYTES - 33 - 12 - 10] {
            assert_eq!(walked(&with(3, before, true)).0, Declared::Size(40, 30));
            assert_eq!(
                walked(&with(3, before, false)).0,
                Declared::NoPixels,
                "{before}"
            );
            for colour in [0, 2, 4, 6] {
                assert_eq!(
                    walked(&with(colour, before, false)).0,
                    Declared::Size(40, 30),
                    "colour type {colour}, {before}"
                );
            }
        }
        // A truecolour PNG's PLTE whose CRC is wrong is still the palette libpng takes: an empty one after it is a
        // benign "duplicate".
        let mut taken = png_then(&[(b"PLTE", 6), (b"PLTE", 0), (b"IDAT", 100), (b"IEND", 0)]);
        taken[25] = 2;
        taken[33 + 14] ^= 1;
        assert_eq!(walked(&taken).0, Declared::Size(40, 30));
    }

    #[test]
    fn a_truecolour_png_whose_first_palette_taken_has_no_entry_has_no_pixels() {
        // A truecolour PNG's PLTE is a suggestion, but libpng takes the first of a valid length, and png_set_PLTE
        // stops at one of no entry ("Invalid palette", whatever the colour type); the png crate refuses it too
        // (ChunkLengthWrong). Where libpng skips it first — after a PLTE it took ("duplicate"), after a tRNS it took
        // ("out of place") — or ignores it (a greyscale PNG), it only warns: Firefox draws the image.
        let with = |colour: u8, after: &[(&[u8; 4], usize)]| {
            let mut image = png_then(after);
            image[25] = colour;
            image
        };
        let empty: (&[u8; 4], usize) = (b"PLTE", 0);
        let pixels: (&[u8; 4], usize) = (b"IDAT", 100);
        for (colour, after) in [
            (2, vec![empty, pixels]),
            (6, vec![empty, pixels]),
            (2, vec![(b"PLTE", 5), empty, pixels]),
            (2, vec![(b"PLTE", 771), empty, pixels]),
            (2, vec![(b"tEXt", 4), empty, pixels]),
            // tRNS is invalid with an alpha channel (skipped), and of another length than RGB's 6 bytes.
            (6, vec![(b"tRNS", 6), empty, pixels]),
            (2, vec![(b"tRNS", 2), empty, pixels]),
            (2, vec![(b"iTXt", SIZE_BYTES + 10), empty, pixels]),
            // Firefox's libpng reads no bKGD (its pnglibconf.h leaves PNG_READ_bKGD_SUPPORTED out: the chunk is
            // discarded as unknown, never recorded), so a bKGD does not make a later PLTE "out of place" there.
            (6, vec![(b"bKGD", 6), empty, pixels]),
            (2, vec![(b"bKGD", 6), empty, pixels]),
        ] {
            assert_eq!(
                walked(&with(colour, &after)).0,
                Declared::NoPixels,
                "{colour}: {after:?}"
            );
        }
        for (colour, after) in [
            (2, vec![(b"PLTE", 6), empty, pixels]),
            (6, vec![(b"tRNS", 0), (b"PLTE", 3), empty, pixels]),
            (2, vec![(b"tRNS", 6), empty, pixels]),
            (2, vec![(b"bKGD", 6), (b"tRNS", 6), empty, pixels]),
            (2, vec![pixels, empty, (b"IEND", 0)]),
            (0, vec![empty, pixels]),
            (4, vec![empty, empty, pixels]),
        ] {
            assert_eq!(
                walked(&with(colour, &after)).0,
                Declared::Size(40, 30),
                "{colour}: {after:?}"
            );
        }
    }

    #[test]
    fn an_indexed_png_whose_palette_has_an_invalid_length_has_no_pixels() {
        // libpng's png_handle_PLTE: a length past 768 or not a multiple of 3 is "invalid", a chunk error in an
        // indexed PNG, and no entry at all is png_set_PLTE's "Invalid palette"; the png crate (Skia's Rust codec)
        // takes only 3..=768 bytes in a multiple of 3 (ChunkLengthWrong). No browser draws a pixel of it.
        let with_plte = |colour: u8, depth: u8, length: usize| {
            let mut image = png_then(&[(b"PLTE", length), (b"IDAT", 100), (b"IEND", 0)]);
            image[24] = depth;
            image[25] = colour;
            image
        };
        for length in [0, 1, 2, 5, 767, 771, 3 * 300] {
            let image = with_plte(3, 8, length);
            assert_eq!(walked(&image).0, Declared::NoPixels, "{length} bytes");
        }
        // Past the first window (behind a large text chunk) too.
        let mut far = png_then(&[(b"iTXt", SIZE_BYTES + 10), (b"PLTE", 5), (b"IDAT", 100)]);
        far[25] = 3;
        assert_eq!(walked(&far), (Declared::NoPixels, 2));
        // More entries than the bit depth indexes: libpng keeps the first 2^depth, the png crate all — drawn.
        for (depth, length) in [(1, 9), (2, 15), (4, 51), (8, 768), (8, 3)] {
            let image = with_plte(3, depth, length);
            assert_eq!(
                walked(&image).0,
                Declared::Size(40, 30),
                "depth {depth}, {length} bytes"
            );
        }
        // A palette that is only a suggestion (truecolour) or ignored (greyscale): libpng's "invalid" or "ignored in
        // grayscale PNG" is a benign error there, a warning in browsers, so Firefox draws the image.
        for colour in [0, 2, 4, 6] {
            for length in [1, 5, 771] {
                let image = with_plte(colour, 8, length);
                assert_eq!(
                    walked(&image).0,
                    Declared::Size(40, 30),
                    "colour type {colour}, {length} bytes"
                );
            }
        }
    }

    /// `image` with a PLTE before its chunks after IHDR, so an indexed one is whole.
    fn with_palette(image: &[u8]) -> Vec<u8> {
        let at = png_then(&[]).len();
        let mut out = image[..at].to_vec();
        out.extend([0, 0, 0, 3]);
        out.extend(b"PLTE\0\0\0");
        out.extend(crate::gateway::inflate::crc32(b"PLTE\0\0\0").to_be_bytes());
        out.extend(&image[at..]);
        out
    }

    #[test]
    fn an_indexed_png_without_its_palette_before_its_pixels_is_unknown() {
        // IHDR's colour type 3 (indexed): libpng's "Missing PLTE before IDAT" stops it before any pixel.
        let indexed = |after: &[(&[u8; 4], usize)]| {
            let mut image = png_then(after);
            image[25] = 3;
            image
        };
        let no_palette = indexed(&[(b"tEXt", 4), (b"IDAT", 100), (b"IEND", 0)]);
        assert_eq!(walked(&no_palette).0, Declared::NoPixels, "no PLTE");
        let apng = indexed(&[(b"acTL", 8), (b"fcTL", 26), (b"IDAT", 100), (b"IEND", 0)]);
        assert_eq!(walked(&apng).0, Declared::NoPixels, "an APNG with no PLTE");
        let with_palette = indexed(&[(b"PLTE", 6), (b"tRNS", 1), (b"IDAT", 100), (b"IEND", 0)]);
        assert_eq!(walked(&with_palette).0, Declared::Size(40, 30));
        // Its PLTE past the first window (behind a large text chunk) is found there.
        let far = indexed(&[(b"iTXt", SIZE_BYTES + 10), (b"PLTE", 6), (b"IDAT", 100)]);
        assert_eq!(walked(&far), (Declared::Size(40, 30), 2));
        // A palette after the first IDAT comes too late; other colour types need none.
        let late = indexed(&[(b"IDAT", 100), (b"PLTE", 6), (b"IEND", 0)]);
        assert_eq!(walked(&late).0, Declared::NoPixels, "PLTE after IDAT");
        for colour in [0, 2, 4, 6] {
            let mut image = png_then(&[(b"IDAT", 100), (b"IEND", 0)]);
            image[25] = colour;
            assert_eq!(
                walked(&image).0,
                Declared::Size(40, 30),
                "colour type {colour}"
            );
        }
    }

    /// An animated WebP: `VP8X` (animation flag) of `width` x `height`, `ANIM`, then `frames` `ANMF` chunks of
    /// `data` bytes each (odd lengths padded).
    fn animated_webp(width: u32, height: u32, frames: usize, data: usize) -> Vec<u8> {
        let chunk = |kind: &[u8; 4], body: &[u8]| {
            let mut c = kind.to_vec();
            c.extend((body.len() as u32).to_le_bytes());
            c.extend(body);
            if body.len() % 2 == 1 {
                c.push(0);
            }
            c
        };
        let mut vp8x = vec![0x02, 0, 0, 0];
        vp8x.extend(&(width - 1).to_le_bytes()[..3]);
        vp8x.extend(&(height - 1).to_le_bytes()[..3]);
        let mut body = b"WEBP".to_vec();
        body.extend(chunk(b"VP8X", &vp8x));
        body.extend(chunk(b"ANIM", &[0; 6]));
        for _ in 0..frames {
            body.extend(chunk(b"ANMF", &vec![0; data]));
        }
        let mut image = b"RIFF".to_vec();
        image.extend((body.len() as u32).to_le_bytes());
        image.extend(body);
        image
    }

    #[test]
    fn every_frame_of_an_animated_webp_counts() {
        assert_eq!(
            walked(&animated_webp(500, 500, 10, 101)).0,
            Declared::Animation(500, 500, 10)
        );
        // About 500 KB of frames, the 101st inside the first window: the walk stops there, reading no more of the
        // image (the frame count alone would not show a walk that read on to the end).
        let (size, windows) = walked(&animated_webp(1000, 1000, 500, 1_001));
        assert_eq!(size, Declared::Animation(1000, 1000, 101));
        assert_eq!(windows, 1, "stops once the frames are over budget");
        let (size, windows) = walked(&animated_webp(100, 100, 20_000, 15));
        assert_eq!(size, Declared::Animation(100, 100, 10_001));
        assert!(windows >= 2, "followed past the first window");
    }

    #[test]
    fn a_walk_that_reaches_the_image_end_in_a_window_reads_no_empty_window_after_it() {
        // Each image fits in the first window: its end is there, and nothing past it is read (an empty window was).
        for (what, image, size) in [
            (
                "a GIF",
                animated_gif(400, 300, 10, 600),
                Declared::Animation(400, 300, 10),
            ),
            (
                "an animated PNG",
                apng(100, 100, true, 5, 100),
                Declared::Animation(100, 100, 5),
            ),
            (
                "an animated WebP",
                animated_webp(500, 500, 10, 101),
                Declared::Animation(500, 500, 10),
            ),
            // Cut inside a frame's data, which claims bytes past the end.
            (
                "a cut GIF",
                animated_gif(400, 300, 3, 600)[..1_000].to_vec(),
                Declared::Animation(400, 300, 2),
            ),
        ] {
            assert_eq!(walked(&image), (size, 1), "{what}");
        }
        // Past the first window, the last one read ends the walk too: no window starts at the image's end.
        let many = animated_gif(40, 30, 300, 600);
        assert!(many.len() > SIZE_BYTES && many.len() < 2 * SIZE_BYTES);
        assert_eq!(walked(&many), (Declared::Animation(40, 30, 300), 2));
        let webp = animated_webp(100, 100, 200, 1_001);
        assert!(webp.len() > SIZE_BYTES && webp.len() < 2 * SIZE_BYTES);
        assert_eq!(walked(&webp), (Declared::Animation(100, 100, 200), 2));
    }

    #[test]
    fn a_cut_jpeg_walk_reads_no_empty_window_past_the_image_end() {
        // A JPEG cut before its frame header: an APP segment that claims bytes past the end, or a segment header
        // cut in two, in the one window that holds the whole file. Nothing follows it, so nothing more is read.
        let whole = jpeg(&[(0xE1, 100), (0xE2, 5_000)], 400, 300);
        for (what, cut) in [
            ("inside an APP segment's data", 2 + 104 + 1_000),
            ("inside a segment's header", 2 + 104 + 1),
            ("inside the frame header, before its size", whole.len() - 15),
        ] {
            assert_eq!(walked(&whole[..cut]), (Declared::Unknown, 1), "{what}");
        }
        // Longer than a window: its third APP segment, in the first window, claims to run past the end (this
        // counted a second window once, read empty at 195,014 of 132,072 bytes).
        let long = jpeg(&[(0xE1, 65_000), (0xE2, 65_000), (0xE3, 65_000)], 400, 300);
        assert_eq!(walked(&long[..SIZE_BYTES + 1_000]), (Declared::Unknown, 1));
        assert_eq!(walked(&long), (Declared::Size(400, 300), 2));
    }
}
