// The gRPC echo record written by hand (record.ts) against the generated schema's
// own encoding of the same EchoResponse (create() and toBinary(), the reference
// below, field for field as the record was built before): byte for byte, for
// records that use every field, empty and set, short strings and long ones, ASCII
// and not, nested lengths of one byte and of more, and payloads past the scratch size;
// and the record a call builds (echoRecord) is buildEcho's, for every request here.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { NetworkSet } from '../../src/util/addresses.ts';
import { EMPTY_BODY, buildEcho, type Echo, type EchoContext, type RequestInfo } from '../../src/echo/model.ts';
import { echoFrame, echoRecord, type CallFacts, type EchoRecord } from '../../src/adapters/grpc/record.ts';
import { EchoResponseSchema, type EchoResponse } from '../../src/adapters/grpc/gen/echoserver/v1/echo_pb.js';

const orUndefined = <T>(v: T | null): T | undefined => (v === null ? undefined : v);

/** The reference: the record as a message object, encoded by the generated schema. */
function reference(echo: Echo, call: CallFacts): Uint8Array {
  const metadata: { name: string; value: string }[] = [];
  for (const [name, value] of echo.rawHeaders) if (name.charCodeAt(0) !== 0x3a) metadata.push({ name, value });
  const pseudo: Record<string, string> = {};
  for (const name of Object.keys(echo.pseudoHeaders)) pseudo[name] = echo.pseudoHeaders[name]!;
  const { client, server, tls, proxy } = echo;
  const message: EchoResponse = create(EchoResponseSchema, {
    remoteAddr: echo.remoteAddr,
    method: echo.method,
    requestUri: echo.requestURI,
    proto: echo.proto,
    metadata,
    pseudoHeaders: pseudo,
    path: echo.path,
    authority: pseudo[':authority'] ?? '',
    client: {
      ip: client.ip,
      source: client.source,
      peer: client.peer,
      peerTrusted: client.peerTrusted,
      trustedHeader: client.trustedHeader,
      forwarded: orUndefined(client.forwarded),
      xForwardedFor: orUndefined(client.xForwardedFor),
      xRealIp: orUndefined(client.xRealIp),
    },
    requestId: echo.requestId,
    server:
      server === null ? undefined : { hostname: server.hostname, addresses: server.addresses, worker: server.worker },
    env: echo.env === null ? {} : { ...echo.env },
    tls:
      tls === null
        ? undefined
        : {
            version: orUndefined(tls.version),
            cipher: orUndefined(tls.cipher),
            sni: orUndefined(tls.sni),
            alpn: orUndefined(tls.alpn),
            clientCertificate:
              tls.clientCertificate === null
                ? undefined
                : {
                    ...tls.clientCertificate,
                    subjectAltName: orUndefined(tls.clientCertificate.subjectAltName),
                    verifyError: orUndefined(tls.clientCertificate.verifyError),
                  },
          },
    proxy:
      proxy === null
        ? undefined
        : {
            version: proxy.version,
            command: proxy.command,
            transport: proxy.transport,
            sourceAddress: orUndefined(proxy.sourceAddress),
            sourcePort: orUndefined(proxy.sourcePort),
            destinationAddress: orUndefined(proxy.destinationAddress),
            destinationPort: orUndefined(proxy.destinationPort),
            tlvsJson: JSON.stringify(proxy.tlvs),
            peer: proxy.peer,
          },
    payload: { bytes: BigInt(call.payloadBytes), truncated: call.truncated, data: call.payload },
    grpcTimeout: call.grpcTimeout,
    deadlineMs: BigInt(call.deadlineMs),
    sequence: BigInt(call.sequence),
    messagesReceived: BigInt(call.messagesReceived),
    bytesReceived: BigInt(call.bytesReceived),
    trace: echo.trace === null ? undefined : { ...echo.trace, sampled: orUndefined(echo.trace.sampled) },
  });
  return toBinary(EchoResponseSchema, message);
}

