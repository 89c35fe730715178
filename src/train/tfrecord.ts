/**
 * TFRecord framing, as TensorFlow writes it and TensorBoard reads it: `uint64 length`, `uint32
 * masked CRC32C(length bytes)`, the data, `uint32 masked CRC32C(data)`, all little-endian; the mask
 * is `((crc >>> 15) | (crc << 17)) + 0xa282ead8`. The TensorBoard writer frames its events with
 * {@link tfRecord}; readers of TFRecord files check both checksums with {@link maskedCrc32c}.
 *
 * @example
 * ```ts
 * import { maskedCrc32c, tfRecord } from "./tfrecord.ts";
 * const record = tfRecord(new Uint8Array([1, 2, 3]));
 * const view = new DataView(record.buffer);
 * view.getUint32(15, true) === maskedCrc32c(record.subarray(12, 15)); // true
 * ```
 *
 * @module
 */

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[i] = c >>> 0;
  }
  return table;
})();

/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as TFRecords and iSCSI use it.
 *
 * @example
 * ```ts
 * import { crc32c } from "./tfrecord.ts";
 * crc32c(new TextEncoder().encode("123456789")).toString(16); // "e3069283"
 * ```
 */
export function crc32c(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/**
 * The masked CRC-32C that TFRecord framing stores: `((crc >>> 15) | (crc << 17)) + 0xa282ead8`.
 *
 * @example
 * ```ts
 * import { maskedCrc32c } from "./tfrecord.ts";
 * maskedCrc32c(new Uint8Array(8)); // the check of an empty record's length field
 * ```
 */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/**
 * One TFRecord: the length, its masked CRC, the data, the data's masked CRC.
 *
 * @example
 * ```ts
 * import { tfRecord } from "./tfrecord.ts";
 * tfRecord(new Uint8Array([1, 2, 3])).length; // 8 + 4 + 3 + 4 = 19
 * ```
 */
export function tfRecord(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + data.length);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}
