import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { buildPackage, pinnedVersion, run } from './build';
import { M2_REPOSITORY, mavenFallbackSettings } from './maven-fallback';
import { CHARTS, referenceYaml } from './reference';

/**
 * The Java package as a Java user gets it: test/packages/java is a Maven project that depends on
 * cdk8s and cdk8s-plus-28 and on this package from the Maven repository `package:java` writes
 * (dist/java); its Main synthesizes the examples' clusters.
 */
describe('Java package (dist/java)', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cdk8s-ferretdb-java-'));
  const outdir = path.join(work, 'out');
  const reference = referenceYaml();

  beforeAll(() => {
    const settings = mavenFallbackSettings();
    // `projen package:java` is this jsii-pacmak command; the options add the fallback repository
    // and keep downloads in the machine's Maven repository instead of a throw-away one.
    const dist = buildPackage('java', {
      command: ['jsii-pacmak', '-v', '--target', 'java', '--maven-local-repository', M2_REPOSITORY, '--mvn-global-settings', settings],
    });
    // The package's version stays 0.0.0: drop the copy an earlier run left in ~/.m2 so Maven reads
    // the one just built.
    fs.rmSync(path.join(M2_REPOSITORY, 'io', 'github', 'cdk8s-ferretdb'), { recursive: true, force: true });
    // The project, copied out of the source tree (Maven writes target/).
    fs.cpSync(path.join(__dirname, 'java'), work, { recursive: true });
    fs.mkdirSync(outdir);
    run('mvn', ['--batch-mode', '--quiet', '--global-settings', settings, `-Ddist.repository=file://${dist}`,
      'compile', 'exec:java', `-Dexec.args=${outdir}`], { cwd: work });
  }, 40 * 60_000);

  afterAll(() => fs.rmSync(work, { recursive: true, force: true }));

  test.each(CHARTS)('%s: the Java synth is byte-for-byte the TypeScript synth', (chart) => {
    expect(fs.readFileSync(path.join(outdir, `${chart}.yaml`), 'utf8')).toBe(reference[chart]);
  });
});

test('test/packages/java/pom.xml pins cdk8s and cdk8s-plus-28 at the versions the package is built against', () => {
  const pom = fs.readFileSync(path.join(__dirname, 'java', 'pom.xml'), 'utf8');
  for (const name of ['cdk8s', 'cdk8s-plus-28']) {
    expect(pom).toContain(`<artifactId>${name}</artifactId>\n      <version>${pinnedVersion(name)}</version>`);
  }
});
