#!/usr/bin/env node
// The publisher process, separate from every server: the same schedule for each peer, through
// that peer's own publish path — Ripple: `post.created` produced to Kafka (what post-service's
// outbox relay does); Socket.IO: @socket.io/redis-emitter to a room; raw ws: a frame to the
// server's /pub socket. Event i goes to bench channel c(i mod channelCount); its payload carries its
// scheduled send time (dialects.ts).
import { randomUUID } from 'node:crypto';
import { Emitter } from '@socket.io/redis-emitter';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { OutgoingMessage } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import type { PeerName } from './dialects.js';
import { payload } from './dialects.js';
import { serve } from './rpc.js';

interface Sink {
  /** Publishes `events` ([channel, payload]) and resolves once they left this process. */
  send(events: [string, string][]): Promise<void>;
}

const KAFKA_BATCH = 500;
/** Events a burst builds and hands to the sink at a time (every peer). */
const BURST_CHUNK = 100;

async function kafkaSink(): Promise<Sink> {
  const topicPrefix = process.env.KAFKA_TOPIC_PREFIX ?? '';
  const kafka = createKafka({
    brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
    clientId: 'bench-peers-publisher',
    logger: createLogger('bench-peers', 'silent'),
  });
  const producer = createEventProducer(kafka);
  await producer.connect();
  // One produce request in flight (the idempotent producer's limit); what comes meanwhile waits and
  // leaves in the next one, as the Java producer batches and post-service's outbox relay reads
  // its backlog. Sent one request per call instead, a 10 ms tick's events queued behind every
  // earlier request's acknowledgement and the latency measured the queue.
  let waiting: { messages: OutgoingMessage[]; done: () => void; failed: (err: unknown) => void }[] = [];
  let flushing = false;
  const flush = async (): Promise<void> => {
    flushing = true;
    while (waiting.length > 0) {
      const batch = waiting;
      waiting = [];
      const messages = batch.flatMap((b) => b.messages);
      try {
        for (let i = 0; i < messages.length; i += KAFKA_BATCH) await producer.send(messages.slice(i, i + KAFKA_BATCH));
        for (const b of batch) b.done();
      } catch (err) {
        for (const b of batch) b.failed(err);
      }
    }
    flushing = false;
  };
  return {
    send(events) {
      const messages = events.map(([channel, body]) => {
        const m = toOutboxMessage(
          createEvent('post.created', {
            source: 'bench',
            data: {
              // randomUUID draws from a cached entropy pool; randomBytes made a getrandom syscall
              // per event, ~5% of the publisher's CPU in a burst (a post's id is a UUID anyway).
              postId: randomUUID(),
              authorId: channel,
              body,
              createdAt: new Date().toISOString(),
            },
          }),
        );
        return { ...m, topic: topicPrefix + m.topic };
      });
      return new Promise<void>((done, failed) => {
        waiting.push({ messages, done, failed });
        if (!flushing) void flush();
      });
    },
  };
}

function socketioSink(): Sink {
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const emitter = new Emitter(redis, { key: process.env.SIO_KEY ?? 'socket.io' });
  return {
    async send(events) {
      for (const [room, body] of events) emitter.to(room).emit('event', body);
      await redis.ping(); // ioredis answers in order: every PUBLISH before it went out
    },
  };
}

async function wsSink(port: number): Promise<Sink> {
  const socket = new WebSocket(`ws://127.0.0.1:${port}/pub`);
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  return {
    async send(events) {
      for (const [channel, data] of events) socket.send(JSON.stringify({ channel, data }));
      while (socket.bufferedAmount > 0) await new Promise((r) => setTimeout(r, 1));
    },
  };
}

let sink: Sink | undefined;
const events = (from: number, count: number, channelCount: number, prefix: string, at: number): [string, string][] =>
  Array.from({ length: count }, (_, k) => [`${prefix}${(from + k) % channelCount}`, payload(at)]);

serve({
  async connect(args: { peer: PeerName; port: number }) {
    sink =
      args.peer === 'ripple' ? await kafkaSink() : args.peer === 'socketio' ? socketioSink() : await wsSink(args.port);
    return true;
  },
  /**
   * Every event at once, all stamped with the burst's start; returns that start and when the last
   * one left this process (ms). The events are built and handed to the sink in chunks of
   * BURST_CHUNK, yielding in between, as an application's events come: the first ones are on their
   * way while the rest are built (built all first, the Kafka producer's first request waited for
   * 2,000 events to be created and validated, which no peer's server had anything to do with).
   */
  async burst(args: { count: number; channelCount: number; prefix?: string }) {
    const start = Date.now();
    const sent: Promise<void>[] = [];
    for (let from = 0; from < args.count; from += BURST_CHUNK) {
      if (from > 0) await new Promise((r) => setImmediate(r));
      const n = Math.min(BURST_CHUNK, args.count - from);
      sent.push(sink?.send(events(from, n, args.channelCount, args.prefix ?? 'c', start)) ?? Promise.resolve());
    }
    await Promise.all(sent);
    return { start, sentAt: Date.now() };
  },
  /** `rate` events/s for `seconds`, in 10 ms ticks; each stamped with its scheduled time. */
  async rate(args: { rate: number; seconds: number; channelCount: number }) {
    const tickMs = 10;
    const total = Math.round(args.rate * args.seconds);
    const start = Date.now() + 50;
    const pending: Promise<void>[] = [];
    let sent = 0;
    for (let t = 0; sent < total && t < (args.seconds * 1000) / tickMs + 1000; t++) {
      const due = start + t * tickMs;
      const n = Math.min(total, Math.floor(((t + 1) * tickMs * args.rate) / 1000)) - sent;
      if (n <= 0) continue;
      const wait = due - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      pending.push(sink?.send(events(sent, n, args.channelCount, 'c', due)) ?? Promise.resolve());
      sent += n;
    }
    await Promise.all(pending);
    return { start, sent };
  },
});
