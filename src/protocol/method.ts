/**
 * API methods: declared once with {@link method}, handled by one slice with {@link handle}.
 *
 * @module
 */
import { z } from "zod";
import { ProtocolError } from "../errors.ts";

/**
 * A schema made with the server's zod (`import { z } from "@inmanta/server/zod"`), as methods
 * declare their arguments and results. Spelled as the Standard Schema shape that zod schemas
 * have, so that the public API names no zod type and its documentation stays the project's own.
 */
export interface Schema<Output = unknown, Input = unknown> {
  /** The Standard Schema properties; only the types they carry are used here. */
  readonly "~standard": {
    /** The parsed (output) and accepted (input) types. */
    readonly types?: { readonly input: Input; readonly output: Output } | undefined;
  };
}

/** The value a schema parses to (zod's `z.output`). */
export type Output<S extends Schema> = NonNullable<S["~standard"]["types"]>["output"];

/** The value a schema accepts (zod's `z.input`). */
export type Input<S extends Schema> = NonNullable<S["~standard"]["types"]>["input"];

/** The zod schema behind a {@link Schema}: every schema a method holds was made by zod. */
export function zodOf(schema: Schema): z.ZodType {
  return schema as unknown as z.ZodType;
}

/** A schema with no fields: the arguments of a method that takes none. */
export type NoArgs = Schema<Record<string, never>, Record<string, never>>;

/** HTTP operations a method can use. */
export type Operation = "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD";

const OPERATIONS: ReadonlySet<string> = new Set(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]);

/** The client types Inmanta defines (`inmanta.const.ClientType`); `clientTypes` takes only these. */
export const CLIENT_TYPES: readonly string[] = Object.freeze(["api", "agent", "compiler"]);

/** Operations whose arguments come from the query string rather than a JSON body. */
export const QUERY_OPERATIONS: ReadonlySet<Operation> = new Set(["GET", "DELETE", "HEAD"]);

/** The declaration passed to {@link method}. */
export interface MethodOptions<A extends Schema, R extends Schema> {
  /** Path below `/api/v<apiVersion>`, with `:name` parameters, e.g. `/greeting/:name`. */
  path: string;
  /** HTTP operation. */
  operation: Operation;
  /** API version: the URL starts with `/api/v<apiVersion>`. Default 2. */
  apiVersion?: number;
  /** Schema of the arguments (path parameters, query or JSON body). Default: no arguments. */
  args?: A;
  /** Schema of the returned data, for the OpenAPI document. Default: anything. */
  returns?: R;
  /**
   * Client types allowed to call it (Inmanta's `client_types`): `api`, `agent` or `compiler`.
   * Default `["api"]`.
   */
  clientTypes?: string[];
  /** One-line summary for the OpenAPI document. */
  summary?: string;
  /** Longer description for the OpenAPI document. */
  description?: string;
  /** Status of a successful answer. Default 200. */
  status?: number;
  /** Whether authentication applies when it is turned on. Default true. */
  enforceAuth?: boolean;
  /** Largest accepted request body in bytes; default the server's `server.max_body_size`. */
  maxBodySize?: number;
}

/** A declared API method. Pass it to {@link handle} and to clients. */
export interface MethodDefinition<
  A extends Schema = Schema,
  R extends Schema = Schema,
> {
  /** Marks the object as a method definition. */
  readonly kind: "inmanta.method";
  /** Path below the version prefix, as declared. */
  readonly path: string;
  /** Full URL path: `/api/v<apiVersion><path>`. */
  readonly url: string;
  /** HTTP operation. */
  readonly operation: Operation;
  /** API version. */
  readonly apiVersion: number;
  /** Argument schema. */
  readonly args: A;
  /** Return schema. */
  readonly returns: R;
  /** Allowed client types. */
  readonly clientTypes: readonly string[];
  /** Summary. */
  readonly summary: string;
  /** Description. */
  readonly description: string;
  /** Success status. */
  readonly status: number;
  /** Whether authentication applies. */
  readonly enforceAuth: boolean;
  /** Body size limit in bytes, if the method sets its own. */
  readonly maxBodySize: number | undefined;
  /** Names of the `:name` path parameters, in order. */
  readonly pathParams: readonly string[];
  /** JSON Schemas of args and returns, when the zod schemas live in another isolate. */
  readonly jsonSchemas?: { readonly args: unknown; readonly returns: unknown };
}

/**
 * Declares an API method.
 *
 * @example
 * ```ts
 * import { method } from "@inmanta/server";
 * import { z } from "@inmanta/server/zod";
 * export const greet = method({
 *   path: "/greeting/:name", operation: "GET", apiVersion: 2,
 *   args: z.object({ name: z.string().min(1) }),
 *   returns: z.object({ message: z.string() }),
 * });
 * ```
 */
export function method<
  A extends Schema = NoArgs,
  R extends Schema = Schema,
