import * as fs from 'fs';
import * as path from 'path';
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

test('the API reference in Python, Java and Go shows the @example blocks translated (API.<language>.md, by jsii-docgen)', () => {
  const read = (language: string) => fs.readFileSync(path.join(__dirname, '..', '..', `API.${language}.md`), 'utf8');
  expect(read('python')).toContain('replication_mode=ferretdb.ReplicationMode.synchronous_quorum(1)');
  expect(read('java')).toContain('FerretDBCluster.Builder.create(chart, "orders")');
  expect(read('go')).toContain('ferretdb.ReplicationMode_SynchronousQuorum(jsii.Number(1))');
  expect(fs.readFileSync(path.join(__dirname, '..', '..', 'API.md'), 'utf8')).toContain('replicationMode: ferretdb.ReplicationMode.synchronousQuorum(1)');
});
