/**
 * The OpenAPI 3.1 document of the method table, built from the methods' zod schemas.
 *
 * @module
 */
import { z } from "zod";
import { type MethodDefinition, QUERY_OPERATIONS } from "./method.ts";

type Json = Record<string, unknown>;

/** The JSON Schema of a zod schema, without the `$schema` key. */
export function schemaOf(schema: z.ZodType, io: "input" | "output"): Json {
  const json = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as Json;
  delete json.$schema;
  return json;
}

const ERROR: Json = {
  type: "object",
  properties: { message: { type: "string" } },
  required: ["message"],
};

/** Builds the document; `info` gives the title and version. */
export function openApiDocument(
  methods: { method: MethodDefinition; slice: string }[],
  info: { title: string; version: string },
): Json {
  const paths: Record<string, Json> = {};
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
      operationId: `${method.operation.toLowerCase()}${url.replace(/[^A-Za-z0-9]+/g, "_")}`,
      summary: method.summary || undefined,
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
        default: {
          description: "error",
          content: { "application/json": { schema: ERROR } },
        },
      },
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
  return { openapi: "3.1.0", info, paths };
}
