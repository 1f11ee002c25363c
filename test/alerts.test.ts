/**
 * The synthesized PrometheusRule through the real promtool (Debian's `prometheus` package):
 * `promtool check rules` on its groups as synthesized, and `promtool test rules` with series that
 * should and should not fire each alert. The unit tests compare labels only: the rules under test
 * are the synthesized ones without their annotations (templates that `check rules` parses).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { stringify } from 'yaml';
import { promtool, PromtoolResult, runPromtoolTests as promtoolTests, seriesList as series } from './promtool';
import { find, synth } from './util';

const MB = 1024 * 1024;
const PRIMARY = 'x-pg-primary-0';
const STANDBY = 'x-pg-replica-0';
const SLOT = 'fdb_x_pg_replica_0';
const CLUSTER = { ferretdb_cluster: 'x' };


const groups = find(synth({ replicas: 1, monitoring: { prometheusRule: true } }), 'PrometheusRule', 'x').spec.groups;

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fdb-alerts-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A healthy cluster: one primary, one streaming standby, FerretDB up, volumes half full. */
function healthy(): { [series: string]: string } {
  return {
    [`fdb_pg_server_in_recovery{pod="${PRIMARY}"}`]: '0x20',
    [`fdb_pg_server_in_recovery{pod="${STANDBY}"}`]: '1x20',
    [`fdb_pg_server_max_slot_wal_keep_size_bytes{pod="${PRIMARY}"}`]: `${64 * MB}x20`,
    [`fdb_pg_server_max_slot_wal_keep_size_bytes{pod="${STANDBY}"}`]: `${64 * MB}x20`,
    [`fdb_pg_wal_receiver_streaming{pod="${STANDBY}"}`]: '1x20',
    [`fdb_pg_replication_replay_lag_seconds{pod="${PRIMARY}",standby="${STANDBY}"}`]: '0.5x20',
    [`fdb_pg_replication_replay_lag_bytes{pod="${PRIMARY}",standby="${STANDBY}"}`]: `${MB}x20`,
    [`fdb_pg_slot_active{pod="${PRIMARY}",slot="${SLOT}"}`]: '1x20',
    [`fdb_pg_slot_retained_bytes{pod="${PRIMARY}",slot="${SLOT}"}`]: `${2 * MB}x20`,
    [`fdb_pg_slot_status_info{pod="${PRIMARY}",slot="${SLOT}",wal_status="reserved"}`]: '1x20',
    [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="data-${PRIMARY}"}`]: '50x20',
    [`kubelet_volume_stats_capacity_bytes{persistentvolumeclaim="data-${PRIMARY}"}`]: '100x20',
    [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="data-${STANDBY}"}`]: '50x20',
    [`kubelet_volume_stats_capacity_bytes{persistentvolumeclaim="data-${STANDBY}"}`]: '100x20',
    [`fdb_pg_cluster_identity_recorded{pod="${PRIMARY}"}`]: '1x20',
    [`fdb_pg_cluster_identity_state_age_seconds{pod="${PRIMARY}"}`]: '4x20',
    ['up{pod="x-ferretdb-rw-5d9f8c7b6-abcde"}']: '1x20',
    ['up{pod="x-ferretdb-ro-6c8d7f5b4-fghij"}']: '1x20',
    // A pod of another cluster, never selected.
    ['fdb_pg_server_in_recovery{pod="y-pg-primary-0"}']: '0x20',
  };
}

const ALERTS = groups[0].rules.map((r: any) => r.alert as string);

interface Case {
  readonly alert: string;
  readonly change: { [series: string]: string | undefined };
  /** Labels of each expected alert at 10m (beyond alertname, severity and ferretdb_cluster). */
  readonly fires: { [label: string]: string }[];
  readonly severity: string;
}

