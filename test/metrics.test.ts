import * as fs from 'fs';
import * as path from 'path';
import { Chart, Testing } from 'cdk8s';
import { parse } from 'yaml';
import { validateCustomResource } from './crd-schema';
import { byKind, find, podTemplates, postgresConfigMap, selectorMatches, synth, validateAll } from './util';
import { FerretDBCluster, MonitoringOptions, PostgresPrimary, PostgresTls } from '../src';

const QUERIES = path.join(__dirname, '..', 'assets', 'observability', 'queries.yaml');
const SCRAPERS = [{ podSelector: { matchLabels: { app: 'prometheus' } } }];
const ALL: MonitoringOptions = { podMonitor: true, prometheusRule: true, dashboard: true };
const CRD_KINDS = ['PodMonitor', 'PrometheusRule'];

const postgresStatefulSets = (objs: any[]) => byKind(objs, 'StatefulSet');
const metricsContainer = (sts: any) => sts.spec.template.spec.containers.find((c: any) => c.name === 'metrics');
const env = (c: any, name: string) => c.env.find((e: any) => e.name === name)?.value;

/** Metric names the exporter's custom queries define: `<query>_<column>` for every non-label column. */
function definedMetrics(): Set<string> {
  const queries = parse(fs.readFileSync(QUERIES, 'utf8'));
  const names = new Set<string>();
  for (const [prefix, q] of Object.entries<any>(queries)) {
    for (const m of q.metrics) {
      const [column, spec] = Object.entries<any>(m)[0];
      if (spec.usage !== 'LABEL') names.add(`${prefix}_${column}`);
    }
  }
  return names;
}

