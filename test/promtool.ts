/**
 * The real promtool (Debian's `prometheus` package) for the alert-rule tests: `promtool check
 * rules` and `promtool test rules` over synthesized rule groups.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { stringify } from 'yaml';

const PROMTOOL = '/usr/bin/promtool';

export interface PromtoolResult {
  readonly status: number | null;
  readonly output: string;
}

/** Runs promtool; fails loudly when it is not installed. */
export function promtool(args: string[], cwd: string): PromtoolResult {
  if (!fs.existsSync(PROMTOOL)) throw new Error(`${PROMTOOL} is missing: install the Debian package prometheus`);
  const r = spawnSync(PROMTOOL, args, { cwd, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The input series of one case: the healthy ones, with `change` replacing (or, undefined, removing) some. */
export function seriesList(
  healthy: { [series: string]: string },
  change: { [series: string]: string | undefined },
): { series: string; values: string }[] {
  const all: { [series: string]: string | undefined } = { ...healthy, ...change };
  return Object.entries(all).filter(([, v]) => v !== undefined).map(([series, values]) => ({ series, values: values! }));
}

/**
 * `promtool test rules` of `tests` against `groups` without their annotations (promtool would
 * otherwise compare the templated texts too), in `dir`.
 */
export function runPromtoolTests(dir: string, groups: any[], name: string, tests: any[]): PromtoolResult {
  const rulesFile = path.join(dir, 'rules-without-annotations.yaml');
  const stripped = groups.map((g: any) => ({ ...g, rules: g.rules.map(({ annotations, ...r }: any) => r) }));
  fs.writeFileSync(rulesFile, stringify({ groups: stripped }));
  const testFile = path.join(dir, `${name}.test.yaml`);
  fs.writeFileSync(testFile, stringify({ rule_files: [rulesFile], evaluation_interval: '1m', tests }));
  return promtool(['test', 'rules', testFile], dir);
}
