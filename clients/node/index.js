'use strict';
/**
 * Node.js client of the failurelens services.
 *
 * The service definitions are loaded from the project's protos (protos/failurelens/v1, the
 * contract every client is generated from) with @grpc/proto-loader, so field names are the protos'
 * own (snake_case) and enums are their names ("JOB_STATE_SUCCEEDED").
 *
 *   const { FailureLensClient } = require('@failurelens/client');
 *   const fl = FailureLensClient.fromEnv();            // FAILURELENS_ADDRESSES or the stack's stack.json
 *   console.log(await fl.health('pipeline'));           // 'SERVING'
 *   const run = await fl.runPipeline({ dataset_id: 'pets', model_id: 'resnet' }, (p) => console.log(p.stage));
 *
 * Settings (options, else the environment): addresses ("registry=host:port,..." in
 * FAILURELENS_ADDRESSES, or <FAILURELENS_STATE_DIR>/stack.json of a local stack), the bearer token
 * (FAILURELENS_AUTH_TOKEN or the file FAILURELENS_AUTH_TOKEN_FILE; never a command-line argument),
 * TLS (FAILURELENS_TLS_CA_FILE, and FAILURELENS_TLS_CERT_FILE / FAILURELENS_TLS_KEY_FILE for mutual TLS).
 */
const fs = require('node:fs');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = process.env.FAILURELENS_PROTOS || path.resolve(__dirname, '..', '..', 'protos');
const API_DIR = path.join(PROTO_ROOT, 'failurelens', 'v1');
const HEALTH_PROTO = path.join(path.dirname(require.resolve('grpc-health-check/package.json')), 'proto', 'health', 'v1', 'health.proto');
const LOADER_OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [PROTO_ROOT] };

/** "SliceDiscovery" -> "slice_discovery": the service's name in the stack and in FAILURELENS_ADDRESSES. */
function snake(name) {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

let loaded = null;
/** Every failurelens.v1 service (and grpc.health.v1), from the protos. */
function definitions() {
  if (loaded) return loaded;
  const files = fs.readdirSync(API_DIR).filter((f) => f.endsWith('.proto')).map((f) => path.join(API_DIR, f));
  const api = grpc.loadPackageDefinition(protoLoader.loadSync(files, LOADER_OPTIONS)).failurelens.v1;
  const health = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO, LOADER_OPTIONS)).grpc.health.v1;
  const services = {};
  for (const [name, ctor] of Object.entries(api)) {
    if (typeof ctor === 'function' && ctor.service && name !== 'Jobs') services[snake(name)] = ctor;
  }
  loaded = { services, Jobs: api.Jobs, Health: health.Health };
  return loaded;
}

/** An Error carrying the gRPC status name, e.g. err.codeName === 'PERMISSION_DENIED'. */
class FailureLensError extends Error {
  constructor(service, method, err) {
    const codeName = Object.keys(grpc.status).find((k) => grpc.status[k] === err.code) || 'UNKNOWN';
    super(`${service}.${method}: ${codeName}: ${err.details || err.message}`);
    this.code = err.code;
    this.codeName = codeName;
    this.details = err.details || err.message;
  }
}

function readIf(file) {
  return file ? fs.readFileSync(file) : null;
}

function parseAddresses(text) {
  const out = {};
  for (const item of (text || '').split(',')) {
    const i = item.indexOf('=');
    if (i > 0) out[item.slice(0, i).trim()] = item.slice(i + 1).trim();
  }
  return out;
}

class FailureLensClient {
  /**
   * @param {object} opts
   * @param {Object<string,string>} opts.addresses service name -> host:port
   * @param {string} [opts.token] bearer token
   * @param {{caFile?: string, certFile?: string, keyFile?: string}} [opts.tls] TLS files (no caFile: plaintext)
   * @param {number} [opts.deadlineSeconds] default deadline of every call
   */
  constructor({ addresses, token = '', tls = {}, deadlineSeconds = 600 } = {}) {
    if (!addresses || !Object.keys(addresses).length) throw new Error('no service addresses: set FAILURELENS_ADDRESSES or start a local stack');
    this.addresses = { ...addresses };
    this.token = token;
    this.deadlineSeconds = deadlineSeconds;
    this.credentials = tls.caFile
      ? grpc.credentials.createSsl(readIf(tls.caFile), readIf(tls.keyFile), readIf(tls.certFile))
      : grpc.credentials.createInsecure();
    this._clients = new Map();
  }

