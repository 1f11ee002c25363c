import * as fs from 'fs';

/**
 * The one part of the PostgreSQL image the real-PostgreSQL tests cannot run: the DocumentDB
 * extension (not packaged for Debian's postgresql-15). This module is the whole emulation:
 *  - installs a stub `documentdb` extension whose script only creates the role
 *    `documentdb_admin_role` that the real extension creates (so setup.sql runs unchanged);
 *  - removes `pg_documentdb_core` and `pg_documentdb` from shared_preload_libraries in the
 *    synthesized postgresql.conf (`pg_cron` stays: Debian's postgresql-15-cron is real).
 * Everything else (scripts, settings, pg_hba, roles, slots) is the synthesized manifests' own.
 */
export const PG_BIN = '/usr/lib/postgresql/15/bin';
const EXTENSION_DIR = '/usr/share/postgresql/15/extension';

export function installDocumentDbStub(): void {
  if (!fs.existsSync(`${PG_BIN}/postgres`)) {
    throw new Error(`PostgreSQL 15 binaries not found in ${PG_BIN}: install postgresql-15 (the real-PostgreSQL suite never skips)`);
  }
  if (!fs.existsSync('/usr/lib/postgresql/15/lib/pg_cron.so')) {
    throw new Error('pg_cron not found: install postgresql-15-cron (the real-PostgreSQL suite never skips)');
  }
  fs.writeFileSync(`${EXTENSION_DIR}/documentdb.control`, [
    "comment = 'stand-in for the DocumentDB extension in the real-PostgreSQL tests of cdk8s-ferretdb'",
    "default_version = '0.0'",
    'superuser = true',
    'relocatable = false',
    '',
  ].join('\n'));
  fs.writeFileSync(`${EXTENSION_DIR}/documentdb--0.0.sql`, [
    'DO $$ BEGIN',
    "  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'documentdb_admin_role') THEN",
    '    CREATE ROLE documentdb_admin_role NOLOGIN;',
    '  END IF;',
    'END $$;',
    '',
  ].join('\n'));
}

/** Returns the objects with the DocumentDB libraries removed from shared_preload_libraries. */
export function withoutDocumentDbPreload<T>(objects: T[]): T[] {
  return objects.map((o: any) => {
    const conf: string | undefined = o?.kind === 'ConfigMap' ? o.data?.['postgresql.conf'] : undefined;
    if (conf === undefined) return o;
    const replaced = conf.replace(/^shared_preload_libraries = '([^']*)'$/m, (_line, libs: string) =>
      `shared_preload_libraries = '${libs.split(',').filter((l) => !l.startsWith('pg_documentdb')).join(',')}'`);
    if (replaced === conf) throw new Error('shared_preload_libraries not found in postgresql.conf');
    return { ...o, data: { ...o.data, 'postgresql.conf': replaced } };
  });
}
