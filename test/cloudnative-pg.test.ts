import * as fs from 'fs';
import * as path from 'path';
import { Duration, Testing, Yaml } from 'cdk8s';
import {
  BackupSchedule, CloudNativePGCluster, Credentials, DataDurability, FerretDBCluster, FerretDBClusterProps, PostgresBackend, RecoveryTarget,
  ReplicationMode, RetentionPolicy,
} from '../src';
import { isCustomResource, toJsonSchema, validateCustomResource } from './crd-schema';
import {
  byKind, containers, errorOf, find, podsSelectedBy, podTemplates, postgresqlConf, selectorMatches, synth, synthCluster, validateAll,
  parsePostgresUrl,
} from './util';
import { cnpgPgHba, cnpgPostInitSql } from '../src/backends/cloudnative-pg/cluster';

const PRELOAD = 'pg_cron,pg_documentdb_core,pg_documentdb,auto_explain';
const STORE = { destinationPath: 's3://backups/ferretdb', endpointUrl: 'https://minio.example.com:9000', credentialsSecret: 'minio' };

function cnpg(props: FerretDBClusterProps = {}, options: Parameters<typeof PostgresBackend.cloudNativePG>[0] = {}): any[] {
  return synth({ ...props, backend: PostgresBackend.cloudNativePG(options) });
}

function clusterSpec(objs: any[]): any {
  const clusters = byKind(objs, 'Cluster');
  expect(clusters).toHaveLength(1);
  return clusters[0].spec;
}

function ferretdbEnv(objs: any[], deployment: string, name: string): any {
  const c = find(objs, 'Deployment', deployment).spec.template.spec.containers.find((x: any) => x.name === 'ferretdb');
  return c.env.find((e: any) => e.name === name);
}

function ferretdbUrl(objs: any[], deployment: string): URL {
  return parsePostgresUrl(ferretdbEnv(objs, deployment, 'FERRETDB_POSTGRESQL_URL').value).url;
}

const variants: [string, any[]][] = [
  ['default', cnpg()],
  ['0 replicas', cnpg({ replicas: 0 })],
  ['synchronous quorum 2 of 3', cnpg({ replicas: 3, replicationMode: ReplicationMode.synchronousQuorum(2) })],
  ['backups, metrics and scrapers', cnpg({ monitoring: { podMonitor: true }, metricsScrapers: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }] },
    { backup: { objectStore: { ...STORE, regionKey: 'REGION' }, schedule: BackupSchedule.cron('0 30 2 * * 0'), retention: RetentionPolicy.weeks(2) } })],
  ['restore to a point in time, then back up', cnpg({}, {
    backup: { objectStore: STORE },
    restore: { objectStore: STORE, sourceClusterName: 'orders-pg', target: RecoveryTarget.time('2026-05-04T10:30:00Z') },
  })],
  ['an existing basic-auth Secret', cnpg({ credentials: Credentials.fromSecret('ferretdb-auth') })],
  ['synchronous quorum 2 of 2, preferred durability', cnpg({ replicationMode: ReplicationMode.synchronousQuorum(2) }, { dataDurability: DataDurability.PREFERRED })],
  ['backups to an endpoint behind a private CA', cnpg({}, { backup: { objectStore: { ...STORE, endpointCA: { secretName: 'minio-ca' } } } })],
];

describe('schemas', () => {
  test.each(variants)('every object validates: custom resources against their CRD, the rest against Kubernetes (%s)', (_what, objs) => {
    const custom = objs.filter(isCustomResource);
    expect(custom.length).toBeGreaterThanOrEqual(1);
    for (const o of custom) expect(() => validateCustomResource(o)).not.toThrow();
    expect(() => validateAll(objs.filter((o) => !isCustomResource(o)))).not.toThrow();
  });

  test('the backup and restore variants hold the kinds they should', () => {
    const kinds = (objs: any[]) => objs.filter(isCustomResource).map((o) => `${o.kind}/${o.metadata.name}`).sort();
    expect(kinds(variants[3][1])).toEqual(['Cluster/x-pg', 'ObjectStore/x-pg-backup', 'PodMonitor/x-ferretdb', 'PodMonitor/x-pg', 'ScheduledBackup/x-pg-backup']);
    expect(kinds(variants[4][1])).toEqual(['Cluster/x-pg', 'ObjectStore/x-pg-backup', 'ObjectStore/x-pg-restore', 'ScheduledBackup/x-pg-backup']);
  });

  test('the CRD validator rejects unknown fields, missing required fields and values outside an enum', () => {
    const cluster = byKind(cnpg(), 'Cluster')[0];
    const broken = (change: (c: any) => void) => {
      const copy = JSON.parse(JSON.stringify(cluster));
      change(copy);
      return errorOf(() => validateCustomResource(copy));
    };
    expect(broken((c) => { c.spec.postgresql.sharedPreloadLibraries = c.spec.postgresql.shared_preload_libraries; })).toMatch(/additional/);
    expect(broken((c) => { c.spec.storage.sise = '1Gi'; })).toMatch(/sise/);
    expect(broken((c) => { delete c.spec.instances; })).toMatch(/instances/);
    expect(broken((c) => { c.spec.primaryUpdateMethod = 'Switchover'; })).toMatch(/allowed values/);
    expect(broken((c) => { c.spec.postgresql.synchronous = { method: 'any' }; })).toMatch(/number/);
    expect(() => validateCustomResource({ apiVersion: 'postgresql.cnpg.io/v1', kind: 'Pooler', metadata: { name: 'p' } })).toThrow(/no CRD/);
  });

  test('toJsonSchema closes object schemas unless they allow more', () => {
    expect(toJsonSchema({ type: 'object', properties: { a: { type: 'string' } } }).additionalProperties).toBe(false);
    expect(toJsonSchema({ type: 'object' }).additionalProperties).toBe(false);
    expect(toJsonSchema({ 'type': 'object', 'x-kubernetes-preserve-unknown-fields': true }).additionalProperties).toBeUndefined();
    expect(toJsonSchema({ type: 'object', additionalProperties: { type: 'string' } }).additionalProperties).toEqual({ type: 'string' });
  });
});

