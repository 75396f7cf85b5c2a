// Bundles src/app.js with mediasoup-client into one script for the page: node build.mjs OUT.js
import { build } from 'esbuild';

const out = process.argv[2];
if (!out) {
  console.error('usage: node build.mjs OUT.js');
  process.exit(2);
}
await build({
  entryPoints: ['src/app.js'],
  bundle: true,
  format: 'iife',
  target: ['chrome110', 'firefox115', 'safari16'],
  minify: true,
  sourcemap: false,
  outfile: out,
  logLevel: 'warning',
});
