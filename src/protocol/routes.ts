/**
 * The method table: which slice handles which method. A method handled twice, or exported by an
 * extension and handled by nobody, is a start-up error. A URL belongs to the first extension
 * that routes it (core first): another extension may route no operation (HEAD included) on a URL
 * any of whose requests the first one would answer, so `/greeting/admin` cannot shadow another
 * extension's `/greeting/:name`.
 *
 * @module
 */
import { OwnershipError, ProtocolError } from "../errors.ts";
import type { ServerSlice } from "../slices/slice.ts";
import { type BoundHandler, handlersOf, type MethodDefinition } from "./method.ts";

/** One API method with the slice that handles it. */
export interface Route {
  /** The method. */
  method: MethodDefinition;
  /** Its handler. */
  handler: BoundHandler;
  /** The slice the handler belongs to; requests get 503 until it started. */
  slice: ServerSlice;
}

/** The one key of a route: `<operation> <url>`, as `GET /api/v2/greeting/:name`. */
export function routeKey(method: { operation: string; url: string }): string {
  return `${method.operation} ${method.url}`;
}

const key = routeKey;

/** A URL owned by an extension, split in segments (`:x` matches any one segment). */
interface Owned {
  segments: string[];
  url: string;
  extension: string;
}

const isParam = (segment: string) => segment.startsWith(":");

/** Whether some request path matches both URLs. */
function overlap(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !isParam(a[i]) && !isParam(b[i])) return false;
  }
  return true;
}

/**
 * URL ownership across extensions, indexed so that 20,000 routes check in linear time: by
 * segment count and the first segment after `/api/v<N>`.
 */
class Ownership {
  readonly #buckets = new Map<string, Owned[]>();
  readonly #wild = new Map<number, Owned[]>();

  /** Claims `url` for `extension`; throws naming both when another extension owns an overlap. */
  claim(url: string, extension: string, slice: string): void {
    const segments = url.split("/");
    const head = segments[3] ?? "";
    const candidates = isParam(head)
      ? [...this.#buckets.entries()].filter(([k]) => k.startsWith(`${segments.length}|`))
        .flatMap(([, v]) => v)
      : [
        ...(this.#buckets.get(`${segments.length}|${head}`) ?? []),
        ...(this.#wild.get(segments.length) ?? []),
      ];
    for (const owned of candidates) {
      if (owned.extension !== extension && overlap(owned.segments, segments)) {
        throw new OwnershipError(
          "route.owned",
          extension,
          `extension ${extension} (slice ${slice}) routes ${url}, which overlaps ${owned.url} of extension ${owned.extension}: a URL belongs to its first owner`,
        );
      }
    }
    const entry = { segments, url, extension };
    if (isParam(head)) {
      const list = this.#wild.get(segments.length) ?? [];
      list.push(entry);
      this.#wild.set(segments.length, list);
    } else {
      const k = `${segments.length}|${head}`;
      const list = this.#buckets.get(k) ?? [];
      list.push(entry);
      this.#buckets.set(k, list);
    }
  }
}

/** Collects the routes of `slices` and checks them against the methods extensions export. */
export function collectRoutes(
  slices: readonly ServerSlice[],
  extensions: readonly { name: string; methods: readonly MethodDefinition[] }[],
): Route[] {
  const routes: Route[] = [];
  const byKey = new Map<string, ServerSlice>();
  const owners = new Ownership();
  const claimed = new Set<string>();
  for (const slice of slices) {
    for (const handler of handlersOf(slice)) {
      const other = byKey.get(key(handler.method));
      if (other) {
        throw new ProtocolError(
          "method.duplicate_handler",
          `method ${key(handler.method)} is handled by two slices: ${other.name} and ${slice.name}`,
        );
      }
      const url = handler.method.url;
      if (!claimed.has(`${slice.extensionName} ${url}`)) {
        owners.claim(url, slice.extensionName, slice.name);
        claimed.add(`${slice.extensionName} ${url}`);
      }
      byKey.set(key(handler.method), slice);
      routes.push({ method: handler.method, handler, slice });
    }
  }
  for (const extension of extensions) {
    for (const method of extension.methods) {
      if (!byKey.has(key(method))) {
        throw new ProtocolError(
          "method.unhandled",
          `method ${
            key(method)
          } exported by extension ${extension.name} has no handler: decorate a slice method with @handle()`,
        );
      }
    }
  }
  return routes;
}
