export * from './cluster';
export * from './common';
export * from './credentials';
export * from './settings';
export * from './primary';
export * from './read-service';
export * from './replica';
export * from './replication-mode';
export { slotNameForPod } from './names';
