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

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "outbox_event_id_key" ON "outbox"("event_id");
-- Only unsent rows: the relay's queries stay fast however many sent rows are kept.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("shard", "id") WHERE "sent_at" IS NULL;
CREATE INDEX "outbox_sent_at_id_idx" ON "outbox"("sent_at", "id");

-- Wakes the relays (LISTEN ripple_outbox) once per inserting statement.
CREATE FUNCTION "ripple_outbox_notify"() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('ripple_outbox', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "outbox_notify" AFTER INSERT ON "outbox"
  FOR EACH STATEMENT EXECUTE FUNCTION "ripple_outbox_notify"();
