// The Barman Cloud ObjectStore that backups and restores use: its settings checked, its spec rendered.
import { ObjectStoreSettings } from './options';
import {
  ObjectStoreSpec, ObjectStoreSpecConfigurationDataCompression, ObjectStoreSpecConfigurationWalCompression,
} from '../../imports/barman-objectstore-barmancloud.cnpg.io';
import { checkSecretName, invalid } from '../../private/validation';

/** Checks object store settings; `prop` is where they were given (`backup.objectStore`, ...). */
export function checkObjectStore(prop: string, s: ObjectStoreSettings | undefined): ObjectStoreSettings {
  if (s === undefined || s === null || typeof s !== 'object') {
    throw invalid(prop, s, 'object store settings ({ destinationPath, credentialsSecret, ... })');
  }
  if (typeof s.destinationPath !== 'string' || !/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/.test(s.destinationPath)) {
    throw invalid(`${prop}.destinationPath`, s.destinationPath, 'an S3 path such as "s3://bucket/path" (lower-case bucket name, no spaces)');
  }
  if (s.endpointUrl !== undefined && (typeof s.endpointUrl !== 'string' || !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(s.endpointUrl))) {
    throw invalid(`${prop}.endpointUrl`, s.endpointUrl, 'an http:// or https:// URL such as "https://minio.example.com:9000"');
  }
  if (typeof s.credentialsSecret !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s.credentialsSecret) || s.credentialsSecret.length > 253) {
    throw invalid(`${prop}.credentialsSecret`, s.credentialsSecret, 'the name of a Secret (a DNS-1123 subdomain)');
  }
  for (const key of ['accessKeyIdKey', 'secretAccessKeyKey', 'regionKey'] as const) {
    const value = s[key];
    if (value !== undefined && (typeof value !== 'string' || !/^[-._a-zA-Z0-9]{1,253}$/.test(value))) {
      throw invalid(`${prop}.${key}`, value, 'a Secret key (letters, digits, "-", "_" and ".")');
    }
  }
  if (s.endpointCA !== undefined) {
    const ca = s.endpointCA;
    if (ca === null || typeof ca !== 'object') throw invalid(`${prop}.endpointCA`, ca, 'a CA Secret ({ secretName, key })');
    checkSecretName(`${prop}.endpointCA.secretName`, ca.secretName);
    if (ca.key !== undefined && (typeof ca.key !== 'string' || !/^[-._a-zA-Z0-9]{1,253}$/.test(ca.key))) {
      throw invalid(`${prop}.endpointCA.key`, ca.key, 'a Secret key (letters, digits, "-", "_" and ".")');
    }
    if (s.endpointUrl !== undefined && !s.endpointUrl.startsWith('https://')) {
      throw invalid(`${prop}.endpointUrl`, s.endpointUrl, 'an https:// URL when endpointCA is given (the CA verifies a TLS endpoint)');
    }
  }
  return s;
}

/** The `spec` of a Barman Cloud ObjectStore. */
export function objectStoreSpec(s: ObjectStoreSettings, retention?: string, walMaxParallel?: number): ObjectStoreSpec {
  const credentials = s.credentialsSecret;
  return {
    configuration: {
      destinationPath: s.destinationPath,
      endpointUrl: s.endpointUrl,
      endpointCa: s.endpointCA && { name: s.endpointCA.secretName, key: s.endpointCA.key ?? 'ca.crt' },
      s3Credentials: {
        accessKeyId: { name: credentials, key: s.accessKeyIdKey ?? 'ACCESS_KEY_ID' },
        secretAccessKey: { name: credentials, key: s.secretAccessKeyKey ?? 'ACCESS_SECRET_KEY' },
        region: s.regionKey !== undefined ? { name: credentials, key: s.regionKey } : undefined,
      },
      wal: { compression: ObjectStoreSpecConfigurationWalCompression.GZIP, maxParallel: walMaxParallel },
      data: { compression: ObjectStoreSpecConfigurationDataCompression.GZIP },
    },
    retentionPolicy: retention,
  };
}
