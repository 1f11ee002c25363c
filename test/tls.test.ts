import { Chart, Testing } from 'cdk8s';
import {
  FerretDBCluster, FerretDBClusterProps, PostgresBackend, PostgresPrimary, PostgresTls, StreamingReplica,
} from '../src';
import { isCustomResource, validateCustomResource } from './crd-schema';
import { byKind, containers, errorOf, find, postgresConfigMap, postgresqlConf, synth, validateAll, parsePostgresUrl } from './util';

const TLS_DIR = '/etc/ferretdb-postgres-tls';
const fromSecret = (props: FerretDBClusterProps = {}) => synth({ postgresTls: PostgresTls.fromSecret('x-pg-tls'), ...props });
const certManager = (namespace?: string, props: FerretDBClusterProps = {}) => {
  const chart = new Chart(Testing.app(), 'c', { namespace });
  const cluster = new FerretDBCluster(chart, 'db', {
    name: 'x', postgresTls: PostgresTls.certManager({ issuerName: 'internal-ca', issuerKind: 'ClusterIssuer' }), ...props,
  });
  return { cluster, objs: Testing.synth(chart) };
};
const hba = (objs: any[]): string[] => postgresConfigMap(objs).data['pg_hba.conf'].split('\n').filter((l: string) => l && !l.startsWith('#'));
const postgresContainers = (objs: any[]) => containers(objs).filter((c) => c.kind === 'StatefulSet');
const env = (container: any, name: string) => container.env.find((e: any) => e.name === name)?.value;

describe('PostgreSQL TLS from a Secret (postgresTls: PostgresTls.fromSecret)', () => {
  const objs = fromSecret();

  test('postgresql.conf turns ssl on with the mounted tls.crt, tls.key and ca.crt, TLS 1.2 at least', () => {
    const conf = postgresqlConf(objs);
    expect(conf).toMatchObject({
      ssl: 'on',
      ssl_cert_file: `${TLS_DIR}/tls.crt`,
      ssl_key_file: `${TLS_DIR}/tls.key`,
      ssl_ca_file: `${TLS_DIR}/ca.crt`,
      ssl_min_protocol_version: 'TLSv1.2',
    });
  });

  test('pg_hba: plain-text network connections (replication ones too) are rejected first, every network rule is hostssl, local rules unchanged', () => {
    const lines = hba(objs);
    const network = lines.filter((l) => !l.startsWith('local'));
    expect(network.slice(0, 2).map((l) => l.split(/\s+/))).toEqual([
      ['hostnossl', 'replication', 'all', 'all', 'reject'],
      ['hostnossl', 'all', 'all', 'all', 'reject'],
    ]);
    for (const l of network.slice(2)) expect(l).toMatch(/^hostssl /);
    expect(network.length).toBe(hba(synth()).filter((l) => !l.startsWith('local')).length + 2);
    expect(lines.filter((l) => l.startsWith('local'))).toEqual(hba(synth()).filter((l) => l.startsWith('local')));
    // Same rules as without TLS, only the connection type differs.
    expect(network.slice(2).map((l) => l.replace(/^hostssl/, 'host'))).toEqual(
      hba(synth()).filter((l) => !l.startsWith('local')).map((l) => l.replace(/^host\s+/, 'host ')));
  });

  test('every PostgreSQL pod mounts only tls.crt, tls.key and ca.crt of the Secret, 0440 (root:fsGroup 999, which PostgreSQL accepts for a key)', () => {
    for (const sts of byKind(objs, 'StatefulSet')) {
      const spec = sts.spec.template.spec;
      const volume = spec.volumes.find((v: any) => v.name === 'tls');
      expect(volume.secret).toEqual({
        secretName: 'x-pg-tls',
        defaultMode: 0o440,
        items: [{ key: 'tls.crt', path: 'tls.crt' }, { key: 'tls.key', path: 'tls.key' }, { key: 'ca.crt', path: 'ca.crt' }],
      });
      expect(spec.securityContext.fsGroup).toBe(999);
    }
  });

  test('the postgres and agent containers mount it read-only at TLS_DIR, which their env names; the state and exporter sidecars do not', () => {
    const objsWithExporter = fromSecret({ monitoring: {} });
    for (const { owner, container } of postgresContainers(objsWithExporter)) {
      const mount = container.volumeMounts.find((m: any) => m.name === 'tls');
      if (['postgres', 'agent'].includes(container.name)) {
        expect({ owner, name: container.name, mount, env: env(container, 'TLS_DIR') })
          .toEqual({ owner, name: container.name, mount: { name: 'tls', mountPath: TLS_DIR, readOnly: true }, env: TLS_DIR });
      } else {
        expect({ owner, name: container.name, mount }).toEqual({ owner, name: container.name, mount: undefined });
      }
    }
  });

  test('FerretDB connects with sslmode=verify-full against the Secret\'s ca.crt, mounting only that key', () => {
    for (const d of byKind(objs, 'Deployment')) {
      const spec = d.spec.template.spec;
      const url = parsePostgresUrl(env(spec.containers[0], 'FERRETDB_POSTGRESQL_URL')).url;
      expect(url.searchParams.get('sslmode')).toBe('verify-full');
      const ca = url.searchParams.get('sslrootcert')!;
      const mount = spec.containers[0].volumeMounts.find((m: any) => ca.startsWith(m.mountPath + '/'));
      const volume = spec.volumes.find((v: any) => v.name === mount.name);
      expect(volume.secret).toEqual({ secretName: 'x-pg-tls', items: [{ key: 'ca.crt', path: 'ca.crt' }] });
      expect(ca).toBe(`${mount.mountPath}/ca.crt`);
    }
  });

  test('no Certificate is synthesized: the user\'s Secret is used as is', () => {
    expect(objs.filter(isCustomResource)).toEqual([]);
  });
});

