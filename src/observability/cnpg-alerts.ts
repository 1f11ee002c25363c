// The alerts of a CloudNativePG cluster (pure renderers, and the PrometheusRule that holds them):
// its backups, its WAL archive and its volumes, from the metrics CloudNativePG's own exporter
// (1.30) and the Barman Cloud plugin (0.14, through that exporter) publish.
import { ApiObject, Chart } from 'cdk8s';
import { Construct } from 'constructs';
import type { AlertRule } from './metrics';

/**
 * Metrics the rules read, as the sources name them:
 * - the Barman Cloud plugin's `internal/cnpgi/instance/metrics.go` (its name, with `.` and `-`
 *   made `_`, prefixes each): Unix times of the newest completed and the newest failed base
 *   backup in the ObjectStore's status, 0 while there is none; every instance reports them;
 * - CloudNativePG's default monitoring queries (`pg_stat_archiver`, on the primary only): Unix
 *   times of the last archived and the last failed WAL file, -1 while there is none;
 * - the kubelet's volume statistics.
 */
export const CNPG_ALERT_METRICS = {
  lastBackup: 'barman_cloud_cloudnative_pg_io_last_available_backup_timestamp',
  lastFailedBackup: 'barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp',
  lastArchived: 'cnpg_pg_stat_archiver_last_archived_time',
  lastArchiveFailure: 'cnpg_pg_stat_archiver_last_failed_time',
};

export interface CnpgAlertTargets {
  /** The Cluster's name: its pods are `<name>-<n>`, its PVCs `<name>-<n>` and `<name>-<n>-wal`. */
  readonly clusterName: string;
  /** The chart's namespace, when it has one. */
  readonly namespace?: string;
  /** The backup alerts, when the cluster archives to an object store: the oldest the newest base backup may be. */
  readonly backup?: { readonly maxAgeSeconds: number };
  /** Fraction of a volume in use above which it alerts. */
  readonly volumeUsedFraction: number;
}

/** The alerting rules of a CloudNativePG cluster (prometheus-operator PrometheusRule `spec.groups[].rules`). */
export function cnpgAlertRules(t: CnpgAlertTargets): AlertRule[] {
  const ns = t.namespace !== undefined ? `namespace="${t.namespace}",` : '';
  // Cluster names are DNS labels: nothing in them needs escaping in a regex.
  const pods = `{${ns}pod=~"${t.clusterName}-[0-9]+"}`;
  const pvcs = `{${ns}persistentvolumeclaim=~"${t.clusterName}-[0-9]+(-wal)?"}`;
  const m = CNPG_ALERT_METRICS;
  const rule = (alert: string, expr: string, forDuration: string, severity: string, summary: string, description: string): AlertRule => ({
    alert,
    expr,
    for: forDuration,
    labels: { severity, cnpg_cluster: t.clusterName },
    annotations: { summary, description, runbook: `README "CloudNativePG alerts", ${alert}` },
  });
  const rules: AlertRule[] = [];
  if (t.backup) {
    const hours = Math.round(t.backup.maxAgeSeconds / 360) / 10;
    rules.push(
      // One alert per cluster (every instance reports the same ObjectStore status); no series at
      // all (the plugin's metrics not collected) alerts too: backups would otherwise go unwatched.
      rule('FerretDBPostgresBackupTooOld',
        `(time() - max by (namespace) (${m.lastBackup}${pods}) > ${t.backup.maxAgeSeconds}) or absent(${m.lastBackup}${pods})`,
        '10m', 'warning',
        `No recent base backup of cluster ${t.clusterName}`,
        `The newest completed base backup of ${t.clusterName} is more than ${hours}h old, or there is none: point-in-time recovery needs a base backup and every WAL file since.`),
      rule('FerretDBPostgresBackupFailed',
        `max by (namespace) (${m.lastFailedBackup}${pods}) > max by (namespace) (${m.lastBackup}${pods})`,
        '0m', 'warning',
        `The last base backup of cluster ${t.clusterName} failed`,
        `A base backup of ${t.clusterName} failed after the newest completed one.`),
      rule('FerretDBPostgresWalArchiveFailing',
        `${m.lastArchiveFailure}${pods} > ${m.lastArchived}${pods}`,
        '5m', 'critical',
        `WAL archiving fails on cluster ${t.clusterName}`,
        'The last attempt of {{ $labels.pod }} to archive a WAL file failed and none succeeded since: WAL waiting for the archive stays on its volume until it is full, and point-in-time recovery stops at the last archived file.'),
    );
  }
  rules.push(rule('FerretDBPostgresVolumeNearlyFull',
    `kubelet_volume_stats_used_bytes${pvcs} / kubelet_volume_stats_capacity_bytes${pvcs} > ${t.volumeUsedFraction}`,
    '5m', 'warning',
    `A PostgreSQL volume of cluster ${t.clusterName} is nearly full`,
    `Volume {{ $labels.persistentvolumeclaim }} is more than ${t.volumeUsedFraction * 100}% full.`));
  return rules;
}

/** A PrometheusRule `<clusterName>` with the cluster's alerts. */
export function cnpgPrometheusRule(scope: Construct, id: string, t: Omit<CnpgAlertTargets, 'namespace'>, labels: { [key: string]: string }): ApiObject {
  const targets = { ...t, namespace: Chart.of(scope).namespace };
  return new ApiObject(scope, id, {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: t.clusterName, labels },
    spec: { groups: [{ name: `cnpg-${t.clusterName}`, rules: cnpgAlertRules(targets) }] },
  });
}

/** Fraction of a volume in use above which the PrometheusRule alerts (as on the StatefulSet backend by default). */
export const CNPG_VOLUME_USED_FRACTION = 0.85;
