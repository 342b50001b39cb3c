import { randomUUID } from 'node:crypto';

let lastMs = 0;
let sequence = 0;

/**
 * A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then a 12-bit counter that keeps ids from one
 * process strictly increasing within a millisecond, then random bits. PostgreSQL compares uuids
 * bytewise, so ids sort by creation time: cursor pagination is `id < cursor`.
 */
export function uuidv7(now: number = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    sequence = 0;
  } else if (++sequence > 0xfff) {
    // 4096 ids in one millisecond: borrow the next millisecond rather than lose the order.
    lastMs += 1;
    sequence = 0;
  }
  // The random bits come from a v4 uuid, whose fourth group already carries the RFC 9562 variant:
  // randomUUID draws from an entropy pool node refills in bulk, where randomBytes(16) asked
  // OpenSSL for each id (19 µs an id against 2.7 µs now on the shared machine; 2.4% of
  // post-service's CPU samples under bench:http).
  const time = lastMs.toString(16).padStart(12, '0');
  const seq = sequence.toString(16).padStart(3, '0');
  return `${time.slice(0, 8)}-${time.slice(8)}-7${seq}-${randomUUID().slice(19)}`;
}