describe('without postgresTls (the default)', () => {
  const objs = synth();
  test('no ssl setting, no hostssl rule, no TLS volume or TLS_DIR, FerretDB without sslmode', () => {
    const conf = postgresqlConf(objs);
    expect(Object.keys(conf).filter((k) => k.startsWith('ssl'))).toEqual([]);
    expect(hba(objs).filter((l) => /^host(no)?ssl/.test(l))).toEqual([]);
    for (const { container } of postgresContainers(objs)) {
      expect(container.volumeMounts.some((m: any) => m.name === 'tls')).toBe(false);
      expect(env(container, 'TLS_DIR')).toBeUndefined();
    }
    for (const d of byKind(objs, 'Deployment')) {
      expect(env(d.spec.template.spec.containers[0], 'FERRETDB_POSTGRESQL_URL')).not.toContain('sslmode');
    }
  });
});

describe('PostgreSQL TLS from cert-manager (PostgresTls.certManager)', () => {
  const { cluster, objs } = certManager('orders', { replicas: 3 });
  const cert = find(objs, 'Certificate', 'x-pg-primary-tls');

  test('a Certificate for the Secret the pods and FerretDB mount, from the given issuer, for server auth, a new key on each renewal', () => {
    expect(cert.spec).toMatchObject({
      secretName: 'x-pg-primary-tls',
      issuerRef: { name: 'internal-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' },
      privateKey: { rotationPolicy: 'Always' },
    });
    expect(cert.spec.usages).toContain('server auth');
    for (const sts of byKind(objs, 'StatefulSet')) {
      expect(sts.spec.template.spec.volumes.find((v: any) => v.name === 'tls').secret.secretName).toBe('x-pg-primary-tls');
    }
    expect(cluster.postgres.caSecretName).toBe('x-pg-primary-tls');
  });

  test('validates against cert-manager 1.21.1\'s CRD, and the other objects against Kubernetes\' schemas', () => {
    expect(() => validateCustomResource(cert)).not.toThrow();
    expect(() => validateAll(objs.filter((o) => !isCustomResource(o)))).not.toThrow();
    const broken = { ...cert, spec: { ...cert.spec, usages: ['server-auth'] } };
    expect(() => validateCustomResource(broken)).toThrow();
  });

  test('names every PostgreSQL Service and every pod as <pod>.<statefulset>, each also as <name>.<namespace>.svc', () => {
    const services = byKind(objs, 'Service').filter((s) => s.spec.ports.some((p: any) => p.port === 5432)).map((s) => s.metadata.name);
    const pods = byKind(objs, 'StatefulSet').flatMap((s) => Array.from({ length: s.spec.replicas }, (_, i) => `${s.metadata.name}-${i}.${s.spec.serviceName}`));
    expect(services.sort()).toEqual(['x-pg-primary', 'x-pg-replica', 'x-pg-ro', 'x-pg-rw']);
    expect(pods).toHaveLength(4);
    const expected = [...services, ...pods].flatMap((n) => [n, `${n}.orders.svc`]);
    expect([...cert.spec.dnsNames].sort()).toEqual(expected.sort());
  });

  test('carries every host name a verify-full client connects to: PRIMARY_HOST, the members the scripts ask, FerretDB\'s hosts', () => {
    const names = new Set<string>(cert.spec.dnsNames);
    const hosts = new Set<string>();
    for (const { container } of postgresContainers(objs)) {
      if (env(container, 'PRIMARY_HOST')) hosts.add(env(container, 'PRIMARY_HOST'));
    }
    // lib.sh member_host: <pod>.<pod without its ordinal>.
    const members = postgresConfigMap(objs).data.members.trim().split('\n');
    for (const m of members) hosts.add(`${m}.${m.replace(/-[0-9]+$/, '')}`);
    for (const d of byKind(objs, 'Deployment')) hosts.add(parsePostgresUrl(env(d.spec.template.spec.containers[0], 'FERRETDB_POSTGRESQL_URL')).url.hostname);
    expect(hosts.size).toBe(members.length + 2);
    for (const h of hosts) expect({ h, named: names.has(h) }).toEqual({ h, named: true });
  });

  test('without a chart namespace it lists the short names only', () => {
    const { objs: noNs } = certManager(undefined);
    const names: string[] = find(noNs, 'Certificate', 'x-pg-primary-tls').spec.dnsNames;
    expect(names).toContain('x-pg-rw');
    expect(names.filter((n) => n.includes('.svc'))).toEqual([]);
  });

  test('a replica group added later (StreamingReplica) gets its Services and pods on the certificate', () => {
    const chart = Testing.chart();
    const primary = new PostgresPrimary(chart, 'pg', { name: 'pg', tls: PostgresTls.certManager({ issuerName: 'ca', secretName: 'pg-cert' }) });
    new StreamingReplica(chart, 'zone-b', { primary, name: 'pg-b', replicas: 2 });
    const out = Testing.synth(chart);
    const c = find(out, 'Certificate', 'pg-cert');
    expect(c.spec.issuerRef).toEqual({ name: 'ca', kind: 'Issuer', group: 'cert-manager.io' });
    expect(c.spec.dnsNames).toEqual(expect.arrayContaining(['pg-rw', 'pg', 'pg-b', 'pg-b-ro', 'pg-0.pg', 'pg-b-0.pg-b', 'pg-b-1.pg-b']));
    expect(primary.tlsDnsNames).toEqual(c.spec.dnsNames);
  });
});

