import { register } from 'node:module';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import type { Context, Span } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { SECRET_QUERY_PARAMS, redactUrl } from './redact.js';

export { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace };
export type { Context, Instrumentation, Span };

/**
 * Loads instrumentations a library owns. Called only when tracing starts, after the loader hook
 * is registered.
 */
export type InstrumentationLoader = () => Promise<Instrumentation[]>;

let sdk: { shutdown(): Promise<void> } | undefined;

/**
 * Starts OpenTelemetry tracing for this process when OTEL_EXPORTER_OTLP_ENDPOINT is set: the
 * NodeSDK with the OTLP/HTTP exporter and the HTTP, fastify, pg, Prisma and ioredis
 * instrumentations, plus those of `opts.instrumentations` (libs/kafka needs none: it
 * makes its producer and consumer spans itself). Call it before anything else is imported (each service's main.ts imports its
 * server only after this resolved), so the instrumented modules are patched when they load.
 * Without the endpoint nothing is loaded: the API stays a no-op and costs nothing per request.
 */
export async function startTracing(
  serviceName: string,
  opts: { instrumentations?: readonly InstrumentationLoader[] } = {},
): Promise<boolean> {
  const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (endpoint === undefined || endpoint === '' || process.env.OTEL_SDK_DISABLED === 'true') return false;
  // ESM imports of the instrumented packages are patched through this loader hook.
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url);
  const [{ NodeSDK }, { OTLPTraceExporter }, { resourceFromAttributes }, ...instrumentations] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-trace-otlp-http'),
    import('@opentelemetry/resources'),
    loadInstrumentations(),
    ...(opts.instrumentations ?? []).map((load) => load()),
  ]);
  const started = new NodeSDK({
    resource: resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME ?? serviceName }),
    traceExporter: new OTLPTraceExporter(),
    instrumentations: instrumentations.flat(),
  });
  started.start();
  sdk = started;
  return true;
}

/**
 * Query parameters the HTTP instrumentation redacts in `url.query` (server spans) and `url.full`
 * (client spans). Setting the option replaces its built-in list, so that list is repeated here.
 */
const REDACTED_QUERY_PARAMS = [
  ...SECRET_QUERY_PARAMS,
  'sig',
  'Signature',
  'AWSAccessKeyId',
  'X-Goog-Signature',
  'X-Amz-Signature',
  'X-Amz-Credential',
  'X-Amz-Security-Token',
];

async function loadInstrumentations() {
  const [http, fastify, pg, prisma, ioredis] = await Promise.all([
    import('@opentelemetry/instrumentation-http'),
    import('@fastify/otel'),
    import('@opentelemetry/instrumentation-pg'),
    import('@prisma/instrumentation'),
    import('@opentelemetry/instrumentation-ioredis'),
  ]);
  return [
    new http.HttpInstrumentation({
      redactedQueryParamsServer: REDACTED_QUERY_PARAMS,
      redactedQueryParams: REDACTED_QUERY_PARAMS,
    }),
    new fastify.FastifyOtelInstrumentation({
      registerOnInitialization: true,
      // @fastify/otel records the whole request target, query included, as `url.path`.
      requestHook: (span, request) => span.setAttribute('url.path', redactUrl(request.url)),
    }),
    new pg.PgInstrumentation(),
    new prisma.PrismaInstrumentation(),
    new ioredis.IORedisInstrumentation(),
  ];
}

/** Exports the spans still buffered; the process runner calls it before exiting. */
export async function shutdownTracing(): Promise<void> {
  await sdk?.shutdown();
  sdk = undefined;
}

/** W3C trace context headers (`traceparent`, `tracestate`) of `ctx`, empty when not tracing. */
export function traceHeaders(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

export type MessageHeaders = Record<string, string | Buffer | (string | Buffer)[] | undefined>;

/** The context a message's `traceparent`/`tracestate` headers describe (Kafka, Redis, HTTP). */
export function contextFromHeaders(headers: MessageHeaders | undefined, base: Context = context.active()): Context {
  if (!headers) return base;
  return propagation.extract<MessageHeaders>(base, headers, {
    keys: (carrier) => Object.keys(carrier),
    get: headerValue,
  });
}

/** A message header as text (Kafka headers are Buffers, possibly repeated: the first one counts). */
export function headerValue(headers: MessageHeaders | undefined, name: string): string | undefined {
  const value = headers?.[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.toString();
}

export const tracer = () => trace.getTracer('ripple');
