import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { CACHE, cacheKey, pinnedVersion, ROOT, run } from './build';

/** The Maven local repository, kept per machine (the user's ~/.m2). */
export const M2_REPOSITORY = path.join(os.homedir(), '.m2', 'repository');

/**
 * cdk8s and cdk8s-plus-28 as a fallback Maven repository.
 *
 * Maven Central, as this network reaches it, has org.cdk8s:cdk8s only up to 2.70.47 (the package
 * is built against 2.70.106) and no org.cdk8s:cdk8s-plus-28 at all. cdk8s-team generates those
 * artifacts with jsii-pacmak from the npm packages; this does the same for the pinned versions,
 * once per machine, and returns Maven global settings that add the result as one more repository
 * (Maven Central stays first; a version it has is taken from it).
 */
export function mavenFallbackSettings(): string {
  const versions = ['cdk8s', 'cdk8s-plus-28'].map((name) => `${name}@${pinnedVersion(name)}`);
  const dir = path.join(CACHE, `maven-fallback-${cacheKey(...versions, run('npx', ['jsii-pacmak', '--version']).trim())}`);
  const settings = path.join(dir, 'settings.xml');
  if (fs.existsSync(settings)) return settings;
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  // One Maven reactor builds both (cdk8s-plus-28 resolves cdk8s from the same output directory).
  run('npx', ['jsii-pacmak', '--target', 'java', '--maven-local-repository', M2_REPOSITORY, '--outdir', tmp,
    path.join(ROOT, 'node_modules', 'cdk8s'), path.join(ROOT, 'node_modules', 'cdk8s-plus-28')]);
  fs.writeFileSync(path.join(tmp, 'settings.xml'), [
    '<settings>',
    '  <profiles><profile>',
    '    <id>cdk8s-fallback</id>',
    `    <repositories><repository><id>cdk8s-fallback</id><url>file://${path.join(dir, 'java')}</url></repository></repositories>`,
    '  </profile></profiles>',
    '  <activeProfiles><activeProfile>cdk8s-fallback</activeProfile></activeProfiles>',
    '</settings>',
    '',
  ].join('\n'));
  fs.renameSync(tmp, dir);
  return settings;
}
