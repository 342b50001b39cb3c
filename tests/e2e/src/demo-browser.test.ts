import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { chromium } from 'playwright-core';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { cleanupAll } from '@ripple/testing';
import { isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// The demo app in a real browser (Debian's chromium, installed by scripts/test.sh) on the real
// platform: gateway, the three domain services and the demo server, on real Kafka, Redis and
// PostgreSQL. Two users in two browser contexts.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const LIVE_MS = 30_000;
const iso = isolatedRun('web');
const services: RunningService[] = [];
let demo: RunningService;
let gateway: RunningService;
let browser: Browser;
/** Where screenshots go (E2E_SCREENSHOT_DIR, or a temporary folder). */
const shots = process.env.E2E_SCREENSHOT_DIR ?? join(tmpdir(), `ripple-demo-${iso.run}`);

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: scripts/test.sh installs Debian's chromium`);
  const domain = (name: string) => ({
    ...iso.env,
    DATABASE_URL: iso.databaseUrl(name),
    OUTBOX_POLL_INTERVAL_MS: '200',
  });
  const spawn = async (name: string, env: Record<string, string>) => {
    const service = await spawnService(name, env);
    services.push(service);
    return service;
  };
  const [started, post, chat, notification] = await Promise.all([
    spawn('fanout-gateway', { ...iso.env, KAFKA_GROUP_ID: `web.${iso.run}.gateway` }),
    spawn('post-service', domain('post-service')),
    spawn('chat-service', { ...domain('chat-service'), CHAT_TYPING_INTERVAL_MS: '500' }),
    spawn('notification-service', { ...domain('notification-service'), KAFKA_GROUP_ID: `web.${iso.run}.notify` }),
  ]);
  assert.ok(started);
  gateway = started;
  demo = await spawn('demo', {
    JWT_SECRET: iso.jwtSecretText,
    NODE_ENV: 'test',
    DEMO_GATEWAY_URL: `ws://127.0.0.1:${gateway.port}/ws`,
    DEMO_POST_SERVICE_URL: post?.url ?? '',
    DEMO_CHAT_SERVICE_URL: chat?.url ?? '',
    DEMO_NOTIFICATION_SERVICE_URL: notification?.url ?? '',
  });
  mkdirSync(shots, { recursive: true });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Without the background-networking switches Chromium misbehaves on a closed network.
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
});

after(() =>
  cleanupAll(
    () => browser?.close(),
    () => Promise.all(services.map((s) => s.stop())),
    () => iso.cleanup(),
  ),
);

