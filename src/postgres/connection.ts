/**
 * What FerretDB needs from a PostgreSQL backend: where to connect, as whom, how to check the
 * server's certificate, and the labels its pods need to pass the backend's NetworkPolicy.
 * Both backends (`PostgresBackend.statefulSets()`, `PostgresBackend.cloudNativePG()`) return one.
 */
export interface PostgresConnection {
  /** Service of the current primary (reads and writes). */
  readonly readWriteHost: string;
  /** Service of the hot standbys only (reads). */
  readonly readOnlyHost: string;
  /** PostgreSQL port of both Services. */
  readonly port: number;
  /** The PostgreSQL role FerretDB connects with (also a MongoDB user). */
  readonly username: string;
  /** The Secret holding the role's password. */
  readonly secretName: string;
  /** The key of the password in `secretName`. */
  readonly passwordKey: string;
  /**
   * The Secret with the CA that signed the server certificates; FerretDB then connects with
   * `sslmode=verify-full`.
   *
   * @default - no TLS
   */
  readonly caSecretName?: string;
  /**
   * The key of the CA certificate in `caSecretName`.
   *
   * @default "ca.crt"
   */
  readonly caKey?: string;
  /** Labels a client pod needs for the backend's NetworkPolicy to let it reach PostgreSQL. */
  readonly clientLabels: { [key: string]: string };
}
