// Tracing starts before anything it instruments is loaded; then the service itself.
import { startTracing } from '@ripple/telemetry';

await startTracing('notification-service');
await import('./server.js');
