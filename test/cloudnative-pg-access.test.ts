import { cnpgPgHba, FerretDBClusterProps, PostgresBackend, ReplicationMode } from '../src';
import { validateCustomResource } from './crd-schema';
import { byKind, errorOf, parsePostgresUrl, podTemplates, selectorMatches, synth } from './util';

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

describe('a zone-aware quorum: syncReplicaElectionConstraint', () => {
  const zone = { nodeLabelsAntiAffinity: ['topology.kubernetes.io/zone'] };

  test('none by default', () => {
    expect(cluster(cnpg({ replicationMode: ReplicationMode.synchronousQuorum(1) })).spec.postgresql.syncReplicaElectionConstraint).toBeUndefined();
  });

  test('becomes the Cluster\'s postgresql.syncReplicaElectionConstraint, enabled, which validates against its CRD', () => {
    const objs = cnpg({ replicationMode: ReplicationMode.synchronousQuorum(1) }, { syncReplicaElectionConstraint: zone });
    expect(cluster(objs).spec.postgresql.syncReplicaElectionConstraint).toEqual({ enabled: true, nodeLabelsAntiAffinity: ['topology.kubernetes.io/zone'] });
    expect(cluster(objs).spec.postgresql.synchronous.number).toBe(1);
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
  });

  test('without a synchronous quorum it fails, naming the prop', () => {
    expect(errorOf(() => cnpg({}, { syncReplicaElectionConstraint: zone }))).toMatch(/^Invalid syncReplicaElectionConstraint: .*synchronousQuorum/);
  });

  test.each([[[]], [['zone with space']], [['a/b/c']], [['topology.kubernetes.io/zone', 'topology.kubernetes.io/zone']]])(
    'nodeLabelsAntiAffinity %j fails, naming it', (labels) => {
      const options = { syncReplicaElectionConstraint: { nodeLabelsAntiAffinity: labels } };
      const message = errorOf(() => cnpg({ replicationMode: ReplicationMode.synchronousQuorum(1) }, options));
      expect(message).toMatch(/^Invalid syncReplicaElectionConstraint\.nodeLabelsAntiAffinity/);
    });
});

describe('connectionLimit of FerretDB\'s managed role', () => {
  const role = (objs: any[]) => cluster(objs).spec.managed.roles[0];

  test('no limit by default (CloudNativePG\'s -1)', () => {
    expect(role(cnpg()).connectionLimit).toBeUndefined();
  });

  test('set on the managed role from clientConnections up to max_connections; the Cluster validates against its CRD', () => {
    const spec = cluster(cnpg()).spec;
    const needed = Number(spec.postgresql.parameters.max_connections) - 30;
    const objs = cnpg({}, { connectionLimit: needed });
    expect(role(objs)).toMatchObject({ name: 'ferretdb', connectionLimit: needed });
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
    expect(role(cnpg({}, { connectionLimit: needed + 30 })).connectionLimit).toBe(needed + 30);
  });

  test('one below what the pools may open, or above max_connections, fails naming connectionLimit and the value', () => {
    const needed = Number(cluster(cnpg()).spec.postgresql.parameters.max_connections) - 30;
    expect(errorOf(() => cnpg({}, { connectionLimit: needed - 1 }))).toMatch(new RegExp(`^Invalid connectionLimit: ${needed - 1}\\. Expected from clientConnections \\(${needed}`));
    expect(errorOf(() => cnpg({}, { connectionLimit: needed + 31 }))).toMatch(new RegExp(`^Invalid connectionLimit: ${needed + 31}`));
    expect(errorOf(() => cnpg({}, { connectionLimit: 1.5 }))).toMatch(/^Invalid connectionLimit: 1\.5/);
  });
});

describe('pinRoleToClientPods: FerretDB\'s role only from FerretDB\'s pods', () => {
  test('off by default: no podSelectorRefs, the pg_hba rules unchanged', () => {
    const spec = cluster(cnpg()).spec;
    expect(spec.podSelectorRefs).toBeUndefined();
    expect(spec.postgresql.pg_hba).toEqual(cnpgPgHba());
  });

  test('a podselector rule for the role over TLS, then a reject for the role from anywhere else; the selector matches FerretDB\'s pods', () => {
    const objs = cnpg({}, { pinRoleToClientPods: true });
    const spec = cluster(objs).spec;
    expect(spec.postgresql.pg_hba).toEqual([
      ...cnpgPgHba(),
      'hostssl all ferretdb ${podselector:ferretdb} scram-sha-256',
      'host all ferretdb all reject',
    ]);
    // The loopback trust for DocumentDB's own connections as the role still comes first.
    expect(spec.postgresql.pg_hba.indexOf('host postgres all 127.0.0.1/32 trust')).toBeLessThan(spec.postgresql.pg_hba.indexOf('host all ferretdb all reject'));
    expect(spec.podSelectorRefs).toHaveLength(1);
    expect(spec.podSelectorRefs[0].name).toBe('ferretdb');
    const ferretdbPods = podTemplates(objs).filter((p) => p.owner.includes('ferretdb') && byKind(objs, 'Deployment').some((d: any) => d.metadata.name === p.owner));
    expect(ferretdbPods.length).toBeGreaterThan(0);
    for (const pod of ferretdbPods) expect(selectorMatches(spec.podSelectorRefs[0].selector, pod.labels)).toBe(true);
    expect(() => validateCustomResource(cluster(objs))).not.toThrow();
  });

  test('a non-boolean fails, naming the prop', () => {
    expect(errorOf(() => cnpg({}, { pinRoleToClientPods: 'yes' as any }))).toMatch(/^Invalid pinRoleToClientPods: "yes"/);
  });
});
