export { Cluster, DEFAULT_IMAGE } from './cluster';
export type { ClusterOptions, DeleteOptions, JobResult, PodInfo } from './cluster';
export type { PartitionFrom } from './netns';
export type { ProbeTiming } from './types';
export type { ApiRequest } from './fakeapi';
export type { ExecOptions, ExecResult, ImageSpec, PrivateDir } from './pod';
export { expand } from './env';
export type { UserlandImage } from './userland';
export * from './writability';
