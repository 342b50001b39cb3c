#!/usr/bin/env node
// Writes each overlay's k8s/overlays/*/kafka-topics.yaml from the event catalog: `pnpm k8s:topics`.
import { writeFileSync } from 'node:fs';
import { KAFKA_TOPIC_FILES, renderKafkaTopics } from './kafka-topics.js';

for (const [file, sizing] of Object.entries(KAFKA_TOPIC_FILES)) {
  const target = new URL(`../../../${file}`, import.meta.url);
  writeFileSync(target, renderKafkaTopics(sizing));
  process.stdout.write(`wrote ${target.pathname}\n`);
}
