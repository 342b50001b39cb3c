import type { Redis } from 'ioredis';
import { waitUntil } from '@ripple/testing';
import type { RunningService } from './harness.js';

/** The sum of every sample of `name` on `node` (NaN when it has none). */
export async function metricOf(node: RunningService, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const samples = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0);
}

/** The channels for which `nodeId` has a live (unexpired) registry entry. */
export async function liveChannelsOf(redis: Redis, keyPrefix: string, nodeId: string): Promise<string[]> {
  const keys = await redis.keys(`${keyPrefix}channel-nodes:*`);
  const now = Date.now();
  const held: string[] = [];
  for (const key of keys) {
    const score = await redis.zscore(key, nodeId);
    if (score !== null && Number(score) > now) held.push(key.slice(`${keyPrefix}channel-nodes:`.length));
  }
  return held.sort();
}

export function isRunning(node: RunningService): boolean {
  return node.process.exitCode === null && node.process.signalCode === null;
}

/**
 * Waits until `node` is back at its baseline: no subscription in its gauge and no live registry
 * entry for any channel (after every client closed). A leak shows as a deadline error naming
 * what is still held.
 */
export async function expectReleased(
  redis: Redis,
  keyPrefix: string,
  node: RunningService,
  nodeId: string,
  deadlineMs = 5000,
): Promise<void> {
  let last = { subscriptions: Number.NaN, channels: [] as string[] };
  try {
    await waitUntil(`node ${nodeId} back at its baseline`, deadlineMs, async () => {
      last = {
        subscriptions: await metricOf(node, 'gateway_subscriptions'),
        channels: await liveChannelsOf(redis, keyPrefix, nodeId),
      };
      return last.subscriptions === 0 && last.channels.length === 0;
    });
  } catch (err) {
    throw new Error(`node ${nodeId} still holds ${JSON.stringify(last)}`, { cause: err });
  }
}
