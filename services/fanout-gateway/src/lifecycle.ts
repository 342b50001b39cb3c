import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { AccessClaims, AccessVerifier, JwtSecret } from '@ripple/auth';
import { RippleError, isRippleError } from '@ripple/errors';
import type { StreamPosition } from '@ripple/registry';
import type { Connection, Connections } from './connections.js';
import type { GatewayMetrics } from './metrics.js';
import { CloseCodes } from './protocol.js';
import { Session } from './session.js';
import type { SessionHooks, SessionLimits } from './session.js';
import type { ConnectionSink } from './sink.js';
import type { SubscriptionDeps } from './subscriptions.js';

export interface LifecycleDeps extends SubscriptionDeps {
  /** Verifies chat subscription tokens (HS256, JWT_SECRET shared with chat-service). */
  readonly jwtSecret: JwtSecret;
  /** Verifies access tokens (HS256 or RS256, JWT_* configuration). */
  readonly verifyAccess: AccessVerifier;
  readonly connections: Connections;
  readonly metrics: GatewayMetrics;
  readonly limits: SessionLimits;
  /** Sent in `welcome`: how often the transport's heartbeat runs. */
  readonly heartbeatMs: number;
  readonly isDraining: () => boolean;
  /** Fault injection: set-up waits this long before joining the own channel. */
  readonly setupDelayMs?: number;
  /** Logs a set-up failure that is the gateway's fault. */
  readonly onSetupError?: (err: unknown) => void;
  readonly now?: () => number;
}

/**
 * One connection's life, the same for every transport: authenticate -> register -> own channel
 * -> welcome -> (frames, expiry and refresh) -> drain -> release. `release` is idempotent and
 * undoes every set-up step, including the ones still in flight when it runs.
 */
export class ConnectionLifecycle implements Connection, SessionHooks {
  readonly id = randomUUID();
  /** Set once authenticated (the registry's view of the connection). */
  userId = '';
  private session: Session | undefined;
  private welcomed = false;
  private released: Promise<void> | undefined;
  private early: string[] | undefined;
  /** The token `authenticate` verified, handed to the session (feed.ts loads followees with it). */
  private accessToken = '';

  /** Where the set-up began (ms, `performance.now()`): `gateway_connection_setup_seconds{phase="total"}`. */
  private readonly setupStartedAt: number;

  /**
   * `acceptedAt`: when the transport's connection was accepted (ms, `performance.now()`), known
   * for a WebSocket upgrade; the set-up's `request` phase runs from it to now, its `total` from it
   * (or from now) to `welcome`.
   */
  constructor(
    private readonly deps: LifecycleDeps,
    private readonly sink: ConnectionSink,
    acceptedAt?: number,
  ) {
    this.setupStartedAt = acceptedAt ?? performance.now();
    if (acceptedAt !== undefined) this.setupPhase('request', acceptedAt);
  }

  /** Records set-up phase `phase`, from `since` (ms, `performance.now()`) to now. */
  private setupPhase(phase: 'request' | 'verify' | 'register' | 'total', since: number): void {
    this.deps.metrics.connectionSetup.observe({ phase }, (performance.now() - since) / 1000);
  }

  /** Connection: the channels it reads (for the registry heartbeat). */
  channels(): string[] {
    return this.session?.subscriptions.names() ?? [];
  }

  /** Connection: drain. */
  moveAway(): void {
    this.session?.reply({ op: 'reconnect', reason: 'node draining' });
    this.close(CloseCodes.goingAway, 'node draining');
  }

  /**
   * Connection: the membership hook, the same for every transport: the session ends the
   * subscription and sends `unsubscribed` through the sink (SSE also drops the channel from its
   * event id).
   */
  revoke(channel: string, code: string, message: string): Promise<void> {
    return this.session?.revoke(channel, code, message) ?? Promise.resolve();
  }

  /** SessionHooks. */
  onError(code: string): void {
    this.deps.metrics.errors.inc({ code });
  }

