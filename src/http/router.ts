/**
 * The API router: a radix tree over method URLs made of literal segments and `:name` segments.
 *
 * Why not hono's router: profiling the server under wrk showed hono's matching and context
 * plumbing as the largest share of the JavaScript time per request. A radix tree that compares
 * with `startsWith` at an offset allocates nothing but the parameter values, which is what keeps
 * the in-process endpoint close to a bare `Deno.serve` (figures in the README).
 *
 * @module
 */

/** What a URL leads to: a value per operation, and the names of its parameters in order. */
export interface Leaf<T> {
  /** Handler per operation (`GET`, `POST`, ...). */
  readonly byOperation: Map<string, T>;
  /** Parameter names, in the order their values appear in the path. */
  readonly params: readonly string[];
  /** The URL pattern, as registered. */
  readonly url: string;
}

/** A match: the leaf and the (percent-decoded) parameter values in path order. */
export interface Match<T> {
  /** Where the path led. */
  leaf: Leaf<T>;
  /** Parameter values, in the order of `leaf.params`. */
  values: string[];
}

interface Node<T> {
  /** Literal text this node consumes (empty for the root and for parameter nodes). */
  prefix: string;
  /** Its first character code (comparing numbers beats comparing one-character strings). */
  first: number;
  /** Literal children, each starting with a different character. */
  children: Node<T>[];
  /** The same children by first character code: one lookup instead of a scan. */
  byFirst: Map<number, Node<T>>;
  /** The child for a `:name` segment. */
  param: Node<T> | undefined;
  /** What ends here. */
  leaf: Leaf<T> | undefined;
}

const node = <T>(prefix: string): Node<T> => ({
  prefix,
  first: prefix.charCodeAt(0),
  children: [],
  byFirst: new Map(),
  param: undefined,
  leaf: undefined,
});

/** Splits `/a/:b/c` into literal runs and parameter names: `["/a/", {b}, "/c"]`. */
function tokens(url: string): (string | { param: string })[] {
  const out: (string | { param: string })[] = [];
  let literal = "";
  for (const segment of url.split("/").slice(1)) {
    literal += "/";
    if (segment.startsWith(":")) {
      out.push(literal);
      out.push({ param: segment.slice(1) });
      literal = "";
    } else {
      literal += segment;
    }
  }
  if (literal) out.push(literal);
  return out;
}

/** Drops one trailing slash, so that `/a/` finds `/a` (as `/` stays `/`). */
function trim(path: string): string {
  return path.length > 1 && path.charCodeAt(path.length - 1) === 47 ? path.slice(0, -1) : path;
}

/** Routes paths to values registered per operation and URL pattern. */
export class Router<T> {
  readonly #root: Node<T> = node("");
  /** URLs without parameters, by path: one lookup for them. */
  readonly #exact = new Map<string, Leaf<T>>();
  /**
   * URLs whose only parameter is the last segment (`/resource/:id`, the common REST shape), by
   * the path before it. They give the same answer as the tree: the tree tries literals first,
   * and the only literal alternative at that depth is an exact URL, looked up before.
   */
  readonly #lastParam = new Map<string, Leaf<T>>();

  /**
   * Registers `value` for `operation` on `url` (`/api/v2/items/:id`). A parameter is a whole
   * segment. Returns false when that operation on that URL was registered already.
   */
  add(operation: string, url: string, value: T): boolean {
    let current = this.#root;
    const params: string[] = [];
    for (const token of tokens(trim(url))) {
      if (typeof token === "string") {
        current = this.#insert(current, token);
      } else {
        params.push(token.param);
        current = current.param ??= node("");
      }
    }
    // Two URLs that differ only in parameter names share a leaf; the first one's names win,
    // which is why methods are checked for duplicates by their URL pattern before this.
    current.leaf ??= { byOperation: new Map(), params, url };
    const shape = trim(url);
    if (params.length === 0) this.#exact.set(shape, current.leaf);
    const last = shape.lastIndexOf("/");
    if (params.length === 1 && shape[last + 1] === ":") {
      this.#lastParam.set(shape.slice(0, last), current.leaf);
    }
    if (current.leaf.byOperation.has(operation)) return false;
    current.leaf.byOperation.set(operation, value);
    return true;
  }

  /** Descends from `from` by the literal `text`, splitting nodes where the text diverges. */
  #insert(from: Node<T>, text: string): Node<T> {
    let current = from;
    let rest = text;
    while (rest.length > 0) {
      const child = current.children.find((c) => c.prefix[0] === rest[0]);
      if (!child) {
        const created = node<T>(rest);
        current.children.push(created);
        current.byFirst.set(created.first, created);
        return created;
      }
      let common = 0;
      const limit = Math.min(child.prefix.length, rest.length);
      while (common < limit && child.prefix[common] === rest[common]) common++;
      if (common < child.prefix.length) {
        // Split the child: keep the shared part here, move its tail one level down.
        const tail: Node<T> = {
          ...child,
          prefix: child.prefix.slice(common),
          first: child.prefix.charCodeAt(common),
        };
        child.prefix = child.prefix.slice(0, common);
        child.children = [tail];
        child.byFirst = new Map([[tail.first, tail]]);
        child.param = undefined;
        child.leaf = undefined;
      }
      current = child;
      rest = rest.slice(common);
    }
    return current;
  }

  /**
   * Finds the leaf of `path` (the URL's pathname, still percent-encoded): literal text first,
   * then parameters; parameter values come back decoded.
   */
  find(path: string): Match<T> | undefined {
    const target = trim(path.includes("%") ? normalise(path) : path);
    const exact = this.#exact.get(target);
    if (exact !== undefined) return { leaf: exact, values: [] };
    const last = target.lastIndexOf("/");
    if (last > 0 && last < target.length - 1) {
      const leaf = this.#lastParam.get(target.slice(0, last));
      if (leaf !== undefined) {
        const value = target.slice(last + 1);
        return { leaf, values: [value.includes("%") ? decodeSegment(value) : value] };
      }
    }
    const values: string[] = [];
    const leaf = walk(this.#root, target, 0, values);
    if (leaf === undefined) return undefined;
    for (let i = 0; i < values.length; i++) {
      if (values[i].includes("%")) values[i] = decodeSegment(values[i]);
    }
    return { leaf, values };
  }
}

/**
 * Decodes escapes except `%2F` and `%25`, so that `/docs/openapi%2Ejson` finds its literal
 * route while an encoded slash stays inside its segment and nothing is decoded twice.
 */
function normalise(path: string): string {
  return path.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run).replace(/[%/]/g, encodeURIComponent);
    } catch {
      return run;
    }
  });
}

function decodeSegment(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function walk<T>(at: Node<T>, path: string, i: number, values: string[]): Leaf<T> | undefined {
  if (i === path.length) return at.leaf;
  const child = at.byFirst.get(path.charCodeAt(i));
  if (child !== undefined && (child.prefix.length === 1 || path.startsWith(child.prefix, i))) {
    const found = walk(child, path, i + child.prefix.length, values);
    if (found) return found;
  }
  const param = at.param;
  if (param === undefined) return undefined;
  let end = path.indexOf("/", i);
  if (end < 0) end = path.length;
  if (end === i) return undefined;
  values.push(path.slice(i, end));
  const found = walk(param, path, end, values);
  if (found) return found;
  values.pop();
  return undefined;
}
