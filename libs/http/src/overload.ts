import underPressure, { TYPE_EVENT_LOOP_DELAY } from '@fastify/under-pressure';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { RippleError, isRippleError } from '@ripple/errors';
import { Counter } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
import { HttpErrors } from './error-kinds.js';

/**
 * Why a request was shed: the `reason` of its 503 OVERLOADED body and the label of
 * `http_requests_shed_total`. `outbox_backlog`: a write refused because the service's outbox
 * relay cannot keep up (thrown by the domain services' mutation runner, `@ripple/service`).
 */
export const SHED_REASONS = ['event_loop_delay', 'in_flight', 'pool_wait', 'outbox_backlog'] as const;
export type ShedReason = (typeof SHED_REASONS)[number];

/**
 * Past capacity a request is refused at once with 503 OVERLOADED, its `reason` in the body, and
 * Retry-After rather than
 * queued until it times out (or fails as a 500): a client backs off, and the service recovers by
 * itself once the load drops. Thrown by the shedding hooks and by a transaction that waited too
 * long for a database connection.
 */
export class OverloadError extends RippleError {
  readonly reason: ShedReason;
  constructor(reason: ShedReason, message: string, cause?: unknown) {
    super(HttpErrors.overloaded.code, message, {
      status: HttpErrors.overloaded.status,
      retriable: HttpErrors.overloaded.retriable,
      refusal: HttpErrors.overloaded.refusal,
      cause,
    });
    this.reason = reason;
  }
}

export interface OverloadOptions {
  /**
   * Shed while the event loop's mean delay over the last reading (once a second) is above this, in
   * ms; 0: never. A reading without a sample never sheds.
   */
  readonly maxEventLoopDelayMs: number;
  /** Shed a request that arrives while this many are in flight; 0: never. */
  readonly maxInFlight: number;
  /** The `Retry-After` of a shed request, in seconds. */
  readonly retryAfterSeconds: number;
}

/** Routes never shed: probes and scrapes must answer most of all when the service is busy. */
const OPERATIONAL = new Set(['/healthz', '/readyz', '/metrics']);
const exempt = (request: FastifyRequest) => OPERATIONAL.has(request.routeOptions.url ?? '');

/**
 * True for a reading of the event-loop delay that holds no sample. The plugin reads its
 * histogram once per interval and reports an empty one as Infinity; it is empty only when the
 * loop was held from the last reading (or from the start) until this one, since the first timer
 * turn after a reset records nothing. That describes a block that is over (start-up work in a
 * fresh service, a process the host did not schedule), not the load now: a loop that turns under
 * load records samples, and those shed. So no request is shed for lack of a sample.
 */
const lackedSample = (type: string, value: number | undefined) =>
  type === TYPE_EVENT_LOOP_DELAY && !Number.isFinite(value);

/**
 * Load shedding for an API app: event-loop delay through `@fastify/under-pressure`, a limit on
 * requests in flight (checked before authentication, so a shed request costs almost nothing),
 * and the answer for every OverloadError, also those thrown later or recognised by `classify`
 * (pool wait, on any route; outbox backlog, on writes): 503, Retry-After, counted in
 * `http_requests_shed_total{reason}`.
 * Other retriable 503s get Retry-After too.
 */
export async function installOverloadProtection(
  app: FastifyInstance,
  opts: OverloadOptions,
  metrics: Registry,
  classify?: (err: unknown) => RippleError | undefined,
): Promise<void> {
  const shed = new Counter({
    name: 'http_requests_shed_total',
    help: 'Requests refused with 503 OVERLOADED because the service was past capacity, by reason',
    labelNames: ['reason'],
    registers: [metrics],
  });
  for (const reason of SHED_REASONS) shed.inc({ reason }, 0);
  // Runs before the error handler, with the error as thrown: `classify` names what it will answer.
  app.addHook('onError', (_request, reply, err, done) => {
    const coded = isRippleError(err) ? err : classify?.(err);
    if (coded instanceof OverloadError) shed.inc({ reason: coded.reason });
    // Every retriable 503 (overload, database unavailable, Kafka for a direct publish) says when.
    if (coded?.status === 503 && coded.retriable) void reply.header('retry-after', String(opts.retryAfterSeconds));
    done();
  });

  if (opts.maxEventLoopDelayMs > 0) {
    await app.register(underPressure, {
      maxEventLoopDelay: opts.maxEventLoopDelayMs,
      retryAfter: opts.retryAfterSeconds,
      // A rejected promise goes to the error handler as OVERLOADED; a resolved one lets it pass.
      pressureHandler: async (request, _reply, type, value) => {
        if (exempt(request) || lackedSample(type, value)) return;
        throw new OverloadError(
          'event_loop_delay',
          `over capacity (${type} ${Math.round(value ?? 0)} ms): retry later`,
        );
      },
    });
  }

  if (opts.maxInFlight > 0) {
    let inFlight = 0;
    app.addHook('onRequest', (request, reply, done) => {
      if (exempt(request)) return done();
      if (inFlight >= opts.maxInFlight) {
        return done(new OverloadError('in_flight', `over capacity (${inFlight} requests in flight): retry later`));
      }
      inFlight++;
      // 'close' fires once the answer is written or the client went away.
      reply.raw.once('close', () => inFlight--);
      done();
    });
  }
}
