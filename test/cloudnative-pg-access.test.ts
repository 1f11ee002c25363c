import { PostgresBackend, FerretDBClusterProps } from '../src';
import { validateCustomResource } from './crd-schema';
import { byKind, parsePostgresUrl, synth } from './util';

function cnpg(props: FerretDBClusterProps = {}, options: Parameters<typeof PostgresBackend.cloudNativePG>[0] = {}): any[] {
  return synth({ ...props, backend: PostgresBackend.cloudNativePG(options) });
}

const cluster = (objs: any[]) => byKind(objs, 'Cluster')[0];

describe('the bootstrap database', () => {
  test('FerretDB uses postgres; initdb\'s own database is named after the role and is never postgres', () => {
    const objs = cnpg();
    const urls = byKind(objs, 'Deployment').map((d: any) => parsePostgresUrl(
      d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value).url.pathname);
    expect(urls.length).toBeGreaterThan(0);
    expect(new Set(urls)).toEqual(new Set(['/postgres']));
    const initdb = cluster(objs).spec.bootstrap.initdb;
    expect([initdb.database, initdb.owner]).toEqual(['ferretdb', 'ferretdb']);
    expect(cluster(objs).spec.postgresql.parameters['cron.database_name']).toBe('postgres');
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
  });
});
