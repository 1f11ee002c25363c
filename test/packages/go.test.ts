import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildPackage, pinnedVersion, run } from './build';
import { goEnv } from './go-proxy';
import { CHARTS, referenceYaml } from './reference';

/**
 * The Go package as a Go user gets it: test/packages/go is a module that requires cdk8s,
 * cdk8s-plus-28 and constructs from the Go module proxy and replaces this package with the module
 * built from the current sources (dist/go); its main.go synthesizes the examples' clusters.
 */
describe('Go package (dist/go)', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk8s-ferretdb-go-'));
  const outdir = path.join(work, 'out');
  const reference = referenceYaml();

  beforeAll(() => {
    const env = goEnv();
    const dist = buildPackage('go', { env });
    // The module, copied out of the source tree (go writes go.sum), its replace made absolute.
    const source = path.join(__dirname, 'go');
    const goMod = fs.readFileSync(path.join(source, 'go.mod'), 'utf8');
    const replaced = goMod.replace('=> ../../../dist/go/', `=> ${dist}/`);
    if (replaced === goMod) throw new Error('test/packages/go/go.mod has no replace of the built module');
    fs.writeFileSync(path.join(work, 'go.mod'), replaced);
    fs.copyFileSync(path.join(source, 'main.go'), path.join(work, 'main.go'));
    fs.mkdirSync(outdir);
    run('go', ['mod', 'tidy'], { cwd: work, env });
    run('go', ['run', '.', outdir], { cwd: work, env });
  }, 30 * 60_000);

  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test.each(CHARTS)('%s: the Go synth is byte-for-byte the TypeScript synth', (chart) => {
    expect(fs.readFileSync(path.join(outdir, `${chart}.yaml`), 'utf8')).toBe(reference[chart]);
  });
});

test('test/packages/go/go.mod pins cdk8s and cdk8s-plus-28 at the versions the package is built against', () => {
  const goMod = fs.readFileSync(path.join(__dirname, 'go', 'go.mod'), 'utf8');
  expect(goMod).toContain(`github.com/cdk8s-team/cdk8s-core-go/cdk8s/v2 v${pinnedVersion('cdk8s')}\n`);
  expect(goMod).toContain(`github.com/cdk8s-team/cdk8s-plus-go/cdk8splus28/v2 v${pinnedVersion('cdk8s-plus-28')}\n`);
  expect(goMod).toContain(`github.com/aws/constructs-go/constructs/v10 v${pinnedVersion('constructs')}\n`);
});
