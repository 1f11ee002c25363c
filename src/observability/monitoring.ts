import { Resources } from '../common';

/** The postgres_exporter sidecar of the PostgreSQL pods. */
export interface PostgresExporter {
  /**
   * postgres_exporter image (it must accept `--extend.query-path` and DATA_SOURCE_NAME).
   *
   * @default "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
   */
  readonly image?: string;
  /**
   * @default - requests 10m CPU and 32Mi memory, memory limit 128Mi
   */
  readonly resources?: Resources;
}

/** Bounds of the alerts in the PrometheusRule. */
export interface AlertThresholds {
  /**
   * Seconds of replay lag (pg_stat_replication.replay_lag) above which a standby alerts.
   * A standby also alerts when it trails by more than `maxReplicationLag` bytes, the bound
   * above which it leaves the read Service.
   *
   * @default 60
   */
  readonly replayLagSeconds?: number;
  /**
   * Fraction of `max_slot_wal_keep_size` a slot may retain before it alerts (the slot is
   * invalidated, and its standby must re-clone, at 1).
   *
   * @default 0.8
   */
  readonly slotRetainedWalFraction?: number;
  /**
   * Fraction of a PostgreSQL volume in use above which it alerts.
   *
   * @default 0.85
   */
  readonly volumeUsedFraction?: number;
}

/**
 * Metrics and alerts of a FerretDBCluster. Setting it adds the postgres_exporter sidecar to every
 * PostgreSQL pod; the prometheus-operator objects and the dashboard are opt-in, because applying
 * them needs the prometheus-operator CRDs (and a Grafana with its dashboard sidecar).
 */
export interface MonitoringOptions {
  /**
   * postgres_exporter image of the `metrics` sidecar.
   *
   * @default "quay.io/prometheuscommunity/postgres-exporter:v0.17.1"
   */
  readonly exporterImage?: string;
  /**
   * @default - requests 10m CPU and 32Mi memory, memory limit 128Mi
   */
  readonly exporterResources?: Resources;
  /**
   * Two prometheus-operator PodMonitors: `<name>-postgresql` (the exporters, port 9187) and
   * `<name>-ferretdb` (FerretDB's /debug/metrics, port 8088).
   *
   * @default false
   */
  readonly podMonitor?: boolean;
  /**
   * A prometheus-operator PrometheusRule `<name>` with the alerts the README lists. With
   * `PostgresBackend.cloudNativePG()`, the CloudNativePG cluster's PrometheusRule `<name>-pg`
   * instead (CloudNativePGOptions.prometheusRule).
   *
   * @default false
   */
  readonly prometheusRule?: boolean;
  /**
   * @default - see AlertThresholds
   */
  readonly alertThresholds?: AlertThresholds;
  /**
   * A Grafana dashboard in the ConfigMap `<name>-dashboard`, labelled `grafana_dashboard: "1"`
   * for Grafana's dashboard sidecar.
   *
   * @default false
   */
  readonly dashboard?: boolean;
  /**
   * Extra labels of the PodMonitors (on both backends), the PrometheusRule and the dashboard
   * ConfigMap (for example the label your Prometheus selects rules by, such as
   * `release: kube-prometheus-stack`).
   *
   * @default - none
   */
  readonly labels?: { [key: string]: string };
}
