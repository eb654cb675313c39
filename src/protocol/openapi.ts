/**
 * The OpenAPI 3.1 document of the method table, built from the methods' zod schemas.
 *
 * @module
 */
import { z } from "zod";
import {
  handlerName,
  type MethodDefinition,
  QUERY_OPERATIONS,
  type Schema,
  zodOf,
} from "./method.ts";

type Json = Record<string, unknown>;

/** The JSON Schema of a zod schema, without the `$schema` key. */
export function schemaOf(schema: Schema, io: "input" | "output"): Json {
  const json = z.toJSONSchema(zodOf(schema), { io, unrepresentable: "any" }) as Json;
  delete json.$schema;
  return json;
}

const ERROR: Json = {
  type: "object",
  properties: { message: { type: "string" } },
  required: ["message"],
};

/** What the document says besides the methods. */
export interface OpenApiOptions {
  /** Base URLs of the server (`servers`); default the relative `/`. */
  servers?: string[];
  /** Whether `server.auth` is on: methods that enforce auth then need a bearer token. */
  auth?: boolean;
}

const error = (description: string): Json => ({
  description,
  content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } },
});

/** The statuses a method can answer besides success, by what it declares. */
function errorResponses(method: MethodDefinition, takesArgs: boolean, auth: boolean): Json {
  const responses: Json = {};
  if (takesArgs) responses["400"] = error("invalid arguments (the message names the field)");
  if (auth && method.enforceAuth) {
    responses["401"] = error("no valid bearer token");
    responses["403"] = error("the token's client type may not call this method");
  }
  if (!QUERY_OPERATIONS.has(method.operation)) {
    responses["408"] = error("the request body was not received in time");
    responses["413"] = error("the request body is too large");
  }
  // Deno's HTTP server answers any request whose headers are too large before routing it.
  responses["431"] = error("the request headers are too large");
  responses["500"] = error("the handler failed (the details are in the server's log)");
  responses["503"] = error("the server is starting or stopping, or the extension failed");
  return responses;
}

/** A unique, URL-safe operationId: the handler's name, else operation and path. */
function operationId(method: MethodDefinition, slice: string, url: string, used: Set<string>) {
  const fallback = `${method.operation.toLowerCase()}${url.replace(/[^A-Za-z0-9]+/g, "_")}`;
  const named = handlerName(method);
  const candidates = named
    ? [named, `${slice.replace(/[^A-Za-z0-9]+/g, "_")}_${named}`, fallback]
    : [fallback];
  const id = candidates.find((c) => !used.has(c)) ?? `${fallback}_${used.size}`;
  used.add(id);
  return id;
}

/** Builds the document; `info` gives the title and version. */
export function openApiDocument(
  methods: { method: MethodDefinition; slice: string }[],
  info: { title: string; version: string },
  options: OpenApiOptions = {},
): Json {
  const paths: Record<string, Json> = {};
  const used = new Set<string>();
  for (const { method, slice } of methods) {
    const url = method.url.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
    const args = (method.jsonSchemas?.args as Json | undefined) ?? schemaOf(method.args, "input");
    const properties = (args.properties ?? {}) as Record<string, Json>;
    const required = new Set((args.required ?? []) as string[]);
    const inQuery = QUERY_OPERATIONS.has(method.operation);
    const parameters: Json[] = [];
    const bodyProperties: Record<string, Json> = {};
    for (const [name, schema] of Object.entries(properties)) {
      if (method.pathParams.includes(name)) {
        parameters.push({ name, in: "path", required: true, schema });
      } else if (inQuery) {
        parameters.push({ name, in: "query", required: required.has(name), schema });
      } else {
        bodyProperties[name] = schema;
      }
    }
    const operation: Json = {
      operationId: operationId(method, slice, url, used),
      // Generators and linters want one; a method without its own gets its route.
      summary: method.summary || `${method.operation} ${method.url}`,
      description: method.description || undefined,
      tags: [slice],
      parameters,
      "x-inmanta-client-types": method.clientTypes,
      responses: {
        [String(method.status)]: {
          description: "success",
          content: {
            "application/json": {
              schema: {
                type: "object",
                properties: {
                  data: (method.jsonSchemas?.returns as Json | undefined) ??
                    schemaOf(method.returns, "output"),
                },
                required: ["data"],
              },
            },
          },
        },
        ...errorResponses(method, Object.keys(properties).length > 0, options.auth === true),
      },
      ...(options.auth ? { security: method.enforceAuth ? [{ bearer: [] }] : [] } : {}),
    };
    if (!inQuery) {
      const bodyRequired = [...required].filter((n) => n in bodyProperties);
      operation.requestBody = {
        required: bodyRequired.length > 0,
        content: {
          "application/json": {
            schema: {
              type: "object",
              properties: bodyProperties,
              ...(bodyRequired.length > 0 ? { required: bodyRequired } : {}),
            },
          },
        },
      };
    }
    (paths[url] ??= {})[method.operation.toLowerCase()] = operation;
  }
  return {
    openapi: "3.1.0",
    info: {
      ...info,
      description: "The API of the Inmanta server and its loaded extensions.",
      license: { name: "Apache-2.0", identifier: "Apache-2.0" },
    },
    servers: (options.servers ?? ["/"]).map((url) => ({ url })),
    paths,
    components: {
      schemas: { Error: ERROR },
      ...(options.auth
        ? {
          securitySchemes: {
            bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
          },
        }
        : {}),
    },
  };
}
