// Builds the console's pages (apps/console/web) into dist/apps/console/public, which the console
// service serves; `nx run console:build` runs it before bundling the service.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: `${here}web`,
  base: './',
  logLevel: 'warn',
  build: {
    outDir: `${here}../../dist/apps/console/public`,
    emptyOutDir: true,
    sourcemap: true,
    target: 'es2022',
  },
});
