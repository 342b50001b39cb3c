import { AssertionError } from 'node:assert';
import type { ReadableStream } from 'node:stream/web';
import { fileURLToPath } from 'node:url';
import { WebSocket } from 'ws';
import type { ClientOptions as WebSocketOptions } from 'ws';
import { AsyncApiContract } from '@ripple/testing';

const DOC = new URL('../../../docs/asyncapi-gateway.yaml', import.meta.url);

/** The channel of docs/asyncapi-gateway.yaml a frame came through. */
export type FrameChannel = '/ws' | '/sse';

let contract: AsyncApiContract | undefined;
let loading: Promise<AsyncApiContract> | undefined;

/** docs/asyncapi-gateway.yaml, parsed once (with @asyncapi/parser). */
export function gatewayFrameContract(): Promise<AsyncApiContract> {
  return (loading ??= AsyncApiContract.load(fileURLToPath(DOC)).then((c) => (contract = c)));
}

/** Every violation any checked receiver found in this process (see `assertFramesConform`). */
const seen: Error[] = [];

/**
 * Checks one frame received from a gateway against the gateway AsyncAPI document: the message of
 * `channel` named `name` (a WebSocket frame's `op`, an SSE event's name), its payload valid against
 * that message's schema. A violation goes to `violations` (and to the process-wide list); when the
 * document is still loading, the check runs once it has loaded.
 */
export function checkGatewayFrame(channel: FrameChannel, name: string, payload: unknown, violations: Error[]): void {
  const check = (c: AsyncApiContract) => {
    try {
      c.checkPayload(channel, name, payload);
    } catch (err) {
      violations.push(err as Error);
      seen.push(err as Error);
    }
  };
  if (contract) check(contract);
  else void gatewayFrameContract().then(check);
}

/** Records a frame that is not even JSON as a violation. */
function notJson(channel: FrameChannel, text: string, violations: Error[]): void {
  const err = new AssertionError({ message: `${channel}: a frame that is not JSON: ${text.slice(0, 200)}` });
  violations.push(err);
  seen.push(err);
}

/** Throws the first frame violation any checked receiver of this process found (for `after` hooks). */
export async function assertFramesConform(): Promise<void> {
  await gatewayFrameContract();
  if (seen[0]) throw seen[0];
}

/** One Server-Sent Event (comments dropped); `data` is the event's data lines joined. */
export interface RawSseEvent {
  readonly id?: string;
  readonly event?: string;
  readonly data: string;
}

/** Reads an SSE body to its end, calling `onEvent` for each event with data. */
export async function readSseEvents(
  body: ReadableStream<Uint8Array> | globalThis.ReadableStream<Uint8Array>,
  onEvent: (event: RawSseEvent) => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true });
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const fields: Record<string, string> = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':') || line === '') continue;
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        fields[name] = name === 'data' && fields.data !== undefined ? `${fields.data}\n${value}` : value;
      }
      if (fields.data !== undefined) {
        onEvent({
          ...(fields.id !== undefined && { id: fields.id }),
          ...(fields.event !== undefined && { event: fields.event }),
          data: fields.data,
        });
      }
    }
  }
}

/**
 * Checks one SSE event against the `/sse` channel (its name is the frame's op; unnamed events
 * are `message`) and returns its data parsed, or undefined when it is not JSON (a violation).
 */
export function checkSseEvent(event: RawSseEvent, violations: Error[]): Record<string, unknown> | undefined {
  let data: Record<string, unknown>;
  try {
    data = JSON.parse(event.data) as Record<string, unknown>;
  } catch {
    notJson('/sse', event.data, violations);
    return undefined;
  }
  checkGatewayFrame('/sse', event.event ?? 'message', data, violations);
  return data;
}

/** Checks one WebSocket text frame against the `/ws` channel; returns it parsed (undefined: not JSON). */
export function checkWebSocketFrame(text: string, violations: Error[]): Record<string, unknown> | undefined {
  let frame: Record<string, unknown>;
  try {
    frame = JSON.parse(text) as Record<string, unknown>;
  } catch {
    notJson('/ws', text, violations);
    return undefined;
  }
  checkGatewayFrame('/ws', String(frame.op), frame, violations);
  return frame;
}

/**
 * A `ws` WebSocket whose every received text frame is checked against the gateway AsyncAPI
 * document, for clients that take a WebSocket constructor (@ripple/client). Violations go to the
 * process-wide list: `assertFramesConform` in an `after` hook fails the test file.
 */
export class CheckedWebSocket extends WebSocket {
  constructor(url: string, protocols?: string | string[], options?: WebSocketOptions) {
    super(url, protocols, options);
    void gatewayFrameContract();
    this.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary) checkWebSocketFrame(data.toString('utf8'), []);
    });
  }
}

/**
 * `fetch` whose Server-Sent Events answers are read twice: the caller gets the stream as usual,
 * and every event of it is checked against the gateway AsyncAPI document (process-wide list, as
 * `CheckedWebSocket`).
 */
export const checkedFetch: typeof fetch = async (input, init) => {
  void gatewayFrameContract();
  const response = await fetch(input, init);
  if (!response.body || !(response.headers.get('content-type') ?? '').startsWith('text/event-stream')) return response;
  const [mine, theirs] = response.body.tee();
  readSseEvents(mine, (event) => checkSseEvent(event, [])).catch(() => undefined); // aborted with theirs
  return new Response(theirs, { status: response.status, statusText: response.statusText, headers: response.headers });
};
