import * as fs from 'fs';
import * as path from 'path';
import { parseAllDocuments } from 'yaml';

/**
 * Validates prometheus-operator objects against the openAPIV3Schema of the upstream CRD files
 * (../shared/crds/prometheus-operator-0.93.0), as the API server does for structural schemas:
 * types, required fields, enums, and unknown fields rejected unless the schema preserves them.
 * `metadata` is the API server's business (the CRD schema only says `type: object`).
 */
const CRD_DIR = path.join(__dirname, '..', '..', 'shared', 'crds', 'prometheus-operator-0.93.0');

function loadSchemas(): { [apiVersionKind: string]: any } {
  if (!fs.existsSync(CRD_DIR)) throw new Error(`the prometheus-operator CRDs are missing: ${CRD_DIR}`);
  const out: { [apiVersionKind: string]: any } = {};
  for (const file of fs.readdirSync(CRD_DIR).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(fs.readFileSync(path.join(CRD_DIR, file), 'utf8'))) {
      const crd = doc.toJS();
      if (crd?.kind !== 'CustomResourceDefinition') continue;
      for (const v of crd.spec.versions) out[`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`] = v.schema.openAPIV3Schema;
    }
  }
  return out;
}

let schemas: { [apiVersionKind: string]: any } | undefined;

/** The schema errors of one value (empty when valid). */
export function schemaErrors(schema: any, value: any, where: string): string[] {
  if (value === null && schema.nullable) return [];
  if (schema['x-kubernetes-int-or-string']) {
    return typeof value === 'string' || Number.isInteger(value) ? [] : [`${where}: expected an integer or a string, got ${JSON.stringify(value)}`];
  }
  const errors: string[] = [];
  const type = schema.type;
  const actual = Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value;
  const ok = type === undefined
    || (type === 'integer' ? Number.isInteger(value) : type === 'number' ? actual === 'number' : actual === type);
  if (!ok) return [`${where}: expected ${type}, got ${JSON.stringify(value)}`];
  if (schema.enum && !schema.enum.includes(value)) errors.push(`${where}: ${JSON.stringify(value)} is not one of ${JSON.stringify(schema.enum)}`);
  if (actual === 'array' && schema.items) value.forEach((item: any, i: number) => errors.push(...schemaErrors(schema.items, item, `${where}[${i}]`)));
  if (actual === 'object') {
    for (const key of schema.required ?? []) if (!(key in value)) errors.push(`${where}: missing required field ${JSON.stringify(key)}`);
    for (const [key, v] of Object.entries(value)) {
      const sub = schema.properties?.[key] ?? (typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined);
      if (sub) {errors.push(...schemaErrors(sub, v, `${where}.${key}`));} else if (!schema['x-kubernetes-preserve-unknown-fields'] && schema.additionalProperties !== true) {
        errors.push(`${where}: unknown field ${JSON.stringify(key)}`);
      }
    }
  }
  return errors;
}

/** Throws with every error when a prometheus-operator object does not match its CRD. */
export function validateCustomResource(obj: any): void {
  schemas ??= loadSchemas();
  const schema = schemas[`${obj.apiVersion}/${obj.kind}`];
  if (!schema) throw new Error(`no CRD for ${obj.apiVersion} ${obj.kind}`);
  const { metadata, ...rest } = obj;
  const errors = schemaErrors(schema, rest, `${obj.kind} ${metadata?.name}`);
  if (typeof metadata?.name !== 'string') errors.push(`${obj.kind}: metadata.name missing`);
  if (errors.length > 0) throw new Error(errors.join('\n'));
}
