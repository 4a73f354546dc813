// Shared jest settings: ts-jest in transpile-only mode (type errors are the typecheck target's job)
// and the @sluice/* path aliases of tsconfig.base.json.
const path = require('node:path');
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = {};
for (const [alias, [target]] of Object.entries(compilerOptions.paths)) {
  moduleNameMapper[`^${alias}$`] = path.join(__dirname, target);
}

/** @param {string} dir project folder @param {string} name display name */
module.exports = (dir, name) => ({
  displayName: name,
  rootDir: dir,
  testEnvironment: 'node',
  // TypeScript first: a stray compiled .js beside a source must never shadow it.
  moduleFileExtensions: ['ts', 'js', 'json', 'node'],
  testMatch: ['<rootDir>/**/*.spec.ts'],
  testPathIgnorePatterns: ['/node_modules/', '/dist/'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: path.join(__dirname, 'tsconfig.spec.json') }],
    // openapi-backend (response validation in API specs) requires this ES-module-only package,
    // which jest's CommonJS loader cannot load untransformed.
    '/@apidevtools/json-schema-ref-parser/.+\\.js$': [
      'ts-jest',
      {
        tsconfig: {
          allowJs: true,
          module: 'commonjs',
          target: 'es2022',
          esModuleInterop: true,
          isolatedModules: true,
        },
      },
    ],
  },
  transformIgnorePatterns: ['/node_modules/(?!@apidevtools/json-schema-ref-parser/)'],
  moduleNameMapper,
  testTimeout: 60_000,
});
