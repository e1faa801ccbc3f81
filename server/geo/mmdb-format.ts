// Just enough of the MaxMind DB format (https://maxmind.github.io/MaxMind-DB/)
// to walk the search tree and pull the few fields popsteer needs out of each
// data record, without building the full record objects. Slow path only.
// Every read is bounds-checked so a corrupt file fails with MmdbFormatError
// instead of producing a wrong index.

export class MmdbFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MmdbFormatError';
  }
}

/** Reads the two records of each search-tree node (record size 24, 28 or 32 bits). */
export function treeRecordReader(db: Buffer, recordSize: number, nodeCount: number): (node: number, bit: number) => number {
  const treeBytes = (recordSize / 4) * nodeCount;
  if (treeBytes > db.length) throw new MmdbFormatError(`search tree (${treeBytes} bytes) is longer than the file (${db.length} bytes): truncated`);
  switch (recordSize) {
    case 24:
      return (node, bit) => {
        const o = node * 6 + bit * 3;
        return (db[o] << 16) | (db[o + 1] << 8) | db[o + 2];
      };
    case 28:
      return (node, bit) => {
        const o = node * 7;
        if (bit === 0) return ((db[o + 3] & 0xf0) << 20) | (db[o] << 16) | (db[o + 1] << 8) | db[o + 2];
        return ((db[o + 3] & 0x0f) << 24) | (db[o + 4] << 16) | (db[o + 5] << 8) | db[o + 6];
      };
    case 32:
      return (node, bit) => db.readUInt32BE(node * 8 + bit * 4);
    default:
      throw new MmdbFormatError(`unsupported record size ${recordSize}`);
  }
}

const TYPE_POINTER = 1;
const TYPE_STRING = 2;
const TYPE_DOUBLE = 3;
const TYPE_BYTES = 4;
const TYPE_UINT16 = 5;
const TYPE_UINT32 = 6;
const TYPE_MAP = 7;
const TYPE_INT32 = 8;
const TYPE_UINT64 = 9;
const TYPE_UINT128 = 10;
const TYPE_ARRAY = 11;
const TYPE_BOOLEAN = 14;
const TYPE_FLOAT = 15;
const MAX_NESTING = 32;

/** Selective reader of the data section. Positions are absolute offsets into the file. */
export class MmdbDataReader {
  private readonly db: Buffer;
  private readonly dataStart: number;
  private readonly dataEnd: number;
  // Result of the last readControl(): type, size and where the payload starts.
  private type = 0;
  private size = 0;
  private payload = 0;

  constructor(db: Buffer, dataStart: number, dataEnd: number) {
    this.db = db;
    this.dataStart = dataStart;
    this.dataEnd = dataEnd;
  }

  /** Absolute position of the record a tree pointer (already minus nodeCount + 16) refers to. */
  recordPosition(dataOffset: number): number {
    const pos = this.dataStart + dataOffset;
    if (dataOffset < 0 || pos >= this.dataEnd) throw new MmdbFormatError(`data pointer ${dataOffset} is outside the data section`);
    return pos;
  }

  /** Field `key` of the map at `pos`, dereferenced; -1 when absent or when `pos` is not a map. */
  mapField(pos: number, key: string): number {
    if (pos < 0) return -1;
    this.readControl(pos);
    if (this.type !== TYPE_MAP) return -1;
    let entries = this.size;
    let at = this.payload;
    while (entries-- > 0) {
      const keyPos = this.deref(at);
      const matches = this.stringEquals(keyPos, key);
      const valuePos = this.skip(at, 0);
      if (matches) return this.deref(valuePos);
      at = this.skip(valuePos, 0);
    }
    return -1;
  }

  /**
   * Positions (dereferenced) of several fields of the map at `pos` in one
   * pass: out[i] is the value of keys[i], or -1. Cheaper than mapField per
   * key when the map holds large inline values that would be skipped again.
   */
  mapFields(pos: number, keys: readonly string[], out: Int32Array): void {
    out.fill(-1);
    if (pos < 0) return;
    this.readControl(pos);
    if (this.type !== TYPE_MAP) return;
    let entries = this.size;
    let at = this.payload;
    let missing = keys.length;
    while (entries-- > 0 && missing > 0) {
      const keyPos = this.deref(at);
      const valuePos = this.skip(at, 0);
      for (let k = 0; k < keys.length; k++) {
        if (out[k] === -1 && this.stringEquals(keyPos, keys[k])) {
          out[k] = this.deref(valuePos);
          missing--;
          break;
        }
      }
      if (missing > 0 && entries > 0) at = this.skip(valuePos, 0);
    }
  }

  /** Element `index` of the array at `pos`, dereferenced; -1 when absent. */
  arrayItem(pos: number, index: number): number {
    if (pos < 0) return -1;
    this.readControl(pos);
    if (this.type !== TYPE_ARRAY || index >= this.size) return -1;
    let at = this.payload;
    for (let i = 0; i < index; i++) at = this.skip(at, 0);
    return this.deref(at);
  }

