// Images (src/images): real resizing through Miniflare's sharp-backed Images binding, sources served by a real local
// origin, outputs decoded with sharp. Covers the three URL forms and every fit, Accept negotiation, traversal/SSRF
// refusal without an origin request, signed URLs, Cache API hits shared between URL forms, and source failures.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";
import { startOrigin } from "./support/origin.mjs";
import { startWorker, until } from "./support/worker.mjs";

const SECRET = "images-test-secret-0123456789abcdef";
const MAX_SOURCE = 200_000;
let origin, worker, signed, fixtures, streamed;

const solid = (width, height, channels = 3) =>
  sharp({ create: { width, height, channels, background: { r: 200, g: 80, b: 40, alpha: 1 } } });

const translucent = (width, height) =>
  sharp({ create: { width, height, channels: 4, background: { r: 20, g: 80, b: 200, alpha: 0.5 } } });

// One PNG chunk: its length, type, data and CRC-32.
const chunk = (type, data) => {
  const typed = Buffer.concat([Buffer.from(type, "latin1"), data]);
  const framed = Buffer.alloc(8 + typed.length);
  framed.writeUInt32BE(data.length, 0);
  typed.copy(framed, 4);
  framed.writeUInt32BE(crc32(typed) >>> 0, 4 + typed.length);
  return framed;
};

// A 40×30 8-bit PNG of IHDR colour type `colour` (`channels` samples a pixel) with `chunks` between its IHDR and its
// one IDAT.
const pngOf = (colour, channels, ...chunks) => {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(40, 0);
  header.writeUInt32BE(30, 4);
  header[8] = 8;
  header[9] = colour;
  const pixels = chunk("IDAT", deflateSync(Buffer.alloc(30 * (1 + channels * 40))));
  const signature = Buffer.from("\x89PNG\r\n\x1a\n", "latin1");
  return Buffer.concat([signature, chunk("IHDR", header), ...chunks, pixels, chunk("IEND", Buffer.alloc(0))]);
};

// A chunk from `chunk` with its CRC's last bit flipped: its CRC is not its data's.
const badCrc = (framed) => {
  const copy = Buffer.from(framed);
  copy[copy.length - 1] ^= 1;
  return copy;
};

// An indexed-colour one, and a two-colour palette to put there.
const palette = chunk("PLTE", Buffer.from([200, 80, 40, 20, 80, 200]));
const indexedPng = (...chunks) => pngOf(3, 1, ...chunks);

// Serves PNG `body` as `/photos/<name>.png` and asks `w` (a `failingResizer`) for a variant: the resize fails, and
// the original is served in its place (200, marked `failed`), byte for byte.
async function servedAsOriginal(w, name, body) {
  fixtures[`/photos/${name}.png`] = { type: "image/png", body };
  const shown = await get(w, `/images/20/photos/${name}.png`);
  assert.equal(shown.status, 200, name);
  assert.match(shown.headers.get("x-image-transform"), /failed/, name);
  assert.deepEqual(Buffer.from(shown.body), body, `${name}: the original`);
}

// A Worker in cf-image mode whose every resize fails as Cloudflare's does (`cf-resized: err=9422`): where the
// source would be served as its original, the tests see whether it is.
const failingResizer = () =>
  startWorker({
    vars: { IMAGES_ORIGIN: origin.url, IMAGES_MODE: "cf-image", IMAGES_SOURCE_PREFIXES: '["photos/"]' },
    workerOptions: {
      async outboundService(request) {
        const upstream = await fetch(request.url);
        const headers = new Headers(upstream.headers);
        if (request.cf?.image) headers.set("cf-resized", "err=9422");
        return new Response(await upstream.arrayBuffer(), { status: upstream.status, headers });
      },
    },
  });

// A PNG whose header says `width`×`height` RGB but whose pixel data stops after `rows` rows (an upload cut short).
const rowsCutShort = (width, height, rows) => {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const pixels = deflateSync(Buffer.alloc(rows * (1 + width * 3))); // each row: filter 0, black
  return Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), chunk("IHDR", header), chunk("IDAT", pixels), chunk("IEND", Buffer.alloc(0))]);
};

// An AVIF (or HEIF) with every image spatial extent (`ispe`: size, type, version and flags, width, height) set to
// `width`×`height`.
const withIspe = (avif, width, height) => {
  const out = Buffer.from(avif);
  let found = 0;
  for (let at = out.indexOf("ispe"); at >= 0; at = out.indexOf("ispe", at + 4)) {
    out.writeUInt32BE(width, at + 8);
    out.writeUInt32BE(height, at + 12);
    found += 1;
  }
  assert.ok(found > 0, "the encoder wrote an ispe box");
  return out;
};

// An ISO-BMFF file with a `free` box of `length` bytes between its `ftyp` and what follows.
const paddedBeforeMeta = (file, length) => {
  const ftypEnd = file.readUInt32BE(0);
  const free = Buffer.alloc(8 + length);
  free.writeUInt32BE(8 + length, 0);
  free.write("free", 4, "latin1");
  return Buffer.concat([file.subarray(0, ftypEnd), free, file.subarray(ftypEnd)]);
};

// An ISO-BMFF box: its size, type and contents.
const box = (type, ...contents) => {
  const body = Buffer.concat(contents);
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length, 0);
  header.write(type, 4, "latin1");
  return Buffer.concat([header, body]);
};

// An AVIF image sequence (brand `avis`) with no still image, only a track whose header (`tkhd`, version 0) says
// `width`×`height` px, as libavif sizes a track's frames; with `frames`, its sample table (`stsz`) holds that many.
const sequenceOf = (width, height, frames) => {
  const tkhd = Buffer.alloc(4 + 20 + 52 + 8);
  tkhd.writeUInt32BE(width * 65536, 76);
  tkhd.writeUInt32BE(height * 65536, 80);
  const stsz = Buffer.alloc(12);
  stsz.writeUInt32BE(frames ?? 0, 8);
  const mdia = frames === undefined ? box("mdia", Buffer.alloc(40)) : box("mdia", box("mdhd", Buffer.alloc(24)), box("minf", box("stbl", box("stsz", stsz))));
  return Buffer.concat([
    box("ftyp", Buffer.from("avis\0\0\0\0avisavifmsf1", "latin1")),
    box("moov", box("mvhd", Buffer.alloc(100)), box("trak", box("tkhd", tkhd), mdia)),
    box("mdat", Buffer.alloc(64)),
  ]);
};

// An AVIF as libavif lays out a grid: its primary item 1 is a `grid` whose `ispe` says 40×30 px, and whose ImageGrid
// data (32-bit fields) in `mdat`, found through `iloc` (version 0: file offsets), says `width`×`height` px, the canvas
// libavif allocates. Its tiles are left out: the size check reads no further. With `grids` > 1, items 2, 3… are
// named grids too (with no location).
const gridOf = (width, height, grids = 1) => {
  const fullBox = (type, ...contents) => box(type, Buffer.alloc(4), ...contents);
  const u16 = (v) => Buffer.from([v >> 8, v & 255]);
  const u32 = (v) => { const b = Buffer.alloc(4); b.writeUInt32BE(v); return b; };
  const data = Buffer.concat([Buffer.from([0, 1, 1, 1]), u32(width), u32(height)]);
  const file = (dataAt) => Buffer.concat([
    box("ftyp", Buffer.from("avif\0\0\0\0mif1miaf", "latin1")),
    box("meta", Buffer.alloc(4),
      fullBox("hdlr", Buffer.alloc(4), Buffer.from("pict", "latin1"), Buffer.alloc(13)),
      fullBox("pitm", u16(1)),
      // offset and length sizes 4, no base offset; one item, one extent.
      fullBox("iloc", Buffer.from([0x44, 0]), u16(1), u16(1), u16(0), u16(1), u32(dataAt), u32(data.length)),
      fullBox("iinf", u16(grids), ...Array.from({ length: grids }, (_, i) =>
        box("infe", Buffer.from([2, 0, 0, 0]), u16(i + 1), u16(0), Buffer.from("grid\0", "latin1")))),
      box("iprp", box("ipco", fullBox("ispe", u32(40), u32(30))))),
    box("mdat", data),
  ]);
  const at = file(0).length - data.length;
  return file(at);
};

// A JPEG whose frame header, declaring `width`×`height`, follows APP1 segments of the given lengths (as an Exif
// block, ICC profiles and XMP do), and no pixel data.
const jpegBehind = (segments, width, height) => {
  const parts = [Buffer.from([0xff, 0xd8])];
  for (const length of segments) {
    const segment = Buffer.alloc(4 + length);
    segment.writeUInt16BE(0xffe1, 0);
    segment.writeUInt16BE(length + 2, 2);
    parts.push(segment);
  }
  const frame = [0xff, 0xc0, 0, 17, 8, height >> 8, height & 0xff, width >> 8, width & 0xff];
  parts.push(Buffer.from([...frame, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]));
  return Buffer.concat(parts);
};

// An animated GIF: a `width`×`height` screen and `frames` frames filling it, each a few bytes of image data (a
// decoder still composes each onto the whole screen).
const animatedGif = (width, height, frames) => {
  const u16 = (v) => [v & 255, v >> 8];
  const frame = [0x21, 0xf9, 4, 0, 10, 0, 0, 0, 0x2c, ...u16(0), ...u16(0), ...u16(width), ...u16(height), 0, 2, 2, 0x4c, 0x01, 0];
  return Buffer.from([
    ...Buffer.from("GIF89a"), ...u16(width), ...u16(height), 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
    0x21, 0xff, 11, ...Buffer.from("NETSCAPE2.0"), 3, 1, 0, 0, 0,
    ...Array.from({ length: frames }, () => frame).flat(), 0x3b,
  ]);
};

// An animated PNG (`acTL`, then a `fcTL` and `IDAT`/`fdAT` per frame) whose frames hold no real pixel data: no
// resizer reads it, so its original is what would be served.
const animatedPng = (width, height, frames) => {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8;
  header[9] = 2;
  const actl = Buffer.alloc(8);
  actl.writeUInt32BE(frames, 0);
  const parts = [Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), chunk("IHDR", header), chunk("acTL", actl)];
  for (let i = 0; i < frames; i++) {
    parts.push(chunk("fcTL", Buffer.alloc(26)), chunk(i === 0 ? "IDAT" : "fdAT", Buffer.alloc(4)));
  }
  parts.push(chunk("IEND", Buffer.alloc(0)));
  return Buffer.concat(parts);
};

// An animated WebP (`VP8X` with its animation flag, `ANIM`, then `ANMF` chunks holding no real frame).
const animatedWebp = (width, height, frames) => {
  const chunk = (type, data) => {
    const head = Buffer.alloc(8);
    head.write(type, 0, "latin1");
    head.writeUInt32LE(data.length, 4);
    return Buffer.concat([head, data, Buffer.alloc(data.length % 2)]);
  };
  const vp8x = Buffer.alloc(10);
  vp8x[0] = 0x02;
  vp8x.writeUIntLE(width - 1, 4, 3);
  vp8x.writeUIntLE(height - 1, 7, 3);
  const body = Buffer.concat([
    Buffer.from("WEBP"), chunk("VP8X", vp8x), chunk("ANIM", Buffer.alloc(6)),
    ...Array.from({ length: frames }, () => chunk("ANMF", Buffer.alloc(16))),
  ]);
  const riff = Buffer.alloc(8);
  riff.write("RIFF", 0, "latin1");
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
};

