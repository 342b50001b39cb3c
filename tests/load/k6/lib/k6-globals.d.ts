// k6 v1.3 ships the WebSocket API as `k6/experimental/websockets`; @types/k6 types it under the
// stable name it took later (`k6/websockets`). Same API, so the types are shared.
declare module 'k6/experimental/websockets' {
  export * from 'k6/websockets';
}

// k6 provides a `console` global (log, info, warn, error, debug) that @types/k6 does not declare.
declare const console: {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
};
