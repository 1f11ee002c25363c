import { AlertTargets } from './metrics';

/*
 * The Grafana dashboard of one cluster (pure: JSON in, JSON out).
 *
 * PostgreSQL panels read the exporter's custom queries (assets/observability/queries.yaml). FerretDB
 * panels read what FerretDB 2.7 exposes on /debug/metrics (checked against the real binary by
 * test/e2e/mongodb.test.ts): client connections accepted (`ferretdb_client_accepts_total`) and
 * its PostgreSQL pool (`ferretdb_pool_acquired`, `ferretdb_pool_max_size`,
 * `ferretdb_pool_acquires_empty_total`). FerretDB 2.7 has no per-command request or error
 * counters.
 */

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly targets: { expr: string; legend: string }[];
}

/** The dashboard model (Grafana schema 39), with a Prometheus data source variable. */
export function grafanaDashboard(t: AlertTargets): any {
  const ns = t.namespace !== undefined ? `namespace="${t.namespace}",` : '';
  const pg = `{${ns}pod=~"(${t.postgresPods.join('|')})"}`;
  const fdb = (extra = '') => `{${ns}pod=~"(${t.ferretdbDeployments.join('|')})-[a-z0-9]+-[a-z0-9]+"${extra}}`;
  const panels: Panel[] = [
    {
      title: 'WAL rate (written on the primary, replayed on standbys)',
      unit: 'Bps',
      targets: [
        { expr: `rate(fdb_pg_server_wal_position_bytes${pg}[5m])`, legend: '{{pod}}' },
      ],
    },
    {
      title: 'Replay lag per standby (bytes)',
      unit: 'bytes',
      targets: [
        { expr: `fdb_pg_replication_replay_lag_bytes${pg}`, legend: '{{standby}}' },
      ],
    },
    {
      title: 'Replay lag per standby (seconds)',
      unit: 's',
      targets: [
        { expr: `fdb_pg_replication_replay_lag_seconds${pg}`, legend: '{{standby}}' },
      ],
    },
    {
      title: 'WAL retained per slot',
      unit: 'bytes',
      targets: [
        { expr: `fdb_pg_slot_retained_bytes${pg}`, legend: '{{slot}}' },
        { expr: `fdb_pg_server_max_slot_wal_keep_size_bytes${pg} > 0`, legend: 'max_slot_wal_keep_size ({{pod}})' },
      ],
    },
    {
      title: 'WAL directory size',
      unit: 'bytes',
      targets: [
        { expr: `fdb_pg_server_wal_directory_bytes${pg}`, legend: '{{pod}}' },
      ],
    },
    {
      title: 'PostgreSQL connections',
      unit: 'short',
      targets: [
        { expr: `fdb_pg_server_connections${pg}`, legend: '{{pod}}' },
        { expr: `max(fdb_pg_server_max_connections${pg})`, legend: 'max_connections' },
      ],
    },
    {
      title: 'FerretDB client connections accepted',
      unit: 'cps',
      targets: [
        { expr: `sum by (pod) (rate(ferretdb_client_accepts_total${fdb()}[5m]))`, legend: '{{pod}}' },
      ],
    },
    {
      title: 'FerretDB PostgreSQL pool',
      unit: 'short',
      targets: [
        { expr: `sum by (pod) (ferretdb_pool_acquired${fdb()})`, legend: '{{pod}} in use' },
        { expr: `max(ferretdb_pool_max_size${fdb()})`, legend: 'pool_max_conns' },
      ],
    },
    {
      title: 'FerretDB waits for a PostgreSQL connection (pool empty)',
      unit: 'ops',
      targets: [
        { expr: `sum by (pod) (rate(ferretdb_pool_acquires_empty_total${fdb()}[5m]))`, legend: '{{pod}}' },
      ],
    },
  ];
  return {
    title: `FerretDB ${t.clusterName}`,
    uid: `ferretdb-${t.clusterName}`.slice(0, 40),
    schemaVersion: 39,
    editable: true,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    tags: ['ferretdb', 'postgresql'],
    templating: {
      list: [{ name: 'datasource', type: 'datasource', query: 'prometheus', label: 'Data source' }],
    },
    panels: panels.map((p, i) => ({
      id: i + 1,
      type: 'timeseries',
      title: p.title,
      datasource: { type: 'prometheus', uid: '${datasource}' },
      gridPos: { h: 8, w: 12, x: (i % 2) * 12, y: Math.floor(i / 2) * 8 },
      fieldConfig: { defaults: { unit: p.unit }, overrides: [] },
      targets: p.targets.map((target, j) => ({
        refId: String.fromCharCode(65 + j),
        datasource: { type: 'prometheus', uid: '${datasource}' },
        expr: target.expr,
        legendFormat: target.legend,
      })),
    })),
  };
}
