import { k8s } from 'cdk8s-plus-28';
import { Resources } from '../common';
import { invalid, parseQuantity } from './validation';

export function checkResources(prop: string, resources: Resources | undefined): void {
  for (const [key, value] of Object.entries(resources ?? {})) {
    if (value !== undefined) parseQuantity(`${prop}.${key}`, value);
  }
  for (const kind of ['cpu', 'memory'] as const) {
    const request = resources?.[`${kind}Request`];
    const limit = resources?.[`${kind}Limit`];
    if (request && limit && parseQuantity(`${prop}.${kind}Request`, request) > parseQuantity(`${prop}.${kind}Limit`, limit)) {
      throw invalid(`${prop}.${kind}Request`, request, `at most ${prop}.${kind}Limit (${limit})`);
    }
  }
}

export function renderResources(given: Resources | undefined, defaults: Resources): k8s.ResourceRequirements {
  const r: { -readonly [K in keyof Resources]: Resources[K] } = { ...defaults, ...withoutUndefined(given ?? {}) };
  // A request above a default limit raises the limit to the request (the API rejects request > limit).
  for (const kind of ['cpu', 'memory'] as const) {
    const request = given?.[`${kind}Request`];
    const defaultLimit = defaults[`${kind}Limit`];
    if (request && defaultLimit && given?.[`${kind}Limit`] === undefined
      && parseQuantity(`${kind}Request`, request) > parseQuantity(`${kind}Limit`, defaultLimit)) {
      r[`${kind}Limit`] = request;
    }
  }
  const pick = (cpu?: string, memory?: string) => {
    const out: { [key: string]: k8s.Quantity } = {};
    if (cpu) out.cpu = k8s.Quantity.fromString(cpu);
    if (memory) out.memory = k8s.Quantity.fromString(memory);
    return out;
  };
  return { requests: pick(r.cpuRequest, r.memoryRequest), limits: pick(r.cpuLimit, r.memoryLimit) };
}

function withoutUndefined<T extends object>(obj: T): Partial<T> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Pod security context meeting the "restricted" Pod Security Standard. */
export function podSecurityContext(uid: number): k8s.PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: uid,
    runAsGroup: uid,
    fsGroup: uid,
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Container security context meeting the "restricted" Pod Security Standard. */
export function containerSecurityContext(): k8s.SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    runAsNonRoot: true,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Prefer one pod of a group per node and an even spread over zones, unless the user gave an affinity. */
export function spreadOverNodesAndZones(selector: { [key: string]: string }): k8s.TopologySpreadConstraint[] {
  return [...spreadOverNodes(selector), {
    maxSkew: 1,
    topologyKey: 'topology.kubernetes.io/zone',
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selector },
  }];
}

/** Prefer one pod of a group per node, unless the user gave an affinity. */
export function spreadOverNodes(selector: { [key: string]: string }): k8s.TopologySpreadConstraint[] {
  return [{
    maxSkew: 1,
    topologyKey: 'kubernetes.io/hostname',
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selector },
  }];
}

/** Resources of a sidecar running a small shell loop with curl. */
export const SMALL_SIDECAR_RESOURCES: Resources = { cpuRequest: '5m', memoryRequest: '16Mi', memoryLimit: '32Mi' };

/** Where a sidecar with API access finds its token, CA and namespace (`apiTokenVolume`). */
export const API_TOKEN_DIR = '/var/run/secrets/ferretdb.cdk8s.io/api';

/** The one container's mount of `apiTokenVolume()`. */
export const API_TOKEN_MOUNT: k8s.VolumeMount = { name: 'api-token', mountPath: API_TOKEN_DIR, readOnly: true };

/**
 * A projected volume with a short-lived ServiceAccount token, the API server's CA and the
 * namespace: mounted only into the one container that talks to the API, never automounted.
 */
export function apiTokenVolume(): k8s.Volume {
  return {
    name: 'api-token',
    projected: {
      defaultMode: 0o440,
      sources: [
        { serviceAccountToken: { path: 'token', expirationSeconds: 3607 } },
        { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
        { downwardApi: { items: [{ path: 'namespace', fieldRef: { fieldPath: 'metadata.namespace' } }] } },
      ],
    },
  };
}
