import { MemoryNodeRegistry } from './index.js';
import { nodeRegistryContract } from './contract.js';

nodeRegistryContract('memory', () => {
  let now = 1_000_000;
  const registry = new MemoryNodeRegistry(() => now);
  return Promise.resolve({
    registry,
    waitPastTtl: (ms: number) => {
      now += ms + 1;
      return Promise.resolve();
    },
  });
});
