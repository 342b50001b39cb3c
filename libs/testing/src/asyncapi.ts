import { AssertionError } from 'node:assert';
import { readFile } from 'node:fs/promises';
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/** One Kafka record as a test consumed it. */
export interface ConsumedMessage {
  /** The topic as deployed (a test's prefix included). */
  readonly topic: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The raw value ('' for a null value). */
  readonly value: string;
}

// The diagnostics' severity enum comes from another copy of @stoplight/types than the one the
// parser re-exports: compare the numbers.
const ERROR: number = DiagnosticSeverity.Error;
const isError = (severity: number): boolean => severity === ERROR;

interface MessageContract {
  readonly contentType: string | undefined;
  readonly payload: ValidateFunction;
  readonly headers: ValidateFunction | undefined;
}

/**
 * An AsyncAPI document (parsed and validated with `@asyncapi/parser`), as a check on what is
 * really on the topics: every consumed record must belong to a channel of the document (by
 * address), be one of that channel's messages (by the `ce_type` header, the message name), carry
 * that message's content type, and have headers and payload valid against its schemas. A record
 * of a topic or type the document does not have fails, so an event without a contract cannot pass.
 */
export class AsyncApiContract {
  /** By channel address, then message name. */
  private readonly channels = new Map<string, Map<string, MessageContract>>();

  private constructor() {}

  /** Parses the document at `path`; rejects with the parser's diagnostics when it is invalid. */
  static async load(path: string | URL): Promise<AsyncApiContract> {
    const { document, diagnostics } = await new Parser().parse(await readFile(path, 'utf8'));
    const errors = diagnostics.filter((d) => isError(d.severity));
    if (!document || errors.length > 0) {
      throw new Error(`${String(path)} is not a valid AsyncAPI document: ${JSON.stringify(errors)}`);
    }
    // The parser's schemas carry `x-parser-*` annotations: not strict about unknown keywords.
    const ajv = new Ajv({ strict: false, allErrors: true });
    addFormats.default(ajv);
    const contract = new AsyncApiContract();
    for (const channel of document.channels().all()) {
      const address = channel.address();
      if (address === null || address === undefined) continue;
      const messages = new Map<string, MessageContract>();
      for (const message of channel.messages().all()) {
        const name = message.name() ?? message.id();
        const headers = message.headers()?.json();
        messages.set(name, {
          contentType: message.contentType(),
          payload: ajv.compile(message.payload()?.json() ?? {}),
          headers: headers === undefined ? undefined : ajv.compile(headers),
        });
      }
      contract.channels.set(address, messages);
    }
    return contract;
  }

  /**
   * Checks one message of the channel at `address` (`/ws`) named `name` (a frame's `op`) against
   * its payload schema; throws an AssertionError when the channel has no such message or the
   * payload breaks its schema.
   */
  checkPayload(address: string, name: string, payload: unknown): void {
    const contract = this.channels.get(address)?.get(name);
    const text = JSON.stringify(payload).slice(0, 500);
    if (!contract) throw new AssertionError({ message: `${address}: no message ${name} in the contract: ${text}` });
    if (!contract.payload(payload)) {
      throw new AssertionError({
        message: `${address} ${name} breaks the contract: ${JSON.stringify(contract.payload.errors)}\n${text}`,
      });
    }
  }

  /** Throws an AssertionError naming the record when the document does not allow it. */
  check(record: ConsumedMessage): void {
    const type = record.headers.ce_type;
    const fail = (message: string): never => {
      throw new AssertionError({
        message: `${record.topic} ${type ?? '(no ce_type)'}: ${message}\nvalue: ${record.value.slice(0, 500)}`,
      });
    };
    // Deployed topics carry a prefix (KAFKA_TOPIC_PREFIX); the document names the logical topic.
    const address = [...this.channels.keys()]
      .filter((a) => record.topic === a || record.topic.endsWith(`.${a}`))
      .sort((a, b) => b.length - a.length)[0];
    if (address === undefined) return fail('no channel of the AsyncAPI document has this address');
    if (type === undefined) return fail('no ce_type header');
    const contract = this.channels.get(address)?.get(type);
    if (!contract) return fail(`channel ${address} has no message ${type}`);
    if (contract.contentType !== undefined && record.headers['content-type'] !== contract.contentType) {
      fail(`content-type ${record.headers['content-type'] ?? 'none'}, the contract says ${contract.contentType}`);
    }
    if (contract.headers && !contract.headers(record.headers)) {
      fail(`headers break the contract: ${JSON.stringify(contract.headers.errors)}`);
    }
    let payload: unknown;
    try {
      payload = JSON.parse(record.value) as unknown;
    } catch {
      return fail('the value is not JSON');
    }
    if (!contract.payload(payload)) fail(`payload breaks the contract: ${JSON.stringify(contract.payload.errors)}`);
  }
}
