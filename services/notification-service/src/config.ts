import { Type } from '@sinclair/typebox';
import { domainServiceEnv } from '@ripple/service';

export const SERVICE_NAME = 'notification-service';

/** notification-service's environment (README "Configuration"): a domain service's, on port 3003, and its consumer's. */
export const NotificationEnv = Type.Composite([
  domainServiceEnv(SERVICE_NAME, 3003),
  Type.Object({
    KAFKA_GROUP_ID: Type.String({ default: SERVICE_NAME, minLength: 1 }),
    KAFKA_SESSION_TIMEOUT_MS: Type.Integer({ default: 30_000, minimum: 3000, maximum: 2_147_483_647 }),
    /** Event ids are remembered this long to drop redeliveries; keep it above the topics' retention. */
    PROCESSED_EVENTS_RETENTION_MS: Type.Integer({ default: 8 * 24 * 3600 * 1000, minimum: 60_000 }),
  }),
]);
