import { Redis } from 'ioredis';
import { resolveJwtSecret } from '@ripple/auth';
import { parseBrokers } from '@ripple/config';
import { Topics } from '@ripple/events';
import { listeningPort, runProcess } from '@ripple/http';
import { createEventConsumer, createEventProducer, createKafka, dlqTopicOf, ensureTopics } from '@ripple/kafka';
import { RedisNodeRegistry } from '@ripple/registry';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { buildApp } from './app.js';
import { SERVICE_NAME, loadGatewayConfig } from './config.js';
import { createFanout } from './fanout.js';
import { LocalHub } from './hub.js';
import { createGatewayMetrics } from './metrics.js';
import { CloseCodes } from './protocol.js';
import type { Session } from './session.js';

runProcess(SERVICE_NAME, async () => {
  const config = loadGatewayConfig();
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL).child({ node: config.NODE_ID });
  const jwtSecret = resolveJwtSecret(config, (msg) => logger.warn(msg));

  const redis = new Redis(config.REDIS_URL, { maxRetriesPerRequest: 3 });
  const nodes = new RedisNodeRegistry(redis, config.REDIS_KEY_PREFIX);
  const leaseMs = config.REGISTRY_HEARTBEAT_MS * 3;
  await nodes.heartbeat(config.NODE_ID, leaseMs);
  const heartbeat = setInterval(() => {
    nodes.heartbeat(config.NODE_ID, leaseMs).catch((err: unknown) => logger.warn({ err }, 'registry heartbeat failed'));
  }, config.REGISTRY_HEARTBEAT_MS);

  const hub = new LocalHub();
  const sessions = new Set<Session>();
  const registry = createMetricsRegistry(SERVICE_NAME);
  const metrics = createGatewayMetrics(registry, hub, () => sessions.size);
  const fanout = createFanout(hub, metrics);

  const kafka = createKafka({
    brokers: parseBrokers(config.KAFKA_BROKERS),
    clientId: `${SERVICE_NAME}-${config.NODE_ID}`,
    logger,
  });
  const topics = [config.KAFKA_TOPIC_PREFIX + Topics.post];
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
  const dlqProducer = createEventProducer(kafka);
  await dlqProducer.connect();
  const consumer = createEventConsumer({
    kafka,
    groupId: config.KAFKA_GROUP_ID,
    topics,
    logger,
    dlqProducer,
    onEvent: (event) => {
      fanout(event);
      return Promise.resolve();
    },
  });
  const admin = kafka.admin();
  await admin.connect();

  const app = await buildApp({
    nodeId: config.NODE_ID,
    hub,
    sessions,
    jwtSecret,
    logger,
    registry,
    metrics,
    heartbeatMs: config.REGISTRY_HEARTBEAT_MS,
    limits: {
      maxSubscriptions: config.WS_MAX_SUBSCRIPTIONS,
      sendBufferBytes: config.WS_SEND_BUFFER_BYTES,
      maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
    },
    checks: {
      redis: async () => {
        await redis.ping();
      },
      kafka: async () => {
        await admin.describeCluster();
      },
    },
  });
  await consumer.start();
  await app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ port: listeningPort(app) }, 'listening');

  return {
    logger,
    async stop() {
      clearInterval(heartbeat);
      for (const session of sessions) session.close(CloseCodes.goingAway, 'node shutting down');
      await app.close();
      await consumer.stop();
      await nodes.leave(config.NODE_ID);
      await Promise.all([dlqProducer.disconnect(), admin.disconnect()]);
      redis.disconnect();
    },
  };
});
