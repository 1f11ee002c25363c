import { Container, ResourceFieldSelector, StringMap } from './types';
import { ConfigError, MissingRefError } from './util';
import { QUANTITY_FACTORS } from '../../../src/private/validation';

/** Where ConfigMaps and Secrets are looked up (the harness's object store). */
export interface RefSource {
  /** A ConfigMap's `data` (binaryData decoded to text), or undefined if it does not exist. */
  configMap(name: string): StringMap | undefined;
  /** A Secret's decoded data, or undefined if it does not exist. */
  secret(name: string): Record<string, Buffer> | undefined;
}

/** What the downward API can tell about a pod. */
export interface PodFacts {
  readonly name: string;
  readonly namespace: string;
  readonly uid: string;
  readonly ip: string;
  readonly hostIP: string;
  readonly nodeName: string;
  readonly serviceAccountName: string;
  readonly labels: StringMap;
  readonly annotations: StringMap;
}

/** The node the harness pretends to be: what `resourceFieldRef` reports without limits. */
const NODE_ALLOCATABLE: Record<string, number> = { 'cpu': 2, 'memory': 24 * 1024 ** 3, 'ephemeral-storage': 100 * 1024 ** 3 };

/**
 * Kubernetes `$(VAR)` expansion (k8s.io/kubernetes third_party/forked/golang/expansion): `$(NAME)`
 * is replaced when NAME is known and left as is otherwise, `$$` is an escaped `$`, any other `$x`
 * is kept.
 */
export function expand(input: string, lookup: (name: string) => string | undefined): string {
  let out = '';
  let checkpoint = 0;
  for (let cursor = 0; cursor < input.length; cursor++) {
    if (input[cursor] !== '$' || cursor + 1 >= input.length) continue;
    out += input.slice(checkpoint, cursor);
    const rest = input.slice(cursor + 1);
    let advance = 1;
    if (rest[0] === '$') {
      out += '$';
    } else if (rest[0] === '(') {
      const close = rest.indexOf(')');
      if (close > 0) {
        const name = rest.slice(1, close);
        out += lookup(name) ?? `$(${name})`;
        advance = close + 1;
      } else {
        out += '$(';
      }
    } else {
      out += `$${rest[0]}`;
    }
    cursor += advance;
    checkpoint = cursor + 1;
  }
  return out + input.slice(checkpoint);
}

