import { Duration, Testing } from 'cdk8s';
import { FerretDBCluster, PostgresBackend, PostgresTls, ReplicationMode, StreamingReplica } from '../src';
import {
  byKind, containers, errorOf, find, podsSelectedBy, podTemplates, postgresConfigMap, postgresqlConf, selectorOf, synth,
  synthCluster, parsePostgresUrl,
} from './util';
import { slotNameForPod } from '../src/private/names';

const PG_PODS = ['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1'];

function ferretdbContainer(objs: any[], deployment: string): any {
  return find(objs, 'Deployment', deployment).spec.template.spec.containers.find((c: any) => c.name === 'ferretdb');
}

function envValue(container: any, name: string): any {
  const found = container.env.filter((e: any) => e.name === name);
  expect(found).toHaveLength(1);
  return found[0];
}

/** The pods a Service of this cluster selects. */
function selected(objs: any[], serviceName: string): string[] {
  return podsSelectedBy(find(objs, 'Service', serviceName).spec.selector, podTemplates(objs));
}

describe('PostgreSQL Services', () => {
  const objs = synth();

  test('the read-write Service selects exactly the primary pod', () => {
    expect(selected(objs, 'x-pg-rw')).toEqual(['x-pg-primary-0']);
  });

  test('the read-only Service selects exactly the replica pods', () => {
    expect(selected(objs, 'x-pg-ro')).toEqual(['x-pg-replica-0', 'x-pg-replica-1']);
  });

  test('each StatefulSet\'s headless Service selects exactly its pods', () => {
    expect(selected(objs, 'x-pg-primary')).toEqual(['x-pg-primary-0']);
    expect(selected(objs, 'x-pg-replica')).toEqual(['x-pg-replica-0', 'x-pg-replica-1']);
    expect(find(objs, 'StatefulSet', 'x-pg-primary').spec.serviceName).toBe('x-pg-primary');
    expect(find(objs, 'StatefulSet', 'x-pg-replica').spec.serviceName).toBe('x-pg-replica');
    expect(find(objs, 'Service', 'x-pg-primary').spec.clusterIP).toBe('None');
  });

  test('the Services target the postgresql container port 5432', () => {
    for (const name of ['x-pg-rw', 'x-pg-ro']) {
      expect(find(objs, 'Service', name).spec.ports).toEqual([{ name: 'postgresql', port: 5432, targetPort: 'postgresql' }]);
    }
    for (const { container } of containers(objs).filter((c) => c.container.name === 'postgres')) {
      expect(container.ports).toContainEqual({ name: 'postgresql', containerPort: 5432, protocol: 'TCP' });
    }
  });

  test('every workload selects exactly its own pods', () => {
    const pods = podTemplates(objs);
    for (const w of [...byKind(objs, 'StatefulSet'), ...byKind(objs, 'Deployment')]) {
      const own = pods.filter((p) => p.owner === w.metadata.name && p.kind === w.kind).map((p) => p.id);
      expect({ workload: w.metadata.name, selects: podsSelectedBy(w.spec.selector, pods) })
        .toEqual({ workload: w.metadata.name, selects: own });
      expect(own.length).toBeGreaterThan(0);
    }
  });
});

describe('FerretDB Services', () => {
  const { cluster, objs } = synthCluster();

  test('the write Service selects only the writer FerretDB pods', () => {
    expect(selected(objs, 'x-rw')).toEqual(['Deployment/x-ferretdb-rw']);
  });

  test('the read Service selects only the reader FerretDB pods', () => {
    expect(selected(objs, 'x-ro')).toEqual(['Deployment/x-ferretdb-ro']);
  });

  test('writeServiceName and readServiceName are the synthesized Services', () => {
    expect(find(objs, 'Service', cluster.writeServiceName).spec.selector).toBeDefined();
    expect(find(objs, 'Service', cluster.readServiceName).spec.selector).toBeDefined();
    expect(cluster.writeServiceName).toBe('x-rw');
    expect(cluster.readServiceName).toBe('x-ro');
    expect(cluster.writeEndpoint).toBe('x-rw:27017');
    expect(cluster.readEndpoint).toBe('x-ro:27017');
  });

  test('both Services expose 27017 on the FerretDB mongodb port', () => {
    for (const name of [cluster.writeServiceName, cluster.readServiceName]) {
      expect(find(objs, 'Service', name).spec.ports).toEqual([{ name: 'mongodb', port: 27017, targetPort: 'mongodb' }]);
      expect(find(objs, 'Service', name).spec.type).toBe('ClusterIP');
    }
  });

  test('with replicas: 0 the read Service selects the writer pods and there is no reader Deployment', () => {
    const zero = synthCluster({ replicas: 0 });
    expect(selected(zero.objs, zero.cluster.readServiceName)).toEqual(['Deployment/x-ferretdb-rw']);
    expect(byKind(zero.objs, 'Deployment').map((d) => d.metadata.name)).toEqual(['x-ferretdb-rw']);
    expect(find(zero.objs, 'StatefulSet', 'x-pg-replica').spec.replicas).toBe(0);
    expect(postgresConfigMap(zero.objs).data.members).toBe('x-pg-primary-0\n');
  });
});