describe('the CloudNativePG Cluster', () => {
  const spec = clusterSpec(cnpg());

  test('has replicas + 1 instances of the DocumentDB image running as uid/gid 999', () => {
    expect(spec.instances).toBe(3);
    expect(clusterSpec(cnpg({ replicas: 0 })).instances).toBe(1);
    expect(spec.imageName).toBe('ghcr.io/ferretdb/postgres-documentdb:17-0.107.0-ferretdb-2.7.0');
    expect([spec.postgresUID, spec.postgresGID]).toEqual([999, 999]);
    expect(spec.enableSuperuserAccess).toBe(false);
  });

  test('preloads DocumentDB and pg_cron and sets every setting of the image\'s 10-preload.sh that DocumentDB 0.107 knows', () => {
    expect(spec.postgresql.shared_preload_libraries).toEqual(['pg_cron', 'pg_documentdb_core', 'pg_documentdb']);
    expect(spec.postgresql.parameters).toMatchObject({
      'cron.database_name': 'postgres',
      'documentdb.enableLetAndCollationForQueryMatch': 'true',
      'documentdb.enableNowSystemVariable': 'true',
      'documentdb.enableSchemaValidation': 'true',
      'documentdb.enableBypassDocumentValidation': 'true',
      'documentdb.enableUserCrud': 'true',
      'documentdb.maxUserLimit': '100',
    });
    // Later images' enableSortbyIdPushDownToPrimaryKey is unknown to the default image's DocumentDB.
    expect(spec.postgresql.parameters['documentdb.enableSortbyIdPushDownToPrimaryKey']).toBeUndefined();
  });

  test('sets the same documentdb.* settings as the StatefulSet backend, except the loopback connection string', () => {
    // The StatefulSet backend points DocumentDB's own connections at its pod-local socket; under
    // CloudNativePG the socket admits only the operator's users (peer map=local), so they keep
    // DocumentDB's default, TCP to localhost, which cnpgPgHba admits.
    const documentdb = (parameters: { [name: string]: string }) => Object.fromEntries(Object.entries(parameters)
      .filter(([name]) => name.startsWith('documentdb.') && name !== 'documentdb.localhost_connection_string'));
    expect(documentdb(spec.postgresql.parameters)).toEqual(documentdb(postgresqlConf(synth())));
  });

  test('bootstraps the extension and FerretDB\'s role, with the grants user management needs WITH ADMIN OPTION', () => {
    const initdb = spec.bootstrap.initdb;
    expect(initdb.owner).toBe('ferretdb');
    expect(initdb.secret).toEqual({ name: 'x-credentials' });
    expect(initdb.postInitSQL).toEqual(cnpgPostInitSql('ferretdb'));
    expect(initdb.postInitSQL[0]).toBe('CREATE EXTENSION IF NOT EXISTS documentdb CASCADE');
    for (const role of ['documentdb_admin_role', 'documentdb_readonly_role', 'pg_read_all_data']) {
      expect(initdb.postInitSQL).toContain(`GRANT ${role} TO ferretdb WITH ADMIN OPTION`);
    }
    // Every role that runs SQL once the extension is loaded needs USAGE on DocumentDB's schemas:
    // CloudNativePG's replication role and its metrics exporter (pg_monitor).
    for (const grantee of ['streaming_replica', 'pg_monitor']) {
      expect(initdb.postInitSQL).toContain(
        `GRANT USAGE ON SCHEMA documentdb_core, documentdb_api_internal, documentdb_api_catalog, documentdb_api TO ${grantee}`);
    }
  });

  test('grants USAGE on the same DocumentDB schemas as the StatefulSet backend\'s setup.sql grants its replication role', () => {
    const setupSql = fs.readFileSync(path.join(__dirname, '..', 'assets', 'backends', 'statefulset', 'setup.sql'), 'utf8');
    const granted = /GRANT USAGE ON SCHEMA ([\w,\s]+?)\s+TO :"replication_user"/.exec(setupSql)![1].split(',').map((x) => x.trim());
    const usage = spec.bootstrap.initdb.postInitSQL.filter((q: string) => q.startsWith('GRANT USAGE ON SCHEMA'));
    expect(usage).toHaveLength(2);
    for (const q of usage) expect(/^GRANT USAGE ON SCHEMA ([\w, ]+) TO \w+$/.exec(q)![1].split(', ')).toEqual(granted);
  });

  test('declares FerretDB\'s role with its password Secret and every membership the bootstrap grants', () => {
    expect(spec.managed.roles).toEqual([expect.objectContaining({
      name: 'ferretdb',
      login: true,
      createrole: true,
      superuser: false,
      replication: false,
      inRoles: ['documentdb_admin_role', 'documentdb_readonly_role', 'pg_read_all_data'],
      passwordSecret: { name: 'x-credentials' },
    })]);
  });

  test('admits DocumentDB\'s and pg_cron\'s loopback connections to the postgres database and nothing broader', () => {
    expect(spec.postgresql.pg_hba).toEqual(cnpgPgHba());
    const trust = spec.postgresql.pg_hba.filter((r: string) => / trust$/.test(r));
    expect(trust).toEqual(['host postgres all 127.0.0.1/32 trust', 'host postgres all ::1/128 trust']);
    expect(spec.postgresql.pg_hba).toContain('hostnossl all all all reject');
  });

  test('keeps replication slots for high availability and bounds the WAL they hold by the volume', () => {
    expect(spec.replicationSlots).toEqual({ highAvailability: { enabled: true } });
    expect(spec.postgresql.parameters.max_slot_wal_keep_size).toBe('2560MB');
    expect(clusterSpec(cnpg({ storage: { size: '100Gi' } })).postgresql.parameters.max_slot_wal_keep_size).toBe('25600MB');
    expect(clusterSpec(cnpg({ wal: { maxSlotWalKeepSize: '4GB' } })).postgresql.parameters.max_slot_wal_keep_size).toBe('4GB');
    expect(spec.storage).toEqual({ size: '10Gi' });
  });

  test('asynchronous by default; a synchronous quorum becomes method any, number k, required durability and a failover quorum', () => {
    expect(spec.postgresql.synchronous).toBeUndefined();
    expect(clusterSpec(cnpg({ replicas: 3, replicationMode: ReplicationMode.synchronousQuorum(2) })).postgresql.synchronous)
      .toEqual({ method: 'any', number: 2, dataDurability: 'required', failoverQuorum: true });
  });

  test('a quorum of every standby is accepted with DataDurability.PREFERRED (writes go on while one restarts)', () => {
    const synchronous = clusterSpec(cnpg({ replicas: 2, replicationMode: ReplicationMode.synchronousQuorum(2) },
      { dataDurability: DataDurability.PREFERRED })).postgresql.synchronous;
    expect(synchronous).toEqual({ method: 'any', number: 2, dataDurability: 'preferred', failoverQuorum: true });
  });

  test('updates the primary last, by switchover, unsupervised; failover and switchover delays are explicit', () => {
    expect([spec.primaryUpdateStrategy, spec.primaryUpdateMethod]).toEqual(['unsupervised', 'switchover']);
    expect([spec.failoverDelay, spec.switchoverDelay]).toEqual([0, 3600]);
    const custom = clusterSpec(cnpg({}, { failoverDelay: Duration.seconds(30), switchoverDelay: Duration.minutes(5) }));
    expect([custom.failoverDelay, custom.switchoverDelay]).toEqual([30, 300]);
  });

  test('spreads instances over nodes and zones; resources and storage class follow the props', () => {
    expect(spec.affinity).toMatchObject({ enablePodAntiAffinity: true, topologyKey: 'kubernetes.io/hostname', podAntiAffinityType: 'preferred' });
    expect(spec.topologySpreadConstraints).toEqual([expect.objectContaining({
      topologyKey: 'topology.kubernetes.io/zone', labelSelector: { matchLabels: { 'cnpg.io/cluster': 'x-pg', 'cnpg.io/podRole': 'instance' } },
    })]);
    expect(spec.resources).toEqual({ requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } });
    const custom = clusterSpec(cnpg({
      storage: { size: '50Gi', storageClassName: 'fast' },
      postgresResources: { cpuRequest: '2', memoryRequest: '4Gi', memoryLimit: '4Gi' },
      scheduling: { nodeSelector: { pool: 'db' }, tolerations: [{ key: 'db', operator: 'Exists', effect: 'NoSchedule' }] },
    }));
    expect(custom.storage).toEqual({ size: '50Gi', storageClass: 'fast' });
    expect(custom.resources).toEqual({ requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '4Gi' } });
    expect(custom.affinity.nodeSelector).toEqual({ pool: 'db' });
    expect(custom.affinity.tolerations).toEqual([{ key: 'db', operator: 'Exists', effect: 'NoSchedule' }]);
  });

  test('user parameters reach the Cluster', () => {
    expect(clusterSpec(cnpg({ parameters: { shared_buffers: '2GB' } })).postgresql.parameters.shared_buffers).toBe('2GB');
  });
});

