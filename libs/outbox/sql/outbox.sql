-- The outbox table every service shares, as its Prisma migrations create it. The relay
-- (libs/outbox) depends on exactly these columns, this index and this trigger.
CREATE TABLE "outbox" (
    "id" BIGSERIAL NOT NULL,
    "event_id" UUID NOT NULL,
    "topic" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "shard" INTEGER NOT NULL,
    "value" TEXT NOT NULL,
    "headers" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    -- With sent_at, the code of why the relay set the row aside unpublished (migration
    -- *_outbox_refused): KAFKA_MESSAGE_TOO_LARGE. NULL for every row published.
    "refused" TEXT,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "outbox_event_id_key" ON "outbox"("event_id");
-- Only unsent rows, in id order, the order the relay reads them in: its reads stay fast however
-- many sent rows are kept (migration *_outbox_unsent_by_id; it was (shard, id), and the relay's
-- read walked the primary key through every sent row instead).
CREATE INDEX "outbox_unsent_idx" ON "outbox"("id") WHERE "sent_at" IS NULL;
CREATE INDEX "outbox_sent_at_id_idx" ON "outbox"("sent_at", "id");

-- No insert trigger NOTIFYs: a NOTIFY holds PostgreSQL's cluster-wide notify lock through the
-- commit, which serialised every writer. Services wake their relay in-process after each commit
-- (libs/outbox/src/listener.ts); migration *_outbox_notify_off removes the trigger earlier
-- migrations created.
