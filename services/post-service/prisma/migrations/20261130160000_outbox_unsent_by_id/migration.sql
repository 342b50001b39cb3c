-- The relay reads the oldest unsent rows in id order (ORDER BY id LIMIT n, libs/outbox
-- pg-store.ts). With the unsent rows indexed by (shard, id) only, PostgreSQL took that order from
-- the primary key and walked every sent row still kept (OUTBOX_RETENTION_MS: a day's) before the
-- first unsent one, on every batch: with 100,000 sent rows ahead, one read took 40-160 ms, and the
-- relay slowed down the longer the service ran. Indexed by id, a read goes through unsent rows only.
DROP INDEX IF EXISTS "outbox_unsent_idx";
CREATE INDEX "outbox_unsent_idx" ON "outbox"("id") WHERE "sent_at" IS NULL;