describe('FerretDB connects to PostgreSQL', () => {
  const { cluster, objs } = synthCluster();

  test.each([
    ['writer', 'x-ferretdb-rw', ['x-pg-primary-0']],
    ['reader', 'x-ferretdb-ro', ['x-pg-replica-0', 'x-pg-replica-1']],
  ])('the %s\'s FERRETDB_POSTGRESQL_URL points at the PostgreSQL Service of its side, without a password', (_side, deployment, pods) => {
    const url = parsePostgresUrl(envValue(ferretdbContainer(objs, deployment as string), 'FERRETDB_POSTGRESQL_URL').value).url;
    expect(url.protocol).toBe('postgres:');
    expect(url.password).toBe('');
    expect(url.username).toBe(cluster.username);
    expect(url.port).toBe('5432');
    expect(url.pathname).toBe('/postgres');
    // The host is a Service of this chart that selects exactly the pods of that side.
    expect(selected(objs, url.hostname)).toEqual(pods);
  });

  test.each([
    ['writer', 'x-ferretdb-rw', { target_session_attrs: 'read-write' }],
    ['reader', 'x-ferretdb-ro', { target_session_attrs: 'prefer-standby', default_transaction_read_only: 'on' }],
  ])('the %s\'s pool is bounded: pool_max_conns=20 and pool_min_conns=2 by default (FerretDB\'s own defaults are 50 and 10), connections live 5-6 min, connects wait 5 s', (_side, deployment, extra) => {
    const url = parsePostgresUrl(envValue(ferretdbContainer(objs, deployment as string), 'FERRETDB_POSTGRESQL_URL').value).url;
    expect(Object.fromEntries(url.searchParams)).toEqual({
      pool_max_conns: '20', pool_min_conns: '2', pool_max_conn_lifetime: '5m', pool_max_conn_lifetime_jitter: '1m', connect_timeout: '5', ...extra,
    });
  });

  test('writers accept only a server that takes writes; readers prefer a standby (pgx target_session_attrs)', () => {
    const attrs = (d: string) => parsePostgresUrl(envValue(ferretdbContainer(objs, d), 'FERRETDB_POSTGRESQL_URL').value).url.searchParams.get('target_session_attrs');
    expect([attrs('x-ferretdb-rw'), attrs('x-ferretdb-ro')]).toEqual(['read-write', 'prefer-standby']);
  });

  test.each([
    [10, '10', '2'],
    [1, '1', '1'],
    [200, '200', '2'],
  ])('ferretdbPoolSize %i gives pool_max_conns=%s and pool_min_conns=%s on both sides', (poolSize, max, min) => {
    const sized = synth({ ferretdbPoolSize: poolSize });
    for (const deployment of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const url = parsePostgresUrl(envValue(ferretdbContainer(sized, deployment), 'FERRETDB_POSTGRESQL_URL').value).url;
      expect([url.searchParams.get('pool_max_conns'), url.searchParams.get('pool_min_conns')]).toEqual([max, min]);
    }
  });

  test('the writer uses the read-write Service and the reader the read-only Service', () => {
    expect(parsePostgresUrl(envValue(ferretdbContainer(objs, 'x-ferretdb-rw'), 'FERRETDB_POSTGRESQL_URL').value).url.hostname).toBe('x-pg-rw');
    expect(parsePostgresUrl(envValue(ferretdbContainer(objs, 'x-ferretdb-ro'), 'FERRETDB_POSTGRESQL_URL').value).url.hostname).toBe('x-pg-ro');
  });

  test('readers fall back to the primary: their URL lists the read-only Service, then the read-write one (pgx tries them in order); writers list only theirs', () => {
    const hosts = (d: string) => parsePostgresUrl(envValue(ferretdbContainer(objs, d), 'FERRETDB_POSTGRESQL_URL').value).hosts;
    expect({ writer: hosts('x-ferretdb-rw'), reader: hosts('x-ferretdb-ro') }).toEqual({ writer: ['x-pg-rw'], reader: ['x-pg-ro', 'x-pg-rw'] });
    // The fallback host selects the primary, which the same clientLabels reach.
    expect(selected(objs, 'x-pg-rw')).toEqual(['x-pg-primary-0']);
  });

  test('with TLS, the primary\'s certificate names both hosts of the readers\' URL (verify-full checks each against its own name)', () => {
    const tls = synthCluster({ postgresTls: PostgresTls.fromSecret('x-tls') });
    const reader = parsePostgresUrl(envValue(ferretdbContainer(tls.objs, 'x-ferretdb-ro'), 'FERRETDB_POSTGRESQL_URL').value);
    expect(reader.url.searchParams.get('sslmode')).toBe('verify-full');
    for (const host of reader.hosts) expect({ host, named: tls.cluster.primary.tlsDnsNames.includes(host) }).toEqual({ host, named: true });
  });

  test('PGPASSWORD comes from the ferretdb-password key of the cluster Secret', () => {
    const job = byKind(objs, 'Job')[0];
    const generatedSecret = job.spec.template.spec.containers[0].env.find((e: any) => e.name === 'SECRET_NAME').value;
    expect(generatedSecret).toBe(cluster.secretName);
    for (const deployment of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const pgpassword = envValue(ferretdbContainer(objs, deployment), 'PGPASSWORD');
      expect(pgpassword.value).toBeUndefined();
      expect(pgpassword.valueFrom).toEqual({ secretKeyRef: { name: cluster.secretName, key: 'ferretdb-password' } });
    }
  });

  test('FerretDB declares the mongodb (27017) and metrics (8088) ports and listens on them', () => {
    for (const deployment of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const c = ferretdbContainer(objs, deployment);
      expect(c.ports).toEqual(expect.arrayContaining([
        { name: 'mongodb', containerPort: 27017, protocol: 'TCP' },
        { name: 'metrics', containerPort: 8088, protocol: 'TCP' },
      ]));
      expect(envValue(c, 'FERRETDB_LISTEN_ADDR').value).toBe(':27017');
      expect(envValue(c, 'FERRETDB_DEBUG_ADDR').value).toBe(':8088');
    }
  });

  test('probes on 8088: startup on /debug/livez, readiness on /debug/readyz, liveness on /debug/readyz over 120 s (a pod unready that long restarts)', () => {
    for (const deployment of ['x-ferretdb-rw', 'x-ferretdb-ro']) {
      const c = ferretdbContainer(objs, deployment);
      const port = (p: any) => (typeof p === 'number' ? p : c.ports.find((cp: any) => cp.name === p)?.containerPort);
      expect(c.readinessProbe.httpGet.path).toBe('/debug/readyz');
      expect(port(c.readinessProbe.httpGet.port)).toBe(8088);
      expect(c.startupProbe.httpGet.path).toBe('/debug/livez');
      expect(c.livenessProbe.httpGet.path).toBe('/debug/readyz');
      expect(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold).toBe(120);
      // Readiness drops the pod from its Service long before liveness restarts it.
      expect(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold).toBeLessThan(120);
      expect(port(c.livenessProbe.httpGet.port)).toBe(8088);
      if (c.startupProbe) {
        expect(port(c.startupProbe.httpGet.port)).toBe(8088);
      }
    }
  });
});

