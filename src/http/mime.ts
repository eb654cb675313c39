/**
 * Content types of static files by file extension: the types a web console and its assets use
 * (the same values as hono's table, whose import this replaces: one table, no dependency loaded
 * into the server or into every sandbox for it). Text types carry `charset=utf-8`.
 *
 * @module
 */

const TYPES: ReadonlyMap<string, string> = new Map(Object.entries({
  aac: "audio/aac",
  avif: "image/avif",
  bin: "application/octet-stream",
  bmp: "image/bmp",
  css: "text/css; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  eot: "application/vnd.ms-fontobject",
  gif: "image/gif",
  gz: "application/gzip",
  htm: "text/html; charset=utf-8",
  html: "text/html; charset=utf-8",
  ico: "image/x-icon",
  ics: "text/calendar; charset=utf-8",
  jpeg: "image/jpeg",
  jpg: "image/jpeg",
  js: "text/javascript; charset=utf-8",
  json: "application/json",
  jsonld: "application/ld+json",
  map: "application/json",
  md: "text/markdown; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  mp3: "audio/mpeg",
  mp4: "video/mp4",
  mpeg: "video/mpeg",
  mts: "application/typescript; charset=utf-8",
  oga: "audio/ogg",
  ogv: "video/ogg",
  opus: "audio/opus",
  otf: "font/otf",
  pdf: "application/pdf",
  png: "image/png",
  svg: "image/svg+xml; charset=utf-8",
  tif: "image/tiff",
  tiff: "image/tiff",
  // Deno serves modules: .ts is TypeScript here, not an MPEG transport stream.
  ts: "application/typescript; charset=utf-8",
  ttf: "font/ttf",
  txt: "text/plain; charset=utf-8",
  wasm: "application/wasm",
  webm: "video/webm",
  webmanifest: "application/manifest+json",
  webp: "image/webp",
  woff: "font/woff",
  woff2: "font/woff2",
  xhtml: "application/xhtml+xml; charset=utf-8",
  xml: "application/xml; charset=utf-8",
  yaml: "application/yaml; charset=utf-8",
  yml: "application/yaml; charset=utf-8",
  zip: "application/zip",
}));

/**
 * The content type of a file by its extension (case-insensitive), or
 * `application/octet-stream` when the extension is unknown or missing.
 *
 * @param path a file name or path
 * @returns the content type to send
 * @example
 * ```ts
 * import { contentType } from "./mime.ts";
 * contentType("index.html"); // "text/html; charset=utf-8"
 * ```
 */
export function contentType(path: string): string {
  const dot = path.lastIndexOf(".");
  if (dot < 0 || path.indexOf("/", dot) >= 0) return "application/octet-stream";
  return TYPES.get(path.slice(dot + 1).toLowerCase()) ?? "application/octet-stream";
}
