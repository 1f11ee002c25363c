import { checkSecretName, invalid } from '../private/validation';

/**
 * Options of a generated credentials Secret.
 */
export interface GeneratedSecretOptions {
  /**
   * Name of the Secret the bootstrap Job creates.
   *
   * @default - `<cluster name>-credentials`
   */
  readonly secretName?: string;
}

/**
 * Where the cluster's passwords come from. The synthesized YAML never holds a password.
 *
 * The Secret has two keys: `replication-password` (the streaming replication role) and
 * `ferretdb-password` (the role FerretDB connects with, which is also a MongoDB user).
 */
export class Credentials {
  /**
   * A Secret created in the cluster at deploy time by a small Job (with a ServiceAccount that
   * may only create Secrets) holding random 64-character hex passwords. The Job never replaces
   * an existing Secret, so redeploying keeps the passwords.
   */
  public static fromGeneratedSecret(options: GeneratedSecretOptions = {}): Credentials {
    if (options.secretName !== undefined) checkSecretName('credentials (Credentials.fromGeneratedSecret secretName)', options.secretName);
    return new Credentials(true, options.secretName);
  }

  /**
   * An existing Secret, used as is. It must hold the keys `replication-password` and
   * `ferretdb-password`.
   *
   * @param secretName the Secret's name, in the namespace of the cluster
   */
  public static fromSecret(secretName: string): Credentials {
    checkSecretName('credentials (Credentials.fromSecret secretName)', secretName);
    return new Credentials(false, secretName);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): Credentials {
    if (!(value instanceof Credentials)) {
      throw invalid(prop, value, 'Credentials.fromGeneratedSecret() or Credentials.fromSecret(name)');
    }
    return value;
  }

  /**
   * Whether a bootstrap Job generates the Secret.
   */
  public readonly generated: boolean;

  /**
   * The Secret's name, when given.
   */
  public readonly secretName?: string;

  private constructor(generated: boolean, secretName?: string) {
    this.generated = generated;
    this.secretName = secretName;
  }
}

/** Keys of the credentials Secret. */
export const SECRET_KEYS = {
  replicationPassword: 'replication-password',
  ferretdbPassword: 'ferretdb-password',
};