  /** Addresses, token and TLS from the environment (see the module's comment). */
  static fromEnv(env = process.env) {
    let addresses = parseAddresses(env.FAILURELENS_ADDRESSES);
    let caFile = env.FAILURELENS_TLS_CA_FILE || '';
    if (!Object.keys(addresses).length) {
      const record = path.join(env.FAILURELENS_STATE_DIR || '.state', 'stack.json');
      if (!fs.existsSync(record)) throw new Error(`no FAILURELENS_ADDRESSES and no local stack recorded in ${record}`);
      const rec = JSON.parse(fs.readFileSync(record, 'utf8'));
      addresses = Object.fromEntries(Object.entries(rec.services).map(([n, s]) => [n, s.address]));
      caFile = caFile || rec.tls_ca_file || '';
    }
    const token = env.FAILURELENS_AUTH_TOKEN || (env.FAILURELENS_AUTH_TOKEN_FILE ? fs.readFileSync(env.FAILURELENS_AUTH_TOKEN_FILE, 'utf8').trim() : '');
    const tls = { caFile, certFile: env.FAILURELENS_TLS_CERT_FILE || '', keyFile: env.FAILURELENS_TLS_KEY_FILE || '' };
    return new FailureLensClient({ addresses, token, tls });
  }

  _client(service, ctorName) {
    const key = `${service}/${ctorName || ''}`;
    if (!this._clients.has(key)) {
      const address = this.addresses[service];
      if (!address) throw new Error(`this client has no address for the ${service} service`);
      const defs = definitions();
      const Ctor = ctorName ? defs[ctorName] : defs.services[service];
      if (!Ctor) throw new Error(`the protos define no ${service} service`);
      this._clients.set(key, new Ctor(address, this.credentials, { 'grpc.max_receive_message_length': 16 * 1024 * 1024 }));
    }
    return this._clients.get(key);
  }

  _metadata() {
    const md = new grpc.Metadata();
    if (this.token) md.set('authorization', `Bearer ${this.token}`);
    return md;
  }

  _deadline(seconds) {
    return new Date(Date.now() + 1000 * (seconds || this.deadlineSeconds));
  }

  /** A unary call: resolves with the response, rejects with a FailureLensError. */
  call(service, method, request = {}, { deadlineSeconds, ctor } = {}) {
    const client = this._client(service, ctor);
    const md = ctor === 'Health' ? new grpc.Metadata() : this._metadata();
    return new Promise((resolve, reject) => {
      client[method](request, md, { deadline: this._deadline(deadlineSeconds) }, (err, response) => {
        if (err) reject(new FailureLensError(service, method, err));
        else resolve(response);
      });
    });
  }

  /** A server-streaming call: onMessage(each); resolves with the last message. */
  stream(service, method, request, onMessage = () => {}, { deadlineSeconds } = {}) {
    const call = this._client(service)[method](request, this._metadata(), { deadline: this._deadline(deadlineSeconds) });
    return new Promise((resolve, reject) => {
      let last = null;
      call.on('data', (m) => {
        last = m;
        onMessage(m);
      });
      call.on('error', (err) => reject(new FailureLensError(service, method, err)));
      call.on('end', () => resolve(last));
    });
  }

  /** grpc.health.v1 status of a service: 'SERVING', 'NOT_SERVING', ... (no token needed). */
  async health(service, { deadlineSeconds = 5 } = {}) {
    const r = await this.call(service, 'Check', { service: '' }, { deadlineSeconds, ctor: 'Health' });
    return r.status;
  }

  async listDatasets() {
    return (await this.call('registry', 'ListDatasets', {})).datasets;
  }

  async listRuns(filter = {}) {
    return (await this.call('pipeline', 'ListRuns', filter)).runs;
  }

  getRun(runId) {
    return this.call('pipeline', 'GetRun', { run_id: runId });
  }

  cancelRun(runId) {
    return this.call('pipeline', 'CancelRun', { run_id: runId });
  }

  async _follow(method, request, onProgress) {
    let result = null;
    await this.stream('pipeline', method, request, (u) => {
      if (u.update === 'progress') onProgress(u.progress);
      else if (u.update === 'result') result = u.result;
    });
    if (!result) throw new Error(`pipeline.${method} ended without the finished run`);
    return result;
  }

  /** Submit a pipeline run (idempotent by request_id) and follow it to the end: the finished run. */
  runPipeline(request, onProgress = () => {}) {
    return this._follow('Run', request, onProgress);
  }

  /** Follow a submitted run to the end (reconnectable): the finished run. */
  watchRun(runId, onProgress = () => {}) {
    return this._follow('WatchRun', { run_id: runId }, onProgress);
  }

  close() {
    for (const c of this._clients.values()) c.close();
    this._clients.clear();
  }
}

module.exports = { FailureLensClient, FailureLensError, definitions, parseAddresses };
