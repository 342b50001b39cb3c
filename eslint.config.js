// ESLint flat config: type-aware typescript-eslint, import hygiene, no default exports.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { importX } from 'eslint-plugin-import-x';

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '**/src/generated/**',
      '**/prisma.config.ts',
      'tests/load/reports/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { 'import-x': importX },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'it', 'describe', 'suite'] },
          ],
        },
      ],
      '@typescript-eslint/no-confusing-void-expression': 'off',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'separate-type-imports' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-non-null-assertion': 'error',
      'import-x/no-cycle': 'error',
      'import-x/no-default-export': 'error',
      'import-x/no-duplicates': 'error',
    },
  },
  {
    // The Kafka client library is libs/kafka's business alone (its README: "The port"), so that
    // replacing it is one adapter. Everything else reaches Kafka through @ripple/kafka.
    files: ['**/*.ts'],
    ignores: ['libs/kafka/src/**'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'kafkajs', message: 'Use @ripple/kafka: only libs/kafka may import the Kafka client.' },
            {
              name: '@opentelemetry/instrumentation-kafkajs',
              message: 'libs/kafka makes its Kafka spans itself: no instrumentation patches the client.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', WebSocket: 'readonly' } },
  },
  {
    // Config files are loaded by their tools, which expect a default export.
    files: ['eslint.config.js'],
    rules: { 'import-x/no-default-export': 'off' },
  },
);
