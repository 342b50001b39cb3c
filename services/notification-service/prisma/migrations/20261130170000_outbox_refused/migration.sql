-- A row the relay can never publish (one record over the bound of a produce request, which the
-- broker refuses for ever) is set aside instead of holding every later row of its shards: marked
-- sent with the code of the reason here (libs/outbox relay.ts), logged and counted in
-- outbox_rows_refused_total. NULL for every row published.
ALTER TABLE "outbox" ADD COLUMN "refused" TEXT;
