/**
 * The subset of the Kubernetes object model the harness reads. Objects come in as plain JS (the
 * output of `Testing.synth(chart)` or `yaml.parseAllDocuments`); every field is optional here and
 * checked where it is used.
 */

export type StringMap = Record<string, string>;

export interface ObjectMeta {
  readonly name?: string;
  readonly generateName?: string;
  readonly namespace?: string;
  readonly labels?: StringMap;
  readonly annotations?: StringMap;
  /** Set by the API server (the harness's object store). */
  readonly uid?: string;
  readonly resourceVersion?: string;
  readonly creationTimestamp?: string;
}

export interface KubeObject {
  readonly apiVersion?: string;
  readonly kind?: string;
  readonly metadata?: ObjectMeta;
}

export interface ConfigMap extends KubeObject {
  readonly data?: StringMap;
  readonly binaryData?: StringMap;
}

export interface Secret extends KubeObject {
  readonly type?: string;
  readonly data?: StringMap;
  readonly stringData?: StringMap;
}

export interface ServicePort {
  readonly name?: string;
  readonly port: number;
  readonly targetPort?: number | string;
  readonly protocol?: string;
}

export interface Service extends KubeObject {
  readonly spec?: {
    readonly type?: string;
    readonly clusterIP?: string;
    readonly selector?: StringMap;
    readonly ports?: ServicePort[];
    readonly publishNotReadyAddresses?: boolean;
  };
}

export interface ServiceAccount extends KubeObject {
  readonly automountServiceAccountToken?: boolean;
}

export interface PolicyRule {
  readonly apiGroups?: string[];
  readonly resources?: string[];
  readonly resourceNames?: string[];
  readonly verbs?: string[];
}

export interface Role extends KubeObject {
  readonly rules?: PolicyRule[];
}

export interface RoleBinding extends KubeObject {
  readonly roleRef?: { readonly kind?: string; readonly name?: string };
  readonly subjects?: Array<{ readonly kind?: string; readonly name?: string; readonly namespace?: string }>;
}

export interface KeyToPath {
  readonly key: string;
  readonly path: string;
  readonly mode?: number;
}

export interface ObjectFieldSelector {
  readonly fieldPath: string;
}

export interface ResourceFieldSelector {
  readonly containerName?: string;
  readonly resource: string;
  readonly divisor?: string | number;
}

export interface DownwardApiFile {
  readonly path: string;
  readonly fieldRef?: ObjectFieldSelector;
  readonly resourceFieldRef?: ResourceFieldSelector;
  readonly mode?: number;
}

export interface ProjectedSource {
  readonly configMap?: { readonly name?: string; readonly items?: KeyToPath[]; readonly optional?: boolean };
  readonly secret?: { readonly name?: string; readonly items?: KeyToPath[]; readonly optional?: boolean };
  readonly downwardAPI?: { readonly items?: DownwardApiFile[] };
  readonly serviceAccountToken?: { readonly path: string; readonly expirationSeconds?: number; readonly audience?: string };
}

export interface Volume {
  readonly name: string;
  readonly configMap?: {
    readonly name?: string;
    readonly items?: KeyToPath[];
    readonly defaultMode?: number;
    readonly optional?: boolean;
  };
  readonly secret?: {
    readonly secretName?: string;
    readonly items?: KeyToPath[];
    readonly defaultMode?: number;
    readonly optional?: boolean;
  };
  readonly emptyDir?: { readonly medium?: string; readonly sizeLimit?: unknown };
  readonly persistentVolumeClaim?: { readonly claimName: string; readonly readOnly?: boolean };
  readonly downwardAPI?: { readonly items?: DownwardApiFile[]; readonly defaultMode?: number };
  readonly projected?: { readonly sources?: ProjectedSource[]; readonly defaultMode?: number };
  readonly hostPath?: { readonly path: string };
}

export interface VolumeMount {
  readonly name: string;
  readonly mountPath: string;
  readonly subPath?: string;
  readonly subPathExpr?: string;
  readonly readOnly?: boolean;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string;
  readonly valueFrom?: {
    readonly fieldRef?: ObjectFieldSelector;
    readonly resourceFieldRef?: ResourceFieldSelector;
    readonly configMapKeyRef?: { readonly name?: string; readonly key: string; readonly optional?: boolean };
    readonly secretKeyRef?: { readonly name?: string; readonly key: string; readonly optional?: boolean };
  };
}

export interface EnvFromSource {
  readonly prefix?: string;
  readonly configMapRef?: { readonly name?: string; readonly optional?: boolean };
  readonly secretRef?: { readonly name?: string; readonly optional?: boolean };
}

export interface ExecAction {
  readonly command?: string[];
}

