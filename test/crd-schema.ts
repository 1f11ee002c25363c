import * as fs from 'fs';
import * as path from 'path';
import Ajv, { ValidateFunction } from 'ajv';
import * as YAML from 'yaml';

/** The CRDs, unchanged from their upstream releases, beside the repository (`../shared/crds`). */
export const CRDS_DIR = path.join(__dirname, '..', '..', 'shared', 'crds');

const CRD_FILES: { [apiVersionKind: string]: string } = {
  'postgresql.cnpg.io/v1/Cluster': 'cloudnative-pg-1.30.0/postgresql.cnpg.io_clusters.yaml',
  'postgresql.cnpg.io/v1/Backup': 'cloudnative-pg-1.30.0/postgresql.cnpg.io_backups.yaml',
  'postgresql.cnpg.io/v1/ScheduledBackup': 'cloudnative-pg-1.30.0/postgresql.cnpg.io_scheduledbackups.yaml',
  'barmancloud.cnpg.io/v1/ObjectStore': 'plugin-barman-cloud-0.14.0/barmancloud.cnpg.io_objectstores.yaml',
  'monitoring.coreos.com/v1/PodMonitor': 'prometheus-operator-0.93.0/monitoring.coreos.com_podmonitors.yaml',
  'monitoring.coreos.com/v1/PrometheusRule': 'prometheus-operator-0.93.0/monitoring.coreos.com_prometheusrules.yaml',
  'cert-manager.io/v1/Certificate': 'cert-manager-1.21.1/cert-manager.io_certificates.yaml',
};

/** Whether an object's apiVersion and kind are a custom resource these tests know. */
export function isCustomResource(obj: any): boolean {
  return CRD_FILES[`${obj.apiVersion}/${obj.kind}`] !== undefined;
}

/**
 * A structural schema as JSON Schema, the way the API server treats it: an object schema without
 * `additionalProperties` or `x-kubernetes-preserve-unknown-fields` is closed (unknown fields
 * would be pruned, and `kubectl apply --validate=strict` rejects them); int-or-string accepts
 * both; Go's `(?i)` pattern flag becomes both cases of each letter. CEL rules
 * (`x-kubernetes-validations`) and `format`s are not evaluated.
 */
export function toJsonSchema(schema: any): any {
  if (Array.isArray(schema)) return schema.map(toJsonSchema);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: any = {};
  for (const [key, value] of Object.entries<any>(schema)) {
    if (key.startsWith('x-kubernetes-') || key === 'description' || key === 'default') continue;
    if (key === 'properties') {
      out.properties = Object.fromEntries(Object.entries<any>(value).map(([k, v]) => [k, toJsonSchema(v)]));
    } else if (['items', 'additionalProperties', 'not'].includes(key)) {
      out[key] = typeof value === 'object' ? toJsonSchema(value) : value;
    } else if (['allOf', 'anyOf', 'oneOf'].includes(key)) {
      out[key] = value.map(toJsonSchema);
    } else if (key === 'pattern' && value.includes('(?i)')) {
      // Go's case-insensitive flag, which JavaScript patterns lack: each letter (not an escape)
      // in both cases instead.
      out.pattern = value.replace('(?i)', '').replace(/(\\?)([a-zA-Z])/g, (m: string, escape: string, c: string) =>
        escape ? m : `[${c.toLowerCase()}${c.toUpperCase()}]`);
    } else {
      out[key] = value;
    }
  }
  if (schema['x-kubernetes-int-or-string']) {
    delete out.type;
    out.anyOf = [...out.anyOf ?? [], { type: 'integer' }, { type: 'string' }];
  }
  const open = schema['x-kubernetes-preserve-unknown-fields'] === true || schema.additionalProperties !== undefined;
  if (schema.type === 'object' && !open) out.additionalProperties = false;
  return out;
}

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
const validators = new Map<string, ValidateFunction>();

function validatorFor(apiVersionKind: string): ValidateFunction {
  const cached = validators.get(apiVersionKind);
  if (cached) return cached;
  const file = path.join(CRDS_DIR, CRD_FILES[apiVersionKind]);
  if (!fs.existsSync(file)) {
    throw new Error(`CRD file ${file} is missing: the tests need ../shared/crds beside the repository (see its README)`);
  }
  const crd = YAML.parse(fs.readFileSync(file, 'utf8'));
  const version = apiVersionKind.split('/').slice(-2, -1)[0];
  const served = crd.spec.versions.find((v: any) => v.name === version);
  if (!served) throw new Error(`${file} has no version ${version}`);
  const schema = toJsonSchema(served.schema.openAPIV3Schema);
  // ObjectMeta is validated by the API server itself, not by the CRD's schema.
  schema.properties.metadata = {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 } },
  };
  const validate = ajv.compile(schema);
  validators.set(apiVersionKind, validate);
  return validate;
}

/** Validates a custom resource against its CRD's openAPIV3Schema; throws naming the object and every error. */
export function validateCustomResource(obj: any): void {
  const key = `${obj.apiVersion}/${obj.kind}`;
  if (!CRD_FILES[key]) throw new Error(`${key} ${obj.metadata?.name}: no CRD known for this apiVersion/kind`);
  const validate = validatorFor(key);
  if (!validate(obj)) {
    const errors = (validate.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}${e.params ? ' ' + JSON.stringify(e.params) : ''}`);
    throw new Error(`${key} ${obj.metadata?.name}: ${errors.join('; ')}`);
  }
}
