#!/usr/bin/env node
// Writes docs/asyncapi-gateway.yaml from the frame schemas: `pnpm asyncapi`.
import { writeFileSync } from 'node:fs';
import { renderGatewayAsyncApi } from './asyncapi.js';

const target = new URL('../../../docs/asyncapi-gateway.yaml', import.meta.url);
writeFileSync(target, renderGatewayAsyncApi());
process.stdout.write(`wrote ${target.pathname}\n`);
