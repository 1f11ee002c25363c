import { k8s } from 'cdk8s-plus-28';

/**
 * CPU and memory of a container, as Kubernetes quantities.
 */
export interface Resources {
  /**
   * @default - per container (see the README's defaults table)
   */
  readonly cpuRequest?: string;
  /**
   * No CPU limit by default: throttling a database hurts more than it protects.
   *
   * @default - no limit
   */
  readonly cpuLimit?: string;
  /**
   * @default - per container (see the README's defaults table)
   */
  readonly memoryRequest?: string;
  /**
   * @default - per container (see the README's defaults table)
   */
  readonly memoryLimit?: string;
}

/**
 * Where pods may run.
 */
export interface Scheduling {
  /**
   * @default - no node selector
   */
  readonly nodeSelector?: { [key: string]: string };
  /**
   * @default - no tolerations
   */
  readonly tolerations?: k8s.Toleration[];
  /**
   * Replaces the default, which prefers to put the pods of each group on different nodes
   * (topology spread over `kubernetes.io/hostname`, and PostgreSQL pods away from each other).
   *
   * @default - pods of one group spread over nodes
   */
  readonly affinity?: k8s.Affinity;
}

/**
 * The persistent volume of each PostgreSQL pod.
 */
export interface StorageSettings {
  /**
   * @default "10Gi"
   */
  readonly size?: string;
  /**
   * @default - the cluster's default StorageClass
   */
  readonly storageClassName?: string;
}

export const DEFAULT_STORAGE_SIZE = '10Gi';
