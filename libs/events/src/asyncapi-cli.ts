#!/usr/bin/env node
// Writes docs/asyncapi.yaml from the catalog: `pnpm asyncapi`.
import { writeFileSync } from 'node:fs';
import { renderAsyncApi } from './asyncapi.js';

const target = new URL('../../../docs/asyncapi.yaml', import.meta.url);
writeFileSync(target, renderAsyncApi());
process.stdout.write(`wrote ${target.pathname}\n`);
