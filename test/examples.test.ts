import * as fs from 'fs';
import * as path from 'path';
import { Testing, Yaml } from 'cdk8s';
import { isCustomResource, validateCustomResource } from './crd-schema';
import { byKind, find, podSpecs, postgresqlConf, validateAll } from './util';
import { CloudNativePGChart } from '../examples/cloudnative-pg';
import { MinimalChart } from '../examples/minimal';
import { ProductionChart } from '../examples/production';

const ASSETS = path.join(__dirname, '..', 'assets');

/**
 * The chart's YAML for the snapshot, with each shipped script replaced by its assets/ path when it
 * is byte-identical to that file (scripts.test.ts checks them; the snapshot guards the manifests).
 */
function snapshotYaml(objs: any[]): string {
  const copy = JSON.parse(JSON.stringify(objs));
  for (const cm of byKind(copy, 'ConfigMap')) {
    for (const [key, value] of Object.entries<string>(cm.data ?? {})) {
      for (const dir of ['backends/statefulset', 'postgres', 'observability']) {
        const file = path.join(ASSETS, dir, key);
        if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === value) cm.data[key] = `<assets/${dir}/${key}>`;
      }
    }
  }
  return Yaml.stringify(...copy);
}

function minimal() {
  const chart = new MinimalChart(Testing.app(), 'minimal');
  return { chart, objs: Testing.synth(chart) };
}

function production() {
  const chart = new ProductionChart(Testing.app(), 'production', { namespace: 'orders' });
  return { chart, objs: Testing.synth(chart) };
}

describe('examples/minimal.ts', () => {
  const { chart, objs } = minimal();

  test('synthesizes valid objects', () => {
    expect(() => validateAll(objs)).not.toThrow();
    expect(chart.cluster.name).toBe('app-db');
  });

  test('is a primary, two async replicas, FerretDB on each side and generated credentials', () => {
    expect(find(objs, 'StatefulSet', 'app-db-pg-primary').spec.replicas).toBe(1);
    expect(find(objs, 'StatefulSet', 'app-db-pg-replica').spec.replicas).toBe(2);
    expect(byKind(objs, 'Deployment').map((d) => d.metadata.name).sort()).toEqual(['app-db-ferretdb-ro', 'app-db-ferretdb-rw']);
    expect(postgresqlConf(objs).synchronous_standby_names).toBe('');
    expect(byKind(objs, 'Job')).toHaveLength(1);
    expect(find(objs, 'Service', chart.cluster.writeServiceName).spec.ports[0].port).toBe(27017);
  });

  test('YAML snapshot', () => {
    expect(snapshotYaml(objs)).toMatchSnapshot();
  });
});

