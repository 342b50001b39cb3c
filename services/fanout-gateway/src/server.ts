import { setTimeout as delay } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { accessTokenVerifier, jwtOptionsFrom, resolveJwtSecret } from '@ripple/auth';
import { parseBrokers } from '@ripple/config';
import { Topics, createEvent, toOutboxMessage } from '@ripple/events';
import { allowedOriginsOf, listeningPort, runProcess } from '@ripple/http';
import {
  createEventConsumer,
  createEventProducer,
  createKafka,
  createKafkaAdmin,
  dlqTopicOf,
  ensureTopics,
  registerConsumerLag,
} from '@ripple/kafka';
import {
  LeasedDirectory,
  RedisDepartures,
  RedisHistory,
  RedisLeasedSets,
  RedisConnectLog,
  RedisFenceTokens,
  RedisNodeRoster,
  RedisRouteLog,
} from '@ripple/registry';
import { connectionHealth, createLogger, createMetricsRegistry, watchConnection } from '@ripple/telemetry';
import { buildApp } from './app.js';
import { RedisNodeBus } from './bus.js';
import { SERVICE_NAME, loadGatewayConfig } from './config.js';
import { Connections } from './connections.js';
import { LocalHub } from './hub.js';
import { Membership } from './membership.js';
import { PresenceReaper } from './presence-reaper.js';
import { createGatewayMetrics, timed } from './metrics.js';
import { LiveFeeds } from './feed.js';
import { createFeedMetrics } from './feed-metrics.js';
import { httpFolloweeSource } from './followees.js';
import { Router, consumerHandlers } from './router.js';
import { SendBudget } from './send-budget.js';
import { flushWebSocketWrites } from './ws.js';
import { RegistryHeartbeat } from './registry-heartbeat.js';

