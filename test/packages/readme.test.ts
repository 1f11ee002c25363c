import { compile, run } from './build';

/**
 * The README's examples (and the API docs' @example blocks) are compiled by jsii-rosetta against
 * the current API, with rosetta/default.ts-fixture as their scope, the way `npx projen build`
 * does after compiling: a sample that does not type-check fails here with its diagnostics.
 */
test('every README example type-checks against the current API (jsii-rosetta extract --strict)', () => {
  compile();
  const out = run('npx', ['jsii-rosetta', 'extract', '--strict', '.jsii']);
  // The tablet holds one translation per sample: none may be missing.
  expect(out).not.toMatch(/error TS\d+/);
});