const CASES: Case[] = [
  {
    alert: 'FerretDBPostgresNoPrimary',
    severity: 'critical',
    fires: [{}],
    change: { [`fdb_pg_server_in_recovery{pod="${PRIMARY}"}`]: '1x20' },
  },
  {
    alert: 'FerretDBPostgresMultiplePrimaries',
    severity: 'critical',
    fires: [{}],
    change: { [`fdb_pg_server_in_recovery{pod="${STANDBY}"}`]: '0x20' },
  },
  {
    alert: 'FerretDBPostgresStandbyNotStreaming',
    severity: 'warning',
    fires: [{ pod: STANDBY }],
    change: { [`fdb_pg_wal_receiver_streaming{pod="${STANDBY}"}`]: '0x20' },
  },
  {
    alert: 'FerretDBPostgresStandbyNotStreaming',
    severity: 'warning',
    fires: [{ pod: PRIMARY, slot: SLOT }],
    change: { [`fdb_pg_slot_active{pod="${PRIMARY}",slot="${SLOT}"}`]: '0x20', [`fdb_pg_wal_receiver_streaming{pod="${STANDBY}"}`]: undefined },
  },
  {
    alert: 'FerretDBPostgresReplicationLag',
    severity: 'warning',
    fires: [{ pod: PRIMARY, standby: STANDBY }],
    change: { [`fdb_pg_replication_replay_lag_seconds{pod="${PRIMARY}",standby="${STANDBY}"}`]: '120x20' },
  },
  {
    alert: 'FerretDBPostgresReplicationLag',
    severity: 'warning',
    fires: [{ pod: PRIMARY, standby: STANDBY }],
    change: { [`fdb_pg_replication_replay_lag_bytes{pod="${PRIMARY}",standby="${STANDBY}"}`]: `${65 * MB}x20` },
  },
  {
    alert: 'FerretDBPostgresSlotRetainingWal',
    severity: 'warning',
    fires: [{ pod: PRIMARY, slot: SLOT }],
    change: { [`fdb_pg_slot_retained_bytes{pod="${PRIMARY}",slot="${SLOT}"}`]: `${56 * MB}x20` },
  },
  {
    alert: 'FerretDBPostgresSlotLost',
    severity: 'critical',
    fires: [{ pod: PRIMARY, slot: SLOT, wal_status: 'lost' }],
    change: {
      [`fdb_pg_slot_status_info{pod="${PRIMARY}",slot="${SLOT}",wal_status="reserved"}`]: '1x4 _x16',
      [`fdb_pg_slot_status_info{pod="${PRIMARY}",slot="${SLOT}",wal_status="lost"}`]: '_x4 1x16',
    },
  },
  {
    alert: 'FerretDBPostgresSlotLost',
    severity: 'critical',
    fires: [{ pod: PRIMARY, slot: SLOT, wal_status: 'unreserved' }],
    change: {
      [`fdb_pg_slot_status_info{pod="${PRIMARY}",slot="${SLOT}",wal_status="unreserved"}`]: '1x20',
      [`fdb_pg_slot_status_info{pod="${PRIMARY}",slot="${SLOT}",wal_status="reserved"}`]: undefined,
    },
  },
  {
    alert: 'FerretDBPostgresStandbyCloning',
    severity: 'warning',
    fires: [{ pod: PRIMARY, standby: STANDBY }],
    change: { [`fdb_pg_basebackup_running{pod="${PRIMARY}",standby="${STANDBY}"}`]: '1x20' },
  },
  {
    alert: 'FerretDBClusterIdentityNotRecorded',
    severity: 'warning',
    fires: [{ pod: PRIMARY }],
    change: { [`fdb_pg_cluster_identity_recorded{pod="${PRIMARY}"}`]: '0x20' },
  },
  {
    alert: 'FerretDBClusterIdentityNotRecorded',
    severity: 'warning',
    fires: [{ pod: PRIMARY }],
    change: { [`fdb_pg_cluster_identity_state_age_seconds{pod="${PRIMARY}"}`]: '200x20' },
  },
  {
    alert: 'FerretDBPostgresVolumeNearlyFull',
    severity: 'warning',
    fires: [{ persistentvolumeclaim: `data-${PRIMARY}` }],
    change: { [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="data-${PRIMARY}"}`]: '90x20' },
  },
  {
    alert: 'FerretDBDown',
    severity: 'critical',
    fires: [{ deployment: 'x-ferretdb-rw' }],
    change: { ['up{pod="x-ferretdb-rw-5d9f8c7b6-abcde"}']: '0x20' },
  },
];

/** Just below each bound: nothing fires. */
const NEAR_MISSES: { [what: string]: { [series: string]: string } } = {
  'replay lag 59 s and 63MB': {
    [`fdb_pg_replication_replay_lag_seconds{pod="${PRIMARY}",standby="${STANDBY}"}`]: '59x20',
    [`fdb_pg_replication_replay_lag_bytes{pod="${PRIMARY}",standby="${STANDBY}"}`]: `${63 * MB}x20`,
  },
  'a slot retaining 75% of max_slot_wal_keep_size': { [`fdb_pg_slot_retained_bytes{pod="${PRIMARY}",slot="${SLOT}"}`]: `${48 * MB}x20` },
  'a volume 84% full': { [`kubelet_volume_stats_used_bytes{persistentvolumeclaim="data-${PRIMARY}"}`]: '84x20' },
  'a standby that stopped streaming 3 minutes ago': { [`fdb_pg_wal_receiver_streaming{pod="${STANDBY}"}`]: '1x7 0x13' },
  'a cluster identity unrecorded for 8 minutes, a state read 100 s old': {
    [`fdb_pg_cluster_identity_recorded{pod="${PRIMARY}"}`]: '1x2 0x18',
    [`fdb_pg_cluster_identity_state_age_seconds{pod="${PRIMARY}"}`]: '100x20',
  },
  'one of two FerretDB writer pods down': {
    ['up{pod="x-ferretdb-rw-5d9f8c7b6-abcde"}']: '0x20',
    ['up{pod="x-ferretdb-rw-5d9f8c7b6-klmno"}']: '1x20',
  },
  'another cluster without a primary': { ['fdb_pg_server_in_recovery{pod="y-pg-primary-0"}']: '1x20' },
};

function seriesList(change: { [series: string]: string | undefined }): { series: string; values: string }[] {
  return series(healthy(), change);
}

function runPromtoolTests(name: string, tests: any[]): PromtoolResult {
  return promtoolTests(dir, groups, name, tests);
}

describe('promtool check rules', () => {
  test('the synthesized groups (annotations included) pass, one rule per alert and FerretDB side', () => {
    const file = path.join(dir, 'rules.yaml');
    fs.writeFileSync(file, stringify({ groups }));
    const r = promtool(['check', 'rules', file], dir);
    expect(r.output).toContain('SUCCESS: 11 rules found');
    expect(r.status).toBe(0);
  });

  test('a broken expression fails (the check is not vacuous)', () => {
    const file = path.join(dir, 'broken.yaml');
    fs.writeFileSync(file, stringify({ groups: [{ ...groups[0], rules: [{ ...groups[0].rules[0], expr: 'absent(fdb_pg_server_in_recovery{' }] }] }));
    expect(promtool(['check', 'rules', file], dir).status).not.toBe(0);
  });
});

describe('promtool test rules', () => {
  test('a healthy cluster fires nothing', () => {
    const r = runPromtoolTests('healthy', [{
      interval: '1m',
      input_series: seriesList({}),
      alert_rule_test: ALERTS.map((alertname: string) => ({ eval_time: '10m', alertname, exp_alerts: [] })),
    }]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test.each(Object.keys(NEAR_MISSES))('nothing fires for %s', (what) => {
    const r = runPromtoolTests('near-miss', [{
      interval: '1m',
      input_series: seriesList(NEAR_MISSES[what]),
      alert_rule_test: ALERTS.map((alertname: string) => ({ eval_time: '10m', alertname, exp_alerts: [] })),
    }]);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  test('every alert has a case that fires it', () => {
    expect([...new Set(CASES.map((c) => c.alert))].sort()).toEqual([...new Set(ALERTS)].sort());
  });

  test.each(CASES.map((c, i) => [`${c.alert} #${i}`, c] as const))('%s fires, and only it', (_name, c) => {
    const r = runPromtoolTests('fires', [{
      interval: '1m',
      input_series: seriesList(c.change),
      alert_rule_test: [...new Set(ALERTS)].map((alertname) => ({
        eval_time: '10m',
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
      alert_rule_test: [{ eval_time: '10m', alertname: 'FerretDBPostgresNoPrimary', exp_alerts: [{ exp_labels: { ...CLUSTER, severity: 'critical' } }] }],
    }]);
    expect(r.status).not.toBe(0);
  });
});
