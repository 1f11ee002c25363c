/**
 * The CloudNativePG cluster's PrometheusRule through the real promtool (Debian's `prometheus`
 * package), as test/alerts.test.ts does for the StatefulSet backend's: `promtool check rules` on
 * the groups as synthesized, and `promtool test rules` with series named as CloudNativePG 1.30's
 * exporter and the Barman Cloud plugin 0.14 publish them (see src/observability/cnpg-alerts.ts).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Chart, Duration, Testing } from 'cdk8s';
import { stringify } from 'yaml';
import { CloudNativePGCluster, CloudNativePGClusterProps } from '../src';
import { validateCustomResource } from './crd-schema';
import { promtool, PromtoolResult, runPromtoolTests as promtoolTests, seriesList as series } from './promtool';
import { byKind, errorOf, find } from './util';

const HOUR = 3600;
const PRIMARY = 'x-pg-1';
const STANDBY = 'x-pg-2';
const CLUSTER = { cnpg_cluster: 'x-pg' };
const STORE = { destinationPath: 's3://backups/ferretdb', credentialsSecret: 'minio' };
const BACKUP = 'barman_cloud_cloudnative_pg_io_last_available_backup_timestamp';
const FAILED_BACKUP = 'barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp';
const ARCHIVED = 'cnpg_pg_stat_archiver_last_archived_time';
const ARCHIVE_FAILED = 'cnpg_pg_stat_archiver_last_failed_time';
/** Every case is evaluated 30 hours in: time() is then 108000. */
const EVAL = '30h';


function rule(props: Partial<CloudNativePGClusterProps> = {}): any {
  const chart = Testing.chart();
  new CloudNativePGCluster(chart, 'pg', { name: 'x-pg', backup: { objectStore: STORE }, prometheusRule: true, ...props });
  return find(Testing.synth(chart), 'PrometheusRule', 'x-pg');
}

const groups = rule().spec.groups;
const ALERTS: string[] = groups[0].rules.map((r: any) => r.alert);

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-cnpg-alerts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/**
 * A constant series over the 30 hours, sampled every minute (as a scrape would be: with sparser
 * samples, PromQL's 5-minute lookback would leave gaps in which `absent` holds).
 */
const constant = (value: number) => `${value}x1900`;

/** A healthy cluster: a base backup an hour old, none failed, WAL archived a minute ago, volumes half full. */
function healthy(): { [series: string]: string } {
  const s: { [series: string]: string } = {
    [`${ARCHIVED}{pod="${PRIMARY}"}`]: constant(30 * HOUR - 60),
    [`${ARCHIVE_FAILED}{pod="${PRIMARY}"}`]: constant(-1),
    // Another cluster whose name starts like this one's: never selected.
    [`${BACKUP}{pod="x-pg-extra-1"}`]: constant(0),
    [`${ARCHIVE_FAILED}{pod="x-pg-extra-1"}`]: constant(29 * HOUR),
    [`${ARCHIVED}{pod="x-pg-extra-1"}`]: constant(HOUR),
  };
  for (const pod of [PRIMARY, STANDBY]) {
    s[`${BACKUP}{pod="${pod}"}`] = constant(29 * HOUR);
    s[`${FAILED_BACKUP}{pod="${pod}"}`] = constant(0);
    for (const pvc of [pod, `${pod}-wal`]) {
      s[`kubelet_volume_stats_used_bytes{persistentvolumeclaim="${pvc}"}`] = constant(50);
      s[`kubelet_volume_stats_capacity_bytes{persistentvolumeclaim="${pvc}"}`] = constant(100);
    }
  }
  return s;
}

/** On both instances (every instance reports the plugin's metrics). */
const onBoth = (metric: string, values: string | undefined) =>
  Object.fromEntries([PRIMARY, STANDBY].map((pod) => [`${metric}{pod="${pod}"}`, values]));

interface Case {
  readonly alert: string;
  readonly what: string;
  readonly change: { [series: string]: string | undefined };
  readonly fires: { [label: string]: string }[];
  readonly severity: string;
}

const CASES: Case[] = [
  { alert: 'FerretDBPostgresBackupTooOld', what: 'the newest backup 27 hours old', severity: 'warning', fires: [{}], change: onBoth(BACKUP, constant(3 * HOUR)) },
  { alert: 'FerretDBPostgresBackupTooOld', what: 'no backup yet (0)', severity: 'warning', fires: [{}], change: onBoth(BACKUP, constant(0)) },
  { alert: 'FerretDBPostgresBackupTooOld', what: 'no backup metric at all', severity: 'warning', fires: [{}], change: onBoth(BACKUP, undefined) },
  { alert: 'FerretDBPostgresBackupFailed', what: 'a failure after the newest backup', severity: 'warning', fires: [{}], change: onBoth(FAILED_BACKUP, constant(29.5 * HOUR)) },
  {
    alert: 'FerretDBPostgresWalArchiveFailing',
    what: 'the last archive attempt failed, none succeeded since',
    severity: 'critical',
    fires: [{ pod: PRIMARY }],
    change: { [`${ARCHIVE_FAILED}{pod="${PRIMARY}"}`]: constant(30 * HOUR - 30), [`${ARCHIVED}{pod="${PRIMARY}"}`]: constant(29 * HOUR) },
  },
  {
    alert: 'FerretDBPostgresWalArchiveFailing',
    what: 'archiving never succeeded (-1)',
    severity: 'critical',
    fires: [{ pod: PRIMARY }],
    change: { [`${ARCHIVE_FAILED}{pod="${PRIMARY}"}`]: constant(30 * HOUR - 30), [`${ARCHIVED}{pod="${PRIMARY}"}`]: constant(-1) },
  },
  {
    alert: 'FerretDBPostgresVolumeNearlyFull',
    what: 'the WAL volume 90% full',
    severity: 'warning',
    fires: [{ persistentvolumeclaim: `${PRIMARY}-wal` }],
    change: { [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="${PRIMARY}-wal"}`]: constant(90) },
  },
];

/** Just short of each bound: nothing fires. */
const NEAR_MISSES: { [what: string]: { [series: string]: string | undefined } } = {
  'the newest backup 25 hours old': onBoth(BACKUP, constant(5 * HOUR)),
  'a failed backup before the newest completed one': onBoth(FAILED_BACKUP, constant(28 * HOUR)),
  'an archive failure since recovered': { [`${ARCHIVE_FAILED}{pod="${PRIMARY}"}`]: constant(29 * HOUR) },
  'an archive failure 3 minutes ago': { [`${ARCHIVE_FAILED}{pod="${PRIMARY}"}`]: `-1x1797 ${30 * HOUR - 180}x103` },
  'a volume 84% full': { [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="${PRIMARY}"}`]: constant(84) },
};

