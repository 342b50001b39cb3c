// node:test's flags for the whole suite (scripts/run-tests.mjs), kept here so a test can run the
// runner exactly as the suite does (tests/e2e/src/test-runner.test.ts).
//  - one file at a time: tests share real Kafka, Redis and PostgreSQL and their CPU;
//  - --test-force-exit: a file whose tests and hooks are done ends even if a handle is left open
//    (an after hook that failed before closing a server used to hang the whole run);
//  - --test-timeout: no test or hook runs longer than 10 minutes (the longest take ~1.5).
export const TEST_RUNNER_FLAGS = ['--test', '--test-concurrency=1', '--test-force-exit', '--test-timeout=600000'];
