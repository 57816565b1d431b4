// Remove identifying metadata from photos before they are sealed, in the reporter's browser.
// Same rules and same output bytes as service/domain/metadata.py (the no-JavaScript path); see the
// docstring there for why each segment or chunk is kept or dropped. No dependencies.

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const LABEL_EXIF = "EXIF (incl. GPS)";
const LABEL_XMP = "XMP";
const LABEL_IPTC = "IPTC/Photoshop";
const LABEL_COMMENT = "comment";
const LABEL_JFIF_THUMBNAIL = "JFIF thumbnail";
const LABEL_MPF = "MPF (embedded images)";
const LABEL_TRAILER = "data after the image";
const LABEL_PNG_TEXT = "PNG text";
const LABEL_PNG_EXIF = "PNG eXIf";
const LABEL_PNG_TIME = "PNG time";
const LABEL_C2PA = "C2PA content credentials";
const LABEL_OTHER = "other metadata";

const PNG_DROP = {
  tEXt: LABEL_PNG_TEXT,
  zTXt: LABEL_PNG_TEXT,
  iTXt: LABEL_PNG_TEXT,
  eXIf: LABEL_PNG_EXIF,
  tIME: LABEL_PNG_TIME,
  caBX: LABEL_C2PA,
};

export class MetadataError extends Error {
  constructor(message) {
    super(message);
    this.name = "MetadataError";
  }
}

export async function stripMetadata(file) {
  const data = new Uint8Array(await file.arrayBuffer());
  if (data.length >= 2 && data[0] === 0xff && data[1] === 0xd8) {
    const {parts, removed} = stripJpeg(data);
    return {blob: new Blob(parts, {type: "image/jpeg"}), kind: "jpeg", cleaned: true, removed};
  }
  // A file that starts like a PNG but is damaged is refused, not passed through as "other".
  if (data.length >= 4 && startsWith(data, 0, PNG_SIGNATURE.slice(0, 4))) {
    const {parts, removed} = stripPng(data);
    return {blob: new Blob(parts, {type: "image/png"}), kind: "png", cleaned: true, removed};
  }
  return {blob: file, kind: "other", cleaned: false, removed: []};
}

function startsWith(data, offset, prefix) {
  if (offset + prefix.length > data.length) return false;
  for (let i = 0; i < prefix.length; i++) {
    if (data[offset + i] !== prefix[i]) return false;
  }
  return true;
}

function ascii(text) {
  return Array.from(text, (c) => c.charCodeAt(0));
}

function addLabel(labels, label) {
  if (!labels.includes(label)) labels.push(label);
}

// ---------------------------------------------------------------------------------------- JPEG

function stripJpeg(data) {
  const n = data.length;
  const parts = [new Uint8Array([0xff, 0xd8])];
  const removed = [];
  let pos = 2;
  let seenScan = false;
  let orientationWritten = false;
  for (;;) {
    if (pos >= n) throw new MetadataError("JPEG ends before its end-of-image marker");
    if (data[pos] !== 0xff) throw new MetadataError("JPEG segment does not start with a marker");
    while (pos < n && data[pos] === 0xff) pos++; // fill bytes may precede any marker
    if (pos >= n) throw new MetadataError("JPEG ends inside a marker");
    const marker = data[pos];
    pos++;
    if (marker === 0xd9) {
      if (!seenScan) throw new MetadataError("JPEG has no image data");
      parts.push(new Uint8Array([0xff, 0xd9]));
      if (pos < n) addLabel(removed, LABEL_TRAILER);
      break;
    }
    if (marker === 0x01) {
      parts.push(new Uint8Array([0xff, 0x01]));
      continue;
    }
    if (marker === 0x00 || marker === 0xd8 || (marker >= 0xd0 && marker <= 0xd7)) {
      throw new MetadataError("unexpected JPEG marker");
    }
    if (pos + 2 > n) throw new MetadataError("JPEG ends inside a segment length");
    const length = (data[pos] << 8) | data[pos + 1];
    if (length < 2 || pos + length > n) throw new MetadataError("JPEG segment length is invalid");
    const end = pos + length;
    const payload = data.subarray(pos + 2, end);
    if (marker === 0xda) {
      const scanEnd = entropyEnd(data, end);
      parts.push(data.subarray(pos - 2, scanEnd));
      seenScan = true;
      pos = scanEnd;
      continue;
    }
    const [keep, label, replacement] = judgeSegment(marker, payload);
    if (label) addLabel(removed, label);
    if (replacement !== null) {
      parts.push(segment(marker, replacement));
    } else if (keep) {
      parts.push(new Uint8Array([0xff, marker]), data.subarray(pos, end));
    }
    if (label === LABEL_EXIF && !orientationWritten) {
      orientationWritten = true;
      const orientation = exifOrientation(payload);
      if (orientation !== null) parts.push(segment(0xe1, minimalExif(orientation)));
    }
    pos = end;
  }
  return {parts, removed};
}

function entropyEnd(data, pos) {
  const n = data.length;
  for (;;) {
    const q = data.indexOf(0xff, pos);
    if (q < 0 || q + 1 >= n) throw new MetadataError("JPEG image data is truncated");
    const following = data[q + 1];
    if (following === 0x00 || (following >= 0xd0 && following <= 0xd7)) {
      pos = q + 2; // stuffed byte or restart marker
      continue;
    }
    return q;
  }
}

function segment(marker, payload) {
  const out = new Uint8Array(payload.length + 4);
  const length = payload.length + 2;
  out[0] = 0xff;
  out[1] = marker;
  out[2] = length >> 8;
  out[3] = length & 0xff;
  out.set(payload, 4);
  return out;
}