runProcess(SERVICE_NAME, async () => {
  const config = loadGatewayConfig();
  const nodeId = config.NODE_ID;
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL, {
    bufferMaxBytes: config.LOG_BUFFER_MAX_BYTES,
  }).child({ node: nodeId });
  const jwtSecret = resolveJwtSecret(config, (msg) => logger.warn(msg));
  const verifyAccess = await accessTokenVerifier(jwtOptionsFrom(config, (msg) => logger.debug(msg)));

  // Commands issued in the same tick (a connect storm, a routed batch) leave in one write.
  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3, enableAutoPipelining: true });
  const registry = createMetricsRegistry(SERVICE_NAME);
  // Every ioredis connection's errors are handled, counted and logged once per outage.
  const watchRedis = (connection: Redis, name: string) =>
    watchConnection(
      connection,
      connectionHealth({ logger, metrics: registry, client: 'ioredis', connection: name }),
      'ready',
    );
  watchRedis(redis, 'redis');
  const open = { count: () => 0 };
  const subscriptionCount = { get: () => 0 };
  const metrics = createGatewayMetrics(
    registry,
    () => subscriptionCount.get(),
    () => open.count(),
    () => sendBudget.queuedBytes,
    () => router.receivedQueueBytes,
  );
  // Backpressure from the sockets to the Kafka consumer: a routed batch waits to be written while
  // the sockets hold more than the budget, and sockets that stopped reading are closed in the end.
  const sendBudget = new SendBudget({
    limitBytes: config.WS_SEND_BUDGET_BYTES,
    stallMs: config.WS_SEND_BUDGET_STALL_MS,
    onWaited: (ms) => metrics.sendBudgetWait.observe(ms / 1000),
    beforeCount: flushWebSocketWrites,
  });
  const leaseMs = config.REGISTRY_HEARTBEAT_MS * 3;
  const directory = timed(
    new LeasedDirectory(new RedisLeasedSets(redis), config.REDIS_KEY_PREFIX, nodeId, leaseMs, config.PRESENCE_LEASE_MS),
    'directory',
    metrics,
  );
  const historyOptions = { maxLength: config.HISTORY_SIZE, ttlMs: config.HISTORY_TTL_MS };
  const history = timed(new RedisHistory(redis, config.REDIS_KEY_PREFIX, historyOptions), 'history', metrics);
  const routes = timed(
    new RedisRouteLog(redis, config.REDIS_KEY_PREFIX, { ...historyOptions, leaseMs }),
    'routes',
    metrics,
  );
  const fenceTokens = timed(new RedisFenceTokens(redis, config.REDIS_KEY_PREFIX), 'fence_tokens', metrics);
  const connectionList = { all: (): ReturnType<Connections['all']> => [] };
  const membership = new Membership({
    departures: timed(
      new RedisDepartures(redis, config.REDIS_KEY_PREFIX, config.CHAT_DEPARTURE_TTL_MS),
      'departures',
      metrics,
    ),
    connections: () => connectionList.all(),
    storeSince: () => directory.dataSince(),
    logger,
  });
  const hub = new LocalHub({
    history,
    fillLimit: config.HISTORY_RECOVERY_LIMIT,
    onDelivered: (sockets) => metrics.deliveries.inc(sockets),
    onGap: (reason) => metrics.gaps.inc({ reason }),
    onHandedOut: (frame) => membership.observe(frame),
  });
  subscriptionCount.get = () => hub.subscriptionCount;
  const bus = new RedisNodeBus({
    redis,
    keyPrefix: config.REDIS_KEY_PREFIX,
    nodeId,
    onBadMessage: (err) => logger.warn({ err }, 'bad message from another node'),
    sendDelayMs: config.FAULT_NODE_BUS_DELAY_MS,
    watch: watchRedis,
    onResubscribed: () => {
      catchUp('bus').catch(() => catchUpFailed.owe()); // the next heartbeat tries again
    },
  });
  // Frames this node may have missed with no later frame to reveal them are read from history:
  // once its node-bus connection is back, and once a renewal lands after its lease may have lapsed.
  let catchingUp: Promise<void> | undefined;
  // A failed catch-up after the bus came back is owed to the registry heartbeat (made below).
  const catchUpFailed = { owe: (): void => undefined };
  const catchUp = (reason: 'lease' | 'bus' | 'dropped', channels?: readonly string[]): Promise<void> => {
    metrics.catchUps.inc({ reason });
    const attempt = (async () => {
      await catchingUp?.catch(() => undefined);
      await hub.catchUp(channels);
    })();
    catchingUp = attempt;
    return attempt.catch((err: unknown) => {
      logger.warn({ err, reason }, 'catch-up from history failed');
      throw err;
    });
  };

  const router = new Router({
    nodeId,
    hub,
    routes,
    bus,
    metrics,
    beforeRoute: (event) => membership.record(event),
    admit: (keepAlive) => sendBudget.admit(keepAlive),
    // A budget's worth per slice: a batch to many sockets is written as they drain; and a quarter
    // of one socket's buffer, so a burst to a few sockets does not fill theirs in one pass.
    sliceBytes: config.WS_SEND_BUDGET_BYTES,
    socketSliceBytes: Math.floor(config.WS_SEND_BUFFER_BYTES / 4),
    receivedQueueBytes: config.NODE_BUS_QUEUE_BYTES,
    // A failed catch-up of dropped frames is owed to the registry heartbeat, as after a bus outage.
    recover: (channels) => catchUp('dropped', channels).catch(() => catchUpFailed.owe()),
  });

  const kafka = createKafka({
    brokers: parseBrokers(config.KAFKA_BROKERS),
    clientId: `${SERVICE_NAME}-${nodeId}`,
    logger,
  });
  const topics = Object.values(Topics).map((t) => config.KAFKA_TOPIC_PREFIX + t);
  await ensureTopics(
    kafka,
    topics
      .flatMap((topic) => [topic, dlqTopicOf(topic)])
      .map((topic) => ({
        topic,
        numPartitions: config.KAFKA_TOPIC_PARTITIONS,
        replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      })),
  );
  const producer = createEventProducer(kafka, { metrics: registry, logger });
  await producer.connect();

  type PresenceData = { userId: string; connectionId: string; nodeId: string };
  const publishPresence = async (changes: readonly { change: 'online' | 'offline'; data: PresenceData }[]) => {
    const at = new Date().toISOString();
    await producer.send(
      changes.map(({ change, data }) => {
        const event = createEvent(change === 'online' ? 'presence.online' : 'presence.offline', {
          source: SERVICE_NAME,
          data: { ...data, at },
        });
        const message = toOutboxMessage(event);
        return { ...message, topic: config.KAFKA_TOPIC_PREFIX + message.topic };
      }),
    );
  };
  // Crashed nodes: each live node renews its roster entry and reaps the dead on its heartbeat. The
  // lease has a connection of its own (no auto-pipelining), not queued behind a connect storm's
  // commands; a node is claimed dead only a lease after its lease ran out (a stalled live node
  // renews in that grace and is never reaped).
  const leaseRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  watchRedis(leaseRedis, 'redis-lease');
  const roster = timed(new RedisNodeRoster(leaseRedis, config.REDIS_KEY_PREFIX, leaseMs, leaseMs), 'roster', metrics);
  const connects = timed(
    new RedisConnectLog(redis, config.REDIS_KEY_PREFIX, {
      ...historyOptions,
      leaseMs,
      presenceLeaseMs: config.PRESENCE_LEASE_MS,
    }),
    'connects',
    metrics,
  );
  const live = new Connections(nodeId, connects, metrics, logger, (changes) =>
    publishPresence(
      changes.map(({ change, connection }) => ({
        change,
        data: { userId: connection.userId, connectionId: connection.id, nodeId },
      })),
    ),
  );
  open.count = () => live.size;
  connectionList.all = () => live.all();

  // The upkeep's bulk renewals (every held channel, a share of the presence entries: thousands of
  // scripts) have a connection of their own too. On the shared, auto-pipelined one, a routed
  // batch's script that came during a renewal waited behind all of it, every heartbeat.
  const upkeepRedis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  watchRedis(upkeepRedis, 'redis-upkeep');
  const upkeepDirectory = timed(
    new LeasedDirectory(
      new RedisLeasedSets(upkeepRedis),
      config.REDIS_KEY_PREFIX,
      nodeId,
      leaseMs,
      config.PRESENCE_LEASE_MS,
    ),
    'directory',
    metrics,
  );

  const reaper = new PresenceReaper({
    roster,
    directory,
    publishOffline: (offline) => publishPresence([{ change: 'offline', data: offline }]),
    logger,
  });
  const heartbeat = new RegistryHeartbeat({
    nodeId,
    intervalMs: config.REGISTRY_HEARTBEAT_MS,
    leaseMs,
    refreshDirectory: () => upkeepDirectory.refresh(live.holdings(hub.channelNames())),
    connections: () => live.holdings([]).connections,
    roster,
    catchUp: () => catchUp('lease'),
    reinstate: async () => {
      metrics.reinstatements.inc();
      const users = await live.reinstate(upkeepDirectory);
      logger.warn(
        { connections: live.size, users },
        'a peer claimed this node as dead: registered its connections again',
      );
    },
    sweep: () => reaper.sweep(),
    onError: (err) => logger.warn({ err }, 'registry heartbeat failed'),
  });
  catchUpFailed.owe = () => heartbeat.oweCatchUp();
  await reaper.reapPrevious(nodeId);
  await heartbeat.start();

  await bus.start((message) => void router.receive(message));
  const consumer = createEventConsumer({
    kafka,
    groupId: config.KAFKA_GROUP_ID,
    topics,
    logger,
    dlqProducer: producer,
    sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
    rebalanceTimeoutMs: config.KAFKA_REBALANCE_TIMEOUT_MS,
    metrics: registry,
    // Each fetched batch of a partition is routed at once; the partitions of all topics in parallel.
    ...consumerHandlers(router),
    // A token per assignment of a partition: a node that lost it cannot append any more.
    fenceTokens: () => fenceTokens.next(config.KAFKA_GROUP_ID),
    partitionsConsumedConcurrently: config.KAFKA_TOPIC_PARTITIONS * topics.length,
  });
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  registerConsumerLag(registry, admin, config.KAFKA_GROUP_ID, topics, logger);

  const channelReads = { nodeId, hub, history, directory, historyLimit: config.HISTORY_RECOVERY_LIMIT };
  const followees = httpFolloweeSource(config.POST_SERVICE_URL, config.FEED_LOAD_TIMEOUT_MS);
  // The gauge reads the feeds when scraped, after they exist.
  const feeds: LiveFeeds = new LiveFeeds({
    subscriptions: channelReads,
    source: followees,
    metrics: createFeedMetrics(registry, () => feeds.creatorCount),
    logger,
  });

  let draining = false;
  const app = await buildApp({
    ...channelReads,
    derived: feeds,
    connections: live,
    marks: membership,
    jwtSecret,
    verifyAccess,
    logger,
    registry,
    metrics,
    pingIntervalMs: config.WS_PING_INTERVAL_MS,
    corsOrigins: allowedOriginsOf(config.CORS_ORIGINS, config.NODE_ENV),
    webSocketOrigins: config.WS_ORIGINS === undefined ? '*' : allowedOriginsOf(config.WS_ORIGINS, config.NODE_ENV),
    setupDelayMs: config.FAULT_SETUP_DELAY_MS,
    isDraining: () => draining,
    sendBudget,
    limits: {
      maxSubscriptions: config.WS_MAX_SUBSCRIPTIONS,
      sendBufferBytes: config.WS_SEND_BUFFER_BYTES,
      maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
      ratePerSecond: config.WS_RATE_PER_SEC,
      rateBurst: config.WS_RATE_BURST,
      abuseLimit: config.WS_ABUSE_LIMIT,
      refreshWindowMs: config.TOKEN_REFRESH_WINDOW_MS,
    },
    // Readiness is what serving sockets needs: Redis (registry, history, presence). Not Kafka: a
    // Kafka outage must not empty the gateway Service (no client could connect or recover); it
    // shows as consumer lag and client_connection_up{client="kafkajs"} = 0 instead.
    checks: {
      redis: async () => {
        await redis.ping();
      },
    },
  });
  // Listen before the consumer owns partitions: sockets need Redis only (another node routes the
  // events of the partitions it owns here), while the group join waits for a rebalance that busy
  // members may take long to finish; a rolling deploy must not wait for it (liveness vs readiness).
  const { joined } = await consumer.begin();
  await app.listen({ host: config.HOST, port: config.PORT, backlog: config.LISTEN_BACKLOG });
  logger.info({ port: listeningPort(app) }, 'listening');
  const listenedAt = Date.now();
  void joined.then(() => logger.info({ afterMs: Date.now() - listenedAt }, 'joined the consumer group'));

  return {
    logger,
    async stop() {
      // Drain: refuse new connections, then move clients away spread over the window, so they
      // do not all reconnect to the other nodes at the same instant.
      draining = true;
      live.handOver();
      const moving = live.all().map(
        (c) =>
          new Promise<void>((resolve) => {
            setTimeout(() => {
              c.moveAway();
              resolve();
            }, Math.random() * config.DRAIN_WINDOW_MS);
          }),
      );
      await Promise.all(moving);
      const lastMoveAt = Date.now();
      await app.close();
      await consumer.stop();
      // The moved clients reconnect elsewhere meanwhile; then those who did not are announced
      // offline here (also when every node drains at once). The heartbeat runs until then, so no
      // peer claims this node and announces them too.
      await delay(Math.max(0, lastMoveAt + config.DRAIN_PRESENCE_GRACE_MS - Date.now()));
      await live.releaseHandedOver();
      await heartbeat.stop();
      await directory.leave(live.holdings(hub.channelNames()));
      await roster.leave(nodeId);
      await live.settled();
      await followees.close();
      await bus.stop();
      await Promise.all([producer.disconnect(), admin.disconnect()]);
      redis.disconnect();
      leaseRedis.disconnect();
      upkeepRedis.disconnect();
    },
  };
});
