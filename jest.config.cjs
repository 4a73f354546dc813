// `npm test` runs every project's suite in one jest invocation.
const { globSync } = require('node:fs');
module.exports = {
  projects: globSync('{apps,libs,libs/sinks,tools}/*/jest.config.cjs', { cwd: __dirname }).map(
    (p) => `<rootDir>/${p}`,
  ),
};
