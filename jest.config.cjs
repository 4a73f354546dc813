// `npm test` runs every project's suite in one jest invocation.
const { globSync } = require('node:fs');
module.exports = {
  // Global options are not read from project configs: integration tests need more than jest's 5 s.
  testTimeout: 60_000,
  projects: globSync('{apps,libs,libs/sinks,libs/clients,tools}/*/jest.config.cjs', {
    cwd: __dirname,
  }).map((p) => `<rootDir>/${p}`),
};