const JFIF = ascii("JFIF\0");
const JFXX = ascii("JFXX\0");
const EXIF = ascii("Exif\0");
const XMP = ascii("http://ns.adobe.com/xap/1.0/\0");
const XMP_EXTENSION = ascii("http://ns.adobe.com/xmp/extension/\0");
const ICC = ascii("ICC_PROFILE\0");
const MPF = ascii("MPF\0");
const JUMBF = ascii("JP");
const ADOBE = ascii("Adobe");

// [keep as is, label of what was removed or "", replacement payload or null]
function judgeSegment(marker, payload) {
  if (marker === 0xfe) return [false, LABEL_COMMENT, null];
  if (marker < 0xe0 || marker > 0xef) return [true, "", null];
  const app = marker - 0xe0;
  const has = (prefix) => startsWith(payload, 0, prefix);
  if (app === 0) {
    if (has(JFIF)) {
      // The JFIF header may embed an uncompressed thumbnail of the original picture.
      if (payload.length > 14 || (payload.length === 14 && (payload[12] || payload[13]))) {
        const replacement = new Uint8Array(14);
        replacement.set(payload.subarray(0, 12));
        return [false, LABEL_JFIF_THUMBNAIL, replacement];
      }
      return [true, "", null];
    }
    if (has(JFXX)) return [false, LABEL_JFIF_THUMBNAIL, null];
  } else if (app === 1) {
    if (has(EXIF)) return [false, LABEL_EXIF, null];
    if (has(XMP) || has(XMP_EXTENSION)) return [false, LABEL_XMP, null];
  } else if (app === 2) {
    if (has(ICC)) return [true, "", null];
    if (has(MPF)) return [false, LABEL_MPF, null];
  } else if (app === 11) {
    if (has(JUMBF)) return [false, LABEL_C2PA, null];
  } else if (app === 13) {
    return [false, LABEL_IPTC, null];
  } else if (app === 14 && has(ADOBE)) {
    return [true, "", null];
  }
  return [false, LABEL_OTHER, null];
}

// The IFD0 Orientation value (2..8) of an EXIF payload, or null; never throws.
function exifOrientation(payload) {
  if (!startsWith(payload, 0, [...EXIF, 0])) return null;
  const tiff = payload.subarray(6);
  if (tiff.length < 8) return null;
  let little;
  if (startsWith(tiff, 0, [0x49, 0x49, 0x2a, 0x00])) little = true;
  else if (startsWith(tiff, 0, [0x4d, 0x4d, 0x00, 0x2a])) little = false;
  else return null;
  const u16 = (o) => (little ? tiff[o] | (tiff[o + 1] << 8) : (tiff[o] << 8) | tiff[o + 1]);
  const u32 = (o) => (little ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
  const ifd = u32(4);
  if (ifd < 8 || ifd + 2 > tiff.length) return null;
  const count = u16(ifd);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > tiff.length) return null;
    if (u16(entry) !== 0x0112) continue;
    if (u16(entry + 2) !== 3 || u32(entry + 4) !== 1) return null;
    const value = u16(entry + 8);
    return value >= 2 && value <= 8 ? value : null;
  }
  return null;
}

// An EXIF payload with one IFD0 entry, Orientation, and nothing else (big-endian TIFF).
function minimalExif(orientation) {
  return new Uint8Array([
    ...EXIF, 0,
    0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8,
    0, 1,
    0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, orientation, 0, 0,
    0, 0, 0, 0,
  ]);
}

// ----------------------------------------------------------------------------------------- PNG

let crcTable = null;

function crc32(data, start, end) {
  if (crcTable === null) {
    crcTable = new Uint32Array(256);
    for (let i = 0; i < 256; i++) {
      let c = i;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[i] = c >>> 0;
    }
  }
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = crcTable[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function isChunkType(data, offset) {
  for (let i = offset; i < offset + 4; i++) {
    const c = data[i];
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a))) return false;
  }
  return true;
}

function u32be(data, offset) {
  return ((data[offset] << 24) | (data[offset + 1] << 16) | (data[offset + 2] << 8) |
    data[offset + 3]) >>> 0;
}

function stripPng(data) {
  if (!startsWith(data, 0, PNG_SIGNATURE)) throw new MetadataError("PNG signature is damaged");
  const n = data.length;
  const parts = [data.subarray(0, 8)];
  const removed = [];
  let pos = 8;
  let first = true;
  let seenData = false;
  for (;;) {
    if (pos + 12 > n) throw new MetadataError("PNG ends before its IEND chunk");
    const length = u32be(data, pos);
    if (length > 0x7fffffff || !isChunkType(data, pos + 4)) {
      throw new MetadataError("PNG chunk header is invalid");
    }
    const kind = String.fromCharCode(...data.subarray(pos + 4, pos + 8));
    const end = pos + 12 + length;
    if (end > n) throw new MetadataError("PNG chunk is truncated");
    if (crc32(data, pos + 4, end - 4) !== u32be(data, end - 4)) {
      throw new MetadataError("PNG chunk checksum does not match");
    }
    if (first && (kind !== "IHDR" || length !== 13)) {
      throw new MetadataError("PNG does not start with IHDR");
    }
    first = false;
    const label = Object.hasOwn(PNG_DROP, kind) ? PNG_DROP[kind] : null;
    if (label) {
      addLabel(removed, label);
    } else {
      parts.push(data.subarray(pos, end));
      if (kind === "IDAT") seenData = true;
    }
    pos = end;
    if (kind === "IEND") break;
  }
  if (!seenData) throw new MetadataError("PNG has no image data");
  if (pos < n) addLabel(removed, LABEL_TRAILER);
  return {parts, removed};
}
