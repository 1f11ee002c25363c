import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

/**
 * The real DocumentDB extension for the real-PostgreSQL tests. It is not packaged for Debian:
 * `documentdb/build.sh` builds DocumentDB 0.107-0 (pg_documentdb_core + pg_documentdb, what the
 * FerretDB 2.7 image carries) and pgvector from `../shared/vendor` into Debian's PostgreSQL 15,
 * once per machine (cached: a second call takes milliseconds). The synthesized
 * `postgresql.conf`, `pg_hba.conf` and scripts run unchanged, with the one environment
 * difference in DOCUMENTDB_TEST_PARAMETERS.
 */
export const PG_BIN = '/usr/lib/postgresql/15/bin';
const BUILD_SCRIPT = path.join(__dirname, 'documentdb', 'build.sh');

/**
 * The one setting the tests pass that the images do not need, as a normal `parameters` prop
 * (a test's own parameters win): Debian's pg_cron 1.4.2 has no second-based schedules, so
 * `CREATE EXTENSION documentdb` fails with `invalid schedule: 2 seconds` unless DocumentDB's
 * index-build job is scheduled in whole minutes (the images' pg_cron takes '2 seconds').
 */
export const DOCUMENTDB_TEST_PARAMETERS: { readonly [name: string]: string } = {
  'documentdb.indexBuildScheduleInSec': '60',
};

let ensured = false;

/**
 * Makes sure PostgreSQL 15, pg_cron and the real DocumentDB extension are installed, building
 * it if needed. Throws (the real-PostgreSQL suite never skips) with the reason: a missing Debian
 * package is named in the message.
 */
export function ensureDocumentDb(): void {
  if (ensured) return;
  if (!fs.existsSync(`${PG_BIN}/postgres`)) {
    throw new Error(`PostgreSQL 15 binaries not found in ${PG_BIN}: apt-get install postgresql-15 (the real-PostgreSQL suite never skips)`);
  }
  if (!fs.existsSync('/usr/lib/postgresql/15/lib/pg_cron.so')) {
    throw new Error('pg_cron not found: apt-get install postgresql-15-cron (the real-PostgreSQL suite never skips)');
  }
  const r = spawnSync('bash', [BUILD_SCRIPT], { encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    const why = r.error ? r.error.message : r.signal ? `killed by ${r.signal}` : `exit ${r.status}`;
    throw new Error(`building the DocumentDB extension failed (${why}; the real-PostgreSQL suite never skips): `
      + `bash ${BUILD_SCRIPT}\n${r.stderr}${r.stdout}`);
  }
  if (!/already installed/.test(r.stdout)) process.stderr.write(r.stdout);
  ensured = true;
}
