export { consumerLag, createKafka, deleteTopics, ensureTopics, kafkaReadiness } from './client.js';
export type { Kafka, TopicSpec } from './client.js';
export { createEventProducer } from './producer.js';
export type { EventProducer, OutgoingMessage } from './producer.js';
export { createEventConsumer, dlqTopicOf, registerConsumerLag } from './consumer.js';
export type { ConsumedEvent, ConsumedMeta, EventConsumer, EventConsumerOptions } from './consumer.js';
