// The chaos run's load balancer, in a process of its own (see balancer.ts): the TCP proxy in front
// of the gateways, driven over IPC by the process that runs the clients.
import { startTcpProxy } from '../tcp-proxy.js';
import type { BalancerReply, BalancerRequest } from './balancer.js';

const proxy = await startTcpProxy(0);
let targets: readonly number[] = [];
let next = 0;
let tracing = false;
proxy.route = () => targets[next++ % Math.max(1, targets.length)] ?? proxy.target;
proxy.trace = (port, step) => {
  if (tracing) send({ op: 'trace', port, step, at: Date.now() });
};

function send(message: BalancerReply): void {
  process.send?.(message);
}

process.on('message', (message: BalancerRequest) => {
  switch (message.op) {
    case 'targets':
      targets = message.ports;
      send({ op: 'done', id: message.id, count: targets.length });
      return;
    case 'drop':
      send({ op: 'done', id: message.id, count: proxy.dropSome(message.fraction) });
      return;
    case 'stall':
      send({ op: 'done', id: message.id, count: proxy.stallSome(message.fraction) });
      return;
    case 'trace':
      tracing = message.on;
      send({ op: 'done', id: message.id, count: 0 });
      return;
    case 'close':
      void proxy.close().then(() => process.exit(0));
      return;
  }
});
// The driver is gone (crashed, killed): so is its load balancer.
process.on('disconnect', () => process.exit(0));
send({ op: 'ready', port: proxy.port });
