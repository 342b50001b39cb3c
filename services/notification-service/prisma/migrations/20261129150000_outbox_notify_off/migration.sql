-- The outbox insert trigger's NOTIFY held PostgreSQL's cluster-wide notify lock through every
-- commit, WAL flush included, so all writers committed one after the other (pgbench, 20 writers:
-- ~250 inserts/s with it, ~2,400 without). The service wakes its relay in-process after each
-- commit instead, and NOTIFYs other processes only while its own relay cannot publish
-- (libs/outbox/src/listener.ts).
DROP TRIGGER IF EXISTS "outbox_notify" ON "outbox";
DROP FUNCTION IF EXISTS "ripple_outbox_notify"();
