import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildPackage, CACHE, cacheKey, pinnedVersion, run } from './build';
import { CHARTS, referenceYaml } from './reference';

/**
 * The Python package as a Python user gets it: a virtualenv with cdk8s, cdk8s-plus-28 and
 * constructs from PyPI at the versions this package is built against, plus the wheel built from
 * the current sources; test/packages/python/app.py synthesizes the examples' clusters with it.
 */

/** A virtualenv holding `requirements`, made once per machine (keyed by the list), then reused. */
function virtualenv(requirements: string[]): string {
  const dir = path.join(CACHE, `python-venv-${cacheKey(...requirements)}`);
  const python = path.join(dir, 'bin', 'python');
  if (fs.existsSync(python)) return python;
  // Built aside and renamed into place, so an interrupted install is never reused.
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(CACHE, { recursive: true });
  run('python3', ['-m', 'venv', tmp]);
  run(path.join(tmp, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...requirements]);
  fs.renameSync(tmp, dir);
  return python;
}

/** The wheel's own dependencies (Requires-Dist), so the virtualenv holds them before the wheel. */
function wheelRequirements(wheel: string): string[] {
  const script = 'import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1])\n' +
    'meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))\n' +
    'print("\\n".join(l[len("Requires-Dist: "):] for l in z.read(meta).decode().splitlines() if l.startswith("Requires-Dist: ")))';
  return run('python3', ['-c', script, wheel]).trim().split('\n').filter(Boolean).sort();
}

describe('Python package (dist/python)', () => {
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk8s-ferretdb-python-'));
  const reference = referenceYaml();

  beforeAll(() => {
    const dist = buildPackage('python');
    const wheels = fs.readdirSync(dist).filter((f) => f.endsWith('.whl'));
    if (wheels.length !== 1) throw new Error(`expected one wheel in ${dist}, found: ${wheels.join(', ') || 'none'}`);
    const wheel = path.join(dist, wheels[0]);
    const python = virtualenv([
      `cdk8s==${pinnedVersion('cdk8s')}`,
      `cdk8s-plus-28==${pinnedVersion('cdk8s-plus-28')}`,
      `constructs==${pinnedVersion('constructs')}`,
      ...wheelRequirements(wheel),
    ]);
    // The fresh wheel replaces whatever an earlier run installed; its dependencies are all there.
    run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', '--no-deps', '--force-reinstall', wheel]);
    run(python, [path.join(__dirname, 'python', 'app.py'), outdir]);
  }, 30 * 60_000);

  afterAll(() => fs.rmSync(outdir, { recursive: true, force: true }));

  test.each(CHARTS)('%s: the Python synth is byte-for-byte the TypeScript synth', (chart) => {
    expect(fs.readFileSync(path.join(outdir, `${chart}.yaml`), 'utf8')).toBe(reference[chart]);
  });

  test('the TypeScript reference holds the PostgreSQL StatefulSets and the CloudNativePG Cluster', () => {
    expect(reference.production).toContain('name: orders-pg-primary\n');
    expect(reference['cloudnative-pg']).toContain('kind: Cluster\n');
  });
});
