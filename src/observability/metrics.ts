import { k8s } from 'cdk8s-plus-28';
import { Resources } from '../common';
import type { AlertThresholds } from './monitoring';
import { CONFIG_DIR } from '../backends/statefulset/pod';
import { POSTGRES_PORT } from '../postgres/config';
import { containerSecurityContext, renderResources } from '../private/pod-spec';

/*
 * Pure renderers of the metrics side: the postgres_exporter sidecar, the PodMonitors, the alert
 * rules and the Grafana dashboard. src/monitoring.ts turns them into objects.
 */

/**
 * The pinned postgres_exporter image (0.17.1, which the real-PostgreSQL suite runs from its
 * exporter root). Its args: `--web.listen-address`, `--extend.query-path` (deprecated since 0.13,
 * still read by 0.17; Debian's 0.11 takes it too) and DATA_SOURCE_NAME.
 */
export const DEFAULT_EXPORTER_IMAGE = 'quay.io/prometheuscommunity/postgres-exporter:v0.17.1';
/** Port of the exporter in every PostgreSQL pod (named `metrics`). */
export const EXPORTER_PORT = 9187;
/** The PostgreSQL role the exporter logs in as over the pod's loopback (setup.sql: pg_monitor). */
export const EXPORTER_ROLE = 'postgres_exporter';
/** ConfigMap key (and file in CONFIG_DIR) of the exporter's custom queries. */
export const QUERIES_KEY = 'queries.yaml';
export const DEFAULT_EXPORTER_RESOURCES: Resources = { cpuRequest: '10m', memoryRequest: '32Mi', memoryLimit: '128Mi' };

/**
 * The `metrics` container of every PostgreSQL pod: postgres_exporter over the pod's loopback
 * (127.0.0.1, which only this pod's containers share). It mounts only the ConfigMap: not the run
 * directory (the socket, which pg_hba.conf trusts for every role) nor /tmp (the replication
 * role's pgpass file).
 */
export function exporterContainer(image: string, resources: Resources | undefined): k8s.Container {
  return {
    name: 'metrics',
    image,
    imagePullPolicy: 'IfNotPresent',
    // The image's entrypoint is the exporter; only flags here.
    args: [`--web.listen-address=:${EXPORTER_PORT}`, `--extend.query-path=${CONFIG_DIR}/${QUERIES_KEY}`],
    env: [
      // No password: pg_hba.conf trusts this one role, for the postgres database only, from
      // 127.0.0.1 only (the pod's own network namespace). The role has pg_monitor and nothing else.
      { name: 'DATA_SOURCE_NAME', value: `host=127.0.0.1 port=${POSTGRES_PORT} user=${EXPORTER_ROLE} dbname=postgres sslmode=disable` },
    ],
    ports: [{ name: 'metrics', containerPort: EXPORTER_PORT, protocol: 'TCP' }],
    volumeMounts: [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }],
    resources: renderResources(resources, DEFAULT_EXPORTER_RESOURCES),
    securityContext: containerSecurityContext(),
    // No readiness probe: the pod's readiness (and so the Services) must not depend on the exporter.
    livenessProbe: { httpGet: { path: '/', port: k8s.IntOrString.fromString('metrics') }, periodSeconds: 30, timeoutSeconds: 5, failureThreshold: 3 },
  };
}

/** A PodMonitor spec: pods with these labels, their port `metrics` at `path`. */
export function podMonitorSpec(matchLabels: { [key: string]: string }, path: string): any {
  return {
    selector: { matchLabels },
    podMetricsEndpoints: [{ port: 'metrics', path, interval: '30s' }],
  };
}

/** What the alert rules of one cluster select. */
export interface AlertTargets {
  readonly clusterName: string;
  /** Every PostgreSQL pod of the cluster. */
  readonly postgresPods: string[];
  /** The FerretDB Deployments (their pods are `<name>-<hash>-<suffix>`). */
  readonly ferretdbDeployments: string[];
  /** The chart's namespace, when it has one. */
  readonly namespace?: string;
  /** The bytes of replay lag above which a standby leaves the read Service. */
  readonly maxReplicationLagBytes: number;
  readonly thresholds: Required<AlertThresholds>;
}

export interface AlertRule {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: { [key: string]: string };
  readonly annotations: { [key: string]: string };
}

/** PromQL label matchers, e.g. `namespace="orders",pod=~"a|b"`. */
function matchers(t: AlertTargets, label: string, regex: string): string {
  const ns = t.namespace !== undefined ? `namespace="${t.namespace}",` : '';
  return `{${ns}${label}=~"${regex}"}`;
}

