// How the Barman Cloud plugin authenticates to an object store (S3, Azure Blob Storage, Google
// Cloud Storage) and whether S3 encrypts what it stores.
import { checkSecretName, invalid } from '../../private/validation';

/** The cloud an object store belongs to; its `destinationPath` scheme follows it. */
export enum ObjectStoreProvider {
  /** S3 or an S3-compatible service: `s3://bucket/path`. */
  S3 = 's3',
  /** Azure Blob Storage: `https://ACCOUNT.blob.core.windows.net/container/path` (or an emulator's http(s) URL). */
  AZURE = 'azure',
  /** Google Cloud Storage: `gs://bucket/path`. */
  GCS = 'gcs',
}

/**
 * Server-side encryption S3 applies to the WAL and base backups (`wal.encryption` and
 * `data.encryption` of the ObjectStore), when the bucket does not already enforce it.
 */
export enum ObjectStoreEncryption {
  /** SSE-S3 (AES-256 with keys S3 manages). */
  AES256 = 'AES256',
  /** SSE-KMS (the bucket's AWS KMS key). */
  AWS_KMS = 'aws:kms',
}

/** Keys of a Secret holding S3 access keys. */
export interface S3AccessKeysOptions {
  /** @default "ACCESS_KEY_ID" */
  readonly accessKeyIdKey?: string;
  /** @default "ACCESS_SECRET_KEY" */
  readonly secretAccessKeyKey?: string;
  /** @default - none (the endpoint's default region) */
  readonly regionKey?: string;
  /** @default - none (long-lived keys) */
  readonly sessionTokenKey?: string;
}

const KEY = /^[-._a-zA-Z0-9]{1,253}$/;

/**
 * The credentials of an object store (`s3Credentials`, `azureCredentials` or `googleCredentials`
 * of the Barman Cloud ObjectStore). Secrets are in the cluster's namespace.
 */
export class ObjectStoreCredentials {
  /** S3 access keys from a Secret. */
  public static s3AccessKeys(secretName: string, options: S3AccessKeysOptions = {}): ObjectStoreCredentials {
    const o = options ?? {};
    const ref = refs('ObjectStoreCredentials.s3AccessKeys', secretName, { ...o });
    return new ObjectStoreCredentials(ObjectStoreProvider.S3, {
      s3Credentials: {
        accessKeyId: ref(o.accessKeyIdKey ?? 'ACCESS_KEY_ID'),
        secretAccessKey: ref(o.secretAccessKeyKey ?? 'ACCESS_SECRET_KEY'),
        region: o.regionKey !== undefined ? ref(o.regionKey) : undefined,
        sessionToken: o.sessionTokenKey !== undefined ? ref(o.sessionTokenKey) : undefined,
      },
    });
  }

  /**
   * S3 with the pods' IAM role (`inheritFromIAMRole`): no keys; the instances' ServiceAccount
   * (CloudNativePG names it after the Cluster) must carry the role, for example through EKS
   * IRSA's `eks.amazonaws.com/role-arn` annotation.
   */
  public static s3IamRole(): ObjectStoreCredentials {
    return new ObjectStoreCredentials(ObjectStoreProvider.S3, { s3Credentials: { inheritFromIamRole: true } });
  }

  /** Azure: the storage account's name and key from a Secret. */
  public static azureStorageKey(secretName: string, storageAccountKey = 'AZURE_STORAGE_ACCOUNT', storageKeyKey = 'AZURE_STORAGE_KEY'): ObjectStoreCredentials {
    const ref = refs('ObjectStoreCredentials.azureStorageKey', secretName, { storageAccountKey, storageKeyKey });
    return new ObjectStoreCredentials(ObjectStoreProvider.AZURE, {
      azureCredentials: { storageAccount: ref(storageAccountKey), storageKey: ref(storageKeyKey) },
    });
  }

  /** Azure: the storage account's name and a shared access signature from a Secret. */
  public static azureSasToken(secretName: string, storageAccountKey = 'AZURE_STORAGE_ACCOUNT', sasTokenKey = 'AZURE_STORAGE_SAS_TOKEN'): ObjectStoreCredentials {
    const ref = refs('ObjectStoreCredentials.azureSasToken', secretName, { storageAccountKey, sasTokenKey });
    return new ObjectStoreCredentials(ObjectStoreProvider.AZURE, {
      azureCredentials: { storageAccount: ref(storageAccountKey), storageSasToken: ref(sasTokenKey) },
    });
  }

  /** Azure: a connection string from a Secret. */
  public static azureConnectionString(secretName: string, key = 'AZURE_CONNECTION_STRING'): ObjectStoreCredentials {
    const ref = refs('ObjectStoreCredentials.azureConnectionString', secretName, { key });
    return new ObjectStoreCredentials(ObjectStoreProvider.AZURE, { azureCredentials: { connectionString: ref(key) } });
  }

  /** Azure: the pods' workload identity (`inheritFromAzureAD`). */
  public static azureWorkloadIdentity(): ObjectStoreCredentials {
    return new ObjectStoreCredentials(ObjectStoreProvider.AZURE, { azureCredentials: { inheritFromAzureAd: true } });
  }

  /** Azure: the default credential chain (`useDefaultAzureCredentials`: environment, managed identity, ...). */
  public static azureDefaultCredentials(): ObjectStoreCredentials {
    return new ObjectStoreCredentials(ObjectStoreProvider.AZURE, { azureCredentials: { useDefaultAzureCredentials: true } });
  }

  /** Google Cloud Storage: a service account's JSON key from a Secret. */
  public static gcsServiceAccountKey(secretName: string, key = 'credentials.json'): ObjectStoreCredentials {
    const ref = refs('ObjectStoreCredentials.gcsServiceAccountKey', secretName, { key });
    return new ObjectStoreCredentials(ObjectStoreProvider.GCS, { googleCredentials: { applicationCredentials: ref(key) } });
  }

  /** Google Cloud Storage: GKE Workload Identity (`gkeEnvironment`), no key. */
  public static gkeWorkloadIdentity(): ObjectStoreCredentials {
    return new ObjectStoreCredentials(ObjectStoreProvider.GCS, { googleCredentials: { gkeEnvironment: true } });
  }

  /** @internal */
  public static _check(prop: string, value: unknown): ObjectStoreCredentials {
    if (!(value instanceof ObjectStoreCredentials)) throw invalid(prop, value, 'ObjectStoreCredentials.s3AccessKeys(...), .s3IamRole(), .azure...() or .gcs...()');
    return value;
  }

  /** The cloud these credentials are for. */
  public readonly provider: ObjectStoreProvider;
  /** @internal the ObjectStore `configuration` fields */
  public readonly _configuration: { [key: string]: any };

  private constructor(provider: ObjectStoreProvider, configuration: { [key: string]: any }) {
    this.provider = provider;
    this._configuration = configuration;
  }
}

/** Checks a Secret name and keys; returns a reference maker. */
function refs(prop: string, secretName: string, keys: { [name: string]: string | undefined }): (key: string) => { name: string; key: string } {
  checkSecretName(`${prop} secretName`, secretName);
  for (const [name, key] of Object.entries(keys)) {
    if (key !== undefined && (typeof key !== 'string' || !KEY.test(key))) {
      throw invalid(`${prop} ${name}`, key, 'a Secret key (letters, digits, "-", "_" and ".")');
    }
  }
  return (key) => ({ name: secretName, key });
}
