/**
 * What every section shares: options, statistics, formatting, progress lines, and the child
 * processes to stop on SIGINT.
 */
import { ChildProcess } from 'child_process';

export const SECTIONS = ['synth', 'bootstrap', 'lag', 'catchup', 'costs', 'mongodb', 'failover'] as const;
export type SectionName = typeof SECTIONS[number];

export interface Options {
  /** Smaller sizes and single runs: a smoke run of the harness and the code, not a measurement. */
  readonly quick: boolean;
  readonly only: readonly SectionName[];
}

/** One line of the printed table. `ratio` is ours/floor unless the measure says otherwise. */
export interface Row {
  readonly section: SectionName;
  readonly measure: string;
  readonly ours: string;
  readonly floor: string;
  readonly ratio: string;
  readonly note?: string;
}

export function row(section: SectionName, measure: string, ours: string, floor: string, ratioText: string, note?: string): Row {
  return { section, measure, ours, floor, ratio: ratioText, note };
}

export interface SectionResult {
  readonly section: SectionName;
  /** What the floor of the section is, in a sentence. */
  readonly floor: string;
  readonly rows: Row[];
  /** Every raw measurement, for the JSON file. */
  readonly data: unknown;
  seconds?: number;
}

const started = Date.now();

/** A progress line on stderr (the table goes to stdout). */
export function log(message: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${s}s] ${message}\n`);
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

/** A number with `digits` significant digits at most, never in exponent notation. */
export function num(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toFixed(Math.min(decimals, 3));
}

export function ratio(ours: number, floor: number): string {
  return floor > 0 && Number.isFinite(ours) ? `${num(ours / floor)}x` : 'n/a';
}

/** "min-max" of the runs, in the unit shown. */
export function range(values: readonly number[]): string {
  return `${num(Math.min(...values))}-${num(Math.max(...values))}`;
}

export function mb(bytes: number): number {
  return bytes / 2 ** 20;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The table: one header, rows grouped by section. */
export function renderTable(rows: readonly Row[]): string {
  const header = row('section' as SectionName, 'measure', 'ours', 'floor', 'ratio', 'note');
  const cells = (r: Row): string[] => [r.section, r.measure, r.ours, r.floor, r.ratio, r.note ?? ''];
  const all = [header, ...rows];
  const widths = cells(header).map((_, i) => Math.max(...all.map((r) => cells(r)[i].length)));
  const line = (r: Row): string => cells(r).map((c, i) => (i === 2 || i === 3 || i === 4 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  const out = [line(header), widths.map((w) => '-'.repeat(w)).join('  ')];
  let previous: string | undefined;
  for (const r of rows) {
    if (previous !== undefined && r.section !== previous) out.push('');
    out.push(line(r));
    previous = r.section;
  }
  return out.join('\n');
}

/** Child processes started by the bench itself (synth workers, the compiler): killed on SIGINT. */
export const children = new Set<ChildProcess>();
