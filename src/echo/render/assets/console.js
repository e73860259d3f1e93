// The console on echo-server's HTML page: a request builder for the response
// controls, a WebSocket panel, an SSE panel and a gRPC-Web panel, all talking to
// this same origin.
// Plain browser JavaScript, inlined into the page and pinned by its sha256 in the
// Content-Security-Policy. Everything received is shown through textContent and
// form values, never parsed as HTML, so an echoed payload stays text.
(function () {
  'use strict';

  var $ = function (id) {
    return document.getElementById(id);
  };
  var root = $('console');
  if (root === null || typeof fetch !== 'function') return;

  var LOG_LIMIT = 200; // entries kept per log: a long session must not grow the page forever
  var SHOW_CHARS = 65536; // text shown of a response body
  var REPEAT = 20; // requests of "Send 20x", for watching a weighted status

  function el(tag, className, text) {
    var e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function clip(s, n) {
    return s.length > n ? s.slice(0, n) + '\u2026 (' + s.length + ' characters)' : s;
  }

  function hex(bytes, n) {
    var out = [];
    for (var i = 0; i < Math.min(bytes.length, n); i++) out.push((bytes[i] < 16 ? '0' : '') + bytes[i].toString(16));
    return out.join(' ') + (bytes.length > n ? ' \u2026' : '');
  }

  /** `Name: value` lines; blank lines are skipped, a line without a colon is an error. */
  function headerLines(text, what) {
    var out = [];
    text.split('\n').forEach(function (line) {
      if (line.trim() === '') return;
      var colon = line.indexOf(':');
      if (colon <= 0) throw new Error(what + ': "' + clip(line, 60) + '" is not Name: value');
      out.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
    });
    return out;
  }

  /** A URL on this origin from a path the user typed; anything else is refused. */
  function sameOrigin(path, scheme) {
    var p = path.trim() === '' ? '/' : path.trim();
    if (p.charAt(0) !== '/') p = '/' + p;
    var url = new URL(p, location.origin);
    if (url.origin !== location.origin) throw new Error('the path must stay on this server');
    if (scheme) url.protocol = scheme;
    return url;
  }

  function logTo(list, kind, dir, text) {
    var li = el('li', kind);
    li.appendChild(el('span', 'dir', dir));
    li.appendChild(document.createTextNode(text));
    list.appendChild(li);
    while (list.children.length > LOG_LIMIT) list.removeChild(list.firstChild);
    list.scrollTop = list.scrollHeight;
  }

  function describeEcho(json) {
    try {
      var e = JSON.parse(json);
      return e.proto + ', client ' + e.client.ip + ', request id ' + e.requestId + ': ';
    } catch {
      return '';
    }
  }

  // --- tabs
  var tabs = ['request', 'ws', 'sse', 'grpc'];
  tabs.forEach(function (name) {
    $('tab-' + name).addEventListener('click', function () {
      tabs.forEach(function (other) {
        $('tab-' + other).setAttribute('aria-selected', String(other === name));
        $('panel-' + other).hidden = other !== name;
      });
    });
  });

  // --- request builder
  var form = $('rq-form');
  var fields = [
    'method',
    'path',
    'status',
    'delay',
    'size',
    'rate',
    'chunks',
    'chunk-delay',
    'compress',
    'fault',
    'fail_first',
    'key',
    'format',
    'via',
    'resp-headers',
    'req-headers',
    'body',
  ];
  var input = {};
  fields.forEach(function (f) {
    input[f] = $('rq-' + f);
  });
  input.path.value = location.pathname;

  /** What the form asks for: method, URL, headers and body, exactly as fetch and curl will send it. */
  function spec() {
    var method = input.method.value;
    var url = sameOrigin(input.path.value);
    var headers = headerLines(input['req-headers'].value, 'request headers');
    var controls = [];
    if (input.status.value.trim()) controls.push(['status', input.status.value.trim()]);
    if (input.delay.value.trim()) controls.push(['delay', input.delay.value.trim()]);
    if (input.size.value.trim()) controls.push(['size', input.size.value.trim()]);
    ['fault', 'fail_first', 'key'].forEach(function (name) {
      if (input[name].value.trim()) controls.push([name, input[name].value.trim()]);
    });
    if (input.rate.value.trim()) controls.push(['rate', input.rate.value.trim()]);
    if (input.chunks.value.trim()) controls.push(['chunks', input.chunks.value.trim()]);
    if (input['chunk-delay'].value.trim()) controls.push(['chunk_delay', input['chunk-delay'].value.trim()]);
    if (input.compress.value.trim()) controls.push(['compress', input.compress.value.trim()]);
    if (input.format.value) controls.push(['format', input.format.value]);
    var extra = headerLines(input['resp-headers'].value, 'response headers').map(function (h) {
      return h[0] + ': ' + h[1];
    });
    // Several X-Echo-Header values would be joined into one by the browser, so more
    // than one always travels as echo_header query parameters.
    var headerVia = extra.length > 1 ? 'query' : input.via.value;
    extra.forEach(function (h) {
      controls.push(['header', h, headerVia]);
    });
    controls.forEach(function (c) {
      var via = c[2] || input.via.value;
      if (via === 'query') url.searchParams.append('echo_' + c[0], c[1]);
      // X-Echo-Fail-First for fail_first: a header name has dashes where the query has underscores.
      else
        headers.push([
          'X-Echo-' +
            c[0]
              .split('_')
              .map(function (w) {
                return w.charAt(0).toUpperCase() + w.slice(1);
              })
              .join('-'),
          c[1],
        ]);
    });
    var body = method === 'GET' || method === 'HEAD' ? null : input.body.value;
    if (
      body !== null &&
      body !== '' &&
      !headers.some(function (h) {
        return h[0].toLowerCase() === 'content-type';
      })
    ) {
      headers.push(['Content-Type', 'text/plain;charset=UTF-8']); // what fetch would send for a string
    }
    return { method: method, url: url.href, headers: headers, body: body === '' ? null : body };
  }

  // POSIX sh quoting: a word of only these characters means itself; anything else goes
  // inside single quotes, where nothing is special but the quote itself.
  function shellQuote(s) {
    return /^[A-Za-z0-9_\-.,:/=@%+]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'";
  }

  // -g: curl would otherwise expand [1-3] or {a,b} in the URL into several requests.
  // --data-raw: --data-binary reads a local file when the body starts with @.
  function curlOf(s) {
    var parts = ['curl', '-g', '-i'];
    if (s.method === 'HEAD') parts.push('--head');
    else if (s.method !== 'GET') parts.push('-X', s.method);
    s.headers.forEach(function (h) {
      parts.push('-H', shellQuote(h[0] + ': ' + h[1]));
    });
    if (s.body !== null) parts.push('--data-raw', shellQuote(s.body));
    parts.push(shellQuote(s.url));
    return parts.join(' ');
  }

  function refreshCurl() {
    var m = input.method.value;
    $('rq-body-label').hidden = m === 'GET' || m === 'HEAD';
    try {
      $('rq-curl').textContent = curlOf(spec());
    } catch (err) {
      $('rq-curl').textContent = String(err.message);
    }
  }
  form.addEventListener('input', refreshCurl);
  form.addEventListener('change', refreshCurl);
  refreshCurl();

  async function send(s) {
    var headers = new Headers();
    s.headers.forEach(function (h) {
      headers.append(h[0], h[1]);
    });
    var t0 = performance.now();
    var res = await fetch(s.url, {
      method: s.method,
      headers: headers,
      body: s.body,
      cache: 'no-store',
      credentials: 'same-origin',
    });
    var tHead = performance.now();
    var bytes = new Uint8Array(await res.arrayBuffer());
    var tEnd = performance.now();
    var entries = performance.getEntriesByName(res.url || s.url);
    var last = entries[entries.length - 1];
    performance.clearResourceTimings();
    return {
      res: res,
      bytes: bytes,
      headMs: tHead - t0,
      totalMs: tEnd - t0,
      protocol: last ? last.nextHopProtocol : '',
    };
  }

  function showBody(r) {
    var type = r.res.headers.get('content-type') || '';
    if (r.bytes.length === 0) return '(no body)';
    if (/^(text\/|application\/json)/.test(type)) {
      var text = new TextDecoder().decode(r.bytes);
      if (type.indexOf('application/json') === 0) {
        try {
          text = JSON.stringify(JSON.parse(text), null, 2);
        } catch {
          /* shown as it came */
        }
      }
      return clip(text, SHOW_CHARS);
    }
    return r.bytes.length + ' bytes of ' + (type || 'unknown type') + '; the first ones in hex:\n' + hex(r.bytes, 64);
  }

  function showResult(r) {
    var code = r.res.status;
    $('rq-result').hidden = false;
    var codeEl = $('rq-code');
    codeEl.textContent = String(code);
    codeEl.className = 'code s' + Math.floor(code / 100);
    $('rq-reason').textContent = r.res.statusText + (r.res.redirected ? ' (redirected to ' + r.res.url + ')' : '');
    $('rq-timing').textContent =
      'headers after ' +
      r.headMs.toFixed(1) +
      ' ms, complete after ' +
      r.totalMs.toFixed(1) +
      ' ms, ' +
      r.bytes.length +
      ' bytes' +
      (r.protocol ? ', over ' + r.protocol : '');
    var tbody = $('rq-headers-out');
    tbody.textContent = '';
    r.res.headers.forEach(function (value, name) {
      var tr = el('tr');
      tr.appendChild(el('th', '', name));
      tr.appendChild(el('td', '', value));
      tbody.appendChild(tr);
    });
    $('rq-body-out').textContent = showBody(r);
  }

  function showError(err) {
    $('rq-result').hidden = false;
    $('rq-code').textContent = 'failed';
    $('rq-code').className = 'code s0';
    $('rq-reason').textContent = String(err && err.message ? err.message : err);
    $('rq-timing').textContent = '';
    $('rq-headers-out').textContent = '';
    $('rq-body-out').textContent = '';
  }

  var finished = 0;
  function busy(on) {
    $('rq-send').disabled = on;
    $('rq-repeat').disabled = on;
    // A counter of finished sends, so a script driving the page knows when one is done.
    if (!on) root.setAttribute('data-finished', String(++finished));
  }

  form.addEventListener('submit', async function (ev) {
    ev.preventDefault();
    busy(true);
    $('rq-tally').hidden = true;
    try {
      showResult(await send(spec()));
    } catch (err) {
      showError(err);
    } finally {
      busy(false);
    }
  });

  $('rq-repeat').addEventListener('click', async function () {
    busy(true);
    var tally = {};
    var tallyEl = $('rq-tally');
    try {
      var s = spec();
      for (var i = 1; i <= REPEAT; i++) {
        var r = await send(s);
        tally[r.res.status] = (tally[r.res.status] || 0) + 1;
        showResult(r);
        tallyEl.hidden = false;
        tallyEl.textContent =
          i +
          ' requests: ' +
          Object.keys(tally)
            .map(function (k) {
              return k + ' \u00d7' + tally[k];
            })
            .join(', ');
      }
    } catch (err) {
      showError(err);
    } finally {
      busy(false);
    }
  });

  $('rq-copy').addEventListener('click', function () {
    var text = $('rq-curl').textContent;
    var done = function (msg) {
      $('rq-copied').textContent = msg;
    };
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(
        function () {
          done('Copied.');
        },
        function () {
          selectCurl();
          done('Selected: press Ctrl+C to copy.');
        },
      );
    } else {
      selectCurl();
      done('Selected: press Ctrl+C to copy.');
    }
  });

  function selectCurl() {
    var range = document.createRange();
    range.selectNodeContents($('rq-curl'));
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // --- WebSocket
  var ws = null;
  var wsLog = $('ws-log');
  $('ws-path').value = location.pathname;

  // 'idle', 'connecting' or 'open': sending is offered only once the socket is open
  // (a send while connecting would be dropped without a word).
  function wsButtons(state) {
    $('ws-connect').disabled = state !== 'idle';
    $('ws-close').disabled = state === 'idle';
    $('ws-send-text').disabled = state !== 'open';
    $('ws-send-binary').disabled = state !== 'open';
  }

  $('ws-connect').addEventListener('click', function () {
    var url;
    try {
      url = sameOrigin($('ws-path').value, location.protocol === 'https:' ? 'wss:' : 'ws:').href;
      ws = new WebSocket(url);
    } catch (err) {
      logTo(wsLog, 'sys err', '!', String(err.message));
      return;
    }
    var socket = ws;
    var first = true;
    socket.binaryType = 'arraybuffer';
    wsButtons('connecting');
    $('ws-state').textContent = 'Connecting to ' + url + '\u2026';
    socket.addEventListener('open', function () {
      if (ws === socket) wsButtons('open');
      $('ws-state').textContent = 'Connected to ' + url + '.';
      logTo(wsLog, 'sys', '\u2022', 'open');
    });
    socket.addEventListener('message', function (ev) {
      if (typeof ev.data === 'string') {
        var label = first ? 'echo of the handshake, ' + describeEcho(ev.data) : '';
        logTo(wsLog, 'in', '\u2190', label + clip(ev.data, 2000));
      } else {
        var bytes = new Uint8Array(ev.data);
        logTo(wsLog, 'in', '\u2190', 'binary, ' + bytes.length + ' bytes: ' + hex(bytes, 48));
      }
      first = false;
    });
    socket.addEventListener('error', function () {
      logTo(wsLog, 'sys err', '!', 'connection error');
    });
    socket.addEventListener('close', function (ev) {
      var text =
        'closed: code ' +
        ev.code +
        (ev.reason ? ', reason "' + ev.reason + '"' : ', no reason') +
        (ev.wasClean ? '' : ', not clean');
      logTo(wsLog, 'sys', '\u2022', text);
      $('ws-state').textContent = 'Closed (code ' + ev.code + ').';
      if (ws === socket) {
        ws = null;
        wsButtons('idle');
      }
    });
  });

  $('ws-close').addEventListener('click', function () {
    if (ws !== null) ws.close(1000, 'closed from the console');
  });
  $('ws-send-text').addEventListener('click', function () {
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    var text = $('ws-message').value;
    ws.send(text);
    logTo(wsLog, 'out', '\u2192', text);
  });
  $('ws-send-binary').addEventListener('click', function () {
    if (ws === null || ws.readyState !== WebSocket.OPEN) return;
    var bytes = new TextEncoder().encode($('ws-message').value);
    ws.send(bytes);
    logTo(wsLog, 'out', '\u2192', 'binary, ' + bytes.length + ' bytes: ' + hex(bytes, 48));
  });

  // --- Server-Sent Events
  var es = null;
  var sseLog = $('sse-log');
  $('sse-path').value = location.pathname;

  function sseButtons(open) {
    $('sse-open').disabled = open;
    $('sse-stop').disabled = !open;
  }

  function sseEnd(state) {
    if (es !== null) es.close();
    es = null;
    sseButtons(false);
    $('sse-state').textContent = state;
  }

  $('sse-open').addEventListener('click', function () {
    var url;
    try {
      url = sameOrigin($('sse-path').value).href;
      es = new EventSource(url);
    } catch (err) {
      logTo(sseLog, 'sys err', '!', String(err.message));
      return;
    }
    var ticks = 0;
    sseButtons(true);
    $('sse-state').textContent = 'Opening ' + url + '\u2026';
    es.addEventListener('open', function () {
      $('sse-state').textContent = 'Open: ' + url;
    });
    es.addEventListener('echo', function (ev) {
      logTo(sseLog, 'in', '\u2190', 'echo #' + ev.lastEventId + ', ' + describeEcho(ev.data) + clip(ev.data, 2000));
    });
    es.addEventListener('tick', function (ev) {
      ticks++;
      logTo(sseLog, 'in', '\u2190', 'tick #' + ev.lastEventId + ': ' + ev.data);
    });
    ['done', 'shutdown'].forEach(function (name) {
      es.addEventListener(name, function (ev) {
        logTo(sseLog, 'in', '\u2190', name + ' #' + ev.lastEventId + ': ' + ev.data);
        sseEnd('Ended by the server (' + name + ') after ' + ticks + ' ticks.');
      });
    });
    // EventSource would reconnect for ever; the console stops at the first error instead.
    es.addEventListener('error', function () {
      logTo(sseLog, 'sys err', '!', 'stream failed or was cut');
      sseEnd('Failed.');
    });
  });
  $('sse-stop').addEventListener('click', function () {
    logTo(sseLog, 'sys', '\u2022', 'stopped');
    sseEnd('Stopped.');
  });

  // --- gRPC-Web: echoserver.v1.Echo/Echo framed by hand (proto/echoserver/v1/echo.proto),
  // so the page needs no bundle: a 5-byte prefix per message, a 0x80 frame for the
  // trailers, and just enough protobuf to write EchoRequest and read EchoResponse.
  var GRPC_CODES = [
    'OK',
    'CANCELLED',
    'UNKNOWN',
    'INVALID_ARGUMENT',
    'DEADLINE_EXCEEDED',
    'NOT_FOUND',
    'ALREADY_EXISTS',
    'PERMISSION_DENIED',
    'RESOURCE_EXHAUSTED',
    'FAILED_PRECONDITION',
    'ABORTED',
    'OUT_OF_RANGE',
    'UNIMPLEMENTED',
    'INTERNAL',
    'UNAVAILABLE',
    'DATA_LOSS',
    'UNAUTHENTICATED',
  ];
  var grpcCalls = 0;

  function varint(n, out) {
    while (n > 127) {
      out.push((n & 127) | 128);
      n = Math.floor(n / 128);
    }
    out.push(n);
  }

  /** EchoRequest { bytes payload = 1 } in one frame. */
  function echoRequestFrame(payload) {
    var msg = [];
    if (payload.length > 0) {
      msg.push(0x0a);
      varint(payload.length, msg);
    }
    var body = new Uint8Array(5 + msg.length + payload.length);
    var len = msg.length + payload.length;
    body[1] = (len >>> 24) & 255;
    body[2] = (len >>> 16) & 255;
    body[3] = (len >>> 8) & 255;
    body[4] = len & 255;
    body.set(msg, 5);
    body.set(payload, 5 + msg.length);
    return body;
  }

  /** A message's fields as [number, wire type, value]: a number (varint) or bytes (length-delimited). */
  function fieldsOf(bytes) {
    var out = [];
    var i = 0;
    function readVarint() {
      var n = 0,
        mul = 1,
        b;
      do {
        if (i >= bytes.length) throw new Error('truncated message');
        b = bytes[i++];
        n += (b & 127) * mul;
        mul *= 128;
      } while (b & 128);
      return n;
    }
    while (i < bytes.length) {
      var key = readVarint();
      var wire = key % 8,
        num = Math.floor(key / 8);
      if (wire === 0) out.push([num, 0, readVarint()]);
      else if (wire === 2) {
        var len = readVarint();
        if (i + len > bytes.length) throw new Error('truncated message');
        out.push([num, 2, bytes.subarray(i, i + len)]);
        i += len;
      } else if (wire === 1) i += 8;
      else if (wire === 5) i += 4;
      else throw new Error('unsupported wire type ' + wire);
    }
    return out;
  }

  var utf8 = new TextDecoder();
  /** EchoResponse's fields that the console shows, by number, as [name, kind]. */
  var ECHO_FIELDS = {
    1: ['remote_addr', 's'],
    2: ['method', 's'],
    3: ['request_uri', 's'],
    4: ['proto', 's'],
    5: ['metadata', 'md'],
    7: ['path', 's'],
    8: ['authority', 's'],
    9: ['client', 'client'],
    10: ['request_id', 's'],
    11: ['server', 'server'],
    15: ['payload', 'payload'],
    16: ['grpc_timeout', 's'],
    17: ['deadline_ms', 'n'],
  };

  function describeField(kind, v) {
    if (kind === 's') return utf8.decode(v);
    if (kind === 'n') return String(v);
    var f = fieldsOf(v);
    var get = function (n) {
      var hit = f.filter(function (x) {
        return x[0] === n;
      })[0];
      return hit === undefined ? undefined : hit[2];
    };
    if (kind === 'md') return utf8.decode(get(1) || new Uint8Array()) + ': ' + utf8.decode(get(2) || new Uint8Array());
    if (kind === 'client')
      return utf8.decode(get(1) || new Uint8Array()) + ' (' + utf8.decode(get(2) || new Uint8Array()) + ')';
    if (kind === 'server') return utf8.decode(get(1) || new Uint8Array());
    if (kind === 'payload')
      return (
        (get(1) || 0) +
        ' bytes' +
        (get(2) ? ', truncated' : '') +
        ': ' +
        clip(utf8.decode(get(3) || new Uint8Array()), 2000)
      );
    return '';
  }

  function row(tbody, name, value) {
    var tr = el('tr');
    tr.appendChild(el('th', '', name));
    tr.appendChild(el('td', '', value));
    tbody.appendChild(tr);
  }

  function grpcDone(state) {
    $('grpc-state').textContent = state;
    $('grpc-call').disabled = false;
    $('panel-grpc').setAttribute('data-calls', String(++grpcCalls));
  }

  $('grpc-call').addEventListener('click', async function () {
    var headers = new Headers({
      'content-type': 'application/grpc-web+proto',
      'x-grpc-web': '1',
      accept: 'application/grpc-web+proto',
    });
    var url;
    try {
      url = sameOrigin('/echoserver.v1.Echo/Echo').href;
      headerLines($('grpc-metadata').value, 'metadata').forEach(function (h) {
        headers.append(h[0], h[1]);
      });
    } catch (err) {
      grpcDone('Not sent: ' + err.message);
      return;
    }
    $('grpc-call').disabled = true;
    $('grpc-state').textContent = 'Calling\u2026';
    var started = performance.now();
    var res, bytes;
    try {
      res = await fetch(url, {
        method: 'POST',
        headers: headers,
        body: echoRequestFrame(new TextEncoder().encode($('grpc-payload').value)),
        cache: 'no-store',
      });
      bytes = new Uint8Array(await res.arrayBuffer());
    } catch (err) {
      grpcDone('Failed: ' + err.message);
      return;
    }
    var record = $('grpc-record'),
      trailers = $('grpc-trailers');
    record.replaceChildren();
    trailers.replaceChildren();
    var status = res.headers.get('grpc-status'),
      message = res.headers.get('grpc-message') || '';
    try {
      var i = 0;
      while (i + 5 <= bytes.length) {
        var len = ((bytes[i + 1] << 24) >>> 0) + (bytes[i + 2] << 16) + (bytes[i + 3] << 8) + bytes[i + 4];
        var body = bytes.subarray(i + 5, i + 5 + len);
        if (bytes[i] & 0x80) {
          utf8
            .decode(body)
            .split('\r\n')
            .forEach(function (line) {
              var colon = line.indexOf(':');
              if (colon <= 0) return;
              var name = line.slice(0, colon).trim().toLowerCase(),
                value = line.slice(colon + 1).trim();
              if (name === 'grpc-status') status = value;
              else if (name === 'grpc-message') message = decodeURIComponent(value);
              else row(trailers, name, value);
            });
        } else {
          fieldsOf(body).forEach(function (f) {
            var spec = ECHO_FIELDS[f[0]];
            if (spec !== undefined) row(record, spec[0], describeField(spec[1], f[2]));
          });
        }
        i += 5 + len;
      }
    } catch (err) {
      message = 'unreadable answer: ' + err.message;
    }
    var code = status === null ? NaN : Number(status);
    $('grpc-code').textContent = isNaN(code) ? 'HTTP ' + res.status : (GRPC_CODES[code] || 'code') + ' (' + code + ')';
    $('grpc-message').textContent = message;
    $('grpc-timing').textContent = 'after ' + (performance.now() - started).toFixed(1) + ' ms';
    $('grpc-result').hidden = false;
    grpcDone('Done: ' + res.headers.get('x-request-id'));
  });

  root.hidden = false;
  document.body.classList.add('with-console');
  document.documentElement.setAttribute('data-console', 'ready');
})();