describe('bad TLS input fails at synth time, naming the prop and the value', () => {
  test.each([
    ['a Secret name that is not a DNS name', () => PostgresTls.fromSecret('Bad_Name'), /Invalid tls \(PostgresTls.fromSecret secretName\): "Bad_Name"/],
    ['an issuer kind other than Issuer or ClusterIssuer', () => PostgresTls.certManager({ issuerName: 'ca', issuerKind: 'Vault' }), /Invalid tls \(PostgresTls.certManager issuerKind\): "Vault". Expected "Issuer" or "ClusterIssuer"/],
    ['an empty issuer name', () => PostgresTls.certManager({ issuerName: '' }), /Invalid tls \(PostgresTls.certManager issuerName\): ""/],
    ['something else than a PostgresTls', () => synth({ postgresTls: { secretName: 'x' } as any }), /Invalid tls: \{"secretName":"x"\}. Expected PostgresTls.fromSecret/],
    ['postgresTls with the CloudNativePG backend', () => synth({ postgresTls: PostgresTls.fromSecret('t'), backend: PostgresBackend.cloudNativePG() }), /Invalid postgresTls: .*CloudNativePG always serves TLS/],
    ['ssl through parameters', () => synth({ parameters: { ssl: 'off' } }), /Invalid parameters\["ssl"\]: "off"/],
    ['ssl_key_file through parameters', () => synth({ parameters: { ssl_key_file: '/k' } }), /Invalid parameters\["ssl_key_file"\]/],
  ])('%s', (_what, fn, message) => {
    expect(errorOf(fn)).toMatch(message);
  });
});