describe('backups and point-in-time recovery', () => {
  const objs = variants[3][1];

  test('WAL is archived through the Barman Cloud plugin to the ObjectStore', () => {
    expect(clusterSpec(objs).plugins).toEqual([{ name: 'barman-cloud.cloudnative-pg.io', isWALArchiver: true, parameters: { barmanObjectName: 'x-pg-backup' } }]);
    const store = find(objs, 'ObjectStore', 'x-pg-backup').spec;
    expect(store.retentionPolicy).toBe('2w');
    expect(store.configuration).toMatchObject({
      destinationPath: 's3://backups/ferretdb',
      endpointURL: 'https://minio.example.com:9000',
      s3Credentials: {
        accessKeyId: { name: 'minio', key: 'ACCESS_KEY_ID' },
        secretAccessKey: { name: 'minio', key: 'ACCESS_SECRET_KEY' },
        region: { name: 'minio', key: 'REGION' },
      },
    });
  });

  test('an endpoint behind a private CA gets the CA Secret as the ObjectStore\'s endpointCA (key ca.crt unless given)', () => {
    const store = (endpointCA: any) => find(cnpg({}, { backup: { objectStore: { ...STORE, endpointCA } } }), 'ObjectStore', 'x-pg-backup').spec.configuration;
    expect(store({ secretName: 'minio-ca' }).endpointCA).toEqual({ name: 'minio-ca', key: 'ca.crt' });
    expect(store({ secretName: 'minio-ca', key: 'root.pem' }).endpointCA).toEqual({ name: 'minio-ca', key: 'root.pem' });
    expect(store(undefined).endpointCA).toBeUndefined();
    const restore = cnpg({}, { restore: { objectStore: { ...STORE, endpointCA: { secretName: 'minio-ca' } }, sourceClusterName: 'orders-pg' } });
    expect(find(restore, 'ObjectStore', 'x-pg-restore').spec.configuration.endpointCA).toEqual({ name: 'minio-ca', key: 'ca.crt' });
  });

  test('a ScheduledBackup through the plugin, daily at midnight UTC with a 30-day retention by default', () => {
    expect(find(objs, 'ScheduledBackup', 'x-pg-backup').spec).toMatchObject({ cluster: { name: 'x-pg' }, schedule: '0 30 2 * * 0', method: 'plugin' });
    const defaults = cnpg({}, { backup: { objectStore: STORE } });
    expect(find(defaults, 'ScheduledBackup', 'x-pg-backup').spec).toMatchObject({
      schedule: '0 0 0 * * *', immediate: true, pluginConfiguration: { name: 'barman-cloud.cloudnative-pg.io' },
    });
    expect(find(defaults, 'ObjectStore', 'x-pg-backup').spec.retentionPolicy).toBe('30d');
  });

  test('restore bootstraps from the source cluster\'s backups up to the target time', () => {
    const spec = clusterSpec(variants[4][1]);
    expect(spec.bootstrap.initdb).toBeUndefined();
    expect(spec.bootstrap.recovery).toEqual({
      source: 'origin',
      database: 'ferretdb',
      owner: 'ferretdb',
      secret: { name: 'x-credentials' },
      recoveryTarget: { targetTime: '2026-05-04T10:30:00Z' },
    });
    expect(spec.externalClusters).toEqual([{
      name: 'origin',
      plugin: { name: 'barman-cloud.cloudnative-pg.io', parameters: { barmanObjectName: 'x-pg-restore', serverName: 'orders-pg' } },
    }]);
    const latest = clusterSpec(cnpg({}, { restore: { objectStore: STORE, sourceClusterName: 'orders-pg' } }));
    expect(latest.bootstrap.recovery.recoveryTarget).toBeUndefined();
  });
});

