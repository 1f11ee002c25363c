import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { Testing } from 'cdk8s';
import { ImageSpec } from './harness';
import { FerretDBCluster } from '../../src';

/**
 * The real FerretDB for the e2e suite. Its image is `FROM scratch` with ENTRYPOINT `/ferretdb`:
 * `ferretdb/build.sh` builds the same version from FerretDB's published Go module once per
 * machine (cached under /var/cache/cdk8s-ferretdb/ferretdb/<version>), and FERRETDB_IMAGES maps
 * the image to that binary. The version has one source of truth: the tag of the image a default
 * FerretDBCluster synthesizes.
 */
const BUILD_SCRIPT = path.join(__dirname, 'ferretdb', 'build.sh');
const CACHE = process.env.FERRETDB_CACHE_DIR ?? '/var/cache/cdk8s-ferretdb';
/** The image name the library synthesizes (without tag), for ClusterOptions.images. */
export const FERRETDB_IMAGE = 'ghcr.io/ferretdb/ferretdb';

/** The FerretDB version of the default image (the FerretDB Deployment's image tag). */
export function ferretDbVersion(): string {
  const chart = Testing.chart();
  new FerretDBCluster(chart, 'db', { name: 'version' });
  const deployments = Testing.synth(chart).filter((o: any) => o.kind === 'Deployment');
  const image: string | undefined = deployments[0]?.spec?.template?.spec?.containers?.[0]?.image;
  const m = /^ghcr\.io\/ferretdb\/ferretdb:(\d+\.\d+\.\d+)$/.exec(image ?? '');
  if (!m) throw new Error(`the default FerretDB Deployment's image is not ${FERRETDB_IMAGE}:<x.y.z>: ${image}`);
  return m[1];
}

/** Where build.sh puts a version's binary. */
export function ferretDbBinary(version = ferretDbVersion()): string {
  return path.join(CACHE, 'ferretdb', version, 'ferretdb');
}

let ensured: string | undefined;

/**
 * Builds FerretDB at the default image's version if it is not cached yet (minutes cold: `.ci/run`
 * does it before the tests) and returns the binary. Throws with the reason (never skips).
 */
export function ensureFerretDb(): string {
  if (ensured) return ensured;
  const version = ferretDbVersion();
  const r = spawnSync('bash', [BUILD_SCRIPT, version], { encoding: 'utf8', timeout: 900_000 });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`building FerretDB ${version} failed (${why}; the e2e suite never skips): bash ${BUILD_SCRIPT} ${version}\n${r.stderr}${r.stdout}`);
  }
  if (!/already built/.test(r.stdout)) process.stderr.write(r.stdout);
  const bin = ferretDbBinary(version);
  if (!fs.existsSync(bin)) throw new Error(`${BUILD_SCRIPT} succeeded but ${bin} is missing`);
  ensured = bin;
  return bin;
}

/** The image mapping for the harness: the FerretDB image runs the built binary as its ENTRYPOINT. */
export function ferretDbImages(): Record<string, ImageSpec> {
  const bin = ensureFerretDb();
  // On the host's root the pods' /tmp emptyDir would hide it: the container could not start.
  if (path.resolve(bin).startsWith('/tmp/')) {
    throw new Error(`FerretDB's binary ${bin} is under /tmp, which the FerretDB pods mount an emptyDir over: set FERRETDB_CACHE_DIR outside /tmp`);
  }
  return { [FERRETDB_IMAGE]: { entrypoint: [bin], env: {}, user: 1000 } };
}

// `npx ts-node test/e2e/ferretdb.ts` (.ci/run): build before the suite, outside any jest timeout.
if (require.main === module) {
  process.stdout.write(`FerretDB ${ferretDbVersion()}: ${ensureFerretDb()}\n`);
}
