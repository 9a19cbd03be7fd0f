// esbuild plugins for `osls package` (serverless-esbuild `plugins:`).
//
// DuckDB's Node bindings pick their native binary at run time from one optional package per
// platform (@duckdb/node-bindings-<platform>-<arch>), which a bundler cannot follow. The export
// function runs on Lambda x86_64 (Amazon Linux, glibc), so its bundle loads exactly that binary:
// `@duckdb/node-bindings` resolves to a one-line module requiring the linux-x64 `duckdb.node`,
// which esbuild's copy loader puts beside the bundle in the function's zip.
const { copyFileSync, existsSync } = require('node:fs');
const { dirname, join } = require('node:path');

const duckdbLambdaBinding = {
  name: 'duckdb-lambda-binding',
  setup(build) {
    build.initialOptions.metafile = true;
    build.onResolve({ filter: /^@duckdb\/node-bindings$/ }, () => ({ path: 'duckdb-lambda-binding', namespace: 'duckdb-lambda-binding' }));
    build.onLoad({ filter: /.*/, namespace: 'duckdb-lambda-binding' }, () => {
      let binary;
      try {
        binary = join(dirname(require.resolve('@duckdb/node-bindings-linux-x64/package.json')), 'duckdb.node');
      } catch {
        binary = undefined;
      }
      if (binary === undefined || !existsSync(binary)) {
        return {
          errors: [
            {
              text:
                'the export function needs DuckDB\'s Linux x64 binary (@duckdb/node-bindings-linux-x64), which npm installs only on Linux x64. ' +
                'Package on Linux x64 (CI does), or add it: npm install --no-save --os=linux --cpu=x64 @duckdb/node-bindings-linux-x64@' +
                require('@duckdb/node-bindings/package.json').version,
            },
          ],
        };
      }
      return { contents: `module.exports = require(${JSON.stringify(binary)});`, loader: 'js', resolveDir: dirname(binary) };
    });
    // duckdb.node loads libduckdb.so from its own folder ($ORIGIN): it goes beside the bundle too.
    build.onEnd((result) => {
      if (result.errors.length > 0 || !result.metafile) return;
      const usesDuckDb = Object.keys(result.metafile.inputs).some((input) => input.includes('duckdb-lambda-binding'));
      const outdir = build.initialOptions.outdir;
      if (!usesDuckDb || !outdir) return;
      const library = join(dirname(require.resolve('@duckdb/node-bindings-linux-x64/package.json')), 'libduckdb.so');
      const emitted = Object.keys(result.metafile.outputs).find((o) => o.endsWith('.node'));
      copyFileSync(library, join(emitted ? dirname(emitted) : outdir, 'libduckdb.so'));
    });
  },
};

module.exports = [duckdbLambdaBinding];