describe('FerretDB on CloudNativePG', () => {
  const { cluster, objs } = synthCluster({ backend: PostgresBackend.cloudNativePG() });

  test('writers connect to the -rw Service, readers to -ro, with verify-full TLS against the cluster CA', () => {
    const writer = ferretdbUrl(objs, 'x-ferretdb-rw');
    const reader = ferretdbUrl(objs, 'x-ferretdb-ro');
    expect([writer.hostname, writer.port, writer.pathname, writer.username]).toEqual(['x-pg-rw', '5432', '/postgres', 'ferretdb']);
    expect([reader.hostname, reader.port]).toEqual(['x-pg-ro', '5432']);
    for (const url of [writer, reader]) {
      expect(url.searchParams.get('sslmode')).toBe('verify-full');
      expect(url.searchParams.get('sslrootcert')).toBe('/etc/ferretdb/postgres-ca/ca.crt');
    }
    expect(reader.searchParams.get('default_transaction_read_only')).toBe('on');
    expect(writer.searchParams.get('default_transaction_read_only')).toBeNull();
  });

  test('readers try the standbys\' Service first and the primary\'s only after it (pgx tries the hosts in order), read-only and preferring a standby', () => {
    const url = ferretdbEnv(objs, 'x-ferretdb-ro', 'FERRETDB_POSTGRESQL_URL').value;
    const pg = cluster.cloudNativePG!;
    expect(parsePostgresUrl(url).hosts).toEqual([pg.readOnlyServiceName, pg.readWriteServiceName]);
    expect(parsePostgresUrl(url).hosts).not.toContain('x-pg-r');
    expect(parsePostgresUrl(url).url.searchParams.get('target_session_attrs')).toBe('prefer-standby');
    expect(parsePostgresUrl(url).url.searchParams.get('default_transaction_read_only')).toBe('on');
    expect(parsePostgresUrl(ferretdbEnv(objs, 'x-ferretdb-rw', 'FERRETDB_POSTGRESQL_URL').value).hosts).toEqual([pg.readWriteServiceName]);
  });

  test('the CA is mounted from <cluster>-ca, key ca.crt only (never the CA key)', () => {
    for (const name of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const pod = find(objs, 'Deployment', name).spec.template.spec;
      expect(pod.volumes.find((v: any) => v.name === 'postgres-ca')).toEqual({
        name: 'postgres-ca', secret: { secretName: 'x-pg-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] },
      });
      expect(pod.containers[0].volumeMounts).toContainEqual({ name: 'postgres-ca', mountPath: '/etc/ferretdb/postgres-ca', readOnly: true });
    }
  });

  test('FerretDB reads its password from the basic-auth Secret the operator uses for the role', () => {
    for (const name of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      expect(ferretdbEnv(objs, name, 'PGPASSWORD').valueFrom.secretKeyRef).toEqual({ name: 'x-credentials', key: 'password' });
    }
    expect(clusterSpec(objs).managed.roles[0].passwordSecret.name).toBe('x-credentials');
    const jobs = byKind(objs, 'Job');
    expect(jobs.map((j) => j.metadata.name)).toEqual([expect.stringMatching(/^x-credentials-bootstrap-[0-9a-f]{8}$/)]);
    expect(jobs[0].spec.template.spec.containers[0].env).toContainEqual({ name: 'SECRET_USERNAME', value: 'ferretdb' });
    expect(cluster.secretName).toBe('x-credentials');
    expect(cluster.username).toBe('ferretdb');
  });

  test('the generated Secret is labelled cnpg.io/reload: "true" (the operator applies a changed password at once), besides the metadata labels', () => {
    const env = byKind(objs, 'Job')[0].spec.template.spec.containers[0].env;
    const labels = JSON.parse(env.find((e: any) => e.name === 'SECRET_LABELS').value);
    expect(labels).toMatchObject({ 'cnpg.io/reload': 'true', 'app.kubernetes.io/component': 'credentials' });
    // The Job's own objects do not carry it.
    expect(byKind(objs, 'Job')[0].metadata.labels['cnpg.io/reload']).toBeUndefined();
  });

  test('no Secret and no plaintext password is synthesized', () => {
    for (const [, variant] of variants) {
      expect(byKind(variant, 'Secret')).toEqual([]);
      for (const { container } of containers(variant)) {
        for (const e of container.env ?? []) {
          if (/PASS/i.test(e.name)) expect(e.value).toBeUndefined();
          if (typeof e.value === 'string') expect(e.value).not.toMatch(/:\/\/[^/@\s]*:[^/@\s]*@/);
        }
      }
      const text = Yaml.stringify(...variant);
      expect(text).not.toMatch(/password\s*[=:]\s*['"]?[A-Za-z0-9]{8,}/i);
      expect(text).not.toMatch(/PASSWORD '/i);
    }
  });

  test('the Services, Deployments and FerretDB NetworkPolicy are the same as with StatefulSets', () => {
    const sts = synth();
    const pick = (o: any[]) => ['x-rw', 'x-ro'].map((n) => find(o, 'Service', n).spec);
    expect(pick(objs)).toEqual(pick(sts));
    expect(find(objs, 'NetworkPolicy', 'x-ferretdb').spec).toEqual(find(sts, 'NetworkPolicy', 'x-ferretdb').spec);
    expect(byKind(objs, 'StatefulSet')).toEqual([]);
  });

  test('primary and replicas exist only with the StatefulSet backend; the error says so', () => {
    expect(errorOf(() => cluster.primary)).toMatch(/statefulSets/);
    expect(errorOf(() => cluster.replicas)).toMatch(/statefulSets/);
    const sts = synthCluster().cluster;
    expect(sts.primary.serviceName).toBe('x-pg-rw');
    expect(sts.postgres.readOnlyHost).toBe('x-pg-ro');
    expect(sts.cloudNativePG).toBeUndefined();
  });
});

describe('NetworkPolicy of the instances', () => {
  const objs = variants[3][1];
  const policy = find(objs, 'NetworkPolicy', 'x-pg-postgresql').spec;
  const ports = (rule: any) => rule.ports.map((p: any) => p.port).sort();

  test('selects the cluster\'s pods and admits FerretDB pods on 5432 only', () => {
    expect(policy.podSelector).toEqual({ matchLabels: { 'cnpg.io/cluster': 'x-pg' } });
    const ferretdbPods = podTemplates(objs).filter((p) => p.kind === 'Deployment');
    expect(ferretdbPods).toHaveLength(2);
    const admits = (rule: any, labels: { [key: string]: string }) =>
      rule.from.some((f: any) => f.podSelector && !f.namespaceSelector && selectorMatches(f.podSelector, labels));
    const admitting = policy.ingress.filter((r: any) => ferretdbPods.every((p) => admits(r, p.labels)));
    expect(admitting).toHaveLength(1);
    expect(ports(admitting[0])).toEqual([5432]);
  });

  test('admits the instances among themselves and the operator on 5432 and 8000, scrapers on 9187', () => {
    expect(policy.ingress).toContainEqual({ from: [{ podSelector: { matchLabels: { 'cnpg.io/cluster': 'x-pg' } } }], ports: [{ protocol: 'TCP', port: 5432 }, { protocol: 'TCP', port: 8000 }] });
    const operator = policy.ingress.find((r: any) => r.from[0].namespaceSelector);
    expect(operator.from).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'cnpg-system' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'cloudnative-pg' } } }]);
    expect(ports(operator)).toEqual([5432, 8000]);
    expect(policy.ingress.filter((r: any) => r.ports.some((p: any) => p.port === 9187))).toEqual([
      { from: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }], ports: [{ protocol: 'TCP', port: 9187 }] },
    ]);
    expect(find(variants[0][1], 'NetworkPolicy', 'x-pg-postgresql').spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).not.toContain(9187);
  });

  test('the operator\'s namespace and labels are props', () => {
    const spec = find(cnpg({}, { operator: { namespace: 'postgres-operator', podLabels: { app: 'cnpg' } } }), 'NetworkPolicy', 'x-pg-postgresql').spec;
    expect(spec.ingress.find((r: any) => r.from[0].namespaceSelector).from).toEqual([{
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'postgres-operator' } }, podSelector: { matchLabels: { app: 'cnpg' } },
    }]);
  });

  test('PodMonitors select the instances (9187) and the FerretDB pods (8088, /debug/metrics)', () => {
    expect(find(objs, 'PodMonitor', 'x-pg').spec).toEqual({
      selector: { matchLabels: { 'cnpg.io/cluster': 'x-pg', 'cnpg.io/podRole': 'instance' } }, podMetricsEndpoints: [{ port: 'metrics' }],
    });
    const ferretdb = find(objs, 'PodMonitor', 'x-ferretdb').spec;
    expect(ferretdb.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/debug/metrics', interval: '30s' }]);
    expect(podsSelectedBy(ferretdb.selector, podTemplates(objs)).sort()).toEqual(['Deployment/x-ferretdb-ro', 'Deployment/x-ferretdb-rw']);
    expect(byKind(variants[0][1], 'PodMonitor')).toEqual([]);
  });
});

