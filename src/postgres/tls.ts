import { Lazy } from 'cdk8s';
import { Construct } from 'constructs';
import { Certificate, CertificateSpecPrivateKeyRotationPolicy, CertificateSpecUsages } from '../imports/cert-manager-certificate-cert-manager.io';
import { checkSecretName, invalid } from '../private/validation';

/** Keys of a TLS Secret (`kubernetes.io/tls` plus the CA, as cert-manager writes it). */
export const TLS_KEYS = { cert: 'tls.crt', key: 'tls.key', ca: 'ca.crt' };

/**
 * Options of a cert-manager `Certificate` for PostgreSQL.
 */
export interface PostgresTlsCertManagerOptions {
  /**
   * The issuer that signs the certificate. It must put its CA certificate into the Secret's
   * `ca.crt` (a CA, self-signed or Vault issuer does; ACME issuers cannot sign cluster-internal
   * names).
   */
  readonly issuerName: string;
  /**
   * `Issuer` (in the cluster's namespace) or `ClusterIssuer`.
   *
   * @default "Issuer"
   */
  readonly issuerKind?: string;
  /**
   * The Secret cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`).
   *
   * @default - `<primary name>-tls`
   */
  readonly secretName?: string;
}

/**
 * Options of a cert-manager `Certificate` for FerretDB's MongoDB listener.
 */
export interface FerretDBTlsCertManagerOptions {
  /**
   * The issuer that signs the certificate. Clients verify it against the issuer's CA (the
   * Secret's `ca.crt` with a CA issuer); an ACME issuer can sign only `additionalDnsNames` that
   * are public.
   */
  readonly issuerName: string;
  /**
   * `Issuer` (in the cluster's namespace) or `ClusterIssuer`.
   *
   * @default "Issuer"
   */
  readonly issuerKind?: string;
  /**
   * The Secret cert-manager writes (`tls.crt`, `tls.key`, `ca.crt`).
   *
   * @default - `<cluster name>-ferretdb-tls`
   */
  readonly secretName?: string;
  /**
   * Host names clients use besides the two Services' names (for example a LoadBalancer's or an
   * external DNS name).
   *
   * @default - none
   */
  readonly additionalDnsNames?: string[];
}

/** A cert-manager issuer reference, checked. */
interface Issuer {
  readonly name: string;
  readonly kind: string;
}

/** Checks the options common to every cert-manager source; names the factory in errors. */
function checkIssuer(prop: string, options: { issuerName: string; issuerKind?: string; secretName?: string } | undefined, shape: string): Issuer {
  if (options === null || typeof options !== 'object') throw invalid(`${prop} options)`, options, shape);
  checkSecretName(`${prop} issuerName)`, options.issuerName);
  const kind = options.issuerKind ?? 'Issuer';
  if (!['Issuer', 'ClusterIssuer'].includes(kind)) throw invalid(`${prop} issuerKind)`, kind, '"Issuer" or "ClusterIssuer"');
  if (options.secretName !== undefined) checkSecretName(`${prop} secretName)`, options.secretName);
  return { name: options.issuerName, kind };
}

/** A server certificate for `dnsNames` (resolved at synth), a new key at every renewal. */
function serverCertificate(scope: Construct, o: {
  secretName: string; issuer: Issuer; labels: { [key: string]: string }; dnsNames: () => string[];
}): void {
  new Certificate(scope, 'Certificate', {
    metadata: { name: o.secretName, labels: o.labels },
    spec: {
      secretName: o.secretName,
      dnsNames: Lazy.any({ produce: () => o.dnsNames() }) as any,
      issuerRef: { name: o.issuer.name, kind: o.issuer.kind, group: 'cert-manager.io' },
      // A renewal gets a new key, not only a new certificate.
      privateKey: { rotationPolicy: CertificateSpecPrivateKeyRotationPolicy.ALWAYS },
      usages: [CertificateSpecUsages.SERVER_AUTH, CertificateSpecUsages.DIGITAL_SIGNATURE, CertificateSpecUsages.KEY_ENCIPHERMENT],
    },
  });
}

/**
 * Where PostgreSQL's server certificate comes from. With TLS, every network connection to
 * PostgreSQL is encrypted (`hostssl` only), standbys and FerretDB verify the server's certificate
 * and host name (`sslmode=verify-full`) against the Secret's `ca.crt`, and the pods reload a
 * renewed certificate without a restart.
 */
export class PostgresTls {
  /**
   * An existing Secret with `tls.crt` (the server certificate, for every name in
   * `PostgresPrimary.tlsDnsNames`), `tls.key` and `ca.crt` (the CA that signed it).
   *
   * @param secretName the Secret's name, in the namespace of the cluster
   */
  public static fromSecret(secretName: string): PostgresTls {
    return new PostgresTls(checkSecretName('tls (PostgresTls.fromSecret secretName)', secretName));
  }

