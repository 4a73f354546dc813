import nx from '@nx/eslint-plugin';

// Test-only code: spec files, their fixtures, the test libraries and the `/testing` entry points of the
// libs (with the files behind them), and the tools that generate test load or drive real services
// (fleet-sim, bench, e2e). Only these may import `@sluice/testing` (tagged type:test) or any
// `@sluice/<lib>/testing`.
const TEST_FILES = [
  '**/*.spec.ts',
  '**/test-fixtures/**/*.ts',
  'libs/testing/**/*.ts',
  'libs/**/src/testing.ts',
  'libs/sinks/core/src/conformance.ts',
  'libs/sinks/core/src/test-events.ts',
  'libs/sinks/mongodb/src/test-support.ts',
  'tools/bench/**/*.ts',
  'tools/fleet-sim/**/*.ts',
  'tools/e2e/**/*.ts',
];

/** Nx module boundaries; `type:test` libraries only where `testing` is true. */
const boundaries = (testing) => [
  'error',
  {
    enforceBuildableLibDependency: false,
    allow: [],
    depConstraints: [
      {
        sourceTag: 'type:app',
        onlyDependOnLibsWithTags: testing ? ['type:lib', 'type:test'] : ['type:lib'],
      },
      {
        sourceTag: 'type:lib',
        onlyDependOnLibsWithTags: testing ? ['type:lib', 'type:test'] : ['type:lib'],
      },
      {
        sourceTag: 'type:tool',
        onlyDependOnLibsWithTags: testing ? ['type:lib', 'type:test'] : ['type:lib'],
      },
      { sourceTag: 'type:test', onlyDependOnLibsWithTags: ['type:lib', 'type:test'] },
      { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
    ],
  },
];

export default [
  {
    ignores: [
      '**/node_modules/**',
      '**/dist/**',
      '.tools/**',
      '.nx/**',
      'libs/contracts/src/gen/**',
      'libs/clients/*/src/gen/**',
    ],
  },
  ...nx.configs['flat/base'],
  ...nx.configs['flat/typescript'],
  {
    files: ['**/*.ts'],
    languageOptions: {
      // Type information for the rules that need it (no-floating-promises): each file's own tsconfig.
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@nx/enforce-module-boundaries': boundaries(false),
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      // An unhandled rejection crashes the process: await it, handle it, or mark it `void` on purpose.
      '@typescript-eslint/no-floating-promises': 'error',
      // noUncheckedIndexedAccess makes `!` after a checked index the honest idiom.
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-restricted-properties': [
        'error',
        {
          object: 'process',
          property: 'env',
          message: 'Read configuration through @sluice/config.',
        },
      ],
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['@sluice/testing', '@sluice/*/testing'],
              message:
                'Test-only code: import it from spec files, test-fixtures/ and the /testing entry points only.',
            },
          ],
        },
      ],
    },
  },
  {
    files: TEST_FILES,
    rules: {
      '@nx/enforce-module-boundaries': boundaries(true),
      'no-restricted-imports': 'off',
    },
  },
  {
    files: [
      'libs/config/**/*.ts',
      '**/*.spec.ts',
      '**/test-fixtures/**/*.ts',
      'tools/**/*.ts',
      'libs/testing/**/*.ts',
    ],
    rules: { 'no-restricted-properties': 'off' },
  },
];