describe('two clusters side by side', () => {
  const chart = Testing.chart();
  new FerretDBCluster(chart, 'a', { name: 'a', backend: PostgresBackend.cloudNativePG() });
  new FerretDBCluster(chart, 'b', { name: 'b', backend: PostgresBackend.cloudNativePG() });
  const objs = Testing.synth(chart);
  const pods = podTemplates(objs);

  test('each PostgreSQL NetworkPolicy admits only its own FerretDB pods as clients', () => {
    for (const [own, other] of [['a', 'b'], ['b', 'a']]) {
      const policy = find(objs, 'NetworkPolicy', `${own}-pg-postgresql`).spec;
      const client = policy.ingress[0].from[0].podSelector;
      expect(podsSelectedBy(client, pods).sort()).toEqual([`Deployment/${own}-ferretdb-ro`, `Deployment/${own}-ferretdb-rw`]);
      expect(policy.podSelector.matchLabels['cnpg.io/cluster']).not.toBe(`${other}-pg`);
    }
  });

  test('each cluster\'s FerretDB connects to its own CloudNativePG cluster', () => {
    expect(ferretdbUrl(objs, 'a-ferretdb-rw').hostname).toBe('a-pg-rw');
    expect(ferretdbUrl(objs, 'b-ferretdb-ro').hostname).toBe('b-pg-ro');
    expect(byKind(objs, 'Cluster').map((c) => c.metadata.name).sort()).toEqual(['a-pg', 'b-pg']);
  });

  test('every Service selects only its own cluster\'s pods', () => {
    for (const s of byKind(objs, 'Service')) {
      const prefix = s.metadata.name.split('-')[0];
      for (const id of podsSelectedBy(s.spec.selector, pods)) expect(id).toMatch(new RegExp(`^Deployment/${prefix}-`));
    }
  });
});

