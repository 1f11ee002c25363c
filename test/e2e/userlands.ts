import * as fs from 'fs';
import * as path from 'path';
import { FERRETDB_IMAGE, ensureFerretDb } from './ferretdb';
import { UserlandImage } from './harness';
import { HOST_POSTGRES, requireRoots, rootPath } from './roots';
import { DEFAULT_EXPORTER_IMAGE } from '../../src/observability/metrics';
import { DEFAULT_POSTGRES_IMAGE, POSTGRES_UID } from '../../src/postgres/config';
import { BOOTSTRAP_IMAGE } from '../../src/postgres/credentials-bootstrap';

/**
 * The one table from the images the library synthesizes to the roots their containers run in
 * (ClusterOptions.userlands): the roots of `images/build.sh` (see images/README.md) and, for
 * FerretDB's `FROM scratch` image, a root holding only the binary `ferretdb/build.sh` built.
 * Each entry also carries what the image sets (PATH, ENV, ENTRYPOINT, USER, HOME).
 */
const repo = (image: string): string => image.replace(/:[^/:]*$/, '');

/** A root holding only `/ferretdb` (hard link to the built binary), made once per version. */
export function ferretDbRoot(): string {
  const bin = ensureFerretDb();
  const root = path.join(path.dirname(bin), 'root');
  if (fs.existsSync(path.join(root, 'ferretdb'))) return root;
  const tmp = fs.mkdtempSync(`${root}.tmp-`);
  fs.chmodSync(tmp, 0o755);
  fs.linkSync(bin, path.join(tmp, 'ferretdb'));
  try {
    fs.renameSync(tmp, root);
  } catch (e) {
    // Another test process made it meanwhile: use that one.
    fs.rmSync(tmp, { recursive: true, force: true });
    if (!fs.existsSync(path.join(root, 'ferretdb'))) throw e;
  }
  return root;
}

/** The postgres image's key in the table (DEFAULT_POSTGRES_IMAGE without its tag). */
export const POSTGRES_IMAGE = repo(DEFAULT_POSTGRES_IMAGE);

/** Throws unless every root is ready (the suite never builds them and never skips). */
export function imageUserlands(): Record<string, UserlandImage> {
  requireRoots('postgres-17', 'exporter', 'curl');
  return {
    [POSTGRES_IMAGE]: {
      root: rootPath('postgres-17'),
      path: ['/usr/lib/postgresql/17/bin'],
      env: { PGDATA: '/var/lib/postgresql/data', PG_MAJOR: '17' },
      home: '/var/lib/postgresql',
    },
    [repo(DEFAULT_EXPORTER_IMAGE)]: { root: rootPath('exporter'), entrypoint: ['/bin/postgres_exporter'], user: 65534, home: '/' },
    [repo(BOOTSTRAP_IMAGE)]: { root: rootPath('curl'), entrypoint: ['curl'], user: 100, home: '/home/curl_user' },
    [FERRETDB_IMAGE]: { root: ferretDbRoot(), entrypoint: ['/ferretdb'], env: {}, user: 1000, home: '/' },
  };
}

/**
 * ClusterOptions.userlandIds for the table: the postgres image runs PostgreSQL as 999:999; the
 * postgres-17 root carries that user under the host's ids (images/lib.sh), so 999 maps to them.
 * Every other id runs as synthesized: FerretDB's 1000, the credentials Job's 100 (curl_user).
 */
export function userlandIds(): { uid: Record<number, number>; gid: Record<number, number> } {
  return { uid: { [POSTGRES_UID]: HOST_POSTGRES.uid }, gid: { [POSTGRES_UID]: HOST_POSTGRES.gid } };
}