/** Parses a Kubernetes quantity ("250m", "1Gi", "2") into a number. */
export function parseQuantity(q: string | number): number {
  if (typeof q === 'number') return q;
  const m = /^([+-]?[0-9.]+)([eE][+-]?[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/.exec(q.trim());
  if (!m) throw new ConfigError(`invalid quantity ${q}`);
  const factors = QUANTITY_FACTORS;
  return Number(m[1] + (m[2] ?? '')) * factors[m[3] ?? ''];
}

/** `valueFrom.fieldRef` / downward API field values. */
export function fieldRefValue(pod: PodFacts, fieldPath: string): string {
  const labelOrAnnotation = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(fieldPath);
  if (labelOrAnnotation) {
    const map = labelOrAnnotation[1] === 'labels' ? pod.labels : pod.annotations;
    return map[labelOrAnnotation[2]] ?? '';
  }
  const formatMap = (map: StringMap): string =>
    Object.keys(map).sort().map((k) => `${k}=${JSON.stringify(map[k])}`).join('\n');
  switch (fieldPath) {
    case 'metadata.name': return pod.name;
    case 'metadata.namespace': return pod.namespace;
    case 'metadata.uid': return pod.uid;
    case 'metadata.labels': return formatMap(pod.labels);
    case 'metadata.annotations': return formatMap(pod.annotations);
    case 'spec.nodeName': return pod.nodeName;
    case 'spec.serviceAccountName': return pod.serviceAccountName;
    case 'status.podIP': return pod.ip;
    case 'status.podIPs': return pod.ip;
    case 'status.hostIP': return pod.hostIP;
    case 'status.hostIPs': return pod.hostIP;
    default: throw new ConfigError(`unsupported fieldRef ${fieldPath}`);
  }
}

/** `resourceFieldRef`: the container's limit/request, node allocatable when no limit is set. */
export function resourceFieldValue(containers: readonly Container[], self: Container, sel: ResourceFieldSelector): string {
  const target = sel.containerName ? containers.find((c) => c.name === sel.containerName) : self;
  if (!target) throw new ConfigError(`resourceFieldRef: no container ${sel.containerName}`);
  const [kind, resource] = sel.resource.split('.', 2);
  if ((kind !== 'limits' && kind !== 'requests') || !resource) {
    throw new ConfigError(`unsupported resourceFieldRef ${sel.resource}`);
  }
  const limits = target.resources?.limits ?? {};
  const requests = target.resources?.requests ?? {};
  let value: number;
  if (kind === 'limits') {
    value = limits[resource] !== undefined ? parseQuantity(limits[resource]) : (NODE_ALLOCATABLE[resource] ?? 0);
  } else {
    const r = requests[resource] ?? limits[resource];
    value = r !== undefined ? parseQuantity(r) : 0;
  }
  const divisor = sel.divisor !== undefined ? parseQuantity(sel.divisor) : 1;
  return String(Math.ceil(value / divisor - 1e-9));
}

const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * Resolves a container's environment as kubelet does: service variables, then `envFrom` in
 * order, then `env` in order, `$(VAR)` expanded against what was defined before. Throws
 * MissingRefError for a missing non-optional ConfigMap/Secret (or key): kubelet retries those
 * (CreateContainerConfigError).
 */
export function resolveEnv(pod: PodFacts, containers: readonly Container[], container: Container,
  refs: RefSource, serviceEnv: StringMap): Map<string, string> {
  const env = new Map<string, string>(Object.entries(serviceEnv));
  for (const from of container.envFrom ?? []) {
    const prefix = from.prefix ?? '';
    let data: Record<string, string> | undefined;
    if (from.configMapRef) {
      const name = from.configMapRef.name ?? '';
      data = refs.configMap(name);
      if (!data && !from.configMapRef.optional) throw new MissingRefError(`configmap "${name}" not found (envFrom)`);
    } else if (from.secretRef) {
      const name = from.secretRef.name ?? '';
      const s = refs.secret(name);
      if (!s && !from.secretRef.optional) throw new MissingRefError(`secret "${name}" not found (envFrom)`);
      data = s ? Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v.toString('utf8')])) : undefined;
    }
    for (const [k, v] of Object.entries(data ?? {})) {
      if (ENV_NAME.test(prefix + k)) env.set(prefix + k, v);
    }
  }
  const lookup = (n: string): string | undefined => env.get(n);
  for (const e of container.env ?? []) {
    if (e.valueFrom === undefined) {
      env.set(e.name, expand(e.value ?? '', lookup));
      continue;
    }
    const vf = e.valueFrom;
    if (vf.fieldRef) {
      env.set(e.name, fieldRefValue(pod, vf.fieldRef.fieldPath));
    } else if (vf.resourceFieldRef) {
      env.set(e.name, resourceFieldValue(containers, container, vf.resourceFieldRef));
    } else if (vf.configMapKeyRef) {
      const ref = vf.configMapKeyRef;
      const cm = refs.configMap(ref.name ?? '');
      const v = cm?.[ref.key];
      if (v === undefined) {
        if (!ref.optional) {
          throw new MissingRefError(cm ? `key "${ref.key}" not found in configmap "${ref.name}" (env ${e.name})`
            : `configmap "${ref.name}" not found (env ${e.name})`);
        }
      } else {
        env.set(e.name, v);
      }
    } else if (vf.secretKeyRef) {
      const ref = vf.secretKeyRef;
      const s = refs.secret(ref.name ?? '');
      const v = s?.[ref.key];
      if (v === undefined) {
        if (!ref.optional) {
          throw new MissingRefError(s ? `key "${ref.key}" not found in secret "${ref.name}" (env ${e.name})`
            : `secret "${ref.name}" not found (env ${e.name})`);
        }
      } else {
        env.set(e.name, v.toString('utf8'));
      }
    } else {
      throw new ConfigError(`env ${e.name}: unsupported valueFrom`);
    }
  }
  return env;
}
