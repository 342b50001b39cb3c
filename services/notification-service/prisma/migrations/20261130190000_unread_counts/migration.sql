-- Each user's unread count, kept by the transactions that change their notifications (src/unread-counts.ts):
-- each adds its change with one upsert and emits the count and generation it returns. The row's
-- lock orders those transactions per user, so the counts they emit are the counts as of their
-- commits, in commit order; counting the notifications instead, concurrent transactions missed each
-- other's uncommitted rows and emitted stale counts. `generation` rises by one with every change.
CREATE TABLE "unread_counts" (
    "user_id" TEXT NOT NULL,
    "count" INTEGER NOT NULL,
    "generation" BIGINT NOT NULL,

    CONSTRAINT "unread_counts_pkey" PRIMARY KEY ("user_id")
);

-- Backfill. Writers wait for the lock until this migration commits, so no change falls between
-- the count and the table that keeps it from now on.
LOCK TABLE "notifications" IN SHARE MODE;
INSERT INTO "unread_counts" ("user_id", "count", "generation")
SELECT "user_id", count(*), 1 FROM "notifications" WHERE "read_at" IS NULL GROUP BY "user_id";
