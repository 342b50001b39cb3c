import { AssertionError } from 'node:assert';
import SwaggerParser from '@apidevtools/swagger-parser';
import responseValidator from 'openapi-response-validator';
import type { IOpenAPIResponseValidator } from 'openapi-response-validator';
import type { OpenAPIV3 } from 'openapi-types';

/** One HTTP answer as a test received it. */
export interface HttpExchange {
  readonly method: string;
  /** The request URL or path (a query string is ignored). */
  readonly url: string;
  readonly status: number;
  /** The response's `content-type` header, if any. */
  readonly contentType: string | undefined;
  /** The raw response body ('' when there is none). */
  readonly body: string;
  /**
   * The response's headers, when the test has them: every one but the transport's own
   * (`TRANSPORT_HEADERS`, CORS) must be declared in the status's `headers`.
   */
  readonly headers?: Readonly<Record<string, unknown>>;
}

/** Headers of HTTP itself (framing, dates, caching, CORS), which no operation declares. */
const TRANSPORT_HEADERS = new Set([
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'vary',
  'cache-control',
]);
const isTransportHeader = (name: string) => TRANSPORT_HEADERS.has(name) || name.startsWith('access-control-');

interface Operation {
  readonly template: string;
  readonly pattern: RegExp;
  /** Literal characters of the template: the most specific match wins (`/a/b` over `/a/{x}`). */
  readonly literal: number;
  readonly responses: OpenAPIV3.ResponsesObject;
  readonly validator: IOpenAPIResponseValidator;
}

// CommonJS with `exports.default`: under Node's ESM loader the class is the default's `default`.
const { default: OpenAPIResponseValidator } = responseValidator;

