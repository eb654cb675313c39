/**
 * Calling one API method: decoding its arguments (path parameters, query string or JSON body),
 * validating them, calling the handler and putting the answer in the `{"data": ...}` envelope,
 * or the failure in `{"message": ...}`. The same code serves in-process slices and, inside a
 * sandbox, sandboxed ones.
 *
 * @module
 */
import { z } from "zod";
import { describeError, HttpError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { QUERY_OPERATIONS, zodOf } from "./method.ts";
import type { Route } from "./routes.ts";

/** A query string with nothing to decode: no escapes, no `+` for spaces. */
const PLAIN_QUERY = /^[^%+]*$/;

/** Any character that is not white space (what `trim()` keeps). */
const NOT_BLANK = /\S/;

/** What a call is made of. */
export interface CallInput {
  /** HTTP method, for logs. */
  method: string;
  /** URL path, for logs. */
  path: string;
  /** Path parameters. */
  params: Record<string, string>;
  /** The query string (with or without `?`), for query operations. */
  search: string;
  /** The request body, for body operations. */
  body: string;
  /** The request, or how to build it if the handler asks for it. */
  request: Request | (() => Request);
}

/** The answer: JSON text with its status, or a Response the handler made itself. */
export type Outcome = { status: number; json: string } | { response: Response };

/** The `{"message": ...}` answer. */
export function failureOutcome(status: number, message: string): Outcome {
  return { status, json: JSON.stringify({ message }) };
}

/** Unwraps optional/default/nullable wrappers to see whether a field is an array. */
function isArraySchema(schema: z.ZodType): boolean {
  let current: z.ZodType | undefined = schema;
  for (let depth = 0; current && depth < 10; depth++) {
    if (current instanceof z.ZodArray) return true;
    current = (current as unknown as { _zod: { def: { innerType?: z.ZodType } } })._zod.def
      .innerType;
  }
  return false;
}

/**
 * The fields an argument schema declares, when undeclared ones are an error: as Inmanta, a
 * request with fields the method does not declare is refused rather than silently dropped. A
 * schema that accepts more on purpose (`z.looseObject`, `.catchall(...)`) is left alone.
 */
function declaredFields(args: z.ZodType): ReadonlySet<string> | undefined {
  if (!(args instanceof z.ZodObject)) return undefined;
  const catchall = (args as unknown as { _zod: { def: { catchall?: z.ZodType } } })._zod.def
    .catchall;
  if (catchall !== undefined && !(catchall instanceof z.ZodNever)) return undefined;
  return new Set(Object.keys(args.shape));
}

/** Whether a `returns` schema checks anything (the default `z.unknown()` does not). */
function checksReturns(returns: z.ZodType): boolean {
  return !(returns instanceof z.ZodUnknown || returns instanceof z.ZodAny);
}

function returnIssueText(error: z.ZodError): string {
  return error.issues.slice(0, 5).map((issue) => {
    const field = issue.path.map(String).join(".");
    return `${field ? `field '${field}'` : "the value"}: ${issue.message}`;
  }).join("; ");
}

function issueText(error: z.ZodError): string {
  return error.issues.slice(0, 5).map((issue) => {
    const field = issue.path.map(String).join(".");
    return field
      ? `invalid argument '${field}': ${issue.message}`
      : `invalid arguments: ${issue.message}`;
  }).join("; ");
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof value === "object" && value !== null &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/** What a handler gets besides its arguments; the request is built only when asked for. */
class Context {
  #request: Request | (() => Request);
  constructor(input: CallInput) {
    this.#request = input.request;
  }
  get request(): Request {
    if (typeof this.#request === "function") this.#request = this.#request();
    return this.#request;
  }
  /** Aborted when the client goes away. */
  get signal(): AbortSignal {
    return this.request.signal;
  }
}

/** Calls the handler of one route. */
export class Invoker {
  readonly #route: Route;
  readonly #log: Logger;
  readonly #arrayKeys: Set<string>;
  readonly #inQuery: boolean;
  readonly #declared: ReadonlySet<string> | undefined;
  readonly #returns: z.ZodType | undefined;
  readonly #name: string;

  /**
   * @param route the method and its handler
   * @param log where handler failures are written
   */
  constructor(route: Route, log: Logger) {
    this.#route = route;
    this.#log = log;
    const args = route.method.args;
    const shape: Record<string, z.ZodType> = args instanceof z.ZodObject ? args.shape : {};
    this.#arrayKeys = new Set(Object.keys(shape).filter((k) => isArraySchema(shape[k])));
    this.#inQuery = QUERY_OPERATIONS.has(route.method.operation);
    this.#declared = declaredFields(zodOf(args));
    const returns = zodOf(route.method.returns);
    this.#returns = checksReturns(returns) ? returns : undefined;
    this.#name = `${route.method.operation} ${route.method.url}`;
  }

  /** The 400 for fields the method does not declare, if the request has any. */
  #undeclared(raw: Record<string, unknown>): Outcome | undefined {
    let extra: string[] | undefined;
    for (const key in raw) if (!this.#declared!.has(key)) (extra ??= []).push(`'${key}'`);
    if (extra === undefined) return undefined;
    return failureOutcome(
      400,
      `request contains fields ${extra.join(", ")} that are not declared in method ${this.#name}`,
    );
  }

  /**
   * Decodes, validates, calls and answers; never throws. Synchronous as long as validation and
   * the handler are, since a promise per request is measurable at the request rates we serve.
   */
  invoke(input: CallInput): Outcome | Promise<Outcome> {
    try {
      let raw: Record<string, unknown>;
      if (this.#inQuery) {
        raw = this.#decodeQuery(input.search);
      } else {
        const decoded = this.#decodeBody(input.body);
        if (!("args" in decoded)) return decoded;
        raw = decoded.args;
      }
      for (const key in input.params) raw[key] = input.params[key];
      if (this.#declared) {
        const refused = this.#undeclared(raw);
        if (refused) return refused;
      }
      const parsed = this.#parse(raw);
      if (parsed instanceof Promise) {
        return parsed.then((result) => this.#call(result, input)).catch((error) =>
          this.#fail(error, input)
        );
      }
      return this.#call(parsed, input);
    } catch (error) {
      return this.#fail(error, input);
    }
  }

  #call(
    parsed: ReturnType<z.ZodType["safeParse"]>,
    input: CallInput,
  ): Outcome | Promise<Outcome> {
    if (!parsed.success) return failureOutcome(400, issueText(parsed.error));
    let data: unknown;
    try {
      data = this.#route.handler.call(parsed.data, new Context(input));
    } catch (error) {
      return this.#fail(error, input);
    }
    if (isThenable(data)) {
      return Promise.resolve(data).then(
        (value) => this.#answer(value),
        (error) => this.#fail(error, input),
      );
    }
    return this.#answer(data);
  }

  #answer(data: unknown): Outcome | Promise<Outcome> {
    // A handler may answer for itself (the OpenAPI document is not enveloped).
    if (data instanceof Response) return { response: data };
    const status = this.#route.method.status;
    // 204, 205 and 304 answers have no body: whatever the handler returned is not sent.
    if (status === 204 || status === 205 || status === 304) {
      return { response: new Response(null, { status }) };
    }
    if (this.#returns) {
      let checked: ReturnType<z.ZodType["safeParse"]>;
      try {
        checked = this.#returns.safeParse(data);
      } catch (error) {
        if (!(error instanceof z.core.$ZodAsyncError)) throw error;
        return this.#returns.safeParseAsync(data).then((result) => this.#checked(result));
      }
      return this.#checked(checked);
    }
    return this.#envelope(data);
  }

  /**
   * The answer of a validated return value: the parsed value (defaults filled in, undeclared
   * fields dropped, as pydantic does for Inmanta), or a 500 and a log line naming the method
   * and the field.
   */
  #checked(result: ReturnType<z.ZodType["safeParse"]>): Outcome {
    if (result.success) return this.#envelope(result.data);
    this.#log.error(
      `method ${this.#name} returned a value that does not match its returns schema: ${
        returnIssueText(result.error)
      }`,
    );
    return failureOutcome(
      500,
      `internal server error: the answer of ${this.#name} does not match its declared return type`,
    );
  }

  #envelope(data: unknown): Outcome {
    // Concatenating the envelope saves wrapping every answer in an object to stringify it.
    return {
      status: this.#route.method.status,
      json: `{"data":${JSON.stringify(data) ?? "null"}}`,
    };
  }

  #fail(error: unknown, input: CallInput): Outcome {
    if (error instanceof HttpError) return failureOutcome(error.status, error.message);
    if (error instanceof Deno.errors.NotCapable) {
      this.#log.error(
        `permission denied in ${input.method} ${input.path}: ${
          describeError(error).split("\n")[0]
        }`,
      );
    } else {
      this.#log.error(
        `${input.method} ${input.path} failed: ${
          error instanceof Error && error.stack ? error.stack : describeError(error)
        }`,
      );
    }
    return failureOutcome(500, "internal server error");
  }

  /** Validates synchronously; only schemas with async refinements take the async path. */
  #parse(
    raw: unknown,
  ): ReturnType<z.ZodType["safeParse"]> | Promise<ReturnType<z.ZodType["safeParse"]>> {
    if (this.#async) return zodOf(this.#route.method.args).safeParseAsync(raw);
    try {
      return zodOf(this.#route.method.args).safeParse(raw);
    } catch (error) {
      if (!(error instanceof z.core.$ZodAsyncError)) throw error;
      this.#async = true;
      return zodOf(this.#route.method.args).safeParseAsync(raw);
    }
  }

  #async = false;

  #decodeQuery(search: string): Record<string, unknown> {
    if (search.length <= 1) return {};
    const out: Record<string, unknown> = {};
    if (PLAIN_QUERY.test(search)) {
      // Nothing to decode: splitting gives what URLSearchParams gives, without its iterators,
      // which were the largest share of a query endpoint's JavaScript time.
      for (const pair of search.slice(search.charCodeAt(0) === 63 ? 1 : 0).split("&")) {
        if (pair === "") continue;
        const eq = pair.indexOf("=");
        const key = eq < 0 ? pair : pair.slice(0, eq);
        const value = eq < 0 ? "" : pair.slice(eq + 1);
        const seen = Object.hasOwn(out, key) ? out[key] : undefined;
        if (seen === undefined) {
          out[key] = this.#arrayKeys.has(key) ? [value] : value;
        } else if (Array.isArray(seen)) {
          seen.push(value);
        } else {
          out[key] = [seen, value];
        }
      }
      return out;
    }
    const params = new URLSearchParams(search);
    for (const key of new Set(params.keys())) {
      const values = params.getAll(key);
      out[key] = values.length > 1 || this.#arrayKeys.has(key) ? values : values[0];
    }
    return out;
  }

  #decodeBody(text: string): { args: Record<string, unknown> } | Outcome {
    // A test, not trim(): trimming copies the whole body.
    if (!NOT_BLANK.test(text)) return { args: {} };
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      return failureOutcome(400, `request body is not valid JSON: ${describeError(error)}`);
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      return failureOutcome(400, "request body must be a JSON object of arguments");
    }
    return { args: body as Record<string, unknown> };
  }
}

const JSON_HEADERS: HeadersInit = { "content-type": "application/json" };

/** The Response of an outcome. */
export function toResponse(outcome: Outcome): Response {
  if ("response" in outcome) return outcome.response;
  return new Response(outcome.json, { status: outcome.status, headers: JSON_HEADERS });
}
