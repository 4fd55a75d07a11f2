/**
 * Unsigned LEB128 integers (7 bits a byte, low bits first), for the packed entries' lengths and times: most take one
 * to four bytes where a fixed field would take four or eight. Values up to 2^32 - 1.
 */

/** Writes `value` (a whole number, 0 ≤ value < 2^32) at `at`; returns where the next byte goes. */
export function writeVarint(out: Buffer, at: number, value: number): number {
  let v = value;
  let p = at;
  while (v >= 0x80) {
    out[p++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[p++] = v;
  return p;
}

/** A signed 32-bit integer as an unsigned one (zigzag: 0, -1, 1, -2... → 0, 1, 2, 3...). */
export function zigzag(value: number): number {
  return ((value << 1) ^ (value >> 31)) >>> 0;
}

export function unzigzag(value: number): number {
  return (value >>> 1) ^ -(value & 1);
}

/** Reads varints (and the odd double) in order from `bytes`, from `at`: one reused instance per reader, no allocation. */
export class ByteCursor {
  bytes: Buffer = Buffer.alloc(0);
  at = 0;

  varint(): number {
    const { bytes } = this;
    let p = this.at;
    let byte = bytes[p++] as number;
    let value = byte & 0x7f;
    let scale = 0x80;
    while (byte >= 0x80) {
      byte = bytes[p++] as number;
      value += (byte & 0x7f) * scale;
      scale *= 0x80;
    }
    this.at = p;
    return value;
  }

  double(): number {
    this.at += 8;
    return this.bytes.readDoubleLE(this.at - 8);
  }
}