function seriesList(change: { [series: string]: string | undefined }): { series: string; values: string }[] {
  return series(healthy(), change);
}

function runPromtoolTests(name: string, tests: any[]): PromtoolResult {
  return promtoolTests(dir, groups, name, tests);
}

const noAlerts = () => ALERTS.map((alertname) => ({ eval_time: EVAL, alertname, exp_alerts: [] }));

describe('the PrometheusRule of a CloudNativePG cluster', () => {
  test('with backups: the backup, archive and volume alerts, valid against the PrometheusRule CRD', () => {
    expect(ALERTS).toEqual(['FerretDBPostgresBackupTooOld', 'FerretDBPostgresBackupFailed', 'FerretDBPostgresWalArchiveFailing', 'FerretDBPostgresVolumeNearlyFull']);
    expect(() => validateCustomResource(rule())).not.toThrow();
  });

  test('without backups: only the volume alert; without prometheusRule: no PrometheusRule', () => {
    expect(rule({ backup: undefined }).spec.groups[0].rules.map((r: any) => r.alert)).toEqual(['FerretDBPostgresVolumeNearlyFull']);
    const chart = Testing.chart();
    new CloudNativePGCluster(chart, 'pg', { name: 'x-pg', backup: { objectStore: STORE } });
    expect(byKind(Testing.synth(chart), 'PrometheusRule')).toEqual([]);
  });

  test('backup.maxAge sets the backup age bound; below an hour it fails, naming it', () => {
    const expr = rule({ backup: { objectStore: STORE, maxAge: Duration.hours(50) } }).spec.groups[0].rules[0].expr;
    expect(expr).toContain('> 180000)');
    expect(errorOf(() => rule({ backup: { objectStore: STORE, maxAge: Duration.minutes(30) } }))).toMatch(/^Invalid backup\.maxAge: "1800s"/);
  });

  test('a chart namespace narrows every selector to it', () => {
    const chart = new Chart(Testing.app(), 'c', { namespace: 'orders' });
    new CloudNativePGCluster(chart, 'pg', { name: 'x-pg', backup: { objectStore: STORE }, prometheusRule: true });
    const rules = find(Testing.synth(chart), 'PrometheusRule', 'x-pg').spec.groups[0].rules;
    for (const r of rules) expect({ alert: r.alert, scoped: (r.expr.match(/\{/g) ?? []).length === (r.expr.match(/namespace="orders"/g) ?? []).length }).toEqual({ alert: r.alert, scoped: true });
  });
});

describe('promtool check rules', () => {
  test('the synthesized groups (annotations included) pass', () => {
    const file = path.join(dir, 'rules.yaml');
    fs.writeFileSync(file, stringify({ groups }));
    const r = promtool(['check', 'rules', file], dir);
    expect(r.output).toContain(`SUCCESS: ${ALERTS.length} rules found`);
    expect(r.status).toBe(0);
  });
});

describe('promtool test rules', () => {
  test('a healthy cluster fires nothing', () => {
    const r = runPromtoolTests('healthy', [{ interval: '1m', input_series: seriesList({}), alert_rule_test: noAlerts() }]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test.each(Object.keys(NEAR_MISSES))('nothing fires for %s', (what) => {
    const r = runPromtoolTests('near-miss', [{ interval: '1m', input_series: seriesList(NEAR_MISSES[what]), alert_rule_test: noAlerts() }]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test('every alert has a case that fires it', () => {
    expect([...new Set(CASES.map((c) => c.alert))].sort()).toEqual([...ALERTS].sort());
  });

  test.each(CASES.map((c) => [`${c.alert}: ${c.what}`, c] as const))('%s fires, and only it', (_name, c) => {
    const r = runPromtoolTests('fires', [{
      interval: '1m',
      input_series: seriesList(c.change),
      alert_rule_test: ALERTS.map((alertname) => ({
        eval_time: EVAL,
        alertname,
        exp_alerts: alertname === c.alert ? c.fires.map((labels) => ({ exp_labels: { ...labels, ...CLUSTER, severity: c.severity } })) : [],
      })),
    }]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test('a wrong expectation fails (the test is not vacuous)', () => {
    const r = runPromtoolTests('wrong', [{
      interval: '1m',
      input_series: seriesList({}),
      alert_rule_test: [{ eval_time: EVAL, alertname: 'FerretDBPostgresBackupTooOld', exp_alerts: [{ exp_labels: { ...CLUSTER, severity: 'warning' } }] }],
    }]);
    expect(r.status).not.toBe(0);
  });
});
