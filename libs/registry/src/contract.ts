import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NodeRegistry } from './nodes.js';

/**
 * The NodeRegistry contract, run against every implementation. `make` returns a fresh, empty
 * registry and registers its own cleanup; `waitPastTtl` lets `ms` of registry time pass.
 */
export function nodeRegistryContract(
  name: string,
  make: () => Promise<{ registry: NodeRegistry; waitPastTtl: (ms: number) => Promise<void> }>,
): void {
  test(`${name}: registry should list nodes that heartbeat`, async () => {
    const { registry } = await make();
    await registry.heartbeat('b', 10_000);
    await registry.heartbeat('a', 10_000);
    assert.deepEqual(await registry.liveNodes(), ['a', 'b']);
  });

  test(`${name}: registry should forget a node that left`, async () => {
    const { registry } = await make();
    await registry.heartbeat('a', 10_000);
    await registry.heartbeat('b', 10_000);
    await registry.leave('a');
    assert.deepEqual(await registry.liveNodes(), ['b']);
  });

  test(`${name}: registry should forget a node whose heartbeat stopped`, async () => {
    const { registry, waitPastTtl } = await make();
    await registry.heartbeat('short', 50);
    await registry.heartbeat('long', 60_000);
    await waitPastTtl(50);
    assert.deepEqual(await registry.liveNodes(), ['long']);
  });
}