function info(over: Partial<RequestInfo> = {}): RequestInfo {
  return {
    remoteAddress: '127.0.0.1',
    remotePort: 5000,
    method: 'POST',
    uri: '/echoserver.v1.Echo/Echo',
    proto: 'HTTP/2.0',
    rawHeaders: [':method', 'POST', ':path', '/echoserver.v1.Echo/Echo', 'content-type', 'application/grpc'],
    contentLength: -1,
    body: EMPTY_BODY,
    requestId: 'rid-1',
    tls: null,
    proxy: null,
    peerAddress: '127.0.0.1',
    peerPort: 5000,
    ...over,
  };
}
const ctx = (over: Partial<EchoContext> = {}): EchoContext => ({
  trustedProxies: new NetworkSet([]),
  clientIpHeader: 'x-forwarded-for',
  identity: null,
  env: null,
  ...over,
});
function facts(over: Partial<CallFacts> = {}): CallFacts {
  return {
    grpcTimeout: '',
    deadlineMs: 0,
    sequence: 0,
    messagesReceived: 1,
    bytesReceived: 18,
    payload: Buffer.from('hello'),
    payloadBytes: 5,
    truncated: false,
    ...over,
  };
}

/** The record of an echo model: its fields, the header list flat. */
const recordOf = (echo: Echo): EchoRecord => ({ ...echo, headerList: echo.rawHeaders.flat() });

/**
 * buildEcho's model of a request, after checking that echoRecord (what a call
 * builds instead of the whole model) is the same record: the same bytes.
 */
function echoOf(i: RequestInfo, c: EchoContext): Echo {
  const echo = buildEcho(i, c);
  const call = facts();
  assert.ok(echoFrame(echoRecord(i, c), call).equals(echoFrame(recordOf(echo), call)), 'echoRecord is buildEcho');
  return echo;
}

/** Both encodings of one record: the frame's prefix is right and its message is the reference's bytes. */
function agree(echo: Echo, call: CallFacts, label: string): void {
  const framed = echoFrame(recordOf(echo), call);
  const expected = reference(echo, call);
  assert.equal(framed[0], 0, `${label}: not compressed`);
  assert.equal(framed.readUInt32BE(1), framed.length - 5, `${label}: the prefix's length`);
  const message = new Uint8Array(framed.subarray(5)); // a plain copy, as toBinary returns
  assert.deepEqual(fromBinary(EchoResponseSchema, message), fromBinary(EchoResponseSchema, expected), label);
  assert.ok(Buffer.from(expected).equals(message), `${label}: byte for byte`);
}

