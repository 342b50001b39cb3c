// A minimal WebSocket client for trying the gateway:
//   pnpm listen --token <jwt> --channel creator:u42 [--channel post:p1] [--url ws://127.0.0.1:8080/ws]
// Prints every frame the gateway sends, one JSON per line. Uses Node's built-in WebSocket.
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    token: { type: 'string' },
    channel: { type: 'string', multiple: true, default: [] },
    url: { type: 'string', default: 'ws://127.0.0.1:8080/ws' },
  },
});
if (!values.token) {
  process.stderr.write('usage: pnpm listen --token <jwt> [--channel creator:u42 ...] [--url ws://127.0.0.1:8080/ws]\n');
  process.exit(2);
}
const socket = new WebSocket(`${values.url}?access_token=${encodeURIComponent(values.token)}`);
socket.addEventListener('open', () => {
  values.channel.forEach((channel, i) => socket.send(JSON.stringify({ op: 'subscribe', id: String(i + 1), channel })));
});
socket.addEventListener('message', (message) => process.stdout.write(`${message.data}\n`));
socket.addEventListener('close', (event) => {
  process.stderr.write(`closed: ${event.code} ${event.reason}\n`);
  process.exit(event.code === 1000 ? 0 : 1);
});
socket.addEventListener('error', () => process.stderr.write('connection error\n'));