/** The alerting rules of one cluster (prometheus-operator PrometheusRule `spec.groups[].rules`). */
export function alertRules(t: AlertTargets): AlertRule[] {
  // Pod and Deployment names are DNS labels: nothing in them needs escaping in a regex.
  const pods = t.postgresPods.join('|');
  const pg = matchers(t, 'pod', `(${pods})`);
  const pvc = matchers(t, 'persistentvolumeclaim', `data-(${pods})`);
  const th = t.thresholds;
  const rule = (alert: string, expr: string, forDuration: string, severity: string, summary: string, description: string,
    labels: { [key: string]: string } = {}): AlertRule => ({
    alert,
    expr,
    for: forDuration,
    labels: { severity, ferretdb_cluster: t.clusterName, ...labels },
    annotations: { summary, description, runbook: `README "Metrics and alerts", ${alert}` },
  });
  const rules = [
    rule('FerretDBPostgresNoPrimary', `absent(fdb_pg_server_in_recovery${pg} == 0)`, '1m', 'critical',
      `No writable PostgreSQL primary in cluster ${t.clusterName}`,
      'No PostgreSQL pod of the cluster reports pg_is_in_recovery() = false: writes fail.'),
    rule('FerretDBPostgresMultiplePrimaries', `count(fdb_pg_server_in_recovery${pg} == 0) > 1`, '1m', 'critical',
      `More than one writable PostgreSQL primary in cluster ${t.clusterName}`,
      '{{ $value }} PostgreSQL pods accept writes at once (split brain).'),
    rule('FerretDBPostgresStandbyNotStreaming',
      `(fdb_pg_wal_receiver_streaming${pg} == 0) or (fdb_pg_slot_active${pg} == 0)`, '5m', 'warning',
      `A standby of cluster ${t.clusterName} does not stream WAL`,
      'Standby {{ $labels.pod }}{{ $labels.slot }} has not streamed from the primary for 5 minutes; its slot retains WAL meanwhile.'),
    rule('FerretDBPostgresReplicationLag',
      `(fdb_pg_replication_replay_lag_seconds${pg} > ${th.replayLagSeconds}) or (fdb_pg_replication_replay_lag_bytes${pg} > ${t.maxReplicationLagBytes})`,
      '5m', 'warning',
      `Standby replay lag above its bound in cluster ${t.clusterName}`,
      `Standby {{ $labels.standby }} replays more than ${th.replayLagSeconds}s or ${t.maxReplicationLagBytes} bytes behind the primary (value {{ $value }}).`),
    rule('FerretDBPostgresSlotRetainingWal',
      `fdb_pg_slot_retained_bytes${pg} > on(namespace, pod) group_left() (${th.slotRetainedWalFraction} * (fdb_pg_server_max_slot_wal_keep_size_bytes${pg} > 0))`,
      '5m', 'warning',
      `A replication slot nears max_slot_wal_keep_size in cluster ${t.clusterName}`,
      `Slot {{ $labels.slot }} retains more than ${th.slotRetainedWalFraction} of max_slot_wal_keep_size; at 1 it is invalidated and its standby re-clones.`),
    rule('FerretDBPostgresSlotLost', `fdb_pg_slot_status_info{${pg.slice(1, -1)},wal_status=~"lost|unreserved"} == 1`, '0m', 'critical',
      `A replication slot lost its WAL in cluster ${t.clusterName}`,
      'Slot {{ $labels.slot }} is {{ $labels.wal_status }}: its standby can no longer stream and must re-clone.'),
    rule('FerretDBPostgresStandbyCloning', `fdb_pg_basebackup_running${pg} == 1`, '1m', 'warning',
      `A standby of cluster ${t.clusterName} is cloning from the primary`,
      'Standby {{ $labels.standby }} copies the whole database with pg_basebackup (a new or wiped volume, or a re-clone after its slot was lost).'),
    rule('FerretDBClusterIdentityNotRecorded',
      `(fdb_pg_cluster_identity_recorded${pg} == 0) or (fdb_pg_cluster_identity_state_age_seconds${pg} > 120)`, '10m', 'warning',
      `Cluster ${t.clusterName} runs without its recorded identity`,
      'The state ConfigMap does not record the system identifier of {{ $labels.pod }}, or its state sidecar has not read the ConfigMap for 2 minutes: a lost primary volume would not be recognised, and its next start would initialise an empty database.'),
    rule('FerretDBPostgresVolumeNearlyFull',
      `kubelet_volume_stats_used_bytes${pvc} / kubelet_volume_stats_capacity_bytes${pvc} > ${th.volumeUsedFraction}`, '5m', 'warning',
      `A PostgreSQL volume of cluster ${t.clusterName} is nearly full`,
      `Volume {{ $labels.persistentvolumeclaim }} is more than ${th.volumeUsedFraction * 100}% full.`),
  ];
  for (const deployment of t.ferretdbDeployments) {
    rules.push(rule('FerretDBDown', `absent(up${matchers(t, 'pod', `${deployment}-[a-z0-9]+-[a-z0-9]+`)} == 1)`, '2m', 'critical',
      `No FerretDB pod of ${deployment} is up`,
      `No pod of the Deployment ${deployment} answers its metrics scrape: MongoDB clients of that side get no answer.`,
      { deployment }));
  }
  return rules;
}
