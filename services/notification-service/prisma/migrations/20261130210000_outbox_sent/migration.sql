-- Unsent rows get a table of their own (libs/outbox/sql/outbox.sql). Published rows stayed in
-- "outbox" marked sent_at, and each left an entry at the head of outbox_unsent_idx that the relay's
-- every read walked past until a VACUUM of the whole table, which autovacuum runs once a fifth of
-- a day's rows changed (100,000 such entries made a read 1.4 ms and 277 buffers instead of 0.05 ms
-- and 3). Now the relay moves each row it published to "outbox_sent" and has "outbox", as small as
-- the backlog, VACUUMed every few thousand rows.
--
-- The kept rows stay where they are: the table is renamed, and only the backlog (rows not sent
-- yet) is copied into the new "outbox", which continues the same id sequence and gets the old
-- table's owner and privileges. The copy holds the table's lock, so writes wait for it: drain a
-- large backlog before upgrading (500,000 unsent rows held writes ~6 s). What else referred to the
-- old table (views, triggers, policies, publications of your own) follows it to "outbox_sent". Relays of the
-- previous version still running can no longer read (no sent_at column) and publish nothing but
-- the batch they had in flight, which the new relays publish again (duplicates, which consumers
-- drop by event id, as after a lost mark).
ALTER TABLE "outbox" RENAME TO "outbox_sent";
ALTER TABLE "outbox_sent" RENAME CONSTRAINT "outbox_pkey" TO "outbox_sent_pkey";
ALTER INDEX "outbox_sent_at_id_idx" RENAME TO "outbox_sent_sent_at_id_idx";
DROP INDEX "outbox_unsent_idx";
DROP INDEX "outbox_event_id_key";

CREATE TABLE "outbox" (
    "id" BIGINT NOT NULL DEFAULT nextval('outbox_id_seq'),
    "event_id" UUID NOT NULL,
    "topic" TEXT NOT NULL,
    "key" TEXT NOT NULL,
    "shard" INTEGER NOT NULL,
    "value" TEXT NOT NULL,
    "headers" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "outbox_pkey" PRIMARY KEY ("id")
) WITH (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_vacuum_cost_delay = 0,
    vacuum_truncate = false
);
-- The new table gets the old one's owner (whoever runs this: its owner, a superuser) and the
-- privileges the old one had, on the table and on its columns, so a service connecting as a role
-- that does not own the tables can still write its rows.
DO $$
DECLARE
  owner oid := (SELECT relowner FROM pg_class WHERE oid = '"outbox_sent"'::regclass);
  acl record;
BEGIN
  EXECUTE format('ALTER TABLE "outbox" OWNER TO %I', pg_get_userbyid(owner));
  FOR acl IN
    SELECT NULL::name AS column_name, a.grantee, a.privilege_type, a.is_grantable
    FROM pg_class c, aclexplode(c.relacl) a
    WHERE c.oid = '"outbox_sent"'::regclass AND a.grantee <> owner
    UNION ALL
    SELECT att.attname, a.grantee, a.privilege_type, a.is_grantable
    FROM pg_attribute att, aclexplode(att.attacl) a
    WHERE att.attrelid = '"outbox_sent"'::regclass AND a.grantee <> owner
      AND att.attname IN (SELECT attname FROM pg_attribute WHERE attrelid = '"outbox"'::regclass AND attnum > 0)
  LOOP
    EXECUTE format('GRANT %s%s ON "outbox" TO %s%s', acl.privilege_type,
                   CASE WHEN acl.column_name IS NULL THEN '' ELSE format(' (%I)', acl.column_name) END,
                   CASE WHEN acl.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(acl.grantee)) END,
                   CASE WHEN acl.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END);
  END LOOP;
END $$;
ALTER SEQUENCE "outbox_id_seq" OWNED BY "outbox"."id";
ALTER TABLE "outbox_sent" ALTER COLUMN "id" DROP DEFAULT;
CREATE UNIQUE INDEX "outbox_event_id_key" ON "outbox"("event_id");

INSERT INTO "outbox" ("id", "event_id", "topic", "key", "shard", "value", "headers", "created_at")
SELECT "id", "event_id", "topic", "key", "shard", "value", "headers", "created_at"
FROM "outbox_sent" WHERE "sent_at" IS NULL;
DELETE FROM "outbox_sent" WHERE "sent_at" IS NULL;
ALTER TABLE "outbox_sent" ALTER COLUMN "sent_at" SET NOT NULL;