  /** SessionHooks. */
  onSlowConsumer(): void {
    this.deps.metrics.slowConsumerCloses.inc();
  }

  /** Closes the connection as a slow consumer (4009) because the gateway-wide send budget stayed full. */
  closeForSendBudget(): void {
    if (this.released) return;
    this.deps.metrics.sendBudgetCloses.inc();
    this.onSlowConsumer();
    this.close(CloseCodes.slowConsumer, 'slow consumer');
  }

  /** SessionHooks. */
  onClosed(): void {
    void this.release();
  }

  get isReleased(): boolean {
    return this.released !== undefined;
  }

  /** Verifies an access token; throws the RippleError (AUTH_*) to answer with. */
  async authenticate(token: string | undefined): Promise<AccessClaims> {
    if (token === undefined) throw new RippleError('AUTH_TOKEN_MISSING', 'send an access token', { status: 401 });
    const verifying = performance.now();
    const claims = await this.deps.verifyAccess(token);
    this.setupPhase('verify', verifying);
    this.accessToken = token;
    return claims;
  }

  /**
   * Registers the connection, joins the user's own channel (recovering from `own.since` and
   * acknowledging it when `own.announce`), then sends `welcome` and handles the frames that came
   * meanwhile. Resolves with the session, or undefined when the connection ended during set-up
   * (everything set up so far is undone by then). Closes with 1011 when set-up fails.
   */
  async establish(
    claims: AccessClaims,
    own: { since?: StreamPosition; announce?: boolean } = {},
  ): Promise<Session | undefined> {
    if (this.released) return undefined;
    const { deps } = this;
    const session = new Session(this.id, claims, this.sink, deps, this, this.accessToken);
    session.hold();
    this.session = session;
    this.userId = claims.sub;
    const registering = performance.now();
    try {
      // Registering the connection and joining the own channel go to the registry together.
      if (deps.setupDelayMs) await delay(deps.setupDelayMs);
      if (!this.released) {
        await session.joinOwnChannel(own.since, own.announce, (hold) =>
          deps.connections.add(this, { channel: session.ownChannel, hold }),
        );
      }
      if (this.released) return undefined;
      this.setupPhase('register', registering);
      // The node began draining meanwhile, after its drain moved the connections it had: move
      // this one on now (as a connection that arrives while draining is), not welcome it on a
      // node about to exit (its socket would end with the process: 1006, no notice).
      if (deps.isDraining()) {
        this.close(CloseCodes.goingAway, 'node draining');
        return undefined;
      }
    } catch (err) {
      if (this.released) return undefined;
      deps.metrics.errors.inc({ code: 'GW_INTERNAL' });
      deps.onSetupError?.(err);
      this.close(1011, 'GW_INTERNAL');
      return undefined;
    }
    session.open({
      op: 'welcome',
      connectionId: this.id,
      node: deps.nodeId,
      user: claims.sub,
      heartbeatMs: deps.heartbeatMs,
    });
    this.setupPhase('total', this.setupStartedAt);
    this.welcomed = true;
    const early = this.early;
    this.early = undefined;
    for (const text of early ?? []) session.receive(text);
    return session;
  }

  /** One inbound text frame; frames before `welcome` wait and are handled after it, in order. */
  receive(text: string): void {
    if (this.released) return;
    if (this.welcomed && this.session) this.session.receive(text);
    else (this.early ??= []).push(text);
  }

  /** Closes the transport (once) and releases. */
  close(code: number, reason: string): void {
    if (!this.released) this.sink.close(code, reason);
    void this.release();
  }

  /** Undoes everything set up; call when the transport closed. Safe to call more than once. */
  release(): Promise<void> {
    this.released ??= (async () => {
      this.early = undefined;
      await this.session?.release();
      await this.deps.connections.remove(this).catch(() => undefined);
    })();
    return this.released;
  }
}

/** Maps an authentication failure to its code (a non-RippleError means no usable token). */
export function authErrorCode(err: unknown): string {
  return isRippleError(err) ? err.code : 'AUTH_TOKEN_MISSING';
}
