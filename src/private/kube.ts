import { ApiObject, GroupVersionKind, Lazy } from 'cdk8s';
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';

/*
 * Kubernetes objects written with cdk8s-plus' typed props (`k8s.KubeStatefulSetProps`, ...) but
 * rendered by cdk8s' plain ApiObject. The typed classes convert every struct at synth into a new
 * object built one key at a time, on top of the plain rendering: for a large app that was the
 * biggest share of the library's own synth time. Here the props are converted once, when the
 * object is created, to the names and values the API reads; cdk8s then resolves and sorts them
 * as for any ApiObject. The output is the typed classes' output (test/kube.test.ts compares
 * them object by object).
 */

/** The typed props' names that differ from the API's (cdk8s-plus' camel case of acronyms). */
const API_NAMES = new Map(Object.entries({
  clientIp: 'clientIP',
  clusterIp: 'clusterIP',
  datasetUuid: 'datasetUUID',
  diskUri: 'diskURI',
  downwardApi: 'downwardAPI',
  externalId: 'externalID',
  hostIp: 'hostIP',
  hostIpc: 'hostIPC',
  hostPid: 'hostPID',
  insecureSkipTlsVerify: 'insecureSkipTLSVerify',
  loadBalancerIp: 'loadBalancerIP',
  nodeId: 'nodeID',
  nonResourceUrLs: 'nonResourceURLs',
  pdId: 'pdID',
  podCidRs: 'podCIDRs',
  podCidr: 'podCIDR',
  providerId: 'providerID',
  scaleIo: 'scaleIO',
  setHostnameAsFqdn: 'setHostnameAsFQDN',
  storagePolicyId: 'storagePolicyID',
  targetCpuUtilizationPercentage: 'targetCPUUtilizationPercentage',
  targetWwNs: 'targetWWNs',
  volumeId: 'volumeID',
}));

/** Props whose keys are chosen by users (labels, ConfigMap data, selectors), never renamed. */
const MAPS = new Set(['annotations', 'binaryData', 'data', 'labels', 'limits', 'matchLabels', 'nodeSelector', 'requests', 'selector', 'stringData']);

/**
 * A typed value as the API reads it: API names, quantities and int-or-strings as their values.
 * What needs no change is returned as it is (as the typed classes keep their props).
 */
function apiValue(value: unknown, isMap = false): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const v = apiValue(value[i]);
      if (v !== value[i]) (out ??= [...value])[i] = v;
    }
    return out ?? value;
  }
  if (value.constructor !== Object) {
    if (value instanceof k8s.Quantity || value instanceof k8s.IntOrString) return value.value;
    if (value instanceof Lazy) return Lazy.any({ produce: () => apiValue(value.produce(), isMap) });
    return value;
  }
  const struct = value as { [key: string]: unknown };
  let out: { [key: string]: unknown } | undefined;
  for (const key in struct) {
    const v = struct[key];
    const converted = apiValue(v, MAPS.has(key));
    const name = isMap ? key : API_NAMES.get(key) ?? key;
    if (converted !== v || name !== key) {
      out ??= { ...struct };
      if (name !== key) delete out[key];
      out[name] = converted;
    }
  }
  return out ?? value;
}

/** One of cdk8s-plus' typed object classes (`k8s.KubeStatefulSet`, ...). */
export interface KubeType<P> {
  readonly GVK: GroupVersionKind;
  new (scope: Construct, id: string, props: P): ApiObject;
}

/**
 * `new type(scope, id, props)`, rendered as a plain ApiObject: the same output, without the
 * typed classes' per-struct conversion at synth.
 */
export function kube<P extends object>(type: KubeType<P>, scope: Construct, id: string, props: P): ApiObject {
  return new ApiObject(scope, id, { ...type.GVK, ...apiValue(props) as object });
}
