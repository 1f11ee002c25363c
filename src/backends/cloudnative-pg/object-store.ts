// The Barman Cloud ObjectStore that backups and restores use: its settings checked, its spec rendered.
import { ObjectStoreCredentials, ObjectStoreEncryption, ObjectStoreProvider } from './object-store-credentials';
import { ObjectStoreSettings } from './options';
import {
  ObjectStoreSpec, ObjectStoreSpecConfigurationDataCompression, ObjectStoreSpecConfigurationDataEncryption,
  ObjectStoreSpecConfigurationWalCompression, ObjectStoreSpecConfigurationWalEncryption,
} from '../../imports/barman-objectstore-barmancloud.cnpg.io';
import { checkSecretName, invalid } from '../../private/validation';

/** Checks object store settings; `prop` is where they were given (`backup.objectStore`, ...). */
export function checkObjectStore(prop: string, s: ObjectStoreSettings | undefined): ObjectStoreSettings {
  if (s === undefined || s === null || typeof s !== 'object') {
    throw invalid(prop, s, 'object store settings ({ destinationPath, credentialsSecret, ... })');
  }
  if (s.endpointUrl !== undefined && (typeof s.endpointUrl !== 'string' || !/^https?:\/\/[^\s/]+(\/[^\s]*)?$/.test(s.endpointUrl))) {
    throw invalid(`${prop}.endpointUrl`, s.endpointUrl, 'an http:// or https:// URL such as "https://minio.example.com:9000"');
  }
  if (s.credentials === undefined
    && (typeof s.credentialsSecret !== 'string' || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s.credentialsSecret) || s.credentialsSecret.length > 253)) {
    throw invalid(`${prop}.credentialsSecret`, s.credentialsSecret, 'the name of a Secret (a DNS-1123 subdomain), or credentials');
  }
  for (const key of ['accessKeyIdKey', 'secretAccessKeyKey', 'regionKey'] as const) {
    const value = s[key];
    if (value !== undefined && (typeof value !== 'string' || !/^[-._a-zA-Z0-9]{1,253}$/.test(value))) {
      throw invalid(`${prop}.${key}`, value, 'a Secret key (letters, digits, "-", "_" and ".")');
    }
  }
  const provider = credentialsOf(prop, s).provider;
  const path = DESTINATION[provider];
  if (typeof s.destinationPath !== 'string' || !path.pattern.test(s.destinationPath)) {
    throw invalid(`${prop}.destinationPath`, s.destinationPath, path.expected);
  }
  if (s.encryption !== undefined) {
    if (!Object.values(ObjectStoreEncryption).includes(s.encryption)) {
      throw invalid(`${prop}.encryption`, s.encryption, 'ObjectStoreEncryption.AES256 or ObjectStoreEncryption.AWS_KMS');
    }
    if (provider !== ObjectStoreProvider.S3) throw invalid(`${prop}.encryption`, s.encryption, `no value with ${provider} credentials (S3 only)`);
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

/** The scheme of `destinationPath` each provider takes. */
const DESTINATION: { [provider: string]: { pattern: RegExp; expected: string } } = {
  [ObjectStoreProvider.S3]: {
    pattern: /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[^\s]*)?$/,
    expected: 'an S3 path such as "s3://bucket/path" (lower-case bucket name, no spaces)',
  },
  [ObjectStoreProvider.GCS]: {
    pattern: /^gs:\/\/[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](\/[^\s]*)?$/,
    expected: 'a Google Cloud Storage path such as "gs://bucket/path" (with Google Cloud Storage credentials)',
  },
  [ObjectStoreProvider.AZURE]: {
    pattern: /^https?:\/\/[^\s/]+\/[a-z0-9][-a-z0-9]{1,61}[a-z0-9](\/[^\s]*)?$/,
    expected: 'an Azure Blob Storage URL such as "https://ACCOUNT.blob.core.windows.net/container/path" (with Azure credentials)',
  },
};

/** The credentials: `credentials`, or S3 access keys from `credentialsSecret` (not both). */
function credentialsOf(prop: string, s: ObjectStoreSettings): ObjectStoreCredentials {
  if (s.credentials === undefined) {
    return ObjectStoreCredentials.s3AccessKeys(s.credentialsSecret as string, {
      accessKeyIdKey: s.accessKeyIdKey, secretAccessKeyKey: s.secretAccessKeyKey, regionKey: s.regionKey,
    });
  }
  const credentials = ObjectStoreCredentials._check(`${prop}.credentials`, s.credentials);
  for (const key of ['credentialsSecret', 'accessKeyIdKey', 'secretAccessKeyKey', 'regionKey'] as const) {
    if (s[key] !== undefined) throw invalid(`${prop}.${key}`, s[key], 'no value with credentials (they name their own Secret)');
  }
  return credentials;
}

/** The `spec` of a Barman Cloud ObjectStore (of settings checkObjectStore passed). */
export function objectStoreSpec(s: ObjectStoreSettings, retention?: string, walMaxParallel?: number): ObjectStoreSpec {
  const encryption = s.encryption;
  return {
    configuration: {
      destinationPath: s.destinationPath,
      endpointUrl: s.endpointUrl,
      endpointCa: s.endpointCA && { name: s.endpointCA.secretName, key: s.endpointCA.key ?? 'ca.crt' },
      ...credentialsOf('objectStore', s)._configuration,
      wal: {
        compression: ObjectStoreSpecConfigurationWalCompression.GZIP,
        encryption: encryption && encryption as string as ObjectStoreSpecConfigurationWalEncryption,
        maxParallel: walMaxParallel,
      },
      data: {
        compression: ObjectStoreSpecConfigurationDataCompression.GZIP,
        encryption: encryption && encryption as string as ObjectStoreSpecConfigurationDataEncryption,
      },
    },
    retentionPolicy: retention,
  };
}
