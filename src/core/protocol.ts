/**
 * The core extension's API methods.
 *
 * @module
 */
import { z } from "zod";
import { method } from "../protocol/method.ts";

/** `GET /api/v1/serverstatus`: product, version, extensions, slices and features. */
export const serverStatus = method({
  path: "/serverstatus",
  operation: "GET",
  apiVersion: 1,
  summary: "Status of the server: version, extensions, slices and features",
  returns: z.object({
    product: z.string(),
    version: z.string(),
    extensions: z.array(z.object({
      name: z.string(),
      version: z.string(),
      source: z.string(),
      isolation: z.string(),
      permissions: z.string(),
      /** `loaded` or `failed`. */
      status: z.string(),
      /** Why it failed; null when loaded. */
      reason: z.string().nullable(),
      /** Its last applied migration, or null. */
      schema_version: z.string().nullable(),
      /** Times its sandbox was started again after a failure (`restart = on-failure`). */
      restarts: z.number().int(),
      /** Why its sandbox last failed, even when a restart brought it back; null if never. */
      last_failure: z.string().nullable(),
    })),
    instances: z.array(z.object({
      id: z.string(),
      address: z.string(),
      started: z.string(),
      last_heartbeat: z.string(),
    })).optional(),
    slices: z.array(z.object({
      name: z.string(),
      /** The lifecycle state. */
      state: z.string(),
      /** What the slice's getStatus() returned (Inmanta's get_status()). */
      status: z.record(z.string(), z.unknown()),
      dependencies: z.array(z.string()),
      dependedBy: z.array(z.string()),
      /** Why it failed; null unless its state is failed. */
      reason: z.string().nullable(),
    })),
    features: z.array(z.object({
      slice: z.string(),
      name: z.string(),
      description: z.string(),
      value: z.union([z.boolean(), z.number(), z.string()]),
    })),
  }),
});

/**
 * `GET /api/v2/health`: 200 `{"status": "up"}` once every slice started and no extension
 * failed; otherwise 503 with `{"status": "stopping" | "degraded", "failed": [extensions]}`.
 */
export const health = method({
  path: "/health",
  operation: "GET",
  apiVersion: 2,
  enforceAuth: false,
  summary: "Whether every slice started and no extension failed (503 when not)",
  returns: z.object({
    status: z.enum(["up", "degraded", "stopping"]),
    failed: z.array(z.string()).optional(),
  }),
});

/** `GET /api/v2/docs/openapi.json`: the OpenAPI 3.1 document of every loaded method. */
export const openApi = method({
  path: "/docs/openapi.json",
  operation: "GET",
  apiVersion: 2,
  enforceAuth: false,
  summary: "OpenAPI 3.1 document of the API (returned as is, without the data envelope)",
});

/** `GET /api/v2/scheduled-tasks`: every slice's scheduled tasks with their last and next runs. */
export const scheduledTasks = method({
  path: "/scheduled-tasks",
  operation: "GET",
  apiVersion: 2,
  summary: "Scheduled tasks of every slice, with their last and next runs",
  returns: z.array(z.object({
    slice: z.string(),
    name: z.string(),
    schedule: z.string(),
    lastRun: z.string().nullable(),
    nextRun: z.string().nullable(),
    running: z.boolean(),
    runs: z.number(),
    failures: z.number(),
  })),
});

/**
 * `GET /api/v2/extension-metrics`: the figures the console draws, per extension (cumulative
 * counts: the reader computes rates from two readings) and for the server process.
 */
export const extensionMetrics = method({
  path: "/extension-metrics",
  operation: "GET",
  apiVersion: 2,
  summary: "Request counts, latency buckets, CPU, memory and restarts of each extension",
  returns: z.object({
    buckets: z.array(z.number()),
    process: z.object({ cpuSeconds: z.number(), rssBytes: z.number(), heapUsedBytes: z.number() }),
    extensions: z.array(z.object({
      extension: z.string(),
      isolation: z.string(),
      status: z.string(),
      requests: z.number(),
      errors: z.number(),
      latency: z.array(z.number()),
      sandbox: z.object({
        cpuSeconds: z.number(),
        rssBytes: z.number(),
        heapUsedBytes: z.number(),
        state: z.string(),
        restarts: z.number(),
        startedAt: z.number(),
        lastFailure: z.string().optional(),
      }).optional(),
    })),
  }),
});
