// What the transport knows about a connection, as plain data: the TCP peer, the
// PROXY protocol header a load balancer put in front of it, and the TLS session.
// The transport fills these in once per connection; the echo model reads them and
// never a socket, so everything under echo/ runs (and is tested) without a network.

export interface ProxyTlvs {
  alpn?: string;
  authority?: string;
  /** As text when it is printable ASCII (HAProxy's ids are), else as hex. */
  uniqueId?: string;
  netns?: string;
  crc32c?: string;
  ssl?: {
    /** The client field as sent: PP2_CLIENT_SSL (1), PP2_CLIENT_CERT_CONN (2), PP2_CLIENT_CERT_SESS (4). */
    client: number;
    /** The bits of `client` by name: `SSL`, `CERT_CONN`, `CERT_SESS`. */
    clientBits: string[];
    /** The verify field as sent: 0 when the certificate (if any) verified. */
    verify: number;
    /** A client certificate was presented (CERT_CONN or CERT_SESS) and verify is 0. */
    verified: boolean;
    version?: string;
    cn?: string;
    cipher?: string;
    sigAlg?: string;
    keyAlg?: string;
  };
  /** Types this parser does not name, as hex. */
  other?: { type: number; value: string }[];
}

export interface ProxyInfo {
  version: 1 | 2;
  /** PROXY (a relayed connection) or LOCAL (the proxy's own, e.g. a health check). */
  command: 'PROXY' | 'LOCAL';
  /** TCP4, TCP6, UDP4, UDP6, UNIX, UNKNOWN... */
  transport: string;
  sourceAddress: string | null;
  sourcePort: number | null;
  destinationAddress: string | null;
  destinationPort: number | null;
  tlvs: ProxyTlvs;
}

export interface ClientCertificate {
  subject: string;
  issuer: string;
  subjectAltName: string | null;
  validFrom: string;
  validTo: string;
  serialNumber: string;
  fingerprint256: string;
  /** Whether it verified against --tls-client-ca. */
  verified: boolean;
  verifyError: string | null;
}

export interface TlsInfo {
  version: string | null;
  cipher: string | null;
  sni: string | null;
  alpn: string | null;
  clientCertificate: ClientCertificate | null;
}

/** One connection, as the front stage saw it (see transport/front.ts). */
export interface ConnectionFacts {
  /** The TCP peer (a proxy, when a PROXY header names the original client). */
  peerAddress: string;
  peerPort: number | undefined;
  /** The PROXY protocol header, when the listener takes one. */
  proxy: ProxyInfo | null;
  /** TLS details when the connection is encrypted. */
  tls: TlsInfo | null;
}
