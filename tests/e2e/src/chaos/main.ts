// `pnpm chaos`: the chaos suite. Starts a private Kafka broker and Redis, post-service and three
// gateway nodes (real processes, loopback only), runs every scenario with traffic flowing, prints
// the table and, as the last line, the JSON figures; exits 1 when a scenario missed a goal.
// Knobs: CHAOS_CLIENTS (default 200, what fits in 10 minutes on the loaded 2-core machine),
// CHAOS_ROLLING_CLIENTS (clients of the rolling restart only, default CHAOS_CLIENTS; the issue's
// figure is 5000), CHAOS_POSTS_PER_SEC (default 40), CHAOS_SCENARIOS (comma-separated names,
// default all), CHAOS_DEADLINE_MIN (default 10: the suite stops itself, failed, after that long),
// CHAOS_CLIENTS_PER_PROCESS (default 1000: the clients run in ⌈clients / this⌉ fleet processes).
import { runScoped } from '../harness.js';
import { startCluster } from './cluster.js';
import { formatReport } from './ledger.js';
import type { ScenarioResult } from './ledger.js';
import { CLIENTS_PER_PROCESS, SCENARIOS, runScenario } from './scenarios.js';

const knob = (name: string, fallback: number): number => {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer`);
  return value;
};
const size = {
  clients: knob('CHAOS_CLIENTS', 200),
  creators: 10,
  postsPerSec: knob('CHAOS_POSTS_PER_SEC', 40),
  trafficMs: 3000,
  clientsPerProcess: knob('CHAOS_CLIENTS_PER_PROCESS', CLIENTS_PER_PROCESS),
};
const rollingClients = knob('CHAOS_ROLLING_CLIENTS', size.clients);
/** The whole suite stops by itself after this long, failed (10 minutes unless told). */
const SUITE_DEADLINE_MS = knob('CHAOS_DEADLINE_MIN', 10) * 60_000;
const sizeOf = (name: string) => (name === 'rolling-restart' ? { ...size, clients: rollingClients } : size);
const wanted = process.env.CHAOS_SCENARIOS?.split(',').map((s) => s.trim());
const unknown = wanted?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
if (unknown.length > 0) throw new Error(`unknown CHAOS_SCENARIOS: ${unknown.join(', ')}`);
const scenarios = SCENARIOS.filter((s) => !wanted || wanted.includes(s.name));

const deadline = setTimeout(() => {
  process.stderr.write(`chaos: over ${SUITE_DEADLINE_MS / 60_000} minutes, stopping\n`);
  process.kill(process.pid, 'SIGTERM'); // runScoped cleans up, then exits 143
}, SUITE_DEADLINE_MS);
deadline.unref();

const results: ScenarioResult[] = await runScoped('chaos', async (scope) => {
  const cluster = await startCluster(scope);
  // Also on SIGTERM (the suite's deadline) and Ctrl-C: the private broker, Redis and PostgreSQL
  // are not services the scope spawned, and outlived a stopped run.
  let stopped: Promise<void> | undefined;
  const stopCluster = () => (stopped ??= cluster.stop());
  scope.defer(stopCluster);
  try {
    const done: ScenarioResult[] = [];
    for (const scenario of scenarios) {
      const scenarioSize = sizeOf(scenario.name);
      process.stderr.write(`chaos: ${scenario.name} with ${scenarioSize.clients} clients\n`);
      done.push(await runScenario(cluster, scenario, scenarioSize, 60_000, (text) => process.stderr.write(text)));
    }
    return done;
  } catch (err) {
    // Said before the clean-up, whose own failure would otherwise be all that is reported.
    process.stderr.write(`chaos: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    throw err;
  } finally {
    await stopCluster();
  }
});
clearTimeout(deadline);
process.stdout.write(`${formatReport(results)}\n`);
process.exitCode = results.every((r) => r.failures.length === 0) ? 0 : 1;
