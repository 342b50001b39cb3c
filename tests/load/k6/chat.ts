// Chat: ROOMS rooms of MEMBERS members each (one VU per member). Every member subscribes to its
// room with a subscription token from chat-service, then, every MESSAGE_INTERVAL, signals typing,
// sends a message and marks the newest message it received as read (a read receipt). Measures
// message send → receipt latency on the other members' sockets and keeps the ledger of the room
// channel (messages, typing and read events all carry offsets).
//
// Knobs (environment):
//   ROOMS             rooms                                          (default 5)
//   MEMBERS           members per room (VUs = ROOMS × MEMBERS)       (default 4)
//   MESSAGE_INTERVAL  time between one member's messages             (default 3s; typing is
//                     published at most every CHAT_TYPING_INTERVAL_MS = 2 s per user and room)
//   DURATION          chatting time                                  (default 30s)
//   SETTLE            time after the last message before the check   (default 5s)
//   DELIVERY_P99_MS   threshold on delivery latency p99, ms          (default 500)
// Common: RIPPLE_WS_URL, RIPPLE_CHAT_URL, JWT_SECRET or TOKENS_FILE, USER_PREFIX.
import { check } from 'k6';
import http from 'k6/http';
import { clearInterval, setInterval, setTimeout } from 'k6/timers';
import {
  Session,
  authParams,
  bodyText,
  config,
  deliveryThresholds,
  durationEnv,
  intEnv,
  metrics,
  postJson,
  retryWhileShed,
  runData,
  scenarioIndex,
  stampOf,
  stampedBody,
  summaryTrendStats,
} from './lib/ripple.ts';
import type { RunData } from './lib/ripple.ts';

const rooms = intEnv('ROOMS', 5);
const members = intEnv('MEMBERS', 4, 2); // a room of one sends no read receipt
const intervalMs = durationEnv('MESSAGE_INTERVAL', '3s', 100); // each member sends at most 10 messages/s
const chatMs = durationEnv('DURATION', '30s', 1000);
const settleMs = durationEnv('SETTLE', '5s');
// A member marks as read what it received during its previous interval, so a run shorter than two
// intervals, or a room of one, sends no read receipt and its receipt threshold would have no
// sample to judge (k6 passes a threshold without samples).
if (chatMs < 2 * intervalMs)
  throw new Error(
    `DURATION (${chatMs} ms) must be at least twice MESSAGE_INTERVAL (${intervalMs} ms): read receipts start from a member's second message`,
  );

export const options = {
  summaryTrendStats,
  scenarios: {
    members: {
      executor: 'per-vu-iterations',
      exec: 'chatMember',
      vus: rooms * members,
      iterations: 1,
      maxDuration: `${Math.ceil((chatMs + settleMs) / 1000) + 60}s`,
    },
  },
  thresholds: {
    ...deliveryThresholds,
    ripple_delivery_latency: [`p(99)<${intEnv('DELIVERY_P99_MS', 500, 0)}`],
    ripple_ws_unexpected_closes: ['count==0'],
    http_req_failed: ['rate<0.01'],
    'checks{check:message sent}': ['rate>0.99'],
    'checks{check:read receipt}': ['rate>0.99'],
  },
};

interface ChatData extends RunData {
  readonly rooms: string[];
}

const member = (prefix: string, room: number, index: number) => `${prefix}-room${room}-m${index}`;

/** Creates the rooms: member 0 owns each and adds the others. */
export function setup(): ChatData {
  const data = runData();
  const ids: string[] = [];
  for (let r = 0; r < rooms; r++) {
    const others = Array.from({ length: members - 1 }, (_, m) => member(data.prefix, r, m + 1));
    const { res, json } = retryWhileShed(() =>
      postJson(
        `${config.chatUrl}/rooms`,
        member(data.prefix, r, 0),
        { name: `k6 room ${r}`, memberIds: others },
        'POST /rooms',
      ),
    );
    if (res.status !== 201 || typeof json?.id !== 'string')
      throw new Error(`POST /rooms answered ${res.status}: ${bodyText(res)}`);
    ids.push(json.id);
  }
  return { ...data, rooms: ids };
}

export function chatMember(data: ChatData): void {
  const vu = scenarioIndex();
  const room = vu % rooms;
  const roomId = data.rooms[room] as string;
  const user = member(data.prefix, room, Math.floor(vu / rooms) % members);
  const channel = `chat:${roomId}`;
  const { res: grant } = retryWhileShed(() => ({
    res: http.get(
      `${config.chatUrl}/rooms/${roomId}/subscription-token`,
      authParams(user, { name: 'GET subscription-token' }),
    ),
  }));
  const token = (grant.json() as { token?: string } | null)?.token;
  if (grant.status !== 200 || token === undefined)
    throw new Error(`subscription token: ${grant.status} ${bodyText(grant)}`);
  let newest: string | undefined;
  let readUpTo: string | undefined;
  new Session(user, {
    onWelcome: (session) =>
      session.subscribe(channel, token, (answer) => {
        if (answer.op !== 'ack') return session.close();
        const tick = setInterval(() => {
          // 429 TYPING_THROTTLED is the throttle doing its job (a typing signal every
          // CHAT_TYPING_INTERVAL_MS at most), not a failure.
          const typing = http.post(`${config.chatUrl}/rooms/${roomId}/typing`, null, {
            ...authParams(user, { name: 'POST typing' }),
            responseCallback: http.expectedStatuses(202, 429),
          });
          check(typing, { typing: (r) => r.status === 202 || r.status === 429 });
          const sent = postJson(
            `${config.chatUrl}/rooms/${roomId}/messages`,
            user,
            { body: stampedBody(`k6 from ${user}`) },
            'POST message',
          );
          check(sent.res, { 'message sent': (r) => r.status === 201 });
          if (newest !== undefined && newest !== readUpTo) {
            readUpTo = newest;
            const read = postJson(`${config.chatUrl}/rooms/${roomId}/read`, user, { messageId: newest }, 'POST read');
            check(read.res, { 'read receipt': (r) => r.status === 200 });
          }
        }, intervalMs);
        setTimeout(() => clearInterval(tick), chatMs);
        setTimeout(() => session.verifyAndClose(), chatMs + settleMs);
      }),
    onEvent: (_session, _channel, event) => {
      if (event.type !== 'chat.message.sent' || event.data.senderId === user) return;
      newest = String(event.data.messageId);
      const sentAt = stampOf(event.data.body);
      if (sentAt !== undefined) metrics.deliveryLatency.add(Date.now() - sentAt);
    },
  });
}
