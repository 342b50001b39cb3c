// The printed table: one row per figure and peer, with its ratio to Socket.IO and the CPU seconds
// every process used during the phase that produced it.
import type { PeerName } from './dialects.js';

export type Subject = PeerName | 'kafkajs';

export interface Figure {
  workload: string;
  figure: string;
  subject: Subject;
  value: number;
  digits: number;
  /** CPU seconds: server / publisher / kafka / redis / clients. */
  cpu: string;
}

const LABEL: Record<Subject, string> = {
  ripple: 'Ripple gateway',
  socketio: 'Socket.IO 4.8 + redis adapter',
  ws: 'raw ws, ws.send per socket',
  kafkajs: 'bare kafkajs consumer',
};

/** Nearest-rank percentile of a [value, count] histogram. */
export function percentile(hist: readonly [number, number][], p: number): number {
  const total = hist.reduce((s, [, n]) => s + n, 0);
  const rank = Math.max(1, Math.ceil((p / 100) * total));
  let seen = 0;
  for (const [v, n] of hist) if ((seen += n) >= rank) return v;
  return Number.NaN;
}

/** Merges [value, count] histograms, sorted by value. */
export function mergeHistograms(parts: readonly (readonly [number, number][])[]): [number, number][] {
  const sum = new Map<number, number>();
  for (const part of parts) for (const [v, n] of part) sum.set(v, (sum.get(v) ?? 0) + n);
  return [...sum.entries()].sort((a, b) => a[0] - b[0]);
}

export function renderTable(figures: readonly Figure[]): string {
  const sio = new Map(
    figures.filter((f) => f.subject === 'socketio').map((f) => [`${f.workload}|${f.figure}`, f.value]),
  );
  const header = ['workload', 'figure', 'peer', 'value', 'vs Socket.IO', 'CPU s server/publisher/kafka/redis/clients'];
  const lines = figures.map((f) => {
    const base = sio.get(`${f.workload}|${f.figure}`);
    const ratio =
      base === undefined || !Number.isFinite(f.value) || !Number.isFinite(base) || base === 0
        ? '-'
        : `${(f.value / base).toFixed(2)}×`;
    const value = Number.isFinite(f.value)
      ? f.value.toLocaleString('en-US', { minimumFractionDigits: f.digits, maximumFractionDigits: f.digits })
      : '-';
    return [f.workload, f.figure, LABEL[f.subject], value, ratio, f.cpu];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n');
}
