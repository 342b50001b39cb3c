import type { RawSql } from '@ripple/db';
import { OverloadError } from '@ripple/http';
import type { Mutations } from '@ripple/http';

/**
 * `mutations` that refuse to start while `backlogged()` says so (`OutboxService.shouldShed`):
 * every `run` and `single` then throws OverloadError `outbox_backlog` before any database work,
 * which the overload protection answers with 503 OVERLOADED and Retry-After and counts in
 * `http_requests_shed_total{reason="outbox_backlog"}`. Only mutations: they are what adds outbox
 * rows, so reads, probes and direct publishes (typing) are never refused by it. A retry with an
 * Idempotency-Key whose answer is stored is refused too (it is a mutation until its key is read).
 */
export function backlogShedding<Tx extends RawSql>(base: Mutations<Tx>, backlogged: () => boolean): Mutations<Tx> {
  const admit = () => {
    if (backlogged()) {
      throw new OverloadError('outbox_backlog', 'over capacity (events wait to be published): retry later');
    }
  };
  return {
    run: async (request, reply, status, work) => {
      admit();
      return base.run(request, reply, status, work);
    },
    single: async (request, reply, status, work) => {
      admit();
      return base.single(request, reply, status, work);
    },
  };
}
