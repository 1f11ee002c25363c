import {
  FerretDBClusterProps, ObjectStoreCredentials, ObjectStoreEncryption, ObjectStoreSettings, PostgresBackend,
} from '../src';
import { validateCustomResource } from './crd-schema';
import { errorOf, find, synth } from './util';

function backupStore(objectStore: ObjectStoreSettings, props: FerretDBClusterProps = {}): any {
  const objs = synth({ ...props, backend: PostgresBackend.cloudNativePG({ backup: { objectStore } }) });
  const store = find(objs, 'ObjectStore', 'x-pg-backup');
  validateCustomResource(store);
  return store.spec.configuration;
}

describe('object store credentials', () => {
  test('credentialsSecret keeps giving S3 access keys, as before', () => {
    const c = backupStore({ destinationPath: 's3://bkt/p', credentialsSecret: 'keys' });
    expect(c.s3Credentials).toEqual({ accessKeyId: { name: 'keys', key: 'ACCESS_KEY_ID' }, secretAccessKey: { name: 'keys', key: 'ACCESS_SECRET_KEY' } });
    expect([c.azureCredentials, c.googleCredentials, c.wal.encryption, c.data.encryption]).toEqual([undefined, undefined, undefined, undefined]);
  });

  test.each([
    ['S3 access keys with a session token', 's3://bkt/p', ObjectStoreCredentials.s3AccessKeys('keys', { sessionTokenKey: 'TOKEN', regionKey: 'REGION' }), {
      s3Credentials: {
        accessKeyId: { name: 'keys', key: 'ACCESS_KEY_ID' },
        secretAccessKey: { name: 'keys', key: 'ACCESS_SECRET_KEY' },
        region: { name: 'keys', key: 'REGION' },
        sessionToken: { name: 'keys', key: 'TOKEN' },
      },
    }],
    ['the IAM role', 's3://bkt/p', ObjectStoreCredentials.s3IamRole(), { s3Credentials: { inheritFromIAMRole: true } }],
    ['an Azure storage key', 'https://acct.blob.core.windows.net/backups/ferretdb', ObjectStoreCredentials.azureStorageKey('az'), {
      azureCredentials: { storageAccount: { name: 'az', key: 'AZURE_STORAGE_ACCOUNT' }, storageKey: { name: 'az', key: 'AZURE_STORAGE_KEY' } },
    }],
    ['an Azure SAS token', 'https://acct.blob.core.windows.net/backups', ObjectStoreCredentials.azureSasToken('az'), {
      azureCredentials: { storageAccount: { name: 'az', key: 'AZURE_STORAGE_ACCOUNT' }, storageSasToken: { name: 'az', key: 'AZURE_STORAGE_SAS_TOKEN' } },
    }],
    ['an Azure connection string', 'https://acct.blob.core.windows.net/backups', ObjectStoreCredentials.azureConnectionString('az'), {
      azureCredentials: { connectionString: { name: 'az', key: 'AZURE_CONNECTION_STRING' } },
    }],
    ['Azure workload identity', 'https://acct.blob.core.windows.net/backups', ObjectStoreCredentials.azureWorkloadIdentity(), { azureCredentials: { inheritFromAzureAD: true } }],
    ['Azure default credentials', 'https://acct.blob.core.windows.net/backups', ObjectStoreCredentials.azureDefaultCredentials(), { azureCredentials: { useDefaultAzureCredentials: true } }],
    ['a GCS service account key', 'gs://bucket/ferretdb', ObjectStoreCredentials.gcsServiceAccountKey('gcs'), {
      googleCredentials: { applicationCredentials: { name: 'gcs', key: 'credentials.json' } },
    }],
    ['GKE workload identity', 'gs://bucket/ferretdb', ObjectStoreCredentials.gkeWorkloadIdentity(), { googleCredentials: { gkeEnvironment: true } }],
  ])('%s: the ObjectStore has only those credentials and validates against its CRD', (_what, destinationPath, credentials, expected) => {
    const c = backupStore({ destinationPath, credentials });
    const fields = ['s3Credentials', 'azureCredentials', 'googleCredentials'].filter((k) => c[k] !== undefined);
    expect(Object.fromEntries(fields.map((k) => [k, c[k]]))).toEqual(expected);
    expect(c.destinationPath).toBe(destinationPath);
  });

  test('a destinationPath of another cloud than the credentials\' fails, naming it and the value', () => {
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p', credentials: ObjectStoreCredentials.gkeWorkloadIdentity() })))
      .toMatch(/^Invalid backup\.objectStore\.destinationPath: "s3:\/\/bkt\/p"\. Expected a Google Cloud Storage path/);
    expect(errorOf(() => backupStore({ destinationPath: 'gs://bucket/p', credentials: ObjectStoreCredentials.s3IamRole() })))
      .toMatch(/^Invalid backup\.objectStore\.destinationPath: "gs:\/\/bucket\/p"\. Expected an S3 path/);
    expect(errorOf(() => backupStore({ destinationPath: 'gs://bucket/p', credentials: ObjectStoreCredentials.azureWorkloadIdentity() })))
      .toMatch(/^Invalid backup\.objectStore\.destinationPath: .*Azure Blob Storage URL/);
  });

  test('credentials with credentialsSecret (or its keys) fails; neither fails', () => {
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p', credentials: ObjectStoreCredentials.s3IamRole(), credentialsSecret: 'keys' })))
      .toMatch(/^Invalid backup\.objectStore\.credentialsSecret: "keys"\. Expected no value with credentials/);
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p', credentials: ObjectStoreCredentials.s3IamRole(), regionKey: 'R' })))
      .toMatch(/^Invalid backup\.objectStore\.regionKey: "R"/);
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p' }))).toMatch(/^Invalid backup\.objectStore\.credentialsSecret: undefined/);
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p', credentials: { provider: 's3' } as any })))
      .toMatch(/^Invalid backup\.objectStore\.credentials: /);
  });

  test('bad Secret names and keys fail, naming the factory', () => {
    expect(errorOf(() => ObjectStoreCredentials.gcsServiceAccountKey('Bad_Name'))).toMatch(/^Invalid ObjectStoreCredentials\.gcsServiceAccountKey secretName: "Bad_Name"/);
    expect(errorOf(() => ObjectStoreCredentials.azureStorageKey('az', 'a key'))).toMatch(/^Invalid ObjectStoreCredentials\.azureStorageKey storageAccountKey: "a key"/);
  });
});

describe('server-side encryption', () => {
  test('on both the WAL and the base backups, and the ObjectStore validates against its CRD', () => {
    const c = backupStore({ destinationPath: 's3://bkt/p', credentials: ObjectStoreCredentials.s3IamRole(), encryption: ObjectStoreEncryption.AWS_KMS });
    expect([c.wal.encryption, c.data.encryption]).toEqual(['aws:kms', 'aws:kms']);
    expect(backupStore({ destinationPath: 's3://bkt/p', credentialsSecret: 'k', encryption: ObjectStoreEncryption.AES256 }).data.encryption).toBe('AES256');
  });

  test('outside S3, or an unknown value, fails naming encryption', () => {
    expect(errorOf(() => backupStore({ destinationPath: 'gs://bucket/p', credentials: ObjectStoreCredentials.gkeWorkloadIdentity(), encryption: ObjectStoreEncryption.AES256 })))
      .toMatch(/^Invalid backup\.objectStore\.encryption: "AES256"\. Expected no value with gcs credentials/);
    expect(errorOf(() => backupStore({ destinationPath: 's3://bkt/p', credentialsSecret: 'k', encryption: 'aes' as any })))
      .toMatch(/^Invalid backup\.objectStore\.encryption: "aes"/);
  });
});
