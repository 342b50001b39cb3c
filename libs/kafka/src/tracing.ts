// Entry point `@ripple/kafka/tracing`. A service's main.ts imports it before tracing starts, so it
// must not load the Kafka client library itself: the instrumentation patches that library when
// it is loaded later, and a library loaded before the patch stays unpatched.
import type { Instrumentation } from '@opentelemetry/instrumentation';

/**
 * The OpenTelemetry instrumentations of the Kafka client behind libs/kafka, for
 * `startTracing(name, { instrumentations: [kafkaInstrumentations] })` of @ripple/telemetry:
 * consumer spans from kafkajs' own instrumentation; no producer spans from it.
 */
export async function kafkaInstrumentations(): Promise<Instrumentation[]> {
  const { KafkaJsInstrumentation } = await import('@opentelemetry/instrumentation-kafkajs');
  const kafka = new KafkaJsInstrumentation();
  // Producer spans come from libs/kafka (producer.ts): one batch carries events of many traces,
  // and each message's span must continue its own trace (its outbox row's), not the relay's.
  // The instrumentation has no option for that, so its producer patch is replaced by a no-op:
  // `_getProducerPatch` is private to @opentelemetry/instrumentation-kafkajs 0.32, which is why
  // the version is pinned and this stays next to the client it instruments.
  Object.assign(kafka, { _getProducerPatch: () => (original: unknown) => original });
  return [kafka];
}