/** Metric names a PromQL expression reads (identifiers followed by a selector or a range). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/([a-z_][a-z0-9_]*)\{/g)].map((m) => m[1]).filter((n) => !['by', 'on'].includes(n));
}

describe('defaults: no exporter and no monitoring objects', () => {
  const objs = synth({ metricsScrapers: SCRAPERS });

  test('no PostgreSQL pod has a metrics container and the ConfigMap ships no queries', () => {
    for (const sts of postgresStatefulSets(objs)) expect(metricsContainer(sts)).toBeUndefined();
    expect(postgresConfigMap(objs).data['queries.yaml']).toBeUndefined();
  });

  test('no PodMonitor, PrometheusRule or dashboard ConfigMap', () => {
    expect(objs.filter((o) => CRD_KINDS.includes(o.kind))).toEqual([]);
    expect(byKind(objs, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard)).toEqual([]);
  });

  test('monitoring: {} adds the exporter only: no prometheus-operator object, no dashboard', () => {
    const monitored = synth({ monitoring: {} });
    for (const sts of postgresStatefulSets(monitored)) expect(metricsContainer(sts)).toBeDefined();
    expect(monitored.filter((o) => CRD_KINDS.includes(o.kind))).toEqual([]);
    expect(byKind(monitored, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard)).toEqual([]);
  });

  test('the PostgreSQL NetworkPolicy opens only 5432 without monitoring, even with metricsScrapers', () => {
    const policy = find(objs, 'NetworkPolicy', 'x-pg-primary-postgresql');
    expect(policy.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toEqual([5432]);
  });
});

describe('the exporter sidecar', () => {
  const objs = synth({ monitoring: {}, replicas: 2 });

  test('runs in every PostgreSQL pod (primary and replicas)', () => {
    const sets = postgresStatefulSets(objs);
    expect(sets.map((s) => s.metadata.name).sort()).toEqual(['x-pg-primary', 'x-pg-replica']);
    for (const sts of sets) expect(metricsContainer(sts)).toBeDefined();
  });

  test('is a pinned image, non-root (uid 999 from the pod), restricted, with requests and a memory limit', () => {
    for (const sts of postgresStatefulSets(objs)) {
      const c = metricsContainer(sts);
      expect(c.image).toBe('quay.io/prometheuscommunity/postgres-exporter:v0.17.1');
      const pod = sts.spec.template.spec.securityContext;
      expect(pod).toMatchObject({ runAsNonRoot: true, runAsUser: 999, runAsGroup: 999 });
      expect(c.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        readOnlyRootFilesystem: true,
        runAsNonRoot: true,
        privileged: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
      expect(c.resources.requests).toEqual({ cpu: '10m', memory: '32Mi' });
      expect(c.resources.limits).toEqual({ memory: '128Mi' });
    }
  });

  test('serves port 9187 named metrics and has no readiness probe (pod readiness never depends on it)', () => {
    const c = metricsContainer(postgresStatefulSets(objs)[0]);
    expect(c.ports).toEqual([{ name: 'metrics', containerPort: 9187, protocol: 'TCP' }]);
    expect(c.readinessProbe).toBeUndefined();
    expect(c.livenessProbe.httpGet.port).toBe('metrics');
  });

  test('connects over the pod\'s loopback as postgres_exporter, with no password anywhere', () => {
    const c = metricsContainer(postgresStatefulSets(objs)[0]);
    expect(c.env.map((e: any) => e.name)).toEqual(['DATA_SOURCE_NAME']);
    expect(env(c, 'DATA_SOURCE_NAME')).toBe('host=127.0.0.1 port=5432 user=postgres_exporter dbname=postgres sslmode=disable');
    expect(JSON.stringify(c)).not.toMatch(/password|secretKeyRef/i);
    expect(c.volumeMounts).toEqual([{ name: 'config', mountPath: '/etc/ferretdb-postgres', readOnly: true }]);
  });

  test('mounts neither the socket\'s run directory nor any volume holding a pgpass file or the Secret', () => {
    for (const sts of postgresStatefulSets(objs)) {
      const spec = sts.spec.template.spec;
      const postgres = spec.containers.find((x: any) => x.name === 'postgres');
      const envOf = (name: string) => postgres.env.find((e: any) => e.name === name)?.value;
      const volumeAt = (dir: string) => postgres.volumeMounts.find((m: any) => m.mountPath === dir).name;
      // The volumes behind the socket, the pgpass file (lib.sh: PGPASSFILE=/tmp/.pgpass) and the Secret.
      const guarded = [volumeAt(envOf('RUN_DIR')), volumeAt('/tmp'), volumeAt(envOf('SECRET_DIR'))];
      expect(guarded).toEqual(['run', 'tmp', 'credentials']);
      expect(metricsContainer(sts).volumeMounts.map((m: any) => m.name).filter((v: string) => guarded.includes(v))).toEqual([]);
    }
  });

  test('only the PostgreSQL image\'s containers mount the run directory (the socket pg_hba.conf trusts)', () => {
    for (const sts of postgresStatefulSets(objs)) {
      const spec = sts.spec.template.spec;
      const image = spec.containers.find((x: any) => x.name === 'postgres').image;
      const mounting = spec.containers.filter((x: any) => x.volumeMounts?.some((m: any) => m.name === 'run'));
      expect(mounting.map((x: any) => `${x.name} ${x.image}`)).toEqual([`postgres ${image}`, `agent ${image}`]);
      expect(spec.initContainers).toBeUndefined();
    }
  });

  test('pg_hba.conf trusts postgres_exporter only, to the postgres database only, from 127.0.0.1 only; without monitoring not at all', () => {
    const rulesOf = (o: any[]) => postgresConfigMap(o).data['pg_hba.conf'].split('\n').filter((l: string) => l !== '' && !l.startsWith('#'))
      .map((l: string) => l.trim().split(/\s+/));
    const trusted = (o: any[]) => rulesOf(o).filter((r: string[]) => r[r.length - 1] === 'trust');
    expect(trusted(objs)).toEqual([['local', 'postgres', 'all', 'trust'], ['host', 'postgres', 'postgres_exporter', '127.0.0.1/32', 'trust']]);
    expect(trusted(synth())).toEqual([['local', 'postgres', 'all', 'trust']]);
    // With postgresTls the exporter (sslmode=disable) is let in before plain-text connections are rejected.
    const tls = rulesOf(synth({ monitoring: {}, postgresTls: PostgresTls.fromSecret('x-pg-tls') }));
    const at = (pred: (r: string[]) => boolean) => tls.findIndex(pred);
    expect(at((r) => r[2] === 'postgres_exporter')).toBeGreaterThan(-1);
    expect(at((r) => r[2] === 'postgres_exporter')).toBeLessThan(at((r) => r[0] === 'hostnossl'));
    expect(tls.filter((r: string[]) => r[2] === 'postgres_exporter' || r[r.length - 1] === 'trust')).toHaveLength(2);
  });

  test('passes only flags that postgres_exporter 0.17 (the image, which the e2e suite runs) and 0.11 both accept', () => {
    const c = metricsContainer(postgresStatefulSets(objs)[0]);
    expect(c.command).toBeUndefined();
    expect(c.args).toEqual(['--web.listen-address=:9187', '--extend.query-path=/etc/ferretdb-postgres/queries.yaml']);
  });

  test('reads assets/observability/queries.yaml, shipped unchanged in the ConfigMap it mounts', () => {
    expect(postgresConfigMap(objs).data['queries.yaml']).toEqual(fs.readFileSync(QUERIES, 'utf8'));
  });

  test('image and resources can be set', () => {
    const custom = synth({ monitoring: { exporterImage: 'registry.example.com/pe:v1', exporterResources: { memoryLimit: '256Mi' } } });
    const c = metricsContainer(postgresStatefulSets(custom)[0]);
    expect(c.image).toBe('registry.example.com/pe:v1');
    expect(c.resources.limits).toEqual({ memory: '256Mi' });
  });

  test('the custom queries define every metric the alerts and the dashboard read', () => {
    const defined = definedMetrics();
    const external = ['up', 'kubelet_volume_stats_used_bytes', 'kubelet_volume_stats_capacity_bytes',
      'ferretdb_client_accepts_total', 'ferretdb_pool_acquired', 'ferretdb_pool_max_size', 'ferretdb_pool_acquires_empty_total'];
    const all = synth({ monitoring: ALL });
    const rules = find(all, 'PrometheusRule', 'x').spec.groups[0].rules;
    const dashboard = JSON.parse(find(all, 'ConfigMap', 'x-dashboard').data['x.json']);
    const exprs = [...rules.map((r: any) => r.expr), ...dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr))];
    const used = new Set(exprs.flatMap(metricsIn));
    expect(used.size).toBeGreaterThan(10);
    for (const name of used) expect({ name, known: defined.has(name) || external.includes(name) }).toEqual({ name, known: true });
  });
});

describe('NetworkPolicy', () => {
  test('with monitoring and metricsScrapers, only the scrapers reach 9187 on the PostgreSQL pods', () => {
    const objs = synth({ monitoring: {}, metricsScrapers: SCRAPERS });
    const policy = find(objs, 'NetworkPolicy', 'x-pg-primary-postgresql');
    const rules = policy.spec.ingress.filter((r: any) => r.ports.some((p: any) => p.port === 9187));
    expect(rules).toEqual([{ from: SCRAPERS, ports: [{ protocol: 'TCP', port: 9187 }] }]);
    // The 5432 rule is unchanged and does not admit the scrapers.
    const pg = policy.spec.ingress.find((r: any) => r.ports.some((p: any) => p.port === 5432));
    expect(pg.ports).toEqual([{ protocol: 'TCP', port: 5432 }]);
    expect(pg.from).not.toContainEqual(SCRAPERS[0]);
    // The policy covers every PostgreSQL pod.
    const pgPods = podTemplates(objs).filter((p) => p.kind === 'StatefulSet');
    for (const pod of pgPods) expect(selectorMatches(policy.spec.podSelector, pod.labels)).toBe(true);
  });

  test('with monitoring and no metricsScrapers, nobody reaches 9187', () => {
    const policy = find(synth({ monitoring: {} }), 'NetworkPolicy', 'x-pg-primary-postgresql');
    expect(policy.spec.ingress.flatMap((r: any) => r.ports.map((p: any) => p.port))).toEqual([5432]);
  });
});

describe('prometheus-operator objects and the dashboard', () => {
  const objs = synth({ monitoring: { ...ALL, labels: { release: 'kube-prometheus-stack' } }, replicas: 2 });

  test('every object validates: core kinds against Kubernetes, PodMonitor and PrometheusRule against their CRDs', () => {
    expect(() => validateAll(objs.filter((o) => !CRD_KINDS.includes(o.kind)))).not.toThrow();
    const custom = objs.filter((o) => CRD_KINDS.includes(o.kind));
    expect(custom.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(['PodMonitor/x-ferretdb', 'PodMonitor/x-postgresql', 'PrometheusRule/x']);
    for (const o of custom) expect(() => validateCustomResource(o)).not.toThrow();
  });

  test('the CRD validation rejects an unknown field, a wrong type and a missing required field', () => {
    const monitor = JSON.parse(JSON.stringify(find(objs, 'PodMonitor', 'x-postgresql')));
    monitor.spec.podMetricsEndpoints[0].portName = 'metrics';
    expect(() => validateCustomResource(monitor)).toThrow(/must NOT have additional properties.*portName/);
    const rule = JSON.parse(JSON.stringify(find(objs, 'PrometheusRule', 'x')));
    rule.spec.groups[0].rules[0].for = 60;
    expect(() => validateCustomResource(rule)).toThrow(/for must be string/);
    delete rule.spec.groups[0].name;
    expect(() => validateCustomResource(rule)).toThrow(/must have required property 'name'/);
  });

  test('the PodMonitors select the PostgreSQL pods (9187, /metrics) and the FerretDB pods (8088, /debug/metrics)', () => {
    const pods = podTemplates(objs);
    const pg = find(objs, 'PodMonitor', 'x-postgresql');
    const fdb = find(objs, 'PodMonitor', 'x-ferretdb');
    expect(pg.spec.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/metrics', interval: '30s' }]);
    expect(fdb.spec.podMetricsEndpoints).toEqual([{ port: 'metrics', path: '/debug/metrics', interval: '30s' }]);
    expect(pods.filter((p) => selectorMatches(pg.spec.selector, p.labels)).map((p) => p.id).sort())
      .toEqual(['x-pg-primary-0', 'x-pg-replica-0', 'x-pg-replica-1']);
    expect(pods.filter((p) => selectorMatches(fdb.spec.selector, p.labels)).map((p) => p.id).sort())
      .toEqual(['Deployment/x-ferretdb-ro', 'Deployment/x-ferretdb-rw']);
    // The selected pods have a port named metrics: 9187 on PostgreSQL, 8088 on FerretDB.
    for (const o of [...byKind(objs, 'StatefulSet'), ...byKind(objs, 'Deployment')]) {
      const ports = o.spec.template.spec.containers.flatMap((c: any) => c.ports ?? []).filter((p: any) => p.name === 'metrics');
      expect(ports.map((p: any) => p.containerPort)).toEqual([o.kind === 'StatefulSet' ? 9187 : 8088]);
    }
  });

  test('the user labels reach the PodMonitors, the PrometheusRule and the dashboard, which Grafana\'s sidecar loads', () => {
    for (const o of [...objs.filter((x) => CRD_KINDS.includes(x.kind)), find(objs, 'ConfigMap', 'x-dashboard')]) {
      expect(o.metadata.labels.release).toBe('kube-prometheus-stack');
    }
    expect(find(objs, 'ConfigMap', 'x-dashboard').metadata.labels.grafana_dashboard).toBe('1');
  });

  test('the PrometheusRule has one alert per failure the README lists, each with a severity and a runbook line', () => {
    const rules = find(objs, 'PrometheusRule', 'x').spec.groups[0].rules;
    expect([...new Set(rules.map((r: any) => r.alert))]).toEqual([
      'FerretDBPostgresNoPrimary', 'FerretDBPostgresMultiplePrimaries', 'FerretDBPostgresStandbyNotStreaming',
      'FerretDBPostgresReplicationLag', 'FerretDBPostgresSlotRetainingWal', 'FerretDBPostgresSlotLost',
      'FerretDBPostgresStandbyCloning', 'FerretDBClusterIdentityNotRecorded', 'FerretDBPostgresVolumeNearlyFull', 'FerretDBDown',
    ]);
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    for (const r of rules) {
      expect(['warning', 'critical']).toContain(r.labels.severity);
      expect(readme).toContain(`| \`${r.alert}\` |`);
    }
    // One FerretDBDown per Deployment.
    expect(rules.filter((r: any) => r.alert === 'FerretDBDown').map((r: any) => r.expr)).toEqual([
      'absent(up{pod=~"x-ferretdb-rw-[a-z0-9]+-[a-z0-9]+"} == 1)',
      'absent(up{pod=~"x-ferretdb-ro-[a-z0-9]+-[a-z0-9]+"} == 1)',
    ]);
  });

  test('alerts select exactly this cluster\'s PostgreSQL pods, in the chart\'s namespace when it has one', () => {
    const withNs = new Chart(Testing.app(), 'c', { namespace: 'orders' });
    new FerretDBCluster(withNs, 'db', { name: 'x', replicas: 1, monitoring: ALL });
    const rules = find(Testing.synth(withNs), 'PrometheusRule', 'x').spec.groups[0].rules;
    expect(rules[0].expr).toBe('absent(fdb_pg_server_in_recovery{namespace="orders",pod=~"(x-pg-primary-0|x-pg-replica-0)"} == 0)');
    const plain = find(objs, 'PrometheusRule', 'x').spec.groups[0].rules;
    expect(plain[0].expr).toBe('absent(fdb_pg_server_in_recovery{pod=~"(x-pg-primary-0|x-pg-replica-0|x-pg-replica-1)"} == 0)');
  });

  test('thresholds reach the expressions; the replay bound in bytes is maxReplicationLag', () => {
    const custom = synth({
      maxReplicationLag: '128MB',
      monitoring: { prometheusRule: true, alertThresholds: { replayLagSeconds: 120, slotRetainedWalFraction: 0.5, volumeUsedFraction: 0.9 } },
    });
    const exprs = Object.fromEntries(find(custom, 'PrometheusRule', 'x').spec.groups[0].rules.map((r: any) => [r.alert, r.expr]));
    expect(exprs.FerretDBPostgresReplicationLag).toContain('> 120)');
    expect(exprs.FerretDBPostgresReplicationLag).toContain(`> ${128 * 2 ** 20})`);
    expect(exprs.FerretDBPostgresSlotRetainingWal).toContain('(0.5 * ');
    expect(exprs.FerretDBPostgresVolumeNearlyFull).toMatch(/> 0\.9$/);
  });

  test('the dashboard covers write rate, lag per standby, retained WAL per slot, connections, FerretDB connections and its PostgreSQL pool', () => {
    const dashboard = JSON.parse(find(objs, 'ConfigMap', 'x-dashboard').data['x.json']);
    const exprs = dashboard.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr)).join('\n');
    for (const needle of ['rate(fdb_pg_server_wal_position_bytes', 'fdb_pg_replication_replay_lag_bytes', 'fdb_pg_slot_retained_bytes',
      'fdb_pg_server_connections', 'rate(ferretdb_client_accepts_total{pod=~"(x-ferretdb-rw|x-ferretdb-ro)-[a-z0-9]+-[a-z0-9]+"}',
      'ferretdb_pool_acquired', 'ferretdb_pool_max_size', 'rate(ferretdb_pool_acquires_empty_total']) {
      expect(exprs).toContain(needle);
    }
    expect(new Set(dashboard.panels.map((p: any) => p.id)).size).toBe(dashboard.panels.length);
  });
});

describe('bad input is a synth-time error naming the prop and the value', () => {
  test.each([
    ['monitoring.exporterImage', { exporterImage: 'Not An Image' }, /Invalid monitoring.exporterImage: "Not An Image"/],
    ['monitoring.exporterResources', { exporterResources: { memoryLimit: 'lots' } }, /Invalid monitoring.exporterResources.memoryLimit: "lots"/],
    ['replayLagSeconds', { alertThresholds: { replayLagSeconds: 0 } }, /Invalid monitoring.alertThresholds.replayLagSeconds: 0/],
    ['slotRetainedWalFraction', { alertThresholds: { slotRetainedWalFraction: 1.5 } }, /Invalid monitoring.alertThresholds.slotRetainedWalFraction: 1.5/],
    ['volumeUsedFraction', { alertThresholds: { volumeUsedFraction: 0 } }, /Invalid monitoring.alertThresholds.volumeUsedFraction: 0/],
  ])('%s', (_what, monitoring, error) => {
    expect(() => synth({ monitoring: { prometheusRule: true, ...monitoring } as MonitoringOptions })).toThrow(error);
  });

  test('the exporter\'s role name is not available to the other roles', () => {
    expect(() => new PostgresPrimary(Testing.chart(), 'pg', { ferretdbUser: 'postgres_exporter' })).toThrow(/Invalid ferretdbUser: "postgres_exporter"/);
  });
});
