// Just enough of protobuf's wire format to read, edit and write ONNX files (ModelProto) without a protobuf
// library or the onnx Python package: fields stay raw bytes until a caller parses the message it cares about.
// Used at load by the worker (uint8-input.ts) and by hack/onnx's offline rewriters.

export type Field = { num: number; wire: 0 | 1 | 2 | 5; value: bigint | Uint8Array };

function readVarint(b: Uint8Array, at: { i: number }): bigint {
  let result = 0n;
  for (let shift = 0n; ; shift += 7n) {
    if (at.i >= b.length) throw new Error("truncated varint");
    const byte = b[at.i++] as number;
    result |= BigInt(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return result;
  }
}

/** A packed repeated varint field's values (int64 as two's complement, as protobuf stores them). */
export function readPackedVarints(b: Uint8Array): bigint[] {
  const out: bigint[] = [];
  const at = { i: 0 };
  while (at.i < b.length) out.push(BigInt.asIntN(64, readVarint(b, at)));
  return out;
}

export function parseMessage(b: Uint8Array): Field[] {
  const out: Field[] = [];
  const at = { i: 0 };
  while (at.i < b.length) {
    const key = Number(readVarint(b, at));
    const num = key >>> 3;
    const wire = key & 7;
    if (wire === 0) out.push({ num, wire, value: readVarint(b, at) });
    else if (wire === 2 || wire === 1 || wire === 5) {
      const n = wire === 2 ? Number(readVarint(b, at)) : wire === 1 ? 8 : 4;
      if (at.i + n > b.length) throw new Error(`field ${num} runs past the end of its message`);
      out.push({ num, wire, value: b.subarray(at.i, at.i + n) });
      at.i += n;
    } else throw new Error(`unsupported wire type ${wire} (field ${num})`);
  }
  return out;
}

export function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n)); // negative int64 values are ten bytes, as protobuf writes them
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

export function writeMessage(fields: readonly Field[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of fields) {
    parts.push(Uint8Array.from(varint((f.num << 3) | f.wire)));
    if (f.wire === 0) parts.push(Uint8Array.from(varint(f.value as bigint)));
    else {
      const bytes = f.value as Uint8Array;
      if (f.wire === 2) parts.push(Uint8Array.from(varint(bytes.length)));
      parts.push(bytes);
    }
  }
  return Buffer.concat(parts);
}

export const bytesField = (num: number, value: Uint8Array | string): Field => ({
  num,
  wire: 2,
  value: typeof value === "string" ? Buffer.from(value) : value,
});
export const intField = (num: number, value: number | bigint): Field => ({ num, wire: 0, value: BigInt(value) });
export const text = (f: Field | undefined): string => (f ? Buffer.from(f.value as Uint8Array).toString() : "");