>(
  options: MethodOptions<A, R>,
): MethodDefinition<A, R> {
  const operation = String(options.operation).toUpperCase() as Operation;
  const where = `method ${options.operation} ${options.path}`;
  if (!OPERATIONS.has(operation)) {
    throw new ProtocolError("method.operation", `${where}: unknown operation`);
  }
  if (typeof options.path !== "string" || !options.path.startsWith("/")) {
    throw new ProtocolError("method.path", `${where}: path must start with '/'`);
  }
  const apiVersion = options.apiVersion ?? 2;
  if (!Number.isInteger(apiVersion) || apiVersion < 1) {
    throw new ProtocolError("method.version", `${where}: apiVersion must be a positive integer`);
  }
  for (const segment of options.path.split("/")) {
    if (segment.includes(":") && !/^:[A-Za-z_][A-Za-z0-9_]*$/.test(segment)) {
      throw new ProtocolError(
        "method.path",
        `${where}: '${segment}' is not a parameter: write a whole segment ':name'`,
      );
    }
  }
  const clientTypes = options.clientTypes ?? ["api"];
  if (!Array.isArray(clientTypes) || clientTypes.length === 0) {
    throw new ProtocolError(
      "method.client_types",
      `${where}: clientTypes must be a non-empty list of ${CLIENT_TYPES.join(", ")}`,
    );
  }
  for (const type of clientTypes) {
    if (!CLIENT_TYPES.includes(type)) {
      throw new ProtocolError(
        "method.client_types",
        `${where}: unknown client type '${type}': use ${CLIENT_TYPES.join(", ")} (as Inmanta)`,
      );
    }
  }
  const pathParams = [...options.path.matchAll(/:([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]);
  const args = (options.args ?? z.object({})) as unknown as A;
  if (args instanceof z.ZodObject) {
    for (const param of pathParams) {
      if (!(param in args.shape)) {
        throw new ProtocolError(
          "method.path",
          `${where}: path parameter '${param}' is not in the argument schema`,
        );
      }
    }
  }
  return Object.freeze({
    kind: "inmanta.method",
    path: options.path,
    url: `/api/v${apiVersion}${options.path}`,
    operation,
    apiVersion,
    args,
    returns: (options.returns ?? z.unknown()) as unknown as R,
    clientTypes: Object.freeze([...clientTypes]),
    summary: options.summary ?? "",
    description: options.description ?? "",
    status: options.status ?? 200,
    enforceAuth: options.enforceAuth ?? true,
    maxBodySize: options.maxBodySize,
    pathParams: Object.freeze(pathParams),
  });
}

/** Whether a value is a method definition made by {@link method}. */
export function isMethod(value: unknown): value is MethodDefinition {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "inmanta.method";
}

/** What a handler gets besides its arguments. */
export interface RequestContext {
  /** The HTTP request (its body already read when the method takes a JSON body). */
  request: Request;
  /** Aborted when the client goes away or the server gives up on the request. */
  signal: AbortSignal;
}

/**
 * A handler of method `M` on a slice of type `This`. It returns data that `returns` validates,
 * or a Response of its own, sent as it is (no envelope, no validation).
 */
export type HandlerFunction<This, A extends Schema, R extends Schema> = (
  this: This,
  args: Output<A>,
  context: RequestContext,
) => Input<R> | Response | Promise<Input<R> | Response>;

/** A bound handler, as the server calls it. */
export interface BoundHandler {
  /** The method it handles. */
  method: MethodDefinition;
  /** Calls the handler on its slice. */
  call(args: unknown, context: RequestContext): unknown;
  /**
   * When set, the whole request is handed over undecoded (a sandboxed slice decodes and
   * validates on its side of the boundary) and `call` is not used. `body` is the request body
   * when the server read it already.
   */
  forward?: (
    request: Request,
    params: Record<string, string>,
    body?: Uint8Array,
  ) => Promise<Response>;
}

const HANDLERS = new WeakMap<object, BoundHandler[]>();
/** The name of the slice method that handles a method, as `@handle` saw it. */
const HANDLER_NAMES = new WeakMap<MethodDefinition, string>();

/** The name of the slice method that handles `target` (for OpenAPI operationIds), if known. */
export function handlerName(target: MethodDefinition): string | undefined {
  return HANDLER_NAMES.get(target);
}

/** Adds a handler to an object, as `@handle` does; for slices that proxy another isolate. */
export function addHandler(instance: object, handler: BoundHandler): void {
  const list = HANDLERS.get(instance) ?? [];
  list.push(handler);
  HANDLERS.set(instance, list);
}

/** The handlers the `@handle` decorator registered on an object. */
export function handlersOf(instance: object): readonly BoundHandler[] {
  return HANDLERS.get(instance) ?? [];
}

/** The decorator {@link handle} returns. */
export type HandleDecorator<A extends Schema, R extends Schema> = <This extends object>(
  value: HandlerFunction<This, A, R>,
  context: ClassMethodDecoratorContext<This, HandlerFunction<This, A, R>>,
) => void;

/**
 * Marks a slice method as the handler of an API method (a TC39 decorator). Its arguments and
 * result are type-checked against the method's schemas.
 *
 * @example
 * ```ts
 * import { handle, ServerSlice } from "@inmanta/server";
 * import { greet } from "./protocol.ts";
 * class GreeterSlice extends ServerSlice {
 *   @handle(greet)
 *   greet({ name }: { name: string }) {
 *     return { message: `hello ${name}` };
 *   }
 * }
 * ```
 */
export function handle<A extends Schema, R extends Schema>(
  target: MethodDefinition<A, R>,
): HandleDecorator<A, R> {
  if (!isMethod(target)) {
    throw new ProtocolError("method.invalid", "@handle() needs a method made by method({...})");
  }
  return (value, context) => {
    if (context.static || context.private) {
      throw new ProtocolError(
        "method.handler",
        `@handle(${target.operation} ${target.url}) must decorate a public instance method`,
      );
    }
    if (typeof context.name === "string") HANDLER_NAMES.set(target, context.name);
    context.addInitializer(function () {
      addHandler(this, {
        method: target,
        call: (args, ctx) => value.call(this, args as Output<A>, ctx),
      });
    });
  };
}
