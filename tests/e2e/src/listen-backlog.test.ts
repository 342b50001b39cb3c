import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { waitUntil } from '@ripple/testing';
import { isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// A reconnect storm (a node drained or lost: thousands of clients at once) arrives while the
// process is busy. The kernel queues the connections the process has not accepted yet, up to its
// listen backlog; past it, it drops their SYNs and each client waits for its TCP retransmit (1 s,
// 3 s, 7 s, … 63 s). Node's default backlog, 511, made a 5,000-client rolling restart's
// recoveries take up to 40 s. Here a process is stopped (SIGSTOP: nothing is accepted), more
// connections than 511 arrive, and the kernel must queue every one of them.
const iso = isolatedRun('backlog');
const STORM = 1000;
const services: RunningService[] = [];

before(async () => {
  services.push(await spawnService('fanout-gateway', { ...iso.env, NODE_ID: `backlog-${iso.run}` }));
  services.push(await spawnService('post-service', { ...iso.env, DATABASE_URL: iso.databaseUrl('post-service') }));
});

after(async () => {
  for (const service of services) {
    service.process.kill('SIGCONT');
    await service.stop('SIGKILL');
  }
  await iso.cleanup();
});

/**
 * The accept queue of the IPv4 listener on 127.0.0.1:`port` now: connections the kernel
 * established that the process has not accepted (/proc/net/tcp shows it as a listener's rx_queue).
 */
function acceptQueue(port: number): number {
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields[1] === local && fields[3] === '0A') return parseInt(fields[4]?.split(':')[1] ?? '0', 16);
  }
  throw new Error(`no listener on 127.0.0.1:${port}`);
}

/**
 * Opens a connection that asks `GET /healthz`; resolves with the answer's status line once the
 * connection closed (empty if it closed unanswered).
 */
function healthz(port: number, sockets: Socket[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'),
    );
    sockets.push(socket);
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

for (const name of ['fanout-gateway', 'post-service']) {
  test(`${name}: a stopped process's kernel queues ${STORM} connections, and each is answered once it runs`, async () => {
    const service = services.find((s) => s.name === name);
    assert.ok(service);
    const sockets: Socket[] = [];
    service.process.kill('SIGSTOP');
    let queued = 0;
    const answers = Promise.allSettled(Array.from({ length: STORM }, () => healthz(service.port, sockets)));
    try {
      // Past the backlog the kernel drops SYNs: the queue would stop at backlog + 1 (512).
      await waitUntil(`${STORM} connections in the accept queue`, 20_000, () => {
        queued = acceptQueue(service.port);
        return queued >= STORM;
      });
    } catch {
      for (const socket of sockets) socket.destroy();
      assert.fail(`the accept queue stopped at ${queued} of ${STORM} connections`);
    } finally {
      service.process.kill('SIGCONT');
    }
    try {
      const statuses = (await answers).map((a) => (a.status === 'fulfilled' ? a.value : String(a.reason)));
      assert.deepEqual(new Set(statuses), new Set(['HTTP/1.1 200 OK']));
    } finally {
      for (const socket of sockets) socket.destroy();
    }
  });
}