before(async () => {
  fixtures = {
    "/photos/land.jpg": { type: "image/jpeg", body: await solid(800, 600).jpeg().toBuffer() },
    "/photos/square.png": { type: "image/png", body: await solid(400, 400, 4).png().toBuffer() },
    "/photos/tall.png": { type: "image/png", body: await solid(20, 400).png().toBuffer() },
    "/photos/cache.jpg": { type: "image/jpeg", body: await solid(640, 480).jpeg().toBuffer() },
    "/photos/page.jpg": { type: "text/html", body: Buffer.from("<html>not an image</html>") },
    "/photos/huge.jpg": { type: "image/jpeg", body: Buffer.alloc(MAX_SOURCE + 1, 7) },
    // A PNG's signature (as bytes: latin1, not UTF-8's C2 89), then garbage a resizer cannot read.
    "/photos/broken.png": { type: "image/png", body: Buffer.from("\x89PNG\r\n\x1a\n but then garbage, not chunks", "latin1") },
    "/private/secret.jpg": { type: "image/jpeg", body: await solid(10, 10).jpeg().toBuffer() },
    // Mislabelled (uploaders and buckets send these), empty, and an error page that says it is a PNG.
    "/photos/label.jpg": { type: "image/jpg", body: await solid(300, 200).jpeg().toBuffer() },
    "/photos/empty.jpg": { type: "image/jpeg", body: Buffer.alloc(0) },
    // Noise: a JPEG under IMAGES_MAX_SOURCE_BYTES (~90 KB) whose PNG at the same size is far over it (~590 KB).
    "/photos/noise.jpg": {
      type: "image/jpeg",
      body: await sharp(randomBytes(500 * 400 * 3), { raw: { width: 500, height: 400, channels: 3 } }).jpeg({ quality: 60 }).toBuffer(),
    },
    "/photos/error.png": { type: "image/png", body: Buffer.from("<!doctype html><h1>500 Internal Server Error</h1>") },
    // The first three bytes of a JPEG and nothing more (an upload cut short that the origin stored as it came).
    "/photos/tiny.jpg": { type: "image/jpeg", body: Buffer.from([0xff, 0xd8, 0xff]) },
    // An SVG with a script, labelled as what it is and as a PNG: neither may reach a browser from the Worker's origin.
    "/photos/logo.svg": { type: "image/svg+xml", body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') },
    "/photos/svg-labelled.png": { type: "image/png", body: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>') },
    "/photos/rows-cut.png": { type: "image/png", body: rowsCutShort(300, 200, 4) },
    // Under a kilobyte, declaring 50,000 × 50,000 px (7.5 GB of pixels for whoever decodes it).
    "/photos/bomb.png": { type: "image/png", body: rowsCutShort(50_000, 50_000, 4) },
    // The same size declared by a JPEG's frame header 135 KB in, behind its APP segments.
    // A GIF whose 1 x 1 logical screen frames 50,000 × 50,000 px (Chrome's decoder grows the screen to the frame).
    "/photos/bomb.gif": {
      type: "image/gif",
      body: Buffer.from([
        ...Buffer.from("GIF89a"), 1, 0, 1, 0, 0x80, 0, 0, 0, 0, 0, 255, 255, 255,
        0x2c, 0, 0, 0, 0, 0x50, 0xc3, 0x50, 0xc3, 0, 2, 2, 0x4c, 0x01, 0, 0x3b,
      ]),
    },
    "/photos/bomb-exif.jpg": { type: "image/jpeg", body: jpegBehind([65_000, 65_000, 5_000], 50_000, 50_000) },
    // The same with bytes that are no marker before its frame header: libjpeg skips them (a warning) and decodes on.
    "/photos/bomb-junk.jpg": {
      type: "image/jpeg",
      body: ((jpeg) => Buffer.concat([jpeg.subarray(0, 106), Buffer.from("junk"), jpeg.subarray(106)]))(jpegBehind([100], 50_000, 50_000)),
    },
    // A real AVIF whose image spatial extent (`ispe`) is made to say 50,000 × 50,000 px.
    "/photos/bomb.avif": { type: "image/avif", body: withIspe(await solid(40, 30).avif().toBuffer(), 50_000, 50_000) },
    // The same behind a 140 KB box before its meta box (IMAGES_MAX_SOURCE_BYTES is 200,000 here): past the first bytes read, followed box by box.
    "/photos/bomb-padded.avif": { type: "image/avif", body: paddedBeforeMeta(withIspe(await solid(40, 30).avif().toBuffer(), 50_000, 50_000), 140_000) },
    // An image sequence (animated AVIF) declaring it in its track header: such a file needs no meta box.
    "/photos/bomb-sequence.avif": { type: "image/avif", body: sequenceOf(50_000, 50_000) },
    // A grid whose ispe says 40×30 px and whose ImageGrid data says 50,000×50,000 (libavif sizes it by the data).
    "/photos/bomb-grid.avif": { type: "image/avif", body: gridOf(50_000, 50_000) },
    // An honest-sized grid (40×30 px) among nine named grids: more than the size check reads, so refused too.
    "/photos/bomb-grids.avif": { type: "image/avif", body: gridOf(40, 30, 9) },
    // Animations whose every frame is under 100 megapixels, and whose frames together are far over it (a GIF's
    // 2,000 frames of 1000 × 1000 px fit in 50 KB: 2 gigapixels for whoever decodes it); and an honest small one.
    "/photos/frames.gif": { type: "image/gif", body: animatedGif(1000, 1000, 2000) },
    "/photos/frames.png": { type: "image/png", body: animatedPng(1000, 1000, 200) },
    "/photos/frames.webp": { type: "image/webp", body: animatedWebp(1000, 1000, 200) },
    "/photos/spinner.gif": { type: "image/gif", body: animatedGif(64, 64, 12) },
    // An AVIF sequence of 2,000 frames of 1000 × 1000 px (AV1 codes an unchanged frame in a few bytes), and a short
    // honest one.
    "/photos/frames.avif": { type: "image/avif", body: sequenceOf(1000, 1000, 2000) },
    "/photos/clip.avif": { type: "image/avif", body: sequenceOf(64, 64, 12) },
    // An honest phone panorama: 7.7 megapixels, but wider than the 12,000 px a side Cloudflare resizes.
    "/photos/panorama.jpg": { type: "image/jpeg", body: await solid(12_800, 600).jpeg().toBuffer() },
    // WebP and AVIF sources, opaque and with alpha, for clients that take neither format.
    "/photos/photo.webp": { type: "image/webp", body: await solid(400, 300).webp().toBuffer() },
    "/photos/logo.webp": { type: "image/webp", body: await translucent(200, 200).webp().toBuffer() },
    "/photos/photo.avif": { type: "image/avif", body: await solid(400, 300).avif().toBuffer() },
    "/photos/logo.avif": { type: "image/avif", body: await translucent(200, 200).avif().toBuffer() },
  };
  // Mislabelled image types: the label says one image format, the bytes are another.
  fixtures["/photos/logo-labelled.jpg"] = { type: "image/jpeg", body: await translucent(200, 200).png().toBuffer() };
  fixtures["/photos/photo-labelled.png"] = { type: "image/png", body: await solid(400, 300).jpeg().toBuffer() };
  fixtures["/photos/photo-labelled.webp"] = { type: "image/webp", body: await solid(400, 300).jpeg().toBuffer() };
  // An (animated) PNG served with its IANA-registered types, as web servers label `.apng` files.
  fixtures["/photos/spinner.apng"] = { type: "image/apng", body: await translucent(200, 200).png().toBuffer() };
  fixtures["/photos/spinner-moz.apng"] = { type: "image/vnd.mozilla.apng", body: await translucent(200, 200).png().toBuffer() };
  // The same bytes at another path: its variants are other cache entries holding the same bytes.
  fixtures["/photos/twin.jpg"] = fixtures["/photos/land.jpg"];
  // A high-density asset's name, as iOS and most design tools export them.
  fixtures["/photos/logo@2x.png"] = { type: "image/png", body: await translucent(200, 200).png().toBuffer() };
  origin = await startOrigin();
  streamed = {};
  origin.handle((req, body, res, record) => {
    if (record.path === "/photos/endless.jpg") {
      // A chunked source with no end in sight: written while the reader keeps up, at most 32 MB, and how much was
      // written before the Worker let go is recorded.
      res.writeHead(200, { "content-type": "image/jpeg" });
      const chunk = Buffer.alloc(64 * 1024, 7);
      const state = (streamed[record.path] = { written: 0, closed: false });
      res.on("close", () => (state.closed = true));
      const pump = () => {
        while (!state.closed && state.written < 32 * 1024 * 1024) {
          state.written += chunk.length;
          if (!res.write(chunk)) return res.once("drain", pump);
        }
        res.end();
      };
      return pump();
    }
    if (record.path === "/photos/stalled.jpg") {
      // Headers and a first part, then nothing: the Worker's source timeout must let go.
      res.writeHead(200, { "content-type": "image/jpeg" });
      res.write(Buffer.alloc(1024, 7));
      const state = (streamed[record.path] = { closed: false });
      res.on("close", () => (state.closed = true));
      return;
    }
    if (record.path === "/photos/herd.jpg") {
      // A slow answer, so concurrent requests for one variant overlap while it is made.
      const { type, body } = fixtures["/photos/land.jpg"];
      setTimeout(() => {
        res.writeHead(200, { "content-type": type, "content-length": body.length });
        res.end(body);
      }, 300);
      return;
    }
    const status = record.path.match(/^\/photos\/status-(\d{3})\.jpg$/);
    if (status) {
      // An origin that answered, but not with the image.
      res.writeHead(Number(status[1]), { "content-type": "text/plain" });
      return res.end(status[1] === "304" ? undefined : "not now");
    }
    if (record.path === "/photos/moved.jpg") {
      res.writeHead(301, { location: "/photos/land.jpg" });
      return res.end();
    }
    if (record.path === "/photos/partial.jpg") {
      const whole = fixtures["/photos/land.jpg"].body;
      res.writeHead(206, { "content-type": "image/jpeg", "content-range": `bytes 0-99/${whole.length}` });
      return res.end(whole.subarray(0, 100));
    }
    if (record.path === "/photos/cut.png") {
      // Declares the whole square.png, sends half of it and breaks the connection.
      const whole = fixtures["/photos/square.png"].body;
      res.writeHead(200, { "content-type": "image/png", "content-length": whole.length });
      res.write(whole.subarray(0, whole.length >> 1), () => res.destroy());
      return;
    }
    const fixture = fixtures[record.path];
    if (!fixture) {
      res.writeHead(404, { "content-type": "text/plain" });
      return res.end("no such image");
    }
    res.writeHead(200, { "content-type": fixture.type, "content-length": fixture.body.length });
    res.end(fixture.body);
  });
  const vars = {
    IMAGES_ORIGIN: origin.url,
    IMAGES_MAX_SIDE: 2000,
    IMAGES_SOURCE_PREFIXES: '["photos/"]',
    IMAGES_MAX_SOURCE_BYTES: MAX_SOURCE,
    IMAGES_SOURCE_TIMEOUT_MS: 1000,
  };
  // allSettled: when one start fails, the other is still stopped (after() sees it).
  const started = await Promise.allSettled([
    startWorker({ vars }),
    startWorker({ vars: { ...vars, IMAGES_SIGNING: true, IMAGES_SIGNING_SECRET: SECRET } }),
  ]);
  [worker, signed] = started.map((s) => (s.status === "fulfilled" ? s.value : undefined));
  const failed = started.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;
});
after(async () => {
  await Promise.all([worker?.stop(), signed?.stop()]);
  await origin?.stop();
});

async function get(w, path, headers = {}) {
  const response = await w.fetch(path, { headers });
  const body = Buffer.from(await response.arrayBuffer());
  return { status: response.status, headers: response.headers, body };
}

async function decoded(body) {
  const { width, height, format, compression } = await sharp(body).metadata();
  // sharp reports AVIF as HEIF with AV1 compression.
  return { width, height, format: format === "heif" && compression === "av1" ? "avif" : format };
}

test("every URL form and fit produces the requested dimensions, decoded from the real output", async () => {
  const cases = [
    ["/images/300x200/photos/land.jpg", [267, 200], "path size, default fit scale-down"],
    ["/images/300/photos/land.jpg", [300, 225], "path width only"],
    ["/images/photos/land.jpg?w=300&h=200", [267, 200], "query form"],
    ["/images/photos/land.jpg?w=300&h=200&fit=contain", [267, 200], "contain"],
    ["/images/photos/land.jpg?w=300&h=200&fit=cover", [300, 200], "cover"],
    ["/images/photos/land.jpg?w=300&h=200&fit=crop", [300, 200], "crop"],
    ["/images/photos/land.jpg?w=300&h=200&fit=pad", [300, 200], "pad"],
    ["/images/photos/land.jpg?w=1600&h=1000", [800, 600], "scale-down never enlarges"],
    ["/images/photos/land.jpg?w=1000&h=400&fit=crop", [800, 400], "crop never enlarges"],
    ["/images/photos/land.jpg?w=200&dpr=2", [400, 300], "dpr multiplies"],
    ["/images/photos/land.jpg?h=150&q=40", [200, 150], "height only with quality"],
    ["/images/100/photos/square.png", [100, 100], "PNG source"],
    ["/images/photos/tall.png?w=200&fit=contain", [100, 2000], "a side derived from the source stays within IMAGES_MAX_SIDE"],
  ];
  for (const [path, [width, height], why] of cases) {
    const response = await get(worker, path);
    assert.equal(response.status, 200, `${why}: ${path} ${response.body}`);
    const image = await decoded(response.body);
    assert.deepEqual([image.width, image.height], [width, height], `${why}: ${path}`);
    const expected = path.includes(".png") ? "png" : "jpeg";
    assert.equal(image.format, expected, `${why}: no Accept keeps the source format`);
    assert.equal(response.headers.get("content-type"), `image/${expected}`, why);
  }
});

test("Accept picks AVIF, then WebP, else the source format, with Vary: Accept; format= overrides", async () => {
  const cases = [
    ["image/avif,image/webp,image/apng,image/*,*/*;q=0.8", "/images/320/photos/land.jpg", "avif"],
    ["image/webp,*/*", "/images/320/photos/land.jpg", "webp"],
    ["image/avif;q=0,image/webp", "/images/320/photos/land.jpg", "webp"],
    ["image/avif;q=0.5,image/webp", "/images/320/photos/land.jpg", "webp"],
    ["*/*", "/images/320/photos/land.jpg", "jpeg"],
    ["image/avif,image/webp", "/images/120/photos/square.png", "avif"],
    ["text/html,*/*", "/images/120/photos/square.png", "png"],
  ];
  for (const [accept, path, format] of cases) {
    const response = await get(worker, path, { accept });
    assert.equal(response.status, 200, `${accept} ${path}`);
    assert.equal((await decoded(response.body)).format, format, `${accept} ${path}`);
    assert.equal(response.headers.get("content-type"), `image/${format}`, accept);
    assert.equal(response.headers.get("vary"), "Accept", accept);
  }
  const explicit = await get(worker, "/images/photos/land.jpg?w=100&format=webp", { accept: "image/avif" });
  const image = await decoded(explicit.body);
  assert.deepEqual([image.format, image.width], ["webp", 100], "an explicit format wins over Accept");
});

test("a source labelled as another image type keeps the format its bytes are, as Cloudflare keeps it", async () => {
  // Origins and buckets mislabel: a transparent logo saved as .jpg and served image/jpeg, a photo served image/png.
  // Cloudflare reads the bytes (cf-image mode keeps the format they are); the binding path took the label, so the
  // logo lost its transparency to a JPEG and the photo became a PNG many times its size.
  const cases = [
    ["/images/100/photos/logo-labelled.jpg", "png", true],
    ["/images/100/photos/photo-labelled.png", "jpeg", false],
    ["/images/100/photos/photo-labelled.webp", "jpeg", false],
  ];
  for (const [path, format, alpha] of cases) {
    const response = await get(worker, path, { accept: "image/png,image/*;q=0.8" });
    assert.equal(response.status, 200, `${path}: ${response.body}`);
    assert.equal(response.headers.get("x-image-transform"), null, `${path}: a variant, not the original`);
    assert.equal((await decoded(response.body)).format, format, path);
    assert.equal(response.headers.get("content-type"), `image/${format}`, path);
    assert.equal((await sharp(response.body).metadata()).hasAlpha, alpha, path);
  }
});

test("a PNG labelled image/apng or image/vnd.mozilla.apng (its registered types) is resized, not refused 415", async () => {
  // Both name a PNG (the animated kind), which every resizer reads; web servers send image/apng for `.apng` files.
  for (const path of ["/images/100/photos/spinner.apng", "/images/100/photos/spinner-moz.apng"]) {
    const response = await get(worker, path, { accept: "image/png,image/*;q=0.8" });
    assert.equal(response.status, 200, `${path}: ${response.body}`);
    assert.deepEqual(await decoded(response.body), { width: 100, height: 100, format: "png" }, path);
    assert.equal(response.headers.get("content-type"), "image/png", path);
  }
});

test("a WebP or AVIF source is made JPEG (PNG when it has alpha) for a client whose Accept takes neither", async () => {
  // AVIF sources only in cf-image mode below: Miniflare's local Images binding refuses AVIF input ("Unsupported
  // image type heif"), so locally a transform of one fails and the original is served (the real binding reads them).
  const cases = [
    ["/images/200/photos/photo.webp", "jpeg", [200, 150]],
    ["/images/100/photos/logo.webp", "png", [100, 100]],
    ["/images/photos/photo.webp", "jpeg", [400, 300]],
  ];
  for (const accept of [undefined, "image/png,image/svg+xml,image/*;q=0.8,*/*;q=0.5", "image/jpeg"]) {
    for (const [path, format, size] of cases) {
      const response = await get(worker, path, accept ? { accept } : {});
      assert.equal(response.status, 200, `${accept} ${path}: ${response.body}`);
      const image = await decoded(response.body);
      assert.deepEqual([image.format, image.width, image.height], [format, ...size], `${accept} ${path}`);
      assert.equal(response.headers.get("content-type"), `image/${format}`, `${accept} ${path}`);
      assert.equal(response.headers.get("vary"), "Accept", `${accept} ${path}`);
      if (format === "png") assert.equal((await sharp(response.body).metadata()).hasAlpha, true, `${path} keeps its alpha`);
    }
  }
  // A client that takes them still gets them.
  const avif = await get(worker, "/images/200/photos/photo.webp", { accept: "image/avif" });
  assert.equal((await decoded(avif.body)).format, "avif");

  // cf-image mode: Cloudflare keeps the source's format when none is asked for, so the Worker asks again for JPEG.
  // The outbound service stands in for the zone: it converts to cf.image.format with sharp, and resizes nothing.
  const seen = [];
  const cfWorker = await startWorker({
    vars: { IMAGES_ORIGIN: origin.url, IMAGES_MODE: "cf-image", IMAGES_SOURCE_PREFIXES: '["photos/"]' },
    workerOptions: {
      async outboundService(request) {
        seen.push(request.cf?.image?.format ?? null);
        const upstream = await fetch(request.url);
        const headers = new Headers(upstream.headers);
        let body = Buffer.from(await upstream.arrayBuffer());
        const format = request.cf?.image?.format;
        if (format) {
          body = await sharp(body).toFormat(format).toBuffer();
          headers.set("content-type", `image/${format}`);
          headers.delete("content-length");
        }
        if (request.cf?.image) headers.set("cf-resized", "internal=ok/- q=0");
        return new Response(body, { status: upstream.status, headers });
      },
    },
  });
  try {
    const cases = [
      ["/images/120/photos/photo.webp", "jpeg"],
      ["/images/120/photos/logo.webp", "png"],
      ["/images/120/photos/photo.avif", "jpeg"],
      ["/images/120/photos/logo.avif", "png"],
    ];
    for (const [path, format] of cases) {
      seen.length = 0;
      const response = await get(cfWorker, path, { accept: "image/jpeg,*/*" });
      assert.equal(response.status, 200, `${path}: ${response.body}`);
      assert.equal((await decoded(response.body)).format, format, path);
      assert.equal(response.headers.get("content-type"), `image/${format}`, path);
      assert.deepEqual(seen, [null, format], `${path}: asked again in a format the client takes`);
    }
    seen.length = 0;
    const jpeg = await get(cfWorker, "/images/120/photos/land.jpg", { accept: "image/jpeg,*/*" });
    assert.equal(jpeg.headers.get("content-type"), "image/jpeg");
    assert.deepEqual(seen, [null], "a JPEG source is fetched once");
  } finally {
    await cfWorker.stop();
  }
});

test("a variant has a strong ETag from its bytes, the same on a HIT and a MISS; If-None-Match is answered 304", async () => {
  const tagOf = (body) => `"${createHash("sha256").update(body).digest("hex").slice(0, 32)}"`;
  const first = await get(worker, "/images/233/photos/land.jpg");
  assert.equal(first.headers.get("x-cache"), "MISS");
  const etag = first.headers.get("etag");
  assert.equal(etag, tagOf(first.body), "a digest of the bytes served");
  const hit = await get(worker, "/images/photos/land.jpg?w=233");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(hit.headers.get("etag"), etag, "the HIT gives the MISS's tag");
  for (const ifNoneMatch of [etag, `W/${etag}`, `"other", ${etag}`, "*"]) {
    for (const method of ["GET", "HEAD"]) {
      const response = await worker.fetch("/images/233/photos/land.jpg", { method, headers: { "if-none-match": ifNoneMatch } });
      assert.equal(response.status, 304, `${method} ${ifNoneMatch}`);
      assert.equal((await response.arrayBuffer()).byteLength, 0, "no body");
      assert.equal(response.headers.get("etag"), etag, ifNoneMatch);
      assert.equal(response.headers.get("cache-control"), first.headers.get("cache-control"), ifNoneMatch);
      assert.equal(response.headers.get("vary"), "Accept", ifNoneMatch);
      assert.equal(response.headers.get("content-type"), null, ifNoneMatch);
    }
  }
  const other = await get(worker, "/images/233/photos/land.jpg", { "if-none-match": '"other"' });
  assert.equal(other.status, 200, "another tag: the whole variant");
  assert.deepEqual(other.body, first.body);
  // The same bytes under another key: its MISS gives the same tag, and a client holding them is told 304.
  const twin = await worker.fetch("/images/233/photos/twin.jpg", { headers: { "if-none-match": etag } });
  assert.equal(twin.status, 304, "a MISS is answered 304 too");
  assert.equal(twin.headers.get("x-cache"), "MISS");
  assert.equal(twin.headers.get("etag"), etag);
  const stored = await get(worker, "/images/233/photos/twin.jpg");
  assert.equal(stored.headers.get("x-cache"), "HIT", "a MISS answered 304 still stored the variant");
  assert.deepEqual(stored.body, first.body);
  // Another format is other bytes: another tag.
  const webp = await get(worker, "/images/233/photos/land.jpg", { accept: "image/webp", "if-none-match": etag });
  assert.equal(webp.status, 200);
  assert.equal(webp.headers.get("etag"), tagOf(webp.body));
  // A fallback (never stored) has no tag, so a list of tags never matches it; `*` names any current
  // representation (RFC 9110 §13.1.2), the untagged original included.
  const broken = await get(worker, "/images/100/photos/rows-cut.png", { "if-none-match": '"abc", W/"x"' });
  assert.equal(broken.status, 200);
  assert.match(broken.headers.get("x-image-transform"), /failed/);
  assert.equal(broken.headers.get("etag"), null);
  for (const method of ["GET", "HEAD"]) {
    const any = await worker.fetch("/images/100/photos/rows-cut.png", { method, headers: { "if-none-match": "*" } });
    assert.equal(any.status, 304, `${method} *`);
    assert.equal((await any.arrayBuffer()).byteLength, 0);
    assert.equal(any.headers.get("cache-control"), "no-store");
    assert.match(any.headers.get("x-image-transform"), /failed/);
  }
});

test("If-Match naming no current representation (strong comparison) is answered 412; a match or * is served", async () => {
  // It was ignored: a client asking for the bytes it holds (a resumed download, RFC 9110 §13.1.1) got other ones.
  const first = await get(worker, "/images/244/photos/land.jpg");
  const etag = first.headers.get("etag");
  for (const method of ["GET", "HEAD"]) {
    for (const [ifMatch, status] of [[etag, 200], [`"other", ${etag}`, 200], ["*", 200], ['"other"', 412], [`W/${etag}`, 412]]) {
      const response = await worker.fetch("/images/244/photos/land.jpg", { method, headers: { "if-match": ifMatch } });
      const body = Buffer.from(await response.arrayBuffer());
      assert.equal(response.status, status, `${method} If-Match: ${ifMatch}`);
      if (status === 412 && method === "GET") {
        assert.equal(JSON.parse(body).error.code, "precondition_failed");
      }
      if (status === 412) {
        // The tag compared is the negotiated variant's (format=auto, the default): a 412 for one Accept may be a
        // 200 for another. It carries no Vary: Accept because no cache may keep it at all.
        assert.equal(response.headers.get("cache-control"), "no-store", `${method} If-Match: ${ifMatch}`);
      }
      if (status === 200 && method === "GET") assert.deepEqual(body, first.body);
    }
  }
  // On a MISS too (the variant is still made and stored), and before If-None-Match (RFC 9110 §13.2.2).
  const miss = await worker.fetch("/images/245/photos/land.jpg", { headers: { "if-match": '"other"', "if-none-match": "*" } });
  assert.equal(miss.status, 412);
  assert.equal((await get(worker, "/images/245/photos/land.jpg")).headers.get("x-cache"), "HIT");
  // A fallback has no tag: only * names it.
  assert.equal((await worker.fetch("/images/100/photos/rows-cut.png", { headers: { "if-match": '"abc"' } })).status, 412);
  assert.equal((await worker.fetch("/images/100/photos/rows-cut.png", { headers: { "if-match": "*" } })).status, 200);
});

test("a Range request is answered 200 with the whole variant: Range is ignored (RFC 9110 §14.2 allows it)", async () => {
  // Images are small and browsers fetch them whole; a 206 would need its own Content-Range, If-Range and 416 paths.
  const whole = await get(worker, "/images/211/photos/land.jpg");
  assert.equal(whole.status, 200);
  const etag = whole.headers.get("etag");
  for (const range of ["bytes=0-9", "bytes=0-", "bytes=-10", "bytes=0-0,5-9", `bytes=${whole.body.length + 10}-`]) {
    for (const ifRange of [null, etag]) {
      const headers = ifRange ? { range, "if-range": ifRange } : { range };
      const answer = await get(worker, "/images/211/photos/land.jpg", headers);
      assert.equal(answer.status, 200, `${range} ${ifRange}`);
      assert.equal(answer.headers.get("content-range"), null, range);
      assert.equal(answer.headers.get("etag"), etag, range);
      assert.deepEqual(answer.body, whole.body, range);
    }
  }
});

/** A GET with the path sent byte for byte (fetch() would normalise `..` and `%2e%2e` before sending). */
function rawGet(base, path) {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path, method: "GET" }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("traversal and SSRF attempts are refused before any origin request", async () => {
  // 404: the runtime's URL parser already resolved the dots out of /images/ (no route); 403: it resolved them
  // inside /images/ (or the router collapsed doubled slashes, as every route's path is matched) and the source
  // prefix allow-list refused; 400: the path reached our normaliser and was refused.
  const attempts = [
    ["/images/../private/secret.jpg", 404],
    ["/images/300/../../private/secret.jpg", 404],
    ["/images/photos/../private/secret.jpg", 403],
    ["/images/%2e%2e/private/secret.jpg", 404],
    ["/images/300/photos/%2e%2e/%2e%2e/private/secret.jpg", 403],
    ["/images/photos\\..\\private\\secret.jpg", 403],
    ["/images/%252e%252e/private/secret.jpg", 400],
    // A lone `%` is kept as a `%` (sent as %25), never joined with the escapes after it into %61 and decoded again.
    ["/images/40/photos/l%%36%31nd.jpg", 400],
    ["/images/300/photos/%252e%252e/%252e%252e/private/secret.jpg", 400],
    ["/images/300/photos%2f..%2f..%2fprivate%2fsecret.jpg", 400],
    ["/images/photos/..%5c..%5cprivate/secret.jpg", 400],
    ["/images/photos/%5cprivate/secret.jpg", 400],
    ["/images//evil.com/x.jpg", 403],
    ["/images/300///evil.com/x.jpg", 403],
    ["/images/300/%2F%2Fevil.com/x.jpg", 400],
    ["/images/http://evil.com/x.jpg", 400],
    ["/images/300/https:%2F%2Fevil.com%2Fx.jpg", 400],
    ["/images/300/127.0.0.1:9/x.jpg", 400],
    ["/images/photos/x%00.jpg", 400],
    ["/images/300/.env", 400],
    ["/images/private/secret.jpg", 403],
  ];
  origin.requests.length = 0;
  const seen = [];
  for (const [path, status] of attempts) {
    const response = await rawGet(worker.url, path);
    seen.push(`${response.status} ${path}`);
    assert.equal(response.status, status, `${path}: ${response.body}`);
    assert.equal(JSON.parse(response.body).error.code.length > 0, true, `${path}: JSON error`);
  }
  assert.deepEqual(origin.requests, [], `no attempt reached the origin:\n  ${seen.join("\n  ")}`);
});

test("a source named like a high-density asset (logo@2x.png) is served; its `@` names a path on the origin, never a host", async () => {
  // `@` was refused as if it could be userinfo, so `/images/100/photos/logo@2x.png` answered 400 for one of the
  // most common asset names; after `{IMAGES_ORIGIN}/` it can only be a path character.
  origin.requests.length = 0;
  for (const path of ["/images/100/photos/logo@2x.png", "/images/100/photos/logo%402x.png"]) {
    const response = await get(worker, path);
    assert.equal(response.status, 200, `${path}: ${response.body}`);
    const image = await decoded(response.body);
    assert.deepEqual([image.width, image.height], [100, 100], path);
  }
  assert.deepEqual(origin.requests.map((r) => r.path), ["/photos/logo@2x.png"], "one fetch, the second a HIT of the same source");
  const other = await rawGet(worker.url, "/images/photos/x.jpg@evil.com");
  assert.equal(other.status, 404, "a path on our origin, which has no such image");
  assert.deepEqual(origin.requests.map((r) => r.path).slice(1), ["/photos/x.jpg@evil.com"], "asked of the configured origin");
});

test("invalid, zero, over-limit and unknown parameters answer 400 naming the parameter", async () => {
  const cases = [
    ["/images/0x200/photos/land.jpg", "`w`"],
    ["/images/300x0/photos/land.jpg", "`h`"],
    ["/images/photos/land.jpg?w=abc", "`w`"],
    ["/images/photos/land.jpg?w=-1", "`w`"],
    ["/images/photos/land.jpg?w=5000", "`w`"],
    ["/images/photos/land.jpg?w=1200&dpr=2", "`w`"],
    ["/images/photos/land.jpg?fit=stretch", "`fit`"],
    ["/images/photos/land.jpg?q=0", "`q`"],
    ["/images/photos/land.jpg?dpr=9", "`dpr`"],
    ["/images/photos/land.jpg?format=bmp", "`format`"],
    ["/images/photos/land.jpg?blur=5", "`blur`"],
  ];
  origin.requests.length = 0;
  for (const [path, named] of cases) {
    const response = await get(worker, path);
    assert.equal(response.status, 400, path);
    const { error } = JSON.parse(response.body);
    assert.ok(error.message.includes(named), `${path}: ${error.message}`);
  }
  // With w in the query, a numeric first segment is a folder, not a second width: here one outside the prefixes.
  const folder = await get(worker, "/images/300/photos/land.jpg?w=200");
  assert.equal(folder.status, 403, "300/photos/ is not under IMAGES_SOURCE_PREFIXES");
  assert.equal(origin.requests.length, 0, "nothing was fetched for a bad request");
});

test("a side of more digits than any limit is refused as over the limit, not as no whole number", async () => {
  // A dated folder (`/images/20240101/…`) is read as the size; it and a long query value are whole numbers, and
  // were told they "must be a whole number of pixels".
  const cases = [
    ["/images/20240101/photos/land.jpg", "parameter `w` is over the limit: 20240101 px at dpr 1 (max 2000)"],
    ["/images/photos/land.jpg?h=123456", "parameter `h` is over the limit: 123456 px at dpr 1 (max 2000)"],
    ["/images/photos/land.jpg?w=99999999999", "parameter `w` is over the limit: more than 999999999 px (max 2000)"],
  ];
  origin.requests.length = 0;
  for (const [path, message] of cases) {
    const response = await get(worker, path);
    assert.equal(response.status, 400, path);
    assert.deepEqual(JSON.parse(response.body), { error: { code: "invalid_parameter", message } }, path);
  }
  assert.equal(origin.requests.length, 0, "nothing was fetched for a bad request");
  // Leading zeros are not digits of the size: `w=000000300` is the 300 px variant.
  const padded = await get(worker, "/images/photos/land.jpg?w=000000300");
  assert.equal(padded.status, 200);
  assert.deepEqual(await decoded(padded.body), await decoded((await get(worker, "/images/300/photos/land.jpg")).body));
});

test("a dpr spelt with zeros that add no digit is that ratio: dpr=02 is 2 and dpr=1.500 is 1.5, not a 400", async () => {
  // They were told they "must be a number from 1 to 4 with at most two decimals"; `w=000000300` is 300 likewise.
  for (const [spelt, plain] of [["02", "2"], ["1.500", "1.5"]]) {
    const response = await get(worker, `/images/photos/land.jpg?w=100&dpr=${spelt}`);
    assert.equal(response.status, 200, `dpr=${spelt}: ${response.body}`);
    assert.deepEqual(await decoded(response.body), await decoded((await get(worker, `/images/photos/land.jpg?w=100&dpr=${plain}`)).body), spelt);
  }
});

const sign = (canonical, path, exp) => createHmac("sha256", SECRET).update(`${canonical}\n${path}\n${exp}`).digest("hex");

test("signed URLs: a valid signature is served in any URL form; missing, wrong and expired ones are 403", async () => {
  const exp = Math.floor(Date.now() / 1000) + 600;
  const canonical = "w=300&h=200&fit=scale-down&q=85&dpr=1&format=auto";
  const sig = sign(canonical, "photos/land.jpg", exp);
  for (const path of [
    `/images/300x200/photos/land.jpg?exp=${exp}&sig=${sig}`,
    `/images/photos/land.jpg?h=200&w=300&exp=${exp}&sig=${sig}`,
  ]) {
    const response = await get(signed, path);
    assert.equal(response.status, 200, `${path}: ${response.body}`);
    assert.deepEqual(Object.values(await decoded(response.body)).slice(0, 2), [267, 200], path);
    // Reusable downstream only until exp (the Worker refuses the URL after it), on a MISS and a HIT alike.
    const [, maxAge] = /^public, max-age=(\d+)$/.exec(response.headers.get("cache-control")) ?? [];
    assert.ok(Number(maxAge) > 590 && Number(maxAge) <= 600, `${path}: ${response.headers.get("cache-control")}`);
  }
  assert.equal((await get(signed, `/images/300x200/photos/land.jpg?exp=${exp}&sig=${sig}`)).headers.get("x-cache"), "HIT");
  const past = Math.floor(Date.now() / 1000) - 10;
  const refused = [
    ["/images/300x200/photos/land.jpg", "signature_required"],
    [`/images/300x200/photos/land.jpg?sig=${sig}`, "signature_required"],
    [`/images/300x200/photos/land.jpg?exp=${exp}&sig=${"0".repeat(64)}`, "signature_invalid"],
    [`/images/300x200/photos/land.jpg?exp=${exp}&sig=nothex`, "signature_invalid"],
    [`/images/301x200/photos/land.jpg?exp=${exp}&sig=${sig}`, "signature_invalid"],
    [`/images/300x200/photos/square.png?exp=${exp}&sig=${sig}`, "signature_invalid"],
    [`/images/300x200/photos/land.jpg?exp=${exp + 1}&sig=${sig}`, "signature_invalid"],
    [`/images/300x200/photos/land.jpg?exp=${past}&sig=${sign(canonical, "photos/land.jpg", past)}`, "signature_expired"],
  ];
  origin.requests.length = 0;
  for (const [path, code] of refused) {
    const response = await get(signed, path);
    assert.equal(response.status, 403, path);
    assert.equal(JSON.parse(response.body).error.code, code, path);
  }
  assert.equal(origin.requests.length, 0, "refused signatures never fetch");
});

test("a HIT answers as its MISS did: not with the stored copy's Date, Age or CF-Cache-Status", async () => {
  // A HIT's Cache-Control is counted from this answer (a signed URL's max-age is the seconds left until exp now), but
  // it went out with the Cache API's Date — the time the variant was stored — and Age: a browser or shared cache
  // counts a response's age from its Date (RFC 9111 §4.2.3), so a variant stored a day ago and asked for with an
  // hour-long signature arrived a day old with an hour to live, stale at once, and was asked for again on every use.
  const exp = Math.floor(Date.now() / 1000) + 600;
  const path = `/images/177/photos/land.jpg?exp=${exp}&sig=${sign("w=177&h=-&fit=scale-down&q=85&dpr=1&format=auto", "photos/land.jpg", exp)}`;
  const miss = await get(signed, path);
  assert.equal(miss.headers.get("x-cache"), "MISS", String(miss.body));
  const hit = await get(signed, path);
  assert.equal(hit.headers.get("x-cache"), "HIT");
  const names = (answer) => [...answer.headers.keys()].filter((name) => name !== "x-cache").sort();
  assert.deepEqual(names(hit), names(miss), "the same headers as the MISS");
  for (const name of ["date", "age", "cf-cache-status"]) assert.equal(hit.headers.get(name), null, name);
  for (const method of ["GET", "HEAD"]) {
    const again = await signed.fetch(path, { method });
    await again.arrayBuffer();
    assert.equal(again.headers.get("date"), null, `${method}: the stored copy's Date`);
  }
});

test("a signed URL's exp is a number however zero-padded, and one of more than 12 digits is refused as too late, not as no time", async () => {
  // The signature covers exp as a number: a padded spelling of a signed time was told it "must be a Unix time in
  // seconds", which it is.
  const exp = Math.floor(Date.now() / 1000) + 600;
  const canonical = "w=300&h=200&fit=scale-down&q=85&dpr=1&format=auto";
  const padded = await get(signed, `/images/300x200/photos/land.jpg?exp=000${exp}&sig=${sign(canonical, "photos/land.jpg", exp)}`);
  assert.equal(padded.status, 200, padded.body);
  // A time in milliseconds (13 digits) says which rule it breaks, before any fetch.
  origin.requests.length = 0;
  const ms = exp * 1000;
  const late = await get(signed, `/images/300x200/photos/land.jpg?exp=${ms}&sig=${sign(canonical, "photos/land.jpg", ms)}`);
  assert.equal(late.status, 400);
  assert.deepEqual(JSON.parse(late.body), { error: { code: "invalid_parameter",
    message: "parameter `exp` is later than any Unix time in seconds this takes (at most 12 digits; one in milliseconds has 13)" } });
  assert.equal(origin.requests.length, 0, "nothing was fetched for a bad request");
});

test("variants are cached: the second request is a HIT, and ?w=&h= shares the entry with /{w}x{h}/", async () => {
  origin.requests.length = 0;
  const first = await get(worker, "/images/300x200/photos/cache.jpg");
  assert.equal(first.headers.get("x-cache"), "MISS");
  assert.match(first.headers.get("cache-control"), /max-age=\d+, immutable/);
  assert.equal(origin.requests.length, 1);
  const second = await get(worker, "/images/300x200/photos/cache.jpg");
  assert.equal(second.headers.get("x-cache"), "HIT");
  assert.deepEqual(second.body, first.body, "the same bytes");
  const queryForm = await get(worker, "/images/photos/cache.jpg?h=200&w=300&fit=scale-down&q=85");
  assert.equal(queryForm.headers.get("x-cache"), "HIT", "the query form shares the entry");
  assert.deepEqual(queryForm.body, first.body);
  assert.equal(queryForm.headers.get("vary"), "Accept");
  assert.equal(origin.requests.length, 1, "hits never reach the origin");
  const webp = await get(worker, "/images/300x200/photos/cache.jpg", { accept: "image/webp" });
  assert.equal(webp.headers.get("x-cache"), "MISS", "another negotiated format is another entry");
  assert.equal(origin.requests.length, 2);
  // A fit that cannot change the variant is no variant of its own: with one side, cover and pad are contain, crop is
  // scale-down; with none, every fit keeps the source's size (each was an entry, a source fetch and a transform).
  const contain = await get(worker, "/images/photos/cache.jpg?w=260&fit=contain");
  assert.equal(contain.headers.get("x-cache"), "MISS");
  for (const spelt of ["?w=260&fit=cover", "?w=260&fit=pad", "?fit=cover&w=260"]) {
    const same = await get(worker, `/images/photos/cache.jpg${spelt}`);
    assert.equal(same.headers.get("x-cache"), "HIT", spelt);
    assert.deepEqual(same.body, contain.body, spelt);
  }
  assert.equal((await get(worker, "/images/260/photos/cache.jpg")).headers.get("x-cache"), "MISS");
  assert.equal((await get(worker, "/images/photos/cache.jpg?w=260&fit=crop")).headers.get("x-cache"), "HIT");
  assert.equal((await get(worker, "/images/photos/cache.jpg")).headers.get("x-cache"), "MISS");
  for (const fit of ["contain", "cover", "crop", "pad"]) {
    assert.equal((await get(worker, `/images/photos/cache.jpg?fit=${fit}`)).headers.get("x-cache"), "HIT", `no side: ${fit}`);
  }
  // A dpr multiplies the sides and does nothing else: w=130&dpr=2 is w=260's image, and with no side it changes
  // nothing (each spelling was an entry, a source fetch and a transform of its own).
  for (const spelt of ["?w=130&dpr=2", "?w=65&dpr=4", "?dpr=2", "?dpr=3.17&fit=pad"]) {
    const same = await get(worker, `/images/photos/cache.jpg${spelt}`);
    assert.equal(same.headers.get("x-cache"), "HIT", spelt);
  }
  assert.equal(origin.requests.length, 5, "three variants, three more source fetches");
});

test("concurrent misses for one variant share one source fetch and transform; the others read what it stored", async () => {
  origin.requests.length = 0;
  const answers = await Promise.all(Array.from({ length: 8 }, () => get(worker, "/images/222/photos/herd.jpg")));
  assert.deepEqual(answers.map((a) => a.status), Array(8).fill(200));
  assert.deepEqual(origin.requests.map((r) => r.path), ["/photos/herd.jpg"], "one source fetch for eight requests");
  assert.deepEqual(answers.map((a) => a.headers.get("x-cache")).sort(), ["HIT", "HIT", "HIT", "HIT", "HIT", "HIT", "HIT", "MISS"]);
  for (const answer of answers) assert.deepEqual(answer.body, answers[0].body, "the same variant");
  assert.deepEqual(Object.values(await decoded(answers[0].body)).slice(0, 2), [222, 167]);
});

test("a HEAD that misses makes and stores the variant, and is told the Content-Length a GET gets", async () => {
  origin.requests.length = 0;
  const head = await worker.fetch("/images/210/photos/land.jpg", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(head.headers.get("x-cache"), "MISS");
  const get_ = await get(worker, "/images/210/photos/land.jpg");
  assert.equal(get_.headers.get("x-cache"), "HIT", "the HEAD stored it");
  assert.equal(head.headers.get("content-length"), String(get_.body.length), "the length of the body a GET gets");
  assert.equal(origin.requests.length, 1);
  const missed = await get(worker, "/images/211/photos/land.jpg");
  assert.equal(missed.headers.get("content-length"), String(missed.body.length), "a GET that misses says it too");
});

test("the source request carries the image request's x-request-id and continues its trace, so the origin's logs and traces line up with it", async () => {
  origin.requests.length = 0;
  const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const response = await get(worker, "/images/123/photos/land.jpg", {
    "x-request-id": "image-trace-1",
    traceparent: parent,
    tracestate: "congo=t61rcWkgMzE",
  });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("x-cache"), "MISS");
  assert.deepEqual(origin.requests.map((r) => [r.path, r.headers["x-request-id"]]), [["/photos/land.jpg", "image-trace-1"]]);
  // W3C Trace Context, as the gateway's origin requests carry it: the caller's trace and flags, a span of the edge's.
  const asked = origin.requests[0].headers;
  assert.match(asked.traceparent ?? "", /^00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01$/, "the caller's trace continued");
  assert.notEqual(asked.traceparent, parent, "with a new span id");
  assert.equal(asked.tracestate, "congo=t61rcWkgMzE", "its tracestate with it");
  // A fresh id for a request that sent none is the one the origin sees too, and a new trace is started.
  origin.requests.length = 0;
  const fresh = await get(worker, "/images/124/photos/land.jpg");
  assert.equal(origin.requests[0]?.headers["x-request-id"], fresh.headers.get("x-request-id"));
  assert.match(origin.requests[0]?.headers.traceparent ?? "", /^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/, "a new trace");
  assert.equal(origin.requests[0]?.headers.tracestate, undefined, "no state for a trace started here");
});

test("origin 404 → 404, not an image → 415 (by its label or, for an original, its bytes), empty → 502, too large → 413, failed transform → the original, marked", async () => {
  const missing = await get(worker, "/images/300/photos/missing.jpg");
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.code, "source_not_found");
  const page = await get(worker, "/images/300/photos/page.jpg");
  assert.equal(page.status, 415);
  const huge = await get(worker, "/images/300/photos/huge.jpg");
  assert.equal(huge.status, 413);
  // Errors of a format=auto request (the default) say no Vary: Accept, as its images do: no cache may keep them.
  for (const error of [missing, page, huge]) assert.equal(error.headers.get("cache-control"), "no-store", String(error.status));
  const endless = await get(worker, "/images/300/photos/endless.jpg");
  assert.equal(endless.status, 413, "a chunked source past IMAGES_MAX_SOURCE_BYTES");
  const state = await until(() => streamed["/photos/endless.jpg"]?.closed && streamed["/photos/endless.jpg"], { what: "the endless source let go" });
  assert.ok(state.written < 8 * 1024 * 1024, `the Worker stopped reading soon after the cap, not after ${state.written} bytes`);
  origin.requests.length = 0;
  const moved = await get(worker, "/images/300/photos/moved.jpg");
  assert.equal(moved.status, 502, "a redirect is not followed: the source is always {IMAGES_ORIGIN}/{path}");
  assert.deepEqual(origin.requests.map((r) => r.path), ["/photos/moved.jpg"]);
  assert.match(JSON.parse(moved.body).error.message, /answered 301 \(a redirect, not followed/);
  // The origin answered: the 502 says what, not that it "could not be reached" (which points at the network).
  for (const code of [500, 503, 403, 304]) {
    const answered = await get(worker, `/images/300/photos/status-${code}.jpg`);
    assert.equal(answered.status, 502, `${code}`);
    assert.deepEqual(JSON.parse(answered.body).error, { code: "bad_gateway", message: `the image origin answered ${code}, not the whole image` });
  }
  const partial = await get(worker, "/images/300/photos/partial.jpg");
  assert.equal(partial.status, 502, "a part of the source is not the source");
  const stalled = await get(worker, "/images/300/photos/stalled.jpg");
  assert.equal(stalled.status, 504, "a source that stops sending is cut off after IMAGES_SOURCE_TIMEOUT_MS");
  assert.equal(JSON.parse(stalled.body).error.code, "gateway_timeout");
  await until(() => streamed["/photos/stalled.jpg"]?.closed, { what: "the stalled source let go" });
  const cut = await get(worker, "/images/300/photos/cut.png");
  assert.equal(cut.status, 502, "a source cut off mid-body is not an image (it was served as a shorter 'original')");
  // The origin answered: the 502 says its answer broke off, not that it "could not be reached".
  assert.deepEqual(JSON.parse(cut.body).error, { code: "bad_gateway", message: "the image origin's answer broke off before the whole image" });
  const empty = await get(worker, "/images/300/photos/empty.jpg");
  assert.equal(empty.status, 502, "an empty body is no image (it was served as a 0-byte 200)");
  assert.equal(JSON.parse(empty.body).error.code, "bad_gateway");
  for (const path of ["/images/300/photos/logo.svg", "/images/300/photos/svg-labelled.png", "/images/photos/logo.svg?format=png"]) {
    const svg = await get(worker, path);
    assert.equal(svg.status, 415, `${path}: an SVG is never served`);
    assert.equal(JSON.parse(svg.body).error.code, "unsupported_media_type");
  }
  const errorPage = await get(worker, "/images/300/photos/error.png");
  assert.equal(errorPage.status, 415, "an error page labelled image/png is not served as the original");
  assert.equal(JSON.parse(errorPage.body).error.code, "unsupported_media_type");
  const labelled = await get(worker, "/images/150/photos/label.jpg", { accept: "image/jpeg" });
  assert.equal(labelled.status, 200, "image/jpg is a JPEG");
  assert.deepEqual(await decoded(labelled.body), { width: 150, height: 100, format: "jpeg" });
  assert.equal(labelled.headers.get("x-content-type-options"), "nosniff");
  assert.ok(fixtures["/photos/noise.jpg"].body.length < MAX_SOURCE);
  // Every request for it would end so: the original is stored in its place (not transformed again each time).
  for (const cache of ["MISS", "HIT"]) {
    const oversized = await get(worker, "/images/photos/noise.jpg?w=500&format=png");
    assert.equal(oversized.status, 200, cache);
    assert.equal(oversized.headers.get("x-image-transform"), "too large; served the original", cache);
    assert.equal(oversized.headers.get("x-cache"), cache);
    assert.equal(oversized.headers.get("content-type"), "image/jpeg", cache);
    assert.deepEqual(oversized.body, fixtures["/photos/noise.jpg"].body, `${cache}: the original instead`);
  }
  for (let i = 0; i < 2; i++) {
    const broken = await get(worker, "/images/100/photos/rows-cut.png");
    assert.equal(broken.status, 200);
    assert.equal(broken.headers.get("content-type"), "image/png");
    assert.equal(broken.headers.get("x-content-type-options"), "nosniff");
    assert.match(broken.headers.get("x-image-transform"), /failed/);
    assert.deepEqual(broken.body, fixtures["/photos/rows-cut.png"].body, "the original bytes");
    assert.equal(broken.headers.get("x-cache"), "MISS", "a fallback is never cached");
  }
  // An image by its first bytes whose header never says its size is no image a browser shows: they were served,
  // 200 and marked failed, as "the original". (A PNG whose header says its size but that breaks off before its
  // first pixel is told apart: see the PNG tests below.)
  for (const path of ["/images/300/photos/broken.png", "/images/300/photos/tiny.jpg"]) {
    const unreadable = await get(worker, path);
    assert.equal(unreadable.status, 502, path);
    assert.deepEqual(JSON.parse(unreadable.body).error, { code: "bad_gateway", message: "the source image is cut short or corrupt: its header does not say its size" }, path);
  }
  const unconfigured = await startWorker();
  try {
    // Every URL under /images, well-formed or not: without an origin there is no image service to be told about it.
    for (const path of ["/images/300/photos/land.jpg", "/images/0/photos/land.jpg", "/images/300/photos/land.jpg?format=bogus"]) {
      const answer = await get(unconfigured, path);
      assert.equal(answer.status, 404, `no IMAGES_ORIGIN: ${path}`);
      assert.equal(JSON.parse(answer.body).error.code, "not_found", path);
    }
  } finally {
    await unconfigured.stop();
  }
});

test("a transform that yields no bytes (a PNG whose pixel data is cut short) serves the original, marked, and stores nothing", async () => {
  // Miniflare's resizer answers such a PNG with 200 and an empty body: it was served as a 0-byte image/png and stored,
  // immutable, as the variant, so every client got an empty image for IMAGES_CACHE_TTL.
  for (const time of ["first", "second"]) {
    const cut = await get(worker, "/images/100/photos/rows-cut.png");
    assert.equal(cut.status, 200, time);
    assert.match(cut.headers.get("x-image-transform") ?? "", /failed/, `${time}: marked`);
    assert.equal(cut.headers.get("x-cache"), "MISS", `${time}: never stored`);
    assert.equal(cut.headers.get("etag"), null, `${time}: a fallback has no tag`);
    assert.deepEqual(cut.body, fixtures["/photos/rows-cut.png"].body, `${time}: the original bytes, not none`);
  }
});

test("an original whose header declares more pixels than a variant can be made from is refused 413, not served in its place", async () => {
  // No resizer takes it (Cloudflare's limit is 100 megapixels), and its bytes were then served as
  // "the original", marked failed: a decompression bomb passed on to every browser that asked for a thumbnail.
  assert.ok(fixtures["/photos/bomb.png"].body.length < 1024);
  // The AVIF: Miniflare's binding reads no AVIF, so its transform fails and the original would be served.
  for (const path of ["/images/100/photos/bomb.png", "/images/photos/bomb.png?format=webp", "/images/100/photos/bomb-exif.jpg", "/images/100/photos/bomb-junk.jpg", "/images/100/photos/bomb.avif", "/images/100/photos/bomb-padded.avif", "/images/100/photos/bomb-sequence.avif", "/images/100/photos/bomb-grid.avif"]) {
    const bomb = await get(worker, path);
    assert.equal(bomb.status, 413, path);
    const { error } = JSON.parse(bomb.body);
    assert.equal(error.code, "payload_too_large", path);
    assert.match(error.message, /50000 x 50000 px, more than a variant can be made from/, path);
  }
  // An AVIF naming more grids than the size check reads: their canvases are not all read, so it is refused.
  const grids = await get(worker, "/images/100/photos/bomb-grids.avif");
  assert.equal(grids.status, 413);
  const { error } = JSON.parse(grids.body);
  assert.equal(error.code, "payload_too_large");
  assert.match(error.message, /more than 8 grid images, more than the size check reads/);
});

test("an animation whose frames together pass 100 megapixels is refused 413, not served in a variant's place", async () => {
  // Each frame is under the per-image limit, so only the first was looked at: the original (Miniflare writes no GIF,
  // and reads none of these fabricated frames) was served, for every browser to decode 2,000 megapixel frames.
  assert.ok(fixtures["/photos/frames.gif"].body.length < 64 * 1024);
  for (const path of ["/images/100/photos/frames.gif", "/images/100/photos/frames.png", "/images/100/photos/frames.webp?format=png"]) {
    const bomb = await get(worker, path);
    assert.equal(bomb.status, 413, `${path}: ${bomb.headers.get("x-image-transform")}`);
    const { error } = JSON.parse(bomb.body);
    assert.equal(error.code, "payload_too_large", path);
    assert.match(error.message, /1000 x 1000 px in 101 frames or more, more than a variant can be made from \(at most 100 megapixels in all its frames\)/, path);
  }
  // An AVIF sequence's frames are its track's samples, counted as a GIF's frames are (Miniflare reads no AVIF).
  const sequence = await get(worker, "/images/100/photos/frames.avif");
  assert.equal(sequence.status, 413, `frames.avif: ${sequence.headers.get("x-image-transform")}`);
  assert.match(JSON.parse(sequence.body).error.message, /1000 x 1000 px in 2000 frames or more/);
  const clip = await get(worker, "/images/32/photos/clip.avif");
  assert.equal(clip.status, 200, "a short sequence is no bomb");
  assert.deepEqual(clip.body, fixtures["/photos/clip.avif"].body);
  // A small animation is no bomb: its original is served, as any failed transform's is.
  const spinner = await get(worker, "/images/32/photos/spinner.gif");
  assert.equal(spinner.status, 200);
  assert.match(spinner.headers.get("x-image-transform"), /failed/);
  assert.deepEqual(spinner.body, fixtures["/photos/spinner.gif"].body);
});

test("cf-image mode: the source fetch carries the documented cf.image object; a resize error serves the original", async () => {
  // Image Resizing runs only on Cloudflare's network, so this observes what the Worker asks for: Miniflare hands
  // every subrequest (with its `cf` object) to this outbound service, which stands in for the zone in front of the
  // origin — it forwards to the real origin and reports a resize error (`cf-resized: err=...`) for one path.
  const seen = [];
  const cfWorker = await startWorker({
    // The qualities listed bound `q` (the default, 85, among them).
    vars: { IMAGES_ORIGIN: origin.url, IMAGES_MODE: "cf-image", IMAGES_SOURCE_PREFIXES: '["photos/"]', IMAGES_ALLOWED_QUALITIES: "[70, 85]" },
    workerOptions: {
      async outboundService(request) {
        seen.push({ url: new URL(request.url).pathname, image: request.cf?.image });
        const upstream = await fetch(request.url);
        const headers = new Headers(upstream.headers);
        // Resized answers carry Cf-Resized; one without it was not resized (the zone has no Image Resizing).
        if (request.cf?.image && /\/(square\.png|bomb\.png|bomb\.gif|panorama\.jpg|tiny\.jpg)$/.test(request.url)) headers.set("cf-resized", "err=9422");
        else if (request.cf?.image && !request.url.endsWith("/tall.png")) headers.set("cf-resized", "internal=ok/- q=0");
        return new Response(await upstream.arrayBuffer(), { status: upstream.status, headers });
      },
    },
  });
  try {
    const response = await get(cfWorker, "/images/photos/land.jpg?w=300&h=200&fit=cover&q=70&dpr=1.5", {
      accept: "image/webp",
    });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("x-cache"), "MISS");
    assert.deepEqual(seen, [
      {
        url: "/photos/land.jpg",
        image: { width: 450, height: 300, fit: "cover", quality: 70, format: "webp" },
      },
    ]);
    seen.length = 0;
    const unlisted = await get(cfWorker, "/images/photos/land.jpg?w=300&q=71");
    assert.equal(unlisted.status, 400, "a quality IMAGES_ALLOWED_QUALITIES does not list");
    assert.match(JSON.parse(unlisted.body).error.message, /`q`.*70, 85 \(IMAGES_ALLOWED_QUALITIES\)/);
    assert.deepEqual(seen, [], "refused before any fetch");
    await get(cfWorker, "/images/640/photos/land.jpg");
    assert.deepEqual(
      seen[0].image,
      { width: 640, height: 4096, fit: "scale-down", quality: 85 },
      "no format: the source's stays; the side left open is bounded by IMAGES_MAX_SIDE",
    );

    seen.length = 0;
    const failed = await get(cfWorker, "/images/100/photos/square.png");
    assert.equal(failed.status, 200);
    assert.match(failed.headers.get("x-image-transform"), /failed/);
    assert.deepEqual(failed.body, fixtures["/photos/square.png"].body, "the original bytes");
    assert.deepEqual(seen.map((s) => [s.url, Boolean(s.image)]), [
      ["/photos/square.png", true],
      ["/photos/square.png", false],
    ], "a second fetch without options fetched the original");

    const bomb = await get(cfWorker, "/images/100/photos/bomb.png");
    assert.equal(bomb.status, 413, "nor, in this mode, the original of a resize error that declares 50,000 x 50,000 px");
    assert.equal(JSON.parse(bomb.body).error.code, "payload_too_large");
    const gifBomb = await get(cfWorker, "/images/100/photos/bomb.gif");
    assert.equal(gifBomb.status, 413, "nor a GIF whose 1 x 1 screen frames 50,000 x 50,000 px");
    assert.match(JSON.parse(gifBomb.body).error.message, /50000 x 50000 px/);
    // Cloudflare's answer for an SVG source is labelled image/svg+xml: refused as no image type.
    assert.equal((await get(cfWorker, "/images/100/photos/logo.svg")).status, 415, "an SVG is never served");
    const tiny = await get(cfWorker, "/images/100/photos/tiny.jpg");
    assert.equal(tiny.status, 502, "nor three bytes of JPEG whose resize failed");
    assert.match(JSON.parse(tiny.body).error.message, /cut short or corrupt/);
    // A long side alone is no bomb: the panorama Cloudflare will not resize is served as the original, as before.
    const panorama = await get(cfWorker, "/images/100/photos/panorama.jpg");
    assert.equal(panorama.status, 200, "an honest 12,800 x 600 px photo is not refused");
    assert.match(panorama.headers.get("x-image-transform"), /failed/);
    assert.deepEqual(panorama.body, fixtures["/photos/panorama.jpg"].body, "the original bytes");

    seen.length = 0;
    for (let i = 0; i < 2; i++) {
      const unresized = await get(cfWorker, "/images/10/photos/tall.png");
      assert.equal(unresized.status, 200);
      assert.match(unresized.headers.get("x-image-transform"), /failed/, "no Cf-Resized: the original, marked");
      assert.equal(unresized.headers.get("x-cache"), "MISS", "and never stored as the variant");
      assert.equal(unresized.headers.get("cache-control"), "no-store");
      assert.deepEqual(unresized.body, fixtures["/photos/tall.png"].body);
    }
    assert.equal(seen.length, 2, "one fetch each: the answer was the original already");
  } finally {
    await cfWorker.stop();
  }
});

test("an Apple-optimised PNG (CgBI, from an iOS app bundle) that cannot be resized is refused 415 saying so, not a 502", async () => {
  // Xcode's pngcrush writes a CgBI chunk before IHDR, raw deflate and BGRA pixels: no browser or resizer reads it,
  // and the origin did answer the whole file, so it is no bad gateway.
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(40, 0);
  ihdr.writeUInt32BE(30, 4);
  ihdr[8] = 8;
  ihdr[9] = 6;
  const pixels = deflateSync(Buffer.alloc(30 * (1 + 40 * 4))).subarray(2); // raw deflate, no zlib header
  fixtures["/photos/apple.png"] = {
    type: "image/png",
    body: Buffer.concat([
      Buffer.from("\x89PNG\r\n\x1a\n", "latin1"),
      chunk("CgBI", Buffer.from([0x50, 0x00, 0x20, 0x02])),
      chunk("IHDR", ihdr),
      chunk("IDAT", pixels),
      chunk("IEND", Buffer.alloc(0)),
    ]),
  };
  const answer = await get(worker, "/images/20/photos/apple.png");
  assert.equal(answer.status, 415, answer.body.toString());
  assert.deepEqual(JSON.parse(answer.body).error, {
    code: "unsupported_media_type",
    message: "the source is an Apple-optimised PNG (CgBI), which browsers cannot show: serve a standard PNG",
  });
  assert.equal(answer.headers.get("cache-control"), "no-store");
});

test("a PNG with an unknown critical chunk before its pixels (CgBI after IHDR too) is refused 415, not served as the original", async () => {
  // A decoder that meets a critical chunk it does not know refuses the image (PNG spec §5.4): the resize failed, and
  // the bytes no browser decodes were served as a 200 "original".
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  assert.equal(plain.toString("latin1", 12, 16), "IHDR");
  const withChunk = (type, data) =>
    Buffer.concat([plain.subarray(0, ihdrEnd), chunk(type, data), plain.subarray(ihdrEnd)]);
  fixtures["/photos/critical.png"] = { type: "image/png", body: withChunk("XXXX", Buffer.from("hello")) };
  fixtures["/photos/apple-late.png"] = { type: "image/png", body: withChunk("CgBI", Buffer.from([0x50, 0x00, 0x20, 0x02])) };
  // An ancillary chunk of a name nobody knows is passed over by every decoder: resized as any PNG.
  fixtures["/photos/ancillary.png"] = { type: "image/png", body: withChunk("xXXX", Buffer.from("hello")) };
  for (const [path, message] of [
    ["/images/20/photos/critical.png", "the source PNG has an unknown critical chunk (XXXX) before its pixels, which browsers cannot show: serve a standard PNG"],
    ["/images/20/photos/apple-late.png", "the source is an Apple-optimised PNG (CgBI), which browsers cannot show: serve a standard PNG"],
  ]) {
    const answer = await get(worker, path);
    assert.equal(answer.status, 415, `${path}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
    assert.deepEqual(JSON.parse(answer.body).error, { code: "unsupported_media_type", message }, path);
    assert.equal(answer.headers.get("cache-control"), "no-store", path);
  }
  const ancillary = await get(worker, "/images/20/photos/ancillary.png");
  assert.equal(ancillary.status, 200);
  assert.equal(ancillary.headers.get("x-image-transform"), null, "resized");
  assert.deepEqual(await decoded(ancillary.body), { width: 20, height: 15, format: "png" });
});

test("a PNG with a chunk type that is not four letters before its pixels is refused 502 as corrupt, not served as the original", async () => {
  // A decoder stops at such a chunk (libpng's "invalid chunk type"), before any pixel: no browser shows the bytes
  // that were served as a 200 "original" after the failed transform.
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  fixtures["/photos/no-chunk.png"] = {
    type: "image/png",
    body: Buffer.concat([plain.subarray(0, ihdrEnd), chunk("\0\0\0\0", Buffer.from("junk")), plain.subarray(ihdrEnd)]),
  };
  const answer = await get(worker, "/images/20/photos/no-chunk.png");
  assert.equal(answer.status, 502, `${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
  assert.deepEqual(JSON.parse(answer.body).error, {
    code: "bad_gateway",
    message: "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
  });
});

test("a PNG whose chunk length passes 2^31 - 1, or that ends (IEND) before its pixels, is refused 502 as corrupt, not served as the original", async () => {
  // libpng reads a chunk's length as a PNG 31-bit integer and stops at a larger one ("PNG unsigned integer out of
  // range", in png_read_chunk_header, beside its chunk type check), and refuses an IEND before any IDAT ("out of
  // place"): no pixel is decoded, so no browser shows the bytes served as a 200 "original" after the failed transform.
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  const overLong = chunk("tEXt", Buffer.from("a\0b"));
  overLong.writeUInt32BE(0x8000_0000, 0);
  fixtures["/photos/over-long.png"] = {
    type: "image/png",
    body: Buffer.concat([plain.subarray(0, ihdrEnd), overLong, plain.subarray(ihdrEnd)]),
  };
  fixtures["/photos/ended-early.png"] = {
    type: "image/png",
    body: Buffer.concat([plain.subarray(0, ihdrEnd), chunk("IEND", Buffer.alloc(0)), plain.subarray(ihdrEnd)]),
  };
  for (const path of ["/images/20/photos/over-long.png", "/images/20/photos/ended-early.png"]) {
    const answer = await get(worker, path);
    assert.equal(answer.status, 502, `${path}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
    assert.deepEqual(JSON.parse(answer.body).error, {
      code: "bad_gateway",
      message: "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
    }, path);
    assert.equal(answer.headers.get("cache-control"), "no-store", path);
  }
});

test("a PNG that ends before its first IDAT (cut short, no IEND) is refused 502 as corrupt, not served as the original", async () => {
  // Its header says a size, but no decoder reads a pixel from it (libpng stops at the missing bytes): served as a
  // 200 "original" after the failed transform, no browser shows it — as with an IEND before IDAT.
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  for (const [name, body] of [
    ["after-text", Buffer.concat([plain.subarray(0, ihdrEnd), chunk("tEXt", Buffer.from("Title\0cut"))])],
    ["mid-header", plain.subarray(0, ihdrEnd + 5)],
  ]) {
    fixtures[`/photos/cut-${name}.png`] = { type: "image/png", body };
    const answer = await get(worker, `/images/20/photos/cut-${name}.png`);
    assert.equal(answer.status, 502, `${name}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
    assert.deepEqual(JSON.parse(answer.body).error, {
      code: "bad_gateway",
      message: "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
    }, name);
  }
});

test("a PNG with a second IHDR before its pixels is refused 502 as corrupt, not served as the original", async () => {
  // libpng refuses an IHDR after the first ("out of place"), as it refuses an IEND before IDAT: no pixel is decoded.
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  fixtures["/photos/two-headers.png"] = {
    type: "image/png",
    body: Buffer.concat([plain.subarray(0, ihdrEnd), plain.subarray(8, ihdrEnd), plain.subarray(ihdrEnd)]),
  };
  const answer = await get(worker, "/images/20/photos/two-headers.png");
  assert.equal(answer.status, 502, `${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
  assert.deepEqual(JSON.parse(answer.body).error, {
    code: "bad_gateway",
    message: "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
  });
});

test("a PNG with a second PLTE before its pixels is refused 502 as corrupt when its original would be served", async () => {
  // libpng refuses a duplicate PLTE in an indexed PNG (a chunk error there; in another colour type it only warns)
  // and the png crate with DuplicateChunk, so no browser draws it. sharp decodes it, so a variant is made and served; but where the resize fails (cf-image mode,
  // Cloudflare's error here) its original was served as a 200 no browser shows.
  fixtures["/photos/two-palettes.png"] = { type: "image/png", body: indexedPng(palette, palette) };
  fixtures["/photos/one-palette.png"] = { type: "image/png", body: indexedPng(palette) };
  const made = await get(worker, "/images/20/photos/two-palettes.png");
  assert.equal(made.status, 200, "a resizer that decodes it makes a variant");
  assert.equal(made.headers.get("x-image-transform"), null);
  const cfWorker = await failingResizer();
  try {
    const answer = await get(cfWorker, "/images/20/photos/two-palettes.png");
    assert.equal(answer.status, 502, `${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
    assert.equal(
      JSON.parse(answer.body).error.message,
      "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
    );
    const one = await get(cfWorker, "/images/20/photos/one-palette.png");
    assert.equal(one.status, 200, "one PLTE: its original is served");
    assert.match(one.headers.get("x-image-transform"), /failed/);
  } finally {
    await cfWorker.stop();
  }
});

test("a palette PNG with no PLTE before its first IDAT is refused 502 as corrupt, not served as the original", async () => {
  // libpng stops at its IDAT ("Missing PLTE before IDAT", a chunk error) and the png crate (Chrome's, Skia's) with
  // PaletteRequired: no pixel is decoded. Miniflare's resizer fails on it too, so it was served as a 200 "original"
  // no browser shows. The same PNG with its PLTE, or with tRNS after it, is an image and is resized.
  fixtures["/photos/no-palette.png"] = { type: "image/png", body: indexedPng(chunk("tEXt", Buffer.from("a\0b"))) };
  fixtures["/photos/palette.png"] = { type: "image/png", body: indexedPng(palette, chunk("tRNS", Buffer.from([0]))) };
  const answer = await get(worker, "/images/20/photos/no-palette.png");
  assert.equal(answer.status, 502, `${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
  assert.equal(JSON.parse(answer.body).error.message, "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel");
  assert.equal(answer.headers.get("cache-control"), "no-store");
  const shown = await get(worker, "/images/20/photos/palette.png");
  assert.equal(shown.status, 200);
  assert.deepEqual((await sharp(shown.body).metadata()).width, 20);
});

test("an indexed PNG whose PLTE has no entry, more than 256 or a length not a multiple of 3 is refused 502 as corrupt when its original would be served", async () => {
  // libpng's png_handle_PLTE calls such a palette "invalid" (a chunk error in an indexed PNG; an empty one is
  // png_set_PLTE's "Invalid palette") and the png crate (Skia's Rust codec) ChunkLengthWrong: no browser draws it.
  // Where the resize fails (cf-image mode, Cloudflare's error here) its original was served as a 200.
  const cfWorker = await failingResizer();
  try {
    for (const [name, bytes] of [["empty", 0], ["five", 5], ["257-entries", 3 * 257]]) {
      fixtures[`/photos/palette-${name}.png`] = { type: "image/png", body: indexedPng(chunk("PLTE", Buffer.alloc(bytes, 7))) };
      const answer = await get(cfWorker, `/images/20/photos/palette-${name}.png`);
      assert.equal(answer.status, 502, `${name}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
      assert.equal(
        JSON.parse(answer.body).error.message,
        "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
      );
    }
    // One entry and 256 entries, the least and the most there may be: an image, its original served in place of the
    // failed variant. So is a truecolour PNG whose PLTE (a suggestion there) has an odd length: libpng only warns.
    const truecolour = (...chunks) => pngOf(2, 3, ...chunks);
    for (const [name, body] of [
      ["palette-1-entry", indexedPng(chunk("PLTE", Buffer.alloc(3, 7)))],
      ["palette-256-entries", indexedPng(chunk("PLTE", Buffer.alloc(768, 7)))],
      ["truecolour-odd-palette", truecolour(chunk("PLTE", Buffer.alloc(5, 7)))],
    ]) {
      await servedAsOriginal(cfWorker, name, body);
    }
  } finally {
    await cfWorker.stop();
  }
});

test("a truecolour PNG whose first PLTE has no entry is refused 502 as corrupt; a second PLTE or any PLTE in a greyscale PNG is drawn, its original served", async () => {
  // libpng (1.6.47 on) reads PLTE in a non-indexed PNG as a suggestion: its errors there are benign — a second PLTE
  // ("duplicate"), one after a tRNS it took ("out of place"), one in a greyscale PNG ("ignored") — so Firefox draws the
  // image. But a first PLTE of no entry is taken, and png_set_PLTE stops with "Invalid palette" whatever the colour
  // type; the png crate (Skia's Rust codec) refuses it too (ChunkLengthWrong): no browser draws it, yet it was served.
  const empty = chunk("PLTE", Buffer.alloc(0));
  const cfWorker = await failingResizer();
  try {
    for (const [name, body] of [
      ["rgb-empty-palette", pngOf(2, 3, empty)],
      ["rgba-empty-palette", pngOf(6, 4, empty)],
      // A PLTE of an invalid length is skipped (benign), so the empty one after it is the first taken.
      ["rgb-odd-then-empty-palette", pngOf(2, 3, chunk("PLTE", Buffer.alloc(5, 7)), empty)],
      // tRNS is invalid in a PNG with an alpha channel (skipped), so it does not make the empty PLTE out of place.
      ["rgba-trns-then-empty-palette", pngOf(6, 4, chunk("tRNS", Buffer.alloc(6)), empty)],
      // Firefox's libpng is built without bKGD reading (its pnglibconf.h has no PNG_READ_bKGD_SUPPORTED): a bKGD
      // is discarded as unknown and never makes the empty PLTE after it out of place.
      ["rgba-bkgd-then-empty-palette", pngOf(6, 4, chunk("bKGD", Buffer.alloc(6)), empty)],
      ["rgb-bkgd-then-empty-palette", pngOf(2, 3, chunk("bKGD", Buffer.from([0, 255, 0, 255, 0, 255])), empty)],
      // libpng discards a tRNS whose CRC is wrong (a warning), so it never makes the empty PLTE after it out of place.
      ["rgb-bad-crc-trns-then-empty-palette", pngOf(2, 3, badCrc(chunk("tRNS", Buffer.alloc(6))), empty)],
    ]) {
      fixtures[`/photos/${name}.png`] = { type: "image/png", body };
      const answer = await get(cfWorker, `/images/20/photos/${name}.png`);
      assert.equal(answer.status, 502, `${name}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
      assert.equal(
        JSON.parse(answer.body).error.message,
        "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel",
        name,
      );
    }
    for (const [name, body] of [
      ["rgb-two-palettes", pngOf(2, 3, palette, palette)],
      ["rgb-palette-then-empty", pngOf(2, 3, palette, empty)],
      ["rgb-trns-then-empty-palette", pngOf(2, 3, chunk("tRNS", Buffer.alloc(6)), empty)],
      ["rgb-bkgd-trns-then-empty-palette", pngOf(2, 3, chunk("bKGD", Buffer.alloc(6)), chunk("tRNS", Buffer.alloc(6)), empty)],
      ["grey-two-palettes", pngOf(0, 1, palette, palette)],
      ["grey-empty-palette", pngOf(0, 1, empty)],
      ["grey-alpha-palette", pngOf(4, 2, palette)],
    ]) {
      await servedAsOriginal(cfWorker, name, body);
    }
  } finally {
    await cfWorker.stop();
  }
});

test("a PNG whose IHDR no decoder accepts (a zero side, a bit depth or interlace method there is none of) is refused 502 as corrupt, not served as the original", async () => {
  // libpng's png_check_IHDR ("Invalid IHDR data") and the png crate refuse it before any pixel; Miniflare's resizer
  // fails on it, so its bytes were served as a 200 "original" no browser shows.
  const header = (width, depth, colour, interlace) => {
    const data = Buffer.alloc(13);
    data.writeUInt32BE(width, 0);
    data.writeUInt32BE(30, 4);
    data[8] = depth;
    data[9] = colour;
    data[12] = interlace;
    return chunk("IHDR", data);
  };
  const pixels = chunk("IDAT", deflateSync(Buffer.alloc(30 * (1 + 40 * 3))));
  const png = (ihdr) => Buffer.concat([Buffer.from("\x89PNG\r\n\x1a\n", "latin1"), ihdr, pixels, chunk("IEND", Buffer.alloc(0))]);
  for (const [name, ihdr] of [
    ["zero-width", header(0, 8, 2, 0)],
    ["depth-3", header(40, 3, 2, 0)],
    ["rgb-depth-4", header(40, 4, 2, 0)],
    ["interlace-2", header(40, 8, 2, 2)],
  ]) {
    fixtures[`/photos/ihdr-${name}.png`] = { type: "image/png", body: png(ihdr) };
    const answer = await get(worker, `/images/20/photos/ihdr-${name}.png`);
    assert.equal(answer.status, 502, `${name}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
    assert.match(JSON.parse(answer.body).error.message, /^the source image is cut short or corrupt/, name);
  }
});

test("a PNG whose IHDR's CRC is wrong, or an indexed PNG whose PLTE's CRC is wrong, is refused 502 as corrupt; a truecolour or greyscale PNG's is drawn, its original served", async () => {
  // Chrome's png crate refuses any critical chunk whose CRC is wrong (headless Chromium fired onerror for each of
  // these). Firefox's libpng refuses the IHDR's and an indexed PNG's PLTE's (critical there), but reads a truecolour
  // or greyscale PNG's PLTE as ancillary and only warns: Firefox draws those, so their originals are served. Where
  // the resize fails (cf-image mode, Cloudflare's error here) the refused ones were served as a 200 no browser shows.
  const plain = pngOf(2, 3);
  // The IHDR's CRC: the signature's 8 bytes, then its length, type and 13 bytes of data, then the CRC's 4.
  const badHeader = Buffer.from(plain);
  badHeader[32] ^= 1;
  const cfWorker = await failingResizer();
  try {
    for (const [name, body, message] of [
      ["ihdr-bad-crc", badHeader, "the source image is cut short or corrupt: its header does not say its size"],
      ["indexed-palette-bad-crc", indexedPng(badCrc(palette)), "the source image is cut short or corrupt: its header says its size, but it breaks off before its first pixel"],
    ]) {
      fixtures[`/photos/${name}.png`] = { type: "image/png", body };
      const answer = await get(cfWorker, `/images/20/photos/${name}.png`);
      assert.equal(answer.status, 502, `${name}: ${answer.headers.get("x-image-transform")} ${answer.body.length} bytes`);
      assert.equal(JSON.parse(answer.body).error.message, message, name);
    }
    for (const [name, body] of [
      ["ihdr-crc-intact", plain],
      ["indexed-palette-crc-intact", indexedPng(palette)],
      ["rgb-palette-bad-crc", pngOf(2, 3, badCrc(palette))],
      ["grey-palette-bad-crc", pngOf(0, 1, badCrc(palette))],
    ]) {
      await servedAsOriginal(cfWorker, name, body);
    }
  } finally {
    await cfWorker.stop();
  }
});

test("a PNG whose first IDAT lies past the first bytes read is served as the original, and refused 502 only when it ends before that IDAT", async () => {
  // 12,000 text chunks (~180 KB, past the 128 KiB first read) before its pixels: Miniflare's resizer gives up on so
  // many chunks, while browsers show it. The walk follows its chunks into the next read rather than taking the end
  // of the first for the end of the image; cut inside those chunks, past the first read, it has no pixel.
  const plain = await solid(40, 30).png().toBuffer();
  const ihdrEnd = 8 + 8 + 13 + 4;
  const texts = Array.from({ length: 12_000 }, (_, i) => chunk("tEXt", Buffer.from(`k${i % 10}\0v`)));
  const body = Buffer.concat([plain.subarray(0, ihdrEnd), ...texts, plain.subarray(ihdrEnd)]);
  assert.ok(body.length > 128 * 1024 && body.length < MAX_SOURCE);
  fixtures["/photos/chatty.png"] = { type: "image/png", body };
  fixtures["/photos/chatty-cut.png"] = { type: "image/png", body: body.subarray(0, 150_000) };
  const shown = await get(worker, "/images/20/photos/chatty.png");
  assert.equal(shown.status, 200);
  assert.match(shown.headers.get("x-image-transform"), /failed/, "the resizer gave up: the original is served");
  assert.deepEqual(shown.body, body);
  const cut = await get(worker, "/images/20/photos/chatty-cut.png");
  assert.equal(cut.status, 502, `${cut.headers.get("x-image-transform")} ${cut.body.length} bytes`);
  assert.match(JSON.parse(cut.body).error.message, /^the source image is cut short or corrupt/);
});
