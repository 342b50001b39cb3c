import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken, signSubscriptionToken } from '@ripple/auth';
import { REDACTED } from '@ripple/telemetry';
import { cleanupAll, waitFor } from '@ripple/testing';
import { assertFramesConform, checkedFetch } from './frame-contract.js';
import { TestClient, callApi, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';
import { startOtlpReceiver } from './otlp-receiver.js';

// Browsers cannot set headers on WebSocket and EventSource requests, so /ws and /sse take their
// tokens in the query string. A real gateway, tracing to a receiver inside this test, must keep
// those tokens out of every log line it prints and every span it exports.
const iso = isolatedRun('redact');
const secret = jwtSecret(iso.jwtSecretText);
const user = `ru${iso.run}`;
const room = `r${iso.run}`;
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
let gateway: RunningService;
let accessToken: string;
let subscriptionToken: string;

before(async () => {
  receiver = await startOtlpReceiver();
  gateway = await spawnService('fanout-gateway', {
    ...iso.env,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    NODE_ID: `redact-${iso.run}`,
    KAFKA_GROUP_ID: `redact.${iso.run}.gateway`,
  });
  accessToken = await signAccessToken(secret, user);
  subscriptionToken = await signSubscriptionToken(secret, user, `chat:${room}`);
});

after(() => assertFramesConform());

after(() =>
  cleanupAll(
    () => gateway?.stop(),
    () => receiver?.close(),
    () => iso.cleanup(),
  ),
);

/** Opens `/sse?…`, reads until the stream acknowledged `channel`, then hangs up. */
async function sseUntilAck(query: string, channel: string): Promise<void> {
  const abort = new AbortController();
  const res = await checkedFetch(`${gateway.url}/sse?${query}`, { signal: abort.signal });
  assert.equal(res.status, 200, await (res.status === 200 ? Promise.resolve('') : res.text()));
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  while (!text.includes(`"channel":"${channel}"`)) {
    const { value, done } = await reader.read();
    if (done) assert.fail(`the stream ended before acknowledging ${channel}:\n${text}`);
    text += decoder.decode(value, { stream: true });
  }
  abort.abort();
  await reader.cancel().catch(() => undefined);
}

test('the gateway should keep access and subscription tokens out of its logs and spans', async () => {
  const chat = `chat:${room}`;
  await sseUntilAck(`channels=${chat}&access_token=${accessToken}&subscription_token=${subscriptionToken}`, chat);
  const ws = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws?access_token=${accessToken}`);
  await ws.frame((f) => f.op === 'welcome');
  ws.close();
  await ws.closed();
  // A token the gateway rejects, and a URL no route answers, must not be echoed either.
  const rejected = await callApi(gateway, 'GET', `/sse?channels=user:${user}&access_token=${accessToken}x`);
  assert.equal(rejected.status, 401);
  const unknown = await callApi(gateway, 'GET', `/nowhere?access_token=${accessToken}`);
  assert.equal(unknown.status, 404);
  assert.ok(!unknown.text.includes(accessToken));

  // The HTTP server span of /sse records the query with the tokens redacted, the rest intact.
  const sseSpan = await waitFor('the HTTP server span of GET /sse', 20_000, () =>
    receiver.spans.find(
      (s) => s.attributes['url.path'] === '/sse' && s.attributes['http.response.status_code'] === 200,
    ),
  );
  assert.equal(
    sseSpan.attributes['url.query'],
    new URLSearchParams({ channels: chat, access_token: REDACTED, subscription_token: REDACTED }).toString(),
  );
  // @fastify/otel's request span records the whole request target as `url.path`, redacted. (The
  // span of /ws never ends, since the socket takes the request over, so it is never exported.)
  await waitFor('the fastify request span of GET /nowhere', 20_000, () =>
    receiver.spans.find((s) => s.attributes['url.path'] === `/nowhere?access_token=${REDACTED}`),
  );
  const logs = gateway.output();
  // WebSocket upgrades are not logged one by one (metrics count them); the refused requests are.
  assert.ok(logs.includes(`access_token=${REDACTED}`), 'the request log lines keep the redacted URL');

  // Stopping flushes every span still buffered; then nothing anywhere may hold a token.
  assert.equal(await gateway.stop(), 0);
  for (const secretText of [accessToken, subscriptionToken]) {
    for (const line of gateway.output().split('\n')) assert.ok(!line.includes(secretText), `log line: ${line}`);
    for (const body of receiver.bodies) assert.ok(!body.includes(secretText), `exported spans: ${body}`);
  }
});
