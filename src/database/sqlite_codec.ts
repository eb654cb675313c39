/**
 * JSON with the two values of SQLite that JSON lacks: byte arrays (BLOBs) and big integers.
 * The embedded database's child process and the server speak it, one object per line.
 *
 * @module
 */

/** `JSON.stringify` replacer: `Uint8Array` → `{"$bytes": base64}`, `bigint` → `{"$bigint": "…"}`. */
export function encodeValue(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return { $bigint: value.toString() };
  if (value instanceof Uint8Array) {
    let text = "";
    for (const byte of value) text += String.fromCharCode(byte);
    return { $bytes: btoa(text) };
  }
  return value;
}

/** `JSON.parse` reviver: the inverse of {@link encodeValue}. */
export function decodeValue(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const v = value as Record<string, unknown>;
    if (typeof v.$bytes === "string" && Object.keys(v).length === 1) {
      return Uint8Array.from(atob(v.$bytes), (c) => c.charCodeAt(0));
    }
    if (typeof v.$bigint === "string" && Object.keys(v).length === 1) return BigInt(v.$bigint);
  }
  return value;
}
