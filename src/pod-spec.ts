import { k8s } from 'cdk8s-plus-28';
import { Resources } from './common';
import { invalid, parseQuantity } from './validation';

export function checkResources(prop: string, resources: Resources | undefined): void {
  for (const [key, value] of Object.entries(resources ?? {})) {
    if (value !== undefined) parseQuantity(`${prop}.${key}`, value);
  }
  if (resources?.memoryRequest && resources.memoryLimit
    && parseQuantity(`${prop}.memoryRequest`, resources.memoryRequest) > parseQuantity(`${prop}.memoryLimit`, resources.memoryLimit)) {
    throw invalid(`${prop}.memoryRequest`, resources.memoryRequest, `at most ${prop}.memoryLimit (${resources.memoryLimit})`);
  }
}

export function renderResources(given: Resources | undefined, defaults: Resources): k8s.ResourceRequirements {
  const r = { ...defaults, ...withoutUndefined(given ?? {}) };
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

/** Prefer one pod of a group per node, unless the user gave an affinity. */
export function spreadOverNodes(selector: { [key: string]: string }): k8s.TopologySpreadConstraint[] {
  return [{
    maxSkew: 1,
    topologyKey: 'kubernetes.io/hostname',
    whenUnsatisfiable: 'ScheduleAnyway',
    labelSelector: { matchLabels: selector },
  }];
}
