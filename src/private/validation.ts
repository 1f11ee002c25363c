/** An error that names the prop and the offending value. */
export function invalid(prop: string, value: unknown, expected: string): Error {
  return new Error(`Invalid ${prop}: ${show(value)}. Expected ${expected}.`);
}

function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

export function checkInteger(prop: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(prop, value, `an integer from ${min} to ${max}`);
  }
  return value;
}

const QUANTITY = /^(\d+(\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/;
/** Multipliers of the Kubernetes quantity suffixes. */
export const QUANTITY_FACTORS: { [suffix: string]: number } = {
  '': 1,
  'm': 1e-3,
  'k': 1e3,
  'M': 1e6,
  'G': 1e9,
  'T': 1e12,
  'P': 1e15,
  'E': 1e18,
  'Ki': 2 ** 10,
  'Mi': 2 ** 20,
  'Gi': 2 ** 30,
  'Ti': 2 ** 40,
  'Pi': 2 ** 50,
  'Ei': 2 ** 60,
};

/** Parses a Kubernetes resource quantity ("10Gi", "500m", "1.5G"); returns its value in base units. */
export function parseQuantity(prop: string, value: string): number {
  const match = typeof value === 'string' ? QUANTITY.exec(value) : null;
  if (!match) {
    throw invalid(prop, value, 'a Kubernetes quantity such as "10Gi", "512Mi" or "250m"');
  }
  const amount = Number(match[1]) * QUANTITY_FACTORS[match[3] ?? ''];
  if (!(amount > 0)) {
    throw invalid(prop, value, 'a quantity greater than zero');
  }
  return amount;
}

const PG_SIZE = /^(\d+)\s*(B|kB|MB|GB|TB)?$/;
const PG_SIZE_FACTORS: { [unit: string]: number } = { B: 1, kB: 2 ** 10, MB: 2 ** 20, GB: 2 ** 30, TB: 2 ** 40 };

/** Parses a PostgreSQL size setting ("512MB", "2GB"; a bare number is megabytes for WAL sizes). */
export function parsePostgresSize(prop: string, value: string): number {
  const match = typeof value === 'string' ? PG_SIZE.exec(value.trim()) : null;
  if (!match) {
    throw invalid(prop, value, 'a PostgreSQL size such as "512MB" or "4GB" (units B, kB, MB, GB, TB)');
  }
  return Number(match[1]) * PG_SIZE_FACTORS[match[2] ?? 'MB'];
}

const PG_DURATION = /^(\d+)\s*(us|ms|s|min|h|d)?$/;

export function checkPostgresDuration(prop: string, value: string): string {
  if (typeof value !== 'string' || !PG_DURATION.test(value.trim())) {
    throw invalid(prop, value, 'a PostgreSQL duration such as "10s", "500ms" or "1min"');
  }
  return value.trim();
}

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** A PostgreSQL role name that needs no quoting anywhere (conninfo, pgpass, SQL). */
export function checkRoleName(prop: string, value: string): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value) || value.startsWith('pg_')) {
    throw invalid(prop, value, 'a lower-case PostgreSQL role name ([a-z_][a-z0-9_]*, at most 63 characters, not starting with "pg_")');
  }
  return value;
}

export function checkImage(prop: string, value: string): string {
  if (typeof value !== 'string' || !/^[a-z0-9][a-z0-9._\-/:@]*$/.test(value)) {
    throw invalid(prop, value, 'a container image reference such as "ghcr.io/ferretdb/ferretdb:2.7.0"');
  }
  return value;
}

/** A Secret's name (a DNS-1123 subdomain); throws naming the prop and the value. */
export function checkSecretName(prop: string, secretName: string): string {
  if (typeof secretName !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(secretName) || secretName.length > 253) {
    throw invalid(prop, secretName, 'the name of a Secret (a DNS-1123 subdomain: lower-case letters, digits, "-" and ".")');
  }
  return secretName;
}