export interface HttpGetAction {
  readonly path?: string;
  readonly port: number | string;
  readonly host?: string;
  readonly scheme?: string;
  readonly httpHeaders?: Array<{ readonly name: string; readonly value: string }>;
}

export interface TcpSocketAction {
  readonly port: number | string;
  readonly host?: string;
}

export interface Probe {
  readonly exec?: ExecAction;
  readonly httpGet?: HttpGetAction;
  readonly tcpSocket?: TcpSocketAction;
  readonly grpc?: unknown;
  readonly initialDelaySeconds?: number;
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly successThreshold?: number;
  readonly failureThreshold?: number;
}

export interface LifecycleHandler {
  readonly exec?: ExecAction;
  readonly httpGet?: HttpGetAction;
  readonly sleep?: { readonly seconds: number };
}

export interface SecurityContext {
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  readonly runAsNonRoot?: boolean;
  readonly allowPrivilegeEscalation?: boolean;
  readonly readOnlyRootFilesystem?: boolean;
  readonly capabilities?: { readonly add?: string[]; readonly drop?: string[] };
}

export interface PodSecurityContext {
  readonly runAsUser?: number;
  readonly runAsGroup?: number;
  readonly runAsNonRoot?: boolean;
  readonly fsGroup?: number;
  readonly fsGroupChangePolicy?: string;
  readonly supplementalGroups?: number[];
}

export interface ContainerPort {
  readonly name?: string;
  readonly containerPort: number;
  readonly protocol?: string;
}

export interface Container {
  readonly name: string;
  readonly image?: string;
  readonly command?: string[];
  readonly args?: string[];
  readonly workingDir?: string;
  readonly env?: EnvVar[];
  readonly envFrom?: EnvFromSource[];
  readonly ports?: ContainerPort[];
  readonly volumeMounts?: VolumeMount[];
  readonly readinessProbe?: Probe;
  readonly livenessProbe?: Probe;
  readonly startupProbe?: Probe;
  readonly lifecycle?: { readonly postStart?: LifecycleHandler; readonly preStop?: LifecycleHandler };
  readonly securityContext?: SecurityContext;
  readonly resources?: {
    readonly limits?: Record<string, string | number>;
    readonly requests?: Record<string, string | number>;
  };
  readonly restartPolicy?: string;
}

export interface PodSpec {
  readonly containers: Container[];
  readonly initContainers?: Container[];
  readonly volumes?: Volume[];
  readonly securityContext?: PodSecurityContext;
  readonly serviceAccountName?: string;
  readonly serviceAccount?: string;
  readonly automountServiceAccountToken?: boolean;
  readonly terminationGracePeriodSeconds?: number;
  readonly hostname?: string;
  readonly subdomain?: string;
  readonly restartPolicy?: string;
  readonly enableServiceLinks?: boolean;
  readonly activeDeadlineSeconds?: number;
  readonly hostAliases?: Array<{ readonly ip: string; readonly hostnames?: string[] }>;
}

export interface PodTemplateSpec {
  readonly metadata?: ObjectMeta;
  readonly spec: PodSpec;
}

export interface PersistentVolumeClaim extends KubeObject {
  readonly spec?: unknown;
}

export interface StatefulSet extends KubeObject {
  readonly spec: {
    readonly replicas?: number;
    readonly serviceName?: string;
    readonly podManagementPolicy?: string;
    readonly updateStrategy?: {
      readonly type?: string;
      readonly rollingUpdate?: { readonly partition?: number; readonly maxUnavailable?: number | string };
    };
    readonly selector?: { readonly matchLabels?: StringMap };
    readonly template: PodTemplateSpec;
    readonly volumeClaimTemplates?: PersistentVolumeClaim[];
    readonly persistentVolumeClaimRetentionPolicy?: { readonly whenScaled?: string; readonly whenDeleted?: string };
  };
}

export interface Deployment extends KubeObject {
  readonly spec: {
    readonly replicas?: number;
    readonly selector?: { readonly matchLabels?: StringMap };
    readonly strategy?: {
      readonly type?: string;
      readonly rollingUpdate?: { readonly maxSurge?: number | string; readonly maxUnavailable?: number | string };
    };
    readonly template: PodTemplateSpec;
  };
}

export interface Job extends KubeObject {
  readonly spec: {
    readonly backoffLimit?: number;
    readonly activeDeadlineSeconds?: number;
    readonly template: PodTemplateSpec;
  };
}

/**
 * 'fast': probe periods and initial delays capped at 1 s; 'scaled': the same, liveness/startup
 * thresholds scaled to keep failureThreshold x periodSeconds; 'synthesized': as synthesized.
 */
export type ProbeTiming = 'fast' | 'scaled' | 'synthesized';
