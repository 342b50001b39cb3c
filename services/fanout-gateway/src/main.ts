// Tracing starts before anything it instruments is loaded; then the service itself.
import { kafkaInstrumentations } from '@ripple/kafka/tracing';
import { startTracing } from '@ripple/telemetry';

await startTracing('fanout-gateway', { instrumentations: [kafkaInstrumentations] });
await import('./server.js');