  /**
   * A cert-manager `Certificate` the library synthesizes for every Service and pod name of the
   * cluster, signed by the given issuer. Needs cert-manager.
   */
  public static certManager(options: PostgresTlsCertManagerOptions): PostgresTls {
    const issuer = checkIssuer('tls (PostgresTls.certManager', options, '{ issuerName, issuerKind?, secretName? }');
    return new PostgresTls(options.secretName, issuer);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): PostgresTls {
    if (!(value instanceof PostgresTls)) {
      throw invalid(prop, value, 'PostgresTls.fromSecret(name) or PostgresTls.certManager({ issuerName })');
    }
    return value;
  }

  /** The Secret's name, when given. */
  public readonly secretName?: string;
  /** The cert-manager issuer, when the library synthesizes the Certificate. */
  private readonly issuer?: Issuer;

  private constructor(secretName?: string, issuer?: Issuer) {
    this.secretName = secretName;
    this.issuer = issuer;
  }

  /**
   * The Secret the pods mount, and the Certificate writing it when cert-manager issues it.
   * @internal
   */
  public _bind(scope: Construct, o: { defaultSecretName: string; labels: { [key: string]: string }; dnsNames: () => string[] }): string {
    const secretName = this.secretName ?? o.defaultSecretName;
    if (this.issuer) serverCertificate(scope, { secretName, issuer: this.issuer, labels: o.labels, dnsNames: o.dnsNames });
    return secretName;
  }
}

/**
 * Where the certificate of FerretDB's MongoDB listener comes from. With it, FerretDB serves
 * MongoDB clients over TLS only (clients connect with `tls=true`) and rolls its pods when the
 * certificate is renewed (FerretDB reads it once, at start).
 */
export class FerretDBTls {
  /**
   * An existing Secret with `tls.crt` (the server certificate, for every name clients use: see
   * `FerretDBCluster.tlsDnsNames`) and `tls.key`.
   *
   * @param secretName the Secret's name, in the namespace of the cluster
   */
  public static fromSecret(secretName: string): FerretDBTls {
    return new FerretDBTls(checkSecretName('ferretdbTls (FerretDBTls.fromSecret secretName)', secretName));
  }

  /**
   * A cert-manager `Certificate` the library synthesizes for both FerretDB Services (and
   * `additionalDnsNames`), signed by the given issuer. Needs cert-manager.
   */
  public static certManager(options: FerretDBTlsCertManagerOptions): FerretDBTls {
    const prop = 'ferretdbTls (FerretDBTls.certManager';
    const issuer = checkIssuer(prop, options, '{ issuerName, issuerKind?, secretName?, additionalDnsNames? }');
    const extra = options.additionalDnsNames ?? [];
    if (!Array.isArray(extra)) throw invalid(`${prop} additionalDnsNames)`, extra, 'a list of host names');
    for (const [i, name] of extra.entries()) {
      if (typeof name !== 'string' || name.length > 253 || !/^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/.test(name)) {
        throw invalid(`${prop} additionalDnsNames[${i}])`, name, 'a lower-case DNS name (a leading "*." is allowed)');
      }
    }
    return new FerretDBTls(options.secretName, issuer, extra);
  }

  /**
   * @internal
   */
  public static _check(prop: string, value: unknown): FerretDBTls {
    if (!(value instanceof FerretDBTls)) {
      throw invalid(prop, value, 'FerretDBTls.fromSecret(name) or FerretDBTls.certManager({ issuerName })');
    }
    return value;
  }

  /** The Secret's name, when given. */
  public readonly secretName?: string;
  private readonly issuer?: Issuer;
  private readonly additionalDnsNames: string[];

  private constructor(secretName?: string, issuer?: Issuer, additionalDnsNames: string[] = []) {
    this.secretName = secretName;
    this.issuer = issuer;
    this.additionalDnsNames = additionalDnsNames;
  }

  /**
   * The Secret the FerretDB pods mount, and the Certificate writing it when cert-manager issues it.
   * @internal
   */
  public _bind(scope: Construct, o: { defaultSecretName: string; labels: { [key: string]: string }; dnsNames: () => string[] }): string {
    const secretName = this.secretName ?? o.defaultSecretName;
    if (this.issuer) {
      const dnsNames = () => [...new Set([...o.dnsNames(), ...this.additionalDnsNames])];
      serverCertificate(scope, { secretName, issuer: this.issuer, labels: o.labels, dnsNames });
    }
    return secretName;
  }
}
