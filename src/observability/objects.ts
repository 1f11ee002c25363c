import { ApiObject, Chart, Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';
import { grafanaDashboard } from './dashboard';
import { alertRules, AlertTargets, podMonitorSpec } from './metrics';
import { AlertThresholds, MonitoringOptions } from './monitoring';
import { kube } from '../private/kube';
import { POSTGRES_CLUSTER_LABEL } from '../private/names';
import { invalid } from '../private/validation';

/** What the monitoring objects of one cluster need to know. */
export interface MonitoringTargets {
  readonly name: string;
  /** The StatefulSet backend's PostgreSQL pods (with their exporters); none on CloudNativePG. */
  readonly postgres?: {
    readonly clusterName: string;
    readonly pods: () => string[];
    readonly maxReplicationLagBytes: number;
  };
  readonly ferretdbLabels: { [key: string]: string };
  readonly ferretdbDeployments: string[];
  readonly metadataLabels: (component: string) => { [key: string]: string };
}

/** Checks the thresholds and fills in their defaults. */
export function alertThresholds(given: AlertThresholds = {}): Required<AlertThresholds> {
  const t = { replayLagSeconds: 60, slotRetainedWalFraction: 0.8, volumeUsedFraction: 0.85, ...withoutUndefined(given) };
  if (typeof t.replayLagSeconds !== 'number' || !Number.isInteger(t.replayLagSeconds) || t.replayLagSeconds < 1 || t.replayLagSeconds > 86400) {
    throw invalid('monitoring.alertThresholds.replayLagSeconds', t.replayLagSeconds, 'an integer from 1 to 86400');
  }
  for (const key of ['slotRetainedWalFraction', 'volumeUsedFraction'] as const) {
    const v = t[key];
    if (typeof v !== 'number' || !(v > 0 && v < 1)) throw invalid(`monitoring.alertThresholds.${key}`, v, 'a fraction above 0 and below 1');
  }
  return t;
}

function withoutUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The opt-in monitoring objects of a cluster: PodMonitors, PrometheusRule, dashboard ConfigMap. */
export function monitoringObjects(scope: Construct, options: MonitoringOptions, t: MonitoringTargets): void {
  const thresholds = alertThresholds(options.alertThresholds);
  const labels = (component: string) => ({ ...options.labels, ...t.metadataLabels(component) });
  const monitor = (id: string, name: string, matchLabels: { [key: string]: string }, path: string) => new ApiObject(scope, id, {
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PodMonitor',
    metadata: { name, labels: labels('metrics') },
    spec: podMonitorSpec(matchLabels, path),
  });
  if (options.podMonitor) {
    monitor('FerretDBPodMonitor', `${t.name}-ferretdb`, t.ferretdbLabels, '/debug/metrics');
  }
  const pg = t.postgres;
  if (!pg) return; // CloudNativePG: the backend monitors its instances (and rejects the rest).
  if (options.podMonitor) {
    monitor('PostgresPodMonitor', `${t.name}-postgresql`, { [POSTGRES_CLUSTER_LABEL]: pg.clusterName }, '/metrics');
  }
  const namespace = Chart.of(scope).namespace;
  const targets = (): AlertTargets => ({
    clusterName: t.name,
    postgresPods: pg.pods(),
    ferretdbDeployments: t.ferretdbDeployments,
    namespace,
    maxReplicationLagBytes: pg.maxReplicationLagBytes,
    thresholds,
  });
  if (options.prometheusRule) {
    new ApiObject(scope, 'PrometheusRule', {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'PrometheusRule',
      metadata: { name: t.name, labels: labels('alerts') },
      spec: { groups: [{ name: `ferretdb-${t.name}`, rules: Lazy.any({ produce: () => alertRules(targets()) }) }] },
    });
  }
  if (options.dashboard) {
    kube(k8s.KubeConfigMap, scope, 'Dashboard', {
      metadata: { name: `${t.name}-dashboard`, labels: { ...labels('dashboard'), grafana_dashboard: '1' } },
      data: Lazy.any({ produce: () => ({ [`${t.name}.json`]: JSON.stringify(grafanaDashboard(targets()), undefined, 2) + '\n' }) }) as any,
    });
  }
}
