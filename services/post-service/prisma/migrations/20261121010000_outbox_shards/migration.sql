-- Shard rows by partition key so several relays can publish in parallel while each aggregate
-- stays in order, and wake relays on insert (libs/outbox/sql/outbox.sql is the resulting table).

-- AlterTable
ALTER TABLE "outbox" ADD COLUMN "shard" INTEGER NOT NULL DEFAULT 0;
ALTER TABLE "outbox" ALTER COLUMN "shard" DROP DEFAULT;

-- CreateIndex
-- Only unsent rows: the relay's queries stay fast however many sent rows are kept.
CREATE INDEX "outbox_unsent_idx" ON "outbox"("shard", "id") WHERE "sent_at" IS NULL;

-- Wakes the relays (LISTEN ripple_outbox) once per inserting statement.
CREATE FUNCTION "ripple_outbox_notify"() RETURNS trigger AS $$
BEGIN
  PERFORM pg_notify('ripple_outbox', '');
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER "outbox_notify" AFTER INSERT ON "outbox"
  FOR EACH STATEMENT EXECUTE FUNCTION "ripple_outbox_notify"();