describe('two clusters in one chart', () => {
  function twoClusters(a: string, b: string): any[] {
    const chart = Testing.chart();
    new FerretDBCluster(chart, a, { name: a });
    new FerretDBCluster(chart, b, { name: b });
    return Testing.synth(chart);
  }

  /** Every label selector anywhere in an object (Service, workload, PDB, NetworkPolicy peers, affinity, spread). */
  function allSelectors(obj: any): any[] {
    const found: any[] = [];
    const walk = (node: any, key?: string) => {
      if (Array.isArray(node)) {
        node.forEach((n) => walk(n));
      } else if (node && typeof node === 'object') {
        if (key && ['selector', 'podSelector', 'labelSelector'].includes(key)) found.push(node);
        for (const [k, v] of Object.entries(node)) walk(v, k);
      }
    };
    walk(obj);
    return found;
  }

  test.each([
    ['a', 'b'],
    ['app', 'app-ferretdb'],
    ['orders', 'orders-pg-replica'],
  ])('clusters %s and %s never select each other\'s pods', (a, b) => {
    const objs = twoClusters(a, b);
    const instance = (o: any) => o.metadata.labels['app.kubernetes.io/instance'];
    const pods = podTemplates(objs);
    const podsOf = (name: string) => pods.filter((p) => instance(objs.find((o) => o.kind === p.kind && o.metadata.name === p.owner)) === name);
    expect(podsOf(a).length).toBeGreaterThan(3);
    expect(podsOf(b).length).toBeGreaterThan(3);
    let checked = 0;
    for (const o of objs.filter((obj) => ['Service', 'PodDisruptionBudget', 'StatefulSet', 'Deployment', 'NetworkPolicy'].includes(obj.kind))) {
      const other = instance(o) === a ? b : a;
      for (const selector of allSelectors(o)) {
        if (o.kind === 'NetworkPolicy' && Object.keys(selector).length === 0) continue; // `from: [{ podSelector: {} }]`: every client
        expect({ object: `${o.kind}/${o.metadata.name}`, selects: podsSelectedBy(selector, podsOf(other)) })
          .toEqual({ object: `${o.kind}/${o.metadata.name}`, selects: [] });
        checked++;
      }
      if (o.kind !== 'NetworkPolicy') {
        expect(podsSelectedBy(selectorOf(o), podsOf(instance(o))).length).toBeGreaterThan(0);
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  test('clusters whose object names would collide ("app" and "app-pg") fail synth naming the object', () => {
    expect(() => twoClusters('app', 'app-pg')).toThrow(/Invalid name: "app" and "app-pg".*two objects would be Service \/app-pg-rw/);
  });

  test('object names of clusters "app" and "app-ferretdb" do not collide', () => {
    const names = twoClusters('app', 'app-ferretdb').map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });

  test('clusters with default names in one chart get distinct names and distinct objects', () => {
    const chart = Testing.chart();
    const one = new FerretDBCluster(chart, 'one');
    const two = new FerretDBCluster(chart, 'two');
    expect(one.name).not.toEqual(two.name);
    const names = Testing.synth(chart).map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([]);
  });
});

describe('user labels', () => {
  const labels = { 'team': 'payments', 'example.com/cost-center': 'cc-42' };
  const objs = synth({ labels, metricsScrapers: [{ podSelector: { matchLabels: { app: 'prometheus' } } }] });

  test('appear in the metadata of every object', () => {
    for (const o of objs) {
      expect({ object: `${o.kind}/${o.metadata.name}`, labels: o.metadata.labels })
        .toEqual({ object: `${o.kind}/${o.metadata.name}`, labels: expect.objectContaining(labels) });
    }
  });

  test('appear on every pod', () => {
    for (const p of podTemplates(objs)) {
      expect(p.labels).toEqual(expect.objectContaining(labels));
    }
  });

  test('are never used in a selector', () => {
    const keys = Object.keys(labels);
    const check = (node: any, path: string) => {
      if (Array.isArray(node)) {
        node.forEach((n, i) => check(n, `${path}[${i}]`));
      } else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          if (['selector', 'podSelector', 'labelSelector', 'namespaceSelector', 'matchLabels'].includes(k)) {
            const text = JSON.stringify(v);
            for (const key of keys) expect({ path: `${path}.${k}`, usesLabel: text.includes(key) }).toEqual({ path: `${path}.${k}`, usesLabel: false });
          }
          check(v, `${path}.${k}`);
        }
      }
    };
    for (const o of objs) check(o, `${o.kind}/${o.metadata.name}`);
  });

  test('do not change which pods the Services select', () => {
    const plain = synth();
    for (const name of ['x-pg-rw', 'x-pg-ro', 'x-rw', 'x-ro']) {
      expect(find(objs, 'Service', name).spec.selector).toEqual(find(plain, 'Service', name).spec.selector);
    }
  });
});

describe('currentPrimary', () => {
  const { objs } = synthCluster({ currentPrimary: 'x-pg-replica-1' });

  test('a replica pod as currentPrimary makes the read-write Service select exactly that pod', () => {
    expect(selected(objs, 'x-pg-rw')).toEqual(['x-pg-replica-1']);
  });

  test('the ConfigMap leader key names the current primary', () => {
    expect(postgresConfigMap(objs).data.leader.trim()).toBe('x-pg-replica-1');
    expect(postgresConfigMap(synth()).data.leader.trim()).toBe('x-pg-primary-0');
  });

  test('after a promotion the read side stays read-only: reader FerretDB sessions are read-only transactions', () => {
    // The replica group's read-only Service still selects the promoted pod (equality selectors
    // cannot exclude one pod); the reader side's connections can never write.
    const reader = find(objs, 'Deployment', 'x-ferretdb-ro');
    const url = reader.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value;
    expect(url).toBe('postgres://ferretdb@x-pg-ro:5432,x-pg-rw:5432/postgres?pool_max_conns=20&pool_min_conns=2&pool_max_conn_lifetime=5m&pool_max_conn_lifetime_jitter=1m&connect_timeout=5&target_session_attrs=prefer-standby&default_transaction_read_only=on');
    const writer = find(objs, 'Deployment', 'x-ferretdb-rw');
    expect(writer.spec.template.spec.containers[0].env.find((e: any) => e.name === 'FERRETDB_POSTGRESQL_URL').value)
      .toBe('postgres://ferretdb@x-pg-rw:5432/postgres?pool_max_conns=20&pool_min_conns=2&pool_max_conn_lifetime=5m&pool_max_conn_lifetime_jitter=1m&connect_timeout=5&target_session_attrs=read-write');
  });

  test('naming the primary\'s own pod changes nothing', () => {
    const explicit = synth({ currentPrimary: 'x-pg-primary-0' });
    expect(JSON.stringify(explicit)).toEqual(JSON.stringify(synth()));
  });

  test.each(['x-pg-replica-2', 'nope', 'x-pg-primary-1'])('an unknown currentPrimary (%s) fails synth naming the prop and the value', (value) => {
    const chart = Testing.chart();
    new FerretDBCluster(chart, 'db', { name: 'x', currentPrimary: value });
    const message = errorOf(() => Testing.synth(chart));
    expect(message).toContain('currentPrimary');
    expect(message).toContain(value);
  });
});

describe('PostgreSQL shutdown', () => {
  const postgresContainer = (objs: any[], sts: string) => find(objs, 'StatefulSet', sts).spec.template.spec.containers.find((c: any) => c.name === 'postgres');
  const grace = (objs: any[], sts: string) => find(objs, 'StatefulSet', sts).spec.template.spec.terminationGracePeriodSeconds;

  test('by default the preStop hook may take 300 s for the fast shutdown and the grace period is 10 s longer, on every PostgreSQL pod', () => {
    const objs = synth();
    for (const sts of ['x-pg-primary', 'x-pg-replica']) {
      expect(envValue(postgresContainer(objs, sts), 'STOP_TIMEOUT').value).toBe('300');
      expect(grace(objs, sts)).toBe(310);
      expect(postgresContainer(objs, sts).lifecycle.preStop.exec.command).toEqual(['bash', '/etc/ferretdb-postgres/lifecycle.sh', 'stop']);
    }
  });

  test('postgresShutdownTimeout sets both the hook\'s bound and the grace period', () => {
    const objs = synth({ postgresShutdownTimeout: Duration.minutes(30) });
    for (const sts of ['x-pg-primary', 'x-pg-replica']) {
      expect(envValue(postgresContainer(objs, sts), 'STOP_TIMEOUT').value).toBe('1800');
      expect(grace(objs, sts)).toBe(1810);
    }
  });

  test('with CloudNativePG postgresShutdownTimeout is refused, naming the prop and the value', () => {
    const chart = Testing.chart();
    const message = errorOf(() => new FerretDBCluster(chart, 'db', {
      name: 'x', backend: PostgresBackend.cloudNativePG(), postgresShutdownTimeout: Duration.minutes(1),
    }));
    expect(message).toContain('postgresShutdownTimeout');
    expect(message).toContain('60s');
  });
});

describe('StatefulSet pod management', () => {
  test('every PostgreSQL StatefulSet creates and recreates its pods in parallel, so a primary at a higher ordinal is never waiting for a standby to be Ready', () => {
    const sets = byKind(synth(), 'StatefulSet');
    expect(sets.map((s) => s.metadata.name)).toEqual(['x-pg-primary', 'x-pg-replica']);
    for (const s of sets) expect(s.spec.podManagementPolicy).toBe('Parallel');
  });
});

describe('a second StreamingReplica group (another zone)', () => {
  function withZoneB(mode?: ReplicationMode) {
    const chart = Testing.chart();
    const cluster = new FerretDBCluster(chart, 'db', { name: 'x', replicationMode: mode });
    const zoneB = new StreamingReplica(chart, 'ZoneB', { primary: cluster.primary, replicas: 2, name: 'x-pg-zone-b' });
    return { cluster, zoneB, objs: Testing.synth(chart) };
  }
  const zonePods = ['x-pg-zone-b-0', 'x-pg-zone-b-1'];

  test('its pods appear in the ConfigMap members', () => {
    const { objs } = withZoneB();
    expect(postgresConfigMap(objs).data.members.trim().split('\n')).toEqual([...PG_PODS, ...zonePods]);
  });

  test('it gets its own read-only Service selecting exactly its pods', () => {
    const { zoneB, objs } = withZoneB();
    expect(zoneB.serviceName).toBe('x-pg-zone-b-ro');
    expect(selected(objs, zoneB.serviceName)).toEqual(zonePods);
    expect(selected(objs, 'x-pg-ro')).toEqual(['x-pg-replica-0', 'x-pg-replica-1']);
    expect(selected(objs, 'x-pg-rw')).toEqual(['x-pg-primary-0']);
  });

  test('its pods stream from the cluster\'s read-write Service with the cluster\'s ConfigMap and Secret', () => {
    const { cluster, objs } = withZoneB();
    const sts = find(objs, 'StatefulSet', 'x-pg-zone-b');
    // The lease sidecar runs no PostgreSQL script.
    for (const c of sts.spec.template.spec.containers.filter((x: any) => x.name !== 'lease')) {
      expect(envValue(c, 'PRIMARY_HOST').value).toBe('x-pg-rw');
    }
    const volumes = sts.spec.template.spec.volumes;
    expect(volumes.find((v: any) => v.configMap)?.configMap.name).toBe(postgresConfigMap(objs).metadata.name);
    expect(volumes.find((v: any) => v.secret)?.secret.secretName).toBe(cluster.secretName);
  });

  test('its pods\' application names (and slots) are in the quorum list when synchronous', () => {
    const { objs } = withZoneB(ReplicationMode.synchronousQuorum(1));
    const names = postgresqlConf(objs).synchronous_standby_names;
    const m = /^ANY 1 \((.*)\)$/.exec(names);
    expect(m).not.toBeNull();
    const listed = m![1].split(',').map((s) => s.trim().replace(/^"|"$/g, ''));
    expect(listed).toEqual(expect.arrayContaining(zonePods));
    // Each member's slot (created by the primary's agent from the members list) is distinct.
    const members = postgresConfigMap(objs).data.members.trim().split('\n');
    expect(members).toEqual(expect.arrayContaining(zonePods));
    const slots = members.map(slotNameForPod);
    expect(new Set(slots).size).toBe(members.length);
  });

  test('the max_wal_senders and max_replication_slots headroom counts its pods', () => {
    const chart = Testing.chart();
    const cluster = new FerretDBCluster(chart, 'db', { name: 'x', replicas: 10 });
    new StreamingReplica(chart, 'ZoneB', { primary: cluster.primary, replicas: 10, name: 'x-pg-zone-b' });
    const conf = postgresqlConf(Testing.synth(chart));
    expect(Number(conf.max_wal_senders)).toBeGreaterThan(21);
    expect(Number(conf.max_replication_slots)).toBeGreaterThan(21);
  });

  test('the PostgreSQL NetworkPolicy covers its pods', () => {
    const { objs } = withZoneB();
    const np = byKind(objs, 'NetworkPolicy').find((n) => n.spec.ingress.some((r: any) => r.ports.some((p: any) => p.port === 5432)));
    expect(podsSelectedBy(np.spec.podSelector, podTemplates(objs))).toEqual(expect.arrayContaining(zonePods));
  });
});