const long = (n: number, c = 'x') => c.repeat(n);
const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe('gRPC echo record', () => {
  it('is the schema encoding of a plain call', () => {
    agree(echoOf(info(), ctx()), facts(), 'plain');
    agree(echoOf(info({ rawHeaders: [] }), ctx()), facts({ payload: Buffer.alloc(0), payloadBytes: 0 }), 'empty');
  });

  it('is the schema encoding with every optional part set', () => {
    const echo = echoOf(
      info({
        rawHeaders: [
          ':method',
          'POST',
          ':authority',
          'echo.example:8443',
          ':path',
          '/echoserver.v1.Echo/Echo',
          'x-forwarded-for',
          '203.0.113.9, 10.0.0.1',
          'forwarded',
          'for=203.0.113.9',
          'x-real-ip',
          '203.0.113.9',
          'traceparent',
          '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
          'x-empty',
          '',
          'x-latin',
          'caf\xc3\xa9 \xff',
          'x-long',
          long(300, 'v'),
        ],
        tls: {
          version: 'TLSv1.3',
          cipher: 'TLS_AES_128_GCM_SHA256',
          sni: null,
          alpn: 'h2',
          clientCertificate: {
            subject: 'CN=client',
            issuer: 'CN=ca',
            subjectAltName: null,
            validFrom: 'Jan 1 00:00:00 2026 GMT',
            validTo: 'Jan 1 00:00:00 2027 GMT',
            serialNumber: '01',
            fingerprint256: long(95, 'A'),
            verified: false,
            verifyError: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
          },
        },
        proxy: {
          version: 2,
          command: 'PROXY',
          transport: 'TCP4',
          sourceAddress: '198.51.100.7',
          sourcePort: 0,
          destinationAddress: null,
          destinationPort: 8080,
          tlvs: { authority: 'echo.example', uniqueId: 'abc' },
        },
      }),
      ctx({
        trustedProxies: new NetworkSet(['127.0.0.1/32']),
        identity: { hostname: 'replica-1', addresses: ['10.0.0.5', 'fd00::5'], worker: 0 },
        env: { POD_NAME: 'echo-0', '7': 'an integer-like key', EMPTY: '', NOTE: 'naïve ☃ 𝄞' },
      }),
    );
    assert.notEqual(echo.trace, null);
    assert.notEqual(echo.client.forwarded, null);
    agree(
      echo,
      facts({ grpcTimeout: '99999999H', deadlineMs: 99999999 * 3_600_000, sequence: 7, messagesReceived: 300 }),
      'every part',
    );
    agree(
      { ...echo, trace: { ...echo.trace!, sampled: false }, server: { hostname: '', addresses: [] } },
      facts(),
      'sampled false, no worker',
    );
    agree({ ...echo, trace: { ...echo.trace!, sampled: null } }, facts(), 'sampling undecided');
    // Explicit presence: an optional field set to '' or 0 is written, an implicit one is not.
    const cert = echo.tls!.clientCertificate!;
    agree(
      {
        ...echo,
        client: { ...echo.client, forwarded: '', xForwardedFor: '', xRealIp: '', trustedHeader: '' as never },
        tls: {
          version: '',
          cipher: '',
          sni: '',
          alpn: '',
          clientCertificate: { ...cert, subjectAltName: '', verifyError: '' },
        },
        proxy: { ...echo.proxy!, sourceAddress: '', destinationAddress: '', destinationPort: 0, transport: '' },
        server: { hostname: 'h', addresses: [''], worker: 3 },
      },
      facts({ payloadBytes: 0, payload: Buffer.alloc(0), messagesReceived: 0, bytesReceived: 0 }),
      'set but empty',
    );
  });

  it("is buildEcho's record for forwarding headers, targets and values of every kind", () => {
    const trusted = ctx({ trustedProxies: new NetworkSet(['127.0.0.1/32']), clientIpHeader: 'x-real-ip' });
    const requests: [Partial<RequestInfo>, EchoContext][] = [
      [
        { rawHeaders: ['X-Forwarded-For', '198.51.100.1', 'x-forwarded-for', '10.0.0.1, 10.0.0.2'] },
        ctx({ trustedProxies: new NetworkSet(['127.0.0.1/32']) }),
      ],
      [
        {
          rawHeaders: [
            'x-real-ip',
            '198.51.100.2',
            'X-Real-IP',
            '198.51.100.3',
            'forwarded',
            'for=a',
            'Forwarded',
            'for=b',
          ],
        },
        trusted,
      ],
      [{ rawHeaders: ['cookie', 'a=1', 'x-v', 'caf\xc3\xa9', 'x-w', '\xff\xfe'] }, ctx()],
      [{ uri: '/echoserver.v1.Echo/Echo?x=1&y', method: 'GET' }, ctx()],
      [{ uri: '/p%C3%A9/%zz' }, ctx()],
      [{ uri: 'http://h.example/abs/path?q' }, ctx()],
      [{ remoteAddress: '::ffff:127.0.0.1', peerAddress: '::1', remotePort: undefined }, ctx()],
    ];
    for (const [over, c] of requests) agree(echoOf(info(over), c), facts(), JSON.stringify(over));
  });

  it('is the schema encoding whatever the lengths: strings and nested messages past one length byte', () => {
    // Every length across the one-, two- and three-byte varint boundaries of a metadata entry.
    for (const n of [...range(100, 140), ...range(16_360, 16_400)]) {
      const echo = echoOf(info({ rawHeaders: ['x-v', long(n)] }), ctx());
      agree(echo, facts(), `metadata value of ${n}`);
    }
    for (const n of [0, 1, 42, 43, 127, 128, 129, 16_383, 16_384, 70_000]) {
      for (const c of ['a', 'é', '☃', '𝄞']) {
        const value = long(n, c);
        const echo = echoOf(info({ rawHeaders: ['x-v', value], uri: `/p/${value}` }), ctx());
        agree(echo, facts(), `${n} × ${c}`);
      }
    }
  });

  it('is the schema encoding of payloads past the scratch buffer, and the next record after one', () => {
    const echo = echoOf(info(), ctx());
    for (const size of [127, 128, 16 * 1024, 64 * 1024 + 1, 1024 * 1024])
      agree(echo, facts({ payload: Buffer.alloc(size, 0x61), payloadBytes: size, truncated: size > 1000 }), `${size}`);
    agree(echo, facts(), 'after a large one');
  });
});
