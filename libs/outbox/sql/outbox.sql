-- The outbox tables every service shares, as its Prisma migrations create them. The relay
-- (libs/outbox) depends on exactly these columns, indexes and settings.
--
-- "outbox" holds the rows waiting for the relay, and only those: the relay moves each row it
-- published (or set aside) into "outbox_sent" in the statement that reads its next batch, so the
-- table stays as small as the backlog and the relay's read (the oldest rows by id) starts at the
-- first unsent row once VACUUM removed the moved rows' index entries, which the relay has it do
-- every few thousand rows (libs/outbox pg-store.ts; migration *_outbox_sent). Before, published
-- rows stayed in one table marked sent_at, and each left an entry at the head of the unsent index
-- that every read walked until a VACUUM of the whole, day-long table.
CREATE TABLE "outbox" (
    "id" BIGSERIAL NOT NULL,
    "event_id" UUID NOT NULL,
    "topic" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "shard" INTEGER NOT NULL,
    "value" TEXT NOT NULL,
    "headers" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
) WITH (
    -- Autovacuum as a fallback to the relay's own VACUUM: after 1,000 moved rows, whatever the
    -- table's size, unthrottled (it is small), and never truncating (which takes an exclusive lock
    -- that would stall the writers).
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    vacuum_truncate = false
);

CREATE UNIQUE INDEX "outbox_event_id_key" ON "outbox"("event_id");

-- Rows published (sent_at: when the broker had acknowledged them) and rows set aside unpublished
-- (refused: the code of why, KAFKA_MESSAGE_TOO_LARGE, migration *_outbox_refused), kept for
-- OUTBOX_RETENTION_MS.
CREATE TABLE "outbox_sent" (
    "id" BIGINT NOT NULL,
    "event_id" UUID NOT NULL,
    "topic" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "shard" INTEGER NOT NULL,
    "value" TEXT NOT NULL,
    "headers" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "sent_at" TIMESTAMPTZ(3) NOT NULL,
    "refused" TEXT,

    CONSTRAINT "outbox_sent_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "outbox_sent_sent_at_id_idx" ON "outbox_sent"("sent_at", "id");

-- No insert trigger NOTIFYs: a NOTIFY holds PostgreSQL's cluster-wide notify lock through the
-- commit, which serialised every writer. Services wake their relay in-process after each commit
-- (libs/outbox/src/listener.ts); migration *_outbox_notify_off removes the trigger earlier
-- migrations created.
