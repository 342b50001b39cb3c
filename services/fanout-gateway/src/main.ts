// Tracing starts before anything it instruments is loaded; then the service itself.
import { startTracing } from '@ripple/telemetry';

await startTracing('fanout-gateway');
await import('./server.js');
