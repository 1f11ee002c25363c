import { Testing } from 'cdk8s';
import { CloudNativePGCluster, FerretDBCluster, FerretDBClusterProps, PostgresBackend } from '../src';
import { byKind, errorOf, postgresqlConf, synth, parsePostgresUrl } from './util';

function cnpg(props: FerretDBClusterProps = {}): any[] {
  return synth({ ...props, backend: PostgresBackend.cloudNativePG() });
}

function clusterSpec(objs: any[]): any {
  const clusters = byKind(objs, 'Cluster');
  expect(clusters).toHaveLength(1);
  return clusters[0].spec;
}

function urls(objs: any[]): { [deployment: string]: URL } {
  return Object.fromEntries(byKind(objs, 'Deployment').map((d) => [d.metadata.name,
    parsePostgresUrl(d.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value).url]));
}

describe('FerretDB pools and max_connections on CloudNativePG', () => {
  test('both sides\' URLs bound the pool and verify the server\'s certificate', () => {
    const found = urls(cnpg({ ferretdbPoolSize: 15 }));
    expect(Object.keys(found).sort()).toEqual(['x-ferretdb-ro', 'x-ferretdb-rw']);
    for (const url of Object.values(found)) {
      expect(Object.fromEntries(url.searchParams)).toMatchObject({
        pool_max_conns: '15', pool_min_conns: '2', sslmode: 'verify-full', sslrootcert: '/etc/ferretdb/postgres-ca/ca.crt',
      });
    }
    expect(found['x-ferretdb-ro'].searchParams.get('default_transaction_read_only')).toBe('on');
  });

  test.each([
    ['the defaults', {}],
    ['5 writers, pools of 35', { ferretdbWriterReplicas: 5, ferretdbPoolSize: 35 }],
    ['0 replicas (no reader side)', { replicas: 0, ferretdbReaderReplicas: 7 }],
  ])('max_connections is the StatefulSet backend\'s for the same FerretDB sides (%s)', (_what, props: FerretDBClusterProps) => {
    const statefulSets = postgresqlConf(synth(props)).max_connections;
    expect(clusterSpec(cnpg(props)).postgresql.parameters.max_connections).toBe(statefulSets);
  });

  test('every FerretDB side at its rolling-update peak fits in max_connections with 30 to spare (read from the manifests)', () => {
    const objs = cnpg({ ferretdbWriterReplicas: 4, ferretdbPoolSize: 25 });
    const max = Number(clusterSpec(objs).postgresql.parameters.max_connections);
    for (const d of byKind(objs, 'Deployment')) {
      const url = urls(objs)[d.metadata.name];
      const peak = (d.spec.replicas + d.spec.strategy.rollingUpdate.maxSurge) * Number(url.searchParams.get('pool_max_conns'));
      expect(peak + 30).toBeLessThanOrEqual(max);
    }
  });

  test('maxConnections overrides the derived value', () => {
    expect(clusterSpec(cnpg({ maxConnections: 400 })).postgresql.parameters.max_connections).toBe('400');
  });

  test('maxConnections below what the FerretDB pools need fails synth naming maxConnections, the value and the need', () => {
    const chart = Testing.chart();
    new FerretDBCluster(chart, 'db', { name: 'x', maxConnections: 149, backend: PostgresBackend.cloudNativePG() });
    const message = errorOf(() => Testing.synth(chart));
    expect(message).toContain('maxConnections');
    expect(message).toContain('149');
    expect(message).toContain('at least 150');
  });

  test('parameters may not set max_connections (typed: maxConnections)', () => {
    expect(errorOf(() => cnpg({ parameters: { max_connections: '300' } }))).toContain('maxConnections');
  });

  test('a CloudNativePGCluster alone reserves clientConnections (default 70) + 30', () => {
    const parameters = (props: any) => {
      const chart = Testing.chart();
      new CloudNativePGCluster(chart, 'pg', { name: 'pg', ...props });
      return clusterSpec(Testing.synth(chart)).postgresql.parameters;
    };
    expect(parameters({}).max_connections).toBe('100');
    expect(parameters({ clientConnections: 10, maxConnections: 45 }).max_connections).toBe('45');
    const chart = Testing.chart();
    new CloudNativePGCluster(chart, 'pg', { name: 'pg', clientConnections: 50, maxConnections: 79 });
    expect(errorOf(() => Testing.synth(chart))).toContain('at least 80');
  });
});

describe('maxReplicationLag on CloudNativePG: the streaming readiness probe', () => {
  test('a standby is Ready only while it streams within 1GB by default (a bulk load\'s replay backlog; -ro selects Ready standbys)', () => {
    expect(clusterSpec(cnpg()).probes).toEqual({ readiness: { type: 'streaming', maximumLag: 1024 ** 3 } });
  });

  test.each([
    ['1GB', 1024 ** 3],
    ['512kB', 512 * 1024],
    ['16MB', 16 * 1024 ** 2],
  ])('maxReplicationLag %s is maximumLag %i bytes', (lag, bytes) => {
    expect(clusterSpec(cnpg({ maxReplicationLag: lag })).probes.readiness.maximumLag).toBe(bytes);
  });

  test('a Kubernetes quantity is not a PostgreSQL size: the error names maxReplicationLag and the value', () => {
    const message = errorOf(() => cnpg({ maxReplicationLag: '64Mi' }));
    expect(message).toContain('maxReplicationLag');
    expect(message).toContain('64Mi');
  });
});