/** Where a document declares the answers any request may get (as `@ripple/http` serves it). */
const GLOBAL_RESPONSES = 'x-global-responses';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * A served OpenAPI 3 document, as a check on real traffic: every answer a test receives must be
 * one the document promises for that operation (its status listed, its body valid against that
 * status's schema, JSON when the status has content and empty when it has none). An answer from
 * an operation the document does not have fails too, so a route without a contract cannot pass.
 */
export class OpenApiContract {
  private readonly operations = new Map<string, Operation[]>();
  /** The document's `x-global-responses`: what any request may be answered (404 for an unknown route). */
  private readonly global: Omit<Operation, 'pattern' | 'literal'> | undefined;

  private constructor(doc: OpenAPIV3.Document) {
    const globals = ((doc as unknown as Record<string, unknown>)[GLOBAL_RESPONSES] ?? {}) as OpenAPIV3.ResponsesObject;
    this.global =
      Object.keys(globals).length === 0
        ? undefined
        : {
            template: GLOBAL_RESPONSES,
            responses: globals,
            validator: new OpenAPIResponseValidator({ responses: globals as never, components: doc.components ?? {} }),
          };
    for (const [template, item] of Object.entries(doc.paths)) {
      if (item === undefined) continue;
      // A parameter may be empty: fastify routes `/users/` to `/users/:userId` with an empty id,
      // and that request is the operation's (its validation answers 400 naming the parameter).
      const pattern = new RegExp(
        `^${template
          .split(/(\{[^}]+\})/)
          .map((part) => (part.startsWith('{') ? '[^/]*' : escapeRegExp(part)))
          .join('')}$`,
      );
      const literal = template.replace(/\{[^}]+\}/g, '').length;
      for (const method of METHODS) {
        const op = item[method];
        if (op === undefined) continue;
        const validator = new OpenAPIResponseValidator({
          responses: op.responses as never,
          components: doc.components ?? {},
        });
        const list = this.operations.get(method.toUpperCase()) ?? [];
        list.push({ template, pattern, literal, responses: op.responses, validator });
        this.operations.set(method.toUpperCase(), list);
      }
    }
  }

  /**
   * Checks that `doc` is a valid OpenAPI document (swagger-parser, against the OpenAPI schema)
   * and returns its contract. Rejects with the parser's error when it is not.
   */
  static async load(doc: unknown): Promise<OpenApiContract> {
    // The parser dereferences in place: validate a copy, keep the document as served.
    await SwaggerParser.validate(structuredClone(doc) as OpenAPIV3.Document);
    return new OpenApiContract(doc as OpenAPIV3.Document);
  }

  /** The operation that answers `method` on `path`, as `GET /posts/{postId}`, or undefined. */
  operationOf(method: string, path: string): string | undefined {
    const op = this.find(method, path);
    return op && `${method.toUpperCase()} ${op.template}`;
  }

  private find(method: string, path: string): Operation | undefined {
    const candidates = (this.operations.get(method.toUpperCase()) ?? []).filter((o) => o.pattern.test(path));
    return candidates.sort((a, b) => b.literal - a.literal)[0];
  }

  /**
   * Throws an AssertionError naming the exchange when the document does not allow it: for a
   * method and path with an operation, one of that operation's own responses (what any request
   * may get must be declared on each operation too, so a validator that reads only the operation
   * accepts it); for one without, one of the document's global responses. Headers, when the
   * exchange has them, must be declared for the status (but HTTP's own). A JSON media type is
   * checked against its schema; another declared one (`text/plain`, `text/event-stream`) only by
   * its content type.
   */
  check(exchange: HttpExchange): void {
    const path = new URL(exchange.url, 'http://contract.invalid').pathname;
    const what = `${exchange.method.toUpperCase()} ${path} answered ${exchange.status}`;
    const op = this.find(exchange.method, path);
    const problem = op
      ? this.problemWith(op, exchange)
      : this.global
        ? this.problemWith(this.global, exchange)
        : 'the OpenAPI document has no such operation';
    if (problem === undefined) return;
    const note = op || !this.global ? '' : 'the OpenAPI document has no such operation; as a global response: ';
    throw new AssertionError({ message: `${what}: ${note}${problem}\nbody: ${exchange.body.slice(0, 500)}` });
  }

  /**
   * A request for every method the document does not list on each of its paths (path parameters
   * filled in with `x`): sent to the server, each must get a global response (404 NOT_FOUND), or
   * the server serves an operation the document does not have (HEAD, OPTIONS, ...). A request
   * that another operation's template matches is left out.
   */
  undocumentedMethods(): { readonly method: string; readonly url: string }[] {
    const documented = new Map<string, Set<string>>();
    for (const [method, ops] of this.operations) {
      for (const op of ops) documented.set(op.template, (documented.get(op.template) ?? new Set()).add(method));
    }
    return [...documented].flatMap(([template, methods]) =>
      METHODS.map((m) => m.toUpperCase())
        .filter((m) => !methods.has(m))
        .map((method) => ({ method, url: template.replace(/\{[^}]+\}/g, 'x') }))
        // `PUT /me/following/ids` is `PUT /me/following/{userId}`: another operation's request.
        .filter(({ method, url }) => this.find(method, url) === undefined),
    );
  }

  /** Why `op` does not allow the exchange, or undefined when it does. */
  private problemWith(op: Omit<Operation, 'pattern' | 'literal'>, exchange: HttpExchange): string | undefined {
    const declared = op.responses[String(exchange.status)] as OpenAPIV3.ResponseObject | undefined;
    if (!declared) return `status not in the contract of ${op.template} (${Object.keys(op.responses).join(', ')})`;
    const undeclared = Object.keys(exchange.headers ?? {})
      .map((name) => name.toLowerCase())
      .filter(
        (name) =>
          !isTransportHeader(name) && !Object.keys(declared.headers ?? {}).some((h) => h.toLowerCase() === name),
      );
    if (undeclared.length > 0) return `header(s) ${undeclared.join(', ')} not declared for this status`;
    if (declared.content === undefined)
      return exchange.body === '' ? undefined : 'the contract says this status has no body';
    const type = (exchange.contentType ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const types = Object.keys(declared.content);
    if (!types.includes(type))
      return `content-type ${exchange.contentType ?? 'none'}, the contract says ${types.join(' or ')}`;
    // A HEAD answer never has a body: its status and content type are what can be checked.
    if (!/^application\/(.+\+)?json$/.test(type) || exchange.method.toUpperCase() === 'HEAD') return undefined;
    let body: unknown;
    try {
      body = JSON.parse(exchange.body) as unknown;
    } catch {
      return 'the body is not JSON';
    }
    const errors = op.validator.validateResponse(String(exchange.status), body);
    return errors ? `the body breaks the contract: ${JSON.stringify(errors.errors)}` : undefined;
  }
}