describe('examples/production.ts', () => {
  const { chart, objs } = production();

  test('synthesizes valid objects in its namespace', () => {
    expect(() => validateAll(objs)).not.toThrow();
    for (const o of objs) expect(o.metadata.namespace).toBe('orders');
  });

  test('uses a synchronous quorum of 1 over 3 replicas', () => {
    expect(chart.cluster.primary.replicationMode.synchronousStandbys).toBe(1);
    expect(find(objs, 'StatefulSet', 'orders-pg-replica').spec.replicas).toBe(3);
    expect(postgresqlConf(objs).synchronous_standby_names)
      .toBe('ANY 1 ("orders-pg-primary-0", "orders-pg-replica-0", "orders-pg-replica-1", "orders-pg-replica-2")');
  });

  test('uses the existing Secret and synthesizes no bootstrap Job (the only RBAC is the state, lease and certificate-watch sidecars\')', () => {
    expect(chart.cluster.secretName).toBe('orders-db-credentials');
    for (const kind of ['Job', 'Secret']) expect(byKind(objs, kind)).toEqual([]);
    expect(byKind(objs, 'ServiceAccount').map((o) => o.metadata.name).sort()).toEqual(['orders-ferretdb-cert-watch', 'orders-pg-primary', 'orders-pg-primary-standby']);
    for (const kind of ['Role', 'RoleBinding']) {
      expect(byKind(objs, kind).map((o) => o.metadata.name).sort()).toEqual(['orders-ferretdb-cert-watch', 'orders-pg-primary-leader', 'orders-pg-primary-state']);
    }
    for (const { kind, spec } of podSpecs(objs)) {
      if (kind === 'StatefulSet') {
        expect(spec.volumes.find((v: any) => v.secret).secret.secretName).toBe('orders-db-credentials');
      } else {
        expect(spec.containers[0].env.find((e: any) => e.name === 'PGPASSWORD').valueFrom.secretKeyRef.name).toBe('orders-db-credentials');
      }
    }
  });

  test('gives every PostgreSQL pod a 100Gi fast-ssd volume', () => {
    const sets = byKind(objs, 'StatefulSet');
    expect(sets).toHaveLength(2);
    for (const sts of sets) {
      expect(sts.spec.volumeClaimTemplates).toHaveLength(1);
      expect(sts.spec.volumeClaimTemplates[0].spec.storageClassName).toBe('fast-ssd');
      expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('100Gi');
    }
  });

  test('applies its WAL bounds, parameters and metrics scrapers', () => {
    const conf = postgresqlConf(objs);
    expect(conf.max_slot_wal_keep_size).toBe('20GB');
    expect(conf.wal_keep_size).toBe('1GB');
    expect(conf.shared_buffers).toBe('2GB');
    expect(conf.max_connections).toBe('300');
    const ferretdb = byKind(objs, 'NetworkPolicy').find((np) => np.metadata.name === 'orders-ferretdb');
    expect(ferretdb.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toEqual([27018, 8088]);
  });

  test('serves MongoDB clients and PostgreSQL connections over TLS, with certificates from its ClusterIssuer', () => {
    const certs = byKind(objs, 'Certificate');
    expect(certs.map((c) => `${c.metadata.name} ${c.spec.issuerRef.kind}/${c.spec.issuerRef.name}`).sort())
      .toEqual(['orders-ferretdb-tls ClusterIssuer/internal-ca', 'orders-pg-primary-tls ClusterIssuer/internal-ca']);
    expect(find(objs, 'Certificate', 'orders-ferretdb-tls').spec.dnsNames).toContain('orders-db.example.com');
    expect(postgresqlConf(objs).ssl).toBe('on');
    for (const d of byKind(objs, 'Deployment')) {
      const env = d.spec.template.spec.containers[0].env;
      expect(env.find((e: any) => e.name === 'FERRETDB_LISTEN_TLS').value).toBe(':27018');
      expect(env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value).toContain('sslmode=verify-full');
    }
  });

  test('YAML snapshot', () => {
    expect(snapshotYaml(objs)).toMatchSnapshot();
  });
});

describe('examples/cloudnative-pg.ts', () => {
  const objs = Testing.synth(new CloudNativePGChart(Testing.app(), 'cloudnative-pg', { namespace: 'catalog' }));

  test('synthesizes objects valid against Kubernetes and the CRDs, in its namespace', () => {
    expect(() => validateAll(objs.filter((o) => !isCustomResource(o)))).not.toThrow();
    for (const o of objs.filter(isCustomResource)) expect(() => validateCustomResource(o)).not.toThrow();
    for (const o of objs) expect(o.metadata.namespace).toBe('catalog');
  });

  test('is a 3-instance CloudNativePG cluster with a quorum of 1, backups and PodMonitors', () => {
    const cluster = find(objs, 'Cluster', 'catalog-pg');
    expect(cluster.spec.instances).toBe(3);
    expect(cluster.spec.postgresql.synchronous).toEqual({ method: 'any', number: 1, dataDurability: 'required', failoverQuorum: true });
    expect(cluster.spec.switchoverDelay).toBe(600);
    expect(find(objs, 'ScheduledBackup', 'catalog-pg-backup').spec.schedule).toBe('0 0 2 * * *');
    expect(find(objs, 'ObjectStore', 'catalog-pg-backup').spec.retentionPolicy).toBe('14d');
    // The in-cluster MinIO behind a private CA: archiving verifies it with that CA.
    expect(find(objs, 'ObjectStore', 'catalog-pg-backup').spec.configuration.endpointCA).toEqual({ name: 'minio-ca', key: 'ca.crt' });
    expect(byKind(objs, 'PodMonitor').map((p) => p.metadata.name).sort()).toEqual(['catalog-ferretdb', 'catalog-pg']);
    expect(byKind(objs, 'StatefulSet')).toEqual([]);
  });

  test('YAML snapshot', () => {
    expect(snapshotYaml(objs)).toMatchSnapshot();
  });
});