/** A fresh browser context (own storage) signed in as `user`, live once the client is connected. */
async function signIn(user: string): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${demo.url}/?user=${user}`);
  await textIs(page, '#state', 'connected');
  return { context, page };
}

/** Waits until the element matching `selector` has exactly `text` (Playwright's `:text-is`). */
async function textIs(page: Page, selector: string, text: string): Promise<void> {
  await page.waitForSelector(`${selector}:text-is(${JSON.stringify(text)})`, { timeout: LIVE_MS, state: 'attached' });
}

/** Waits until at least `n` elements match `selector`. */
async function count(page: Page, selector: string, n: number): Promise<void> {
  await page.waitForSelector(`${selector} >> nth=${n - 1}`, { timeout: LIVE_MS, state: 'attached' });
}

const texts = (page: Page, selector: string): Promise<string[]> => page.locator(`${selector} .text`).allTextContents();

test("B's comment should raise A's badge live, and a chat message should appear live on both sides", async () => {
  const [ua, ub] = [`ua${iso.run}`, `ub${iso.run}`];
  const a = await signIn(ua);
  const b = await signIn(ub);
  await a.page.fill('#post-body', 'hello from A');
  await a.page.click('#compose button');
  await count(a.page, '#feed [data-testid=post]', 1);
  await textIs(a.page, '#badge', '0');

  await b.page.fill('#creator', ua);
  await b.page.click('#follow button');
  await count(b.page, '#feed [data-testid=post]', 1);
  await b.page.fill('#feed [data-testid=post] input', 'nice post!');
  await b.page.click('#feed [data-testid=post] button');
  await textIs(a.page, '#badge', '1');
  await a.page.screenshot({ path: join(shots, 'a-badge.png') });

  await b.page.fill('#chat-with', ua);
  await b.page.click('#start-chat button');
  await a.page.waitForSelector('#room:not([hidden])', { timeout: LIVE_MS }); // A joins from chat.room.created
  await b.page.waitForSelector('#room:not([hidden])', { timeout: LIVE_MS });
  await b.page.fill('#message', 'hi A');
  await b.page.click('#say button');
  await count(a.page, '#messages [data-testid=message]', 1);
  await count(b.page, '#messages [data-testid=message]', 1);
  assert.deepEqual(await texts(a.page, '#messages [data-testid=message]'), [`${ub}: hi A`]);
  // A displayed it, so A's read receipt reaches B; A types, and B sees it.
  await textIs(b.page, '#messages [data-testid=receipt]', `✓ seen by ${ua}`);
  await a.page.locator('#message').pressSequentially('hi B');
  await textIs(b.page, '#typing', `${ua} is typing…`);
  await a.page.click('#say button');
  await count(b.page, '#messages [data-testid=message]', 2);
  await count(a.page, '#messages [data-testid=message]', 2);
  assert.deepEqual(await texts(b.page, '#messages [data-testid=message]'), [`${ub}: hi A`, `${ua}: hi B`]);
  await a.page.screenshot({ path: join(shots, 'a-chat.png') });
  await b.page.screenshot({ path: join(shots, 'b-chat.png') });
  await Promise.all([a.context.close(), b.context.close()]);
});

test('posts made while A is offline should all appear once, in order, when A is back online', async () => {
  const [uc, ud] = [`uc${iso.run}`, `ud${iso.run}`];
  const a = await signIn(uc);
  const b = await signIn(ud);
  await a.page.fill('#creator', ud);
  await a.page.click('#follow button');
  // Live once the gateway acknowledged the subscription: its position is what A recovers from.
  await a.page.waitForSelector('#following[data-live]', { timeout: LIVE_MS, state: 'attached' });
  assert.equal(await a.page.textContent('#following'), ud);

  await a.context.setOffline(true);
  await textIs(a.page, '#state', 'disconnected');
  const bodies = Array.from({ length: 10 }, (_, i) => `post ${i + 1}`);
  for (const [i, body] of bodies.entries()) {
    // One at a time, each seen live on B's own feed first: this is the creator channel's order.
    await b.page.fill('#post-body', body);
    await b.page.click('#compose button');
    await count(b.page, '#feed [data-testid=post]', i + 1);
  }
  await a.page.screenshot({ path: join(shots, 'a-offline.png') });
  assert.equal(await a.page.textContent('#live-count'), '0');

  await a.context.setOffline(false);
  await count(a.page, '#feed [data-testid=post]', 10);
  await textIs(a.page, '#live-count', '10');
  await textIs(a.page, '#state', 'connected');
  const shown = await texts(a.page, '#feed [data-testid=post]');
  assert.deepEqual(shown, bodies.map((body) => `${ud}: ${body}`).reverse()); // newest first
  assert.equal(await a.page.textContent('#live-count'), '10', 'no event twice');
  await a.page.screenshot({ path: join(shots, 'a-recovered.png') });
  await Promise.all([a.context.close(), b.context.close()]);
});

test('a follow lost with its connection before the gateway acknowledged it should show every post once back online', async () => {
  const [ue, uf] = [`ue${iso.run}`, `uf${iso.run}`];
  const a = await signIn(ue);
  const b = await signIn(uf);
  // The gateway is paused, so the subscription cannot be acknowledged before A goes offline: A
  // has no position to recover from, and its feed must come from the REST page instead.
  gateway.process.kill('SIGSTOP');
  try {
    await a.page.fill('#creator', uf);
    await a.page.click('#follow button');
    await textIs(a.page, '#following', uf);
    assert.equal(await a.page.locator('#following[data-live]').count(), 0, 'not live before the acknowledgement');
    await a.context.setOffline(true);
    await textIs(a.page, '#state', 'disconnected');
  } finally {
    gateway.process.kill('SIGCONT');
  }
  const bodies = ['first', 'second', 'third'];
  for (const [i, body] of bodies.entries()) {
    await b.page.fill('#post-body', body);
    await b.page.click('#compose button');
    await count(b.page, '#feed [data-testid=post]', i + 1);
  }
  await a.context.setOffline(false);
  await a.page.waitForSelector('#following[data-live]', { timeout: LIVE_MS, state: 'attached' });
  await count(a.page, '#feed [data-testid=post]', 3);
  assert.deepEqual(await texts(a.page, '#feed [data-testid=post]'), bodies.map((body) => `${uf}: ${body}`).reverse());
  await Promise.all([a.context.close(), b.context.close()]);
});