describe('CloudNativePGCluster on its own', () => {
  test('names its Services, CA and Secret after the cluster and validates against the CRD', () => {
    const chart = Testing.chart();
    const pg = new CloudNativePGCluster(chart, 'pg', { name: 'reports', replicas: 1 });
    expect([pg.readWriteServiceName, pg.readOnlyServiceName, pg.caSecretName, pg.secretName]).toEqual(['reports-rw', 'reports-ro', 'reports-ca', 'reports-ferretdb']);
    expect(pg.connection).toMatchObject({ readWriteHost: 'reports-rw', readOnlyHost: 'reports-ro', passwordKey: 'password', caKey: 'ca.crt' });
    const objs = Testing.synth(chart);
    for (const o of objs.filter(isCustomResource)) validateCustomResource(o);
    validateAll(objs.filter((o) => !isCustomResource(o)));
    expect(find(objs, 'Cluster', 'reports').spec.instances).toBe(2);
  });

  test('a default name stays within CloudNativePG\'s 50 characters', () => {
    const chart = Testing.chart();
    const pg = new CloudNativePGCluster(chart, 'p'.repeat(120));
    expect(pg.name.length).toBeLessThanOrEqual(50);
    expect(pg.name).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
  });
});

/** Whether the message shows the value as a whole token. */
function mentions(message: string, value: string): boolean {
  const escaped = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?<![A-Za-z0-9.])${escaped}(?![A-Za-z0-9])`).test(message);
}

describe('invalid input fails at synth time with an error naming the prop and the value', () => {
  const cases: [string, () => unknown, string, string][] = [
    ['a quorum of every standby with required durability', () => cnpg({ replicas: 2, replicationMode: ReplicationMode.synchronousQuorum(2) }), 'replicationMode', 'ReplicationMode.synchronousQuorum(2)'],
    ['a dataDurability given as a string', () => cnpg({ replicationMode: ReplicationMode.synchronousQuorum(1) }, { dataDurability: 'strict' as any }), 'dataDurability', 'strict'],
    ['a quorum larger than the replicas', () => cnpg({ replicas: 1, replicationMode: ReplicationMode.synchronousQuorum(2) }), 'replicationMode', 'ReplicationMode.synchronousQuorum(2)'],
    ['currentPrimary with CloudNativePG', () => cnpg({ currentPrimary: 'x-pg-1' }), 'currentPrimary', 'x-pg-1'],
    ['a failoverDelay of 1.5 s', () => cnpg({}, { failoverDelay: Duration.millis(1500) }), 'failoverDelay', '1.5s'],
    ['a switchoverDelay that is not a Duration', () => cnpg({}, { switchoverDelay: 60 as any }), 'switchoverDelay', '60'],
    ['a destinationPath without s3://', () => cnpg({}, { backup: { objectStore: { ...STORE, destinationPath: 'backups/ferretdb' } } }), 'backup.objectStore.destinationPath', 'backups/ferretdb'],
    ['an ftp endpointUrl', () => cnpg({}, { backup: { objectStore: { ...STORE, endpointUrl: 'ftp://minio' } } }), 'backup.objectStore.endpointUrl', 'ftp://minio'],
    ['a credentialsSecret with upper case', () => cnpg({}, { backup: { objectStore: { ...STORE, credentialsSecret: 'Minio_Keys' } } }), 'backup.objectStore.credentialsSecret', 'Minio_Keys'],
    ['a missing credentialsSecret', () => cnpg({}, { backup: { objectStore: { destinationPath: 's3://bucket/p' } as any } }), 'backup.objectStore.credentialsSecret', 'undefined'],
    ['a missing objectStore', () => cnpg({}, { backup: {} as any }), 'backup.objectStore', 'undefined'],
    ['an endpointCA Secret name with upper case', () => cnpg({}, { backup: { objectStore: { ...STORE, endpointCA: { secretName: 'Minio_CA' } } } }), 'backup.objectStore.endpointCA.secretName', 'Minio_CA'],
    ['an endpointCA key with a slash', () => cnpg({}, { backup: { objectStore: { ...STORE, endpointCA: { secretName: 'ca', key: 'a/b' } } } }), 'backup.objectStore.endpointCA.key', 'a/b'],
    ['an endpointCA with a plain-http endpoint', () => cnpg({}, { backup: { objectStore: { ...STORE, endpointUrl: 'http://minio:9000', endpointCA: { secretName: 'ca' } } } }), 'backup.objectStore.endpointUrl', 'http://minio:9000'],
    ['an access key name with a space', () => cnpg({}, { backup: { objectStore: { ...STORE, accessKeyIdKey: 'ACCESS KEY' } } }), 'backup.objectStore.accessKeyIdKey', 'ACCESS KEY'],
    ['a restore from a bad store', () => cnpg({}, { restore: { objectStore: { ...STORE, destinationPath: 'gs://x' }, sourceClusterName: 'a' } }), 'restore.objectStore.destinationPath', 'gs://x'],
    ['a restore source that is not a name', () => cnpg({}, { restore: { objectStore: STORE, sourceClusterName: 'Orders_PG' } }), 'restore.sourceClusterName', 'Orders_PG'],
    ['a restore from itself into the same store', () => cnpg({}, { backup: { objectStore: STORE }, restore: { objectStore: STORE, sourceClusterName: 'x-pg' } }), 'restore.sourceClusterName', 'x-pg'],
    ['a schedule with five fields', () => BackupSchedule.cron('0 3 * * *'), 'backup.schedule', '0 3 * * *'],
    ['a daily hour of 24', () => BackupSchedule.daily(24), 'backup.schedule', '24'],
    ['a retention of 0 days', () => RetentionPolicy.days(0), 'backup.retention', '0'],
    ['a target time without a zone', () => RecoveryTarget.time('2026-05-04 10:30:00'), 'restore.target', '2026-05-04 10:30:00'],
    ['a CloudNativePGCluster name of 51 characters', () => new CloudNativePGCluster(Testing.chart(), 'pg', { name: 'a'.repeat(51) }), 'name', 'a'.repeat(51)],
    ['parameters setting shared_preload_libraries', () => cnpg({ parameters: { shared_preload_libraries: PRELOAD } }), 'shared_preload_libraries', PRELOAD],
    ['parameters setting ssl', () => cnpg({ parameters: { ssl: 'off' } }), 'ssl', 'off'],
    ['parameters setting a pg_failover_slots setting', () => cnpg({ parameters: { 'pg_failover_slots.synchronize_slot_names': 'name_like:%' } }), 'pg_failover_slots.synchronize_slot_names', 'name_like:%'],
    ['parameters changing a DocumentDB setting', () => cnpg({ parameters: { 'cron.database_name': 'app' } }), 'cron.database_name', 'app'],
    ['wal.maxSlotWalKeepSize above the volume', () => cnpg({ wal: { maxSlotWalKeepSize: '20GB' } }), 'wal.maxSlotWalKeepSize', '20GB'],
    ['an operator namespace with upper case', () => cnpg({}, { operator: { namespace: 'CNPG' } }), 'operator.namespace', 'CNPG'],
    ['empty operator pod labels', () => cnpg({}, { operator: { podLabels: {} } }), 'operator.podLabels', '{}'],
    ['a ferretdbUser CloudNativePG reserves', () => new CloudNativePGCluster(Testing.chart(), 'pg', { ferretdbUser: 'cnpg_ferretdb' }), 'ferretdbUser', 'cnpg_ferretdb'],
    ['ferretdbUser postgres (CloudNativePG\'s superuser)', () => new CloudNativePGCluster(Testing.chart(), 'pg', { ferretdbUser: 'postgres' }), 'ferretdbUser', 'postgres'],
    ['ferretdbUser streaming_replica (CloudNativePG\'s replication role)', () => new CloudNativePGCluster(Testing.chart(), 'pg', { ferretdbUser: 'streaming_replica' }), 'ferretdbUser', 'streaming_replica'],
    ['a backend given as a string', () => synth({ backend: 'cloudNativePG' as any }), 'backend', 'cloudNativePG'],
  ];

  test.each(cases)('%s', (_what, build, prop, value) => {
    const message = errorOf(build);
    expect({ message, prop: message.includes(prop), value: mentions(message, value) }).toEqual({ message, prop: true, value: true });
  });
});

describe('monitoring on CloudNativePG', () => {
  test('monitoring.podMonitor adds the FerretDB and the instances\' PodMonitors, and no exporter sidecar', () => {
    const objs = cnpg({ monitoring: { podMonitor: true }, metricsScrapers: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }] });
    expect(byKind(objs, 'PodMonitor').map((o) => o.metadata.name).sort()).toEqual(['x-ferretdb', 'x-pg']);
    expect(byKind(objs, 'PrometheusRule')).toEqual([]);
  });

  test('monitoring.prometheusRule adds the CloudNativePG cluster\'s PrometheusRule, with monitoring.labels', () => {
    const objs = cnpg({ monitoring: { podMonitor: true, prometheusRule: true, labels: { release: 'prom' } }, metricsScrapers: [{ namespaceSelector: { matchLabels: { team: 'monitoring' } } }] });
    const rules = byKind(objs, 'PrometheusRule');
    expect(rules.map((o) => [o.metadata.name, o.metadata.labels.release])).toEqual([['x-pg', 'prom']]);
    expect(rules[0].spec.groups[0].rules.map((r: any) => r.alert)).toEqual(['FerretDBPostgresVolumeNearlyFull']);
  });

  test.each([
    ['dashboard', { dashboard: true }],
    ['exporterImage', { exporterImage: 'quay.io/prometheuscommunity/postgres-exporter:v0.17.1' }],
  ])('monitoring.%s is a StatefulSet-backend option: an error naming it', (key, monitoring) => {
    expect(() => cnpg({ monitoring })).toThrow(new RegExp(`Invalid monitoring\\.${key}: .*PostgresBackend\\.cloudNativePG\\(\\)`));
  });
});