  /** Number at `pos` (double, float or integer types); NaN when absent or not a number. */
  number(pos: number): number {
    if (pos < 0) return NaN;
    this.readControl(pos);
    const { db, payload, size } = this;
    switch (this.type) {
      case TYPE_DOUBLE:
        if (size !== 8) throw new MmdbFormatError(`double of size ${size} at ${pos}`);
        return db.readDoubleBE(payload);
      case TYPE_FLOAT:
        if (size !== 4) throw new MmdbFormatError(`float of size ${size} at ${pos}`);
        return db.readFloatBE(payload);
      case TYPE_UINT16:
      case TYPE_UINT32:
      case TYPE_INT32:
      case TYPE_UINT64:
        if (size > 6) return NaN;
        return size === 0 ? 0 : db.readUIntBE(payload, size);
      default:
        return NaN;
    }
  }

  /** UTF-8 string at `pos`; "" when absent or not a string. */
  string(pos: number): string {
    if (pos < 0) return '';
    this.readControl(pos);
    if (this.type !== TYPE_STRING) return '';
    return this.db.toString('utf8', this.payload, this.payload + this.size);
  }

  private stringEquals(pos: number, text: string): boolean {
    this.readControl(pos);
    if (this.type !== TYPE_STRING || this.size !== text.length) return false;
    const { db, payload } = this;
    for (let i = 0; i < text.length; i++) if (db[payload + i] !== text.charCodeAt(i)) return false;
    return true;
  }

  /** Follows a pointer at `pos` (pointers never point to pointers). */
  private deref(pos: number): number {
    this.readControl(pos);
    if (this.type !== TYPE_POINTER) return pos;
    const target = this.size;
    this.readControl(target);
    if (this.type === TYPE_POINTER) throw new MmdbFormatError(`pointer to a pointer at ${pos}`);
    return target;
  }

  /** Position just after the value at `pos` (a pointer counts as its own bytes). */
  private skip(pos: number, depth: number): number {
    if (depth > MAX_NESTING) throw new MmdbFormatError(`values nested deeper than ${MAX_NESTING} at ${pos}`);
    this.readControl(pos);
    const { type, size, payload } = this;
    switch (type) {
      case TYPE_POINTER:
        return payload;
      case TYPE_MAP: {
        let at = payload;
        for (let i = 0; i < size; i++) at = this.skip(this.skip(at, depth + 1), depth + 1);
        return at;
      }
      case TYPE_ARRAY: {
        let at = payload;
        for (let i = 0; i < size; i++) at = this.skip(at, depth + 1);
        return at;
      }
      case TYPE_BOOLEAN:
        return payload;
      case TYPE_STRING:
      case TYPE_DOUBLE:
      case TYPE_BYTES:
      case TYPE_UINT16:
      case TYPE_UINT32:
      case TYPE_INT32:
      case TYPE_UINT64:
      case TYPE_UINT128:
      case TYPE_FLOAT:
        if (payload + size > this.dataEnd) throw new MmdbFormatError(`value at ${pos} runs past the data section: corrupt or truncated file`);
        return payload + size;
      default:
        throw new MmdbFormatError(`unexpected data type ${type} at ${pos}`);
    }
  }

  /**
   * Decodes the control byte(s) at `pos` into type/size/payload. For a
   * pointer, `size` holds the absolute target and `payload` the position
   * after the pointer.
   */
  private readControl(pos: number): void {
    const db = this.db;
    let at = this.checked(pos);
    const ctrl = db[at++];
    let type = ctrl >> 5;
    if (type === TYPE_POINTER) {
      const sizeBits = (ctrl >> 3) & 3;
      const high = ctrl & 7;
      this.checked(at + sizeBits);
      let offset: number;
      if (sizeBits === 0) offset = (high << 8) | db[at];
      else if (sizeBits === 1) offset = 2048 + ((high << 16) | (db[at] << 8) | db[at + 1]);
      else if (sizeBits === 2) offset = 526336 + ((high << 24) | (db[at] << 16) | (db[at + 1] << 8) | db[at + 2]);
      else offset = db.readUInt32BE(at);
      this.type = TYPE_POINTER;
      this.size = this.recordPosition(offset);
      this.payload = at + sizeBits + 1;
      return;
    }
    if (type === 0) type = 7 + db[this.checked(at++)];
    let size = ctrl & 31;
    if (size >= 29) {
      const extra = size - 28;
      this.checked(at + extra - 1);
      if (size === 29) size = 29 + db[at];
      else if (size === 30) size = 285 + ((db[at] << 8) | db[at + 1]);
      else size = 65821 + ((db[at] << 16) | (db[at + 1] << 8) | db[at + 2]);
      at += extra;
    }
    this.type = type;
    this.size = size;
    this.payload = at;
  }

  private checked(pos: number): number {
    if (pos < this.dataStart || pos >= this.dataEnd) throw new MmdbFormatError(`read at ${pos} is outside the data section: corrupt or truncated file`);
    return pos;
  }
}
