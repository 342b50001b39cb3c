// The port: everything outside libs/kafka reaches Kafka through these, never through kafkajs.
export { createKafka, deleteGroups, deleteTopics, ensureTopics } from './client.js';
export type { KafkaClient, TopicSpec } from './client.js';
export { consumerLag, createKafkaAdmin } from './admin.js';
export type { KafkaAdmin, PartitionOffsets } from './admin.js';
export { readTopics } from './reader.js';
export type { RawMessage, TopicReader, TopicReaderOptions } from './reader.js';
export { MAX_PRODUCE_REQUEST_BYTES, MessageTooLargeError, createEventProducer, recordSizeBound } from './producer.js';
export type { EventProducer, OutgoingMessage } from './producer.js';
export { createEventConsumer, dlqTopicOf, registerConsumerLag } from './consumer.js';
export { fencedBatch } from './fencing.js';
export type { BatchControl, ConsumedEvent, ConsumedMeta, EventConsumer, EventConsumerOptions } from './consumer.js';
